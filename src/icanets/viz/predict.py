"""Figures of a cross-validated prediction: predicted vs observed (or the ROC curve), the
permutation null of the metric, and the consensus edges on the node x node matrix."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["plot_predicted", "plot_roc", "plot_metric_null", "plot_consensus_edges"]


def plot_predicted(observed: np.ndarray, predicted: np.ndarray, *, target: str, r: float, title: str = "") -> Figure:
    """Out-of-fold predictions (mean over repeats) against the observed target, with the identity line."""
    observed = np.asarray(observed, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.scatter(observed, predicted, s=18, alpha=0.8, color="C0", edgecolor="none", label="subjects (out of fold)")
    low = float(np.nanmin([observed.min(), predicted.min()]))
    high = float(np.nanmax([observed.max(), predicted.max()]))
    ax.plot([low, high], [low, high], color="0.6", lw=0.8, ls="--", label="predicted = observed")
    ax.set_xlabel(f"observed {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title(title or f"cross-validated r = {r:.2f}, N = {observed.size}", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def plot_roc(observed: np.ndarray, scores: np.ndarray, *, auc: float, title: str = "") -> Figure:
    """ROC curve of the out-of-fold class scores (each repeat in grey, their mean score in colour)."""
    from sklearn.metrics import roc_curve

    observed = np.asarray(observed).astype(int)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    fig, ax = plt.subplots(figsize=(4.0, 3.8))
    for row in scores:
        fpr, tpr, _ = roc_curve(observed, row)
        ax.plot(fpr, tpr, color="0.75", lw=0.7)
    fpr, tpr, _ = roc_curve(observed, scores.mean(axis=0))
    ax.plot(fpr, tpr, color="C0", lw=1.6, label=f"mean over {len(scores)} repeat(s)")
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or f"AUC = {auc:.2f}, N = {observed.size}", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def plot_metric_null(null: np.ndarray, observed: float, *, metric: str, p: float, title: str = "") -> Figure:
    """Histogram of the metric over permutations of the whole procedure, with the observed value."""
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    fig, ax = plt.subplots(figsize=(4.4, 3.2))
    ax.hist(null, bins=40, color="0.7", label=f"permuted targets ({null.size})")
    ax.axvline(observed, color="C3", lw=1.8, label=f"observed {metric} = {observed:.3f} (p = {p:.3g})")
    ax.set_xlabel(f"cross-validated {metric}")
    ax.set_ylabel("permutations")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_consensus_edges(edges: pd.DataFrame, names: Sequence[str], *, order: Sequence[int] | None = None,
                         title: str = "") -> Figure:
    """The edges in ``edges`` (``node_i``, ``node_j``, ``sign``, ``fraction``) on the node x node
    matrix, red where stronger connectivity predicts a higher target, blue a lower one; the
    shade is the fraction of fits that selected the edge. Nodes in ``order`` (e.g. Ward's)."""
    n = len(names)
    order = np.arange(n) if order is None else np.asarray(order)
    position = np.empty(n, dtype=int)
    position[order] = np.arange(n)
    matrix = np.full((n, n), np.nan)
    for e in edges.itertuples():
        a, b = position[int(e.node_i)], position[int(e.node_j)]
        matrix[a, b] = matrix[b, a] = float(e.sign) * float(e.fraction)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n), [names[i] for i in order], rotation=90, fontsize=max(3, min(7, 300 // max(n, 1))))
    ax.set_yticks(range(n), [names[i] for i in order], fontsize=max(3, min(7, 300 // max(n, 1))))
    ax.set_facecolor("0.96")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of fits selecting the edge (sign: + red, - blue)", fontsize=8)
    ax.set_title(title or f"{len(edges)} consensus edge(s)", fontsize=9)
    fig.tight_layout()
    return fig
