"""r-to-z: Fisher's transform, and FSLNets' scaling of it by an AR(1) null."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import signal

from icanets.netmats.clean import NetmatsError
from icanets.netmats.estimators import correlation, partial_correlation, ridgep

__all__ = ["fisher_z", "median_ar1", "ar1_null", "fslnets_z_scale"]


def fisher_z(r: np.ndarray) -> np.ndarray:
    """Fisher's r-to-z, ``z = arctanh(r) = 0.5 log((1 + r) / (1 - r))``.

    Values of exactly +-1 give +-inf (e.g. perfectly collinear nodes); a diagonal of 0
    stays 0.
    """
    r = np.asarray(r, dtype=np.float64)
    if np.any(np.abs(r) > 1 + 1e-12):
        raise NetmatsError(f"correlations must lie in [-1, 1], got values up to {np.abs(r).max():.6g}")
    with np.errstate(divide="ignore"):
        return np.arctanh(np.clip(r, -1.0, 1.0))


def median_ar1(runs: Sequence[np.ndarray]) -> float:
    """Median over runs and nodes of the lag-1 autocorrelation ``sum x_t x_{t+1} / sum x_t^2``.

    Each node's time series is demeaned first. This is FSLNets' ("quick") estimate.
    """
    values = []
    for ts in runs:
        x = np.asarray(ts, dtype=np.float64)
        x = x - x.mean(axis=0)
        values.append(np.sum(x[:-1] * x[1:], axis=0) / np.sum(x * x, axis=0))
    return float(np.median(np.concatenate(values)))


def ar1_null(n_timepoints: int, n_nodes: int, ar1: float, rng: np.random.Generator) -> np.ndarray:
    """Independent AR(1) processes ``x_0 = e_0, x_t = a x_{t-1} + e_t``, ``e ~ N(0, 1)``; shape ``(T, N)``."""
    noise = rng.standard_normal((n_timepoints, n_nodes))
    return signal.lfilter([1.0], [1.0, -ar1], noise, axis=0)


def fslnets_z_scale(shapes: Sequence[tuple[int, int]], ar1: float, kind: str, *, seed: int = 0) -> float:
    """FSLNets' r-to-z scale: ``1 / SD`` of Fisher z over a null of independent AR(1) nodes.

    One null run is drawn per real run, of the same length and node count, with the
    data's median lag-1 autocorrelation, and passed through full correlation
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
        Null run ``k`` draws from ``SeedSequence(seed).spawn(len(shapes))[k]``, so the
        scale does not depend on how runs are batched.

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
    children = np.random.SeedSequence(seed).spawn(len(shapes))
    sums = np.zeros(2)
    count = 0
    for (t, n), child in zip(shapes, children):
        null = ar1_null(t, n, ar1, np.random.default_rng(child))
        if kind == "full":
            r = correlation(null)
        elif t - 1 >= n:
            r = partial_correlation(null)
        else:
            r = ridgep(null, 0.1)
        off = ~np.eye(n, dtype=bool)
        z = np.arctanh(r[off])
        sums += (z.sum(), (z * z).sum())
        count += z.size
    mean = sums[0] / count
    sd = np.sqrt(max(sums[1] / count - mean * mean, 0.0))
    if sd == 0:
        raise NetmatsError("the AR(1) null has zero spread; cannot scale r-to-z")
    return float(1.0 / sd)

