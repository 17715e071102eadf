"""``icanets run``: the stage graph from a BIDS study to the report, with caching.

Stages (each one folder of the output, written atomically)::

    ica/        group ICA (or the user's [inputs] melodic_ic maps), dual regression
                stage 1, component labels   (skipped when the config brings dr_stage1
                time series or an edge table)
    netmats/    network matrices, group summaries, edge table          (skipped with an edge table)
    analyses/   declared GLMs, post-hoc statistics, demographics
    report/     figures; report.html at the top of the output folder

Every stage has a key: a hash of its settings, the content of its inputs and the keys of
the stages before it, stored in ``<stage>/stage.json`` once the stage is complete. A rerun
skips a stage whose key is unchanged and redoes it and everything after it otherwise;
``from_stage`` forces a stage and those after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

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
    except IcanetsError as exc:
        where = str(config.source) if config.source else "study config"
        text = config.source.read_text() if config.source and config.source.exists() else ""
        key = next((k for k in values if k in str(exc)), None)
        line = _line_of(text, "ica", key) if (text and key) else None
        raise ConfigError(f"{where}{f', line {line}' if line else ''}: {exc}") from None
    return settings, classifier


def _stored_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / "stage.json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None


def _store_key(folder: Path, key: str, seconds: float) -> None:
    tmp = folder / f".stage.json.{os.getpid()}"
    tmp.write_text(json.dumps({"key": key, "seconds": round(seconds, 3), "icanets": __version__}, indent=2) + "\n")
    os.replace(tmp, folder / "stage.json")


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
    from icanets.glm.analysis import check_analysis_variables
    from icanets.study import load_study

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IcanetsWarning)
        study = load_study(config=config)
    for w in caught:
        say(f"warning: {w.message}")
    variables = study.variables()
    for spec in config.analyses.values():
        try:
            check_analysis_variables(spec, variables)
        except IcanetsError as exc:
            key = "formula" if spec.formula else "subset"
            line = _line_of(Path(config_path).read_text(), f"analyses.{spec.name}", key)
            where = f"{config_path}, line {line}" if line else str(config_path)
            raise ConfigError(f"{where}: [analyses.{spec.name}] {key}: {exc}") from None
    ica_settings, classifier = ica_settings_from(config)
    netmats_settings = _settings(NetmatsSettings, dict(config.netmats), "netmats")
    if not config.analyses:
        raise ConfigError(f"{config_path}: no [analyses.*] declared; nothing to test")

    out.mkdir(parents=True, exist_ok=True)
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
        ica_key = _hash({"stage": "ica", "settings": asdict(ica_settings), "classifier": asdict(classifier),
                         "mask": config.mask and file_checksum(
            config.mask), "labels": labels and file_checksum(labels), "tr": study.tr, "version": __version__,
            "maps": user_maps and file_checksum(user_maps),
            "runs": [(str(r.path.relative_to(study.root)), file_checksum(r.path)) for r in study.runs]})
        stage("ica", ica_key, lambda: ica_stage(study.runs, out / "ica", ica_settings, tr=study.tr, mask=config.mask,
                                                labels_file=labels, maps=user_maps, classifier=classifier,
                                                overwrite=True, progress=progress))
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
                             "version": __version__})
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
                          "analyses": repr(config.analyses), "posthoc": repr(config.posthoc),
                          "derived": {k: e.text for k, e in config.derived.items()},
                          "roles": dict(config.session_roles), "tables": _tables_checksums(study)})
    stage("analyses", analyses_key, lambda: analyses_stage(study, table, out / "analyses", overwrite=True,
                                                           inputs=[edges_path], n_jobs=config.run.get("n_jobs"),
                                                           log=say))
    stats = json.loads((out / "analyses" / "stats.json").read_text())

    # ---- report
    report_path = None
    try:
        from icanets.report import build_report
    except ImportError:  # pragma: no cover - the report module is part of the package
        build_report = None
    if build_report is not None:
        report_key = _hash({"stage": "report", "upstream": upstream, "analyses": analyses_key, "version": __version__})
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
                         f"p_FWE = {hit['p_fwe']:.4f})")
        if len(hits) > 10:
            lines.append(f"    ... and {len(hits) - 10} more")
    if not any_hit:
        lines.append("  (none in any analysis)")
    if result.report is not None:
        lines.append(f"Report: {result.report}")
    lines.append(f"Outputs: {result.out}")
    return "\n".join(lines)
