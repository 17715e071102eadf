"""Stages that read inputs, call the numerical kernels and write one output folder each.

Each stage writes into a temporary folder renamed into place when complete, with a JSON
sidecar holding its settings, software versions, input checksums and seed.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from icanets._version import __version__
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

if TYPE_CHECKING:
    from icanets.glm import Design, Exchangeability, GLMResult, NBSOptions
    from icanets.netmats import EdgeTable

__all__ = ["NetmatsSettings", "netmats_stage", "glm_stage", "provenance", "file_checksum"]


def file_checksum(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def provenance(stage: str, settings: dict, inputs: Sequence[Path], seed: int | None) -> dict:
    """The JSON sidecar content of a stage's output."""
    import nibabel
    import scipy
    import sklearn

    return {
        "stage": stage,
        "settings": settings,
        "seed": seed,
        "software": {"icanets": __version__, "python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "pandas": pd.__version__, "nibabel": nibabel.__version__,
                     "scikit-learn": sklearn.__version__},
        "inputs": {str(p): file_checksum(p) for p in inputs},
    }


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
    """

    partial: str = "ridgep"
    rho: float = 0.1
    alpha: float = 0.01
    full: str = "corr"
    varnorm: int = 0
    aggressive: bool = False
    rtoz: str | None = None
    seed: int = 0
    null_runs: int | None = 32
    fslnets_compat: bool = False
    n_clusters: int | None = None


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
    prepared = prepare_timeseries(runs, varnorm=settings.varnorm, good=good, aggressive=settings.aggressive)
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


def glm_stage(table: EdgeTable, design: Design, out: Path, *, n_perm: int = 5000,
              exchangeability: Exchangeability | None = None, method: str = "freedman-lane", tails: int = 2,
              seed: int = 0, nbs: NBSOptions | None = None, fwe_across_contrasts: bool = False,
              inputs: Sequence[Path] = (), overwrite: bool = False) -> GLMResult:
    """Run a permutation GLM on an edge table and write ``out``.

    ``design.rows`` must name the table's rows to use (``participant_id`` or
    ``participant_id session_id``), in the order of the design.

    Outputs
    -------
    ``results.tsv`` (one row per contrast and edge, with node names), ``null_max.npy``
    (contrasts x permutations), ``rows_used.tsv`` and ``glm.json`` (settings, N used,
    observations dropped, permutations, provenance).
    """
    from icanets.glm import DesignError, permutation_glm

    keys = _row_keys(table.rows)
    index = {key: i for i, key in enumerate(keys)}
    missing = [r for r in design.rows if r not in index]
    if missing:
        raise DesignError(f"design rows not in the edge table: {', '.join(missing[:5])}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    take = [index[r] for r in design.rows]
    result = permutation_glm(table.values[take], design, n_perm=n_perm, exchangeability=exchangeability,
                             method=method, tails=tails, seed=seed, nbs=nbs, fwe_across_contrasts=fwe_across_contrasts)
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        result.table(table.edges).to_csv(tmp / "results.tsv", sep="\t", index=False, float_format="%.8g")
        np.save(tmp / "null_max.npy", np.vstack([c.null_max for c in result.contrasts]))
        table.rows.iloc[take].to_csv(tmp / "rows_used.tsv", sep="\t", index=False)
        settings = {
            "n_perm_asked": n_perm, "n_perm": result.n_perm, "exhaustive": result.exhaustive,
            "n_distinct": str(result.n_distinct), "scheme": result.scheme, "method": method, "tails": tails,
            "n_used": result.n_used, "dropped": list(result.dropped), "design_columns": list(design.columns),
            "contrasts": {name: row.tolist() for name, row in zip(design.contrast_names, design.contrasts)},
            "ftests": {name: [design.contrast_names[i] for i in m] for name, m in zip(design.ftest_names, design.ftests)},
            "nbs": asdict(nbs) if nbs else None, "fwe_across_contrasts": fwe_across_contrasts,
            "edge_table": table.metadata,
        }
        (tmp / "glm.json").write_text(json.dumps(provenance("glm", settings, list(inputs), seed), indent=2) + "\n")
    return result


def _row_keys(rows: pd.DataFrame) -> list[str]:
    """``participant_id`` or ``participant_id session_id`` per edge-table row."""
    sessions = rows["session_id"].fillna("").astype(str) if "session_id" in rows.columns else None
    if sessions is None or (sessions == "").all():
        return rows["participant_id"].astype(str).tolist()
    return [f"{p} {s}".strip() for p, s in zip(rows["participant_id"].astype(str), sessions)]
