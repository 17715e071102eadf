"""Reading runs for group ICA and dual regression: inside a mask, one run at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.volumeutils import apply_read_scaling

from icanets.errors import IcanetsError, StudyError
from icanets._blocked import BLOCK, gram, working
from icanets.io.cifti import CiftiGeometry, brain_models, with_surfaces
from icanets.io.images import load_image

__all__ = ["MaskedSpace", "load_mask", "variance_mask", "read_run", "preprocess_run", "cosine_basis", "ICAError"]


class ICAError(IcanetsError):
    """Images or settings that group ICA or dual regression cannot use."""


class MaskedSpace:
    """The voxels (or grayordinates) analysed, and how to write maps back to images.

    Attributes
    ----------
    mask : ndarray of bool
        Spatial mask (x, y, z) for NIfTI; 1D over grayordinates for CIFTI.
    affine : ndarray or None
    kind : {"nifti", "cifti"}
    template : Path
        An image of the same space (its header is reused when writing maps).
    geometry : CiftiGeometry or None
        For CIFTI: the grayordinates (surface vertices, voxels) and the surfaces given for them.
    """

    def __init__(self, mask: np.ndarray, kind: str, template: Path, affine: np.ndarray | None = None,
                 geometry: CiftiGeometry | None = None):
        self.mask = np.asarray(mask, dtype=bool)
        self.kind = kind
        self.template = Path(template)
        self.affine = affine
        self.geometry = geometry

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())

    def to_image(self, maps: np.ndarray):
        """``(K, V)`` maps -> a 4D NIfTI (x, y, z, K), or a CIFTI dscalar (K x grayordinates)."""
        maps = np.atleast_2d(maps)
        if self.kind == "cifti":
            template = nib.load(str(self.template))
            models = template.header.get_axis(1)
            scalars = nib.cifti2.ScalarAxis([f"IC{k + 1}" for k in range(maps.shape[0])])
            data = np.zeros((maps.shape[0], self.mask.size), dtype=np.float32)
            data[:, self.mask] = maps
            return nib.Cifti2Image(data, header=nib.cifti2.Cifti2Header.from_axes((scalars, models)))
        volume = np.zeros(self.mask.shape + (maps.shape[0],), dtype=np.float32)
        volume[self.mask] = maps.T
        img = nib.Nifti1Image(volume, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        return img

    def from_image(self, path: Path) -> np.ndarray:
        """``(K, V)`` maps inside the mask from a 4D NIfTI or a CIFTI dscalar/dtseries."""
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float64)
        if self.kind == "cifti":
            if data.ndim != 2 or data.shape[1] != self.mask.size:
                raise ICAError(f"{path} has shape {data.shape}; expected (maps, {self.mask.size} grayordinates)")
            return data[:, self.mask]
        if data.ndim == 3:
            data = data[..., None]
        if data.shape[:3] != self.mask.shape:
            raise ICAError(f"{path} has spatial shape {data.shape[:3]}, the mask {self.mask.shape}")
        return data[self.mask].T


def _is_cifti(path: Path) -> bool:
    return str(path).endswith(".dtseries.nii") or str(path).endswith(".dscalar.nii")


def _load(path: Path, *, header_only: bool = False):
    """An image to read its data from (decompressed in one go, see
    :func:`icanets.io.images.load_image`), or with ``header_only`` nibabel's lazy image."""
    try:
        return nib.load(str(path)) if header_only else load_image(path)
    except Exception as exc:
        raise ICAError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def _geometry(template: Path, surfaces: Sequence[Path]) -> CiftiGeometry:
    try:
        return with_surfaces(brain_models(template), surfaces)
    except StudyError as exc:
        raise ICAError(str(exc)) from None


def load_mask(path: Path, template: Path, surfaces: Sequence[Path] = ()) -> MaskedSpace:
    """A mask image (non-zero = in), checked against a run's grid: for CIFTI runs a CIFTI
    dense file (``.dscalar.nii``) of one map over the runs' grayordinates; ``surfaces``
    (GIFTI meshes) are attached to a CIFTI space's geometry."""
    img = _load(path, header_only=True)
    if _is_cifti(template):
        geometry = _geometry(template, surfaces)
        if not isinstance(img, nib.Cifti2Image):
            raise ICAError(f"mask {path} is a {type(img).__name__}, but the runs are CIFTI (e.g. {template}): give a "
                           f"CIFTI mask (.dscalar.nii, one map over the runs' {geometry.n} grayordinates) or none")
        data = np.asarray(img.dataobj)
        theirs = brain_models(path)
        if data.ndim != 2 or data.shape[0] != 1:
            raise ICAError(f"mask {path} has {data.shape[0] if data.ndim == 2 else data.shape} maps; a mask is one map")
        same = (theirs.n == geometry.n and np.array_equal(theirs.structures, geometry.structures)
                and np.array_equal(theirs.vertex, geometry.vertex) and np.array_equal(theirs.voxel, geometry.voxel))
        if not same:
            raise ICAError(f"mask {path} ({theirs.n} grayordinates) does not have the brain models of the runs (e.g. "
                           f"{template}, {geometry.n} grayordinates)")
        mask = data.reshape(-1) != 0
        if not mask.any():
            raise ICAError(f"mask {path} is empty")
        return MaskedSpace(mask, "cifti", template, geometry=geometry)
    data = np.asarray(img.dataobj)
    run = _load(template, header_only=True)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != run.shape[:3] or not np.allclose(img.affine, run.affine, atol=1e-3):
        raise ICAError(f"mask {path} (shape {data.shape}) is not on the grid of the runs (e.g. {template}, "
                       f"shape {run.shape[:3]})")
    if not (data != 0).any():
        raise ICAError(f"mask {path} is empty")
    return MaskedSpace(data != 0, "nifti", template, affine=np.asarray(run.affine))


def variance_mask(paths: Sequence[Path], surfaces: Sequence[Path] = ()) -> MaskedSpace:
    """Voxels with non-zero temporal variance in every run (as FSL dual_regression builds its
    mask); ``surfaces`` as in :func:`load_mask`."""
    mask = None
    for path in paths:
        img = _load(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
        axis = 0 if _is_cifti(path) else -1
        varying = data.std(axis=axis) > 0
        mask = varying if mask is None else mask & varying
    if mask is None or not mask.any():
        raise ICAError("no voxel varies in time in every run; cannot build a mask")
    first = Path(paths[0])
    if _is_cifti(first):
        return MaskedSpace(mask, "cifti", first, geometry=_geometry(first, surfaces))
    return MaskedSpace(mask, "nifti", first, affine=np.asarray(_load(first, header_only=True).affine))


def read_run(path: Path, space: MaskedSpace, dtype=np.float64) -> np.ndarray:
    """The run's data inside the mask, shape ``(T, V)``."""
    img = _load(path)
    proxy = img.dataobj
    try:
        # The stored values are masked first and scaled after (as nibabel scales them, to
        # float32), so voxels outside the mask are never converted.
        scaled = hasattr(proxy, "get_unscaled") and hasattr(proxy, "slope")
        data = np.asarray(proxy.get_unscaled()) if scaled else np.asarray(proxy)
    except Exception as exc:
        raise ICAError(f"cannot read the data of {path}: {type(exc).__name__}: {exc}") from None
    if space.kind == "cifti":
        if data.ndim != 2 or data.shape[1] != space.mask.size:
            raise ICAError(f"{path} has shape {data.shape}; expected (time, {space.mask.size})")
        masked = data[:, space.mask]
    else:
        if data.ndim != 4 or data.shape[:3] != space.mask.shape:
            raise ICAError(f"{path} has shape {data.shape}; expected 4D on the mask's grid {space.mask.shape}")
        masked = data[space.mask].T
    del data
    if scaled:
        masked = apply_read_scaling(masked, proxy.slope, proxy.inter)
    out = np.ascontiguousarray(np.asarray(masked, dtype=np.float32), dtype=dtype)
    if not np.all(np.isfinite(out)):
        raise ICAError(f"{path} has non-finite values inside the mask")
    if out.shape[0] > 1 and not np.any(out[1:] != out[:1]):
        raise ICAError(f"{path} does not vary in time inside the mask (e.g. all zeros): no signal to analyse; "
                       f"remove the run or fix its preprocessing")
    return out


def cosine_basis(n_volumes: int, tr: float, cutoff: float) -> np.ndarray:
    """Orthonormal discrete cosine regressors of periods longer than ``cutoff`` seconds,
    shape ``(T, n)`` (the DCT-II basis SPM and fMRIPrep use for high-pass filtering:
    ``n = floor(2 T TR / cutoff)``, the constant excluded).

    Examples
    --------
    >>> b = cosine_basis(200, 0.8, 100.0)
    >>> b.shape, bool(np.allclose(b.T @ b, np.eye(3)))
    ((200, 3), True)
    """
    n = int(np.floor(2.0 * n_volumes * tr / cutoff))
    n = min(n, n_volumes - 1)
    k = np.arange(1, n + 1)
    return np.sqrt(2.0 / n_volumes) * np.cos(np.pi * np.outer(np.arange(n_volumes) + 0.5, k) / n_volumes)


def preprocess_run(data: np.ndarray, *, variance_normalise: bool = True, n_signal: int | None = None,
                   highpass: float | None = None, tr: float | None = None,
                   overwrite: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove the mean image, optionally high-pass filter, and normalise each voxel's noise variance.

    With ``highpass`` (seconds, needs ``tr``), slow drifts are regressed out with the cosine
    basis of :func:`cosine_basis` first.

    As MELODIC's ``--vn``, each voxel is divided by the standard deviation of its residual
    after the run's strongest temporal principal components (``n_signal``, default
    ``min(30, T // 4)``) are removed, so voxels are weighted by their noise level and
    strong signal is not squashed.

    With ``overwrite`` (a float32 or float64 ``data`` the caller no longer needs), ``data``
    itself is preprocessed in place and returned, saving a copy of the run. float32 data stay
    float32 (the products over voxels are summed in float64, see :mod:`icanets._blocked`);
    other types become float64.

    Returns
    -------
    data : ndarray, shape (T, V)
        A new array (``data`` itself with ``overwrite``), float32 or float64.
    mean : ndarray, shape (V,)
        The mean image removed (float64; float32 data have it rounded to float32 removed).
    scale : ndarray, shape (V,)
        The standard deviation each voxel was divided by (1 where not normalised).
    """
    data = working(data)
    mean = data.mean(axis=0, dtype=np.float64)
    centre = mean.astype(data.dtype)
    if overwrite and data.flags.writeable:
        out = data
        out -= centre
    else:
        out = data - centre
    if highpass:
        if not tr or tr <= 0:
            raise ICAError("high-pass filtering needs the repetition time")
        basis = cosine_basis(out.shape[0], tr, highpass).astype(out.dtype)
        if basis.shape[1]:
            out -= basis @ (basis.T @ out)
    scale = np.ones(data.shape[1])
    if variance_normalise:
        t = out.shape[0]
        k = min(n_signal if n_signal is not None else min(30, t // 4), t - 1)
        if k > 0:
            # Residual sum of squares per voxel after the top k temporal components, through the
            # T x T Gram matrix: ||x||^2 - ||U_k' x||^2 (U_k orthonormal; the residual keeps mean 0).
            # Both norms in float64 (a block of voxels at a time): where the components hold most
            # of a voxel's variance the difference cancels, and float32 norms would lose it.
            values, vectors = np.linalg.eigh(gram(out))
            top = vectors[:, np.argsort(values)[::-1][:k]]
            residual_ss = np.empty(out.shape[1])
            for start in range(0, out.shape[1], BLOCK):
                block = np.asarray(out[:, start:start + BLOCK], dtype=np.float64)
                projected = top.T @ block
                residual_ss[start:start + BLOCK] = (np.einsum("tv,tv->v", block, block)
                                                    - np.einsum("kv,kv->v", projected, projected))
            sd = np.sqrt(np.maximum(residual_ss, 0.0) / t)
        else:
            sd = out.std(axis=0, dtype=np.float64)
        positive = sd > 0
        scale = np.where(positive, sd, 1.0)
        if positive.any():
            scale = np.where(positive, sd, np.median(sd[positive]))
        out /= scale.astype(out.dtype)
    return out, mean, scale
