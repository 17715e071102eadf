"""Group summaries of netmats: one-sample t as z, mean, Ward ordering of nodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy

from icanets.netmats.clean import NetmatsError

__all__ = ["group_mean", "one_sample_z", "ward_clustering", "WardClustering"]


def group_mean(netmats: np.ndarray) -> np.ndarray:
    """Mean over subjects (axis 0) of netmats ``(S, N, N)`` or edge vectors ``(S, E)``."""
    netmats = np.asarray(netmats, dtype=np.float64)
    if netmats.shape[0] < 1:
        raise NetmatsError("no netmats to average")
    return netmats.mean(axis=0)


def one_sample_z(netmats: np.ndarray, *, fslnets_compat: bool = False) -> np.ndarray:
    """One-sample t-test of every element over subjects, converted to a z statistic.

    ``t = mean / (sd / sqrt(S))`` with ``S - 1`` degrees of freedom and ``sd`` the sample
    standard deviation (``ddof = 1``); ``z`` is the standard normal quantile with the
    same tail probability, ``z = sign(t) * Phi^-1(1 - F_t(|t|; S - 1))``. Where that
    underflows, ``z = t``. Elements with zero spread (e.g. a zero diagonal) give 0 if
    their mean is 0 and +-inf otherwise.

    Parameters
    ----------
    netmats : ndarray, shape (S, ...)
    fslnets_compat : bool, default False
        Use the population SD (``ddof = 0``) with ``S - 1`` degrees of freedom, as the
        Python FSLNets port's ``nets.groupmean`` does (its ``Znet`` outputs).

    Returns
    -------
    ndarray, shape netmats.shape[1:]
    """
    netmats = np.asarray(netmats, dtype=np.float64)
    n = netmats.shape[0]
    if n < 2:
        raise NetmatsError(f"a one-sample t-test needs at least 2 subjects, got {n}")
    mean = netmats.mean(axis=0)
    sd = netmats.std(axis=0, ddof=0 if fslnets_compat else 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sqrt(n) * mean / sd
    t = np.where(sd == 0, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)), t)
    z = np.sign(t) * stats.norm.isf(stats.t.sf(np.abs(t), n - 1))
    return np.where(np.isfinite(z), z, t)


@dataclass(frozen=True)
class WardClustering:
    """Ward hierarchical clustering of nodes.

    Attributes
    ----------
    order : ndarray of int, shape (N,)
        Node indices in dendrogram leaf order.
    linkage : ndarray, shape (N - 1, 4)
        SciPy linkage matrix (for ``scipy.cluster.hierarchy.dendrogram``).
    labels : ndarray of int, shape (N,)
        Cluster label (1..n_clusters) of every node, in the original node order.
    n_clusters : int
    """

    order: np.ndarray
    linkage: np.ndarray
    labels: np.ndarray
    n_clusters: int


def ward_clustering(netmat: np.ndarray, *, n_clusters: int | None = None) -> WardClustering:
    """Order nodes by Ward clustering of a group netmat, as FSLNets ``nets_hierarchy``.

    The netmat (typically the group full-correlation z) is scaled by the 99th percentile
    of its absolute off-diagonal values; negative values are set to 0; it is scaled again
    by the 99th percentile of all absolute values, clipped to [-1, 1] and turned into
    a dissimilarity ``d = 0.5 - x / 2``; then Ward linkage with optimal leaf ordering.

    Parameters
    ----------
    netmat : ndarray, shape (N, N)
    n_clusters : int, optional
        Clusters to cut the tree into; default ``max(2, round(sqrt(N / 2)))``.
    """
    netmat = np.asarray(netmat, dtype=np.float64)
    if netmat.ndim != 2 or netmat.shape[0] != netmat.shape[1]:
        raise NetmatsError(f"Ward clustering needs a square netmat, got shape {netmat.shape}")
    n = netmat.shape[0]
    if n < 3:
        raise NetmatsError(f"Ward clustering needs at least 3 nodes, got {n}")
    if not np.all(np.isfinite(netmat)):
        raise NetmatsError("the netmat to cluster has non-finite values")
    upper = np.triu_indices(n, 1)
    scale = np.percentile(np.abs(netmat[upper]), 99)
    x = netmat / scale if scale > 0 else netmat.copy()
    x[x < 0] = 0.0
    scale = np.percentile(np.abs(x), 99)
    x = np.clip(x / scale if scale > 0 else x, -1.0, 1.0)
    dissimilarity = 0.5 - x / 2.0
    link = hierarchy.linkage(dissimilarity[upper], method="ward", optimal_ordering=True)
    k = n_clusters if n_clusters is not None else max(2, int(round(np.sqrt(n / 2))))
    if not 1 <= k <= n:
        raise NetmatsError(f"n_clusters must lie in 1..{n}, got {k}")
    labels = hierarchy.fcluster(link, k, criterion="maxclust")
    return WardClustering(order=hierarchy.leaves_list(link), linkage=link, labels=labels, n_clusters=int(labels.max()))
