"""Dual regression: group maps -> one time series per component per run (stage 1), and
time series -> subject maps (stage 2), as FSL ``dual_regression``.

Both stages work on a run a block of voxels at a time: each block has its temporal mean
removed in the data's own precision (float32 data are multiplied in float32), and the
products over voxels are summed in float64, so a run is never copied whole and float32
data keep the precision of float64 products to about 1e-6 (the temporal mean image, large
beside the fluctuations in raw BOLD units, is added back in float64 where it matters)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from icanets.ica.data import ICAError

__all__ = ["stage1", "stage2", "Stage2", "Regressors", "stage1_regressors"]

from icanets._blocked import BLOCK as _BLOCK, working as _working


@dataclass(frozen=True)
class Regressors:
    """Group maps prepared once for stage 1 of many runs.

    Attributes
    ----------
    maps : ndarray, shape (K, V)
        The maps (float64), each with its mean over voxels removed when ``demean``.
    gram : ndarray, shape (K, K)
        ``maps maps'``.
    single : ndarray, shape (K, V)
        ``maps`` in float32, for products with float32 data.
    demean : bool
    """

    maps: np.ndarray
    gram: np.ndarray
    single: np.ndarray
    demean: bool


def stage1_regressors(maps: np.ndarray, *, demean: bool = True) -> Regressors:
    """The maps ``(K, V)`` as stage-1 regressors: demeaned over voxels (FSL ``fsl_glm
    --demean``) and checked to be linearly independent."""
    if isinstance(maps, Regressors):
        return maps
    maps = np.array(maps, dtype=np.float64)
    if maps.ndim != 2:
        raise ICAError(f"the group maps must be (components, voxels), got shape {maps.shape}")
    if demean:
        maps -= maps.mean(axis=1, keepdims=True)
    gram = maps @ maps.T
    if np.linalg.matrix_rank(gram) < maps.shape[0]:
        raise ICAError("the group maps are linearly dependent; dual regression needs independent regressors")
    return Regressors(maps=maps, gram=gram, single=maps.astype(np.float32), demean=demean)


def stage1(data: np.ndarray, maps: np.ndarray | Regressors, *, demean: bool = True) -> np.ndarray:
    """Spatial regression of every volume on all group maps at once.

    ``TC = Y_d M_d' (M_d M_d')^-1`` where, with ``demean`` (FSL ``fsl_glm --demean``),
    each volume of ``Y`` and each map of ``M`` has its mean over voxels removed.

    Parameters
    ----------
    data : ndarray, shape (T, V)
        float64, or float32 (multiplied in float32 a block of voxels at a time, the
        products summed in float64).
    maps : ndarray, shape (K, V), or Regressors
        All components, signal and noise, as regressors together (or
        :func:`stage1_regressors` of them, to prepare them once for many runs; its
        ``demean`` then applies).

    Returns
    -------
    ndarray, shape (T, K)
    """
    data = _working(data)
    regressors = stage1_regressors(maps, demean=demean)  # prepared maps are used as they are
    if data.ndim != 2:
        raise ICAError(f"data must be (time points, voxels), got shape {data.shape}")
    if data.shape[1] != regressors.maps.shape[1]:
        raise ICAError(f"data have {data.shape[1]} voxels, the maps {regressors.maps.shape[1]}")
    # M_d Y_d' = M_d Y' when the maps have zero mean over voxels (the volumes' means drop out);
    # without demeaning the volumes' means are part of the fit. Y = (Y - mean image) + mean image:
    # the centred part in the data's precision, the mean image's part in float64.
    low = regressors.single if data.dtype == np.float32 else regressors.maps
    centre = data.mean(axis=0, dtype=np.float64).astype(data.dtype)
    rhs = np.zeros((regressors.maps.shape[0], data.shape[0]))
    for start in range(0, data.shape[1], _BLOCK):
        block = data[:, start:start + _BLOCK] - centre[start:start + _BLOCK]
        rhs += low[:, start:start + _BLOCK] @ block.T
    rhs += (regressors.maps @ centre.astype(np.float64))[:, None]
    return np.linalg.solve(regressors.gram, rhs).T


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
    ``tstats = False`` gives the betas only (``tstats`` None). ``data`` is float64 or float32
    (see :func:`stage1`); the maps are float64 either way.
    """
    data = _working(data)
    x = np.asarray(timecourses, dtype=np.float64)
    if data.shape[0] != x.shape[0]:
        raise ICAError(f"data have {data.shape[0]} time points, the time courses {x.shape[0]}")
    x = x - x.mean(axis=0)
    if normalise:
        sd = x.std(axis=0)
        if np.any(sd == 0):
            raise ICAError(f"time course(s) {np.flatnonzero(sd == 0).tolist()} are constant")
        x = x / sd
    df = x.shape[0] - x.shape[1] - 1
    if df < 1:
        raise ICAError(f"stage 2 needs more time points ({x.shape[0]}) than components + 1 ({x.shape[1] + 1})")
    xtx_inv = np.linalg.inv(x.T @ x)
    projector = (xtx_inv @ x.T).astype(data.dtype)  # (K, T); the sums run over time points only
    centre = data.mean(axis=0, dtype=np.float64).astype(data.dtype)
    betas = np.empty((x.shape[1], data.shape[1]))
    sigma2 = np.empty(data.shape[1]) if tstats else None
    fitted = x.astype(data.dtype)
    for start in range(0, data.shape[1], _BLOCK):
        block = data[:, start:start + _BLOCK] - centre[start:start + _BLOCK]
        b = projector @ block
        betas[:, start:start + _BLOCK] = b
        if tstats:
            block -= fitted @ b
            sigma2[start:start + _BLOCK] = np.einsum("tv,tv->v", block, block, dtype=np.float64) / df
    if not tstats:
        return Stage2(betas=betas, tstats=None)
    return Stage2(betas=betas, tstats=betas / np.sqrt(np.outer(np.diag(xtx_inv), sigma2)))
