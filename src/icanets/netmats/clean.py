"""Preparing node time series: checks, demeaning, variance normalisation, bad-node removal."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from icanets._defaults import MIN_TIMEPOINTS
from icanets.errors import IcanetsError
from icanets.io.timeseries import RunTimeSeries

__all__ = ["check_timeseries", "prepare_timeseries", "variance_normalise", "clean_nodes", "NetmatsError"]


class NetmatsError(IcanetsError):
    """Node time series or settings that network matrices cannot be computed from."""




def check_timeseries(runs: Sequence[RunTimeSeries], *, node_names: Sequence[str] | None = None,
                     min_timepoints: int = MIN_TIMEPOINTS) -> None:
    """Raise :class:`NetmatsError` for runs that cannot be used.

    Checks: at least one run; 2D data; equal node counts; at least ``min_timepoints`` (default
    20, never fewer than 3) time points;
    finite values; no constant node time series; no node given twice (two time series
    correlated at +-1). Messages name the node and file.
    """
    if not runs:
        raise NetmatsError("no runs given")
    n_nodes = runs[0].n_nodes
    for run in runs:
        data = run.data
        if data.ndim != 2:
            raise NetmatsError(f"{run.source}: time series must be 2D (time points x nodes), got shape {data.shape}")
        if data.shape[1] != n_nodes:
            raise NetmatsError(
                f"node counts differ across runs: {run.source} has {data.shape[1]} nodes, {runs[0].source} has {n_nodes}")
        if data.shape[0] < max(3, min_timepoints):
            raise NetmatsError(f"{run.source} has {data.shape[0]} time points; at least {max(3, min_timepoints)} are "
                               f"needed (netmats min_timepoints): a netmat of so few is mostly noise and would change "
                               f"the r-to-z scale of every run")
        bad = ~np.isfinite(data)
        if bad.any():
            t, node = np.argwhere(bad)[0]
            raise NetmatsError(f"{run.source}: non-finite value ({data[t, node]}) in node {_node(node, node_names)} "
                               f"at time point {t} ({int(bad.sum())} in all)")
        spread = np.ptp(data, axis=0)
        constant = np.flatnonzero(spread <= 1e-12 * np.maximum(1.0, np.abs(data).max(axis=0)))
        if constant.size:
            names = ", ".join(_node(i, node_names) for i in constant[:5])
            raise NetmatsError(f"{run.source}: constant time series in node(s) {names}" +
                               (f" and {constant.size - 5} more" if constant.size > 5 else ""))
        duplicate = _duplicate_nodes(data)
        if duplicate is not None:
            i, j, r = duplicate
            raise NetmatsError(f"{run.source}: nodes {_node(i, node_names)} and {_node(j, node_names)} have "
                               f"{'identical' if r > 0 else 'sign-flipped'} time series (r = {r:.12g}); "
                               f"a node given twice makes their correlation +-1 and its z infinite; remove one")


def _duplicate_nodes(data: np.ndarray, tolerance: float = 1e-8) -> tuple[int, int, float] | None:
    """The first pair of nodes whose time series correlate at ``|r| >= 1 - tolerance``, if any."""
    x = data - data.mean(axis=0)
    x = x / np.linalg.norm(x, axis=0)
    r = x.T @ x
    np.fill_diagonal(r, 0.0)
    hits = np.argwhere(np.triu(np.abs(r) >= 1 - tolerance, k=1))
    if hits.size == 0:
        return None
    i, j = hits[0]
    return int(i), int(j), float(r[i, j])


def _node(index: int, names: Sequence[str] | None) -> str:
    return f"{index} ({names[index]})" if names is not None else str(index)


def variance_normalise(data: np.ndarray, mode: int) -> np.ndarray:
    """Demean a run, then normalise its variance as FSLNets ``varnorm``.

    Parameters
    ----------
    data : ndarray, shape (T, N)
    mode : {0, 1, 2}
        0: none; 1: divide the run by its overall standard deviation (one number per
        run); 2: divide each node's time series by its own standard deviation.

    Returns
    -------
    ndarray, shape (T, N)
        A new array (the input is not modified).
    """
    if mode not in (0, 1, 2):
        raise NetmatsError(f"varnorm must be 0 (none), 1 (per run) or 2 (per node), got {mode!r}")
    out = data - data.mean(axis=0)
    if mode == 1:
        out = out / out.std()
    elif mode == 2:
        out = out / out.std(axis=0)
    return out


def clean_nodes(data: np.ndarray, good: np.ndarray, *, aggressive: bool = False, unknown: np.ndarray | None = None) -> np.ndarray:
    """Keep the good nodes, optionally regressing the bad nodes' time series out of them.

    As FSLNets ``nets_tsclean``: with ``aggressive``, the good nodes' time series are
    replaced by their residuals after least-squares regression on all bad nodes
    (``good - bad @ pinv(bad) @ good``); otherwise ("soft") the bad nodes are just dropped.

    Parameters
    ----------
    data : ndarray, shape (T, N)
    good : ndarray of int
        0-based indices of the nodes to keep, in the order wanted.
    aggressive : bool, default False
    unknown : ndarray of int, optional
        Nodes that are dropped but not regressed out (neither good nor bad).

    Returns
    -------
    ndarray, shape (T, len(good))
    """
    good = np.asarray(good, dtype=int)
    n = data.shape[1]
    if good.size == 0:
        raise NetmatsError("no good nodes given")
    if good.min() < 0 or good.max() >= n:
        raise NetmatsError(f"good node indices must lie in 0..{n - 1}, got {good[(good < 0) | (good >= n)].tolist()}")
    if len(set(good.tolist())) != good.size:
        raise NetmatsError("a good node is listed twice")
    kept = data[:, good]
    if not aggressive:
        return kept.copy()
    excluded = set(good.tolist()) | set(np.asarray(unknown if unknown is not None else [], dtype=int).tolist())
    bad = np.array([i for i in range(n) if i not in excluded], dtype=int)
    if bad.size == 0:
        return kept.copy()
    regressors = data[:, bad]
    return kept - regressors @ (np.linalg.pinv(regressors) @ kept)


def prepare_timeseries(runs: Sequence[RunTimeSeries], *, varnorm: int = 0, good: Sequence[int] | None = None,
                       aggressive: bool = False, node_names: Sequence[str] | None = None,
                       min_timepoints: int = MIN_TIMEPOINTS) -> list[RunTimeSeries]:
    """Check, demean and variance-normalise every run, then keep the good nodes.

    Variance normalisation comes before cleaning, as in FSLNets (``nets_load`` then
    ``nets_tsclean``). Returns new runs; the inputs are not modified.
    """
    check_timeseries(runs, node_names=node_names, min_timepoints=min_timepoints)
    out = []
    for run in runs:
        data = variance_normalise(run.data, varnorm)
        if good is not None:
            data = clean_nodes(data, np.asarray(good), aggressive=aggressive)
        out.append(run.with_data(data))
    return out
