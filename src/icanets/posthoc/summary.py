"""Post-hoc follow-up of significant edges, and the study's demographics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from icanets.config import PosthocSpec
from icanets.errors import ExpressionError, IcanetsError
from icanets.expr import frame_context
from icanets.netmats.edges import EdgeTable
from icanets.posthoc.clinical import clinical_correlations, edge_long, group_session_means, pairwise_tests
from icanets.posthoc.demographics import RMAnova, demographics_table, rm_anova
from icanets.posthoc.mixed import time_by_remission

__all__ = ["EdgeFinding", "EdgePosthoc", "PosthocResult", "significant_edges", "check_posthoc", "run_posthoc",
           "study_demographics"]


@dataclass(frozen=True)
class EdgeFinding:
    """An edge followed up, and why.

    Attributes
    ----------
    edge : int
    node_i, node_j : int
    name_i, name_j : str
    hits : tuple of dict
        ``analysis``, ``contrast``, ``statistic``, ``p_fwe`` where it was significant (empty
        for an edge the user named).
    """

    edge: int
    node_i: int
    node_j: int
    name_i: str
    name_j: str
    hits: tuple[dict, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name_i} - {self.name_j}"


@dataclass(frozen=True)
class EdgePosthoc:
    """Post-hoc statistics of one edge (each table states its N)."""

    finding: EdgeFinding
    means: pd.DataFrame
    pairwise: pd.DataFrame
    correlations: pd.DataFrame | None
    scatter: pd.DataFrame | None
    mixed: dict | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PosthocResult:
    edges: tuple[EdgePosthoc, ...]
    demographics: pd.DataFrame
    demographic_tests: list
    rm_anova: RMAnova | None
    notes: tuple[str, ...] = field(default=())


def significant_edges(results: Sequence, edges: pd.DataFrame, *, alpha: float = 0.05,
                      named: Sequence[tuple[str, str]] = ()) -> list[EdgeFinding]:
    """Edges with ``p_FWE < alpha`` in any contrast of any analysis, plus the named edges."""
    hits: dict[int, list[dict]] = {}
    for result in results:
        for contrast in result.glm.contrasts:
            for e in np.flatnonzero(contrast.p_fwe < alpha):
                hits.setdefault(int(e), []).append({"analysis": result.spec.name, "contrast": contrast.name,
                                                    "statistic": float(contrast.statistic[e]),
                                                    "p_fwe": float(contrast.p_fwe[e]), "n": result.n_used})
    for a, b in named:
        hits.setdefault(_find_edge(edges, a, b), [])
    out = []
    for e in sorted(hits):
        row = edges.iloc[e]
        out.append(EdgeFinding(edge=e, node_i=int(row["node_i"]), node_j=int(row["node_j"]), name_i=str(row["name_i"]),
                               name_j=str(row["name_j"]), hits=tuple(hits[e])))
    return out


def _find_edge(edges: pd.DataFrame, a: str, b: str) -> int:
    names = {str(n) for n in pd.concat([edges["name_i"], edges["name_j"]])}
    n_nodes = int(max(edges["node_j"].max(), edges["node_i"].max())) + 1

    def node(x: str) -> int:
        if x in names:
            match = edges.loc[edges["name_i"] == x, "node_i"]
            return int(match.iloc[0]) if len(match) else int(edges.loc[edges["name_j"] == x, "node_j"].iloc[0])
        if x.isdigit() and int(x) < n_nodes:
            return int(x)
        raise IcanetsError(f"[posthoc] edges: no node {x!r} (nodes are named like {edges['name_i'].iloc[0]!r}, "
                           f"or 0-based indices below {n_nodes})")

    i, j = sorted((node(a), node(b)))
    if i == j:
        raise IcanetsError(f"[posthoc] edges: [{a}, {b}] is not an edge (same node)")
    return int(edges.index[(edges["node_i"] == i) & (edges["node_j"] == j)][0])


def _mask(expression, variables: pd.DataFrame) -> list[str]:
    try:
        keep = expression.evaluate(frame_context(variables))
    except ExpressionError as exc:
        raise IcanetsError(f"[posthoc] patients: {exc}") from None
    return [s for s, k in zip(variables.index, keep) if k == 1.0]


def check_posthoc(variables: pd.DataFrame, spec: PosthocSpec, *, sessions: Sequence[str],
                  resolve_session: Callable[[str], str] = lambda s: s) -> tuple[list[str], str, str]:
    """The patients, baseline and follow-up sessions of the post-hoc statistics; raises
    :class:`IcanetsError` for a session the data lack, an unknown variable or a patients
    expression that selects nobody (so it can be checked before any heavy work)."""
    sessions = list(sessions)
    patients = _mask(spec.patients, variables) if spec.patients is not None else list(variables.index)
    if spec.patients is not None and not patients:
        raise IcanetsError(f"[posthoc] patients: {spec.patients.text!r} selects no subjects")
    baseline = resolve_session(spec.baseline) if spec.baseline else (sessions[0] if sessions else "")
    followup = resolve_session(spec.followup) if spec.followup else (sessions[-1] if sessions else "")
    for label, given in ((baseline, spec.baseline), (followup, spec.followup)):
        if sessions and label not in sessions:
            raise IcanetsError(f"[posthoc] session {given!r} ({label}) is not in the edge table "
                               f"(sessions: {', '.join(sessions)})")
    for name in (spec.clinical, spec.remission):
        if name is not None and name not in variables.columns:
            raise IcanetsError(f"[posthoc] unknown variable {name!r} (known: {', '.join(variables.columns)})")
    return patients, baseline, followup


def run_posthoc(table: EdgeTable, findings: Sequence[EdgeFinding], variables: pd.DataFrame, spec: PosthocSpec, *,
                group: str, sessions: Sequence[str], resolve_session: Callable[[str], str] = lambda s: s) -> tuple:
    """Post-hoc statistics of every finding (see :class:`EdgePosthoc`)."""
    sessions = list(sessions)
    patients, baseline, followup = check_posthoc(variables, spec, sessions=sessions, resolve_session=resolve_session)
    groups = variables[group] if group in variables.columns else pd.Series("all", index=variables.index)
    subgroups = None
    if spec.remission:
        status = variables[spec.remission].reindex(patients)
        subgroups = status.map(lambda v: np.nan if pd.isna(v) else ("remitter" if v == 1 else "non-remitter"))
    out = []
    for finding in findings:
        long = edge_long(table.values[:, finding.edge], table.rows)
        means = group_session_means(long, groups, sessions).assign(grouping=group)
        pairwise = pairwise_tests(long, groups, sessions)
        notes = []
        if subgroups is not None:
            means = pd.concat([means, group_session_means(long, subgroups, sessions).assign(grouping=spec.remission)],
                              ignore_index=True)
            pairwise = pd.concat([pairwise, pairwise_tests(long, subgroups, sessions)], ignore_index=True)
        correlations = scatter = None
        if spec.clinical:
            problem = _not_computable(variables[spec.clinical].reindex(patients), spec.clinical)
            if problem:
                notes.append(f"clinical correlations not computable: {problem}")
            else:
                correlations, scatter = clinical_correlations(long, variables[spec.clinical], patients, baseline,
                                                              followup)
        mixed = None
        if spec.remission:
            try:
                mixed = time_by_remission(long, variables[spec.remission], patients, baseline, followup)
            except IcanetsError as exc:
                notes.append(f"mixed model not fitted: {exc}")
        out.append(EdgePosthoc(finding=finding, means=means, pairwise=pairwise, correlations=correlations,
                               scatter=scatter, mixed=mixed, notes=tuple(notes)))
    return tuple(out)


def _not_computable(values: pd.Series, name: str) -> str | None:
    """Why a clinical variable cannot be correlated with FC over the patients, if it cannot."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        infinite = int(np.isinf(x).sum())
        return (f"{name!r} has no finite value among the {len(x)} patients"
                + (f" ({infinite} infinite: a division by zero in its expression?)" if infinite else " (all n/a)"))
    if finite.size < 4:
        return f"{name!r} has only {finite.size} finite value(s) among the {len(x)} patients (at least 4 needed)"
    if np.ptp(finite) == 0:
        return f"{name!r} is constant ({finite[0]:g}) among the patients"
    return None


def study_demographics(variables: pd.DataFrame, sessions_table: pd.DataFrame, spec: PosthocSpec, *, group: str,
                       session_labels: Sequence[str], roles: dict[str, str]) -> tuple[pd.DataFrame, list, RMAnova | None,
                                                                                     list[str]]:
    """Table 1 (N, % female, demographics, per-session clinical measure) and the RM ANOVA."""
    notes = []
    measures = None
    wide = None
    if spec.measure:
        if spec.measure not in sessions_table.columns:
            raise IcanetsError(f"[posthoc] measure {spec.measure!r} is not a per-session measure "
                               f"(have: {', '.join(c for c in sessions_table.columns if c != 'n_runs')})")
        wide = sessions_table[spec.measure].unstack("session_id").reindex(columns=list(session_labels))
        wide = wide.reindex(variables.index)
        names = {label: f"{spec.measure} ({roles.get(label, label)})" for label in wide.columns}
        measures = wide.rename(columns=names)
    sex = spec.sex if (spec.sex and spec.sex in variables.columns) else None
    if spec.sex and sex is None:
        notes.append(f"no {spec.sex!r} column: sex is not reported")
    table, tests = demographics_table(variables, group, numeric=tuple(spec.demographics), sex=sex, female=spec.female,
                                      measures=measures)
    anova = None
    if wide is not None:
        patients = _mask(spec.patients, variables) if spec.patients is not None else list(variables.index)
        within = wide.loc[patients].dropna(axis=1, how="all")
        try:
            anova = rm_anova(within)
            dropped = len(within) - anova.n
            notes.append(f"repeated-measures ANOVA of {spec.measure}: {anova.n} subjects with every session "
                         f"(complete cases); {dropped} with a missing session left out")
        except IcanetsError as exc:
            notes.append(f"repeated-measures ANOVA not computed: {exc}")
    return table, tests, anova, notes
