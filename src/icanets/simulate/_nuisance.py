"""Structured nuisance of real BOLD data: motion spikes, scanner drift, aliased physiological
noise, and spatially smooth, temporally autocorrelated noise.

Each nuisance source returns its time courses ``(T, n)`` and spatial patterns ``(n, V)`` (so a
run adds ``tcs @ patterns``), except the noise, which is a full ``(T, V)`` array. Patterns
differ between runs where real ones do (every spike has its own direction; drifts have new
spatial patterns in every run), so that no single component captures them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage, signal

__all__ = ["edge_profile", "vessel_map", "motion_spikes", "drifts", "physiological", "smooth_noise"]


def edge_profile(mask: np.ndarray) -> np.ndarray:
    """Per in-mask voxel, ``exp(-d)`` with ``d`` the distance (voxels) to the nearest voxel
    outside the mask minus one: 1 on the rim, falling inwards."""
    distance = ndimage.distance_transform_edt(mask)[mask]
    return np.exp(-(distance - 1.0))


def vessel_map(xyz: np.ndarray, edge: np.ndarray, csf: np.ndarray) -> np.ndarray:
    """Where cardiac pulsation shows: CSF, the superior sagittal sinus (midline, top of the
    brain's edge) and the base of the brain (circle of Willis, brainstem)."""
    sinus = (np.abs(xyz[:, 0]) < 12.0) & (xyz[:, 2] > 10.0) & (edge > 0.3)
    base = (np.abs(xyz[:, 0]) < 25.0) & (xyz[:, 2] < -20.0) & (xyz[:, 1] > -40.0) & (xyz[:, 1] < 10.0)
    return np.maximum.reduce([csf.astype(float), 0.8 * sinus, 0.7 * base])


def motion_spikes(n_volumes: int, rate: float, amplitude: float, xyz: np.ndarray, edge: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Brain-wide spikes: at Poisson(``rate``) random volumes, a global intensity step and an
    intensity gradient across the head in a random direction, concentrated at the edge (as
    spin-history and partial-volume effects of a sudden head movement), decaying over two
    volumes. ``amplitude`` is the size at the edge (the caller's units)."""
    n = int(rng.poisson(rate)) if rate > 0 else 0
    if n == 0 or amplitude <= 0:
        return np.zeros((n_volumes, 0)), np.zeros((0, len(xyz)))
    centred = xyz - xyz.mean(axis=0)
    reach = np.abs(centred).max()
    tcs = np.zeros((n_volumes, n))
    patterns = np.zeros((n, len(xyz)))
    for s, onset in enumerate(rng.choice(n_volumes, size=min(n, n_volumes), replace=False)):
        tcs[onset, s] = 1.0
        if onset + 1 < n_volumes:
            tcs[onset + 1, s] = 0.35
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        gradient = edge * (centred @ direction) / reach * 2.0
        patterns[s] = amplitude * rng.uniform(0.5, 1.5) * (rng.choice([-1, 1]) * rng.uniform(0.15, 0.4) + gradient)
    return tcs, patterns


def drifts(n_volumes: int, tr: float, amplitude: float, xyz: np.ndarray,
           rng: np.random.Generator, n_patterns: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Slow drifts: ``n_patterns`` smooth spatial patterns (random quadratic functions of
    position, unit SD in the mask) with slow time courses (linear, quadratic and a cosine
    below 0.01 Hz), new in every run; each voxel's drift has SD about ``amplitude``."""
    if amplitude <= 0:
        return np.zeros((n_volumes, 0)), np.zeros((0, len(xyz)))
    u = (xyz - xyz.mean(axis=0)) / np.abs(xyz - xyz.mean(axis=0)).max()
    basis = np.column_stack([u, u**2, u[:, [0]] * u[:, [1]], u[:, [1]] * u[:, [2]], np.ones(len(u))])
    patterns = rng.normal(size=(n_patterns, basis.shape[1])) @ basis.T
    patterns /= patterns.std(axis=1, keepdims=True)
    t = np.linspace(-1.0, 1.0, n_volumes)
    seconds = np.arange(n_volumes) * tr
    tcs = np.column_stack([
        rng.normal() * t + rng.normal(0, 0.6) * (t**2 - 1.0 / 3.0)
        + rng.normal(0, 0.6) * np.cos(2 * np.pi * rng.uniform(0.002, 0.009) * seconds + rng.uniform(0, 2 * np.pi))
        for _ in range(n_patterns)])
    tcs -= tcs.mean(axis=0)
    tcs /= np.maximum(tcs.std(axis=0), 1e-12)
    return tcs * amplitude / np.sqrt(n_patterns), patterns


def physiological(n_volumes: int, tr: float, cardiac: float, respiration: float, vessels: np.ndarray,
                  edge: np.ndarray, xyz: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cardiac (0.9-1.3 Hz, rate slowly varying) and respiratory (0.2-0.35 Hz, depth slowly
    varying) fluctuations sampled every ``tr`` seconds, so that the cardiac one is aliased
    (at TR 0.8 s a 1.1 Hz pulse appears at 0.15 Hz, inside the BOLD band). Cardiac noise
    lies in ``vessels``; respiratory noise everywhere a little, most at the base and edge."""
    if cardiac <= 0 and respiration <= 0:
        return np.zeros((n_volumes, 0)), np.zeros((0, len(xyz)))
    fine = 20
    t = np.arange(n_volumes * fine) * tr / fine
    heart = rng.uniform(0.9, 1.3) * (1.0 + 0.04 * np.sin(2 * np.pi * t / rng.uniform(20, 40) + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(heart) * tr / fine
    pulse = (np.sin(phase) + 0.4 * np.sin(2 * phase + rng.uniform(0, 6.3)))[::fine]
    breath_rate = rng.uniform(0.2, 0.35) * (1.0 + 0.05 * np.sin(2 * np.pi * t / rng.uniform(30, 60)))
    phase = 2 * np.pi * np.cumsum(breath_rate) * tr / fine + rng.uniform(0, 6.3)
    depth = 1.0 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(40, 90) + rng.uniform(0, 6.3))
    breath = (depth * (np.sin(phase) + 0.2 * np.sin(2 * phase)))[::fine]
    tcs = np.column_stack([pulse, breath])
    tcs -= tcs.mean(axis=0)
    tcs /= np.maximum(tcs.std(axis=0), 1e-12)
    inferior = np.clip(-xyz[:, 2] / 60.0, 0.0, 1.0)
    patterns = np.vstack([cardiac * vessels, respiration * (0.3 + 0.7 * np.maximum(edge, inferior))])
    return tcs, patterns


@lru_cache(maxsize=8)
def _smoothing_gain(sigma: float) -> float:
    """SD of white unit noise after a Gaussian filter of ``sigma`` voxels (3D)."""
    if sigma <= 0:
        return 1.0
    size = int(np.ceil(4 * sigma)) * 2 + 1
    delta = np.zeros((size, size, size))
    delta[size // 2, size // 2, size // 2] = 1.0
    return float(np.sqrt(np.sum(ndimage.gaussian_filter(delta, sigma, mode="constant") ** 2)))


def smooth_noise(mask: np.ndarray, n_volumes: int, fwhm: float, ar: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise inside ``mask``, shape ``(T, V)``: spatially smooth
    (Gaussian kernel of ``fwhm`` voxels, applied to noise on the whole grid so the edge is not
    special) and AR(1) in time with coefficient ``ar``."""
    v = int(mask.sum())
    burn = int(np.ceil(np.log(1e-3) / np.log(ar))) if 0 < ar < 1 else 0  # AR(1) start-up transient
    total = n_volumes + burn
    if fwhm <= 0:
        noise = rng.standard_normal((total, v))
    else:
        sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        lo = np.argwhere(mask).min(axis=0)
        hi = np.argwhere(mask).max(axis=0) + 1
        pad = int(np.ceil(3 * sigma))
        box = tuple(slice(max(0, a - pad), min(n, b + pad)) for a, b, n in zip(lo, hi, mask.shape))
        sub = mask[box]
        white = rng.standard_normal((total,) + sub.shape)
        smooth = ndimage.gaussian_filter(white, (0, sigma, sigma, sigma), mode="constant")
        noise = smooth[:, sub] / _smoothing_gain(sigma)
    if ar:
        noise = signal.lfilter([np.sqrt(1.0 - ar**2)], [1.0, -ar], noise, axis=0)[burn:]
    return noise
