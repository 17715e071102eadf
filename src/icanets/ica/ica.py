"""Spatial ICA of the group principal subspace, with MELODIC's conventions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from icanets.errors import IcanetsWarning
from icanets.ica.data import ICAError
from icanets.ica.pca import GroupPCA

__all__ = ["GroupICA", "spatial_ica", "ConvergenceWarning"]


class ConvergenceWarning(IcanetsWarning):
    """FastICA stopped at its iteration limit before converging."""


@dataclass(frozen=True)
class GroupICA:
    """Group spatial ICA.

    Attributes
    ----------
    maps : ndarray, shape (K, V)
        Independent component maps, z-scored over voxels, signs flipped so the heavier
        tail is positive, sorted by explained variance (strongest first).
    raw_maps : ndarray, shape (K, V)
        The same before z-scoring (unit variance sources, signs and order as ``maps``).
    mixing : ndarray, shape (K, K)
        ``PCA rows = mixing @ raw_maps`` (in the scaled principal subspace).
    explained_variance : ndarray, shape (K,)
        Fraction of the variance of the principal subspace each component explains.
    stability : ndarray, shape (K,) or None
        ICASSO-like stability index (1 = found identically in every repeat).
    seed : int
    """

    maps: np.ndarray
    raw_maps: np.ndarray
    mixing: np.ndarray
    explained_variance: np.ndarray
    stability: np.ndarray | None
    seed: int


def _fastica(x: np.ndarray, k: int, seed: int, max_iter: int, tol: float,
             with_unmixing: bool = False) -> tuple[np.ndarray, bool] | tuple[np.ndarray, bool, np.ndarray]:
    """Sources (V x k) of whitened data ``x`` (V x k) by FastICA (logcosh), and whether it converged
    (and, ``with_unmixing``, the unmixing matrix ``W``, k x k: ``sources = x @ W.T``).

    A start from which FastICA diverges (non-finite estimates, a singular unmixing matrix)
    is retried from the next seeds, deterministically.
    """
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    problem = None
    for attempt in range(5):
        model = FastICA(n_components=k, whiten=False, fun="logcosh", max_iter=max_iter, tol=tol,
                        random_state=seed + 100_003 * attempt)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SklearnConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                sources = model.fit_transform(x)
            except (np.linalg.LinAlgError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
        if not np.all(np.isfinite(sources)) or np.any(sources.std(axis=0) == 0):
            problem = "non-finite or constant estimates"
            continue
        converged = not any(issubclass(w.category, SklearnConvergenceWarning) for w in caught)
        return (sources, converged, model.components_) if with_unmixing else (sources, converged)
    raise ICAError(f"FastICA failed from seed {seed} and 4 further starts ({problem}); the {k} components asked "
                   f"for may exceed what the data support: lower the dimension")


def signed_zmaps(maps: np.ndarray) -> np.ndarray:
    """Rows z-scored over voxels, each sign flipped so its heavier tail is positive."""
    z = (maps - maps.mean(axis=1, keepdims=True)) / np.maximum(maps.std(axis=1, keepdims=True), 1e-300)
    return z * np.where(stats.skew(z, axis=1) < 0, -1.0, 1.0)[:, None]


def spatial_ica(pca: GroupPCA, n_components: int, *, seed: int = 0, n_repeats: int = 1, max_iter: int = 1000,
                tol: float = 1e-4) -> GroupICA:
    """Spatial ICA of the top ``n_components`` group principal components.

    Parameters
    ----------
    pca : GroupPCA
    n_components : int
        ICA dimensionality (at most the PCA components available).
    seed : int, default 0
    n_repeats : int, default 1
        With more than one, FastICA runs from ``n_repeats`` seeds; the estimates are
        clustered by absolute spatial correlation (average linkage) into ``n_components``
        clusters, each represented by its centrotype, with the stability index
        ``I_q = mean |r| within - mean |r| to other clusters`` (Himberg et al. 2004).
    """
    k = int(n_components)
    if not 1 <= k <= pca.components.shape[0]:
        raise ICAError(f"n_components must lie in 1..{pca.components.shape[0]} (the PCA components kept), got {k}")
    basis = pca.components[:k]  # (k, V), orthonormal rows
    v = basis.shape[1]
    whitened = basis.T * np.sqrt(v)  # voxels as samples, unit variance per column
    seeds = [seed + r for r in range(n_repeats)]
    unmixing, failed, sources = [], [], None
    for s in seeds:
        # Each start keeps its unmixing matrix only (k x k), not its maps (k x V): every start's
        # maps are x @ W.T, so ICASSO's similarities and centrotypes need no more.
        sources, ok, w = _fastica(whitened, k, s, max_iter, tol, with_unmixing=True)
        unmixing.append(w)
        if not ok:
            failed.append(s)
        if n_repeats > 1:
            sources = None
    if failed:
        warnings.warn(f"FastICA did not converge in {max_iter} iterations from {len(failed)} of {n_repeats} start(s) "
                      f"(seed {failed[0]}{' and others' if len(failed) > 1 else ''}); results may be unstable",
                      ConvergenceWarning, stacklevel=2)
    stability = None
    if n_repeats > 1:
        chosen, stability = _icasso(np.vstack(unmixing), whitened, k)
        sources = (whitened @ chosen.T).T
    else:
        sources = sources.T
    sources = signed_zmaps(sources)
    scaled = basis * np.sqrt(pca.eigenvalues[:k])[:, None]  # PCA rows with their variance
    mixing, *_ = np.linalg.lstsq(sources.T, scaled.T, rcond=None)
    mixing = mixing.T  # (k, k): scaled ~= mixing @ sources
    contribution = np.sum(mixing**2, axis=0) * np.sum(sources**2, axis=1)
    order = np.argsort(contribution)[::-1]
    sources, mixing = sources[order], mixing[:, order]
    explained = contribution[order] / np.sum(scaled**2)
    stability = stability[order] if stability is not None else None
    maps = (sources - sources.mean(axis=1, keepdims=True)) / sources.std(axis=1, keepdims=True)
    return GroupICA(maps=maps, raw_maps=sources, mixing=mixing, explained_variance=explained, stability=stability,
                    seed=seed)


def _icasso(unmixing: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """ICASSO's clusters of the estimates of all starts (rows of ``unmixing``, each giving the map
    ``x @ w``): each cluster's centrotype (its row of ``unmixing``) and stability index.

    The estimates' spatial correlations are those of the maps, computed through the ``k x k``
    covariance of the columns of ``x`` instead of from the maps themselves.
    """
    mean = x.mean(axis=0)
    covariance = x.T @ x / x.shape[0] - np.outer(mean, mean)
    product = unmixing @ covariance @ unmixing.T
    scale = np.sqrt(np.maximum(np.diag(product), 1e-300))
    similarity = np.abs(product / np.outer(scale, scale))
    np.fill_diagonal(similarity, 1.0)
    distance = 1.0 - similarity
    np.fill_diagonal(distance, 0.0)
    link = hierarchy.linkage(squareform(np.clip(distance, 0, None), checks=False), method="average")
    labels = hierarchy.fcluster(link, k, criterion="maxclust")
    centrotypes, index = [], []
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        others = np.flatnonzero(labels != cluster)
        within = similarity[np.ix_(members, members)]
        centrotypes.append(unmixing[members[np.argmax(within.sum(axis=1))]])
        intra = within[~np.eye(members.size, dtype=bool)].mean() if members.size > 1 else 1.0
        extra = similarity[np.ix_(members, others)].mean() if others.size else 0.0
        index.append(intra - extra)
    return np.array(centrotypes), np.array(index)
