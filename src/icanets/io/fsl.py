"""FSL file formats: dual_regression stage-1 text files and FIX label files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from icanets.errors import IcanetsError

__all__ = ["read_text_matrix", "write_text_matrix", "read_fix_labels", "read_fix_label_lines", "write_fix_labels",
           "DR_STAGE1_RE", "FIX_LABELS"]

#: icanets label -> the label text written in a FIX labels file.
FIX_LABELS = {"signal": "Signal", "uncertain": "Unknown", "noise": "Unclassified Noise"}

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


def write_fix_labels(path: Path, labels: list[str], *, folder: str = "melodic_IC", removed: list[bool] | None = None) -> None:
    """Write a FIX labels file: the ICA folder's name, one ``N, Label, removed`` line per
    component (``Signal``, ``Unknown`` for uncertain, ``Unclassified Noise``), and the bracketed
    list of the components to remove (the noise ones, or those flagged in ``removed``).

    Examples
    --------
    >>> import tempfile, os
    >>> path = Path(tempfile.mkdtemp()) / "labels.txt"
    >>> write_fix_labels(path, ["signal", "noise", "uncertain"])
    >>> print(path.read_text(), end="")
    melodic_IC
    1, Signal, False
    2, Unclassified Noise, True
    3, Unknown, False
    [2]
    >>> read_fix_label_lines(path)
    ['signal', 'noise', 'uncertain']
    """
    unknown = sorted(set(labels) - set(FIX_LABELS))
    if unknown:
        raise IcanetsError(f"unknown component label(s) {unknown}; known: {', '.join(FIX_LABELS)}")
    removed = [label == "noise" for label in labels] if removed is None else list(removed)
    lines = [folder]
    lines += [f"{k}, {FIX_LABELS[label]}, {flag}" for k, (label, flag) in enumerate(zip(labels, removed), start=1)]
    lines.append("[" + ", ".join(str(k) for k, flag in enumerate(removed, start=1) if flag) + "]")
    Path(path).write_text("\n".join(lines) + "\n")


def read_fix_label_lines(path: Path, n_components: int | None = None) -> list[str] | None:
    """Per-component labels (``signal``, ``uncertain``, ``noise``) from the ``N, Label, removed``
    lines of a FIX labels file, or None when it has only the final list.

    A component is ``noise`` when it is listed for removal, ``uncertain`` when its label text
    says ``Unknown`` (FIX's and hand-labellers' word for unsure), else ``signal``.
    """
    noise = set(read_fix_labels(path, n_components).tolist())
    entries = {}
    for line in Path(path).read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            entries[int(parts[0])] = [p.lower() for p in parts[1:-1]]
    if not entries:
        return None
    count = n_components if n_components is not None else max(max(entries), max(noise, default=-1) + 1)
    missing = [k for k in range(1, count + 1) if k not in entries]
    if missing:
        raise IcanetsError(f"labels file {path} has no line for component(s) {missing[:10]}")
    extra = [k for k in entries if k > count]
    if extra:
        raise IcanetsError(f"labels file {path} has lines for component(s) {extra[:10]} that do not exist "
                           f"(valid: 1..{count})")
    out = []
    for k in range(1, count + 1):
        if k - 1 in noise:
            out.append("noise")
        elif any("unknown" in text for text in entries[k]):
            out.append("uncertain")
        else:
            out.append("signal")
    return out
