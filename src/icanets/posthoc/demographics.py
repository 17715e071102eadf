"""The demographics and clinical table, and the repeated-measures ANOVA of a clinical
score over sessions with the Greenhouse-Geisser correction."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from icanets.errors import IcanetsError

__all__ = ["RMAnova", "rm_anova", "demographics_table", "group_test"]


@dataclass(frozen=True)
class RMAnova:
    """One-way repeated-measures ANOVA.

    Attributes
    ----------
    f : float
    df1, df2 : float
        Uncorrected degrees of freedom ``k - 1`` and ``(k - 1)(n - 1)``.
    p : float
        Uncorrected p.
    epsilon : float
        Greenhouse-Geisser epsilon.
    df1_gg, df2_gg : float
        Corrected degrees of freedom (``epsilon`` times the uncorrected).
    p_gg : float
        Greenhouse-Geisser corrected p.
    n : int
        Subjects used: those with the measure at every session (complete cases).
    sessions : tuple of str
    rule : str
        How subjects with missing sessions were handled.
    """

    f: float
    df1: float
    df2: float
    p: float
    epsilon: float
    df1_gg: float
    df2_gg: float
    p_gg: float
    n: int
    sessions: tuple[str, ...]
    rule: str = "complete cases: subjects with the measure at every session"

    def to_dict(self) -> dict:
        return asdict(self)


def rm_anova(wide: pd.DataFrame) -> RMAnova:
    """Repeated-measures ANOVA of ``wide`` (subjects x sessions), complete cases only.

    ``F = MS_sessions / MS_error``; the Greenhouse-Geisser epsilon is
    ``tr(S)^2 / ((k - 1) tr(S^2))`` with ``S = C Sigma C'``, ``Sigma`` the sessions'
    covariance and ``C`` orthonormal contrasts between sessions.

    Examples
    --------
    >>> wide = pd.DataFrame({"a": [1., 2, 3, 4], "b": [2., 3, 5, 4], "c": [3., 5, 6, 7]})
    >>> round(rm_anova(wide).f, 4)
    25.3636
    """
    complete = wide.dropna()
    n, k = complete.shape
    if k < 2:
        raise IcanetsError(f"a repeated-measures ANOVA needs at least 2 sessions, got {k}")
    if n < 2:
        raise IcanetsError(f"a repeated-measures ANOVA needs at least 2 subjects with every session, got {n}")
    y = complete.to_numpy(dtype=float)
    grand = y.mean()
    ss_sessions = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_subjects = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_error = np.sum((y - grand) ** 2) - ss_sessions - ss_subjects
    df1, df2 = k - 1, (k - 1) * (n - 1)
    f = (ss_sessions / df1) / (ss_error / df2)
    p = stats.f.sf(f, df1, df2)
    contrasts = np.linalg.qr(np.eye(k) - 1.0 / k)[0][:, : k - 1].T  # (k-1) x k orthonormal, rows sum to 0
    s = contrasts @ np.cov(y, rowvar=False) @ contrasts.T
    epsilon = float(np.trace(s) ** 2 / ((k - 1) * np.trace(s @ s)))
    epsilon = min(max(epsilon, 1.0 / (k - 1)), 1.0)
    p_gg = stats.f.sf(f, df1 * epsilon, df2 * epsilon)
    return RMAnova(f=float(f), df1=float(df1), df2=float(df2), p=float(p), epsilon=epsilon, df1_gg=df1 * epsilon,
                   df2_gg=df2 * epsilon, p_gg=float(p_gg), n=int(n), sessions=tuple(map(str, complete.columns)))


def group_test(values: pd.Series, groups: pd.Series) -> dict:
    """Between-group test of a variable: Student's two-sample t (2 groups) or one-way ANOVA
    for numbers, Pearson's chi-square (no continuity correction) for categories."""
    frame = pd.DataFrame({"v": values, "g": groups}).dropna()
    levels = sorted(frame["g"].unique())
    if len(levels) < 2:
        return {"test": "none", "detail": "fewer than two groups"}
    numeric = pd.api.types.is_numeric_dtype(frame["v"])
    if numeric:
        samples = [frame.loc[frame["g"] == g, "v"].astype(float).to_numpy() for g in levels]
        if len(levels) == 2:
            t, p = stats.ttest_ind(samples[0], samples[1])
            return {"test": "t", "statistic": float(t), "df": int(len(samples[0]) + len(samples[1]) - 2),
                    "p": float(p), "groups": [str(g) for g in levels]}
        f, p = stats.f_oneway(*samples)
        return {"test": "F", "statistic": float(f), "df": [len(levels) - 1, int(len(frame) - len(levels))],
                "p": float(p), "groups": [str(g) for g in levels]}
    table = pd.crosstab(frame["v"], frame["g"])
    chi2, p, dof, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    return {"test": "chi2", "statistic": float(chi2), "df": int(dof), "p": float(p), "groups": [str(g) for g in levels]}


def demographics_table(variables: pd.DataFrame, group: str, *, numeric: tuple[str, ...] = (), sex: str | None = None,
                       female: str = "F", measures: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Table 1: per group N, % female and mean (SD) of each variable, with group tests.

    Parameters
    ----------
    variables : DataFrame
        Index ``participant_id``.
    group : str
        Group column.
    numeric : tuple of str
        Variables reported as mean (SD), tested with t (2 groups) or F.
    sex : str, optional
        Sex column (reported as % female, tested by chi-square).
    measures : DataFrame, optional
        Extra per-subject numeric columns (e.g. ``hdrs (TP1)``), reported per group
        without a test.

    Returns
    -------
    table : DataFrame
        Rows are the variables, columns the groups (mean (SD), with N in brackets where
        some values are missing), then ``test``, ``statistic``, ``df``, ``p``.
    tests : list of dict
    """
    if group not in variables.columns:
        raise IcanetsError(f"no group column {group!r} (columns: {', '.join(variables.columns)})")
    groups = variables[group]
    levels = sorted(groups.dropna().unique())
    rows, tests = [], []
    rows.append({"variable": "N", **{str(g): str(int((groups == g).sum())) for g in levels}})
    if sex is not None:
        if sex not in variables.columns:
            raise IcanetsError(f"no sex column {sex!r} (columns: {', '.join(variables.columns)})")
        row = {"variable": f"sex (% {female})"}
        for g in levels:
            values = variables.loc[groups == g, sex].dropna()
            row[str(g)] = f"{100 * np.mean(values == female):.1f}" if len(values) else "n/a"
        test = group_test(variables[sex], groups)
        tests.append({"variable": sex, **test})
        rows.append({**row, **_test_columns(test)})
    for column in numeric:
        if column not in variables.columns:
            raise IcanetsError(f"no variable {column!r} for the demographics table")
        row = {"variable": column}
        for g in levels:
            row[str(g)] = _mean_sd(variables.loc[groups == g, column], (groups == g).sum())
        test = group_test(variables[column].astype(float), groups)
        tests.append({"variable": column, **test})
        rows.append({**row, **_test_columns(test)})
    if measures is not None:
        for column in measures.columns:
            row = {"variable": column}
            for g in levels:
                row[str(g)] = _mean_sd(measures.loc[groups[groups == g].index, column], (groups == g).sum())
            rows.append(row)
    return pd.DataFrame(rows).fillna(""), tests


def _mean_sd(values: pd.Series, n_group: int) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "n/a"
    text = f"{values.mean():.2f} ({values.std(ddof=1):.2f})" if len(values) > 1 else f"{values.mean():.2f}"
    return text + (f" [N={len(values)}]" if len(values) < n_group else "")


def _test_columns(test: dict) -> dict:
    if test.get("test") in (None, "none"):
        return {}
    df = test["df"] if not isinstance(test["df"], list) else ", ".join(map(str, test["df"]))
    return {"test": test["test"], "statistic": f"{test['statistic']:.3f}", "df": str(df), "p": f"{test['p']:.4g}"}
