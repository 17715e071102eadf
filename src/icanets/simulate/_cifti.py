"""A CIFTI version of the simulated brain: two cortical surfaces and a volume part.

Each cerebral hemisphere's outer layer of voxels (its boundary with the outside, the other
hemisphere and the cerebellum) becomes a closed triangle mesh: a vertex per voxel centre,
triangulated as the convex hull of their directions from the hemisphere's centre (the
hemispheres are star-shaped from there), faces turned outwards. Vertices by the ventricles
are a medial wall, in the mesh but not grayordinates, as in HCP's surfaces. The remaining voxels
(the deep cerebrum and the cerebellum) are the volume part, as subcortical structures and the
cerebellum are in HCP's grayordinates. Every brain voxel is one grayordinate, so the data
are the NIfTI version's, reordered: the two formats can be compared map for map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from icanets.simulate._images import Grid, cerebrum_mask, ventricles

__all__ = ["CiftiLayout", "cifti_layout", "save_dtseries", "save_dscalar", "save_surfaces", "SURFACE_FILES"]

#: Surface files written for each hemisphere (relative to the study folder).
SURFACE_FILES = {"CortexLeft": "surfaces/synthetic.L.midthickness.surf.gii",
                 "CortexRight": "surfaces/synthetic.R.midthickness.surf.gii"}


@dataclass(frozen=True)
class CiftiLayout:
    """Grayordinates of the simulated brain.

    Attributes
    ----------
    order : ndarray of int, shape (n,)
        Per grayordinate, the index of its voxel among the mask's voxels (C order).
    axis : nibabel.cifti2.BrainModelAxis
    surfaces : dict
        ``CortexLeft``/``CortexRight`` -> (coordinates (n_vertices, 3) mm, faces (m, 3)).
    """

    order: np.ndarray
    axis: object
    surfaces: dict


def _mesh(points: np.ndarray) -> np.ndarray:
    centre = points.mean(axis=0)
    directions = points - centre
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    faces = ConvexHull(directions).simplices.astype(np.int32)
    normals = np.cross(points[faces[:, 1]] - points[faces[:, 0]], points[faces[:, 2]] - points[faces[:, 0]])
    inward = np.einsum("ij,ij->i", normals, points[faces].mean(axis=1) - centre) < 0
    faces[inward] = faces[inward][:, ::-1]
    return faces


def cifti_layout(grid: Grid, mask: np.ndarray) -> CiftiLayout:
    """The grayordinates of ``mask`` (see the module docstring)."""
    xyz = grid.world()
    index = np.full(mask.shape, -1)
    index[mask] = np.arange(int(mask.sum()))
    cerebrum = cerebrum_mask(grid) & mask
    medial_wall = ndimage.binary_dilation(ventricles(grid))
    order, axis, surfaces = [], None, {}
    cortex = np.zeros(mask.shape, bool)
    for name, side in (("CortexLeft", xyz[..., 0] < 0), ("CortexRight", xyz[..., 0] >= 0)):
        hemisphere = cerebrum & side
        shell = hemisphere & ~ndimage.binary_erosion(hemisphere)
        points = xyz[shell]
        faces = _mesh(points)
        surfaces[name] = (points.astype(np.float32), faces)
        # As HCP's medial wall: vertices of the mesh that are not grayordinates (here, those by
        # the ventricles; their voxels join the volume part).
        kept = ~medial_wall[shell]
        cortex[shell] = kept
        order.append(index[shell][kept])
        part = nib.cifti2.BrainModelAxis.from_surface(np.flatnonzero(kept), len(points), name)
        axis = part if axis is None else axis + part
    rest = mask & ~cortex
    for name, region in (("other_grey_matter", rest & cerebrum),
                         ("cerebellum_left", rest & ~cerebrum & (xyz[..., 0] < 0)),
                         ("cerebellum_right", rest & ~cerebrum & (xyz[..., 0] >= 0))):
        if region.any():
            axis = axis + nib.cifti2.BrainModelAxis.from_mask(region, name=name, affine=grid.affine)
            order.append(index[region])  # from_mask lists voxels in C order, as does index[region]
    return CiftiLayout(order=np.concatenate(order), axis=axis, surfaces=surfaces)


def save_dtseries(data: np.ndarray, layout: CiftiLayout, tr: float, path: Path) -> None:
    """``(T, n_mask_voxels)`` data as a CIFTI dense time series (float32, time in seconds)."""
    series = nib.cifti2.SeriesAxis(start=0.0, step=float(tr), size=data.shape[0], unit="SECOND")
    img = nib.Cifti2Image(np.asarray(data[:, layout.order], dtype=np.float32),
                          header=nib.cifti2.Cifti2Header.from_axes((series, layout.axis)))
    nib.save(img, str(path))


def save_dscalar(maps: np.ndarray, layout: CiftiLayout, path: Path, names: list[str] | None = None) -> None:
    """``(K, n_mask_voxels)`` maps as a CIFTI dense scalar file."""
    maps = np.atleast_2d(maps)
    names = names or [f"map{k + 1}" for k in range(maps.shape[0])]
    img = nib.Cifti2Image(np.asarray(maps[:, layout.order], dtype=np.float32),
                          header=nib.cifti2.Cifti2Header.from_axes((nib.cifti2.ScalarAxis(names), layout.axis)))
    nib.save(img, str(path))


def save_surfaces(layout: CiftiLayout, root: Path) -> list[str]:
    """Write the two meshes as GIFTI (with ``AnatomicalStructurePrimary``); their paths
    relative to ``root``."""
    written = []
    for name, (coords, faces) in layout.surfaces.items():
        meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": name, "AnatomicalStructureSecondary": "MidThickness",
                                        "GeometricType": "Anatomical"})
        img = nib.gifti.GiftiImage(meta=meta, darrays=[
            nib.gifti.GiftiDataArray(coords, intent="NIFTI_INTENT_POINTSET", datatype="NIFTI_TYPE_FLOAT32",
                                     meta=meta),
            nib.gifti.GiftiDataArray(faces, intent="NIFTI_INTENT_TRIANGLE", datatype="NIFTI_TYPE_INT32")])
        path = root / SURFACE_FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, str(path))
        written.append(SURFACE_FILES[name])
    return written
