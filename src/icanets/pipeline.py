"""Stages that read inputs, call the numerical kernels and write one output folder each.

Each stage writes into a temporary folder renamed into place when complete, with a JSON
sidecar holding its settings, software versions, input checksums and seed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from icanets._version import __version__
from icanets.errors import IcanetsError
from icanets.io.atomic import atomic_folder
from icanets.io.fsl import read_fix_labels
from icanets.io.timeseries import load_timeseries
from icanets.parallel import stream_items
from icanets.netmats import (
    EdgeTable,
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

__all__ = ["NetmatsSettings", "netmats_stage", "glm_stage", "ICASettings", "ica_stage", "analyses_stage",
           "findings_text", "provenance", "file_checksum"]


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


@dataclass(frozen=True)
class ICASettings:
    """Settings of the group ICA stage.

    Attributes
    ----------
    dimension : int or str
        Number of components, or ``"laplace"``/``"bic"`` to estimate it from the
        eigenspectrum (Minka's PPCA evidence, voxels as samples).
    max_dimension : int
        Upper bound for an estimated dimension.
    n_internal : int or None
        MIGP's internal dimension (default: twice the longest run).
    exact : bool
        Exact temporal-concatenation PCA instead of MIGP (small studies only).
    variance_normalise : bool
        Normalise each voxel's temporal variance per run before the PCA (MELODIC ``--vn``).
    seed : int
        Order of the runs in MIGP and FastICA's start.
    n_repeats : int
        FastICA repeats for the stability analysis (1: none).
    dimension_timepoints : int
        An estimated dimension uses the exact eigenspectrum of a seeded subset of runs
        with about this many time points in all (MIGP's truncated spectrum has no flat
        noise floor, which the PPCA evidence assumes).
    """

    dimension: int | str = "laplace"
    max_dimension: int = 200
    n_internal: int | None = None
    exact: bool = False
    variance_normalise: bool = True
    seed: int = 0
    n_repeats: int = 1
    dimension_timepoints: int = 6000


def ica_stage(runs: Sequence, out: Path, settings: ICASettings = ICASettings(), *, tr: float,
              mask: Path | None = None, labels_file: Path | None = None, classifier=None,
              maps: Path | None = None, overwrite: bool = False,
              progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Group ICA, dual regression stage 1 of every run, and component classification.

    Parameters
    ----------
    runs : sequence of icanets.study.Run
        The study's BOLD runs (all on one grid).
    out : Path
        Output folder, written atomically.
    tr : float
    mask : Path, optional
        Brain mask; default: voxels with non-zero temporal variance in every run.
    labels_file : Path, optional
        FIX-style labels file whose listed (1-based) components are noise; it replaces the
        automatic classification (whose features are still written).
    classifier : ClassifierSettings, optional
    maps : Path, optional
        Group maps of the user's (e.g. MELODIC's ``melodic_IC.nii.gz``): no group PCA or ICA;
        dual regression, features and labels as usual.

    Outputs
    -------
    ``melodic_IC.nii.gz`` (z maps; ``.dscalar.nii`` for CIFTI), ``mask``, ``mean`` image,
    ``mixing.npy``, ``eigenvalues.tsv``, ``components.tsv`` (explained variance, stability,
    features, label, reasons), ``labels.txt`` (FIX format: the noise components),
    ``dr_stage1/dr_stage1_subject#####.txt`` and ``<run>_timeseries.npy`` (time x
    components), ``subjects.tsv`` (file number -> participant, session, run) and ``ica.json``.
    """
    from icanets.dualreg import stage1
    from icanets.ica.classify import ClassifierSettings, classify_components, component_features
    from icanets.ica.data import ICAError, load_mask, preprocess_run, read_run, variance_mask
    from icanets.ica.ica import spatial_ica
    from icanets.ica.pca import concat_pca, concat_spectrum, estimate_dimension, migp

    classifier = classifier or ClassifierSettings()
    tick = progress or (lambda stage, done, total: None)
    runs = list(runs)
    if not runs:
        raise ICAError("no runs for group ICA")
    paths = [Path(r.path) for r in runs]
    space = load_mask(mask, paths[0]) if mask is not None else variance_mask(paths)
    order = np.random.default_rng(settings.seed).permutation(len(runs))
    mean_sum = np.zeros(space.n_voxels)
    evidence = pca = ica = None
    if maps is None:
        vn = settings.variance_normalise

        def prepared(path: Path) -> tuple[np.ndarray, np.ndarray]:
            data, mean, _ = preprocess_run(read_run(path, space), variance_normalise=vn)
            return data, mean

        def stream():
            nonlocal mean_sum
            for done, (data, mean) in enumerate(stream_items(prepared, [paths[i] for i in order]), start=1):
                mean_sum += mean
                tick("group PCA", done, len(runs))
                yield data

        longest = max(r.n_volumes for r in runs)
        n_internal = settings.n_internal or 2 * longest
        if settings.exact:
            pca = concat_pca(stream(), n_components=min(n_internal, space.n_voxels))
        else:
            pca = migp(stream(), n_internal=n_internal)
        if isinstance(settings.dimension, str):
            subset, total = [], 0
            for i in order:
                if subset and total + runs[i].n_volumes > settings.dimension_timepoints:
                    break
                subset.append(i)
                total += runs[i].n_volumes
            spectrum = concat_spectrum([preprocess_run(read_run(paths[i], space),
                                                       variance_normalise=settings.variance_normalise)[0] for i in subset])
            dimension, evidence = estimate_dimension(spectrum, space.n_voxels, method=settings.dimension,
                                                     max_rank=min(settings.max_dimension, spectrum.size - 1,
                                                                  pca.eigenvalues.size))
        else:
            dimension = int(settings.dimension)
        ica = spatial_ica(pca, dimension, seed=settings.seed, n_repeats=settings.n_repeats)
        ic_maps, explained = ica.maps, ica.explained_variance
        stability = ica.stability if ica.stability is not None else np.full(dimension, np.nan)
    else:
        ic_maps = space.from_image(maps)
        dimension = ic_maps.shape[0]
        explained, stability = np.full(dimension, np.nan), np.full(dimension, np.nan)
        n_internal = None

    given = maps is not None

    def regress(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        data = read_run(path, space)
        return stage1(data, ic_maps), (data.mean(axis=0) if given else None)

    timecourses = []
    for done, (tc, mean) in enumerate(stream_items(regress, paths), start=1):
        timecourses.append(tc)
        if given:
            mean_sum += mean
        tick("dual regression", done, len(paths))
    features = component_features(ic_maps, timecourses, tr, space, mean_image=mean_sum / len(runs),
                                  settings=classifier)
    table = classify_components(features, classifier)
    table.insert(1, "explained_variance", explained)
    table.insert(2, "stability", stability)
    table["label_source"] = "automatic"
    if labels_file is not None:
        noise = set(read_fix_labels(labels_file, dimension).tolist())
        table["label"] = ["noise" if c - 1 in noise else "signal" for c in table["component"]]
        table["label_source"] = f"labels file {Path(labels_file).name}"

    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        suffix = ".dscalar.nii" if space.kind == "cifti" else ".nii.gz"
        import nibabel as nib

        nib.save(space.to_image(ic_maps), str(tmp / f"melodic_IC{suffix}"))
        nib.save(space.to_image(mean_sum[None] / len(runs)), str(tmp / f"mean{suffix}"))
        nib.save(space.to_image(np.ones((1, space.n_voxels))), str(tmp / f"mask{suffix}"))
        if ica is not None:
            np.save(tmp / "mixing.npy", ica.mixing)
            eigen = pd.DataFrame({"component": np.arange(1, pca.eigenvalues.size + 1), "eigenvalue": pca.eigenvalues})
            if evidence is not None:
                size = min(evidence.size, eigen.shape[0])
                eigen[f"log_evidence_{settings.dimension}"] = np.r_[evidence[:size],
                                                                    [np.nan] * (eigen.shape[0] - size)]
            eigen.to_csv(tmp / "eigenvalues.tsv", sep="\t", index=False)
        table.to_csv(tmp / "components.tsv", sep="\t", index=False, float_format="%.6g")
        noise = [int(c) for c, label in zip(table["component"], table["label"]) if label == "noise"]
        (tmp / "labels.txt").write_text(f"{tmp.name}\n{noise}\n".replace(tmp.name, "melodic_IC"))
        stage_dir = tmp / "dr_stage1"
        stage_dir.mkdir()
        from icanets.io.fsl import write_text_matrix

        rows = []
        for k, (run, tc) in enumerate(zip(runs, timecourses)):
            write_text_matrix(stage_dir / f"dr_stage1_subject{k:05d}.txt", tc)
            np.save(stage_dir / f"{run.name.removesuffix('_bold')}_timeseries.npy", tc)
            rows.append({"index": k, "participant_id": run.subject, "session_id": run.session or "",
                         "run": run.run_label or "", "source": str(run.path)})
        pd.DataFrame(rows).to_csv(tmp / "subjects.tsv", sep="\t", index=False)
        sidecar = provenance("ica", {**asdict(settings), "dimension_used": dimension, "n_internal": n_internal,
                                     "mask": str(mask) if mask else "non-zero variance in every run",
                                     "n_voxels": space.n_voxels, "peak_rows": pca.peak_rows if pca else None,
                                     "tr": tr, "maps": str(maps) if maps else None,
                                     "classifier": asdict(classifier),
                                     "labels_file": str(labels_file) if labels_file else None,
                                     "n_signal": int((table["label"] == "signal").sum()),
                                     "n_noise": int((table["label"] == "noise").sum())},
                             [*paths, *([mask] if mask else []), *([labels_file] if labels_file else []),
                              *([maps] if maps else [])],
                             settings.seed)
        (tmp / "ica.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return Path(out)


def _records(frame: pd.DataFrame | None) -> list:
    if frame is None:
        return []
    return json.loads(frame.to_json(orient="records"))


def analyses_stage(study, table: EdgeTable, out: Path, *, analyses: Sequence[str] | None = None,
                   n_jobs: int | None = None, overwrite: bool = False, inputs: Sequence[Path] = (),
                   log: Callable[[str], None] | None = None) -> dict:
    """The study's declared analyses, post-hoc statistics of significant edges, demographics.

    Parameters
    ----------
    study : icanets.study.Study
        Its config declares ``[analyses.*]`` and ``[posthoc]``.
    table : EdgeTable
        Subject-sessions x edges (e.g. ``edges_ridgep`` of the netmats stage).
    analyses : sequence of str, optional
        Run only these.

    Outputs
    -------
    ``analyses/<name>/results.tsv`` (+ ``null_max.npy``, ``rows_used.tsv``),
    ``posthoc/edge-<i>-<j>_{means,pairwise,correlations,scatter}.tsv``, ``demographics.tsv``,
    ``stats.json`` (every statistic, for the report) and ``findings.txt``.

    Returns
    -------
    dict
        The content of ``stats.json``.
    """
    from icanets.glm.analysis import check_analysis_variables, run_analysis
    from icanets.posthoc.summary import run_posthoc, significant_edges, study_demographics

    say = log or (lambda message: None)
    config = study.config
    specs = list(config.analyses.values())
    if analyses is not None:
        unknown = sorted(set(analyses) - set(config.analyses))
        if unknown:
            raise IcanetsError(f"unknown analyses {', '.join(unknown)} (declared: {', '.join(config.analyses)})")
        specs = [config.analyses[name] for name in analyses]
    variables = study.variables()
    for spec in specs:
        check_analysis_variables(spec, variables)
    results = []
    for spec in specs:
        start = time.monotonic()
        result = run_analysis(spec, table, variables, resolve_session=config.resolve_session, n_jobs=n_jobs)
        hits = {c.name: int(np.sum(c.p_fwe < config.posthoc.alpha)) for c in result.glm.contrasts}
        say(f"{spec.name}: N = {result.n_used}, {result.glm.n_perm} relabellings, "
            f"{', '.join(f'{k}: {v}' for k, v in hits.items())} edges with p_FWE < {config.posthoc.alpha} "
            f"({time.monotonic() - start:.1f} s)")
        results.append(result)
    findings = significant_edges(results, table.edges, alpha=config.posthoc.alpha, named=config.posthoc.edges)
    sessions = sorted({s for s in table.rows["session_id"].fillna("").astype(str) if s})
    edge_stats = run_posthoc(table, findings, variables, config.posthoc, group=config.group_column,
                             sessions=sessions, resolve_session=config.resolve_session)
    roles = {v: k for k, v in config.session_roles.items()}
    demographics, tests, anova, notes = study_demographics(variables, study.sessions, config.posthoc,
                                                           group=config.group_column, session_labels=study.session_labels,
                                                           roles=roles)
    stats_json = {
        "analyses": [_analysis_json(r, table.edges, config.posthoc.alpha) for r in results],
        "posthoc": [_posthoc_json(e) for e in edge_stats],
        "demographics": {"table": _records(demographics), "tests": tests,
                         "rm_anova": anova.to_dict() if anova is not None else None, "notes": notes},
        "sessions": {s: roles.get(s, s) for s in sessions},
        "edge_table": table.metadata,
    }
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        for result in results:
            folder = tmp / "analyses" / result.spec.name
            folder.mkdir(parents=True)
            result.glm.table(table.edges).to_csv(folder / "results.tsv", sep="\t", index=False, float_format="%.8g")
            np.save(folder / "null_max.npy", np.vstack([c.null_max for c in result.glm.contrasts]))
            result.rows.to_csv(folder / "rows_used.tsv", sep="\t", index=False)
        post = tmp / "posthoc"
        post.mkdir()
        for item in edge_stats:
            stem = f"edge-{item.finding.node_i}-{item.finding.node_j}"
            item.means.to_csv(post / f"{stem}_means.tsv", sep="\t", index=False, float_format="%.6g")
            item.pairwise.to_csv(post / f"{stem}_pairwise.tsv", sep="\t", index=False, float_format="%.6g")
            if item.correlations is not None:
                item.correlations.to_csv(post / f"{stem}_correlations.tsv", sep="\t", index=False, float_format="%.6g")
                item.scatter.to_csv(post / f"{stem}_scatter.tsv", sep="\t", index=False, float_format="%.6g")
        demographics.to_csv(tmp / "demographics.tsv", sep="\t", index=False)
        sidecar = provenance("analyses", {"analyses": [r.spec.name for r in results]}, list(inputs), None)
        stats_json["provenance"] = sidecar
        (tmp / "stats.json").write_text(json.dumps(stats_json, indent=2, default=_json_default) + "\n")
        (tmp / "findings.txt").write_text(findings_text(stats_json))
    return stats_json


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return str(value)


def _analysis_json(result, edges: pd.DataFrame, alpha: float) -> dict:
    glm = result.glm
    contrasts = []
    for c in glm.contrasts:
        hits = np.flatnonzero(c.p_fwe < alpha)
        hits = hits[np.argsort(c.p_fwe[hits])]
        contrasts.append({
            "name": c.name, "kind": c.kind, "tails": c.tails, "df": list(c.df),
            "n_significant": int(hits.size), "min_p_fwe": float(c.p_fwe.min()),
            "fwe_threshold": float(np.quantile(c.null_max, 1 - alpha)),
            "significant": [{"edge": int(e), "node_i": int(edges.iloc[e]["node_i"]),
                             "node_j": int(edges.iloc[e]["node_j"]), "name_i": str(edges.iloc[e]["name_i"]),
                             "name_j": str(edges.iloc[e]["name_j"]), "statistic": float(c.statistic[e]),
                             "p_unc": float(c.p_unc[e]), "p_fwe": float(c.p_fwe[e]), "q_fdr": float(c.q_fdr[e])}
                            for e in hits],
            "nbs": [{"nodes": comp.nodes.tolist(), "edges": comp.edges.tolist(), "size": comp.size,
                     "p_fwe": comp.p_fwe} for comp in c.nbs],
        })
    spec = result.spec
    return {"name": spec.name, "description": spec.description, "n_used": result.n_used,
            "n_subset": result.n_subset, "dropped": list(result.dropped), "n_perm": glm.n_perm,
            "exhaustive": glm.exhaustive, "scheme": glm.scheme, "method": glm.method,
            "formula": spec.formula, "session": spec.session, "paired": spec.paired, "difference": spec.difference,
            "subset": spec.subset.text if spec.subset else None, "design_columns": list(glm.design_columns),
            "contrasts": contrasts}


def _posthoc_json(item) -> dict:
    f = item.finding
    return {"edge": f.edge, "node_i": f.node_i, "node_j": f.node_j, "name_i": f.name_i, "name_j": f.name_j,
            "hits": list(f.hits), "means": _records(item.means), "pairwise": _records(item.pairwise),
            "correlations": _records(item.correlations), "scatter": _records(item.scatter),
            "mixed": item.mixed, "notes": list(item.notes)}


def findings_text(stats_json: dict) -> str:
    """A plain-text summary of the findings of every analysis."""
    lines = []
    for analysis in stats_json["analyses"]:
        kind = "exhaustive" if analysis["exhaustive"] else "random"
        lines.append(f"{analysis['name']}: {analysis['description'] or ''}".rstrip(": "))
        lines.append(f"  N = {analysis['n_used']} ({analysis['n_perm']} {kind} relabellings, {analysis['scheme']})")
        if analysis["dropped"]:
            lines.append(f"  left out: {'; '.join(analysis['dropped'])}")
        for c in analysis["contrasts"]:
            if not c["significant"]:
                lines.append(f"  {c['name']}: no edge with p_FWE < 0.05 (smallest p_FWE {c['min_p_fwe']:.3g})")
                continue
            lines.append(f"  {c['name']}: {c['n_significant']} edge(s) with p_FWE < 0.05")
            for hit in c["significant"][:20]:
                lines.append(f"    {hit['name_i']} - {hit['name_j']}: {c['kind']} = {hit['statistic']:.2f}, "
                             f"p_FWE = {hit['p_fwe']:.4f}")
        lines.append("")
    anova = stats_json["demographics"].get("rm_anova")
    if anova:
        lines.append(f"Repeated-measures ANOVA: F({anova['df1_gg']:.2f}, {anova['df2_gg']:.2f}) = {anova['f']:.2f}, "
                     f"p = {anova['p_gg']:.3g} (Greenhouse-Geisser, epsilon = {anova['epsilon']:.3f}, N = {anova['n']})")
    for item in stats_json["posthoc"]:
        mixed = item.get("mixed")
        if mixed:
            inter = mixed["interaction"]
            lines.append(f"{item['name_i']} - {item['name_j']}: time x remission {inter['coef']:.3f} "
                         f"(SE {inter['se']:.3f}, p = {inter['p']:.3g}, {mixed['n_subjects']} subjects)")
        for corr in item.get("correlations") or []:
            if corr["method"] == "pearson":
                lines.append(f"  {corr['measure']} vs clinical change: r = {corr['r']:.2f} "
                             f"[{corr['ci_low']:.2f}, {corr['ci_high']:.2f}], p = {corr['p']:.3g}, N = {corr['n']}")
    return "\n".join(lines) + "\n"
