"""Node time series files: FSL dual_regression text, NPY and TSV, with their bookkeeping.

Each file holds one run, time points in rows and nodes in columns. Which subject,
session and run a file belongs to comes from BIDS entities in its name
(``sub-01_ses-1_run-1_timeseries.npy``), or, for FSL's ``dr_stage1_subject#####.txt``
(numbered in the order of dual_regression's input list), from a table mapping each number
to ``participant_id``, ``session_id`` and ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from icanets.errors import IcanetsError
from icanets.io.bids import read_tsv
from icanets.io.fsl import DR_STAGE1_RE, read_text_matrix

__all__ = ["RunTimeSeries", "load_timeseries", "find_timeseries_files", "TIMESERIES_EXTENSIONS"]

TIMESERIES_EXTENSIONS = (".txt", ".npy", ".tsv")


@dataclass(frozen=True)
class RunTimeSeries:
    """The node time series of one run.

    Attributes
    ----------
    data : ndarray, shape (n_timepoints, n_nodes)
    subject : str
        ``sub-<label>`` (or a name derived from the file where no label is known).
    session : str or None
    run : str or None
    source : str
        Where the data came from (a file path), for messages.
    """

    data: np.ndarray
    subject: str
    session: str | None = None
    run: str | None = None
    source: str = "<array>"

    @property
    def n_timepoints(self) -> int:
        return self.data.shape[0]

    @property
    def n_nodes(self) -> int:
        return self.data.shape[1]

    def with_data(self, data: np.ndarray) -> RunTimeSeries:
        return RunTimeSeries(data=data, subject=self.subject, session=self.session, run=self.run, source=self.source)


def find_timeseries_files(folder: Path) -> list[Path]:
    """Time-series files in a folder: ``dr_stage1_subject*.txt``, or else ``*.npy``/``*.tsv``/``*.txt``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IcanetsError(f"time-series folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in TIMESERIES_EXTENSIONS)
    stage1 = [p for p in files if DR_STAGE1_RE.match(p.name)]
    chosen = stage1 or [p for p in files if not p.name.startswith(".")]
    if not chosen:
        raise IcanetsError(f"no time-series files (dr_stage1_subject*.txt, *.npy, *.tsv, *.txt) in {folder}")
    return chosen


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IcanetsError(f"cannot read {path}: {exc}") from None
    elif path.suffix == ".tsv":
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise IcanetsError(f"cannot read {path}: {exc}") from None
        if not lines or not lines[0].strip():
            raise IcanetsError(f"{path} is empty: a time-series table needs one row per time point")
        first = lines[0].split("\t")
        has_header = any(not _is_number(v) for v in first)
        try:
            data = pd.read_csv(path, sep="\t", header=0 if has_header else None).to_numpy(dtype=np.float64)
        except ValueError as exc:
            raise IcanetsError(f"{path}: non-numeric values in a time-series table ({exc})") from None
    else:
        data = read_text_matrix(path)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise IcanetsError(f"{path}: a time-series file must be 2D (time points x nodes), got shape {data.shape}")
    return data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _entities(name: str) -> dict[str, str]:
    stem = name.split(".")[0]
    out = {}
    for part in stem.split("_"):
        key, sep, value = part.partition("-")
        if sep and key in ("sub", "ses", "run") and value:
            out[key] = value
    return out


def load_timeseries(paths: Sequence[Path], *, subjects: Path | pd.DataFrame | None = None) -> list[RunTimeSeries]:
    """Load node time series files, one run each.

    Parameters
    ----------
    paths : sequence of Path
        ``.txt`` (whitespace-delimited, as FSL writes), ``.npy``, or ``.tsv`` (with or
        without a header row of node names).
    subjects : Path or DataFrame, optional
        For ``dr_stage1_subject#####.txt`` files: a table with one row per input of
        dual_regression, in order, and columns ``participant_id`` and optionally
        ``session_id`` and ``run``. Without it, such a file's subject is named after its
        number (``subject00012``).

    Returns
    -------
    list of RunTimeSeries
    """
    mapping = None
    if subjects is not None:
        mapping = read_tsv(Path(subjects)) if not isinstance(subjects, pd.DataFrame) else subjects.astype(object)
        if "participant_id" not in mapping.columns:
            raise IcanetsError(f"the subjects table {subjects} needs a participant_id column (has: {', '.join(mapping.columns)})")
    runs = []
    for path in map(Path, paths):
        data = _read(path)
        match = DR_STAGE1_RE.match(path.name)
        if match:
            index = int(match.group(1))
            if mapping is not None:
                if index >= len(mapping):
                    raise IcanetsError(f"{path.name} is input number {index}, but the subjects table has only {len(mapping)} rows")
                row = mapping.iloc[index]
                session = row.get("session_id") if "session_id" in mapping.columns else None
                run = row.get("run") if "run" in mapping.columns else None
                runs.append(RunTimeSeries(data, str(row["participant_id"]), session if session else None,
                                          str(run) if run else None, str(path)))
            else:
                runs.append(RunTimeSeries(data, f"subject{match.group(1)}", None, None, str(path)))
            continue
        ents = _entities(path.name)
        subject = f"sub-{ents['sub']}" if "sub" in ents else path.name.split(".")[0]
        session = f"ses-{ents['ses']}" if "ses" in ents else None
        runs.append(RunTimeSeries(data, subject, session, ents.get("run"), str(path)))
    return runs
