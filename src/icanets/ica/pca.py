"""Group PCA: MIGP (incremental, bounded memory) and exact temporal-concatenation PCA,
and model-order selection on the eigenspectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.special import gammaln

from icanets.ica.data import ICAError

__all__ = ["GroupPCA", "migp", "concat_pca", "concat_spectrum", "estimate_dimension", "laplace_evidence",
           "bic_evidence"]


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


def laplace_evidence(spectrum: np.ndarray, rank: int, n_samples: int) -> float:
    """Minka's Laplace approximation to the log evidence of a rank-``rank`` PPCA model.

    Parameters
    ----------
    spectrum : ndarray
        Eigenvalues of the sample covariance, descending (all ``d`` of them).
    rank : int
    n_samples : int

    References
    ----------
    Minka TP (2000). Automatic choice of dimensionality for PCA. NIPS 13.
    """
    d = spectrum.size
    if not 1 <= rank < d:
        raise ICAError(f"rank must lie in 1..{d - 1}, got {rank}")
    k = np.arange(1, rank + 1)
    pu = -rank * np.log(2.0) + np.sum(gammaln((d - k + 1) / 2.0) - np.log(np.pi) * (d - k + 1) / 2.0)
    pl = -np.sum(np.log(spectrum[:rank])) * n_samples / 2.0
    v = max(np.finfo(float).eps, np.sum(spectrum[rank:]) / (d - rank))
    pv = -np.log(v) * n_samples * (d - rank) / 2.0
    m = d * rank - rank * (rank + 1) / 2.0
    pp = np.log(2.0 * np.pi) * (m + rank) / 2.0
    hat = spectrum.copy()
    hat[rank:] = v
    i = np.arange(rank)[:, None]
    j = np.arange(d)[None, :]
    valid = j > i
    diff = (spectrum[:rank, None] - spectrum[None, :]) * (1.0 / hat[None, :] - 1.0 / hat[:rank, None])
    pa = np.sum(np.log(np.where(valid, np.abs(diff), 1.0)) + np.where(valid, np.log(n_samples), 0.0))
    return float(pu + pl + pv + pp - pa / 2.0 - rank * np.log(n_samples) / 2.0)


def bic_evidence(spectrum: np.ndarray, rank: int, n_samples: int) -> float:
    """Minka's BIC approximation to the log evidence of a rank-``rank`` PPCA model."""
    d = spectrum.size
    if not 1 <= rank < d:
        raise ICAError(f"rank must lie in 1..{d - 1}, got {rank}")
    v = max(np.finfo(float).eps, np.sum(spectrum[rank:]) / (d - rank))
    m = d * rank - rank * (rank + 1) / 2.0
    return float(-n_samples / 2.0 * np.sum(np.log(spectrum[:rank])) - n_samples * (d - rank) / 2.0 * np.log(v)
                 - (m + rank) / 2.0 * np.log(n_samples))


def estimate_dimension(spectrum: np.ndarray, n_samples: int, *, method: str = "laplace",
                       max_rank: int | None = None) -> tuple[int, np.ndarray]:
    """The rank that maximises the PPCA evidence, and the evidence of every rank tried.

    ``spectrum``: eigenvalues, descending; ``n_samples``: independent samples behind them.
    """
    spectrum = np.asarray(spectrum, dtype=float)
    if np.any(np.diff(spectrum) > 1e-12 * spectrum[0]):
        raise ICAError("the eigenvalue spectrum must be sorted in descending order")
    function = {"laplace": laplace_evidence, "bic": bic_evidence}.get(method)
    if function is None:
        raise ICAError(f"dimension estimation method must be 'laplace' or 'bic', got {method!r}")
    top = min(max_rank or spectrum.size - 1, spectrum.size - 1)
    evidence = np.array([function(spectrum, r, n_samples) for r in range(1, top + 1)])
    return int(np.argmax(evidence)) + 1, evidence
