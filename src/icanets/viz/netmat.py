"""The group netmat: full correlation below the diagonal, partial above, Ward-ordered, in z units."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from scipy.cluster import hierarchy

__all__ = ["netmat_display", "plot_netmat", "MIN_FONT_PT"]

#: The smallest font (points, at the saved size) of any text in the figures.
MIN_FONT_PT = 8.0


def netmat_display(full: np.ndarray, partial: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """The matrix drawn: ``full`` below and ``partial`` above the diagonal, rows and columns
    in ``order``, in their own units (z), diagonal NaN."""
    order = np.asarray(order)
    n = len(order)
    f = np.asarray(full, dtype=float)[np.ix_(order, order)]
    p = np.asarray(partial, dtype=float)[np.ix_(order, order)]
    out = np.where(np.tril(np.ones((n, n), dtype=bool), -1), f, p)
    np.fill_diagonal(out, np.nan)
    return out


def _limit(values: np.ndarray) -> float:
    """A symmetric colour limit: the 99th percentile of |values| (1 if all are 0)."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, 99)) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def plot_netmat(full: np.ndarray, partial: np.ndarray, linkage: np.ndarray | None, *,
                labels: np.ndarray | None = None, names: Sequence[str] | None = None,
                title: str = "Group network matrix", lower_label: str = "full correlation (z)",
                upper_label: str = "partial correlation (z)") -> Figure:
    """The Ward dendrogram above the ordered netmat: full correlation below the diagonal and
    partial above, each with its own symmetric colour bar in z (limits at the 99th percentile
    of its |z|, values beyond drawn at the end colour), cluster boundaries, and node names at
    every ``k``-th row where all cannot be shown at 8 pt."""
    n = full.shape[0]
    side = min(5.0 + 0.06 * n, 14.0)  # inches of the matrix
    fig = plt.figure(figsize=(side + 2.6, side + 2.4), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 5], width_ratios=[28, 1, 1])
    dend_ax = fig.add_subplot(grid[0, 0])
    if linkage is not None and n >= 2:
        dend = hierarchy.dendrogram(linkage, ax=dend_ax, no_labels=True, color_threshold=0,
                                    above_threshold_color="0.3")
        order = np.asarray(dend["leaves"])
        dend_ax.set_xlim(0, 10 * n)
    else:
        order = np.arange(n)
    dend_ax.set_axis_off()
    matrix = netmat_display(full, partial, order)
    lower = np.tril(np.ones((n, n), dtype=bool), -1)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    ax = fig.add_subplot(grid[1, 0])
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad((1.0, 1.0, 1.0, 0.0))  # each triangle's image is transparent over the other's
    limits = {}
    images = {}
    for name, part in (("lower", lower), ("upper", upper)):
        values = np.where(part, matrix, np.nan)
        limits[name] = _limit(values)
        images[name] = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limits[name], vmax=limits[name],
                                 interpolation="nearest", aspect="auto")  # columns under the dendrogram's leaves
    ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], color="k", lw=0.8)
    if labels is not None:
        ordered = np.asarray(labels)[order]
        for k in np.flatnonzero(ordered[1:] != ordered[:-1]) + 0.5:
            ax.axhline(k, color="k", lw=0.6)
            ax.axvline(k, color="k", lw=0.6)
    if names is not None:
        # Every step-th name, so that names at MIN_FONT_PT never overlap along the matrix's side.
        step = max(1, math.ceil(n * MIN_FONT_PT * 1.25 / (side * 72 * 0.8)))
        ticks = np.arange(0, n, step)
        shown = [str(names[i]) for i in order[ticks]]
        ax.set_xticks(ticks, shown, rotation=90, fontsize=MIN_FONT_PT)
        ax.set_yticks(ticks, shown, fontsize=MIN_FONT_PT)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel(f"below the diagonal: {lower_label}", fontsize=9)
    ax.set_ylabel(f"above the diagonal: {upper_label}", fontsize=9)
    ax.tick_params(labelsize=MIN_FONT_PT)
    for column, name, what in ((1, "lower", lower_label), (2, "upper", upper_label)):
        cax = fig.add_subplot(grid[1, column])
        bar = fig.colorbar(images[name], cax=cax, extend="both")
        bar.set_label(f"{'below' if name == 'lower' else 'above'}: {what}", fontsize=9)
        bar.ax.tick_params(labelsize=MIN_FONT_PT)
    every = "" if names is None or n <= 1 or step == 1 else f"; every {step}th node named"
    fig.suptitle(f"{title}\n{n} nodes, ordered by Ward clustering of the full correlation{every}", fontsize=10)
    return fig
