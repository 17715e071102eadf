"""FSL file formats: dual_regression stage-1 text files and FIX label files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from icanets.errors import IcanetsError

__all__ = ["read_text_matrix", "write_text_matrix", "read_fix_labels", "DR_STAGE1_RE"]

#: File names written by FSL dual_regression for stage 1, one per input run.
DR_STAGE1_RE = re.compile(r"^dr_stage1_subject(\d+)\.txt$")


def read_text_matrix(path: Path) -> np.ndarray:
    """Read a whitespace-delimited numeric text file (e.g. ``dr_stage1_subject00000.txt``).

    Returns
    -------
    ndarray, shape (n_rows, n_columns)
    """
    path = Path(path)
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise IcanetsError(f"cannot read numeric text file {path}: {exc}") from None
    return data


def write_text_matrix(path: Path, data: np.ndarray) -> None:
    """Write a 2D array as FSL writes dual_regression text files (``%.10g``, spaces)."""
    np.savetxt(path, np.asarray(data, dtype=np.float64), fmt="%.10g", delimiter="  ")


def read_fix_labels(path: Path, n_components: int | None = None) -> np.ndarray:
    """Noise component numbers of a FIX (or hand-classification) labels file.

    The last non-empty line of such a file is a bracketed list of the 1-based numbers
    of the components classified as noise, e.g. ``[1, 4, 5, 7]``.

    Parameters
    ----------
    path : Path
    n_components : int, optional
        If given, numbers outside ``1..n_components`` are an error.

    Returns
    -------
    ndarray of int
        0-based indices of the noise components, sorted.
    """
    path = Path(path)
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise IcanetsError(f"cannot read labels file {path}: {exc}") from None
    if not lines or not (lines[-1].startswith("[") and lines[-1].endswith("]")):
        raise IcanetsError(f"labels file {path}: its last line must list the noise components as [1, 4, ...]")
    body = lines[-1][1:-1].strip()
    try:
        numbers = [int(part) for part in re.split(r"[,\s]+", body) if part] if body else []
    except ValueError:
        raise IcanetsError(f"labels file {path}: cannot read component numbers from {lines[-1]!r}") from None
    if len(set(numbers)) != len(numbers):
        raise IcanetsError(f"labels file {path}: a component is listed twice in {lines[-1]!r}")
    bad = [n for n in numbers if n < 1 or (n_components is not None and n > n_components)]
    if bad:
        limit = f"1..{n_components}" if n_components is not None else ">= 1"
        raise IcanetsError(f"labels file {path} names component(s) {bad} that do not exist (valid: {limit})")
    return np.array(sorted(n - 1 for n in numbers), dtype=int)
