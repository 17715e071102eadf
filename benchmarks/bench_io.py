"""Benchmark: how fast can a run be read? Decompression and loading of real-size BOLD files.

Writes, once, a 2 mm MNI-grid NIfTI run (91 x 109 x 91 voxels, a brain-shaped mask, int16
scaled as scanners and fMRIPrep store them, gzip level 1 as nibabel writes and level 6 as
gzip's default) and an HCP-size CIFTI dense time series (91,282 grayordinates, float32,
uncompressed as HCP ships them), then reads each several times and prints MB/s of the
uncompressed data:

- ``gzip.decompress`` (CPython's zlib), ``isal.igzip.decompress`` (Intel ISA-L) and
  ``zlib_ng.gzip_ng.decompress`` (zlib-ng) of the file's bytes, with their ratio to zlib;
- the whole read as ``icanets.ica.data.read_run`` does it (decompression, NIfTI parsing,
  scaling to float32, masking, the finite and time-variation checks), with nibabel's own gzip
  reader and with icanets' (:func:`icanets.io.images.load_image`);
- two files decompressed at once in two threads (the stage reads runs in parallel).

Usage: python benchmarks/bench_io.py [--volumes 300] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np


def _mask() -> tuple[np.ndarray, np.ndarray]:
    from icanets.simulate._images import brain_mask, make_grid

    grid = make_grid(2.0)
    return brain_mask(grid), grid.affine


def write_nifti(path: Path, volumes: int, level: int) -> None:
    mask, affine = _mask()
    rng = np.random.default_rng(0)
    data = np.zeros(mask.shape + (volumes,), dtype=np.float32)
    baseline = 800 + 200 * rng.random(int(mask.sum())).astype(np.float32)
    for t in range(volumes):  # a baseline and 1 % noise: realistic entropy for stored BOLD
        data[mask, t] = baseline + 8 * rng.standard_normal(baseline.size, dtype=np.float32)
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(np.int16)
    img.header.set_zooms((2.0, 2.0, 2.0, 0.72))
    raw = path.with_suffix("")
    nib.save(img, str(raw))
    with open(raw, "rb") as src, gzip.open(path, "wb", compresslevel=level) as dst:
        shutil.copyfileobj(src, dst, 1 << 24)
    raw.unlink()


def write_cifti(path: Path, volumes: int) -> None:
    n = 91282
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(29696), 32492, "CortexLeft") \
        + nib.cifti2.BrainModelAxis.from_surface(np.arange(29716), 32492, "CortexRight") \
        + nib.cifti2.BrainModelAxis.from_mask(np.ones((31870, 1, 1), bool), affine=np.eye(4), name="thalamus_left")
    assert len(models) == n
    series = nib.cifti2.SeriesAxis(0.0, 0.72, volumes, unit="SECOND")
    data = np.random.default_rng(0).standard_normal((volumes, n), dtype=np.float32)
    nib.save(nib.Cifti2Image(data, header=nib.cifti2.Cifti2Header.from_axes((series, models))), str(path))


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_io_"))
    work.mkdir(parents=True, exist_ok=True)
    from icanets.ica.data import MaskedSpace, read_run
    from icanets.io.images import gzip_backend

    mask, affine = _mask()
    rows = []
    for level in (1, 6):
        path = work / f"run-level{level}_bold.nii.gz"
        if not path.exists():
            write_nifti(path, args.volumes, level)
        blob = path.read_bytes()
        raw_mb = len(gzip.decompress(blob)) / 1e6
        base = best_of(args.repeats, lambda: gzip.decompress(blob))
        rates = {"zlib (gzip.decompress)": base}
        try:
            from isal import igzip

            rates["isal (igzip.decompress)"] = best_of(args.repeats, lambda: igzip.decompress(blob))
        except ImportError:
            pass
        try:
            from zlib_ng import gzip_ng

            rates["zlib-ng (gzip_ng.decompress)"] = best_of(args.repeats, lambda: gzip_ng.decompress(blob))
        except ImportError:
            pass
        for name, seconds in rates.items():
            rows.append((f"NIfTI gz level {level}", name, raw_mb / seconds, base / seconds))
        fast = min(rates, key=rates.get)
        decompress = {"zlib (gzip.decompress)": gzip.decompress}.get(fast)
        if decompress is None:
            decompress = igzip.decompress if fast.startswith("isal") else gzip_ng.decompress
        with ThreadPoolExecutor(2) as pool:
            two = best_of(args.repeats, lambda: list(pool.map(decompress, [blob, blob])))
        rows.append((f"NIfTI gz level {level}", f"{fast.split()[0]}, 2 files in 2 threads", 2 * raw_mb / two,
                     2 * base / two))
        space = MaskedSpace(mask, "nifti", path, affine=affine)
        import icanets.ica.data as reader

        def plain_read():  # nibabel's gzip reader, the whole grid scaled to float32, then masked
            out = np.ascontiguousarray(np.asarray(nib.load(path).dataobj, dtype=np.float32)[mask].T)
            return np.all(np.isfinite(out)) and np.any(out[1:] != out[:1])

        plain = best_of(args.repeats, plain_read)
        ours = reader.load_image
        reader.load_image = lambda p: nib.load(str(p))
        try:
            whole_nibabel = best_of(args.repeats, lambda: read_run(path, space, dtype=np.float32))
        finally:
            reader.load_image = ours
        whole = best_of(args.repeats, lambda: read_run(path, space, dtype=np.float32))
        rows.append((f"NIfTI gz level {level}", "read: nibabel, scale the grid, then mask", raw_mb / plain, 1.0))
        rows.append((f"NIfTI gz level {level}", "read_run, nibabel's gzip (mask, then scale)", raw_mb / whole_nibabel,
                     plain / whole_nibabel))
        rows.append((f"NIfTI gz level {level}", f"read_run ({gzip_backend()}; mask, then scale)", raw_mb / whole,
                     plain / whole))
        print(f"{path.name}: {path.stat().st_size / 1e6:.0f} MB on disk, {raw_mb:.0f} MB uncompressed", flush=True)
    cifti = work / "run_bold.dtseries.nii"
    if not cifti.exists():
        write_cifti(cifti, args.volumes)
    size = cifti.stat().st_size / 1e6
    space = MaskedSpace(np.ones(91282, bool), "cifti", cifti)
    seconds = best_of(args.repeats, lambda: read_run(cifti, space, dtype=np.float32))
    rows.append(("CIFTI dtseries (uncompressed)", "whole read: read_run", size / seconds, np.nan))
    print(f"\n{'file':32s} {'reader':48s} {'MB/s':>8s} {'x zlib / x plain read':>22s}")
    for file, reader, rate, ratio in rows:
        print(f"{file:32s} {reader:48s} {rate:8.0f} {'' if np.isnan(ratio) else f'{ratio:.2f}':>22s}")
    print("(MB/s of uncompressed data; best of", args.repeats, "reads, after the first: the file is in the page cache)")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
