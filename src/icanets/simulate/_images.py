"""Synthetic images: an MNI-like grid, a brain-shaped mask, node and artifact maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

__all__ = ["Grid", "make_grid", "brain_mask", "ventricles", "NodeLayout", "place_nodes", "node_maps",
           "ARTIFACT_KINDS", "artifact_maps", "artifact_timecourses"]

#: Artifact kinds, in the order they are assigned to artifact components.
ARTIFACT_KINDS = ("rim_spikes", "high_frequency", "drift", "csf")


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (x, y, z) and the voxel-to-MNI-mm ``affine``."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    def world(self) -> np.ndarray:
        """MNI coordinates (mm) of every voxel centre, shape ``(x, y, z, 3)``."""
        ijk = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), axis=-1)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


def make_grid(resolution: float) -> Grid:
    """An MNI152-like grid at ``resolution`` mm (the 2 mm MNI152 box: 182 x 218 x 182 mm)."""
    shape = tuple(int(np.ceil(extent / resolution)) + 1 for extent in (180.0, 216.0, 180.0))
    affine = np.array([
        [-resolution, 0, 0, 90.0],
        [0, resolution, 0, -126.0],
        [0, 0, resolution, -72.0],
        [0, 0, 0, 1.0],
    ])
    return Grid(shape=shape, affine=affine)


def _ellipsoid(xyz: np.ndarray, centre, radii) -> np.ndarray:
    return np.sum(((xyz - np.asarray(centre)) / np.asarray(radii)) ** 2, axis=-1) <= 1.0


def brain_mask(grid: Grid) -> np.ndarray:
    """A brain-shaped boolean mask: cerebrum with flattened base, plus cerebellum."""
    xyz = grid.world()
    cerebrum = _ellipsoid(xyz, (0, -18, 14), (68, 88, 62)) & (xyz[..., 2] > -44)
    temporal_cut = ~((xyz[..., 2] < -20) & (xyz[..., 1] > 20))
    cerebellum = _ellipsoid(xyz, (0, -60, -34), (48, 30, 22))
    return (cerebrum & temporal_cut) | cerebellum


def ventricles(grid: Grid) -> np.ndarray:
    """A CSF-like region at the centre of the brain."""
    return _ellipsoid(grid.world(), (0, -12, 12), (16, 30, 14))


@dataclass(frozen=True)
class NodeLayout:
    """Where the true nodes are.

    Attributes
    ----------
    centres : list of ndarray
        Per node, the MNI coordinates (mm) of its one or two (bilateral) blob centres.
    bilateral : ndarray of bool
    """

    centres: list[np.ndarray]
    bilateral: np.ndarray


def place_nodes(grid: Grid, mask: np.ndarray, n_nodes: int, n_bilateral: int, fwhm: float,
                rng: np.random.Generator) -> NodeLayout:
    """Spread node centres inside the brain, away from its edge and the ventricles."""
    resolution = abs(grid.affine[0, 0])
    margin = max(1, int(round(0.5 * fwhm / resolution)))
    inner = ndimage.binary_erosion(mask, iterations=margin) & ~ndimage.binary_dilation(ventricles(grid), iterations=1)
    candidates = grid.world()[inner]
    min_dist = fwhm * 1.6
    centres: list[np.ndarray] = []
    taken: list[np.ndarray] = []
    bilateral = np.zeros(n_nodes, dtype=bool)
    for _ in range(200):
        centres, taken = [], []
        order = rng.permutation(len(candidates))
        for idx in order:
            if len(centres) == n_nodes:
                break
            point = candidates[idx]
            want_pair = len(centres) < n_bilateral
            points = [point, point * np.array([-1.0, 1.0, 1.0])] if want_pair else [point]
            if want_pair and abs(point[0]) < min_dist / 2 + fwhm:
                continue
            if all(np.linalg.norm(p - q) >= min_dist for p in points for q in taken):
                centres.append(np.array(points))
                taken.extend(points)
        if len(centres) == n_nodes:
            bilateral[:n_bilateral] = True
            return NodeLayout(centres=centres, bilateral=bilateral)
        min_dist *= 0.9
    raise RuntimeError(f"cannot place {n_nodes} nodes in a brain of {int(mask.sum())} voxels; lower n_nodes or resolution")


def node_maps(grid: Grid, mask: np.ndarray, layout: NodeLayout, fwhm: float, shift: np.ndarray | None = None) -> np.ndarray:
    """Blob maps inside the mask, shape ``(n_nodes, n_voxels_in_mask)``, peak 1.

    ``shift`` (shape ``(n_nodes, 3)``, mm) moves each node's blobs (subject misalignment).
    Values below 5 % of the peak are set to 0.
    """
    xyz = grid.world()[mask]
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    maps = np.zeros((len(layout.centres), len(xyz)))
    for k, centres in enumerate(layout.centres):
        offset = np.zeros(3) if shift is None else shift[k]
        for centre in centres:
            d2 = np.sum((xyz - (centre + offset)) ** 2, axis=1)
            maps[k] = np.maximum(maps[k], np.exp(-d2 / (2 * sigma**2)))
    maps[maps < 0.05] = 0.0
    return maps


def artifact_maps(grid: Grid, mask: np.ndarray, n_artifacts: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Artifact maps inside the mask, shape ``(n_artifacts, n_voxels_in_mask)``, and their kinds."""
    xyz = grid.world()[mask]
    rim = (mask & ~ndimage.binary_erosion(mask))[mask]
    csf = ventricles(grid)[mask]
    maps = np.zeros((n_artifacts, len(xyz)))
    kinds = []
    for a in range(n_artifacts):
        kind = ARTIFACT_KINDS[a % len(ARTIFACT_KINDS)]
        kinds.append(kind)
        if kind == "rim_spikes":
            # A patch of the rim (the side facing a random direction), as from motion of one part of the head.
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            facing = (xyz - xyz.mean(axis=0)) @ direction
            maps[a] = rim * np.clip(facing / (0.5 * facing.max()), 0.0, 1.0)
        elif kind == "high_frequency":
            rim_points = xyz[rim]
            centre = rim_points[rng.integers(len(rim_points))]
            maps[a] = np.exp(-np.sum((xyz - centre) ** 2, axis=1) / (2 * 25.0**2))
            maps[a][maps[a] < 0.05] = 0.0
        elif kind == "drift":
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            # Weak: preprocessed data are high-pass filtered, so little drift is left.
            maps[a] = 0.35 * (xyz - xyz.mean(axis=0)) @ direction / 80.0
        else:
            maps[a] = csf * (0.8 + 0.2 * rng.random(len(xyz)))
    return maps, kinds


def artifact_timecourses(kinds: list[str], n_volumes: int, tr: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-scale artifact time courses, shape ``(T, n_artifacts)``."""
    t = np.arange(n_volumes) * tr
    out = np.zeros((n_volumes, len(kinds)))
    for a, kind in enumerate(kinds):
        if kind == "rim_spikes":
            series = 0.2 * rng.standard_normal(n_volumes)
            for onset in rng.choice(n_volumes, size=max(2, n_volumes // 60), replace=False):
                series[onset:onset + 3] += rng.choice([-1, 1]) * rng.uniform(3, 5) * np.array([1.0, 0.5, 0.25])[: n_volumes - onset]
        elif kind == "high_frequency":
            nyquist = 0.5 / tr
            sos = signal.butter(4, min(0.3, 0.6 * nyquist), btype="highpass", fs=1.0 / tr, output="sos")
            series = signal.sosfiltfilt(sos, rng.standard_normal(n_volumes))
        elif kind == "drift":
            u = np.linspace(-1, 1, n_volumes)
            series = rng.normal(0, 1) * u + rng.normal(0, 0.5) * (u**2 - 1 / 3)
        else:
            freq = min(0.3 + rng.normal(0, 0.02), 0.45 / tr)
            series = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.3 * rng.standard_normal(n_volumes)
        series = series - series.mean()
        sd = series.std()
        out[:, a] = series / sd if sd > 0 else series
    return out
