"""Classifying components as signal or artifact, on interpretable features.

Spatial features come from the group map (z), temporal ones from the dual-regression
stage-1 time courses of every run. The rule is deliberately simple and every threshold
is a setting: the features and the decision (with its reasons) go to a table a user can
review and override.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from icanets.ica.data import ICAError, MaskedSpace

__all__ = ["ClassifierSettings", "component_features", "classify_components", "FEATURES"]

#: Feature name -> description (columns of the components table).
FEATURES = {
    "edge_fraction": "fraction of the map's suprathreshold |z| mass on the mask's outer rim",
    "csf_fraction": "fraction of the suprathreshold |z| mass in CSF-like voxels",
    "cluster_fraction": "fraction of the suprathreshold |z| mass in the two largest connected clusters",
    "smoothness": "correlation of the map with the mean of its 26 neighbours",
    "hf_fraction": "fraction of time-course power above the high-frequency cutoff (mean over runs)",
    "lf_fraction": "fraction of time-course power below the drift cutoff (mean over runs)",
    "kurtosis": "excess kurtosis of the time courses (spikiness; mean over runs)",
}


@dataclass(frozen=True)
class ClassifierSettings:
    """Thresholds of the rule (a component is noise if any test fires).

    Attributes
    ----------
    z_threshold : float
        Suprathreshold voxels for the spatial features (|z| above this).
    max_edge, max_csf, max_hf, max_lf, max_kurtosis : float
        Upper limits of the features for a signal component.
    min_cluster, min_smoothness : float
        Lower limits: below both, a map is unstructured noise.
    hf_cutoff, lf_cutoff : float
        Frequencies (Hz) separating high-frequency and drift power from the BOLD band.
    csf_quantile : float
        Without a CSF mask, CSF-like voxels are the brightest ``1 - csf_quantile`` of
        the mean image (CSF is bright in T2*-weighted EPI).
    """

    z_threshold: float = 2.5
    max_edge: float = 0.5
    max_csf: float = 0.5
    max_hf: float = 0.5
    max_lf: float = 0.5
    max_kurtosis: float = 3.0
    min_cluster: float = 0.5
    min_smoothness: float = 0.3
    hf_cutoff: float = 0.25
    lf_cutoff: float = 0.01
    csf_quantile: float = 0.95


def _volume(space: MaskedSpace, values: np.ndarray) -> np.ndarray:
    out = np.zeros(space.mask.shape)
    out[space.mask] = values
    return out


def component_features(maps: np.ndarray, timecourses: Sequence[np.ndarray], tr: float, space: MaskedSpace, *,
                       mean_image: np.ndarray | None = None, csf_mask: np.ndarray | None = None,
                       settings: ClassifierSettings = ClassifierSettings()) -> pd.DataFrame:
    """Features of every component (rows, 1-based ``component``), see :data:`FEATURES`.

    Parameters
    ----------
    maps : ndarray, shape (K, V)
        z maps inside the mask.
    timecourses : sequence of ndarray, each (T_i, K)
        Stage-1 time courses per run.
    tr : float
        Seconds.
    space : MaskedSpace
    mean_image : ndarray, shape (V,), optional
        Mean intensity image (for CSF-like voxels when no ``csf_mask``).
    csf_mask : ndarray of bool, shape (V,), optional
    """
    k, v = maps.shape
    if space.n_voxels != v:
        raise ICAError(f"maps have {v} voxels, the mask {space.n_voxels}")
    volumetric = space.kind == "nifti"
    if volumetric:
        rim = (space.mask & ~ndimage.binary_erosion(space.mask))[space.mask]
        neighbours = np.ones((3, 3, 3))
        neighbours[1, 1, 1] = 0
        counts = ndimage.convolve(space.mask.astype(float), neighbours, mode="constant")[space.mask]
    else:
        rim = np.zeros(v, dtype=bool)
    if csf_mask is None and mean_image is not None:
        csf_mask = mean_image >= np.quantile(mean_image, settings.csf_quantile)
    # Temporal features of all components at once, run by run: (runs, K) arrays.
    hf_runs, lf_runs, kurt_runs = [], [], []
    for tc in timecourses:
        x = tc - tc.mean(axis=0)
        freqs, power = signal.periodogram(x, fs=1.0 / tr, axis=0)
        total_power = power[1:].sum(axis=0)
        safe = np.where(total_power > 0, total_power, 1.0)
        hf_runs.append(np.where(total_power > 0, power[freqs > settings.hf_cutoff].sum(axis=0) / safe, 0.0))
        low = (freqs > 0) & (freqs < settings.lf_cutoff)
        lf_runs.append(np.where(total_power > 0, power[low].sum(axis=0) / safe, 0.0))
        m2 = np.mean(x**2, axis=0)
        kurt_runs.append(np.where(m2 > 0, np.mean(x**4, axis=0) / np.where(m2 > 0, m2, 1.0) ** 2 - 3.0, 0.0))
    rows = []
    for c in range(k):
        z = maps[c]
        mass = np.where(np.abs(z) > settings.z_threshold, np.abs(z), 0.0)
        total = mass.sum()
        row = {"component": c + 1}
        row["edge_fraction"] = float(mass[rim].sum() / total) if total > 0 else 0.0
        row["csf_fraction"] = float(mass[csf_mask].sum() / total) if (total > 0 and csf_mask is not None) else 0.0
        if volumetric and total > 0:
            labels, n = ndimage.label(_volume(space, mass) > 0, structure=np.ones((3, 3, 3)))
            sizes = np.sort(ndimage.sum(_volume(space, mass), labels, index=np.arange(1, n + 1)))[::-1]
            row["cluster_fraction"] = float(sizes[:2].sum() / total)
            smooth = ndimage.convolve(_volume(space, z), neighbours, mode="constant")[space.mask] / np.maximum(counts, 1)
            row["smoothness"] = float(np.corrcoef(z, smooth)[0, 1])
        else:
            row["cluster_fraction"] = 1.0 if volumetric is False else 0.0
            row["smoothness"] = 1.0 if volumetric is False else 0.0
        row["hf_fraction"] = float(np.mean([h[c] for h in hf_runs])) if hf_runs else 0.0
        row["lf_fraction"] = float(np.mean([f[c] for f in lf_runs])) if lf_runs else 0.0
        row["kurtosis"] = float(np.mean([k_[c] for k_ in kurt_runs])) if kurt_runs else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def classify_components(features: pd.DataFrame, settings: ClassifierSettings = ClassifierSettings()) -> pd.DataFrame:
    """Add ``label`` (``signal``/``noise``) and ``reasons`` to a features table."""
    out = features.copy()
    labels, reasons = [], []
    for _, row in features.iterrows():
        why = []
        if row["edge_fraction"] > settings.max_edge:
            why.append(f"rim {row['edge_fraction']:.2f} > {settings.max_edge}")
        if row["csf_fraction"] > settings.max_csf:
            why.append(f"CSF {row['csf_fraction']:.2f} > {settings.max_csf}")
        if row["hf_fraction"] > settings.max_hf:
            why.append(f"high-frequency power {row['hf_fraction']:.2f} > {settings.max_hf}")
        if row["lf_fraction"] > settings.max_lf:
            why.append(f"drift power {row['lf_fraction']:.2f} > {settings.max_lf}")
        if row["kurtosis"] > settings.max_kurtosis:
            why.append(f"spiky time course (kurtosis {row['kurtosis']:.1f} > {settings.max_kurtosis})")
        if row["cluster_fraction"] < settings.min_cluster and row["smoothness"] < settings.min_smoothness:
            why.append(f"unstructured map (clusters {row['cluster_fraction']:.2f}, smoothness {row['smoothness']:.2f})")
        labels.append("noise" if why else "signal")
        reasons.append("; ".join(why))
    out["label"] = labels
    out["reasons"] = reasons
    return out


def settings_dict(settings: ClassifierSettings) -> dict:
    return asdict(settings)
