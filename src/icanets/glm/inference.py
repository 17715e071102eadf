"""Inference on many statistics: FWE from the maximum statistic, FDR, and the
Network-Based Statistic (components of supra-threshold edges)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from icanets.glm.design import DesignError

__all__ = ["fdr_bh", "fwe_from_max", "NBSOptions", "NBSComponent", "components", "max_component"]


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values: ``q_(i) = min_{j >= i} p_(j) m / j``, capped at 1.

    Examples
    --------
    >>> fdr_bh(np.array([0.01, 0.04, 0.03, 0.5]))
    array([0.04      , 0.05333333, 0.05333333, 0.5       ])
    """
    p = np.asarray(p, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def fwe_from_max(observed: np.ndarray, null_max: np.ndarray, *, tolerance: float = 1e-10) -> np.ndarray:
    """FWE-corrected p: the fraction of the maximum statistics at least as large as each observed one.

    ``null_max`` includes the unpermuted maximum (identity), so p >= 1 / n_perm.
    ``tolerance`` (relative) counts values equal up to rounding as ties.
    """
    sorted_max = np.sort(np.asarray(null_max, dtype=float))
    observed = np.asarray(observed, dtype=float)
    with np.errstate(invalid="ignore"):
        thresholds = np.where(np.isinf(observed), observed, observed - tolerance * np.maximum(1.0, np.abs(observed)))
    below = np.searchsorted(sorted_max, thresholds, side="left")
    # The identity's maximum is at least each observed statistic: never below 1 / n_perm.
    return np.maximum(sorted_max.size - below, 1) / sorted_max.size


@dataclass(frozen=True)
class NBSOptions:
    """Network-Based Statistic settings.

    Attributes
    ----------
    threshold : float
        Primary threshold on the edge statistic (on ``|t|`` for two-tailed tests).
    measure : {"extent", "intensity"}
        Component size as its number of edges, or the sum of ``stat - threshold`` over them.
    """

    threshold: float
    measure: str = "extent"

    def __post_init__(self):
        if self.measure not in ("extent", "intensity"):
            raise DesignError(f"NBS measure must be 'extent' or 'intensity', got {self.measure!r}")
        if not np.isfinite(self.threshold):
            raise DesignError(f"NBS threshold must be a number, got {self.threshold!r}")


@dataclass(frozen=True)
class NBSComponent:
    """A connected component of supra-threshold edges.

    Attributes
    ----------
    nodes : ndarray of int
    edges : ndarray of int
        Edge indices (upper triangle, row-major).
    size : float
        Extent (number of edges) or intensity.
    p_fwe : float
        Fraction of permutations whose largest component is at least as large.
    """

    nodes: np.ndarray
    edges: np.ndarray
    size: float
    p_fwe: float


def components(stat: np.ndarray, n_nodes: int, options: NBSOptions) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Components of the edges with ``stat > threshold``: (nodes, edges, size), largest first."""
    i, j = np.triu_indices(n_nodes, 1)
    supra = np.flatnonzero(stat > options.threshold)
    if supra.size == 0:
        return []
    graph = coo_matrix((np.ones(supra.size), (i[supra], j[supra])), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    edge_comp = labels[i[supra]]
    weights = np.ones(supra.size) if options.measure == "extent" else stat[supra] - options.threshold
    out = []
    for comp in np.unique(edge_comp):
        members = supra[edge_comp == comp]
        nodes = np.unique(np.concatenate([i[members], j[members]]))
        out.append((nodes, members, float(weights[edge_comp == comp].sum())))
    return sorted(out, key=lambda c: -c[2])


def max_component(stats: np.ndarray, n_nodes: int, options: NBSOptions) -> np.ndarray:
    """Largest component size of each row of ``stats`` (shape ``(B, E)``); 0 where none."""
    i, j = np.triu_indices(n_nodes, 1)
    out = np.zeros(stats.shape[0])
    for b, row in enumerate(stats):
        supra = np.flatnonzero(row > options.threshold)
        if supra.size == 0:
            continue
        graph = coo_matrix((np.ones(supra.size), (i[supra], j[supra])), shape=(n_nodes, n_nodes))
        _, labels = connected_components(graph, directed=False)
        weights = np.ones(supra.size) if options.measure == "extent" else row[supra] - options.threshold
        out[b] = np.bincount(labels[i[supra]], weights=weights).max()
    return out
