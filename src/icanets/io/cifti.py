"""CIFTI grayordinates and the surfaces they live on (GIFTI meshes).

A CIFTI dense file (``.dtseries.nii``, ``.dscalar.nii``, ``.dlabel.nii``) has a brain-model
axis: each grayordinate is a vertex of a cortical surface (e.g.
``CIFTI_STRUCTURE_CORTEX_LEFT``) or a voxel of a volume structure (e.g. the thalamus), on one
volume grid. :class:`CiftiGeometry` holds that axis and, where the user gives them (HCP ships
``<subject>.L.midthickness.32k_fs_LR.surf.gii`` and ``.R.``), the surface meshes, so that the
spatial features of a map can be computed on the mesh (vertex adjacency) and on the volume
part (voxel adjacency), and maps can be drawn on the surfaces.

Examples
--------
>>> import numpy as np, nibabel as nib
>>> models = (nib.cifti2.BrainModelAxis.from_surface(np.arange(3), 3, "CortexLeft")
...           + nib.cifti2.BrainModelAxis.from_mask(np.ones((2, 1, 1), bool), affine=np.eye(4), name="thalamus_left"))
>>> g = CiftiGeometry.from_axis(models)
>>> g.n, g.is_surface.tolist(), g.surface_structures, g.has_volume
(5, [True, True, True, False, False], ['CIFTI_STRUCTURE_CORTEX_LEFT'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage, sparse

from icanets.errors import StudyError

__all__ = ["Surface", "CiftiGeometry", "brain_models", "read_surface", "with_surfaces", "mesh_adjacency",
           "grayordinate_adjacency", "envelope_rim", "volume_part", "series_step_seconds", "surface_values",
           "volume_values"]

_CORTEX_HINTS = {
    "CIFTI_STRUCTURE_CORTEX_LEFT": (".L.", "_L.", "lh.", "left", "hemi-L"),
    "CIFTI_STRUCTURE_CORTEX_RIGHT": (".R.", "_R.", "rh.", "right", "hemi-R"),
}


@dataclass(frozen=True)
class Surface:
    """A triangle mesh (GIFTI ``.surf.gii``).

    Attributes
    ----------
    structure : str
        The CIFTI structure it belongs to (``CIFTI_STRUCTURE_CORTEX_LEFT``, ...).
    coordinates : ndarray, shape (n_vertices, 3)
        Vertex positions in mm.
    faces : ndarray of int, shape (n_faces, 3)
    path : Path or None
    """

    structure: str
    coordinates: np.ndarray
    faces: np.ndarray
    path: Path | None = None


@dataclass(frozen=True)
class CiftiGeometry:
    """The grayordinates of a CIFTI brain-model axis, with the surfaces given for them.

    Attributes
    ----------
    structures : ndarray of str, shape (n,)
        Per grayordinate, its CIFTI structure.
    vertex : ndarray of int, shape (n,)
        Per grayordinate, its surface vertex (-1 for voxels).
    voxel : ndarray of int, shape (n, 3)
        Per grayordinate, its voxel indices (-1 for vertices).
    n_vertices : dict
        Surface structure -> number of vertices of its mesh.
    volume_shape : tuple of int or None
    volume_affine : ndarray (4, 4) or None
        The volume part's grid (None without a volume part).
    surfaces : dict
        Surface structure -> :class:`Surface`, for those given.
    """

    structures: np.ndarray
    vertex: np.ndarray
    voxel: np.ndarray
    n_vertices: Mapping[str, int]
    volume_shape: tuple[int, ...] | None = None
    volume_affine: np.ndarray | None = None
    surfaces: Mapping[str, Surface] = field(default_factory=dict)

    @classmethod
    def from_axis(cls, models) -> "CiftiGeometry":
        has_volume = bool(np.any(models.volume_mask))
        return cls(structures=np.asarray(models.name).astype(str), vertex=np.asarray(models.vertex, dtype=int),
                   voxel=np.asarray(models.voxel, dtype=int), n_vertices=dict(models.nvertices),
                   volume_shape=tuple(int(s) for s in models.volume_shape) if has_volume else None,
                   volume_affine=np.asarray(models.affine, dtype=float) if has_volume else None)

    @property
    def n(self) -> int:
        return int(self.structures.size)

    @property
    def is_surface(self) -> np.ndarray:
        return self.vertex >= 0

    @property
    def has_volume(self) -> bool:
        return bool(np.any(~self.is_surface))

    @property
    def surface_structures(self) -> list[str]:
        return list(dict.fromkeys(self.structures[self.is_surface].tolist()))

    @property
    def missing_surfaces(self) -> list[str]:
        """Surface structures with grayordinates but no mesh given."""
        return [s for s in self.surface_structures if s not in self.surfaces]

    @property
    def voxel_size(self) -> float:
        """The volume part's voxel size in mm (2 without a volume part, HCP's)."""
        if self.volume_affine is None:
            return 2.0
        return float(np.mean(np.linalg.norm(self.volume_affine[:3, :3], axis=0)))

    def coordinates(self) -> np.ndarray:
        """``(n, 3)`` positions in mm: voxel centres, and vertices of the given surfaces (NaN
        for vertices of a structure without its mesh)."""
        out = np.full((self.n, 3), np.nan)
        volume = ~self.is_surface
        if volume.any():
            out[volume] = self.voxel[volume] @ self.volume_affine[:3, :3].T + self.volume_affine[:3, 3]
        for name, surface in self.surfaces.items():
            rows = (self.structures == name) & self.is_surface
            out[rows] = surface.coordinates[self.vertex[rows]]
        return out


def brain_models(path: Path) -> CiftiGeometry:
    """The brain-model axis (the last axis) of a CIFTI dense file.

    Raises
    ------
    StudyError
        The file is not CIFTI-2 or its last axis is not a brain-model axis.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise StudyError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(img, nib.Cifti2Image):
        raise StudyError(f"{path} is not a CIFTI-2 file (nibabel read it as {type(img).__name__})")
    models = img.header.get_axis(img.ndim - 1)
    if not isinstance(models, nib.cifti2.BrainModelAxis):
        raise StudyError(f"the last axis of {path} is a {type(models).__name__}, not grayordinates (BrainModelAxis)")
    return CiftiGeometry.from_axis(models)


def series_step_seconds(series, path: Path | str = "") -> float | None:
    """The sampling interval in seconds of a CIFTI ``SeriesAxis``: its step in SECOND (as
    is), or the reciprocal of a HERTZ step (a rate); None where it is not positive.

    Examples
    --------
    >>> import nibabel as nib
    >>> series_step_seconds(nib.cifti2.SeriesAxis(0, 0.72, 10, unit="SECOND"))
    0.72
    >>> series_step_seconds(nib.cifti2.SeriesAxis(0, 1.25, 10, unit="HERTZ"))
    0.8
    """
    unit = str(series.unit).upper()
    step = float(series.step)
    if step <= 0:
        return None
    if unit == "SECOND":
        return step
    if unit == "HERTZ":
        return 1.0 / step
    raise StudyError(f"{path}: the CIFTI series axis is in {series.unit}, not time (SECOND or HERTZ); "
                     f"a dense time series needs a time axis")


def read_surface(path: Path, structure: str | None = None) -> Surface:
    """A GIFTI surface: its pointset, triangles and structure (``AnatomicalStructurePrimary``,
    else ``structure``, else guessed from the file name: ``.L.``/``.R.``, ``lh.``/``rh.``).

    Raises
    ------
    StudyError
        Unreadable, no pointset or triangles, or a structure that cannot be told.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
        coords = np.asarray(img.agg_data("NIFTI_INTENT_POINTSET"), dtype=float)
        faces = np.asarray(img.agg_data("NIFTI_INTENT_TRIANGLE"), dtype=int)
    except Exception as exc:
        raise StudyError(f"cannot read the surface {path}: {type(exc).__name__}: {exc}") from None
    if coords.ndim != 2 or coords.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise StudyError(f"{path} is not a triangle mesh (a pointset of (n, 3) and triangles of (m, 3))")
    if faces.size and (faces.min() < 0 or faces.max() >= len(coords)):
        raise StudyError(f"{path} has triangles naming vertices outside its {len(coords)} points")
    primary = None
    for meta in [img.meta] + [d.meta for d in img.darrays]:
        if meta is not None and meta.get("AnatomicalStructurePrimary"):
            primary = meta.get("AnatomicalStructurePrimary")
            break
    name = structure or primary
    if name is None:
        guesses = [s for s, hints in _CORTEX_HINTS.items() if any(h.lower() in path.name.lower() for h in hints)]
        if len(guesses) != 1:
            raise StudyError(f"cannot tell which hemisphere the surface {path} is: it has no "
                             f"AnatomicalStructurePrimary and its name has neither .L. nor .R.")
        name = guesses[0]
    try:
        name = nib.cifti2.BrainModelAxis.to_cifti_brain_structure_name(name)
    except ValueError:
        raise StudyError(f"{path}: unknown structure {name!r}") from None
    return Surface(structure=name, coordinates=coords, faces=faces, path=path)


def with_surfaces(geometry: CiftiGeometry, paths: Sequence[Path]) -> CiftiGeometry:
    """``geometry`` with the meshes of ``paths`` attached, each checked against the number of
    vertices its structure has in the CIFTI file.

    Raises
    ------
    StudyError
        A surface of a structure the file has no vertices of, one with another vertex count,
        or two surfaces of one structure.
    """
    surfaces: dict[str, Surface] = {}
    for path in paths:
        surface = read_surface(path)
        if surface.structure not in geometry.n_vertices:
            raise StudyError(f"the surface {path} is of {surface.structure}, which the CIFTI runs do not have "
                             f"(they have {', '.join(geometry.n_vertices) or 'no surface structures'})")
        expected = geometry.n_vertices[surface.structure]
        if len(surface.coordinates) != expected:
            raise StudyError(f"the surface {path} has {len(surface.coordinates)} vertices; the CIFTI runs' "
                             f"{surface.structure} has {expected} (another mesh resolution?)")
        if surface.structure in surfaces:
            raise StudyError(f"two surfaces given for {surface.structure}: {surfaces[surface.structure].path} and {path}")
        surfaces[surface.structure] = surface
    return replace(geometry, surfaces=surfaces)


def mesh_adjacency(faces: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """Vertex adjacency of a triangle mesh, ``(n, n)`` symmetric 0/1 (no self-loops).

    Examples
    --------
    >>> a = mesh_adjacency(np.array([[0, 1, 2], [1, 2, 3]]), 4)
    >>> a.toarray().astype(int).tolist()
    [[0, 1, 1, 0], [1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 1, 0]]
    """
    faces = np.asarray(faces, dtype=int)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    a = sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_vertices, n_vertices)).tocsr()
    a = ((a + a.T) > 0).astype(float)
    a.setdiag(0)
    a.eliminate_zeros()
    return a.tocsr()


def grayordinate_adjacency(geometry: CiftiGeometry, mask: np.ndarray | None = None) -> sparse.csr_matrix | None:
    """Neighbours among the grayordinates in ``mask``, ``(V, V)`` symmetric 0/1: mesh edges
    between vertices, the 26 neighbours between voxels, and a vertex and a voxel closer than
    1.75 voxels (where cortex meets a volume structure). None where a surface structure has no
    mesh (its neighbourhoods are unknown).
    """
    mask = np.ones(geometry.n, bool) if mask is None else np.asarray(mask, bool)
    if geometry.missing_surfaces:
        return None
    n = geometry.n
    blocks = []
    for name, surface in geometry.surfaces.items():
        rows = np.flatnonzero((geometry.structures == name) & geometry.is_surface)
        if not rows.size:
            continue
        mesh = mesh_adjacency(surface.faces, len(surface.coordinates)).tocoo()
        where = np.full(len(surface.coordinates), -1)
        where[geometry.vertex[rows]] = rows
        keep = (where[mesh.row] >= 0) & (where[mesh.col] >= 0)
        blocks.append((where[mesh.row[keep]], where[mesh.col[keep]]))
    volume = np.flatnonzero(~geometry.is_surface)
    if volume.size:
        grid = np.full(tuple(s + 2 for s in geometry.volume_shape), -1)
        ijk = geometry.voxel[volume] + 1
        grid[tuple(ijk.T)] = volume
        for offset in np.ndindex(3, 3, 3):
            d = np.asarray(offset) - 1
            if not d.any():
                continue
            other = grid[tuple((ijk + d).T)]
            ok = other >= 0
            blocks.append((volume[ok], other[ok]))
        surf = np.flatnonzero(geometry.is_surface)
        if surf.size:
            from scipy.spatial import cKDTree

            xyz = geometry.coordinates()
            pairs = cKDTree(xyz[volume]).query_ball_point(xyz[surf], r=1.75 * geometry.voxel_size)
            a = np.repeat(surf, [len(p) for p in pairs])
            b = volume[np.concatenate([np.asarray(p, dtype=int) for p in pairs])] if a.size else np.zeros(0, int)
            blocks.extend([(a, b), (b, a)])
    rows = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros(0, int)
    cols = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, int)
    adjacency = sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(float).tocsr()
    adjacency.setdiag(0)
    adjacency.eliminate_zeros()
    index = np.flatnonzero(mask)
    return adjacency[index][:, index].tocsr()


def envelope_rim(geometry: CiftiGeometry, mask: np.ndarray | None = None) -> np.ndarray | None:
    """Grayordinates in ``mask`` on the brain's outer envelope, ``(V,)`` bool: every vertex
    of the given meshes and every voxel is put on the volume part's grid (without one, a grid
    of 2 mm or of the meshes' median edge length, whichever is coarser),
    the occupied voxels are filled into a solid (closed first where the vertices lie off the
    voxel centres, as a real mesh's do), and its outer layer of voxels is the rim, as the
    mask's outer rim is for volumes. None where a surface structure has no
    mesh (its positions are unknown).
    """
    mask = np.ones(geometry.n, bool) if mask is None else np.asarray(mask, bool)
    if geometry.missing_surfaces:
        return None
    if geometry.volume_affine is not None:
        affine = geometry.volume_affine
    else:  # surfaces only: voxels of 2 mm, or of the meshes' typical edge where that is longer
        points = np.vstack([s.coordinates for s in geometry.surfaces.values()])
        edges = np.concatenate([np.linalg.norm(s.coordinates[s.faces[:, 0]] - s.coordinates[s.faces[:, 1]], axis=1)
                                for s in geometry.surfaces.values()])
        size = max(2.0, float(np.median(edges))) if edges.size else 2.0
        affine = np.diag([size, size, size, 1.0])
        affine[:3, 3] = points.min(axis=0) - 2 * size
    inverse = np.linalg.inv(affine)
    xyz = geometry.coordinates()
    every = np.vstack([xyz] + [s.coordinates for s in geometry.surfaces.values()])
    position = every @ inverse[:3, :3].T + inverse[:3, 3]
    ijk = np.rint(position).astype(int)
    low = ijk.min(axis=0) - 2
    ijk -= low
    shape = tuple(ijk.max(axis=0) + 3)
    occupied = np.zeros(shape, bool)
    occupied[tuple(ijk.T)] = True
    solid = ndimage.binary_fill_holes(occupied)
    if np.max(np.abs(position - np.rint(position))) > 0.05:
        # Vertices off the voxel centres (a real mesh) leave gaps between the voxels they
        # fall in: close them (dilate, fill, erode) before taking the outer layer.
        solid |= ndimage.binary_erosion(ndimage.binary_fill_holes(ndimage.binary_dilation(occupied)))
    rim_volume = solid & ~ndimage.binary_erosion(solid)
    own = ijk[: geometry.n]
    return rim_volume[tuple(own.T)][mask]


def volume_part(geometry: CiftiGeometry, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The volume part of the grayordinates in ``mask``: ``(index, grid_mask)`` with
    ``index`` the positions (among the ``V`` in the mask) of its voxels and ``grid_mask`` the
    boolean volume (``volume_shape``) they fill, in the same order as
    ``grid_mask[grid_mask]``; None without a volume part.
    """
    mask = np.ones(geometry.n, bool) if mask is None else np.asarray(mask, bool)
    volume = (~geometry.is_surface)[mask]
    if not volume.any():
        return None
    ijk = geometry.voxel[mask][volume]
    grid = np.zeros(geometry.volume_shape, bool)
    grid[tuple(ijk.T)] = True
    # Reorder to the grid's C order, so values[index] fill grid[grid] directly.
    flat = np.ravel_multi_index(tuple(ijk.T), geometry.volume_shape)
    index = np.flatnonzero(volume)[np.argsort(flat, kind="stable")]
    return index, grid


def surface_values(geometry: CiftiGeometry, values: np.ndarray, structure: str) -> np.ndarray:
    """``values`` over all ``n`` grayordinates (``(n,)`` or ``(K, n)``) -> over every vertex of
    ``structure``'s mesh, ``(n_vertices,)`` or ``(K, n_vertices)``, NaN at vertices that are
    not grayordinates (e.g. the medial wall)."""
    values = np.asarray(values, dtype=float)
    rows = (geometry.structures == structure) & geometry.is_surface
    out = np.full(values.shape[:-1] + (geometry.n_vertices[structure],), np.nan)
    out[..., geometry.vertex[rows]] = values[..., rows]
    return out


def volume_values(geometry: CiftiGeometry, values: np.ndarray) -> np.ndarray | None:
    """``values`` over all ``n`` grayordinates (``(n,)`` or ``(K, n)``) -> the volume part on
    its grid, ``volume_shape`` or ``volume_shape + (K,)``, 0 outside it; None without one."""
    if not geometry.has_volume:
        return None
    values = np.asarray(values, dtype=float)
    rows = ~geometry.is_surface
    out = np.zeros(tuple(geometry.volume_shape) + values.shape[:-1])
    out[tuple(geometry.voxel[rows].T)] = np.moveaxis(values[..., rows], -1, 0)
    return out
