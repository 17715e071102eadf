"""Overview of one ICA component: map thumbnail, time-course power spectrum, label."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from scipy import signal

__all__ = ["plot_component"]


def plot_component(volume: np.ndarray, timecourses, tr: float, *, title: str, features: Mapping[str, float],
                   label: str) -> Figure:
    """Three orthogonal maximum-|z| projections of a component map, the mean power
    spectrum of its stage-1 time courses, and its features and label.

    ``volume``: 3D z map (x, y, z); ``timecourses``: list of 1D arrays (one per run).
    """
    fig, axes = plt.subplots(1, 4, figsize=(9.5, 2.1), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    z = np.asarray(volume, dtype=float)
    limit = max(np.nanmax(np.abs(z)), 1e-6)
    for axis, ax in zip((0, 1, 2), axes[:3]):
        projection = np.take_along_axis(z, np.abs(z).argmax(axis=axis)[(slice(None),) * axis + (None,)],
                                        axis=axis).squeeze(axis)
        ax.imshow(np.rot90(projection), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.axis("off")
    spectra = []
    for tc in timecourses:
        freqs, power = signal.periodogram(np.asarray(tc) - np.mean(tc), fs=1.0 / tr)
        spectra.append(power / power.sum() if power.sum() > 0 else power)
    if spectra:
        n = min(len(s) for s in spectra)
        axes[3].plot(freqs[:n], np.mean([s[:n] for s in spectra], axis=0), color="C0")
    axes[3].set_xlabel("Hz", fontsize=7)
    axes[3].set_ylabel("power", fontsize=7)
    axes[3].tick_params(labelsize=6)
    text = ", ".join(f"{k} {v:.2f}" for k, v in features.items())
    colour = "C2" if label == "signal" else "C3"
    fig.suptitle(f"{title}: {label}", color=colour, fontsize=9, x=0.02, ha="left")
    fig.text(0.02, 0.01, text, fontsize=6)
    fig.subplots_adjust(top=0.82, bottom=0.18, wspace=0.15)
    return fig
