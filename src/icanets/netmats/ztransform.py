"""r-to-z: Fisher's transform, and FSLNets' scaling of it by an AR(1) null."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import signal

from icanets.netmats.clean import NetmatsError
from icanets.netmats.estimators import correlation, partial_correlation, ridgep
from icanets.parallel import map_items

__all__ = ["fisher_z", "median_ar1", "ar1_null", "fslnets_z_scale", "null_run_shapes"]


def fisher_z(r: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Fisher's r-to-z, ``z = arctanh(r) = 0.5 log((1 + r) / (1 - r))``.

    Values of exactly +-1 give +-inf (e.g. perfectly collinear nodes); a diagonal of 0
    stays 0. ``out`` may be ``r`` itself, to transform in place.
    """
    r = np.asarray(r, dtype=np.float64)
    largest = np.abs(r).max() if r.size else 0.0
    if largest > 1 + 1e-12:
        raise NetmatsError(f"correlations must lie in [-1, 1], got values up to {largest:.6g}")
    if largest > 1:
        r = np.clip(r, -1.0, 1.0, out=out)
    with np.errstate(divide="ignore"):
        return np.arctanh(r, out=out)


def median_ar1(runs: Sequence[np.ndarray]) -> float:
    """Median over runs and nodes of the lag-1 autocorrelation ``sum x_t x_{t+1} / sum x_t^2``.

    Each node's time series is demeaned first. This is FSLNets' ("quick") estimate.
    """
    def lag1(ts: np.ndarray) -> np.ndarray:
        x = np.asarray(ts, dtype=np.float64)
        x = x - x.mean(axis=0)
        return np.einsum("ti,ti->i", x[:-1], x[1:]) / np.einsum("ti,ti->i", x, x)

    return float(np.median(np.concatenate(map_items(lag1, runs))))


def ar1_null(n_timepoints: int, n_nodes: int, ar1: float, rng: np.random.Generator) -> np.ndarray:
    """Independent AR(1) processes ``x_0 = e_0, x_t = a x_{t-1} + e_t``, ``e ~ N(0, 1)``; shape ``(T, N)``."""
    noise = rng.standard_normal((n_timepoints, n_nodes))
    return signal.lfilter([1.0], [1.0, -ar1], noise, axis=0)


def null_run_shapes(shapes: Sequence[tuple[int, int]], null_runs: int | None) -> list[tuple[int, int]]:
    """The shapes of the null runs: all runs' (default), or one per stratum of ``null_runs``
    equal-sized strata of the runs sorted by shape (each stratum's middle run).

    Stratifying keeps the mixture of run lengths: the null SD of partial correlations is far
    from linear in ``T - N``, so runs picked at the ends of the sorted lengths bias the scale.

    Examples
    --------
    >>> null_run_shapes([(100, 5), (200, 5), (150, 5), (120, 5)], 2)
    [(120, 5), (200, 5)]
    """
    shapes = [tuple(s) for s in shapes]
    if null_runs is None or null_runs >= len(shapes):
        return shapes
    if null_runs < 1:
        raise NetmatsError(f"null_runs must be at least 1, got {null_runs}")
    order = sorted(range(len(shapes)), key=lambda k: shapes[k])
    edges = np.linspace(0, len(shapes), null_runs + 1)
    picks = np.minimum(np.floor((edges[:-1] + edges[1:]) / 2).astype(int), len(shapes) - 1)
    return [shapes[order[k]] for k in picks]


def fslnets_z_scale(shapes: Sequence[tuple[int, int]], ar1: float, kind: str, *, seed: int = 0,
                    null_runs: int | None = None, n_jobs: int | None = None) -> float:
    """FSLNets' r-to-z scale: ``1 / SD`` of Fisher z over a null of independent AR(1) nodes.

    Null runs are drawn like the real runs (one per run as FSLNets does, or
    ``null_runs`` of them, evenly spread over the runs sorted by shape), of the same
    length and node count, with the data's median lag-1 autocorrelation, and passed through full correlation
    (``kind="full"``) or unregularised partial correlation (``kind="partial"``; for a
    run with no more time points than nodes, where that is undefined, ``ridgep`` with
    ``rho = 0.1`` is used instead).
    The SD is over all off-diagonal elements of all null runs (``ddof = 0``).

    Parameters
    ----------
    shapes : sequence of (T, N)
        The real runs' shapes.
    ar1 : float
        See :func:`median_ar1`.
    kind : {"full", "partial"}
    seed : int, default 0
        Null run ``k`` draws from ``SeedSequence(seed).spawn(n_null)[k]``, so the scale
        does not depend on how runs are batched.
    n_jobs : int, optional
        Worker threads; the result does not depend on it.
    null_runs : int, optional
        How many null runs; default one per real run (FSLNets). Fewer are drawn like
        the middle run of equal strata of the runs sorted by length (see
        :func:`null_run_shapes`), which keeps the mixture of lengths.

    Returns
    -------
    float
        Multiply Fisher z by this to get FSLNets' z.

    Notes
    -----
    FSLNets (``nets_netmats`` with ``do_rtoz``) uses this to make netmat values
    approximately unit-variance z statistics under the null, whatever the number of time
    points and autocorrelation.
    """
    if kind not in ("full", "partial"):
        raise NetmatsError(f"kind must be 'full' or 'partial', got {kind!r}")
    if not -1 < ar1 < 1:
        raise NetmatsError(f"the median lag-1 autocorrelation must lie in (-1, 1), got {ar1}")
    shapes = null_run_shapes(shapes, null_runs)
    children = np.random.SeedSequence(seed).spawn(len(shapes))

    def moments(k: int) -> tuple[float, float, int]:
        t, n = shapes[k]
        null = ar1_null(t, n, ar1, np.random.default_rng(children[k]))
        if kind == "full":
            r = correlation(null)
        elif t - 1 >= n:
            r = partial_correlation(null)
        else:
            r = ridgep(null, 0.1)
        z = np.arctanh(r[~np.eye(n, dtype=bool)])
        return float(z.sum()), float((z * z).sum()), z.size

    parts = map_items(moments, range(len(shapes)), n_jobs=n_jobs)
    sums = np.array([[a, b] for a, b, _ in parts]).sum(axis=0)
    count = sum(c for _, _, c in parts)
    mean = sums[0] / count
    sd = np.sqrt(max(sums[1] / count - mean * mean, 0.0))
    if sd == 0:
        raise NetmatsError("the AR(1) null has zero spread; cannot scale r-to-z")
    return float(1.0 / sd)

