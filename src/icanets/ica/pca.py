"""Group PCA: MIGP (incremental, bounded memory) and exact temporal-concatenation PCA,
and model-order selection on the eigenspectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from icanets.ica.data import ICAError
from icanets.ica.order import bic_evidence, estimate_dimension, laplace_evidence

__all__ = ["GroupPCA", "migp", "concat_pca", "concat_spectrum", "estimate_dimension", "laplace_evidence",
           "bic_evidence", "run_subspace"]


@dataclass(frozen=True)
class GroupPCA:
    """The group principal subspace.

    Attributes
    ----------
    components : ndarray, shape (m, V)
        Orthonormal spatial eigenvectors, strongest first (``m`` rows kept).
    eigenvalues : ndarray, shape (m,)
        Their eigenvalues (variance of the concatenated data along each, per time point).
    n_runs : int
    n_timepoints : int
        Total time points seen.
    peak_rows : int
        Largest number of rows the internal matrix held (MIGP's memory bound).
    """

    components: np.ndarray
    eigenvalues: np.ndarray
    n_runs: int
    n_timepoints: int
    peak_rows: int


def _top_rows(w: np.ndarray, k: int) -> np.ndarray:
    """``U_k' W`` for the top ``k`` eigenvectors of ``W W'`` (rows ``sqrt(lambda) v'``)."""
    gram = w @ w.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:k]
    return vectors[:, order].T @ w


def run_subspace(data: np.ndarray, n_components: int | float) -> np.ndarray:
    """A run's strongest spatial principal directions, each with unit weight, shape ``(k, V)``.

    ``data`` ``(T, V)`` is a preprocessed run; ``n_components`` is a count, or a fraction of
    its time points. Feeding these whitened subspaces to :func:`migp` instead of the data
    themselves gives every run's signal subspace the same weight, whatever the amplitude of
    what lies in it: a direction present in many runs (a network) outranks one that is strong
    in a few (a motion spike, a run's drift, one subject's misregistration), and weak networks
    count as much as strong ones. This is the subject-level whitening of GIFT and of nilearn's
    CanICA (its canonical correlation step), applied per run.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 50))
    >>> w = run_subspace(x - x.mean(0), 0.5)
    >>> w.shape, bool(np.allclose(w @ w.T, np.eye(10)))
    ((10, 50), True)
    """
    t = data.shape[0]
    k = int(round(n_components * t)) if isinstance(n_components, float) else int(n_components)
    k = max(1, min(k, t - 1 if t > 1 else 1, data.shape[1]))
    gram = data @ data.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:k]
    values, vectors = values[order], vectors[:, order]
    positive = values > values[0] * 1e-12
    rows = vectors[:, positive].T @ data / np.sqrt(values[positive])[:, None]
    return rows


def migp(runs: Iterable[np.ndarray], *, n_internal: int, n_components: int | None = None) -> GroupPCA:
    """MELODIC's Incremental Group-PCA (Smith et al. 2014).

    Runs (each ``(T_i, V)``, preprocessed) are appended to an internal matrix ``W``; whenever
    it has more than ``n_internal`` rows it is reduced to its ``n_internal`` strongest
    eigen-directions, ``W <- U' W``. Memory holds at most ``n_internal + T_i`` rows, however
    many runs there are. Pass the runs in a shuffled order (the caller's seed).

    Parameters
    ----------
    runs : iterable of ndarray, each (T_i, V)
    n_internal : int
        Rows kept between runs (MELODIC: about 2 x T).
    n_components : int, optional
        Components to return (default: all ``n_internal``).

    References
    ----------
    Smith SM, Hyvarinen A, Varoquaux G, Miller KL, Beckmann CF (2014). Group-PCA for very
    large fMRI datasets. NeuroImage 101:738-749.
    """
    if n_internal < 1:
        raise ICAError(f"n_internal must be at least 1, got {n_internal}")
    w = None
    n_runs = n_time = peak = 0
    for x in runs:
        x = np.asarray(x, dtype=np.float64)
        if w is not None and x.shape[1] != w.shape[1]:
            raise ICAError(f"run {n_runs + 1} has {x.shape[1]} voxels, earlier runs {w.shape[1]}")
        w = x.copy() if w is None else np.vstack([w, x])
        peak = max(peak, w.shape[0])
        n_runs += 1
        n_time += x.shape[0]
        if w.shape[0] > n_internal:
            w = _top_rows(w, n_internal)
    if w is None:
        raise ICAError("no runs given to MIGP")
    keep = min(n_components or n_internal, w.shape[0])
    _, s, vt = np.linalg.svd(w, full_matrices=False)
    return GroupPCA(components=vt[:keep], eigenvalues=(s[:keep] ** 2) / n_time, n_runs=n_runs, n_timepoints=n_time,
                    peak_rows=peak)


def concat_pca(runs: Iterable[np.ndarray], *, n_components: int) -> GroupPCA:
    """Exact PCA of the temporally concatenated runs, through the ``V x V`` scatter matrix.

    ``sum_i X_i' X_i`` is accumulated run by run; its top eigenvectors are the spatial
    principal components of ``[X_1; X_2; ...]``. The reference for :func:`migp` on small data.
    """
    scatter = None
    n_runs = n_time = 0
    for x in runs:
        x = np.asarray(x, dtype=np.float64)
        scatter = x.T @ x if scatter is None else scatter + x.T @ x
        n_runs += 1
        n_time += x.shape[0]
    if scatter is None:
        raise ICAError("no runs given to the PCA")
    values, vectors = np.linalg.eigh(scatter)
    order = np.argsort(values)[::-1][:n_components]
    return GroupPCA(components=vectors[:, order].T, eigenvalues=values[order] / n_time, n_runs=n_runs,
                    n_timepoints=n_time, peak_rows=n_time)


def concat_spectrum(runs: Iterable[np.ndarray]) -> np.ndarray:
    """Non-zero eigenvalues (descending) of the covariance of temporally concatenated runs.

    Each run ``(T_i, V)`` has its temporal mean removed (one dimension each), so the
    spectrum has ``sum(T_i) - n_runs`` entries at most. Computed through the smaller of
    the time x time and voxel x voxel products. Used for model-order selection on a
    subset of runs, where MIGP's repeatedly truncated spectrum has no flat noise floor.
    """
    data = np.vstack([np.asarray(x, dtype=np.float64) for x in runs])
    n_runs = 0
    for _ in runs:
        n_runs += 1
    product = data @ data.T if data.shape[0] <= data.shape[1] else data.T @ data
    values = np.sort(np.linalg.eigvalsh(product))[::-1] / data.shape[1]
    rank = min(data.shape[0] - n_runs, data.shape[1])
    return values[:rank]
