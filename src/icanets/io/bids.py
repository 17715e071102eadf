"""Discovery of BIDS datasets: file-name entities, BOLD runs, sidecars and tables.

Only the parts of BIDS that a resting-state connectomics study needs are read:
``participants.tsv``, ``sub-<label>/sub-<label>_sessions.tsv``, and preprocessed BOLD
runs (BIDS derivatives from fMRIPrep or the HCP pipelines) as NIfTI (``.nii``,
``.nii.gz``) or CIFTI (``.dtseries.nii``), with their JSON sidecars found by the BIDS
inheritance principle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from icanets.errors import BIDSError

__all__ = [
    "BoldFile",
    "ENTITY_ORDER",
    "find_bold_files",
    "parse_entities",
    "read_tsv",
    "read_participants",
    "read_sessions",
    "sidecar_metadata",
    "bold_filename",
    "find_hcp_files",
    "read_sessions_table",
]

#: The entities icanets reads from a BOLD file name, in their BIDS order.
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "space", "res", "den", "desc")

_BOLD_SUFFIXES = (".dtseries.nii", ".nii.gz", ".nii")
_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
MISSING_VALUES = ("n/a", "N/A", "NA", "nan", "NaN", "")


@dataclass(frozen=True)
class BoldFile:
    """One BOLD file found in a dataset.

    Attributes
    ----------
    path : Path
        The image file.
    entities : dict
        Entity -> label, e.g. ``{"sub": "01", "ses": "1", "task": "rest", "run": "1"}``.
    extension : str
        ``".nii"``, ``".nii.gz"`` or ``".dtseries.nii"``.
    """

    path: Path
    entities: Mapping[str, str]
    extension: str

    @property
    def subject(self) -> str:
        return f"sub-{self.entities['sub']}"

    @property
    def session(self) -> str | None:
        ses = self.entities.get("ses")
        return None if ses is None else f"ses-{ses}"

    @property
    def is_cifti(self) -> bool:
        return self.extension == ".dtseries.nii"


def parse_entities(name: str) -> tuple[dict[str, str], str, str]:
    """Split a BIDS file name into its entities, suffix and extension.

    Parameters
    ----------
    name : str
        A file name (not a path), e.g. ``sub-01_ses-1_task-rest_run-1_bold.nii.gz``.

    Returns
    -------
    entities : dict
        Entity key -> label, in file-name order.
    suffix : str
        e.g. ``"bold"``.
    extension : str
        e.g. ``".nii.gz"``; ``""`` if none.

    Examples
    --------
    >>> parse_entities("sub-01_ses-2_task-rest_run-1_desc-preproc_bold.nii.gz")
    ({'sub': '01', 'ses': '2', 'task': 'rest', 'run': '1', 'desc': 'preproc'}, 'bold', '.nii.gz')
    """
    extension = ""
    for ext in (*_BOLD_SUFFIXES, ".json", ".tsv"):
        if name.endswith(ext):
            extension = ext
            name = name[: -len(ext)]
            break
    parts = name.split("_")
    suffix = parts[-1] if parts and "-" not in parts[-1] else ""
    if suffix:
        parts = parts[:-1]
    entities: dict[str, str] = {}
    for part in parts:
        key, sep, label = part.partition("-")
        if not sep or not key or not label:
            raise BIDSError(f"file name part {part!r} is not a BIDS entity 'key-label' in {name + extension!r}")
        if key in entities:
            raise BIDSError(f"entity {key!r} appears twice in file name {name + extension!r}")
        entities[key] = label
    return entities, suffix, extension


def bold_filename(entities: Mapping[str, str], extension: str = ".nii.gz", suffix: str = "bold") -> str:
    """Compose a BIDS file name from entities, in BIDS entity order.

    Examples
    --------
    >>> bold_filename({"task": "rest", "sub": "01", "run": "2"})
    'sub-01_task-rest_run-2_bold.nii.gz'
    """
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise BIDSError(f"unknown BIDS entities {sorted(unknown)}; known: {', '.join(ENTITY_ORDER)}")
    parts = [f"{key}-{entities[key]}" for key in ENTITY_ORDER if key in entities]
    return "_".join(parts + [suffix]) + extension


def find_bold_files(root: Path, filters: Mapping[str, str | None] | None = None) -> list[BoldFile]:
    """Find the BOLD runs of a dataset.

    Parameters
    ----------
    root : Path
        The dataset folder (holding ``participants.tsv``).
    filters : dict, optional
        Entity -> required label (e.g. ``{"task": "rest", "space": "MNI152NLin6Asym"}``);
        None values are ignored.

    Returns
    -------
    list of BoldFile
        Sorted by path. Files under ``sub-*/[ses-*/]func/`` whose suffix is ``bold``.

    Raises
    ------
    BIDSError
        A BOLD file whose name does not parse, lacks ``sub``, or whose entities disagree
        with the folders it lies in.
    """
    root = Path(root)
    wanted = {k: v for k, v in (filters or {}).items() if v is not None}
    found = []
    for path in sorted(root.glob("sub-*/**/func/*_bold*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if not any(path.name.endswith(ext) for ext in _BOLD_SUFFIXES):
            continue
        entities, suffix, extension = parse_entities(path.name)
        if suffix != "bold":
            continue
        rel = path.relative_to(root).parts
        if "sub" not in entities:
            raise BIDSError(f"BOLD file without a 'sub' entity: {path}")
        if rel[0] != f"sub-{entities['sub']}":
            raise BIDSError(f"BOLD file {path} names subject sub-{entities['sub']} but lies in folder {rel[0]}")
        if len(rel) == 4 and rel[1] != f"ses-{entities.get('ses')}":
            raise BIDSError(f"BOLD file {path} names session ses-{entities.get('ses')} but lies in folder {rel[1]}")
        for key in ("sub", "ses"):
            if key in entities and not _LABEL_RE.match(entities[key]):
                raise BIDSError(f"{key} label {entities[key]!r} in {path} must be alphanumeric (BIDS)")
        if all(entities.get(key) == label for key, label in wanted.items()):
            found.append(BoldFile(path=path, entities=entities, extension=extension))
    return found


def sidecar_metadata(root: Path, bold: BoldFile) -> dict:
    """JSON metadata of a BOLD file by the BIDS inheritance principle.

    Sidecars named ``*_bold.json`` whose entities are a subset of the run's, in the dataset
    root, the subject folder, the session folder and the run's folder, are merged from the
    top down; deeper files override keys of shallower ones.
    """
    root = Path(root)
    folders = [root]
    rel = bold.path.parent.relative_to(root)
    for part in rel.parts:
        folders.append(folders[-1] / part)
    merged: dict = {}
    for folder in folders:
        for candidate in sorted(folder.glob("*_bold.json")):
            entities, suffix, _ = parse_entities(candidate.name)
            if suffix != "bold":
                continue
            if all(bold.entities.get(k) == v for k, v in entities.items()):
                try:
                    data = json.loads(candidate.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise BIDSError(f"cannot read JSON sidecar {candidate}: {exc}") from None
                if not isinstance(data, dict):
                    raise BIDSError(f"JSON sidecar {candidate} must hold an object, got {type(data).__name__}")
                merged.update(data)
    return merged


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a BIDS TSV as text (every column ``object``), with ``n/a`` and blanks as None.

    Types are decided later, column by column, so a bad value can be reported with its
    file, row and column.
    """
    path = Path(path)
    if not path.is_file():
        raise BIDSError(f"table not found: {path}")
    try:
        table = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, na_values=[], comment=None, engine="python"
        )
    except pd.errors.EmptyDataError:
        raise BIDSError(f"TSV {path} is empty: it needs a header row of column names (e.g. participant_id)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise BIDSError(f"cannot read TSV {path}: {exc}") from None
    columns = {}
    for column in table.columns:
        values = np.empty(len(table), dtype=object)
        values[:] = [None if _is_na(v) else str(v).strip() for v in table[column]]
        columns[str(column).strip()] = values
    return pd.DataFrame(columns, index=pd.RangeIndex(len(table)), dtype=object)


def _is_na(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() in MISSING_VALUES


def _check_id_column(table: pd.DataFrame, path: Path, column: str, prefix: str) -> None:
    if column not in table.columns:
        raise BIDSError(f"{path} has no {column!r} column (columns: {', '.join(table.columns)})")
    for row, value in enumerate(table[column], start=2):
        if value is None:
            raise BIDSError(f"{path} line {row}: empty {column}")
        if not value.startswith(prefix) or not _LABEL_RE.match(value[len(prefix):]):
            raise BIDSError(f"{path} line {row}: {column} {value!r} must look like '{prefix}<alphanumeric label>'")
    counts = table[column].value_counts()
    duplicated = sorted(counts[counts > 1].index)
    if duplicated:
        raise BIDSError(f"{path}: duplicate {column} {', '.join(duplicated)}")


def read_participants(root: Path) -> pd.DataFrame:
    """Read ``participants.tsv``: text columns, index ``participant_id``.

    Raises
    ------
    BIDSError
        Missing file or ``participant_id`` column, malformed or duplicate IDs.
    """
    path = Path(root) / "participants.tsv"
    table = read_tsv(path)
    _check_id_column(table, path, "participant_id", "sub-")
    return table.set_index("participant_id")


def read_sessions(root: Path, subject: str) -> pd.DataFrame | None:
    """Read ``sub-<label>/sub-<label>_sessions.tsv`` (index ``session_id``), or None if absent."""
    path = Path(root) / subject / f"{subject}_sessions.tsv"
    if not path.exists():
        return None
    table = read_tsv(path)
    _check_id_column(table, path, "session_id", "ses-")
    return table.set_index("session_id")


_HCP_GROUPS = ("sub", "ses", "task", "acq", "dir", "run")


def _hcp_pattern(pattern: str, what: str) -> re.Pattern:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise BIDSError(f"[hcp] {what} is not a regular expression: {exc}") from None
    unknown = set(compiled.groupindex) - set(_HCP_GROUPS)
    if unknown:
        raise BIDSError(f"[hcp] {what} names group(s) {sorted(unknown)}; allowed: {', '.join(_HCP_GROUPS)}")
    return compiled


def find_hcp_files(root: Path, settings: Mapping[str, str], filters: Mapping[str, str | None] | None = None
                   ) -> list[BoldFile]:
    """Find the runs of a folder of HCP pipeline outputs.

    Runs are ``<root>/<subject folder>/<results>/<run folder>/<file>`` (by default
    ``100307/MNINonLinear/Results/rfMRI_REST1_LR/rfMRI_REST1_LR_Atlas*.dtseries.nii``); the
    subject and run folders' names give the entities through the regular expressions of
    ``settings`` (keys ``subject``, ``results``, ``run``, ``file``, as
    :data:`icanets._defaults.HCP_DEFAULTS`): ``100307`` is ``sub-100307``, and
    ``rfMRI_REST1_LR`` is task ``REST``, run ``1``, dir ``LR``. Folders whose names do not
    match are not runs.

    Raises
    ------
    BIDSError
        A run folder with no image or several matching ``file``, an entity that is not
        alphanumeric, or a bad pattern.
    """
    from icanets._defaults import HCP_DEFAULTS

    settings = {**HCP_DEFAULTS, **dict(settings)}
    root = Path(root)
    subject_re = _hcp_pattern(settings["subject"], "subject")
    run_re = _hcp_pattern(settings["run"], "run")
    if "sub" not in subject_re.groupindex:
        raise BIDSError("[hcp] subject must have a named group 'sub', e.g. (?P<sub>[0-9]+)")
    wanted = {k: v for k, v in (filters or {}).items() if v is not None}
    found = []
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        match = subject_re.fullmatch(subject_dir.name)
        if match is None:
            continue
        results = subject_dir / settings["results"]
        if not results.is_dir():
            continue
        for run_dir in sorted(p for p in results.iterdir() if p.is_dir()):
            run_match = run_re.fullmatch(run_dir.name)
            if run_match is None:
                continue
            images = sorted(run_dir.glob(settings["file"].replace("{run}", run_dir.name)))
            if not images:
                continue
            if len(images) > 1:
                raise BIDSError(f"{run_dir} has {len(images)} images matching [hcp] file = {settings['file']!r} "
                                f"({', '.join(p.name for p in images)}): set [hcp] file to pick one, e.g. "
                                f"'{{run}}_Atlas_MSMAll_hp2000_clean.dtseries.nii'")
            entities = {k: v for k, v in {**run_match.groupdict(), **match.groupdict()}.items() if v}
            for key, value in entities.items():
                if not _LABEL_RE.match(value):
                    raise BIDSError(f"{key} label {value!r} from {run_dir} must be alphanumeric")
            entities = {k: entities[k] for k in ENTITY_ORDER if k in entities}
            extension = next((e for e in _BOLD_SUFFIXES if images[0].name.endswith(e)), "")
            if not extension:
                raise BIDSError(f"{images[0]} is not a NIfTI or CIFTI dense time series (.nii[.gz], .dtseries.nii)")
            if all(entities.get(key) == label for key, label in wanted.items()):
                found.append(BoldFile(path=images[0], entities=entities, extension=extension))
    return found


def read_sessions_table(path: Path) -> dict[str, pd.DataFrame]:
    """A single sessions table of every subject (columns ``participant_id``, ``session_id``
    and measures), as :func:`read_sessions` gives per subject: subject -> table (index
    ``session_id``)."""
    path = Path(path)
    table = read_tsv(path)
    for column, prefix in (("participant_id", "sub-"), ("session_id", "ses-")):
        if column not in table.columns:
            raise BIDSError(f"{path} has no {column!r} column (columns: {', '.join(table.columns)})")
        for row, value in enumerate(table[column], start=2):
            if value is None or not value.startswith(prefix) or not _LABEL_RE.match(value[len(prefix):]):
                raise BIDSError(f"{path} line {row}: {column} {value!r} must look like '{prefix}<alphanumeric label>'")
    pairs = table[["participant_id", "session_id"]].apply(tuple, axis=1)
    duplicated = pairs[pairs.duplicated()]
    if len(duplicated):
        raise BIDSError(f"{path}: {duplicated.iloc[0][0]} {duplicated.iloc[0][1]} is listed twice")
    return {subject: rows.drop(columns="participant_id").set_index("session_id")
            for subject, rows in table.groupby("participant_id", sort=False)}
