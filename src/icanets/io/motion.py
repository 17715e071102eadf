"""Head-motion files beside BOLD runs: finding and reading them.

Three layouts are recognised, next to the run's image:

- fMRIPrep (BIDS derivatives): ``<entities>_desc-confounds_timeseries.tsv`` (or the older
  ``_desc-confounds_regressors.tsv``), where ``<entities>`` are the run's entities without
  ``space``, ``res``, ``den`` and ``desc``. Columns ``trans_x trans_y trans_z`` (mm) and
  ``rot_x rot_y rot_z`` (radians); ``framewise_displacement``, ``dvars`` and ``std_dvars`` when
  present (``n/a`` in the first row, as fMRIPrep writes them).
- HCP pipelines: ``Movement_Regressors.txt`` in the run's folder: 12 whitespace-separated
  columns, translations x y z (mm), rotations x y z (degrees), then their derivatives.
- FSL ``mcflirt``: ``<bold name>.par`` or ``<bold name>_mcf.par`` (the image name without its
  extension): 6 columns, rotations x y z (radians) then translations x y z (mm).

A table with other column names is read with ``columns`` (six names, translations then
rotations) and ``rotations`` (``radians`` or ``degrees``), e.g. ``[motion] columns = [...]``.
Every reader returns translations in mm and rotations in radians.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from icanets.errors import BIDSError
from icanets.io.bids import _BOLD_SUFFIXES, ENTITY_ORDER, MISSING_VALUES

__all__ = ["MOTION_SOURCES", "FMRIPREP_COLUMNS", "MotionData", "find_motion_file", "read_motion"]

#: Where motion can come from (``[motion] source``); ``auto`` takes the first layout found.
MOTION_SOURCES = ("auto", "fmriprep", "hcp", "fsl", "none")

#: fMRIPrep's six rigid-body parameters, translations then rotations.
FMRIPREP_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

_NOT_IN_CONFOUNDS = ("space", "res", "den", "desc")


@dataclass(frozen=True)
class MotionData:
    """Motion of one run.

    Attributes
    ----------
    path : Path
    source : str
        ``fmriprep``, ``hcp`` or ``fsl``.
    params : ndarray, shape (T, 6)
        Translations x y z (mm), rotations x y z (radians).
    fd : ndarray or None
        The file's own framewise displacement (fMRIPrep), first value 0.
    dvars, std_dvars : ndarray or None
        The file's DVARS and standardised DVARS (fMRIPrep), first value 0.
    """

    path: Path
    source: str
    params: np.ndarray
    fd: np.ndarray | None = None
    dvars: np.ndarray | None = None
    std_dvars: np.ndarray | None = None

    @property
    def n_volumes(self) -> int:
        return int(self.params.shape[0])


def _confounds_names(bold: Path, entities: dict[str, str]) -> list[str]:
    parts = [f"{k}-{entities[k]}" for k in ENTITY_ORDER if k in entities and k not in _NOT_IN_CONFOUNDS]
    stem = "_".join(parts)
    return [f"{stem}_desc-confounds_timeseries.tsv", f"{stem}_desc-confounds_regressors.tsv"]


def _image_stem(bold: Path) -> str:
    name = bold.name
    for ext in _BOLD_SUFFIXES:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def find_motion_file(bold: Path, entities: dict[str, str], source: str = "auto") -> tuple[Path, str] | None:
    """The motion file of a run and its layout, or None (see the module docstring).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> bold = folder / "sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz"
    >>> _ = (folder / "sub-01_task-rest_desc-confounds_timeseries.tsv").write_text("trans_x\\n0\\n")
    >>> path, kind = find_motion_file(bold, {"sub": "01", "task": "rest", "space": "MNI", "desc": "preproc"})
    >>> path.name, kind
    ('sub-01_task-rest_desc-confounds_timeseries.tsv', 'fmriprep')
    """
    if source not in MOTION_SOURCES:
        raise BIDSError(f"unknown motion source {source!r}; known: {', '.join(MOTION_SOURCES)}")
    if source == "none":
        return None
    folder = Path(bold).parent
    candidates = {
        "fmriprep": [folder / n for n in _confounds_names(bold, entities)],
        "hcp": [folder / "Movement_Regressors.txt"],
        "fsl": [folder / f"{_image_stem(bold)}.par", folder / f"{_image_stem(bold)}_mcf.par"],
    }
    for kind, paths in candidates.items():
        if source not in ("auto", kind):
            continue
        for path in paths:
            if path.is_file():
                return path, kind
    return None


def _numbers(frame: pd.DataFrame, path: Path, columns: Sequence[str], *, first_may_be_missing: bool) -> np.ndarray:
    values = np.empty((len(frame), len(columns)))
    for j, column in enumerate(columns):
        raw = frame[column]
        numeric = pd.to_numeric(raw.where(~raw.astype(str).str.strip().isin(MISSING_VALUES)), errors="coerce")
        bad = numeric.isna() & ~raw.astype(str).str.strip().isin(MISSING_VALUES)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise BIDSError(f"{path}: column {column!r} row {row + 1} is not a number: {raw.iloc[row]!r}")
        missing = np.flatnonzero(numeric.isna().to_numpy())
        if first_may_be_missing:
            missing = missing[missing > 0]
        if missing.size:
            raise BIDSError(f"{path}: column {column!r} has missing values (n/a) at row(s) "
                            f"{', '.join(str(i + 1) for i in missing[:5])}{' ...' if missing.size > 5 else ''}"
                            + ("; only the first row may be n/a" if first_may_be_missing else ""))
        values[:, j] = np.nan_to_num(numeric.to_numpy(dtype=float), nan=0.0)
    return values


def _whitespace_table(path: Path, n_columns: int, what: str) -> np.ndarray:
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BIDSError(f"cannot read {what} file {path}: {exc}") from None
    if not rows:
        raise BIDSError(f"{what} file {path} is empty")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths.pop() < n_columns:
        raise BIDSError(f"{what} file {path} must have at least {n_columns} columns on every line "
                        f"(line widths: {sorted({len(r) for r in rows})})")
    try:
        values = np.array([[float(v) for v in r[:n_columns]] for r in rows])
    except ValueError as exc:
        raise BIDSError(f"{what} file {path}: {exc}") from None
    if not np.isfinite(values).all():
        raise BIDSError(f"{what} file {path} holds NaN or infinite values")
    return values


def read_motion(path: Path | str, source: str, *, columns: Sequence[str] | None = None,
                rotations: str = "radians", n_volumes: int | None = None) -> MotionData:
    """Read one run's motion file (see the module docstring for the layouts).

    Parameters
    ----------
    path : Path
    source : {"fmriprep", "hcp", "fsl"}
    columns : six column names, optional
        Of a TSV with a header (fMRIPrep layout by default), translations then rotations.
    rotations : {"radians", "degrees"}
        Units of the rotation columns given by ``columns``.
    n_volumes : int, optional
        The run's volumes: a file with another number of rows is an error.

    Raises
    ------
    BIDSError
        An unreadable file, missing columns, non-numbers, missing values (except the first
        row of fMRIPrep's derived columns), or the wrong number of rows; each names the file.
    """
    path = Path(path)
    if rotations not in ("radians", "degrees"):
        raise BIDSError(f"rotations must be 'radians' or 'degrees', got {rotations!r}")
    fd = dvars = std_dvars = None
    if source == "fmriprep":
        try:
            frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise BIDSError(f"cannot read confounds file {path}: {exc}") from None
        names = tuple(columns) if columns else FMRIPREP_COLUMNS
        if len(names) != 6:
            raise BIDSError(f"motion columns must be six names (translations x y z, rotations x y z), got {names}")
        absent = [c for c in names if c not in frame.columns]
        if absent:
            raise BIDSError(f"confounds file {path} lacks column(s) {', '.join(absent)} "
                            f"(has {len(frame.columns)}: {', '.join(list(frame.columns)[:12])}"
                            f"{' ...' if len(frame.columns) > 12 else ''})")
        params = _numbers(frame, path, names, first_may_be_missing=False)
        if columns and rotations == "degrees":
            params[:, 3:] = np.deg2rad(params[:, 3:])
        extra = {}
        for name in ("framewise_displacement", "dvars", "std_dvars"):
            if name in frame.columns:
                extra[name] = _numbers(frame, path, [name], first_may_be_missing=True)[:, 0]
        fd, dvars, std_dvars = extra.get("framewise_displacement"), extra.get("dvars"), extra.get("std_dvars")
    elif source == "hcp":
        table = _whitespace_table(path, 6, "HCP Movement_Regressors")
        params = np.column_stack([table[:, :3], np.deg2rad(table[:, 3:6])])
    elif source == "fsl":
        table = _whitespace_table(path, 6, "mcflirt .par")
        params = np.column_stack([table[:, 3:6], table[:, :3]])
    else:
        raise BIDSError(f"unknown motion source {source!r} for {path}; known: fmriprep, hcp, fsl")
    if n_volumes is not None and len(params) != n_volumes:
        raise BIDSError(f"motion file {path} has {len(params)} rows but its run has {n_volumes} volumes")
    return MotionData(path=path, source=source, params=params, fd=fd, dvars=dvars, std_dvars=std_dvars)
