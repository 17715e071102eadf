"""QC-FC: across subjects, the partial correlation of every edge with mean framewise
displacement, given covariates (Power et al. 2012; Ciric et al. 2017's benchmark of denoising).

Reported: the fraction of edges with p < 0.05 uncorrected (about 5 % when FC does not follow
motion), the median absolute correlation, and, where node positions are known, the
distance dependence: the Spearman correlation across edges of QC-FC with the distance between
the two nodes (negative when motion inflates short-range connectivity most).

References
----------
Ciric R et al. (2017). Benchmarking of participant-level confound regression strategies for the
control of motion artifact in studies of functional connectivity. NeuroImage 154:174-187.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

__all__ = ["QCFCResult", "qc_fc"]


@dataclass(frozen=True)
class QCFCResult:
    """QC-FC of one edge table.

    Attributes
    ----------
    r, p : ndarray, shape (n_edges,)
        Partial correlation of each edge with mean FD, and its two-sided p.
    n : int
        Subjects.
    covariates : tuple of str
    fraction_significant : float
        Edges with p < 0.05.
    median_abs_r : float
    distance_rho, distance_p : float or None
        Spearman correlation of ``r`` with the node distance, and its p.
    """

    r: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)
    n: int
    covariates: tuple[str, ...]
    fraction_significant: float
    median_abs_r: float
    distance_rho: float | None = None
    distance_p: float | None = None

    def summary(self) -> dict:
        return {"n": self.n, "covariates": list(self.covariates),
                "fraction_p_below_0.05": self.fraction_significant, "median_abs_r": self.median_abs_r,
                "distance_rho": self.distance_rho, "distance_p": self.distance_p}


def qc_fc(edges: np.ndarray, mean_fd: np.ndarray, covariates: np.ndarray | None = None, *,
          names: tuple[str, ...] = (), distance: np.ndarray | None = None) -> QCFCResult:
    """QC-FC of ``edges`` (subjects x edges) against ``mean_fd`` (subjects), partialling the
    columns of ``covariates`` (subjects x c, numeric; an intercept is added).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fd = rng.gamma(2.0, 0.1, 200)
    >>> edges = rng.normal(size=(200, 50)) + 2.0 * fd[:, None]
    >>> result = qc_fc(edges, fd)
    >>> result.fraction_significant > 0.9, qc_fc(rng.normal(size=(200, 50)), fd).fraction_significant < 0.2
    (True, True)
    """
    edges = np.asarray(edges, dtype=float)
    fd = np.asarray(mean_fd, dtype=float)
    n = len(fd)
    if edges.ndim != 2 or edges.shape[0] != n:
        raise ValueError(f"edges must be (subjects, edges) with {n} subjects, got {edges.shape}")
    design = np.ones((n, 1)) if covariates is None else np.column_stack([np.ones(n), np.asarray(covariates, float)])
    rank = np.linalg.matrix_rank(design)
    df = n - rank - 1
    if df < 1:
        raise ValueError(f"QC-FC needs more subjects ({n}) than covariates plus two ({rank + 1})")
    beta_fd, *_ = np.linalg.lstsq(design, fd, rcond=None)
    fd_res = fd - design @ beta_fd
    beta, *_ = np.linalg.lstsq(design, edges, rcond=None)
    res = edges - design @ beta
    denom = np.linalg.norm(res, axis=0) * np.linalg.norm(fd_res)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, fd_res @ res / np.where(denom > 0, denom, 1.0), 0.0)
        t = r * np.sqrt(df / np.maximum(1.0 - r**2, 1e-300))
    p = 2.0 * stats.t.sf(np.abs(t), df)
    rho = rho_p = None
    if distance is not None:
        distance = np.asarray(distance, dtype=float)
        if distance.shape != r.shape:
            raise ValueError(f"distance must have one value per edge ({r.size}), got {distance.shape}")
        finite = np.isfinite(distance)
        if finite.sum() >= 3:
            result = stats.spearmanr(r[finite], distance[finite])
            rho, rho_p = float(result.statistic), float(result.pvalue)
    return QCFCResult(r=r, p=p, n=n, covariates=tuple(names), fraction_significant=float(np.mean(p < 0.05)),
                      median_abs_r=float(np.median(np.abs(r))), distance_rho=rho, distance_p=rho_p)
