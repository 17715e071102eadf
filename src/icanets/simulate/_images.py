"""Synthetic images: an MNI-like grid, a brain-shaped mask, node and artifact maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

__all__ = ["Grid", "make_grid", "brain_mask", "cerebrum_mask", "ventricles", "NodeLayout", "place_nodes", "node_maps", "NodeShape",
           "node_shapes", "render_nodes", "shift_maps",
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


def cerebrum_mask(grid: Grid) -> np.ndarray:
    """The cerebrum of :func:`brain_mask`: an ellipsoid with a flattened base and the front of
    its base cut away (temporal poles)."""
    xyz = grid.world()
    cerebrum = _ellipsoid(xyz, (0, -18, 14), (68, 88, 62)) & (xyz[..., 2] > -44)
    temporal_cut = ~((xyz[..., 2] < -20) & (xyz[..., 1] > 20))
    return cerebrum & temporal_cut


def brain_mask(grid: Grid) -> np.ndarray:
    """A brain-shaped boolean mask: cerebrum with flattened base, plus cerebellum."""
    cerebellum = _ellipsoid(grid.world(), (0, -60, -34), (48, 30, 22))
    return cerebrum_mask(grid) | cerebellum


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


@dataclass(frozen=True)
class NodeShape:
    """A node's spatial profile: the maximum of a few anisotropic Gaussian lobes.

    Attributes
    ----------
    centres : ndarray, shape (L, 3)
        Lobe centres (MNI mm).
    radii : ndarray, shape (L, 3)
        Gaussian SD of each lobe along x, y, z (mm).
    weights : ndarray, shape (L,)
        Peak of each lobe (the main lobes have 1).
    """

    centres: np.ndarray
    radii: np.ndarray
    weights: np.ndarray


def node_shapes(layout: NodeLayout, fwhm: float, *, size_spread: float = 0.0, max_extra_lobes: int = 0,
                rng: np.random.Generator | None = None) -> list[NodeShape]:
    """Lobes of every node: a main lobe per blob centre (two for bilateral nodes), sizes
    varied between nodes by ``exp(U(-size_spread, size_spread))``, and up to
    ``max_extra_lobes`` smaller satellite lobes (mirrored in bilateral nodes)."""
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    shapes = []
    for centres in layout.centres:
        scale = sigma * (np.exp(rng.uniform(-size_spread, size_spread)) if size_spread > 0 else 1.0)
        radii = scale * (np.exp(rng.normal(0.0, 0.5 * size_spread, 3)) if size_spread > 0 else np.ones(3))
        lobes_c, lobes_r, lobes_w = [], [], []
        extra = []
        n_extra = int(rng.integers(0, max_extra_lobes + 1)) if max_extra_lobes > 0 else 0
        for _ in range(n_extra):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            extra.append((direction * scale * rng.uniform(1.0, 1.8), radii * rng.uniform(0.55, 0.85),
                          rng.uniform(0.5, 0.9)))
        for h, centre in enumerate(centres):
            mirror = np.array([-1.0, 1.0, 1.0]) if h == 1 else np.ones(3)
            lobes_c.append(centre)
            lobes_r.append(radii)
            lobes_w.append(1.0)
            for offset, r, w in extra:
                lobes_c.append(centre + offset * mirror)
                lobes_r.append(r)
                lobes_w.append(w)
        shapes.append(NodeShape(centres=np.array(lobes_c), radii=np.array(lobes_r), weights=np.array(lobes_w)))
    return shapes


def render_nodes(xyz: np.ndarray, shapes: list[NodeShape], *, offsets: np.ndarray | None = None,
                 radius_factors: list[np.ndarray] | None = None, shift: np.ndarray | None = None) -> np.ndarray:
    """Node maps at the points ``xyz`` (``(V, 3)``, mm), shape ``(n_nodes, V)``, peak about 1.

    ``offsets`` (``(n_nodes, 3)`` mm) moves each node (subject variability), ``radius_factors``
    (per node ``(L, 3)``) scales its lobes (individual shape), ``shift`` (3,) moves every
    node together (misregistration of a session). Values below 5 % of the peak are 0.
    """
    maps = np.zeros((len(shapes), len(xyz)))
    move = np.zeros(3) if shift is None else np.asarray(shift, dtype=float)
    for k, shape in enumerate(shapes):
        offset = move + (0.0 if offsets is None else offsets[k])
        radii = shape.radii if radius_factors is None else shape.radii * radius_factors[k]
        for centre, r, w in zip(shape.centres, radii, shape.weights):
            d2 = np.sum(((xyz - (centre + offset)) / r) ** 2, axis=1)
            maps[k] = np.maximum(maps[k], w * np.exp(-0.5 * d2))
    maps[maps < 0.05] = 0.0
    return maps


def node_maps(grid: Grid, mask: np.ndarray, layout: NodeLayout, fwhm: float, shift: np.ndarray | None = None) -> np.ndarray:
    """Isotropic Gaussian blob maps inside the mask, shape ``(n_nodes, n_voxels_in_mask)``, peak 1.

    ``shift`` (shape ``(n_nodes, 3)``, mm) moves each node's blobs (subject misalignment).
    Values below 5 % of the peak are set to 0.
    """
    shapes = node_shapes(layout, fwhm)
    return render_nodes(grid.world()[mask], shapes, offsets=shift)


def shift_maps(maps: np.ndarray, mask: np.ndarray, grid: Grid, shift_mm: np.ndarray) -> np.ndarray:
    """Maps inside the mask ``(n, V)`` moved by ``shift_mm`` (linear interpolation; what
    moves out of the mask is lost and what moves in is 0)."""
    if not np.any(shift_mm):
        return maps
    voxels = np.asarray(shift_mm, dtype=float) / np.abs(np.diag(grid.affine)[:3]) * np.sign(np.diag(grid.affine)[:3])
    out = np.empty_like(maps)
    volume = np.zeros(mask.shape)
    for i, values in enumerate(maps):
        volume[mask] = values
        out[i] = ndimage.shift(volume, voxels, order=1, mode="constant", cval=0.0)[mask]
    return out


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
