"""``icanets run``: the stage graph from a BIDS study to the report, with caching.

Stages (each one folder of the output, written atomically)::

    ica/        group ICA (or the user's [inputs] melodic_ic maps), dual regression
                stage 1, component labels   (skipped when the config brings dr_stage1
                time series or an edge table)
    netmats/    network matrices, group summaries, edge table          (skipped with an edge table)
    analyses/   declared GLMs, post-hoc statistics, demographics
    report/     figures; report.html at the top of the output folder

Every stage has a key: a hash of its settings, the content of its inputs, the keys of
the stages before it and the source code the stage runs (so an upgrade within a version or an
edited editable install recomputes what it changes), stored in ``<stage>/stage.json`` once the
stage is complete. A rerun
skips a stage whose key is unchanged and redoes it and everything after it otherwise;
``from_stage`` forces a stage and those after it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from icanets._format import p_relation
from icanets._version import __version__
from icanets.config import StudyConfig, _line_of, load_config
from icanets.errors import ConfigError, IcanetsError, IcanetsWarning
from icanets.pipeline import ICASettings, NetmatsSettings, analyses_stage, file_checksum, ica_stage, netmats_stage

__all__ = ["STAGES", "RunResult", "run_study"]

STAGES = ("ica", "netmats", "analyses", "report")


@dataclass(frozen=True)
class RunResult:
    """What a run did.

    Attributes
    ----------
    out : Path
    report : Path or None
    ran, skipped : tuple of str
        Stages computed and stages reused.
    stats : dict
        The analyses' ``stats.json``.
    seconds : dict
        Wall time per stage computed.
    """

    out: Path
    report: Path | None
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    stats: dict
    seconds: dict


def _hash(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


#: The parts of the package whose code each stage runs (subpackages, or modules without ``.py``).
#: Foundation modules every stage uses are added to each.
_STAGE_CODE = {
    "ica": ("io", "ica", "dualreg", "pipeline/_ica", "pipeline/_common", "parallel"),
    "netmats": ("io", "netmats", "pipeline/_netmats", "pipeline/_common", "parallel"),
    "analyses": ("io", "netmats", "glm", "predict", "posthoc", "expr", "pipeline/_analyses", "pipeline/_common",
                 "parallel"),
    "report": ("viz", "report"),
}
_FOUNDATION = ("errors", "_defaults", "config", "study")


@functools.lru_cache(maxsize=None)
def code_digest(stage: str, root: Path | None = None) -> str:
    """SHA-256 of the source of the code a stage runs (see ``_STAGE_CODE``), so that a changed
    installation (an upgrade within a version, an editable install being edited) invalidates the
    cached stages it affects. Files are read in sorted order; the digest covers names and bytes.
    ``root``: the package folder (default: this installation's)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for part in sorted(set(_STAGE_CODE[stage]) | set(_FOUNDATION)):
        path = root / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _settings(cls, values: dict, section: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"[{section}]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


def ica_settings_from(config: StudyConfig, **overrides):
    """The group ICA and classifier settings of a study's ``[ica]`` section, with ``overrides``
    (e.g. from command-line flags; None values are ignored) taking precedence.

    Returns
    -------
    (ICASettings, ClassifierSettings)
    """
    from icanets.ica.classify import ClassifierSettings

    values = {k: v for k, v in config.ica.items() if k != "labels"}
    values.update({k: v for k, v in overrides.items() if v is not None})
    classifier_keys = set(ClassifierSettings.names())
    try:
        settings = _settings(ICASettings, {k: v for k, v in values.items() if k not in classifier_keys}, "ica")
        classifier = _settings(ClassifierSettings, {k: v for k, v in values.items() if k in classifier_keys}, "ica")
    except ConfigError:
        raise
    except IcanetsError as exc:  # the message names [ica] and the key; add the file and line
        raise _located(config, "ica", next((k for k in values if k in str(exc)), None), exc, name=False) from None
    return settings, classifier


def _located(config: StudyConfig, section: str, key: str | None, message, *, name: bool = True) -> ConfigError:
    """A ConfigError for ``[section] key`` of the study config, with its file and line
    (``name``: prefix the message with ``[section] key:``)."""
    source = Path(config.source) if config.source else None
    text = source.read_text() if source and source.exists() else ""
    line = _line_of(text, section, key) if (text and key) else None
    where = (str(source) if source else "study config") + (f", line {line}" if line else "")
    label = f"[{section}]{f' {key}' if key else ''}: " if name else ""
    return ConfigError(f"{where}: {label}{message}")


def preflight(config: StudyConfig, study) -> tuple:
    """Check everything a run will need before any heavy work, with the code the stages use:
    the [ica], classifier and [netmats] settings, the mask against the runs' grid, a fixed ICA
    dimension against what the data allow, and every analysis built on the study's real
    subjects, sessions and levels (design columns, contrasts, subsets, sizes) and the post-hoc
    settings, on an edge table of dummy values. Errors name the config key and line.

    Returns
    -------
    (ICASettings, ClassifierSettings, NetmatsSettings)
    """
    import numpy as np
    import pandas as pd

    from icanets.glm.analysis import analysis_variables, check_analysis_variables, prepare_analysis
    from icanets.netmats import EdgeTable
    from icanets.netmats.edges import edge_index
    from icanets.posthoc.summary import check_posthoc
    from icanets.predict import prepare_prediction

    def located(section: str, key: str | None, exc: Exception) -> ConfigError:
        return _located(config, section, key, exc)

    ica_settings, classifier = ica_settings_from(config)
    try:
        netmats_settings = _settings(NetmatsSettings, dict(config.netmats), "netmats")
    except ConfigError:
        raise
    except IcanetsError as exc:  # the message names [netmats] and the key
        raise _located(config, "netmats", next((k for k in config.netmats if k in str(exc)), None), exc,
                       name=False) from None
    if "melodic_ic" not in config.inputs and "dr_stage1" not in config.inputs and "edges" not in config.inputs:
        _check_ica_inputs(config, study, ica_settings, located)
    entered = [k for k in ("dr_stage1", "edges") if k in config.inputs]
    if study.cleaning and entered:
        key = "denoise" if config.motion.get("denoise", "none") != "none" else "censor"
        raise located("motion", key, ConfigError(
            f"[motion] {key} cleans the BOLD runs as icanets reads them, but [inputs] {entered[0]} skips that "
            f"reading; clean the runs before making those inputs, or drop {key}"))
    rows = pd.DataFrame(sorted({(r.subject, r.session or "") for r in study.runs}),
                        columns=["participant_id", "session_id"]).assign(n_runs=1)
    dummy = EdgeTable(np.random.default_rng(0).normal(size=(len(rows), 1)), rows, edge_index(2, ["a", "b"]), {})
    variables = study.variables()
    for spec in config.analyses.values():
        section = f"analyses.{spec.name}"
        try:
            own = analysis_variables(spec, variables, study.sessions, resolve_session=config.resolve_session)
            check_analysis_variables(spec, own)
        except IcanetsError as exc:
            raise located(section, "formula" if spec.formula else "subset", exc) from None
        try:
            prepare_analysis(spec, dummy, own, resolve_session=config.resolve_session)
        except IcanetsError as exc:
            raise located(section, _key_of(spec, str(exc)), exc) from None
    for spec in config.predict.values():
        try:
            prepare_prediction(spec, dummy, variables, resolve_session=config.resolve_session)
        except IcanetsError as exc:
            raise located(f"predict.{spec.name}", _predict_key(spec, str(exc)), exc) from None
    sessions = sorted({r.session for r in study.runs if r.session})
    try:
        check_posthoc(variables, config.posthoc, sessions=sessions, resolve_session=config.resolve_session)
    except IcanetsError as exc:  # the message names [posthoc] and the value at fault: find its key's line
        spec = config.posthoc
        key = next((k for k in ("baseline", "followup", "clinical", "remission", "patients")
                    if getattr(spec, k) is not None and repr(getattr(getattr(spec, k), "text", getattr(spec, k)))
                    in str(exc)), None)
        raise _located(config, "posthoc", key, exc, name=False) from None
    if "atlas" in config.anatomy:  # the label image and its table agree (read again, small, in the stage)
        from icanets.io.atlas import read_atlas

        try:
            atlas = read_atlas(config.anatomy["atlas"], config.anatomy.get("labels"), config.anatomy.get("name"))
        except IcanetsError as exc:
            raise located("anatomy", "labels" if "without a name" in str(exc) else "atlas", exc) from None
        if study.runs:
            from icanets.io.atlas import check_atlas_space
            from icanets.io.cifti import brain_models

            first = study.runs[0]
            try:
                check_atlas_space(atlas, brain_models(first.path) if first.kind == "cifti" else None)
            except IcanetsError as exc:
                raise located("anatomy", "atlas", exc) from None
    return ica_settings, classifier, netmats_settings


def _key_of(spec, message: str) -> str | None:
    """The key of an [analyses.*] table that an error message is most likely about."""
    if "contrast" in message and spec.contrasts:
        return "contrasts"
    if "subset" in message and spec.subset is not None:
        return "subset"
    if "session" in message:
        return "session" if spec.session else "paired" if spec.paired else "difference" if spec.difference else None
    if spec.formula and ("formula" in message or "column" in message or "level" in message):
        return "formula"
    return "formula" if spec.formula else None


def _predict_key(spec, message: str) -> str | None:
    """The key of a [predict.*] table that an error message is most likely about."""
    if "unknown variable" in message:
        return "target" if repr(spec.target) in message or f" {spec.target}" in message.split("(known")[0] \
            else "confounds"
    if "subset" in message:
        return "subset"
    if "session" in message:
        return "difference" if spec.difference else "session"
    if "class" in message or "does not vary" in message or "not numeric" in message:
        return "target"
    if "folds" in message or "needed" in message:
        return "folds"
    return "target"


def _check_ica_inputs(config: StudyConfig, study, settings: ICASettings, located) -> None:
    """The mask on the runs' grid (or, for CIFTI, of their length), and a fixed dimension the data allow."""
    import numpy as np

    from icanets.ica.data import ICAError, load_mask

    first = study.runs[0]
    n_voxels = space = None
    if config.mask is not None:
        try:
            space = load_mask(config.mask, first.path)
        except (ICAError, OSError, ValueError) as exc:
            raise located("study", "mask", exc) from None
        if first.kind == "cifti" and space.mask.size != int(np.prod(first.shape)):
            raise located("study", "mask", f"{config.mask} has {space.mask.size} values, but the CIFTI runs have "
                                           f"{int(np.prod(first.shape))} grayordinates (e.g. {first.path}); give a "
                                           f"CIFTI mask of the runs' brain models, or none")
        n_voxels = int(space.mask.sum())
    if config.surfaces or first.kind == "cifti":
        import warnings

        from icanets.errors import StudyError
        from icanets.io.cifti import brain_models, with_surfaces

        if first.kind != "cifti":
            raise located("bold", "surfaces", f"surfaces are for CIFTI runs; the runs are {first.kind} (e.g. {first.path})")
        try:  # the mask's space, when there is one, already holds the runs' brain models
            models = space.geometry if space is not None else brain_models(first.path)
            geometry = with_surfaces(models, config.surfaces)
        except StudyError as exc:
            raise located("bold", "surfaces", exc) from None
        if geometry.missing_surfaces:
            warnings.warn(f"no [bold] surfaces for {', '.join(geometry.missing_surfaces)} of the CIFTI runs: the "
                          f"classifier cannot apply its rim, cluster and smoothness rules, and the report cannot draw "
                          f"the cortex (give the midthickness surfaces as GIFTI)", IcanetsWarning, stacklevel=2)
    if isinstance(settings.dimension, int):
        longest = max(r.n_volumes for r in study.runs)
        total = sum(r.n_volumes for r in study.runs)
        limits = {"MIGP's internal dimension": settings.n_internal or 2 * longest,
                  "the time points of all runs": total - len(study.runs)}
        if n_voxels is not None:
            limits["the voxels in the mask"] = n_voxels
        what, limit = min(limits.items(), key=lambda item: item[1])
        if settings.dimension > limit:
            raise located("ica", "dimension", f"{settings.dimension} components exceed what the data allow: at most "
                                              f"{limit} ({what})")


def _stored_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / "stage.json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None


def _store_key(folder: Path, key: str, seconds: float) -> None:
    tmp = folder / f".stage.json.{os.getpid()}"
    tmp.write_text(json.dumps({"key": key, "seconds": round(seconds, 3), "icanets": __version__}, indent=2) + "\n")
    os.replace(tmp, folder / "stage.json")


def _write_run_record(out: Path, config_path, config: StudyConfig, ica_settings, netmats_settings) -> None:
    import datetime
    import shlex
    import sys

    record = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv) if sys.argv and sys.argv[0] else None,
        "config": str(config_path), "config_sha256": file_checksum(Path(config_path)),
        "icanets": __version__,
        "seeds": {"ica": ica_settings.seed, "netmats (r-to-z null)": netmats_settings.seed,
                  **{f"analysis {name}": spec.seed for name, spec in config.analyses.items()},
                  **{f"prediction {name}": spec.seed for name, spec in config.predict.items()}},
    }
    tmp = out / f".run.json.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, out / "run.json")


def _node_anatomy(table, maps: Path, config: StudyConfig):
    """Coordinates and atlas labels of every node (rows in node order; see
    :func:`icanets.io.atlas.node_anatomy`), when the edge table's nodes are named after their
    components (``IC<n>``) and the maps are a NIfTI or a CIFTI dscalar; None otherwise."""
    from icanets._defaults import ANATOMY_DEFAULTS
    from icanets.io.atlas import nilearn_atlases, node_anatomy, read_atlas

    names: dict[int, str] = {}
    for side in ("i", "j"):
        names.update(zip(table.edges[f"node_{side}"].astype(int), table.edges[f"name_{side}"].astype(str)))
    maps = Path(maps)
    if not names or sorted(names) != list(range(len(names))) or not maps.is_file() \
            or not maps.name.endswith((".nii", ".nii.gz", ".dscalar.nii")):
        return None
    components = []
    for node in range(len(names)):
        text = names[node]
        if not text.startswith("IC") or not text[2:].isdigit():
            return None
        components.append(int(text[2:]))
    settings = config.anatomy
    atlases = []
    if "atlas" in settings:
        atlases.append(read_atlas(settings["atlas"], settings.get("labels"), settings.get("name")))
    if settings.get("nilearn", ANATOMY_DEFAULTS["nilearn"]):
        atlases += nilearn_atlases()
    anatomy = node_anatomy(maps, components, atlases,
                           z_threshold=settings.get("z_threshold", ANATOMY_DEFAULTS["z_threshold"]),
                           surfaces=config.surfaces)
    anatomy.insert(0, "node", range(len(anatomy)))
    return anatomy


def _tables_checksums(study) -> dict:
    root = Path(study.root)
    files = [root / "participants.tsv", *sorted(root.glob("sub-*/sub-*_sessions.tsv"))]
    return {str(p.relative_to(root)): file_checksum(p) for p in files}


def run_study(config_path: Path, out: Path | None = None, *, from_stage: str | None = None,
              log: Callable[[str], None] | None = None, progress: Callable[[str, int, int], None] | None = None,
              scheduler: str | None = None) -> RunResult:
    """Run (or resume) the whole analysis of a study.

    Parameters
    ----------
    config_path : Path
        The study configuration (TOML).
    out : Path, optional
        Output folder (default ``<config folder>/derivatives/icanets``).
    from_stage : str, optional
        Recompute this stage and the ones after it even if unchanged.
    log : callable, optional
        Receives one line per event.
    progress : callable, optional
        ``progress(stage, done, total)`` inside long stages.
    scheduler : str, optional
        ``tcp://HOST:PORT`` (an existing ``dask.distributed`` cluster) or ``local:N`` (a
        ``LocalCluster`` of N workers): per-run work, MIGP's reads and the permutation
        chunks run as Dask tasks. Default: the config's ``[run] scheduler``, else in-process.
        Results are identical either way.
    """
    config = load_config(config_path)
    scheduler = scheduler or config.run.get("scheduler")
    if scheduler:
        from icanets.parallel import dask_client, use_dask

        with dask_client(scheduler) as client, use_dask(client):
            if log:
                log(f"running on Dask: {client.scheduler.address if hasattr(client, 'scheduler') else client}")
            return _run(config_path, config, out, from_stage, log, progress)
    return _run(config_path, config, out, from_stage, log, progress)


def _run(config_path, config: StudyConfig, out, from_stage, log, progress) -> RunResult:
    say = log or (lambda message: None)
    if from_stage is not None and from_stage not in STAGES:
        raise ConfigError(f"--from must be one of {', '.join(STAGES)}, got {from_stage!r}")
    out = Path(out) if out is not None else Path(config_path).resolve().parent / "derivatives" / "icanets"
    # Everything that can be checked is checked before any work starts.
    from icanets.study import load_study

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IcanetsWarning)
        study = load_study(config=config)
    for w in caught:
        say(f"warning: {w.message}")
    ica_settings, classifier, netmats_settings = preflight(config, study)
    if not config.analyses and not config.predict:
        raise ConfigError(f"{config_path}: no [analyses.*] or [predict.*] declared; nothing to test")

    from icanets.io.atomic import folder_lock, remove_stale_partials

    with folder_lock(out):
        for path in remove_stale_partials(out):
            say(f"removed {path.name}, left by an interrupted run")
        return _run_locked(config_path, config, out, study, from_stage, ica_settings, classifier, netmats_settings,
                           say, progress)


def _run_locked(config_path, config: StudyConfig, out: Path, study, from_stage, ica_settings, classifier,
                netmats_settings, say, progress) -> RunResult:
    description = out / "dataset_description.json"
    if not description.exists():
        description.write_text(json.dumps({
            "Name": f"icanets: {config.name}", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "icanets", "Version": __version__}],
            "SourceDatasets": [{"URL": str(study.root)}]}, indent=2) + "\n")

    forced = set(STAGES[STAGES.index(from_stage):]) if from_stage else set()
    ran, skipped, seconds = [], [], {}
    inputs = config.inputs
    upstream = ""

    def stage(name: str, key: str, work: Callable[[], None]) -> None:
        nonlocal upstream
        folder = out / name
        if name not in forced and folder.is_dir() and _stored_key(folder) == key:
            say(f"{name}: unchanged, reusing {folder}")
            skipped.append(name)
        else:
            say(f"{name}: running")
            start = time.monotonic()
            work()
            elapsed = time.monotonic() - start
            _store_key(folder, key, elapsed)
            seconds[name] = elapsed
            ran.append(name)
            say(f"{name}: done in {elapsed:.1f} s")
            forced.update(STAGES[STAGES.index(name) + 1:])  # everything after a recomputed stage is redone
        upstream = key

    # ---- group ICA (or the user's maps / time series / edges)
    if "edges" not in inputs and "dr_stage1" not in inputs:
        labels = Path(config.ica["labels"]) if "labels" in config.ica else inputs.get("labels")
        user_maps = inputs.get("melodic_ic")
        say("checksumming the BOLD runs")
        cleaning = [study.cleaning.get(r.name) for r in study.runs]
        ica_key = _hash({"stage": "ica", "settings": asdict(ica_settings), "classifier": asdict(classifier),
                         "mask": config.mask and file_checksum(
            config.mask), "surfaces": [file_checksum(p) for p in config.surfaces], "labels": labels and file_checksum(labels), "tr": study.tr, "version": __version__,
            "code": code_digest("ica"),
            "maps": user_maps and file_checksum(user_maps),
            "cleaning": [(c.digest() if c is not None else None) for c in cleaning],
            "motion": [hashlib.sha256(study.motion_params[r.name].tobytes()).hexdigest()
                       if r.name in study.motion_params else None for r in study.runs],
            "runs": [(str(r.path.relative_to(study.root)), file_checksum(r.path)) for r in study.runs]})
        stage("ica", ica_key, lambda: ica_stage(study.runs, out / "ica", ica_settings, tr=study.tr, mask=config.mask,
                                                labels_file=labels, maps=user_maps, classifier=classifier,
                                                overwrite=True, progress=progress, cleaning=cleaning,
                                                motion=[study.motion_params.get(r.name) for r in study.runs],
                                                surfaces=config.surfaces))
        series_dir, subjects_file, labels_file = out / "ica" / "dr_stage1", out / "ica" / "subjects.tsv", \
            out / "ica" / "labels.txt"
    elif "dr_stage1" in inputs:
        series_dir, subjects_file, labels_file = inputs["dr_stage1"], inputs.get("subjects"), inputs.get("labels")
        upstream = _hash({"dr_stage1": [file_checksum(p) for p in sorted(Path(series_dir).glob("*"))
                                        if p.is_file()],
                          "subjects": subjects_file and file_checksum(subjects_file),
                          "labels": labels_file and file_checksum(labels_file)})

    # ---- netmats
    if "edges" not in inputs:
        from icanets.io.timeseries import find_timeseries_files

        files = find_timeseries_files(series_dir)
        netmats_key = _hash({"stage": "netmats", "settings": asdict(netmats_settings), "upstream": upstream,
                             "version": __version__, "code": code_digest("netmats")})
        stage("netmats", netmats_key, lambda: netmats_stage(files, out / "netmats", netmats_settings,
                                                            labels_file=labels_file, subjects=subjects_file,
                                                            overwrite=True, log=say))
        edges_path = out / "netmats" / f"edges_{netmats_settings.partial}.npy"
    else:
        edges_path = inputs["edges"]
        upstream = _hash({"edges": [file_checksum(p) for p in sorted(edges_path.parent.glob(
            edges_path.name[:-4] + "*"))]})

    # ---- analyses
    from icanets.netmats import EdgeTable

    table = EdgeTable.load(edges_path.parent, edges_path.name[:-4])
    analyses_key = _hash({"stage": "analyses", "upstream": upstream, "version": __version__,
                          "code": code_digest("analyses"),
                          "analyses": repr(config.analyses), "posthoc": repr(config.posthoc),
                          "predict": repr(config.predict),
                          "derived": {k: e.text for k, e in config.derived.items()},
                          "roles": dict(config.session_roles), "tables": _tables_checksums(study),
                          "anatomy": {k: (file_checksum(v) if isinstance(v, Path) else v)
                                      for k, v in config.anatomy.items()},
                          "motion": (dict(config.motion), None if study.motion is None else
                                     hashlib.sha256(study.motion.to_csv().encode()).hexdigest())})
    def analyses() -> None:  # the node anatomy and the full-correlation table only when the stage runs
        full_path = edges_path.parent / f"edges_{netmats_settings.full}.npy"
        full_table = (EdgeTable.load(full_path.parent, full_path.name[:-4])
                      if "edges" not in inputs and full_path.exists() and full_path != edges_path else None)
        ica_maps = next(iter(sorted((out / "ica").glob("melodic_IC.*"))), out / "ica" / "melodic_IC.nii.gz")
        anatomy = _node_anatomy(table, inputs.get("melodic_ic") or ica_maps, config)
        analyses_stage(study, table, out / "analyses", overwrite=True, inputs=[edges_path],
                       n_jobs=config.run.get("n_jobs"), log=say, full_table=full_table, node_anatomy=anatomy)

    stage("analyses", analyses_key, analyses)
    stats = json.loads((out / "analyses" / "stats.json").read_text())

    # ---- the run's own record (date, command, config digest, seeds): beside the stages, not in them,
    # so that stage outputs stay bit-identical between runs
    _write_run_record(out, config_path, config, ica_settings, netmats_settings)

    # ---- report
    report_path = None
    try:
        from icanets.report import build_report
    except ImportError:  # pragma: no cover - the report module is part of the package
        build_report = None
    if build_report is not None:
        report_key = _hash({"stage": "report", "upstream": upstream, "analyses": analyses_key, "version": __version__,
                            "code": code_digest("report")})
        stage("report", report_key, lambda: build_report(out, overwrite=True))
        report_path = out / "report.html"
    return RunResult(out=out, report=report_path, ran=tuple(ran), skipped=tuple(skipped), stats=stats,
                     seconds=seconds)


def closing_summary(result: RunResult) -> str:
    """The findings of every analysis, in a few lines."""
    lines = ["", "Significant findings (p_FWE < 0.05):"]
    any_hit = False
    for analysis in result.stats["analyses"]:
        hits = [(c["name"], h) for c in analysis["contrasts"] for h in c["significant"]]
        if not hits:
            lines.append(f"  {analysis['name']} (N = {analysis['n_used']}): none")
            continue
        any_hit = True
        lines.append(f"  {analysis['name']} (N = {analysis['n_used']}):")
        for contrast, hit in hits[:10]:
            lines.append(f"    {contrast}: {hit['name_i']} - {hit['name_j']} (stat {hit['statistic']:.2f}, "
                         f"p_FWE {p_relation(hit['p_fwe'], 1.0 / analysis['n_perm'])})")
        if len(hits) > 10:
            lines.append(f"    ... and {len(hits) - 10} more")
    if not any_hit:
        lines.append("  (none in any analysis)")
    predictions = result.stats.get("predictions") or []
    if predictions:
        lines.append("Cross-validated predictions:")
    for item in predictions:
        m = item["metrics"][item["primary"]]
        lines.append(f"  {item['name']} (N = {item['n']}): {item['target']} by {item['model']}, {item['primary']} = "
                     f"{m['value']:.3f} [95 % CI {m['ci'][0]:.3f}, {m['ci'][1]:.3f}], permutation p = {m['p']:.4g}")
    if result.report is not None:
        lines.append(f"Report: {result.report}")
    lines.append(f"Outputs: {result.out}")
    return "\n".join(lines)
