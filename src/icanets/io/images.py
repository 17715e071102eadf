"""Image headers and data: NIfTI and CIFTI through nibabel.

Headers are read without loading data, so a dataset of hundreds of runs can be
validated in seconds. :func:`check_image_data` reads a file through to its end for the
rare case where a corrupt (e.g. truncated) compressed file must be caught up front.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from icanets.errors import StudyError
from icanets.io.cifti import series_step_seconds

__all__ = ["ImageInfo", "read_image_info", "check_image_data", "grid_key", "load_image", "gzip_backend"]

_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


@dataclass(frozen=True)
class ImageInfo:
    """What the header of a 4D BOLD image says.

    Attributes
    ----------
    path : Path
    kind : str
        ``"nifti"`` or ``"cifti"``.
    shape : tuple of int
        Spatial shape (x, y, z) for NIfTI; ``(n_grayordinates,)`` for CIFTI.
    n_volumes : int
        Number of time points.
    tr : float or None
        Repetition time in seconds from the header, None where the header has none.
    affine : ndarray, shape (4, 4) or None
        Voxel-to-world matrix (NIfTI only).
    grid : str
        A key that is equal for images on the same voxel grid or grayordinate space.
    """

    path: Path
    kind: str
    shape: tuple[int, ...]
    n_volumes: int
    tr: float | None
    affine: np.ndarray | None
    grid: str


def grid_key(shape: tuple[int, ...], affine: np.ndarray | None) -> str:
    """A comparable description of a voxel grid: shape and affine rounded to 1e-4 mm."""
    if affine is None:
        return f"shape={tuple(shape)}"
    rounded = np.round(np.asarray(affine, dtype=float), 4) + 0.0
    return f"shape={tuple(int(s) for s in shape)} affine={rounded.tolist()}"


def read_image_info(path: Path) -> ImageInfo:
    """Read the header of a 4D BOLD image (NIfTI or CIFTI dtseries).

    Raises
    ------
    StudyError
        The file cannot be read as an image, is not 4D (NIfTI) or not a dense time series
        (CIFTI), or is truncated (uncompressed NIfTI shorter than its header says).
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise StudyError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    if path.name.endswith(".dtseries.nii"):
        return _cifti_info(path, img)
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise StudyError(f"{path} is not a NIfTI image (nibabel read it as {type(img).__name__})")
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 5 and shape[3] == 1:
        shape = shape[:3] + shape[4:]
    if len(shape) != 4:
        raise StudyError(f"{path} is {len(shape)}D with shape {shape}; a BOLD run must be a 4D image (x, y, z, time)")
    if shape[3] < 2:
        raise StudyError(f"{path} has {shape[3]} volume; a BOLD run needs a time series")
    header = img.header
    if not path.name.endswith(".gz"):
        offset = int(getattr(img.dataobj, "offset", 0) or header.get_data_offset())
        expected = offset + int(np.prod(img.shape)) * header.get_data_dtype().itemsize
        actual = path.stat().st_size
        if actual < expected:
            raise StudyError(f"{path} is truncated: {actual} bytes, the header needs {expected}")
    zooms = header.get_zooms()
    tr = None
    if len(zooms) >= 4 and zooms[3] > 0:
        units = header.get_xyzt_units()[1]
        tr = float(zooms[3]) * _TIME_UNITS.get(units, 1.0)
    return ImageInfo(
        path=path,
        kind="nifti",
        shape=shape[:3],
        n_volumes=shape[3],
        tr=tr,
        affine=np.asarray(img.affine, dtype=float),
        grid=grid_key(shape[:3], img.affine),
    )


def _cifti_info(path: Path, img) -> ImageInfo:
    if not isinstance(img, nib.Cifti2Image):
        raise StudyError(f"{path} is named .dtseries.nii but is not a CIFTI-2 file ({type(img).__name__})")
    try:
        series = img.header.get_axis(0)
        models = img.header.get_axis(1)
    except Exception as exc:
        raise StudyError(f"cannot read the CIFTI axes of {path}: {exc}") from None
    if not isinstance(series, nib.cifti2.SeriesAxis) or not isinstance(models, nib.cifti2.BrainModelAxis):
        raise StudyError(
            f"{path} is not a dense time series: axes are {type(series).__name__} x {type(models).__name__}, "
            "expected SeriesAxis x BrainModelAxis"
        )
    tr = series_step_seconds(series, path)
    digest = hashlib.sha1()
    for array in (models.name.astype(str), models.vertex, models.voxel):
        digest.update(np.ascontiguousarray(array).tobytes())
    grid = f"cifti n={len(models)} models={digest.hexdigest()[:16]}"
    return ImageInfo(
        path=path, kind="cifti", shape=(len(models),), n_volumes=len(series), tr=tr,
        affine=None, grid=grid,
    )


def check_image_data(path: Path) -> None:
    """Read a whole image file through, raising :class:`StudyError` if it is corrupt, holds
    NaN or infinite values, or does not vary in time (e.g. all zeros).

    The whole image is read through nibabel, once (a truncated or damaged gzip stream fails
    there), one image at a time.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise StudyError(f"image {path} is corrupt: {type(exc).__name__}: {exc}") from None
    bad = ~np.isfinite(data)
    if bad.any():
        raise StudyError(f"image {path} has {int(bad.sum())} NaN or infinite value(s); fix or remove the run")
    time_axis = 0 if path.name.endswith(".dtseries.nii") else data.ndim - 1
    if data.ndim >= 2 and data.shape[time_axis] > 1:
        first = np.take(data, [0], axis=time_axis)
        if not np.any(data != first):
            raise StudyError(f"image {path} does not vary in time (every volume equal{', all zeros' if not first.any() else ''}): "
                             f"no signal to analyse; remove the run or fix its preprocessing")



def gzip_backend() -> str:
    """The library that decompresses ``.nii.gz`` runs in :func:`load_image`: ``zlib-ng``
    (about 1.6-1.9 times zlib's speed on BOLD runs, see ``benchmarks/bench_io.py``), else
    ``isal`` (Intel ISA-L, about as fast), else CPython's ``zlib``."""
    for name, module in (("zlib-ng", "zlib_ng.gzip_ng"), ("isal", "isal.igzip")):
        try:
            __import__(module)
            return name
        except ImportError:
            continue
    return "zlib"


def _decompress(blob: bytes) -> bytes:
    backend = gzip_backend()
    if backend == "isal":
        from isal import igzip

        return igzip.decompress(blob)
    if backend == "zlib-ng":
        from zlib_ng import gzip_ng

        return gzip_ng.decompress(blob)
    import gzip

    return gzip.decompress(blob)


def load_image(path: Path):
    """A whole image for reading its data: a ``.nii.gz`` is read and decompressed in one go
    with :func:`gzip_backend`'s library (the same bytes as nibabel's gzip reader gives, faster),
    anything else through ``nibabel.load``.

    Raises
    ------
    OSError, EOFError, zlib.error, ValueError
        A missing, truncated or corrupt file (as ``nibabel.load`` would).
    """
    path = Path(path)
    if not path.name.endswith(".nii.gz"):
        return nib.load(str(path))
    raw = _decompress(path.read_bytes())
    if len(raw) < 4:
        raise ValueError(f"{path} holds {len(raw)} bytes once decompressed: not a NIfTI image")
    size = int.from_bytes(raw[:4], "little")
    if size not in (348, 540):
        size = int.from_bytes(raw[:4], "big")
    image_class = {348: nib.Nifti1Image, 540: nib.Nifti2Image}.get(size)
    if image_class is None:
        raise ValueError(f"{path} is not a NIfTI image (header size {size})")
    return image_class.from_bytes(raw)
