"""Overview of one ICA component: map thumbnail, time-course power spectrum, label."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from scipy import signal

__all__ = ["plot_component", "plot_model_order", "LABEL_COLOURS"]

#: Colour of each component label in figures.
LABEL_COLOURS = {"signal": "C2", "uncertain": "C1", "noise": "C3"}


def plot_component(volume: np.ndarray, timecourses, tr: float, *, title: str, features: Mapping[str, float],
                   label: str, threshold: float | None = None) -> Figure:
    """Three orthogonal maximum-|z| projections of a component map (sagittal, coronal, axial;
    L/R marked, a z colour bar, voxels at or under ``threshold`` greyed), the mean power
    spectrum of its stage-1 time courses (fraction of each run's power), and its features and
    label.

    ``volume``: 3D z map (x, y, z) in RAS voxel order; ``timecourses``: list of 1D arrays (one
    per run).
    """
    fig, axes = plt.subplots(1, 6, figsize=(11.5, 2.9), gridspec_kw={"width_ratios": [1, 1, 1, 0.07, 0.45, 1.6]})
    axes[4].set_axis_off()  # room for the colour bar's label
    draw_projections(fig, axes[:3], axes[3], volume, threshold)
    draw_spectrum(axes[5], timecourses, tr)
    _caption(fig, title, label, features)
    fig.subplots_adjust(top=0.78, bottom=0.2, wspace=0.25)
    return fig


def draw_projections(fig, axes, colour_axis, volume: np.ndarray, threshold: float | None, limit: float | None = None):
    """Maximum-|z| projections of a 3D map (sagittal, coronal, axial) on three axes, with a
    colour bar on ``colour_axis``; voxels at or under ``threshold`` blank."""
    z = np.asarray(volume, dtype=float)
    limit = limit or max(np.nanmax(np.abs(z)), 1e-6)
    image = None
    for axis, ax, view in zip((0, 1, 2), axes, ("sagittal", "coronal", "axial")):
        projection = np.take_along_axis(z, np.abs(z).argmax(axis=axis)[(slice(None),) * axis + (None,)],
                                        axis=axis).squeeze(axis)
        shown = np.rot90(projection)
        if threshold is not None:
            shown = np.ma.masked_where(np.abs(shown) <= threshold, shown)
        image = ax.imshow(shown, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{view} (max |z|)", fontsize=8)
        if view != "sagittal":
            ax.text(0.02, 0.02, "L", transform=ax.transAxes, fontsize=8, va="bottom")
            ax.text(0.98, 0.02, "R", transform=ax.transAxes, fontsize=8, va="bottom", ha="right")
    if colour_axis is not None:
        bar = fig.colorbar(image, cax=colour_axis)
        bar.set_label("z" + (f" (|z| <= {threshold:g} blank)" if threshold is not None else ""), fontsize=8)
        bar.ax.tick_params(labelsize=8)
    return image


def draw_spectrum(ax, timecourses, tr: float) -> None:
    """The mean power spectrum (fraction of each run's power) of 1D time courses."""
    spectra = []
    grid = None
    for tc in timecourses:
        freqs, power = signal.periodogram(np.asarray(tc) - np.mean(tc), fs=1.0 / tr)
        spectra.append((freqs, power / power.sum() if power.sum() > 0 else power))
        if grid is None or len(freqs) < len(grid):
            grid = freqs  # runs may differ in length: average on the coarsest frequency grid
    if spectra:
        mean = np.mean([np.interp(grid, f, p) * (len(grid) / len(f)) for f, p in spectra], axis=0)
        ax.plot(grid, mean, color="C0")
    ax.set_xlabel("frequency (Hz)", fontsize=8)
    ax.set_ylabel("power (fraction)", fontsize=8)
    ax.set_title(f"mean spectrum of {len(spectra)} runs", fontsize=8)
    ax.tick_params(labelsize=8)


def _caption(fig, title: str, label: str, features: Mapping[str, float]) -> None:
    text = ", ".join(f"{k} {v:.2f}" for k, v in features.items())
    fig.suptitle(f"{title}: {label}", color=LABEL_COLOURS.get(label, "C0"), fontsize=9, x=0.02, ha="left")
    fig.text(0.02, 0.01, text, fontsize=8)


def plot_model_order(spectrum: np.ndarray, evidence: Mapping[str, np.ndarray], *, dimension: int,
                     estimates: Mapping[str, int], method: str, consistency: np.ndarray | None = None,
                     edge: float | None = None, reproducibility: Mapping | None = None) -> Figure:
    """The curves behind the model order, with every estimate marked.

    First (when computed): the split-half reproducibility curve, components found in both
    halves of the subjects at each candidate dimension, with the best one (best smoothed score). Then the
    group consistency spectrum (the mean squared projection of each group direction onto the
    runs' whitened subspaces) with the random-subspace limit, when available; the eigenvalues
    (log scale) of the concatenated subset of runs with a vertical line at each estimate (the
    one used solid); the log evidence of every rank under each PPCA approximation, scaled to
    [0, 1].
    """
    panels = 2 + (consistency is not None) + (reproducibility is not None)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2))
    shown = max(3 * dimension, 60)
    marks = sorted(estimates.items(), key=lambda item: item[1])

    def mark(ax):
        for i, (name, value) in enumerate(marks):
            ax.axvline(value, color=f"C{i}", lw=1.8 if name == method else 0.9, ls="-" if name == method else "--",
                       label=f"{name}: {value}" + (" (used)" if name == method else ""))
        if method not in estimates:
            ax.axvline(dimension, color="k", lw=1.8, label=f"fixed: {dimension} (used)")

    first = 0
    if reproducibility is not None:
        ax = axes[0]
        first = 1
        dims, counts = reproducibility["dimensions"], reproducibility["reproduced"]
        starts = reproducibility.get("starts", 1)
        ax.plot(dims, counts, "o-", color="0.3", lw=1.2, ms=3,
                label="found in both halves" + (f" (mean of {starts} starts)" if starts > 1 else ""))
        ax.plot(dims, dims, color="0.7", lw=0.8, ls=":", label="all components")
        best = reproducibility.get("best")
        if best:
            ax.axvline(best, color="0.5", ls=":", lw=1.2, label=f"best (smoothed) score at {best}")
        mark(ax)
        ax.set_ylim(0, max(counts) * 1.3 + 1)
        ax.set_xlabel("dimension")
        ax.set_ylabel(f"components with |r| >= {reproducibility.get('threshold', 0.8):g}")
        ax.set_title(f"Model order: {dimension} components", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
    if consistency is not None:
        ax = axes[first]
        c = np.asarray(consistency, dtype=float)
        c = c[np.isfinite(c)][:shown]
        ax.plot(np.arange(1, c.size + 1), c, color="0.3", lw=1.2, label="consistency")
        if edge is not None:
            ax.axhline(edge, color="0.5", ls=":", lw=1.2, label=f"random-subspace limit {edge:.3f}")
        mark(ax)
        ax.set_xlabel("group component")
        ax.set_ylabel("mean squared projection on runs")
        if reproducibility is None:
            ax.set_title(f"Model order: {dimension} components", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
    left, right = axes[-2], axes[-1]
    spectrum = np.asarray(spectrum, dtype=float)
    spectrum = spectrum[np.isfinite(spectrum)]
    ranks = np.arange(1, min(spectrum.size, shown) + 1)
    left.semilogy(ranks, spectrum[:ranks.size], color="0.3", lw=1.2, label="eigenvalue")
    mark(left)
    left.set_xlabel("rank")
    left.set_ylabel("eigenvalue (concatenated subset)")
    if consistency is None and reproducibility is None:
        left.set_title(f"Model order: {dimension} components", fontsize=10)
    left.legend(fontsize=8, frameon=False)
    for name, values in evidence.items():
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        n = min(values.size, shown)
        span = values[:n].max() - values[:n].min()
        right.plot(np.arange(1, n + 1), (values[:n] - values[:n].min()) / (span if span > 0 else 1.0),
                   label=f"{name} (max at {int(np.argmax(values)) + 1})")
    right.set_xlabel("rank")
    right.set_ylabel("log evidence (scaled)")
    right.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
