"""The Study: who was scanned, when, with which runs, and their clinical variables.

:func:`load_study` reads a BIDS dataset (see :mod:`icanets.io.bids`), validates it and
returns a frozen :class:`Study`. Every inconsistency is an error naming the file, subject
and column at fault, except sessions listed without a BOLD run, which are kept (with
``n_runs == 0``), warned about and listed in the summary: nothing is dropped silently.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from icanets.config import StudyConfig
from icanets.errors import BIDSError, ExpressionError, LabelWarning, MissingDataWarning, StudyError
from icanets.io.bids import (BoldFile, bold_filename, find_bold_files, find_hcp_files, read_participants, read_sessions,
                             read_sessions_table, sidecar_metadata)
from icanets.io.images import ImageInfo, check_image_data, read_image_info

__all__ = ["Run", "Study", "StudySummary", "load_study"]

_TR_TOLERANCE = 1e-3  # seconds
#: Columns of ``Study.sessions`` that count runs, not per-session measures.
BOOKKEEPING_COLUMNS = ("n_runs", "n_runs_excluded")


@dataclass(frozen=True)
class Run:
    """One preprocessed BOLD run.

    Attributes
    ----------
    subject : str
        ``sub-<label>``.
    session : str or None
        ``ses-<label>``, None for a dataset without sessions.
    entities : dict
        All BIDS entities of the file name.
    path : Path
    kind : str
        ``"nifti"`` or ``"cifti"``.
    tr : float
        Repetition time in seconds.
    n_volumes : int
    shape : tuple of int
        Spatial shape, or ``(n_grayordinates,)``.
    grid : str
        Voxel grid or grayordinate space key (equal across runs).
    """

    subject: str
    session: str | None
    entities: Mapping[str, str]
    path: Path
    kind: str
    tr: float
    n_volumes: int
    shape: tuple[int, ...]
    grid: str

    @property
    def name(self) -> str:
        """The file name without extension, e.g. ``sub-01_ses-1_task-rest_run-1_bold``; for a
        file not named as BIDS (HCP layout), the BIDS name of its entities, e.g.
        ``sub-100307_task-REST_dir-LR_run-1_bold``."""
        name = self.path.name
        if not name.startswith("sub-"):
            return bold_filename(self.entities, "")
        for ext in (".dtseries.nii", ".nii.gz", ".nii"):
            if name.endswith(ext):
                return name[: -len(ext)]
        return name

    @property
    def run_label(self) -> str | None:
        return self.entities.get("run")


@dataclass(frozen=True)
class Study:
    """A validated study.

    Attributes
    ----------
    root : Path
        The BIDS dataset.
    config : StudyConfig
    participants : DataFrame
        Index ``participant_id``; numeric columns as float (NaN missing), others as text
        (None missing).
    sessions : DataFrame
        One row per (participant_id, session_id) that is listed in a ``sessions.tsv`` or
        has BOLD runs; per-session measures, ``n_runs`` (0 where listed without BOLD).
    runs : tuple of Run
        Every BOLD run used, sorted by subject, session and file name.
    derived : DataFrame
        Index ``participant_id``; one column per derived variable (float, NaN where
        undefined, or text).
    tr : float
        The common repetition time in seconds.
    warnings : tuple of str
        What was warned about while loading.
    motion : DataFrame or None
        One row per BOLD run found (index: the run's name), with its subject, session, motion
        file and the figures of :class:`icanets.qc.RunMotion`; ``excluded`` holds why the
        ``[motion]`` rules left a run out (those runs are not in ``runs``), and
        ``n_volumes_analysed`` (after censoring). None without motion files.
    cleaning : dict
        Run name -> :class:`icanets.qc.denoise.RunCleaning` for the runs that ``[motion]
        denoise`` or ``censor`` change.
    motion_params : dict
        Run name -> its ``(T, 6)`` motion parameters (mm, radians), for the runs used.
    """

    root: Path
    config: StudyConfig
    participants: pd.DataFrame
    sessions: pd.DataFrame
    runs: tuple[Run, ...]
    derived: pd.DataFrame
    tr: float
    warnings: tuple[str, ...] = field(default=())
    motion: pd.DataFrame | None = None
    cleaning: Mapping[str, object] = field(default_factory=dict)
    motion_params: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def excluded(self) -> pd.DataFrame:
        """Runs left out by the motion rules: subject, session and why (empty if none)."""
        if self.motion is None:
            return pd.DataFrame(columns=["participant_id", "session_id", "excluded"])
        return self.motion.loc[self.motion["excluded"] != "", ["participant_id", "session_id", "excluded"]]

    def exclusion_of(self, subject: str, session: str | None) -> str | None:
        """Why the motion rules excluded a subject-session's runs (all of them), or None."""
        if self.motion is None:
            return None
        rows = self.motion[(self.motion["participant_id"] == subject)
                           & (self.motion["session_id"] == (session or ""))]
        if len(rows) and (rows["excluded"] != "").all():
            return "excluded for motion: " + "; ".join(sorted(set(rows["excluded"])))
        return None

    @property
    def subjects(self) -> list[str]:
        return list(self.participants.index)

    @property
    def session_labels(self) -> list[str]:
        """Session labels present in the dataset, sorted naturally."""
        labels = {s for s in self.sessions.index.get_level_values("session_id") if s}
        return sorted(labels, key=_natural_key)

    @property
    def groups(self) -> pd.Series:
        return self.participants[self.config.group_column]

    def runs_of(self, subject: str, session: str | None = None) -> list[Run]:
        """The runs of a subject (in one session, given a label or a role)."""
        if session is not None:
            session = self.config.resolve_session(session)
        return [r for r in self.runs if r.subject == subject and (session is None or r.session == session)]

    def variables(self) -> pd.DataFrame:
        """Subject-level variables: the ``participants.tsv`` columns and derived variables."""
        return self.participants.join(self.derived)

    def session_measure(self, name: str, session: str) -> pd.Series:
        """A per-session measure for every subject (NaN/None where that session is missing)."""
        label = self.config.resolve_session(session)
        if label not in self.session_labels:
            raise StudyError(
                f"session {session!r} does not exist in {self.root} (sessions: {', '.join(self.session_labels)}"
                + (f"; roles: {', '.join(f'{k}={v}' for k, v in self.config.session_roles.items())})" if self.config.session_roles else ")")
            )
        if name not in self.sessions.columns or name in BOOKKEEPING_COLUMNS:
            measures = [c for c in self.sessions.columns if c not in BOOKKEEPING_COLUMNS]
            raise StudyError(f"no per-session measure {name!r}; sessions.tsv columns: {', '.join(measures) or 'none'}")
        rows = self.sessions.xs(label, level="session_id")[name]
        return rows.reindex(self.participants.index)

    def summary(self) -> StudySummary:
        """Counts per group, session and run, missing data and derived variables."""
        return _summarize(self)


@dataclass(frozen=True)
class StudySummary:
    """Tables that describe a study (see :meth:`Study.summary`).

    Attributes
    ----------
    groups : DataFrame
        Per group: ``n``, and per numeric column its mean and SD, per categorical column
        the counts of its levels.
    sessions : DataFrame
        Subjects with BOLD per session (rows) and group (columns), with a total.
    runs_per_session : DataFrame
        How many subject-sessions have 1, 2, ... runs, per session.
    missing : DataFrame
        Subject, session and what is missing: sessions listed without BOLD, and subjects
        without a session that at least half of their group has (a session only a
        minority of a group has, such as a retest subsample, is not counted as missing).
    derived : DataFrame
        Per derived variable: expression, N defined, N missing, and a summary.
    session_measures : DataFrame
        Per numeric per-session measure, session and group: N, mean (SD), and how many of
        those subject-sessions have BOLD.
    per_subject : DataFrame
        Per subject: group, sessions with BOLD and their runs (``ses-1:2 ses-3:1``), runs.
    n_subjects, n_runs : int
    tr : float
    n_volumes : tuple of int
        Distinct numbers of volumes.
    """

    groups: pd.DataFrame
    sessions: pd.DataFrame
    runs_per_session: pd.DataFrame
    missing: pd.DataFrame
    derived: pd.DataFrame
    session_measures: pd.DataFrame
    per_subject: pd.DataFrame
    n_subjects: int
    n_runs: int
    tr: float
    n_volumes: tuple[int, ...]


# --------------------------------------------------------------------------- loading
def load_study(root: Path | str | None = None, config: StudyConfig | None = None, *, check_data: bool = False) -> Study:
    """Read and validate a BIDS dataset.

    Parameters
    ----------
    root : Path, optional
        The dataset folder; default ``config.dataset``.
    config : StudyConfig, optional
        Filters, column types, session roles and derived variables; default: none.
    check_data : bool, default False
        Also read every image through to its end, to catch corrupt compressed files
        (headers are always checked).

    Returns
    -------
    Study

    Raises
    ------
    BIDSError, StudyError, ExpressionError
        See the module docstring; each names the file, subject and column at fault.
    """
    config = config if config is not None else StudyConfig()
    if root is None:
        if config.dataset is None:
            raise StudyError("no dataset given: pass its folder or set [study] dataset in the config")
        root = config.dataset
    root = Path(root)
    if not root.is_dir():
        raise BIDSError(f"dataset folder not found: {root}")
    notes: list[str] = []

    raw = read_participants(root)
    ppath = root / "participants.tsv"
    missing_cols = [c for c in config.required_columns if c not in raw.columns]
    if config.group_column != "group" and config.group_column not in raw.columns:
        missing_cols.append(config.group_column)  # a study without groups is allowed unless one is named
    if missing_cols:
        raise BIDSError(f"{ppath} lacks required column(s) {', '.join(sorted(set(missing_cols)))} (has: {', '.join(raw.columns)})")
    participants = _typed(raw, ppath, config.numeric_columns, config.categorical_columns, "participant_id")
    _check_levels(participants, ppath, config, notes)

    if config.layout == "hcp":
        bold_files = find_hcp_files(root, config.hcp, config.bold_filters)
        where = (f"{config.hcp['subject']}/{config.hcp['results']}/{config.hcp['run']}/{config.hcp['file']} "
                 f"(HCP layout)")
    else:
        bold_files = find_bold_files(root, config.bold_filters)
        where = "sub-*/[ses-*/]func/*_bold.nii[.gz] or .dtseries.nii"
    if not bold_files:
        filters = ", ".join(f"{k}-{v}" for k, v in config.bold_filters.items()) or "none"
        raise BIDSError(f"no BOLD files ({where}) in {root} (filters: {filters})")
    _check_subjects(bold_files, participants, ppath)
    _check_duplicates(bold_files)

    sessions = _collect_sessions(root, participants, bold_files, config, notes)
    runs = _read_runs(root, bold_files, check_data)
    _check_run_lengths(runs, config.min_volumes)
    tr = _common_tr(runs)
    _common_grid(runs)
    runs, motion, sessions, cleaning, params = _read_motion(runs, sessions, config, notes)

    study = Study(root=root, config=config, participants=participants, sessions=sessions, runs=tuple(runs),
                  derived=pd.DataFrame(index=participants.index), tr=tr, warnings=tuple(notes), motion=motion,
                  cleaning=cleaning, motion_params=params)
    derived = _evaluate_derived(study)
    return replace(study, derived=derived)


#: Per-session motion measures added to ``Study.sessions`` (usable as ``mean_fd@TP1`` and in formulas).
MOTION_MEASURES = ("mean_fd", "max_fd", "fraction_high_motion")


def _read_motion(runs: list[Run], sessions: pd.DataFrame, config: StudyConfig,
                 notes: list[str]) -> tuple[list[Run], pd.DataFrame | None, pd.DataFrame, dict, dict]:
    """Find and read every run's motion file, apply the exclusion rules, and add the
    per-session measures; without motion files (``source = "auto"``), change nothing."""
    from icanets.io.motion import find_motion_file, read_motion
    from icanets.qc.denoise import run_cleaning
    from icanets.qc.motion import motion_settings, run_motion, session_motion

    settings = motion_settings(dict(config.motion))
    if settings.source == "none":
        if settings.excludes or settings.cleans:
            raise StudyError("[motion] source = 'none' cannot be combined with exclusion rules, denoising or censoring")
        return runs, None, sessions, {}, {}
    found = {r.path: find_motion_file(r.path, dict(r.entities), settings.source) for r in runs}
    missing = [r for r in runs if found[r.path] is None]
    if len(missing) == len(runs) and settings.source == "auto":
        if settings.excludes or settings.cleans:
            raise StudyError("[motion] sets exclusion rules, denoising or censoring, but no run has a motion file beside it "
                             "(fMRIPrep *_desc-confounds_timeseries.tsv, HCP Movement_Regressors.txt or mcflirt .par)")
        return runs, None, sessions, {}, {}
    if missing:
        listed = "; ".join(str(r.path) for r in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise StudyError(f"motion files ({settings.source}) found for {len(runs) - len(missing)} of {len(runs)} runs; "
                         f"none beside: {listed}")
    clash = [m for m in MOTION_MEASURES if m in sessions.columns]
    if clash:
        raise StudyError(f"sessions.tsv column(s) {', '.join(clash)} clash with the motion measures icanets computes; "
                         f"rename them")
    if settings.denoise != "none":
        other = sorted({kind for _, kind in found.values()} - {"fmriprep"})
        if other:
            raise StudyError(f"[motion] denoise = {settings.denoise!r} uses nilearn's fMRIPrep confound loader, but "
                             f"some runs have {', '.join(other)} motion files; use censor = true, or fMRIPrep outputs")
    rows, kept, per_session, cleaning, params = [], [], {}, {}, {}
    for run in runs:
        path, kind = found[run.path]
        data = read_motion(path, kind, columns=settings.columns or None, rotations=settings.rotations,
                           n_volumes=run.n_volumes)
        motion = run_motion(data.params, settings, file_fd=data.fd, file_dvars=data.dvars, where=str(path))
        clean = None
        if motion.excluded is None and settings.cleans:
            clean = run_cleaning(run.path, run.n_volumes, motion.fd, strategy=settings.denoise,
                                 options=dict(settings.denoise_options), censor=settings.censor,
                                 fd_threshold=settings.fd_threshold)
            left = clean.n_kept if clean is not None else None
            if left is not None and settings.min_volumes_kept is not None and left < settings.min_volumes_kept:
                how = "censoring" if settings.denoise == "none" else f"{settings.denoise} and censoring" \
                    if settings.censor else settings.denoise
                motion = replace(motion, excluded=f"{left} volumes left after {how} (< {settings.min_volumes_kept})")
        rows.append({"run": run.name, "participant_id": run.subject, "session_id": run.session or "",
                     "n_volumes": run.n_volumes, "motion_file": str(path), "source": kind, **motion.row()})
        if motion.excluded is None:
            kept.append(run)
            per_session.setdefault((run.subject, run.session or ""), []).append(motion)
            cleaning[run.name] = clean
            params[run.name] = data.params
    table = pd.DataFrame(rows).set_index("run")
    n_out = int((table["excluded"] != "").sum())
    if n_out:
        notes.append(f"{n_out} of {len(runs)} runs excluded for motion ({'; '.join(settings.rules())})")
    if not kept:
        raise StudyError(f"the [motion] rules ({'; '.join(settings.rules())}) exclude every run")
    sessions = sessions.copy()
    keys = list(zip(sessions.index.get_level_values(0), sessions.index.get_level_values(1)))
    figures = [session_motion(per_session.get(k, [])) for k in keys]
    for measure in MOTION_MEASURES:
        sessions[measure] = [f[measure] for f in figures]
    sessions["n_runs_excluded"] = [int(((table["participant_id"] == p) & (table["session_id"] == s)
                                        & (table["excluded"] != "")).sum()) for p, s in keys]
    sessions["n_runs"] = sessions["n_runs"] - sessions["n_runs_excluded"]
    table["n_volumes_analysed"] = [(cleaning[name].n_kept if cleaning.get(name) is not None
                                    and cleaning[name].keep is not None else n) if not excluded else 0
                                   for name, n, excluded in zip(table.index, table["n_volumes"], table["excluded"])]
    short = table[(table["excluded"] == "") & (table["n_volumes_analysed"] < config.min_volumes)]
    if len(short):
        listed = "; ".join(f"{name} ({n})" for name, n in short["n_volumes_analysed"].head(5).items())
        raise StudyError(f"{len(short)} run(s) keep fewer than {config.min_volumes} volumes ([bold] min_volumes) after "
                         f"censoring or scrubbing: {listed}; exclude such runs with [motion] min_volumes_kept "
                         f"(which counts the volumes left after them)")
    return kept, table, sessions, {k: v for k, v in cleaning.items() if v is not None}, params


def _natural_key(label: str) -> tuple:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label))


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return np.nan
    try:
        return float(value)
    except ValueError:
        return None


def _typed(raw: pd.DataFrame, path: Path, numeric: tuple[str, ...], categorical: tuple[str, ...], id_name: str) -> pd.DataFrame:
    """Give each column its type; a bad value in a numeric column is an error naming it."""
    unknown = [c for c in (*numeric, *categorical) if c not in raw.columns]
    if unknown and raw.shape[0] and id_name == "participant_id":
        raise BIDSError(f"{path}: column(s) {', '.join(unknown)} declared in the config are missing (has: {', '.join(raw.columns)})")
    out = pd.DataFrame(index=raw.index)
    for column in raw.columns:
        values = list(raw[column])
        parsed = [_parse_float(v) for v in values]
        bad = [(i, v) for i, (v, p) in enumerate(zip(values, parsed)) if p is None]
        present = sum(v is not None for v in values)
        if column in categorical:
            out[column] = pd.Series(values, index=raw.index, dtype=object)
            continue
        looks_numeric = present > 0 and len(bad) <= present / 2
        if column in numeric or (looks_numeric and bad):
            if bad:
                i, value = bad[0]
                hint = "" if column in numeric else " (declare the column categorical in the config if it is not a number)"
                more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
                raise StudyError(
                    f"{path} line {i + 2}, {raw.index.name} {raw.index[i]}, column {column!r}: "
                    f"non-numeric value {value!r}{more}{hint}"
                )
            out[column] = np.array(parsed, dtype=float)
        elif looks_numeric:
            out[column] = np.array(parsed, dtype=float)
        else:
            out[column] = pd.Series(values, index=raw.index, dtype=object)
    return out


def _check_run_lengths(runs: list[Run], min_volumes: int) -> None:
    short = [r for r in runs if r.n_volumes < min_volumes]
    if short:
        listed = "; ".join(f"{r.path} ({r.n_volumes})" for r in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise StudyError(f"{len(short)} BOLD run(s) have fewer than {min_volumes} volumes ([bold] min_volumes): "
                         f"{listed}{more}. Such runs make noisy netmats and change the r-to-z scale of every "
                         f"run; remove them from the dataset (or select runs with [bold] filters), or lower "
                         f"[bold] min_volumes")


#: A group with fewer members than this is too small for the group tests it enters.
_MIN_GROUP = 3


def _check_levels(participants: pd.DataFrame, ppath: Path, config: StudyConfig, notes: list[str]) -> None:
    """Declared levels are the only values allowed; labels differing only in case, and groups
    too small for a test, are warned about (and listed in the study's warnings)."""
    def note(message: str) -> None:
        notes.append(message)
        warnings.warn(message, LabelWarning, stacklevel=4)

    for column, allowed in config.levels.items():
        if column not in participants.columns:
            raise StudyError(f"[participants] levels names column {column!r}, which {ppath} lacks "
                             f"(has: {', '.join(participants.columns)})")
        values = participants[column]
        bad = [(pid, v) for pid, v in values.items() if v is not None and not pd.isna(v) and str(v) not in allowed]
        if bad:
            shown = ", ".join(f"{pid} has {v!r}" for pid, v in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise StudyError(f"{ppath}, column {column!r}: values outside the declared levels "
                             f"{list(allowed)} ([participants] levels): {shown}")
    columns = dict.fromkeys([config.group_column, *config.categorical_columns, *config.levels])
    for column in columns:
        if column not in participants.columns or participants[column].dtype != object:
            continue
        counts = participants[column].dropna().astype(str).value_counts()
        by_case: dict[str, list[str]] = {}
        for label in counts.index:
            by_case.setdefault(label.strip().casefold(), []).append(label)
        for variants in by_case.values():
            if len(variants) > 1:
                note(f"{ppath}, column {column!r}: labels {', '.join(repr(v) for v in sorted(variants))} differ only in "
                     f"case or spaces and make separate levels (a typo?); declare the levels with [participants] "
                     f"levels to make this an error")
        if column == config.group_column and len(counts) > 1:
            small = {label: int(n) for label, n in counts.items() if n < _MIN_GROUP}
            if small:
                note(f"{ppath}, column {column!r}: group(s) " + ", ".join(f"{k!r} ({v} subject{'s' if v > 1 else ''})"
                                                                           for k, v in small.items())
                     + f" have fewer than {_MIN_GROUP} subjects: too few for a group comparison or a chi-square test")


def _check_subjects(bold_files: list[BoldFile], participants: pd.DataFrame, ppath: Path) -> None:
    listed = set(participants.index)
    strays = [b for b in bold_files if b.subject not in listed]
    if strays:
        names = ", ".join(sorted({b.subject for b in strays}))
        raise StudyError(f"BOLD files of subject(s) not in {ppath}: {names} (e.g. {strays[0].path})")
    scanned = {b.subject for b in bold_files}
    unscanned = [s for s in participants.index if s not in scanned]
    if unscanned:
        raise StudyError(
            f"subject(s) listed in {ppath} without any BOLD run matching the filters: {', '.join(unscanned)}"
        )
    with_ses = {b.subject for b in bold_files if b.session is not None}
    without = {b.subject for b in bold_files if b.session is None}
    if with_ses and without:
        raise StudyError(f"subject(s) {', '.join(sorted(without))} have BOLD files without a session while others have sessions")


def _check_duplicates(bold_files: list[BoldFile]) -> None:
    seen: dict[tuple, Path] = {}
    for bold in bold_files:
        key = tuple(sorted(bold.entities.items()))
        if key in seen:
            raise StudyError(f"two BOLD files with the same entities: {seen[key]} and {bold.path}")
        seen[key] = bold.path


def _collect_sessions(root: Path, participants: pd.DataFrame, bold_files: list[BoldFile], config: StudyConfig,
                      notes: list[str]) -> pd.DataFrame:
    runs_per = Counter((b.subject, b.session or "") for b in bold_files)
    tables = []
    common = config.sessions_table
    if common is None and config.layout == "hcp" and (root / "sessions.tsv").is_file():
        common = root / "sessions.tsv"
    by_subject = read_sessions_table(common) if common is not None else None
    if by_subject is not None:
        unknown = sorted(set(by_subject) - set(participants.index))
        if unknown:
            raise BIDSError(f"{common} lists subject(s) not in participants.tsv: {', '.join(unknown[:10])}")
    for subject in participants.index:
        if by_subject is not None:
            table, path = by_subject.get(subject), common
        else:
            table, path = read_sessions(root, subject), root / subject / f"{subject}_sessions.tsv"
        listed: set[str] = set()
        if table is not None:
            table = _typed(table, path, config.session_numeric, (), "session_id")
            table.insert(0, "participant_id", subject)
            tables.append(table.reset_index())
            listed = set(table.index)
            for session in sorted(listed, key=_natural_key):
                if runs_per.get((subject, session), 0) == 0:
                    message = f"{subject} {session} is listed in {path.name} but has no BOLD run"
                    notes.append(message)
                    warnings.warn(message, MissingDataWarning, stacklevel=3)
        scanned = sorted({s for (sub, s) in runs_per if sub == subject}, key=_natural_key)
        extra = [s for s in scanned if s not in listed]
        if table is not None and extra and extra != [""]:
            message = f"{subject} has BOLD runs in {', '.join(extra)} not listed in its sessions.tsv (measures missing)"
            notes.append(message)
            warnings.warn(message, MissingDataWarning, stacklevel=3)
        if extra:
            tables.append(pd.DataFrame({"participant_id": subject, "session_id": extra}))
    sessions = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["participant_id", "session_id"])
    measures = [c for c in sessions.columns if c not in ("participant_id", "session_id")]
    for column in measures:
        if sessions[column].dtype == object:
            sessions[column] = sessions[column].astype(object).where(sessions[column].notna(), None)
    declared_missing = [c for c in config.session_numeric if c not in measures]
    if declared_missing:
        raise StudyError(f"per-session measure(s) {', '.join(declared_missing)} declared in the config appear in no sessions.tsv")
    sessions["n_runs"] = [runs_per.get((p, s), 0) for p, s in zip(sessions["participant_id"], sessions["session_id"])]
    sessions = sessions.set_index(["participant_id", "session_id"])
    order = sorted(sessions.index, key=lambda k: (list(participants.index).index(k[0]), _natural_key(k[1])))
    return sessions.loc[order]


def _read_runs(root: Path, bold_files: list[BoldFile], check_data: bool) -> list[Run]:
    runs = []
    for bold in bold_files:
        info: ImageInfo = read_image_info(bold.path)
        if check_data:
            check_image_data(bold.path)
        meta = sidecar_metadata(root, bold)
        tr_json = meta.get("RepetitionTime")
        if tr_json is not None:
            if not isinstance(tr_json, (int, float)) or tr_json <= 0:
                raise StudyError(f"RepetitionTime {tr_json!r} in the JSON sidecar of {bold.path} is not a positive number")
            tr_json = float(tr_json)
        if tr_json is not None and info.tr is not None and abs(tr_json - info.tr) > _TR_TOLERANCE:
            raise StudyError(
                f"TR conflict for {bold.path}: JSON sidecar RepetitionTime = {tr_json:g} s, image header = {info.tr:.6g} s"
            )
        tr = tr_json if tr_json is not None else info.tr
        if tr is None:
            raise StudyError(f"no TR for {bold.path}: neither a JSON sidecar RepetitionTime nor a header TR")
        runs.append(Run(subject=bold.subject, session=bold.session, entities=dict(bold.entities), path=bold.path,
                        kind=info.kind, tr=tr, n_volumes=info.n_volumes, shape=info.shape, grid=info.grid))
    return runs


def _majority_outliers(runs: list[Run], key) -> tuple[object, list[Run]]:
    counts = Counter(key(r) for r in runs)
    common = counts.most_common(1)[0][0]
    return common, [r for r in runs if key(r) != common]


def _common_tr(runs: list[Run]) -> float:
    common, odd = _majority_outliers(runs, lambda r: round(r.tr, 3))
    if odd:
        listed = "; ".join(f"{r.path.name}: {r.tr} s" for r in odd[:5])
        raise StudyError(f"runs differ in TR: most have {common} s, but {listed}" + (f" and {len(odd) - 5} more" if len(odd) > 5 else ""))
    return float(runs[0].tr)


def _common_grid(runs: list[Run]) -> None:
    kinds = {r.kind for r in runs}
    if len(kinds) > 1:
        raise StudyError("the dataset mixes NIfTI and CIFTI BOLD runs; select one with [bold] filters (e.g. space)")
    common, odd = _majority_outliers(runs, lambda r: r.grid)
    if odd:
        first = odd[0]
        raise StudyError(
            f"runs differ in voxel grid: {first.path} has {first.grid}, most runs have {common}"
            + (f" ({len(odd)} runs differ)" if len(odd) > 1 else "")
        )


# --------------------------------------------------------------------------- derived variables
@dataclass(frozen=True)
class _StudyContext:
    study: Study
    derived: Mapping[str, np.ndarray]
    n: int

    def value(self, name: str, session: str | None) -> np.ndarray:
        study = self.study
        if session is None:
            if name in self.derived:
                return self.derived[name]
            if name in study.participants.columns:
                return study.participants[name].to_numpy()
            measures = [c for c in study.sessions.columns if c not in BOOKKEEPING_COLUMNS]
            hint = f"; per-session measures need a session, e.g. {name}[ses-1]" if name in measures else ""
            known = list(study.participants.columns) + list(self.derived)
            raise ExpressionError(f"unknown variable {name!r}{hint} (known: {', '.join(known)})")
        try:
            return study.session_measure(name, session).to_numpy()
        except StudyError as exc:
            raise ExpressionError(str(exc)) from None


def _evaluate_derived(study: Study) -> pd.DataFrame:
    values: dict[str, np.ndarray] = {}
    for name, expression in study.config.derived.items():
        if name in study.participants.columns:
            raise ExpressionError(f"derived variable {name!r} would replace the participants.tsv column of that name")
        ctx = _StudyContext(study, values, len(study.participants))
        values[name] = expression.evaluate(ctx)
    frame = pd.DataFrame(index=study.participants.index)
    for name, array in values.items():
        frame[name] = array if array.dtype != object else pd.Series(array, index=frame.index, dtype=object)
    return frame


# --------------------------------------------------------------------------- summary
def _summarize(study: Study) -> StudySummary:
    group_col = study.config.group_column
    part = study.participants
    has_groups = group_col in part.columns
    grouping = part[group_col].fillna("n/a") if has_groups else pd.Series("all", index=part.index)

    rows = {}
    for group, members in part.groupby(grouping, sort=True):
        row: dict[str, object] = {"n": len(members)}
        for column in part.columns:
            if column == group_col:
                continue
            if part[column].dtype.kind == "f":
                values = members[column].dropna()
                row[f"{column} mean (SD)"] = f"{values.mean():.2f} ({values.std(ddof=1):.2f})" if len(values) > 1 else (
                    f"{values.mean():.2f}" if len(values) else "n/a")
            else:
                counts = members[column].fillna("n/a").value_counts().sort_index()
                if 1 < len(part[column].dropna().unique()) <= 6:
                    row[column] = ", ".join(f"{k}: {v}" for k, v in counts.items())
        rows[group] = row
    groups = pd.DataFrame.from_dict(rows, orient="index")
    groups.index.name = group_col if has_groups else "group"

    scanned = study.sessions[study.sessions["n_runs"] > 0].reset_index()
    scanned["group"] = grouping.reindex(scanned["participant_id"]).to_numpy()
    if study.session_labels:
        sessions = pd.crosstab(scanned["session_id"], scanned["group"], margins=True, margins_name="total")
        roles = {v: k for k, v in study.config.session_roles.items()}
        sessions.index = [f"{s} ({roles[s]})" if s in roles else s for s in sessions.index]
        sessions.index.name = "session"
    else:
        sessions = pd.DataFrame({"subjects": [len(part)]}, index=["(no sessions)"])
    runs_per = study.sessions[study.sessions["n_runs"] > 0].reset_index()
    runs_per_session = pd.crosstab(runs_per["session_id"].replace("", "(none)"), runs_per["n_runs"])
    runs_per_session.columns = [f"{c} run{'s' if c != 1 else ''}" for c in runs_per_session.columns]
    runs_per_session.index.name = "session"

    missing_rows = []
    for (subject, session), row in study.sessions.iterrows():
        if row["n_runs"] == 0:
            why = study.exclusion_of(subject, session)
            missing_rows.append((subject, session, why or "listed in sessions.tsv, no BOLD run"))
    if study.session_labels:
        for group, members in part.groupby(grouping, sort=True):
            group_sessions = scanned[scanned["group"] == group]["session_id"].unique()
            for session in sorted(group_sessions, key=_natural_key):
                have = set(scanned[(scanned["group"] == group) & (scanned["session_id"] == session)]["participant_id"])
                if len(have) < len(members) / 2:
                    continue  # a subsample scanned by design (e.g. a retest), not missing data
                for subject in members.index:
                    if subject not in have and (subject, session) not in study.sessions.index:
                        missing_rows.append((subject, session, f"no {session} (others in group {group} have it)"))
    missing = pd.DataFrame(missing_rows, columns=["participant_id", "session_id", "what"])

    measure_rows = []
    scanned_idx = study.sessions.index[study.sessions["n_runs"] > 0]
    numeric_measures = [c for c in study.sessions.columns if c not in BOOKKEEPING_COLUMNS and study.sessions[c].dtype.kind == "f"]
    roles = {v: k for k, v in study.config.session_roles.items()}
    for column in numeric_measures:
        for session in study.session_labels:
            for group in sorted(grouping.unique()):
                rows_ = [(p, session) for p in grouping.index[grouping == group] if (p, session) in study.sessions.index]
                values = study.sessions.loc[rows_, column].dropna() if rows_ else pd.Series(dtype=float)
                if values.empty:
                    continue
                n_scanned = sum(r in scanned_idx for r in rows_)
                measure_rows.append((column, f"{session} ({roles[session]})" if session in roles else session, group,
                                     len(values), f"{values.mean():.2f} ({values.std(ddof=1):.2f})" if len(values) > 1
                                     else f"{values.mean():.2f}", n_scanned))
    session_measures = pd.DataFrame(measure_rows, columns=["measure", "session", "group", "n", "mean (SD)", "n_with_bold"])

    derived_rows = []
    for name, expression in study.config.derived.items():
        values = study.derived[name]
        defined = values.notna() if values.dtype != object else values.map(lambda v: v is not None)
        n_def = int(defined.sum())
        if values.dtype.kind == "f" and set(np.unique(values.dropna())) <= {0.0, 1.0}:
            desc = f"true: {int((values == 1).sum())}, false: {int((values == 0).sum())}"
        elif values.dtype.kind == "f":
            v = values.dropna()
            desc = f"mean {v.mean():.2f} (SD {v.std(ddof=1):.2f}), range {v.min():.2f} to {v.max():.2f}" if len(v) > 1 else ""
        else:
            desc = ", ".join(f"{k}: {c}" for k, c in values.dropna().value_counts().items())
        derived_rows.append((name, expression.text, n_def, len(values) - n_def, desc))
    derived = pd.DataFrame(derived_rows, columns=["variable", "expression", "n_defined", "n_missing", "summary"])

    per_subject_rows = []
    for subject in part.index:
        rows_ = study.sessions.xs(subject, level="participant_id") if subject in study.sessions.index.get_level_values(0) \
            else pd.DataFrame(columns=["n_runs"])
        scanned_sessions = [f"{ses or '(none)'}:{int(n)}" for ses, n in rows_["n_runs"].items() if n > 0]
        per_subject_rows.append((subject, grouping[subject], " ".join(scanned_sessions), int(rows_["n_runs"].sum())))
    per_subject = pd.DataFrame(per_subject_rows, columns=["participant_id", "group", "sessions:runs", "runs"])

    return StudySummary(
        groups=groups, sessions=sessions, runs_per_session=runs_per_session, missing=missing, derived=derived,
        per_subject=per_subject,
        session_measures=session_measures,
        n_subjects=len(part), n_runs=len(study.runs), tr=study.tr,
        n_volumes=tuple(sorted({r.n_volumes for r in study.runs})),
    )
