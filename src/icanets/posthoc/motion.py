"""The motion checks of a connectivity study: mean framewise displacement by group and session
with its tests (controls vs patients at baseline; over sessions in the patients, as for the
clinical score), and QC-FC of the analysed edges."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from icanets.errors import IcanetsError
from icanets.glm.design import covariate_columns
from icanets.posthoc.demographics import group_test, rm_anova
from icanets.qc.qcfc import qc_fc

__all__ = ["motion_table", "study_qc_fc"]


def motion_table(sessions: pd.DataFrame, groups: pd.Series, *, session_labels: Sequence[str], baseline: str | None,
                 patients: Sequence[str] | None, roles: dict[str, str]) -> dict:
    """Mean FD per session and group (N, mean (SD)), the between-group test at ``baseline``
    (Student's t, or F for more groups) and the repeated-measures ANOVA over sessions within
    ``patients`` (complete cases, Greenhouse-Geisser).

    Returns a dict: ``table`` (DataFrame), ``group_test``, ``rm_anova`` (or None) and ``notes``.
    """
    if "mean_fd" not in sessions.columns:
        raise IcanetsError("no motion measures: the study has no motion files")
    scanned = sessions[sessions["n_runs"] > 0]
    wide = scanned["mean_fd"].unstack("session_id").reindex(columns=list(session_labels) or [""])
    wide = wide.reindex(groups.index)
    levels = sorted(groups.dropna().unique())
    rows = []
    for label in wide.columns:
        row = {"session": f"{label} ({roles[label]})" if label in roles else (label or "(none)")}
        for g in levels:
            values = wide.loc[groups[groups == g].index, label].dropna()
            row[str(g)] = (f"{values.mean():.3f} ({values.std(ddof=1):.3f}) [N={len(values)}]" if len(values) > 1
                           else f"{values.mean():.3f} [N={len(values)}]" if len(values) else "n/a")
        rows.append(row)
    notes = []
    test = None
    if baseline is not None and baseline in wide.columns and len(levels) >= 2:
        test = {"session": roles.get(baseline, baseline), **group_test(wide[baseline], groups)}
        if test.get("test") == "t":
            means = {str(g): float(wide.loc[groups[groups == g].index, baseline].mean()) for g in levels}
            test["means"] = means
        rows[list(wide.columns).index(baseline)].update(
            {"test": test["test"], "statistic": f"{test['statistic']:.3f}", "df": str(test["df"]),
             "p": f"{test['p']:.4g}"} if "statistic" in test else {})
    anova = None
    if patients is not None and len(wide.columns) > 1:
        within = wide.loc[[p for p in patients if p in wide.index]].dropna(axis=1, how="all")
        try:
            anova = rm_anova(within)
            notes.append(f"repeated-measures ANOVA of mean FD: {anova.n} patients with every session (complete "
                         f"cases); {len(within) - anova.n} with a missing session left out")
        except IcanetsError as exc:
            notes.append(f"repeated-measures ANOVA of mean FD not computed: {exc}")
    return {"table": pd.DataFrame(rows).fillna(""), "group_test": test,
            "rm_anova": anova.to_dict() if anova is not None else None, "notes": notes}


def study_qc_fc(values: np.ndarray, rows: pd.DataFrame, sessions: pd.DataFrame, variables: pd.DataFrame, *,
                covariates: Sequence[str], distance: np.ndarray | None = None,
                roles: dict[str, str] | None = None) -> list[dict]:
    """QC-FC of an edge table (``values``: rows x edges, ``rows``: ``participant_id``,
    ``session_id``) at each session: its subjects' edges against their mean FD there,
    partialling ``covariates`` (those the study has). Subjects with a missing covariate are
    left out and counted. Returns one dict per session, with the per-edge ``r`` and ``p``."""
    roles = roles or {}
    out = []
    keys = rows.assign(session_id=rows["session_id"].fillna("").astype(str))
    for label in sorted(set(keys["session_id"])):
        take = np.flatnonzero(keys["session_id"].to_numpy() == label)
        subjects = keys["participant_id"].to_numpy()[take]
        fd = np.array([sessions["mean_fd"].get((s, label), np.nan) for s in subjects], dtype=float)
        present = [c for c in covariates if c in variables.columns]
        cov, _ = covariate_columns(variables.reindex(subjects), present)
        used = present
        cov = cov if cov.shape[1] else None
        ok = np.isfinite(fd) & (np.isfinite(cov).all(axis=1) if cov is not None else True)
        entry = {"session": roles.get(label, label) or "(none)", "session_id": label, "n_left_out": int((~ok).sum())}
        if ok.sum() < len(used) + 4:
            out.append({**entry, "n": int(ok.sum()), "note": f"too few subjects ({int(ok.sum())}) for QC-FC"})
            continue
        result = qc_fc(values[take[ok]], fd[ok], None if cov is None else cov[ok], names=tuple(used),
                       distance=distance)
        out.append({**entry, **result.summary(), "r": result.r, "p": result.p})
    return out
