"""Analyses declared in the study configuration, run on the subjects x edges table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from icanets.config import AnalysisSpec
from icanets.errors import ExpressionError
from icanets.expr import frame_context
from icanets.glm.design import Design, DesignError, design_from_formula
from icanets.glm.exchange import Exchangeability
from icanets.glm.inference import NBSOptions
from icanets.glm.paired import paired_difference
from icanets.glm.permutation import GLMResult, permutation_glm
from icanets.netmats.edges import EdgeTable

__all__ = ["AnalysisResult", "PreparedAnalysis", "prepare_analysis", "run_analysis", "select_subjects",
           "select_rows", "analysis_variables",
           "check_analysis_variables"]

_MIN_N = 3


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis: its GLM and the bookkeeping of who was used.

    Attributes
    ----------
    spec : AnalysisSpec
    glm : GLMResult
    rows : DataFrame
        ``participant_id`` (and ``session_id``) of the observations used, in model order.
    n_subset : int
        Subjects the subset selects.
    dropped : tuple of str
        Subjects of the subset left out, and why (missing session, missing variable).
    design : Design
    """

    spec: AnalysisSpec
    glm: GLMResult
    rows: pd.DataFrame
    n_subset: int
    dropped: tuple[str, ...]
    design: Design

    @property
    def n_used(self) -> int:
        return self.glm.n_used


def select_subjects(spec, variables: pd.DataFrame, *, what: str = "analysis") -> tuple[list[str], list[str]]:
    """Subjects the ``spec.subset`` selects, and those for whom it is undefined.

    ``spec``: anything with ``name`` and ``subset`` (an analysis or a prediction, ``what``
    naming it in errors)."""
    if spec.subset is None:
        return list(variables.index), []
    try:
        keep = spec.subset.evaluate(frame_context(variables))
    except ExpressionError as exc:
        raise DesignError(f"{what} {spec.name!r}: subset: {exc}") from None
    chosen = [s for s, k in zip(variables.index, keep) if k == 1.0]
    undefined = [f"{s} (subset {spec.subset.text!r} undefined)" for s, k in zip(variables.index, keep) if np.isnan(k)]
    if not chosen:
        raise DesignError(f"{what} {spec.name!r}: subset {spec.subset.text!r} selects no subjects")
    return chosen, undefined


def select_rows(name: str, table: EdgeTable, subjects: list[str], *, session: str | None = None,
                pair: tuple[str, str] | None = None, resolve_session: Callable[[str], str] = lambda s: s,
                what: str = "analysis", modes: str = "session, paired or difference") -> tuple[EdgeTable, list[str]]:
    """The rows of ``table`` an analysis (or prediction) uses, and who was left out.

    With ``pair = (first, second)``: per subject ``second - first``, for subjects with both; else
    the rows of ``session`` (label or role), or of the table's only session.
    """
    rows = table.rows.assign(session_id=table.rows["session_id"].fillna("").astype(str))
    sessions = sorted(set(rows["session_id"]))

    def label(value: str) -> str:
        resolved = resolve_session(value)
        if resolved not in sessions:
            raise DesignError(f"{what} {name!r}: session {value!r} ({resolved}) is not in the edge table "
                              f"(sessions: {', '.join(s or '(none)' for s in sessions)})")
        return resolved

    if pair:
        first, second = pair
        try:
            pairs = paired_difference(table, label(first), label(second), subjects=subjects)
        except DesignError as exc:
            raise DesignError(f"{what} {name!r}: {exc}") from None
        return pairs.table, list(pairs.dropped)
    if session is not None:
        wanted = label(session)
    elif len(sessions) == 1:
        wanted = sessions[0]
    else:
        raise DesignError(f"{what} {name!r}: the edge table has several sessions "
                          f"({', '.join(sessions)}); say which with {modes}")
    position = {(p, s): i for i, (p, s) in enumerate(zip(rows["participant_id"], rows["session_id"]))}
    take = [position[(s, wanted)] for s in subjects if (s, wanted) in position]
    dropped = [f"{s} (no {session or wanted})" for s in subjects if (s, wanted) not in position]
    return (EdgeTable(table.values[take], table.rows.iloc[take].reset_index(drop=True), table.edges, table.metadata),
            dropped)


def analysis_variables(spec, variables: pd.DataFrame, sessions: pd.DataFrame | None, *,
                       resolve_session: Callable[[str], str] = lambda s: s) -> pd.DataFrame:
    """``variables`` plus every per-session measure (a column of ``sessions``, indexed by
    participant and session, such as ``hdrs`` or ``mean_fd``) that the formula names and
    ``variables`` lacks, taken at the analysis' ``session``; for a ``difference = [first,
    second]`` analysis, its change ``second - first`` (as the edges are).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> idx = pd.MultiIndex.from_tuples([("s1", "ses-1"), ("s1", "ses-2"), ("s2", "ses-1")],
    ...                                 names=["participant_id", "session_id"])
    >>> sessions = pd.DataFrame({"mean_fd": [0.1, 0.3, 0.2]}, index=idx)
    >>> v = pd.DataFrame({"age": [30.0, 40.0]}, index=pd.Index(["s1", "s2"], name="participant_id"))
    >>> spec = SimpleNamespace(name="a", formula="~ age + mean_fd", session="ses-1", difference=None)
    >>> analysis_variables(spec, v, sessions)["mean_fd"].tolist()
    [0.1, 0.2]
    >>> spec = SimpleNamespace(name="a", formula="~ mean_fd", session=None, difference=("ses-1", "ses-2"))
    >>> analysis_variables(spec, v, sessions)["mean_fd"].round(3).tolist()
    [0.2, nan]
    """
    import formulaic

    if not getattr(spec, "formula", None) or sessions is None:
        return variables
    try:
        needed = set(formulaic.Formula(spec.formula).required_variables)
    except Exception:
        return variables  # check_analysis_variables names the parse error
    from icanets.study import BOOKKEEPING_COLUMNS

    measures = [n for n in sorted(needed) if n not in variables.columns and n in sessions.columns
                and n not in BOOKKEEPING_COLUMNS]
    if not measures:
        return variables
    labels = set(sessions.index.get_level_values("session_id"))

    def at(name: str, session: str) -> pd.Series:
        label = resolve_session(session)
        if label not in labels:
            raise DesignError(f"analysis {spec.name!r}: session {session!r} ({label}) has no per-session measures")
        return sessions[name].xs(label, level="session_id").reindex(variables.index).astype(float)

    out = variables.copy()
    for name in measures:
        if spec.difference:
            first, second = spec.difference
            out[name] = at(name, second) - at(name, first)
        elif spec.session:
            out[name] = at(name, spec.session)
        else:
            raise DesignError(f"analysis {spec.name!r}: the per-session measure {name!r} in its formula needs the "
                              f"analysis' session (session = ...) or difference = [first, second]")
    return out


def check_analysis_variables(spec: AnalysisSpec, variables: pd.DataFrame) -> None:
    """Raise :class:`DesignError` if the analysis names a variable the study lacks."""
    import formulaic

    known = set(variables.columns)
    names = set()
    if spec.formula:
        try:
            names |= set(formulaic.Formula(spec.formula).required_variables)
        except Exception as exc:
            raise DesignError(f"analysis {spec.name!r}: cannot parse formula {spec.formula!r}: {exc}") from None
    if spec.subset is not None:
        names |= {n for n, session in spec.subset.names() if session is None}
    if spec.blocks:
        names.add(spec.blocks)
    unknown = sorted(names - known)
    if unknown:
        raise DesignError(f"analysis {spec.name!r} uses unknown variable(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")


def _keys(rows: pd.DataFrame) -> list[str]:
    return [f"{p} {s}".strip() for p, s in zip(rows["participant_id"], rows["session_id"].fillna("").astype(str))]


@dataclass(frozen=True)
class PreparedAnalysis:
    """An analysis made ready for its GLM: the rows used, the design and the scheme."""

    values: np.ndarray
    rows: pd.DataFrame
    design: Design
    scheme: Exchangeability
    n_subset: int
    dropped: tuple[str, ...]


def prepare_analysis(spec: AnalysisSpec, table: EdgeTable, variables: pd.DataFrame, *,
                     resolve_session: Callable[[str], str] = lambda s: s) -> PreparedAnalysis:
    """Everything :func:`run_analysis` does before the permutations: subjects, sessions,
    design, contrasts, exchangeability. Raises :class:`DesignError` where the analysis cannot be
    run, so it can be checked before any heavy work (with a table whose values are dummies)."""
    check_analysis_variables(spec, variables)
    subjects, dropped = select_subjects(spec, variables)
    n_subset = len(subjects)
    data_table, left_out = select_rows(spec.name, table, subjects, session=spec.session,
                                       pair=spec.paired or spec.difference, resolve_session=resolve_session)
    dropped += left_out

    used = data_table.rows["participant_id"].tolist()
    if spec.paired:
        first, second = spec.paired
        n = len(used)
        design = Design(matrix=np.ones((n, 1)), columns=("mean",), contrasts=np.array([[-1.0], [1.0]]),
                        contrast_names=(f"{first}>{second}", f"{second}>{first}"), rows=tuple(_keys(data_table.rows)))
    else:
        frame = variables.loc[used].reset_index()
        try:
            design = design_from_formula(spec.formula, frame, dict(spec.contrasts), ftests=dict(spec.ftests),
                                         blocks=spec.blocks, row_labels=_keys(data_table.rows))
        except DesignError as exc:
            raise DesignError(f"analysis {spec.name!r} ({len(used)} observations, subset {n_subset}): {exc}") from None
        dropped += list(design.dropped)
    if design.n < _MIN_N or design.n <= design.matrix.shape[1]:
        raise DesignError(f"analysis {spec.name!r} has {design.n} usable observations for "
                          f"{design.matrix.shape[1]} regressors: too few (subset {n_subset}, left out: "
                          f"{'; '.join(dropped) or 'none'})")
    index = {k: i for i, k in enumerate(_keys(data_table.rows))}
    take = [index[r] for r in design.rows]
    scheme = Exchangeability(permute="permute" in spec.exchangeability, flip="flip" in spec.exchangeability,
                             blocks=design.blocks, whole_blocks=spec.whole_blocks)
    return PreparedAnalysis(values=data_table.values[take], rows=data_table.rows.iloc[take].reset_index(drop=True),
                            design=design, scheme=scheme, n_subset=n_subset, dropped=tuple(dropped))


def run_analysis(spec: AnalysisSpec, table: EdgeTable, variables: pd.DataFrame, *,
                 resolve_session: Callable[[str], str] = lambda s: s, n_jobs: int | None = None,
                 relabellings_cache: Mapping | None = None) -> AnalysisResult:
    """Run one declared analysis.

    Parameters
    ----------
    spec : AnalysisSpec
    table : EdgeTable
        Subject-sessions x edges.
    variables : DataFrame
        Subject-level variables (index ``participant_id``): participants columns and
        derived variables.
    resolve_session : callable
        Maps a role (``TP1``) to a session label.

    Raises
    ------
    DesignError
        A session that does not exist, an empty or too small subset, unknown variables.
    """
    prepared = prepare_analysis(spec, table, variables, resolve_session=resolve_session)
    nbs = NBSOptions(spec.nbs_threshold, spec.nbs_measure) if spec.nbs_threshold is not None else None
    glm = permutation_glm(prepared.values, prepared.design, n_perm=spec.n_perm, exchangeability=prepared.scheme,
                          method=spec.method, tails=spec.tails, seed=spec.seed, nbs=nbs,
                          fwe_across_contrasts=spec.fwe_across, n_jobs=n_jobs)
    return AnalysisResult(spec=spec, glm=glm, rows=prepared.rows, n_subset=prepared.n_subset,
                          dropped=prepared.dropped, design=prepared.design)
