"""Netmats of many runs: batching, r-to-z, and averaging over a subject-session's runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from icanets.io.timeseries import RunTimeSeries
from icanets.parallel import map_items
from icanets.netmats.clean import NetmatsError
from icanets.netmats.edges import EdgeTable, edge_index, matrix_to_edges
from icanets.netmats.estimators import get_estimator, tangent
from icanets.netmats.ztransform import fisher_z, fslnets_z_scale, median_ar1, null_run_shapes

__all__ = ["RunNetmats", "compute_netmats", "average_runs"]

_RTOZ = ("fslnets", "fisher", "none")


@dataclass(frozen=True)
class RunNetmats:
    """Network matrices of every run.

    Attributes
    ----------
    matrices : ndarray, shape (R, N, N)
        (``(R, N)`` for ``amp``.)
    runs : DataFrame
        Per run: ``participant_id``, ``session_id``, ``run``, ``source``, ``n_timepoints``.
    method : str
    params : dict
        Estimator parameters (``rho``, ``alpha``, ...).
    rtoz : str
        ``"fslnets"``, ``"fisher"`` or ``"none"``.
    z_scale : float or None
        FSLNets' scale applied after Fisher z (``rtoz == "fslnets"``).
    ar1 : float or None
        Median lag-1 autocorrelation used for the null.
    seed : int
    null_runs : int or None
        How many null runs the r-to-z scale used (None: no FSLNets scaling).
    """

    matrices: np.ndarray
    runs: pd.DataFrame
    method: str
    params: dict = field(default_factory=dict)
    rtoz: str = "none"
    z_scale: float | None = None
    ar1: float | None = None
    seed: int = 0
    null_runs: int | None = None

    def settings(self) -> dict:
        return {"method": self.method, **self.params, "rtoz": self.rtoz, "z_scale": self.z_scale,
                "ar1": self.ar1, "seed": self.seed,
                "null_runs": self.null_runs}


def compute_netmats(runs: Sequence[RunTimeSeries], method: str = "ridgep", *, rho: float = 0.1, alpha: float = 0.01,
                    rtoz: str | None = None, seed: int = 0, null_runs: int | None = None,
                    n_jobs: int | None = None) -> RunNetmats:
    """Estimate one network matrix per run, then convert r to z.

    Parameters
    ----------
    runs : sequence of RunTimeSeries
        Prepared time series (see :func:`~icanets.netmats.clean.prepare_timeseries`).
    method : str, default "ridgep"
        ``cov``, ``amp``, ``corr``, ``rcorr``, ``partial``, ``ridgep``, ``glasso``,
        ``lw_partial`` or ``tangent`` (see :mod:`icanets.netmats.estimators`).
    rho : float, default 0.1
        ``ridgep`` regularisation.
    alpha : float, default 0.01
        ``glasso`` regularisation.
    rtoz : {"fslnets", "fisher", "none"}, optional
        Default: ``"fslnets"`` for correlation-type methods, ``"none"`` for ``cov``,
        ``amp`` and ``tangent`` (which are not correlations).
    seed : int, default 0
        Seed of FSLNets' AR(1) null.
    null_runs : int or None, default None
        Null runs for FSLNets' scale (None: one per run, as FSLNets; fewer, stratified by
        run length, are faster; see
        :func:`~icanets.netmats.ztransform.fslnets_z_scale`).
    n_jobs : int, optional
        Worker threads (default: all CPUs); results do not depend on it.

    Returns
    -------
    RunNetmats
    """
    if not runs:
        raise NetmatsError("no runs given")
    n_nodes = runs[0].n_nodes
    if any(r.n_nodes != n_nodes for r in runs):
        raise NetmatsError("node counts differ across runs")
    if method == "tangent":
        kind, params = "none", {}
    else:
        estimator = get_estimator(method)
        kind = estimator.kind
        params = {"rho": rho} if method == "ridgep" else {"alpha": alpha} if method == "glasso" else {}
    if rtoz is None:
        rtoz = "none" if kind == "none" else "fslnets"
    if rtoz not in _RTOZ:
        raise NetmatsError(f"rtoz must be one of {', '.join(_RTOZ)}, got {rtoz!r}")
    if kind == "none" and rtoz != "none":
        raise NetmatsError(f"method {method!r} does not give correlations; r-to-z ({rtoz!r}) does not apply")

    if method == "tangent":
        matrices, _ = tangent([r.data for r in runs])
    else:
        function = estimator.function

        def one(data: np.ndarray) -> np.ndarray:
            return function(data, **params)

        matrices = np.stack(map_items(one, [r.data for r in runs], n_jobs=n_jobs))

    z_scale = ar1 = n_null = None
    if rtoz != "none":
        matrices = fisher_z(matrices, out=matrices)
        if rtoz == "fslnets":
            ar1 = median_ar1([r.data for r in runs])
            shapes = [r.data.shape for r in runs]
            n_null = len(null_run_shapes(shapes, null_runs))
            z_scale = fslnets_z_scale(shapes, ar1, kind, seed=seed, null_runs=null_runs, n_jobs=n_jobs)
            matrices *= z_scale
    table = pd.DataFrame({
        "participant_id": [r.subject for r in runs],
        "session_id": [r.session or "" for r in runs],
        "run": [r.run or "" for r in runs],
        "source": [r.source for r in runs],
        "n_timepoints": [r.n_timepoints for r in runs],
    })
    return RunNetmats(matrices=matrices, runs=table, method=method, params=params, rtoz=rtoz, z_scale=z_scale,
                      ar1=ar1, seed=seed, null_runs=n_null)


def average_runs(netmats: RunNetmats, *, node_names: Sequence[str] | None = None) -> EdgeTable:
    """Average each subject-session's runs and unwrap the upper triangles into an edge table.

    Rows keep the order in which subject-sessions first appear in ``netmats.runs``.
    """
    if netmats.matrices.ndim != 3:
        raise NetmatsError(f"method {netmats.method!r} does not give node x node matrices")
    keys = list(zip(netmats.runs["participant_id"], netmats.runs["session_id"]))
    order: dict[tuple[str, str], list[int]] = {}
    for k, key in enumerate(keys):
        order.setdefault(key, []).append(k)
    values = np.stack([matrix_to_edges(netmats.matrices[idx].mean(axis=0)) for idx in order.values()])
    rows = pd.DataFrame({"participant_id": [k[0] for k in order], "session_id": [k[1] for k in order],
                         "n_runs": [len(idx) for idx in order.values()]})
    return EdgeTable(values=values, rows=rows, edges=edge_index(netmats.matrices.shape[-1], node_names),
                     metadata={**netmats.settings(), "averaged_over": "runs of each subject-session"})
