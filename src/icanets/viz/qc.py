"""Figures of head motion and data quality: mean FD per group and session, and the QC-FC
distribution."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_motion", "plot_qcfc"]


def plot_motion(sessions: pd.DataFrame, *, session_names: dict | None = None, threshold: float | None = None,
                title: str = "") -> Figure:
    """Mean FD of every subject-session (points) with the median per group and session
    (``sessions``: columns ``session_id``, ``group``, ``mean_fd``, ``n_runs``)."""
    data = sessions[(sessions["n_runs"] > 0) & sessions["mean_fd"].notna()]
    labels = sorted(set(data["session_id"].fillna("").astype(str)))
    groups = sorted(set(data["group"].dropna().astype(str)))
    names = session_names or {}
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * max(len(labels), 1), 3.4))
    rng = np.random.default_rng(0)  # jitter only; the figure is deterministic
    for g, group in enumerate(groups):
        for s, label in enumerate(labels):
            values = data[(data["group"].astype(str) == group) & (data["session_id"].astype(str) == label)]["mean_fd"]
            x = s + (g - (len(groups) - 1) / 2) * width
            ax.scatter(x + rng.uniform(-0.25, 0.25, len(values)) * width, values, s=10, alpha=0.6, color=f"C{g}",
                       label=f"{group}" if s == 0 else None)
            if len(values):
                ax.hlines(np.median(values), x - 0.4 * width, x + 0.4 * width, color="k", lw=1.5)
    if threshold is not None:
        ax.axhline(threshold, color="C3", ls=":", lw=1, label=f"exclusion {threshold:g} mm")
    ax.set_xticks(range(len(labels)), [names.get(label, label or "(none)") for label in labels])
    ax.set_ylabel("mean FD (mm)")
    ax.set_title(title or "Head motion per subject-session (line: median)", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_qcfc(entries: list[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Histogram of QC-FC correlations per session (``entries``: name, r, p), with the
    fraction of edges at p < 0.05 in the legend."""
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for k, (name, r, p) in enumerate(entries):
        ax.hist(r, bins=min(40, max(10, len(r) // 5)), range=(-1, 1), histtype="step", lw=1.4, color=f"C{k}",
                label=f"{name}: {100 * np.mean(p < 0.05):.1f} % of edges p < 0.05, median |r| "
                      f"{np.median(np.abs(r)):.2f}")
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("QC-FC: partial correlation of edge with mean FD")
    ax.set_ylabel("edges")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("QC-FC (about 5 % of edges at p < 0.05 when FC does not follow motion)", fontsize=8)
    fig.tight_layout()
    return fig
