"""The netmats stage: node time series -> per-run netmats, subject-session edge table, Ward order."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from icanets._defaults import MIN_TIMEPOINTS
from icanets.io.atomic import atomic_folder
from icanets.io.fsl import read_fix_labels
from icanets.io.timeseries import load_timeseries
from icanets.netmats import (
    NetmatsError,
    average_runs,
    compute_netmats,
    group_mean,
    one_sample_z,
    prepare_timeseries,
    ward_clustering,
)
from icanets.pipeline._common import provenance

__all__ = ["NetmatsSettings", "netmats_stage"]


@dataclass(frozen=True)
class NetmatsSettings:
    """Settings of the netmats stage.

    Attributes
    ----------
    partial : str
        Estimator of the analysed netmats (default ``ridgep``).
    rho : float
        ``ridgep`` regularisation (default 0.1).
    alpha : float
        ``glasso`` regularisation.
    full : str
        Estimator whose group z drives the Ward node ordering (default ``corr``).
    varnorm : int
        0, 1 or 2 (FSLNets).
    aggressive : bool
        Regress bad nodes out of good ones (default: just drop them).
    rtoz : str or None
        ``fslnets``, ``fisher``, ``none``; None: FSLNets' z for correlations.
    seed : int
        Seed of the r-to-z null.
    null_runs : int or None
        Null runs of FSLNets' r-to-z scale (None: one per run, as FSLNets).
    fslnets_compat : bool
        Group one-sample z with ``ddof = 0`` as the Python FSLNets port.
    n_clusters : int or None
        Ward clusters (default from the node count).
    min_timepoints : int
        Fewest time points a run may have (default 20).
    """

    partial: str = "ridgep"
    rho: float = 0.1
    alpha: float = 0.01
    full: str = "corr"
    varnorm: int = 0
    aggressive: bool = False
    rtoz: str | None = None
    seed: int = 0
    null_runs: int | None = None
    fslnets_compat: bool = False
    n_clusters: int | None = None
    min_timepoints: int = MIN_TIMEPOINTS

    def __post_init__(self):
        from icanets.netmats import NetmatsError

        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)

        if not number(self.rho) or self.rho < 0:
            raise NetmatsError(f"[netmats] rho must be a number >= 0 (ridgep regularisation), got {self.rho!r}")
        if not number(self.alpha) or self.alpha <= 0:
            raise NetmatsError(f"[netmats] alpha must be a number > 0 (glasso regularisation), got {self.alpha!r}")
        if self.varnorm not in (0, 1, 2):
            raise NetmatsError(f"[netmats] varnorm must be 0, 1 or 2, got {self.varnorm!r}")
        if self.null_runs is not None and self.null_runs < 1:
            raise NetmatsError(f"[netmats] null_runs must be at least 1, got {self.null_runs!r}")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise NetmatsError(f"[netmats] n_clusters must be at least 1, got {self.n_clusters!r}")
        if self.min_timepoints < 3:
            raise NetmatsError(f"[netmats] min_timepoints must be at least 3, got {self.min_timepoints!r}")


def netmats_stage(inputs: Sequence[Path], out: Path, settings: NetmatsSettings = NetmatsSettings(), *,
                  good_nodes: Sequence[int] | None = None, labels_file: Path | None = None,
                  subjects: Path | None = None, overwrite: bool = False,
                  log: Callable[[str], None] | None = None) -> Path:
    """Netmats from node time-series files, written to ``out``.

    Parameters
    ----------
    inputs : sequence of Path
        One time-series file per run (see :func:`icanets.io.timeseries.load_timeseries`).
    out : Path
        Output folder, written atomically.
    settings : NetmatsSettings
    good_nodes : sequence of int, optional
        0-based indices of the nodes to keep. Exclusive with ``labels_file``.
    labels_file : Path, optional
        FIX-style labels file: its listed (noise) components are the bad nodes.
    subjects : Path, optional
        Table mapping ``dr_stage1_subject#####`` numbers to participants/sessions/runs.

    Outputs
    -------
    ``runs.tsv``; ``nodes.tsv`` (kept nodes: index, original component number);
    ``netmats_runs_<method>.npy`` (R, N, N) per method; ``edges_<method>.npy`` with
    ``_rows.tsv``, ``_edges.tsv``, ``.json`` (subject-sessions x edges, runs averaged);
    ``group_<method>_mean.npy`` and ``group_<method>_z.npy``; ``ward.tsv`` (node order and
    clusters) and ``ward_linkage.npy``; ``netmats.json`` (provenance).
    """
    say = log or (lambda message: None)
    inputs = [Path(p) for p in inputs]
    runs = load_timeseries(inputs, subjects=subjects)
    n_all = runs[0].n_nodes
    if good_nodes is not None and labels_file is not None:
        raise NetmatsError("give either good nodes or a labels file, not both")
    if labels_file is not None:
        bad = set(read_fix_labels(labels_file, n_all).tolist())
        good = np.array([i for i in range(n_all) if i not in bad], dtype=int)
    elif good_nodes is not None:
        good = np.asarray(good_nodes, dtype=int)
        if good.size and (good.min() < 0 or good.max() >= n_all):
            raise NetmatsError(f"good nodes must lie in 1..{n_all} (component numbers), got "
                               f"{(good[(good < 0) | (good >= n_all)] + 1).tolist()}")
    else:
        good = np.arange(n_all)
    say(f"{len(runs)} runs, {n_all} nodes, {good.size} kept")
    prepared = prepare_timeseries(runs, varnorm=settings.varnorm, good=good, aggressive=settings.aggressive,
                                  min_timepoints=settings.min_timepoints)
    names = [f"IC{g + 1}" for g in good]

    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        results = {}
        for method in dict.fromkeys([settings.partial, settings.full]):
            rtoz = settings.rtoz
            netmats = compute_netmats(prepared, method, rho=settings.rho, alpha=settings.alpha, rtoz=rtoz,
                                      seed=settings.seed, null_runs=settings.null_runs)
            say(f"{method}: {netmats.matrices.shape[0]} runs" +
                (f", r-to-z scale {netmats.z_scale:.4f} (median AR(1) {netmats.ar1:.3f})" if netmats.z_scale else ""))
            np.save(tmp / f"netmats_runs_{method}.npy", netmats.matrices)
            table = average_runs(netmats, node_names=names)
            table.save(tmp, f"edges_{method}")
            matrices = table.matrices()
            np.save(tmp / f"group_{method}_mean.npy", group_mean(matrices))
            if len(matrices) >= 2:
                np.save(tmp / f"group_{method}_z.npy", one_sample_z(matrices, fslnets_compat=settings.fslnets_compat))
            results[method] = (netmats, table, matrices)
        netmats, _, _ = results[settings.partial]
        netmats.runs.to_csv(tmp / "runs.tsv", sep="\t", index=False)
        pd.DataFrame({"node": np.arange(good.size), "component": good + 1, "name": names}).to_csv(
            tmp / "nodes.tsv", sep="\t", index=False)
        full_matrices = results[settings.full][2]
        driver = one_sample_z(full_matrices, fslnets_compat=settings.fslnets_compat) if len(full_matrices) >= 2 \
            else full_matrices[0]
        ward = ward_clustering(driver, n_clusters=settings.n_clusters)
        position = np.empty_like(ward.order)
        position[ward.order] = np.arange(ward.order.size)
        pd.DataFrame({"node": np.arange(good.size), "name": names, "position": position, "cluster": ward.labels}).to_csv(
            tmp / "ward.tsv", sep="\t", index=False)
        np.save(tmp / "ward_linkage.npy", ward.linkage)
        sidecar = provenance("netmats", {**asdict(settings), "good_nodes": (good + 1).tolist(),
                                         "labels_file": str(labels_file) if labels_file else None,
                                         "z_scale": {m: r[0].z_scale for m, r in results.items()},
                                         "ar1": {m: r[0].ar1 for m, r in results.items()}},
                             [*inputs, *([labels_file] if labels_file else []), *([subjects] if subjects else [])],
                             settings.seed)
        (tmp / "netmats.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return Path(out)
