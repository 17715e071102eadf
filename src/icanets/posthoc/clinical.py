"""Post-hoc statistics of single edges: FC per group and session, pairwise tests, and
correlations with clinical change."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from icanets.errors import IcanetsError

__all__ = ["edge_long", "group_session_means", "pairwise_tests", "correlation", "clinical_correlations"]


def edge_long(values: np.ndarray, rows: pd.DataFrame) -> pd.DataFrame:
    """One edge's FC per subject-session: ``participant_id``, ``session_id``, ``fc``."""
    return pd.DataFrame({"participant_id": rows["participant_id"].to_numpy(),
                         "session_id": rows["session_id"].fillna("").astype(str).to_numpy(), "fc": values})


def group_session_means(long: pd.DataFrame, groups: pd.Series, sessions: list[str]) -> pd.DataFrame:
    """Mean FC, SD, SE and N per group and session (the data behind the bar plots).

    ``groups``: a label per participant (index ``participant_id``); subjects without a label
    are left out.
    """
    frame = long.assign(group=groups.reindex(long["participant_id"]).to_numpy()).dropna(subset=["group"])
    rows = []
    for group in sorted(frame["group"].unique(), key=str):
        for session in sessions:
            fc = frame.loc[(frame["group"] == group) & (frame["session_id"] == session), "fc"]
            n = len(fc)
            rows.append({"group": str(group), "session": session, "n": n, "mean": fc.mean() if n else np.nan,
                         "sd": fc.std(ddof=1) if n > 1 else np.nan,
                         "se": fc.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan})
    return pd.DataFrame(rows)


def pairwise_tests(long: pd.DataFrame, groups: pd.Series, sessions: list[str]) -> pd.DataFrame:
    """Between groups at each session (Welch's t) and between sessions within each group
    (paired t on subjects with both)."""
    frame = long.assign(group=groups.reindex(long["participant_id"]).to_numpy()).dropna(subset=["group"])
    labels = sorted(frame["group"].unique(), key=str)
    rows = []
    for session in sessions:
        at = frame[frame["session_id"] == session]
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                x, y = at.loc[at["group"] == a, "fc"], at.loc[at["group"] == b, "fc"]
                if len(x) < 2 or len(y) < 2:
                    continue
                t, p = stats.ttest_ind(x, y, equal_var=False)
                vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
                df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
                rows.append({"comparison": f"{a} vs {b} at {session}", "test": "Welch t", "statistic": t, "df": df,
                             "p": p, "n": f"{len(x)} + {len(y)}", "difference": x.mean() - y.mean()})
    for group in labels:
        sub = frame[frame["group"] == group].pivot_table(index="participant_id", columns="session_id", values="fc")
        for i, s1 in enumerate(sessions):
            for s2 in sessions[i + 1:]:
                if s1 not in sub.columns or s2 not in sub.columns:
                    continue
                both = sub[[s1, s2]].dropna()
                if len(both) < 2:
                    continue
                t, p = stats.ttest_rel(both[s2], both[s1])
                rows.append({"comparison": f"{group}: {s2} vs {s1}", "test": "paired t", "statistic": t,
                             "df": len(both) - 1, "p": p, "n": str(len(both)),
                             "difference": float((both[s2] - both[s1]).mean())})
    return pd.DataFrame(rows, columns=["comparison", "test", "statistic", "df", "p", "n", "difference"])


def correlation(x: np.ndarray, y: np.ndarray, *, method: str = "pearson", confidence: float = 0.95) -> dict:
    """Pearson or Spearman correlation with a Fisher-z confidence interval and N.

    Pearson: ``SE(z) = 1 / sqrt(n - 3)``; Spearman: Bonett and Wright's
    ``SE(z) = sqrt((1 + rho^2 / 2) / (n - 3))``. Pairs with a missing value are dropped.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 4:
        return {"method": method, "r": np.nan, "p": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": n}
    if method == "pearson":
        r, p = stats.pearsonr(x, y)
        se = 1.0 / np.sqrt(n - 3)
    elif method == "spearman":
        r, p = stats.spearmanr(x, y)
        se = np.sqrt((1 + r**2 / 2) / (n - 3))
    else:
        raise IcanetsError(f"correlation method must be 'pearson' or 'spearman', got {method!r}")
    zq = stats.norm.ppf(0.5 + confidence / 2)
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return {"method": method, "r": float(r), "p": float(p), "ci_low": float(np.tanh(z - zq * se)),
            "ci_high": float(np.tanh(z + zq * se)), "n": n}


def clinical_correlations(long: pd.DataFrame, clinical: pd.Series, subjects: list[str], baseline: str,
                          followup: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Correlations of baseline FC and of the change in FC (followup - baseline) with a
    clinical variable, over ``subjects``.

    Returns
    -------
    table : DataFrame
        Rows ``baseline FC`` and ``change in FC`` x Pearson, Spearman: r, CI, p, N.
    data : DataFrame
        Per subject: ``baseline``, ``followup``, ``change`` and the clinical variable
        (the data behind the scatter plots).
    """
    wide = long[long["participant_id"].isin(subjects)].pivot_table(index="participant_id", columns="session_id",
                                                                    values="fc")
    data = pd.DataFrame(index=pd.Index(subjects, name="participant_id"))
    data["baseline"] = wide[baseline].reindex(subjects) if baseline in wide.columns else np.nan
    data["followup"] = wide[followup].reindex(subjects) if followup in wide.columns else np.nan
    data["change"] = data["followup"] - data["baseline"]
    data["clinical"] = clinical.reindex(subjects).to_numpy(dtype=float)
    rows = []
    for what, column in (("baseline FC", "baseline"), ("change in FC", "change")):
        for method in ("pearson", "spearman"):
            rows.append({"measure": what, **correlation(data[column], data["clinical"], method=method)})
    return pd.DataFrame(rows), data.reset_index()
