"""Dual regression: group maps -> one time series per component per run (stage 1), and
time series -> subject maps (stage 2), as FSL ``dual_regression``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from icanets.ica.data import ICAError

__all__ = ["stage1", "stage2", "Stage2"]


def stage1(data: np.ndarray, maps: np.ndarray, *, demean: bool = True) -> np.ndarray:
    """Spatial regression of every volume on all group maps at once.

    ``TC = Y_d M_d' (M_d M_d')^-1`` where, with ``demean`` (FSL ``fsl_glm --demean``),
    each volume of ``Y`` and each map of ``M`` has its mean over voxels removed.

    Parameters
    ----------
    data : ndarray, shape (T, V)
    maps : ndarray, shape (K, V)
        All components, signal and noise, as regressors together.

    Returns
    -------
    ndarray, shape (T, K)
    """
    data = np.asarray(data, dtype=np.float64)
    maps = np.asarray(maps, dtype=np.float64)
    if data.shape[1] != maps.shape[1]:
        raise ICAError(f"data have {data.shape[1]} voxels, the maps {maps.shape[1]}")
    if demean:
        data = data - data.mean(axis=1, keepdims=True)
        maps = maps - maps.mean(axis=1, keepdims=True)
    gram = maps @ maps.T
    if np.linalg.matrix_rank(gram) < maps.shape[0]:
        raise ICAError("the group maps are linearly dependent; dual regression needs independent regressors")
    return np.linalg.solve(gram, maps @ data.T).T


@dataclass(frozen=True)
class Stage2:
    """Subject maps of one run.

    Attributes
    ----------
    betas : ndarray, shape (K, V)
        Regression coefficients of each voxel's time series on the (normalised) time courses.
    tstats : ndarray, shape (K, V)
    """

    betas: np.ndarray
    tstats: np.ndarray | None


def stage2(data: np.ndarray, timecourses: np.ndarray, *, normalise: bool = True, tstats: bool = True) -> Stage2:
    """Temporal regression of every voxel on all stage-1 time courses.

    Time courses and data are demeaned over time; with ``normalise`` (FSL ``--des_norm``)
    each time course is scaled to unit variance first, so maps are comparable across runs.
    ``tstats = False`` gives the betas only (``tstats`` None), without the residuals' copy of
    the data.
    """
    data = np.asarray(data, dtype=np.float64)
    x = np.asarray(timecourses, dtype=np.float64)
    if data.shape[0] != x.shape[0]:
        raise ICAError(f"data have {data.shape[0]} time points, the time courses {x.shape[0]}")
    x = x - x.mean(axis=0)
    if normalise:
        sd = x.std(axis=0)
        if np.any(sd == 0):
            raise ICAError(f"time course(s) {np.flatnonzero(sd == 0).tolist()} are constant")
        x = x / sd
    y = data - data.mean(axis=0)
    df = x.shape[0] - x.shape[1] - 1
    if df < 1:
        raise ICAError(f"stage 2 needs more time points ({x.shape[0]}) than components + 1 ({x.shape[1] + 1})")
    xtx_inv = np.linalg.inv(x.T @ x)
    betas = xtx_inv @ x.T @ y
    if not tstats:
        return Stage2(betas=betas, tstats=None)
    resid = y - x @ betas
    del y
    sigma2 = np.sum(resid**2, axis=0) / df
    return Stage2(betas=betas, tstats=betas / np.sqrt(np.outer(np.diag(xtx_inv), sigma2)))
