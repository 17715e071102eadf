"""Bar plots of FC per group and session, scatter plots against clinical change, and
the null distribution of the maximum statistic."""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from icanets._format import p_relation

__all__ = ["plot_bars", "plot_scatter", "plot_null"]


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def plot_bars(means: pd.DataFrame, *, session_names: dict | None = None, pairwise: pd.DataFrame | None = None,
              title: str = "") -> Figure:
    """Mean FC (+- SE) per group (bars of one colour each) and session (groups of bars).

    ``means``: columns ``group``, ``session``, ``n``, ``mean``, ``se``. Significant
    between-group tests at a session (``pairwise``, Welch) are marked above the bars.
    """
    means = means[means["n"] > 0]
    sessions = list(dict.fromkeys(means["session"]))
    groups = list(dict.fromkeys(means["group"]))
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(sessions), 3.6))
    names = session_names or {}
    placed = []
    for g, group in enumerate(groups):
        sub = means[means["group"] == group].set_index("session").reindex(sessions)
        x = np.arange(len(sessions)) + (g - (len(groups) - 1) / 2) * width
        ax.bar(x, sub["mean"], width, yerr=sub["se"], capsize=3, label=f"{group}", alpha=0.85)
        placed += [(xi, n) for xi, n in zip(x, sub["n"]) if np.isfinite(n)]
    top = float(np.nanmax(means["mean"] + means["se"].fillna(0))) if len(means) else 1.0
    bottom = float(np.nanmin(means["mean"] - means["se"].fillna(0))) if len(means) else 0.0
    span = max(top, 0.0) - min(bottom, 0.0) or 1.0
    low = min(bottom, 0.0) - 0.14 * span
    ax.set_ylim(low, max(top, 0.0) + 0.18 * span)
    for xi, n in placed:  # N of every bar, under it
        ax.text(xi, low + 0.02 * span, f"N={int(n)}", ha="center", va="bottom", fontsize=8, gid="n")
    if pairwise is not None and not pairwise.empty:
        for s, session in enumerate(sessions):
            rows = pairwise[pairwise["comparison"].str.endswith(f" at {session}") &
                            pairwise["comparison"].str.contains(" vs ")]
            for _, row in rows.iterrows():
                a, b = row["comparison"].split(" at ")[0].split(" vs ")
                if a in groups and b in groups and row["p"] < 0.05:
                    ax.annotate(_stars(row["p"]), (s, max(top, 0.0) + 0.06 * span), ha="center", fontsize=9)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(range(len(sessions)), [names.get(s, s) for s in sessions])
    ax.set_ylabel("FC (partial correlation, z)")
    ax.set_xlabel("mean +- SE; * p < 0.05, ** < 0.01, *** < 0.001 (Welch t, uncorrected)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_scatter(x: np.ndarray, y: np.ndarray, *, xlabel: str, ylabel: str, title: str = "") -> Figure:
    """Scatter plot with the least-squares line, and r, p, N in the title."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.scatter(x, y, s=18, alpha=0.8)
    if x.size >= 3 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, intercept + slope * grid, color="C3")
        r, p = stats.pearsonr(x, y)
        ax.set_title(f"{title}\nPearson r = {r:.2f}, p {p_relation(p)}, "
                     f"N = {x.size}".strip(), fontsize=9)
    else:
        ax.set_title(f"{title}\nN = {x.size}".strip(), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def plot_null(null_max: np.ndarray, observed: np.ndarray, *, alpha: float = 0.05, title: str = "",
              statistic: str = "t") -> Figure:
    """Histogram of the maximum statistic over edges under relabelling, the FWE threshold
    (its ``1 - alpha`` quantile) and the observed statistics above it (ticks)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    ax.hist(null_max, bins=50, color="0.6")
    threshold = float(np.quantile(null_max, 1 - alpha))
    ax.axvline(threshold, color="C3", lw=1.2, label=f"FWE {alpha:g} threshold = {threshold:.2f}")
    observed = np.asarray(observed, dtype=float)
    above = np.sort(observed[observed >= threshold])
    for k, value in enumerate(above):
        ax.axvline(value, color="C0", lw=0.8, ymax=0.15, label="observed edges above it" if k == 0 else None)
    if observed.size:
        largest = float(np.nanmax(observed))
        ax.axvline(largest, color="C0", lw=1.2, ls="--", label=f"largest observed {statistic} = {largest:.2f}")
    ax.set_xlabel(f"maximum {statistic} over edges")
    ax.set_ylabel("relabellings")
    ax.set_title(f"{title} ({above.size} edge(s) above)".strip(), fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
