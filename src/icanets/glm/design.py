"""GLM designs: a design matrix with named columns, named t contrasts, F-tests and
exchangeability blocks, from a formula over study variables or from FSL's VEST files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from icanets.errors import IcanetsError, IcanetsWarning

__all__ = [
    "covariate_columns",
    "DesignError",
    "CollinearityWarning",
    "Design",
    "design_from_formula",
    "design_from_fsl",
    "read_vest",
    "write_vest",
    "parse_contrast",
]


class CollinearityWarning(IcanetsWarning):
    """Design columns that are nearly linear combinations of each other."""


class DesignError(IcanetsError):
    """A design, contrast or exchangeability specification that cannot be used."""


@dataclass(frozen=True)
class Design:
    """A validated GLM design.

    Attributes
    ----------
    matrix : ndarray, shape (N, p)
    columns : tuple of str
        Names of the ``p`` regressors.
    contrasts : ndarray, shape (k, p)
        t contrasts, one per row.
    contrast_names : tuple of str
    ftests : tuple of tuple of int
        Each F-test as the indices of the t contrasts it joins.
    ftest_names : tuple of str
    blocks : ndarray of int, shape (N,), or None
        Exchangeability blocks (FSL ``design.grp``).
    rows : tuple of str
        A label per observation (e.g. ``sub-01 ses-1``), for messages.
    dropped : tuple of str
        Observations left out for missing values, with the reason.
    """

    matrix: np.ndarray
    columns: tuple[str, ...]
    contrasts: np.ndarray
    contrast_names: tuple[str, ...]
    ftests: tuple[tuple[int, ...], ...] = ()
    ftest_names: tuple[str, ...] = ()
    blocks: np.ndarray | None = None
    rows: tuple[str, ...] = ()
    dropped: tuple[str, ...] = field(default=())

    def __post_init__(self):
        validate_design(self)

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    @property
    def rank(self) -> int:
        return int(np.linalg.matrix_rank(self.matrix))


def _row_label(design_rows: Sequence[str], i: int) -> str:
    return design_rows[i] if i < len(design_rows) else f"row {i + 1}"


def validate_design(design: Design) -> None:
    """Raise :class:`DesignError` naming the column, contrast or row at fault."""
    x = design.matrix
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise DesignError(f"a design matrix must be 2D (observations x regressors), got shape {x.shape}")
    n, p = x.shape
    if len(design.columns) != p:
        raise DesignError(f"{len(design.columns)} column names for {p} design columns")
    if design.rows and len(design.rows) != n:
        raise DesignError(f"{len(design.rows)} row labels for {n} design rows")
    for j, name in enumerate(design.columns):
        bad = np.flatnonzero(~np.isfinite(x[:, j]))
        if bad.size:
            raise DesignError(f"design column {name!r} has missing or non-finite values at "
                              f"{', '.join(_row_label(design.rows, i) for i in bad[:5])}")
    constant = [j for j in range(p) if np.ptp(x[:, j]) == 0]
    if len(constant) > 1:
        raise DesignError(f"design columns {', '.join(repr(design.columns[j]) for j in constant)} are all constant "
                          "(only one intercept is allowed)")
    if len(constant) == 1 and np.all(x[:, constant[0]] == 0):
        raise DesignError(f"design column {design.columns[constant[0]]!r} is all zeros")
    rank = np.linalg.matrix_rank(x)
    if rank < p:
        raise DesignError(f"the design is rank deficient (rank {rank} < {p} columns): {_dependent_columns(x, design.columns)}")
    if n <= p:
        raise DesignError(f"the design has {n} observations for {p} regressors; residual degrees of freedom must be > 0")
    _warn_if_nearly_collinear(x, design.columns)
    c = design.contrasts
    if c.ndim != 2 or c.shape[1] != p:
        raise DesignError(f"contrasts must have {p} weights each (one per design column: {', '.join(design.columns)}); "
                          f"got shape {c.shape}")
    if len(design.contrast_names) != c.shape[0]:
        raise DesignError(f"{len(design.contrast_names)} contrast names for {c.shape[0]} contrasts")
    for name, row in zip(design.contrast_names, c):
        if not np.all(np.isfinite(row)) or not np.any(row):
            raise DesignError(f"contrast {name!r} must have finite weights, not all zero: {row.tolist()}")
    for fname, members in zip(design.ftest_names, design.ftests):
        if not members or any(not 0 <= m < c.shape[0] for m in members):
            raise DesignError(f"F-test {fname!r} must join existing t contrasts (1..{c.shape[0]}), got "
                              f"{[m + 1 for m in members]}")
        if np.linalg.matrix_rank(c[list(members)]) < len(members):
            raise DesignError(f"F-test {fname!r} joins linearly dependent contrasts")
    if len(design.ftest_names) != len(design.ftests):
        raise DesignError("one name per F-test is needed")
    if design.blocks is not None:
        b = np.asarray(design.blocks)
        if b.shape != (n,):
            raise DesignError(f"exchangeability blocks must have one entry per observation ({n}), got shape {b.shape}")


#: Condition number (of the design with unit-length columns) above which a design is nearly collinear.
COLLINEARITY_LIMIT = 1e4


def _warn_if_nearly_collinear(x: np.ndarray, columns: Sequence[str]) -> None:
    """Warn (:class:`CollinearityWarning`) when the design, each column scaled to unit length,
    has a condition number above :data:`COLLINEARITY_LIMIT`, naming the column that the others
    explain best: its effect is then estimated from almost nothing, with huge variance."""
    import warnings

    scaled = x / np.linalg.norm(x, axis=0)
    s = np.linalg.svd(scaled, compute_uv=False)
    condition = s[0] / s[-1]
    if condition <= COLLINEARITY_LIMIT:
        return
    residual = []
    for j in range(x.shape[1]):
        others = np.delete(scaled, j, axis=1)
        fit = others @ np.linalg.lstsq(others, scaled[:, j], rcond=None)[0]
        residual.append(np.linalg.norm(scaled[:, j] - fit))
    j = int(np.argmin(residual))
    warnings.warn(f"the design is nearly collinear (condition number {condition:.3g} > {COLLINEARITY_LIMIT:g}): "
                  f"column {columns[j]!r} is explained by the others up to a residual of {residual[j]:.2g} of its "
                  f"length; its effect and those of the columns it resembles are barely estimable",
                  CollinearityWarning, stacklevel=4)


def _dependent_columns(x: np.ndarray, columns: Sequence[str]) -> str:
    """Describe which columns are linear combinations of others."""
    names = []
    kept: list[int] = []
    for j in range(x.shape[1]):
        trial = kept + [j]
        if np.linalg.matrix_rank(x[:, trial]) < len(trial):
            names.append(columns[j])
        else:
            kept.append(j)
    return "column(s) " + ", ".join(repr(n) for n in names) + " are linear combinations of the columns before them"


_TERM_RE = re.compile(r"\s*([+-]?)\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)\s*\*\s*)?(.+?)\s*$")


def parse_contrast(text: str, columns: Sequence[str]) -> np.ndarray:
    """A contrast vector from a linear combination of column names.

    Examples
    --------
    >>> parse_contrast("group[T.MDD]", ["Intercept", "group[T.MDD]", "age"])
    array([0., 1., 0.])
    >>> parse_contrast("-group[T.MDD]", ["Intercept", "group[T.MDD]", "age"])
    array([ 0., -1.,  0.])
    >>> parse_contrast("0.5*a + 0.5*b - c", ["a", "b", "c"])
    array([ 0.5,  0.5, -1. ])
    """
    weights = np.zeros(len(columns))
    terms: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif (ch in "+-" and depth == 0 and text[start:i].strip() and not text[start:i].rstrip().endswith("*")
              and not re.search(r"(^|[^A-Za-z_])\d+\.?\d*[eE]$", text[start:i])):
            terms.append(text[start:i])
            start = i
    terms.append(text[start:])
    for term in terms:
        match = _TERM_RE.match(term)
        if not term.strip() or match is None:
            raise DesignError(f"cannot read contrast {text!r}: write e.g. 'group[T.MDD]' or '0.5*a - 0.5*b'")
        sign, number, name = match.groups()
        if name not in columns:
            raise DesignError(f"contrast {text!r} names {name!r}, which is not a design column "
                              f"({', '.join(columns)})")
        weights[list(columns).index(name)] += (-1.0 if sign == "-" else 1.0) * (float(number) if number else 1.0)
    return weights


def _as_contrasts(contrasts, columns) -> tuple[np.ndarray, tuple[str, ...]]:
    if not contrasts:
        raise DesignError("at least one contrast is needed")
    names, rows = [], []
    for name, spec in contrasts.items():
        if isinstance(spec, str):
            rows.append(parse_contrast(spec, columns))
        else:
            vector = np.asarray(spec, dtype=float)
            if vector.shape != (len(columns),):
                raise DesignError(f"contrast {name!r} has {vector.size} weights; the design has {len(columns)} "
                                  f"columns ({', '.join(columns)})")
            rows.append(vector)
        names.append(str(name))
    return np.array(rows), tuple(names)


def _as_ftests(ftests, contrast_names) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    out, names = [], []
    for name, members in (ftests or {}).items():
        idx = []
        for m in members:
            if m not in contrast_names:
                raise DesignError(f"F-test {name!r} names contrast {m!r}, which does not exist "
                                  f"({', '.join(contrast_names)})")
            idx.append(contrast_names.index(m))
        out.append(tuple(idx))
        names.append(str(name))
    return tuple(out), tuple(names)


def design_from_formula(formula: str, data: pd.DataFrame, contrasts: Mapping[str, str | Sequence[float]], *,
                        ftests: Mapping[str, Sequence[str]] | None = None, blocks: str | None = None,
                        row_labels: Sequence[str] | None = None, drop_missing: bool = True) -> Design:
    """A design from a Wilkinson formula over a table of variables (formulaic).

    Parameters
    ----------
    formula : str
        e.g. ``"~ group + age + sex"`` (treatment coding; an intercept unless ``0 +``).
    data : DataFrame
        One row per observation, in the order of the data to analyse.
    contrasts : dict
        Name -> a linear combination of design columns (``"group[T.MDD]"``,
        ``"-group[T.MDD]"``, ``"0.5*a - 0.5*b"``) or a weight vector.
    ftests : dict, optional
        Name -> list of contrast names joined in an F-test.
    blocks : str, optional
        Column of ``data`` holding exchangeability blocks.
    row_labels : sequence of str, optional
        Labels of the observations for messages (default: the index of ``data``).
    drop_missing : bool, default True
        Leave out observations with a missing value in a variable of the formula; they
        are listed in :attr:`Design.dropped`, and the result reports the N used. With
        False, a missing value is an error naming the observation.

    Returns
    -------
    Design
        Its ``rows`` are the labels of the observations kept; use them to select the data.
    """
    import formulaic

    labels = [str(v) for v in (row_labels if row_labels is not None else data.index)]
    if len(labels) != len(data):
        raise DesignError(f"{len(labels)} row labels for {len(data)} observations")
    try:
        spec_vars = formulaic.Formula(formula).required_variables
    except Exception as exc:
        raise DesignError(f"cannot parse formula {formula!r}: {exc}") from None
    unknown = sorted(v for v in spec_vars if v not in data.columns)
    if unknown:
        raise DesignError(f"formula {formula!r} uses variable(s) {', '.join(unknown)} that the data lack "
                          f"(have: {', '.join(map(str, data.columns))})")
    used = sorted(spec_vars) + ([blocks] if blocks else [])
    missing_mask = data[used].isna().any(axis=1).to_numpy() if used else np.zeros(len(data), dtype=bool)
    dropped = []
    if missing_mask.any():
        detail = [f"{labels[i]} ({', '.join(c for c in used if pd.isna(data.iloc[i][c]))} missing)"
                  for i in np.flatnonzero(missing_mask)]
        if not drop_missing:
            raise DesignError(f"missing values in the variables of {formula!r}: {'; '.join(detail)}")
        dropped = detail
    kept = data.loc[~missing_mask]
    if len(kept) == 0:
        raise DesignError(f"no observation has all the variables of {formula!r}")
    try:
        matrix = formulaic.model_matrix(formula, kept, na_action="raise")
    except Exception as exc:
        raise DesignError(f"cannot build the design of {formula!r}: {exc}") from None
    columns = tuple(str(c) for c in matrix.columns)
    x = np.asarray(matrix, dtype=float)
    c, names = _as_contrasts(contrasts, columns)
    f, fnames = _as_ftests(ftests, names)
    block_values = None
    if blocks:
        block_values = pd.factorize(kept[blocks])[0]
    return Design(matrix=x, columns=columns, contrasts=c, contrast_names=names, ftests=f, ftest_names=fnames,
                  blocks=block_values, rows=tuple(np.asarray(labels, dtype=object)[~missing_mask]),
                  dropped=tuple(dropped))


def read_vest(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    """Read an FSL VEST file (``design.mat``, ``.con``, ``.fts``, ``.grp``): matrix and header."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DesignError(f"cannot read {path}: {exc}") from None
    header: dict[str, str] = {}
    rows = []
    in_matrix = False
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if text.lower().startswith("/matrix"):
                in_matrix = True
                continue
            key, _, value = text[1:].partition(" ") if " " in text else text[1:].partition("\t")
            header[key.strip()] = value.strip()
            continue
        if not in_matrix:
            raise DesignError(f"{path} line {number}: numbers before /Matrix")
        try:
            rows.append([float(v) for v in text.split()])
        except ValueError:
            raise DesignError(f"{path} line {number}: non-numeric value in {text!r}") from None
    if not in_matrix:
        raise DesignError(f"{path} is not a VEST file (no /Matrix line)")
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise DesignError(f"{path}: rows have different numbers of values ({sorted(widths)})")
    matrix = np.array(rows, dtype=float)
    if "NumWaves" in header and rows and int(float(header["NumWaves"])) != matrix.shape[1]:
        raise DesignError(f"{path}: /NumWaves says {header['NumWaves']} columns, the matrix has {matrix.shape[1]}")
    for key in ("NumPoints", "NumContrasts"):
        if key in header and int(float(header[key])) != matrix.shape[0]:
            raise DesignError(f"{path}: /{key} says {header[key]} rows, the matrix has {matrix.shape[0]}")
    return matrix, header


def write_vest(path: Path, matrix: np.ndarray, *, kind: str = "mat", names: Sequence[str] | None = None) -> None:
    """Write an FSL VEST file (``kind``: ``mat``, ``con``, ``fts`` or ``grp``)."""
    matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
    lines = []
    if kind == "con" and names:
        lines += [f"/ContrastName{i + 1}\t{n}" for i, n in enumerate(names)]
    lines.append(f"/NumWaves\t{matrix.shape[1]}")
    lines.append(f"/{'NumContrasts' if kind in ('con', 'fts') else 'NumPoints'}\t{matrix.shape[0]}")
    lines.append("/Matrix")
    lines += [" ".join(f"{v:.10g}" for v in row) for row in matrix]
    Path(path).write_text("\n".join(lines) + "\n")


def design_from_fsl(mat: Path, con: Path, *, fts: Path | None = None, grp: Path | None = None,
                    row_labels: Sequence[str] | None = None) -> Design:
    """A design from FSL ``design.mat``, ``design.con`` and optionally ``design.fts``/``design.grp``."""
    x, _ = read_vest(mat)
    c, header = read_vest(con)
    if c.shape[1] != x.shape[1]:
        raise DesignError(f"{con} has contrasts of {c.shape[1]} weights, {mat} has {x.shape[1]} columns")
    names = tuple(header.get(f"ContrastName{i + 1}", f"C{i + 1}") or f"C{i + 1}" for i in range(c.shape[0]))
    ftests: tuple[tuple[int, ...], ...] = ()
    fnames: tuple[str, ...] = ()
    if fts is not None:
        f, _ = read_vest(fts)
        if f.shape[1] != c.shape[0]:
            raise DesignError(f"{fts} selects among {f.shape[1]} contrasts, {con} has {c.shape[0]}")
        ftests = tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in f)
        fnames = tuple(f"F{i + 1}" for i in range(f.shape[0]))
    blocks = None
    if grp is not None:
        g, _ = read_vest(grp)
        if g.shape != (x.shape[0], 1):
            raise DesignError(f"{grp} must have one column and {x.shape[0]} rows (as {mat}), got {g.shape}")
        blocks = g[:, 0].astype(int)
    columns = tuple(f"EV{j + 1}" for j in range(x.shape[1]))
    if row_labels is not None and len(row_labels) != x.shape[0]:
        raise DesignError(f"{mat} has {x.shape[0]} rows, but the data (edge table) have {len(row_labels)} "
                          f"observations: one design row per observation, in the data's order")
    labels = tuple(row_labels) if row_labels is not None else tuple(f"row {i + 1}" for i in range(x.shape[0]))
    return Design(matrix=x, columns=columns, contrasts=c, contrast_names=names, ftests=ftests, ftest_names=fnames,
                  blocks=blocks, rows=labels)


def covariate_columns(frame: pd.DataFrame, names) -> tuple[np.ndarray, list[str]]:
    """Numeric columns for covariates outside a formula (prediction confounds, QC-FC): numeric
    variables as they are, categorical ones dummy-coded against their first level (sorted);
    a missing value stays NaN in every column it enters, so the caller can leave that row out
    (never silently coded as the reference level).

    Examples
    --------
    >>> frame = pd.DataFrame({"age": [30, 40, 50], "sex": ["F", None, "M"]})
    >>> values, columns = covariate_columns(frame, ["age", "sex"])
    >>> columns, values[:, 1].tolist()
    (['age', 'sex[M]'], [0.0, nan, 1.0])
    """
    columns, out_names = [], []
    for name in names:
        values = frame[name]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum():
            columns.append(numeric.to_numpy(dtype=float))
            out_names.append(name)
            continue
        levels = sorted(str(v) for v in values.dropna().unique())
        for level in levels[1:]:
            columns.append(np.where(values.isna(), np.nan, (values.astype(str) == level).astype(float)))
            out_names.append(f"{name}[{level}]")
    return (np.column_stack(columns) if columns else np.empty((len(frame), 0))), out_names
