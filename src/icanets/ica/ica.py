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

__all__ = ["GroupICA", "spatial_ica", "ConvergenceWarning", "APPROACHES", "NONLINEARITIES"]

#: FastICA's contrasts by MELODIC's names (scikit-learn's cube, logcosh and exp).
NONLINEARITIES = ("pow3", "tanh", "gauss")
#: How the unmixing vectors are estimated: one at a time (deflation) or all together (symmetric).
APPROACHES = ("deflation", "symmetric")
_SKLEARN_FUN = {"pow3": "cube", "tanh": "logcosh", "gauss": "exp"}


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


def _contrast(y: np.ndarray, nonlinearity: str) -> tuple[np.ndarray, np.ndarray]:
    """FastICA's ``g(y)`` and the column means of ``g'(y)`` (as scikit-learn's ``cube``,
    ``logcosh`` with alpha 1 and ``exp``)."""
    if nonlinearity == "pow3":
        return y**3, 3.0 * np.mean(y**2, axis=0)
    if nonlinearity == "tanh":
        g = np.tanh(y)
        return g, np.mean(1.0 - g**2, axis=0)
    e = np.exp(-0.5 * y**2)
    return y * e, np.mean((1.0 - y**2) * e, axis=0)


def _without(w: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each start's vector ``w`` (a, k) less its projection on the start's earlier, orthonormal
    vectors ``previous`` (a, p, k): one Gram-Schmidt step."""
    return w - np.einsum("apk,ap->ak", previous, np.einsum("apk,ak->ap", previous, w))


#: Consecutive vectors stopping at ``max_iter`` after which a deflation start stops iterating.
FAILURE_LIMIT = 3


def _deflation_starts(x: np.ndarray, k: int, seeds: list[int], nonlinearity: str, max_iter: int,
                      tol: float, failure_limit: int = FAILURE_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """Deflationary FastICA (Hyvarinen 1999) of whitened ``x`` (V x k) from every seed at once.

    Each start's unmixing vectors are found one at a time, each the fixed point of
    ``w <- E[x g(w'x)] - E[g'(w'x)] w``, Gram-Schmidt-orthogonalised against the start's
    earlier vectors and normalised, until ``| |w_new . w| - 1 | < tol`` (scikit-learn's
    ``algorithm="deflation"``, whose starting matrices, ``RandomState(seed).normal``, these
    are). The starts' ``p``-th vectors are iterated together, so each iteration is two
    products of the data with a ``k x starts`` matrix instead of a matrix-vector product per
    start; a start that has converged leaves the products.

    A start whose last ``failure_limit`` vectors all stopped at ``max_iter`` stops iterating,
    as the FastICA package's deflation gives up after repeated failures: what is left of its
    space is near-Gaussian, where no contrast converges, and each further vector would cost
    ``max_iter`` iterations (on a whitened subspace of 91,282 voxels x 200 with 150 Gaussian
    directions, about 57 s each, 2.4 h in all). Its remaining vectors are its starting vectors
    made orthonormal to the earlier ones (Gram-Schmidt), as arbitrary as unconverged iterates.

    Returns the unmixing matrices (starts x k x k, rows ``w``: sources ``x @ W.T``) and, per
    start, how many of its vectors stopped at ``max_iter`` or were not iterated.
    """
    v = x.shape[0]
    n = len(seeds)
    init = np.stack([np.random.RandomState(s).normal(size=(k, k)) for s in seeds])
    unmixing = np.zeros((n, k, k))
    unconverged = np.zeros(n, dtype=int)
    failures = np.zeros(n, dtype=int)  # consecutive vectors that stopped at max_iter
    for p in range(k):
        w = init[:, p, :] / np.linalg.norm(init[:, p, :], axis=1, keepdims=True)  # (n, k)
        previous = unmixing[:, :p, :]  # (n, p, k)
        stopped = np.flatnonzero(failures >= failure_limit)
        for _ in range(2):  # Gram-Schmidt, twice for orthogonality to rounding
            w[stopped] = _without(w[stopped], previous[stopped])
            w[stopped] /= np.linalg.norm(w[stopped], axis=1, keepdims=True)
        unconverged[stopped] += 1
        active = np.flatnonzero(failures < failure_limit)
        iterating = active.copy()
        for _ in range(max_iter if active.size else 0):
            wa = w[active]
            g, dg = _contrast(x @ wa.T, nonlinearity)  # (V, a)
            new = (x.T @ g).T / v - dg[:, None] * wa
            if p:
                new = _without(new, previous[active])
            new /= np.linalg.norm(new, axis=1, keepdims=True)
            done = np.abs(np.abs(np.sum(new * wa, axis=1)) - 1.0) < tol
            w[active] = new
            active = active[~done]
            if active.size == 0:
                break
        unconverged[active] += 1
        failures[iterating] += 1
        failures[np.setdiff1d(iterating, active)] = 0
        unmixing[:, p, :] = w
    return unmixing, unconverged


def _fastica(x: np.ndarray, k: int, seed: int, max_iter: int, tol: float,
             nonlinearity: str = "tanh") -> tuple[np.ndarray, bool]:
    """Symmetric FastICA (scikit-learn's ``algorithm="parallel"``) of whitened data ``x``
    (V x k): the unmixing matrix ``W`` (k x k, sources ``x @ W.T``) and whether it converged.

    A start from which FastICA diverges (non-finite estimates, a singular unmixing matrix)
    is retried from the next seeds, deterministically.
    """
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    problem = None
    for attempt in range(5):
        model = FastICA(n_components=k, whiten=False, fun=_SKLEARN_FUN[nonlinearity], max_iter=max_iter, tol=tol,
                        random_state=seed + _RETRY_STRIDE * attempt)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SklearnConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                sources = model.fit_transform(x)
            except (np.linalg.LinAlgError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
        if not _usable(sources):
            problem = "non-finite or constant estimates"
            continue
        converged = not any(issubclass(w.category, SklearnConvergenceWarning) for w in caught)
        return model.components_, converged
    raise _failed(seed, k, problem)


#: Seed offset of a diverged start's retries.
_RETRY_STRIDE = 100_003


def _usable(sources: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(sources)) and not np.any(sources.std(axis=0) == 0))


def _failed(seed: int, k: int, problem: str | None) -> ICAError:
    return ICAError(f"FastICA failed from seed {seed} and 4 further starts ({problem}); the {k} components asked "
                    f"for may exceed what the data support: lower the dimension")


def _deflation(x: np.ndarray, k: int, seeds: list[int], nonlinearity: str, max_iter: int,
               tol: float) -> tuple[list[np.ndarray], list[int]]:
    """Deflationary FastICA from every seed (:func:`_deflation_starts`): each start's unmixing
    matrix, and the seeds of the starts with a vector that stopped at ``max_iter``. A start
    that diverges is retried alone from the next seeds, deterministically."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        unmixing, unconverged = _deflation_starts(x, k, seeds, nonlinearity, max_iter, tol)
    result, slow = [], []
    for i, seed in enumerate(seeds):
        w, late = unmixing[i], unconverged[i]
        attempt = 0
        # x has orthonormal columns (times sqrt V), so a finite unit-norm w gives a source of
        # unit variance: finiteness is the whole check, without forming the start's maps.
        while not np.all(np.isfinite(w)):
            attempt += 1
            if attempt == 5:
                raise _failed(seed, k, "non-finite estimates")
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                retry, late_retry = _deflation_starts(x, k, [seed + _RETRY_STRIDE * attempt], nonlinearity,
                                                      max_iter, tol)
            w, late = retry[0], late_retry[0]
        result.append(w)
        if late:
            slow.append(seed)
    return result, slow


def signed_zmaps(maps: np.ndarray) -> np.ndarray:
    """Rows z-scored over voxels, each sign flipped so its heavier tail is positive."""
    z = (maps - maps.mean(axis=1, keepdims=True)) / np.maximum(maps.std(axis=1, keepdims=True), 1e-300)
    return z * np.where(stats.skew(z, axis=1) < 0, -1.0, 1.0)[:, None]


def spatial_ica(pca: GroupPCA, n_components: int, *, seed: int = 0, n_repeats: int = 1, max_iter: int = 1000,
                tol: float = 1e-4, approach: str = "symmetric", nonlinearity: str = "tanh") -> GroupICA:
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
    approach : {"deflation", "symmetric"}, default "symmetric"
        FastICA's unmixing vectors one at a time, each orthogonal to those found before
        (deflation: the most non-Gaussian directions first), or all at once with symmetric
        decorrelation (MELODIC's and scikit-learn's default).
    nonlinearity : {"pow3", "tanh", "gauss"}, default "tanh"
        FastICA's contrast (MELODIC's names; scikit-learn's ``cube``, ``logcosh``, ``exp``).
    """
    if approach not in APPROACHES:
        raise ICAError(f"approach must be one of {', '.join(APPROACHES)}, got {approach!r}")
    if nonlinearity not in NONLINEARITIES:
        raise ICAError(f"nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {nonlinearity!r}")
    k = int(n_components)
    if not 1 <= k <= pca.components.shape[0]:
        raise ICAError(f"n_components must lie in 1..{pca.components.shape[0]} (the PCA components kept), got {k}")
    basis = pca.components[:k]  # (k, V), orthonormal rows
    v = basis.shape[1]
    whitened = basis.T * np.sqrt(v)  # voxels as samples, unit variance per column
    seeds = [seed + r for r in range(n_repeats)]
    if approach == "deflation":
        unmixing, failed = _deflation(whitened, k, seeds, nonlinearity, max_iter, tol)
    else:
        # Each start keeps its unmixing matrix only (k x k), not its maps (k x V): every start's
        # maps are x @ W.T, so ICASSO's similarities and centrotypes need no more.
        unmixing, failed = [], []
        for s in seeds:
            w, ok = _fastica(whitened, k, s, max_iter, tol, nonlinearity)
            unmixing.append(w)
            if not ok:
                failed.append(s)
    if failed:
        warnings.warn(f"FastICA did not converge in {max_iter} iterations from {len(failed)} of {n_repeats} start(s) "
                      f"(seed {failed[0]}{' and others' if len(failed) > 1 else ''}); results may be unstable",
                      ConvergenceWarning, stacklevel=2)
    stability = None
    if n_repeats > 1:
        chosen, stability = _icasso(np.vstack(unmixing), whitened, k)
    else:
        chosen = unmixing[0]
    sources = (whitened @ chosen.T).T
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
