"""The group netmat: full correlation below the diagonal, partial above, Ward-ordered."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from scipy.cluster import hierarchy

__all__ = ["netmat_display", "plot_netmat"]


def netmat_display(full: np.ndarray, partial: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """The matrix drawn: ``full`` below and ``partial`` above the diagonal, rows and columns
    in ``order``, each scaled by its 99th percentile of absolute off-diagonal values (as
    FSLNets), diagonal NaN."""
    order = np.asarray(order)
    n = len(order)
    upper = np.triu_indices(n, 1)

    def scaled(m):
        m = np.asarray(m, dtype=float)[np.ix_(order, order)]
        scale = np.percentile(np.abs(m[upper]), 99)
        return m / scale if scale > 0 else m

    f, p = scaled(full), scaled(partial)
    out = np.where(np.tril(np.ones((n, n), dtype=bool), -1), f, p)
    np.fill_diagonal(out, np.nan)
    return np.clip(out, -1, 1)


def plot_netmat(full: np.ndarray, partial: np.ndarray, linkage: np.ndarray, *, labels: np.ndarray | None = None,
                names: Sequence[str] | None = None, title: str = "Group network matrix",
                lower_label: str = "full correlation (z)", upper_label: str = "partial correlation (z)") -> Figure:
    """Dendrogram above the Ward-ordered netmat, with cluster boundaries."""
    n = full.shape[0]
    fig = plt.figure(figsize=(8, 9.2))
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 6], width_ratios=[30, 1], hspace=0.02, wspace=0.05)
    dend_ax = fig.add_subplot(grid[0, 0])
    dend = hierarchy.dendrogram(linkage, ax=dend_ax, no_labels=True, color_threshold=0, above_threshold_color="0.3")
    dend_ax.axis("off")
    order = np.asarray(dend["leaves"])
    matrix = netmat_display(full, partial, order)
    ax = fig.add_subplot(grid[1, 0])
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], color="k", lw=0.8)
    if labels is not None:
        ordered = np.asarray(labels)[order]
        for k in np.flatnonzero(ordered[1:] != ordered[:-1]) + 0.5:
            ax.axhline(k, color="k", lw=0.6)
            ax.axvline(k, color="k", lw=0.6)
    if names is not None and n <= 60:
        ax.set_xticks(range(n), [names[i] for i in order], rotation=90, fontsize=6)
        ax.set_yticks(range(n), [names[i] for i in order], fontsize=6)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel(f"below the diagonal: {lower_label}")
    ax.set_ylabel(f"above the diagonal: {upper_label}")
    cax = fig.add_subplot(grid[1, 1])
    fig.colorbar(image, cax=cax, label="scaled (99th percentile = 1)")
    fig.suptitle(title)
    ax.set_title(f"{n} nodes, ordered by Ward clustering of the full correlation", fontsize=9)
    return fig
