"""The ``icanets`` command.

Subcommands wire the stages together; they hold no analysis logic of their own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from icanets._defaults import DEFAULT_TAILS
from icanets._format import format_p, p_relation
from icanets._version import __version__
from icanets.errors import IcanetsError, IcanetsWarning

__all__ = ["main"]


class _Progress:
    """A one-line progress display on stderr (a bar on a terminal, a few lines otherwise)."""

    def __init__(self, label: str, *, quiet: bool = False):
        self.label = label
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        fraction = done / total
        if self.tty:
            width = 30
            bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{self.label} [{bar}] {done}/{total} {time.monotonic() - self.start:.0f}s{end}")
            sys.stderr.flush()
        else:
            decile = int(10 * fraction)
            if decile > self.last_decile:
                self.last_decile = decile
                print(f"{self.label}: {done}/{total} ({time.monotonic() - self.start:.0f}s)", file=sys.stderr)


def _stage_progress(*, quiet: bool):
    """``progress(stage, done, total)`` drawing one bar per stage."""
    bars: dict[str, _Progress] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bars.setdefault(stage, _Progress(stage, quiet=quiet))(done, total)

    return progress


def _table(frame: pd.DataFrame, indent: str = "  ") -> str:
    if frame.empty:
        return f"{indent}(none)"
    text = frame.to_string()
    return "\n".join(indent + line for line in text.splitlines())


def _grayordinates_lines(study) -> list[str]:
    """For CIFTI runs: the grayordinates per structure, and the surfaces given."""
    from icanets.io.cifti import brain_models

    if study.runs[0].kind != "cifti":
        return []
    geometry = brain_models(study.runs[0].path)
    counts = pd.Series(geometry.structures).value_counts(sort=False)
    parts = ", ".join(f"{name.removeprefix('CIFTI_STRUCTURE_').lower()} {n}" for name, n in counts.items())
    given = ", ".join(Path(p).name for p in study.config.surfaces) or "none ([bold] surfaces)"
    return [f"Grayordinates: {geometry.n} ({parts}); surfaces: {given}"]


def format_study_summary(study) -> str:
    """The text ``icanets inspect`` prints for a study."""
    summary = study.summary()
    volumes = ", ".join(str(v) for v in summary.n_volumes)
    lines = [
        f"Study: {study.config.name}",
        f"Dataset: {study.root}",
        f"{summary.n_subjects} subjects, {summary.n_runs} BOLD runs ({study.runs[0].kind}), "
        f"TR = {summary.tr:g} s, {volumes} volumes per run",
        *_grayordinates_lines(study),
        "",
        "Subjects per group:",
        _table(summary.groups),
        "",
        "Subjects with BOLD per session and group:",
        _table(summary.sessions),
        "",
        "Runs per subject-session:",
        _table(summary.runs_per_session),
        "",
        f"Missing data ({len(summary.missing)}):",
        _table(summary.missing.set_index("participant_id") if not summary.missing.empty else summary.missing),
    ]
    lines += ["", "Sessions and runs per subject:", _table(summary.per_subject.set_index("participant_id"))]
    if not summary.session_measures.empty:
        lines += ["", "Per-session measures:", _table(summary.session_measures.set_index(["measure", "session", "group"]))]
    if not summary.derived.empty:
        lines += ["", "Derived variables:", _table(summary.derived.set_index("variable"))]
    motion = study.motion
    if motion is None:
        lines += ["", "Head motion: no motion files beside the runs (fMRIPrep confounds, HCP Movement_Regressors.txt "
                      "or mcflirt .par)"]
    else:
        excluded = study.excluded
        lines += ["", f"Head motion: {len(motion)} runs ({', '.join(sorted(set(motion['source'])))}); mean FD per run "
                      f"median {motion['mean_fd'].median():.3f} mm, largest {motion['mean_fd'].max():.3f} mm; "
                      f"{len(excluded)} run(s) excluded by the [motion] rules"]
        if len(excluded):
            lines.append(_table(excluded))
    return "\n".join(lines)


def _cmd_inspect(args) -> int:
    from icanets.config import StudyConfig, load_config
    from icanets.study import load_study

    config = load_config(args.config) if args.config else StudyConfig()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IcanetsWarning)
        study = load_study(args.dataset, config, check_data=args.check_data)
        if args.config:  # what 'icanets run' checks before its first stage: settings, mask, designs, post-hoc
            from icanets.runner import preflight

            preflight(config, study)
    print(format_study_summary(study))
    if caught:
        print(f"\nWarnings ({len(caught)}):")
        for w in caught:
            print(f"  {w.message}")
    return 0


def _cmd_simulate(args) -> int:
    from icanets.simulate import get_preset, simulate_study

    preset = get_preset(args.preset)
    if args.realism or args.factor:
        factors = {}
        for item in args.factor or []:
            name, sep, level = item.partition("=")
            if not sep:
                raise IcanetsError(f"--factor must be NAME=LEVEL (e.g. spikes=harsh), got {item!r}")
            factors[name.strip()] = level.strip()
        base = args.realism or None
        if base is None:  # only some factors changed: the others keep the preset's levels
            current = preset.realism()
            base, factors = "realistic", {**{k: v for k, v in current.items() if v != "custom"}, **factors}
        preset = preset.with_realism(base, **factors)
    if args.volumes is not None:
        preset = preset.with_changes(n_volumes=args.volumes)
    start = time.monotonic()
    result = simulate_study(args.out, preset, seed=args.seed, overwrite=args.overwrite,
                            progress=_Progress(f"simulate {preset.name}", quiet=args.quiet), format=args.format,
                            layout=args.layout)
    if not args.quiet:
        levels = ", ".join(f"{k} {v}" for k, v in preset.realism().items())
        print(f"Simulated the {preset.name!r} study (seed {args.seed}) in {time.monotonic() - start:.1f} s; realism: "
              f"{levels}:")
        print(f"  dataset:      {result.bids}")
        print(f"  config:       {result.config}")
        print(f"  ground truth: {result.truth}")
        if result.surfaces:
            print(f"  surfaces:     {', '.join(str(p) for p in result.surfaces)}")
    return 0


def _node_numbers(text: str) -> list[int]:
    """``"1,2,5-9"`` (1-based component numbers) -> 0-based indices."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            lo, hi = int(first), int(last) if dash else int(first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"node numbers look like 1,2,5-9; got {part!r}") from None
        if lo < 1 or hi < lo:
            raise argparse.ArgumentTypeError(f"node numbers start at 1 and ranges go upwards; got {part!r}")
        out.extend(range(lo - 1, hi))
    return out


def _cmd_netmats(args) -> int:
    from icanets.io.timeseries import find_timeseries_files
    from icanets.pipeline import NetmatsSettings, netmats_stage

    files = []
    for item in args.inputs:
        files.extend(find_timeseries_files(item) if item.is_dir() else [item])
    settings = NetmatsSettings(partial=args.method, rho=args.rho, alpha=args.alpha, full=args.full,
                               varnorm=args.varnorm, aggressive=args.aggressive, rtoz=args.rtoz, seed=args.seed,
                               fslnets_compat=args.fslnets_compat, n_clusters=args.clusters)
    start = time.monotonic()
    out = netmats_stage(files, args.out, settings, good_nodes=args.good_nodes, labels_file=args.labels,
                        subjects=args.subjects, overwrite=args.overwrite,
                        log=None if args.quiet else (lambda m: print(m, file=sys.stderr)))
    if not args.quiet:
        print(f"Netmats of {len(files)} runs written to {out} in {time.monotonic() - start:.1f} s")
    return 0


def _named(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _cmd_glm(args) -> int:
    from icanets.glm import DesignError, Exchangeability, design_from_formula, design_from_fsl
    from icanets.io.bids import read_tsv
    from icanets.netmats import EdgeTable
    from icanets.pipeline import row_keys as _row_keys

    edges_path = args.edges
    stem = edges_path.name[:-4] if edges_path.name.endswith(".npy") else edges_path.name
    table = EdgeTable.load(edges_path.parent, stem)
    if args.session:
        keep = (table.rows["session_id"].fillna("").astype(str) == args.session).to_numpy()
        if not keep.any():
            raise DesignError(f"no rows of session {args.session!r} in the edge table "
                              f"(sessions: {', '.join(sorted(set(table.rows['session_id'].fillna('').astype(str))))})")
        table = EdgeTable(table.values[keep], table.rows[keep].reset_index(drop=True), table.edges, table.metadata)
    dropped_pairs: tuple[str, ...] = ()
    if args.paired:
        from icanets.glm import Design, paired_difference

        first, _, second = args.paired.partition(",")
        if not second:
            raise DesignError(f"--paired takes two sessions FIRST,SECOND, got {args.paired!r}")
        subjects = None
        if args.subjects_where:
            column, _, level = args.subjects_where.partition("=")
            if not args.participants:
                raise DesignError("--subjects-where needs --participants")
            part = read_tsv(args.participants).set_index("participant_id")
            if column not in part.columns:
                raise DesignError(f"--subjects-where: no column {column!r} in {args.participants}")
            subjects = part.index[part[column] == level].tolist()
        pairs = paired_difference(table, first.strip(), second.strip(), subjects=subjects)
        table, dropped_pairs = pairs.table, pairs.dropped
        n = len(table.rows)
        design = Design(matrix=np.ones((n, 1)), columns=("mean",), contrasts=np.array([[1.0], [-1.0]]),
                        contrast_names=(f"{second}>{first}", f"{first}>{second}"), rows=tuple(_row_keys(table.rows)),
                        dropped=dropped_pairs)
        scheme = Exchangeability(permute=False, flip=True)
        return _run_glm(args, table, design, scheme, [edges_path])
    keys = _row_keys(table.rows)
    inputs = [edges_path]
    if args.formula:
        if not args.participants or not args.contrast:
            raise DesignError("--formula needs --participants and at least one --contrast NAME=EXPR")
        participants = read_tsv(args.participants).set_index("participant_id")
        for column in participants.columns:
            numeric = pd.to_numeric(participants[column], errors="coerce")
            if numeric.notna().sum() == participants[column].notna().sum():
                participants[column] = numeric
        unknown = sorted(set(table.rows["participant_id"]) - set(participants.index))
        if unknown:
            raise DesignError(f"edge-table subjects missing from {args.participants}: {', '.join(unknown[:5])}")
        data = participants.loc[table.rows["participant_id"].tolist()].reset_index()
        if "session_id" in table.rows.columns:
            data["session_id"] = table.rows["session_id"].to_numpy()
        design = design_from_formula(args.formula, data, dict(args.contrast), ftests={
            name: [c.strip() for c in members.split(",")] for name, members in (args.ftest or [])},
            blocks=args.blocks, row_labels=keys)
        inputs.append(args.participants)
    else:
        if not args.design or not args.contrasts:
            raise DesignError("give either --formula (with --participants and --contrast) or --design and --contrasts")
        design = design_from_fsl(args.design, args.contrasts, fts=args.fts,
                                 grp=Path(args.blocks) if args.blocks else None, row_labels=keys)
        inputs += [p for p in (args.design, args.contrasts, args.fts, args.blocks) if p]
    scheme = Exchangeability(permute=not args.flip or args.permute, flip=args.flip, blocks=design.blocks,
                             whole_blocks=args.whole_blocks)
    return _run_glm(args, table, design, scheme, inputs)


def _run_glm(args, table, design, scheme, inputs) -> int:
    from icanets.glm import NBSOptions
    from icanets.pipeline import glm_stage

    nbs = NBSOptions(args.nbs_threshold, args.nbs_measure) if args.nbs_threshold is not None else None
    start = time.monotonic()
    result = glm_stage(table, design, args.out, n_perm=args.n_perm, exchangeability=scheme, method=args.method,
                       tails=args.tails, seed=args.seed, nbs=nbs, fwe_across_contrasts=args.fwe_across,
                       inputs=[Path(p) for p in inputs], overwrite=args.overwrite)
    if not args.quiet:
        kind = "exhaustive" if result.exhaustive else "random"
        print(f"GLM on {result.n_used} observations x {table.values.shape[1]} edges, {result.n_perm} {kind} "
              f"relabellings ({result.scheme}, {result.method}) in {time.monotonic() - start:.1f} s")
        for line in result.dropped:
            print(f"  left out: {line}")
        for c in result.contrasts:
            hits = np.flatnonzero(c.p_fwe < 0.05)
            floor = 1.0 / result.n_perm
            print(f"  {c.name} ({c.kind}): {hits.size} edges with p_FWE < 0.05; smallest p_FWE "
                  f"{format_p(c.p_fwe.min(), floor)}")
            for e in hits[np.argsort(c.p_fwe[hits])][:10]:
                row = table.edges.iloc[e]
                print(f"    {row['name_i']} - {row['name_j']}: {c.kind} = {c.statistic[e]:.3f}, "
                      f"p_FWE {p_relation(c.p_fwe[e], floor)}")
        print(f"Results written to {args.out}")
    return 0


def _load_study_for(args):
    from icanets.config import load_config
    from icanets.study import load_study

    config = load_config(args.config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IcanetsWarning)
        study = load_study(args.dataset, config)
    if not getattr(args, "quiet", False):
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    return config, study


def _dimension(text: str):
    from icanets.ica.order import ORDER_METHODS

    if text in ORDER_METHODS:
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"dimension must be a number or one of {', '.join(ORDER_METHODS)}; "
                                         f"got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"dimension must be at least 1, got {value}")
    return value


def _run_components(text: str):
    if text.lower() in ("none", "auto"):
        return text.lower()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"run components must be 'auto', a fraction, a count or 'none'; "
                                         f"got {text!r}") from None


def _cmd_ica(args) -> int:
    from icanets.pipeline import ica_stage
    from icanets.runner import ica_settings_from

    config, study = _load_study_for(args)
    settings, classifier = ica_settings_from(
        config, dimension=args.dim, max_dimension=args.max_dim, n_internal=args.internal, exact=args.exact or None,
        variance_normalise=False if args.no_vn else None, seed=args.seed, n_repeats=args.repeats,
        approach=args.approach, nonlinearity=args.nonlinearity, highpass=args.highpass,
        run_components=0 if args.run_components == "none" else args.run_components)
    progress = _stage_progress(quiet=args.quiet)
    start = time.monotonic()
    labels = args.labels or (Path(config.ica["labels"]) if "labels" in config.ica else None)
    out = ica_stage(study.runs, args.out, settings, tr=study.tr, mask=args.mask or config.mask, classifier=classifier,
                    labels_file=labels, overwrite=args.overwrite, progress=progress,
                    cleaning=[study.cleaning.get(r.name) for r in study.runs],
                    motion=[study.motion_params.get(r.name) for r in study.runs], surfaces=config.surfaces)
    if not args.quiet:
        table = pd.read_csv(out / "components.tsv", sep="\t")
        counts = table["label"].value_counts()
        order = json.loads((out / "ica.json").read_text())["settings"].get("model_order") or {}
        how = (f"{settings.dimension} estimate; " + ", ".join(f"{k} {v}" for k, v in order.items())
               if isinstance(settings.dimension, str) else "fixed")
        print(f"Group ICA of {len(study.runs)} runs: {len(table)} components ({how}), {int(table['keep'].sum())} "
              f"kept ({int(counts.get('signal', 0))} signal, {int(counts.get('uncertain', 0))} uncertain), "
              f"{int(counts.get('noise', 0))} rejected as noise, in {time.monotonic() - start:.1f} s")
        maps = next(iter(sorted(out.glob("melodic_IC.*"))), out / "melodic_IC.nii.gz")
        print(f"  maps: {maps}; review and edit {out / 'components.tsv'}")
        print(f"  node time series: {out / 'dr_stage1'} (use with: icanets netmats {out / 'dr_stage1'} "
              f"--labels {out / 'labels.txt'} --subjects {out / 'subjects.tsv'})")
    return 0


def _cmd_dualreg(args) -> int:
    from icanets.dualreg import stage1, stage2
    from icanets.ica.data import load_mask, read_run, variance_mask
    from icanets.io.atomic import atomic_folder
    from icanets.io.fsl import write_text_matrix
    import nibabel as nib

    from icanets.pipeline import spatial_regressors
    from icanets.runner import ica_settings_from

    config, study = _load_study_for(args)
    settings, _ = ica_settings_from(config, dr_threshold=args.threshold)
    paths = [r.path for r in study.runs]
    mask = args.mask or config.mask
    space = load_mask(mask, paths[0], config.surfaces) if mask else variance_mask(paths, config.surfaces)
    maps = spatial_regressors(space.from_image(args.maps), settings.dr_threshold)
    progress = _Progress("dual regression", quiet=args.quiet)
    rows = []
    with atomic_folder(args.out, overwrite=args.overwrite) as tmp:
        for k, run in enumerate(study.runs):
            data = read_run(run.path, space)
            tc = stage1(data, maps)
            write_text_matrix(tmp / f"dr_stage1_subject{k:05d}.txt", tc)
            np.save(tmp / f"{run.name.removesuffix('_bold')}_timeseries.npy", tc)
            if args.stage2:
                result = stage2(data, tc)
                suffix = ".dscalar.nii" if space.kind == "cifti" else ".nii.gz"
                nib.save(space.to_image(result.betas), str(tmp / f"dr_stage2_subject{k:05d}{suffix}"))
                nib.save(space.to_image(result.tstats), str(tmp / f"dr_stage2_subject{k:05d}_t{suffix}"))
            rows.append({"index": k, "participant_id": run.subject, "session_id": run.session or "",
                         "run": run.run_label or "", "source": str(run.path)})
            progress(k + 1, len(study.runs))
        pd.DataFrame(rows).to_csv(tmp / "subjects.tsv", sep="\t", index=False)
    if not args.quiet:
        print(f"Dual regression of {len(study.runs)} runs on {maps.shape[0]} maps written to {args.out}")
    return 0


def _cmd_analyses(args) -> int:
    from icanets.netmats import EdgeTable
    from icanets.pipeline import analyses_stage

    _, study = _load_study_for(args)
    stem = args.edges.name[:-4] if args.edges.name.endswith(".npy") else args.edges.name
    table = EdgeTable.load(args.edges.parent, stem)
    analyses_stage(study, table, args.out, analyses=args.only, overwrite=args.overwrite, inputs=[args.edges],
                   log=None if args.quiet else (lambda m: print(m, file=sys.stderr)))
    if not args.quiet:
        print((args.out / "findings.txt").read_text())
        print(f"Results written to {args.out}")
    return 0


def _cmd_run(args) -> int:
    from icanets.runner import closing_summary, run_study

    progress = _stage_progress(quiet=args.quiet)
    def log(message):
        if not args.quiet:
            print(message, file=sys.stderr)

    start = time.monotonic()
    result = run_study(args.config, args.out, from_stage=args.from_stage, log=log, progress=progress,
                       scheduler=args.scheduler)
    if not args.quiet:
        print(closing_summary(result))
        print(f"Done in {time.monotonic() - start:.1f} s (computed: {', '.join(result.ran) or 'nothing'}; "
              f"reused: {', '.join(result.skipped) or 'nothing'})")
    return 0


def _cmd_report(args) -> int:
    from icanets.report import build_report

    path = build_report(args.out)
    if not args.quiet:
        print(f"Report: {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="icanets",
        description="Data-driven whole-brain functional connectomics for clinical studies.",
    )
    parser.add_argument("--version", action="version", version=f"icanets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="the whole analysis, from BIDS to the report (resumable)",
                       description="Run the whole analysis of a study: group ICA, component classification, dual "
                                   "regression, netmats, the declared analyses, post-hoc statistics and the report. "
                                   "A rerun reuses every stage whose inputs and settings are unchanged.")
    p.add_argument("config", type=Path, help="study configuration (TOML)")
    p.add_argument("--out", type=Path, help="output folder (default: derivatives/icanets beside the config)")
    p.add_argument("--from", dest="from_stage", choices=("ica", "netmats", "analyses", "report"),
                   help="recompute this stage and the ones after it")
    p.add_argument("--scheduler", help="run on Dask: tcp://HOST:PORT (an existing cluster) or local:N (N workers)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="rebuild the HTML report of a finished run",
                       description="Rebuild report.html (and report/ with the figures) from a run's output folder.")
    p.add_argument("out", type=Path, help="the output folder of 'icanets run'")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("inspect", help="validate a BIDS dataset and summarise its subjects, sessions and runs",
                       description="Validate a BIDS dataset and print a summary: subjects per group, sessions and "
                                   "runs per subject, missing data, derived variables.")
    p.add_argument("dataset", type=Path, help="the BIDS dataset folder (holding participants.tsv)")
    p.add_argument("--config", type=Path, help="study configuration (TOML): filters, column types, roles, derived variables")
    p.add_argument("--check-data", action="store_true", help="read every image through to catch corrupt files (slower)")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("simulate", help="write a synthetic study with planted ground truth",
                       description="Write a synthetic BIDS study shaped like the reference ketamine study, with its "
                                   "ground truth (node maps, planted edges, true partial correlations) beside it.")
    p.add_argument("out", type=Path, help="output folder (created; holds bids/, truth/, the mask, study.toml)")
    p.add_argument("--preset", default="demo", help="tiny, demo or paper (default: demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--volumes", type=int, help="time points per run (default: the preset's)")
    p.add_argument("--realism", choices=["off", "realistic", "harsh"],
                   help="every realism factor at this level (default: the preset's; realistic for demo and paper)")
    p.add_argument("--factor", action="append", metavar="NAME=LEVEL",
                   help="one realism factor at a level (off, realistic, harsh), e.g. --factor spikes=harsh; factors: "
                        "misregistration, node_shapes, amplitude, spikes, drift, physio, run_lengths, noise")
    p.add_argument("--format", choices=["nifti", "cifti"], default="nifti",
                   help="nifti (default) or cifti: CIFTI dense time series over two synthetic cortical surfaces "
                        "(GIFTI, under surfaces/) and a volume part, with the same data as the NIfTI version")
    p.add_argument("--layout", choices=["bids", "hcp"], default="bids",
                   help="bids (default) or hcp: the CIFTI runs laid out as HCP pipeline outputs "
                        "(<subject>_V<session>_MR/MNINonLinear/Results/<run>/, with Movement_Regressors.txt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("ica", help="group ICA (MIGP + spatial ICA), dual regression stage 1, component labels",
                       description="Group ICA of every BOLD run of a study: MIGP group PCA, spatial ICA (MELODIC "
                                   "conventions), dual regression stage 1 of every run, and classification of the "
                                   "components as signal or noise on interpretable features.")
    p.add_argument("config", type=Path, help="study configuration (TOML)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--dataset", type=Path, help="BIDS dataset (default: the config's)")
    p.add_argument("--dim", type=_dimension,
                   help="number of components, or reproducibility, consistency, laplace, bic, mdl or aic to "
                        "estimate it (default: the config's [ica] dimension, else reproducibility)")
    p.add_argument("--max-dim", type=int, help="largest estimated dimension (default 200)")
    p.add_argument("--internal", type=int, help="MIGP internal dimension (default twice the longest run)")
    p.add_argument("--exact", action="store_true", help="exact concatenation PCA instead of MIGP (small studies)")
    p.add_argument("--no-vn", action="store_true", help="no voxel-wise variance normalisation")
    p.add_argument("--repeats", type=int, help="FastICA starts clustered for stability, ICASSO (default 10)")
    p.add_argument("--approach", choices=("deflation", "symmetric"),
                   help="FastICA's unmixing vectors all together or one at a time (default symmetric)")
    p.add_argument("--nonlinearity", choices=("pow3", "tanh", "gauss"),
                   help="FastICA's contrast, by MELODIC's names (default tanh)")
    p.add_argument("--highpass", type=float, help="high-pass cutoff in seconds before the group PCA (default: none)")
    p.add_argument("--run-components", type=_run_components,
                   help="whitened principal directions per run fed to MIGP: 'auto' (default: a quarter of its "
                        "time points, at least 50 in runs of 150 volumes or more), a fraction of its time points or a "
                        "count; 'none' feeds the data themselves (MELODIC's MIGP; needs --dim other than "
                        "consistency)")
    p.add_argument("--mask", type=Path, help="brain mask (default: the config's, else non-zero variance in all runs)")
    p.add_argument("--labels", type=Path, help="FIX-style labels file overriding the automatic classification")
    p.add_argument("--seed", type=int, help="random seed (default: the config's [ica] seed, else 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_ica)

    p = sub.add_parser("dualreg", help="dual regression of every run on given group maps (e.g. melodic_IC)",
                       description="Dual regression: stage 1 (time series per map per run, all maps as regressors, "
                                   "demeaned, as FSL) and optionally stage 2 (subject maps).")
    p.add_argument("config", type=Path, help="study configuration (TOML)")
    p.add_argument("--maps", type=Path, required=True, help="4D group maps (melodic_IC.nii.gz) or CIFTI dscalar")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--dataset", type=Path, help="BIDS dataset (default: the config's)")
    p.add_argument("--mask", type=Path, help="brain mask (default: the config's, else non-zero variance in all runs)")
    p.add_argument("--stage2", action="store_true", help="also write stage-2 subject maps (betas and t)")
    p.add_argument("--threshold", type=float,
                   help="stage 1 uses each map's voxels with |z| above this only (default: the config's [ica] "
                        "dr_threshold, else 3); 0 uses the whole maps, as FSL's dual_regression")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_dualreg)

    p = sub.add_parser("netmats", help="network matrices, group summaries and the edge table from node time series",
                       description="Network matrices (FSLNets style) from node time-series files: one file per run "
                                   "(FSL dual_regression dr_stage1_subject#####.txt, .npy or .tsv; time points x "
                                   "nodes). Writes per-run netmats, subject-session averages as an edge table, group "
                                   "mean and one-sample z, and the Ward ordering of nodes.")
    p.add_argument("inputs", nargs="+", type=Path, help="time-series files, or folders holding them")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--method", default="ridgep",
                   help="estimator of the analysed netmats: ridgep (default), partial, glasso, lw_partial, corr, "
                        "rcorr, cov, tangent")
    p.add_argument("--rho", type=float, default=0.1, help="ridgep regularisation (default 0.1)")
    p.add_argument("--alpha", type=float, default=0.01, help="glasso regularisation (default 0.01)")
    p.add_argument("--full", default="corr", help="estimator whose group z orders the nodes (default corr)")
    p.add_argument("--varnorm", type=int, default=0, choices=(0, 1, 2),
                   help="variance normalisation: 0 none, 1 per run, 2 per node (FSLNets varnorm)")
    nodes = p.add_mutually_exclusive_group()
    nodes.add_argument("--good-nodes", type=_node_numbers,
                       help="component numbers to keep, starting at 1 as in melodic_IC, e.g. 1,2,5-9")
    nodes.add_argument("--labels", type=Path, help="FIX-style labels file; the components it lists are removed")
    p.add_argument("--aggressive", action="store_true", help="regress the removed nodes out of the kept ones")
    p.add_argument("--rtoz", choices=("fslnets", "fisher", "none"),
                   help="r-to-z: FSLNets' AR(1)-null scaled z (default for correlations), plain Fisher z, or none")
    p.add_argument("--seed", type=int, default=0, help="seed of the r-to-z null (default 0)")
    p.add_argument("--fslnets-compat", action="store_true",
                   help="group one-sample z with the population SD, as the Python FSLNets port")
    p.add_argument("--clusters", type=int, help="number of Ward clusters (default from the node count)")
    p.add_argument("--subjects", type=Path,
                   help="TSV mapping dr_stage1 file numbers (row order) to participant_id, session_id, run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_netmats)

    p = sub.add_parser("analyses", help="the study's declared analyses and predictions, post-hoc statistics and "
                                        "demographics",
                       description="Run the analyses and cross-validated predictions declared in the study "
                                   "configuration on an edge table, follow up significant edges (FC per group and "
                                   "session, clinical correlations, time x remission mixed model) and build the "
                                   "demographics table.")
    p.add_argument("config", type=Path, help="study configuration (TOML) with [analyses.*], [predict.*] and [posthoc]")
    p.add_argument("--edges", type=Path, required=True, help="edge table (.npy written by 'icanets netmats')")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--dataset", type=Path, help="BIDS dataset (default: the config's)")
    p.add_argument("--only", nargs="+", help="run only these analyses or predictions")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_analyses)

    p = sub.add_parser("glm", help="edge-wise GLM with permutation inference (FWE, FDR, NBS)",
                       description="Edge-wise general linear model with permutation inference on an edge table "
                                   "(as written by 'icanets netmats'), from a formula over participant variables "
                                   "or from FSL design files.")
    p.add_argument("--edges", type=Path, required=True, help="edge table: the .npy written by 'icanets netmats'")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--session", help="use only the edge-table rows of this session (e.g. ses-1)")
    p.add_argument("--formula", help="design formula over participant variables, e.g. '~ group + age + sex'")
    p.add_argument("--participants", type=Path, help="participants.tsv holding the formula's variables")
    p.add_argument("--contrast", type=_named, action="append",
                   help="NAME=EXPR over design columns, e.g. 'HC>MDD=-group[T.MDD]' (repeatable)")
    p.add_argument("--ftest", type=_named, action="append", help="NAME=contrast1,contrast2 (repeatable)")
    p.add_argument("--design", type=Path, help="FSL design.mat (rows in edge-table order)")
    p.add_argument("--contrasts", type=Path, help="FSL design.con")
    p.add_argument("--fts", type=Path, help="FSL design.fts")
    p.add_argument("--blocks", help="exchangeability blocks: FSL design.grp, or with --formula a participant column")
    p.add_argument("--whole-blocks", action="store_true", help="permute whole blocks instead of within blocks")
    p.add_argument("--paired", help="FIRST,SECOND sessions: test SECOND - FIRST in subjects with both, by sign "
                                    "flipping (both directions as contrasts)")
    p.add_argument("--subjects-where", help="with --paired: only subjects with COLUMN=VALUE in --participants")
    p.add_argument("--flip", action="store_true", help="sign flipping (one-sample and paired tests)")
    p.add_argument("--permute", action="store_true", help="with --flip: also permute")
    p.add_argument("-n", "--n-perm", type=int, default=5000, help="permutations (default 5000; exhaustive if fewer exist)")
    p.add_argument("--method", default="freedman-lane", choices=("freedman-lane", "ter-braak", "draper-stoneman"),
                   help="nuisance method (default freedman-lane)")
    p.add_argument("--tails", type=int, default=DEFAULT_TAILS, choices=(1, 2),
                   help=f"t tests: 1 (contrast > 0, as randomise) or 2 (|t|); default {DEFAULT_TAILS}, as for "
                        f"study analyses")
    p.add_argument("--fwe-across", action="store_true", help="also FWE-correct over all t contrasts")
    p.add_argument("--nbs-threshold", type=float, help="also run the Network-Based Statistic at this threshold")
    p.add_argument("--nbs-measure", default="extent", choices=("extent", "intensity"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_cmd_glm)
    return parser


def _os_error(exc: OSError) -> str:
    """An operating-system error in words, with the file it concerns and what to do."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    advice = {errno.ENOSPC: "the disk is full: free space or choose another output folder",
              errno.EDQUOT: "the disk quota is exceeded: free space or choose another output folder",
              errno.EACCES: "permission denied: choose a folder you can write to",
              errno.EPERM: "operation not permitted: choose a folder you can write to",
              errno.EROFS: "the file system is read-only: choose another output folder"}.get(exc.errno)
    return f"{exc.strerror or exc}{where}" + (f"; {advice}" if advice else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``icanets`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except IcanetsError as exc:
        print(f"icanets {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only or full disk, a missing file: say which, not a traceback
        print(f"icanets {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
