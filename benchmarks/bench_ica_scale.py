"""Benchmark: the group ICA stage at the reference study's size, streamed from a generator.

The reference study's data are 91,282 grayordinates x about 420 runs x 500 volumes (77 GB as
float32), with d = 200 components. Nothing that size is written to disk: every run is drawn,
when the stage reads it, from a seeded generator (``planted`` sparse maps with their own time
courses, plus white noise), through the stage's own reader interface
(``ica_stage(..., reader=...)``), so the stage does all its real work (preprocessing, run
subspaces, MIGP, the model order, ICASSO, back-reconstruction, dual regression, the
classifier) on data of the real size. A CIFTI template with the real grayordinate count
gives the stage its space and outputs.

Printed per step (group PCA, model order, spatial ICA, back-reconstruction, dual regression,
the rest): seconds, the seconds of those spent generating data (the stand-in for reading and
decompressing, excluded from the stage's own time), peak resident memory during the step, and
the achieved GFLOP/s of its dense products (counted from the shapes: 2 m n k for a product,
m^2 k for a Gram matrix) beside numpy's GEMM rate measured in the same run (a product of two
distinct matrices). The floor is one pass over the data at a read rate (``--read-mb-s``, e.g.
from ``benchmarks/bench_io.py``) plus the stage's dense work at the measured GEMM rate of its
precision (the runs' passes in ``--precision``, default the stage's float32; FastICA in
float64). The recovery of the planted maps (best |r| of a component per map) is printed too.

With ``--dask N`` the stage runs again with its per-run work on a Dask LocalCluster of N workers
and the outputs are compared byte for byte.

Then the peer: nilearn's CanICA and icanets' whole stage, each in its own process, on a reduced
version of the same generator's data written as NIfTI (default 60 runs x 200 volumes x 27,000
voxels, d = 50, as many FastICA starts each): seconds, peak RSS, planted maps recovered.

Usage: python benchmarks/bench_ica_scale.py [--runs 21] [--grayordinates 91282] [--volumes 500]
    [--dim 200] [--planted 50] [--repeats 10] [--read-mb-s 500] [--precision float32]
    [--approach deflation|symmetric] [--workdir DIR]
    [--peer-runs 60] [--peer-side 30] [--peer-volumes 200] [--peer-dim 50] [--peer-only] [--dask 2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np


@dataclass(frozen=True)
class _Run:
    path: Path
    subject: str
    session: str | None
    n_volumes: int
    run_label: str | None = None

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".dtseries.nii")


def _models(n: int):
    """A brain-model axis of ``n`` grayordinates shaped like HCP's (two surfaces of 32,492
    vertices with a medial wall, and a volume part)."""
    cortex = min(29696, n // 3)
    left = nib.cifti2.BrainModelAxis.from_surface(np.arange(cortex), 32492, "CortexLeft")
    right = nib.cifti2.BrainModelAxis.from_surface(np.arange(cortex), 32492, "CortexRight")
    rest = n - 2 * cortex
    volume = nib.cifti2.BrainModelAxis.from_mask(np.ones((rest, 1, 1), bool), affine=np.diag([2.0, 2.0, 2.0, 1.0]),
                                                 name="thalamus_left")
    return left + right + volume


class Generator:
    """Runs drawn from a seed: ``maps`` (planted, sparse) mixed by per-run time courses, plus noise."""

    def __init__(self, n: int, volumes: int, planted: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.maps = (rng.laplace(size=(planted, n)) * (rng.random((planted, n)) < 0.05)).astype(np.float32)
        self.volumes, self.seed = volumes, seed
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # for Dask workers: a lock does not travel
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, path: Path, space) -> np.ndarray:
        start = time.perf_counter()
        index = int(re.search(r"run-(\d+)", path.name).group(1))
        rng = np.random.default_rng([self.seed, index])
        tcs = rng.standard_normal((self.volumes, len(self.maps)), dtype=np.float32)
        data = rng.standard_normal((self.volumes, self.maps.shape[1]), dtype=np.float32)
        data += tcs @ self.maps
        out = np.ascontiguousarray(data[:, space.mask])  # float32, as read_run gives the stage
        with self._lock:
            self.seconds += time.perf_counter() - start
        return out


class Steps:
    """Per progress stage: wall time, generator time and peak RSS (sampled every 0.1 s); the
    time before each progress report is the reporting stage's."""

    def __init__(self, generator: Generator):
        self.generator = generator
        self.rows = {}
        self._start, self._gen = time.perf_counter(), 0.0
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.rss())
            time.sleep(0.1)

    def _close(self, name: str) -> None:
        now = time.perf_counter()
        row = self.rows.setdefault(name, [0.0, 0.0, 0])
        row[0] += now - self._start
        row[1] += self.generator.seconds - self._gen
        row[2] = max(row[2], self._peak, self.rss())
        self._start, self._gen, self._peak = now, self.generator.seconds, self.rss()

    def __call__(self, stage: str, done: int, total: int) -> None:
        self._close(stage)  # the work since the last report was this stage's

    def finish(self) -> None:
        self._close("features, labels, writing")
        self._stop.set()


def gemm_rate(n: int, dtype) -> float:
    """numpy's GEMM rate (GFLOP/s) on a (500 x n) (n x 500) product of two distinct matrices
    (``a @ a.T`` would be a symmetric rank-k update, half the work)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, n)).astype(dtype)
    b = np.asfortranarray(rng.standard_normal((n, 500)).astype(dtype))
    a @ b
    start = time.perf_counter()
    a @ b
    return 2 * 500 * 500 * n / (time.perf_counter() - start) / 1e9


def flops(step: str, runs: int, t: int, v: int, d: int, k_run: int, n_internal: int, repeats: int,
          block_rows: int = 0, precision: str = "float32", approach: str = "symmetric") -> tuple[float, float]:
    """Dense-product work of a step, from the shapes: ``(float64, float32)`` floating-point
    operations (a product 2 m n k; a Gram matrix ``X X'``, a symmetric rank-k update, m^2 k).
    The runs' passes are in ``precision``, FastICA in float64. Deflationary FastICA's work
    depends on how many iterations each vector takes, which the stage does not report: it is
    not counted (no rate, and no part of the floor)."""
    def split(work: float) -> tuple[float, float]:
        return (0.0, work) if precision == "float32" else (work, 0.0)

    if step == "group PCA":  # VN gram + projection, run-subspace gram + rows, then MIGP's reductions
        per_run = t * t * v + 2 * 30 * t * v + t * t * v + 2 * k_run * t * v
        added = k_run * max(1, block_rows // k_run)  # rows appended between two reductions
        held = n_internal + added
        per_reduction = 2 * held * added * v + 2 * n_internal * held * v  # new rows' products, then U'W
        return split(runs * per_run + runs * k_run / added * per_reduction)
    if step == "spatial ICA":  # ICASSO: repeats x ~100 FastICA iterations of (d x d) (d x V) products
        return (repeats * 100 * 4 * d * d * v, 0.0) if approach == "symmetric" else (0.0, 0.0)
    if step in ("back-reconstruction", "dual regression"):  # stage 1 (and 2) GEMMs per run, the maps' Gram once
        return split(runs * 2 * d * t * v * (2 if step == "back-reconstruction" else 1) + d * d * v)
    return 0.0, 0.0


def planted_recovery(planted: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Best |r| of any component with each planted map (``icanets.simulate._evaluate.match_maps``)."""
    from icanets.simulate._evaluate import match_maps

    return match_maps(planted, maps).best_r


class _AllVoxels:
    """A stand-in for the stage's space: every voxel in the mask."""

    def __init__(self, n: int):
        self.mask = np.ones(n, dtype=bool)


def write_peer_data(folder: Path, n_runs: int, side: int, volumes: int, planted: int) -> Generator:
    """The generator's runs on a ``side**3`` voxel grid (every voxel in the mask), written as
    NIfTI files that icanets and CanICA both read."""
    n = side**3
    generator = Generator(n, volumes, planted, seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.ones((side, side, side), np.uint8), affine), str(folder / "mask.nii.gz"))
    space = _AllVoxels(n)
    for i in range(n_runs):
        path = folder / f"sub-{i // 2:03d}_run-{i:05d}_bold.nii"
        if path.exists():
            continue
        data = generator(path, space).astype(np.float32)  # (T, V), C order: voxel index = x*side^2 + y*side + z
        img = nib.Nifti1Image(np.ascontiguousarray(data.T.reshape(side, side, side, volumes)), affine)
        img.header.set_zooms((2.0, 2.0, 2.0, 0.72))
        nib.save(img, str(path))
    return generator


def peer_worker(method: str, folder: Path, dim: int, repeats: int) -> None:
    """One method on the written runs, in its own process; prints seconds and peak RSS as JSON
    and saves the maps (components x voxels, the mask's order) as ``<method>.npy``."""
    import json
    import resource
    import warnings

    paths = sorted(folder.glob("sub-*_bold.nii"))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "icanets":
            from icanets.pipeline import ICASettings, ica_stage

            runs = [_Run(p, p.name.split("_")[0], None, nib.load(p).shape[3]) for p in paths]
            out = ica_stage(runs, folder / "icanets-out", ICASettings(dimension=dim, n_repeats=repeats), tr=0.72,
                            mask=folder / "mask.nii.gz", overwrite=True)
            maps = np.asarray(nib.load(out / "melodic_IC.nii.gz").dataobj)
        else:
            from nilearn.decomposition import CanICA

            model = CanICA(mask=str(folder / "mask.nii.gz"), n_components=dim, smoothing_fwhm=None, threshold=None,
                           n_init=repeats, random_state=0, n_jobs=1, t_r=0.72)
            model.fit([str(p) for p in paths])
            maps = np.asarray(model.components_img_.dataobj)
    seconds = time.perf_counter() - start
    np.save(folder / f"{method}.npy", maps.reshape(-1, maps.shape[3]).T)
    print(json.dumps({"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def peer_comparison(work: Path, n_runs: int, side: int, volumes: int, planted: int, dim: int, repeats: int) -> None:
    """icanets' whole ICA stage (group PCA, ICASSO, back-reconstruction, dual regression,
    classification) and nilearn's CanICA (subject PCA, group CCA, FastICA from as many starts),
    each in its own process on the same NIfTI runs: time, peak RSS, planted maps recovered."""
    import json
    import subprocess

    folder = work / "peer"
    generator = write_peer_data(folder, n_runs, side, volumes, planted)
    print(f"\nPeer, on reduced data: {n_runs} runs x {volumes} volumes x {side ** 3} voxels (NIfTI on disk), "
          f"d = {dim}, {repeats} starts each, {planted} planted maps")
    print(f"{'method':10s} {'s':>8s} {'peak RSS GB':>12s} {'maps r >= 0.8':>14s} {'median r':>9s} {'min r':>7s}")
    for method in ("icanets", "canica"):
        done = subprocess.run([sys.executable, __file__, "--peer-worker", method, str(folder), str(dim), str(repeats)],
                              capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        best = planted_recovery(generator.maps, np.load(folder / f"{method}.npy"))
        print(f"{method:10s} {figures['seconds']:8.1f} {figures['peak_rss'] / 1e9:12.2f} "
              f"{f'{int((best >= 0.8).sum())} of {len(best)}':>14s} {np.median(best):9.3f} {best.min():7.3f}")


def compare_dask(runs, work: Path, settings, mask: Path, out: Path, args) -> None:
    """The same stage with its per-run work on a Dask LocalCluster: are the outputs identical?"""
    from icanets.parallel import dask_client, use_dask
    from icanets.pipeline import ica_stage

    start = time.perf_counter()
    with dask_client(f"local:{args.dask}") as client, use_dask(client):
        other = ica_stage(runs, work / "ica-dask", settings, tr=0.72, mask=mask, overwrite=True,
                          reader=Generator(args.grayordinates, args.volumes, args.planted))
    seconds = time.perf_counter() - start
    same = {}
    for name in ("melodic_IC.dscalar.nii", "mixing.npy", "components.tsv", "labels.txt"):
        same[name] = (out / name).read_bytes() == (other / name).read_bytes()
    series = sorted((out / "dr_stage1").glob("*_timeseries.npy"))
    same["dr_stage1"] = all(np.array_equal(np.load(a), np.load(other / "dr_stage1" / a.name)) for a in series)
    print(f"\nDask LocalCluster of {args.dask} workers ({seconds:.0f} s): " +
          ", ".join(f"{name} {'identical' if ok else 'DIFFERENT'}" for name, ok in same.items()))


def main(argv=None) -> int:
    from icanets.pipeline import ICASettings

    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--peer-worker":
        peer_worker(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--grayordinates", type=int, default=91282)
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--planted", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=ICASettings().n_repeats)
    parser.add_argument("--read-mb-s", type=float, default=500.0)
    parser.add_argument("--precision", choices=("float32", "float64"), default=ICASettings().precision,
                        help="[ica] precision of the stage")
    parser.add_argument("--approach", choices=("deflation", "symmetric"), default=ICASettings().approach,
                        help="FastICA's approach (default: the stage's)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--peer-runs", type=int, default=60, help="runs of the reduced data for CanICA (0: no peer)")
    parser.add_argument("--peer-side", type=int, default=30, help="the reduced data's grid: side^3 voxels")
    parser.add_argument("--peer-volumes", type=int, default=200)
    parser.add_argument("--peer-dim", type=int, default=50)
    parser.add_argument("--peer-only", action="store_true", help="only the comparison with CanICA")
    parser.add_argument("--dask", type=int, default=0,
                        help="also run the stage on a Dask LocalCluster of this many workers and compare the outputs")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ica_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.peer_only:
        full_size(args, work)
    if args.peer_runs or args.peer_only:
        peer_comparison(work, args.peer_runs or 60, args.peer_side, args.peer_volumes, args.planted, args.peer_dim,
                        args.repeats)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def full_size(args, work: Path) -> None:
    """The stage at the reference size, streamed from the generator, per step (and ``--dask``)."""
    from icanets.pipeline import ICASettings, ica_stage

    n, t = args.grayordinates, args.volumes
    models = _models(n)
    template = work / "template.dtseries.nii"
    series = nib.cifti2.SeriesAxis(0.0, 0.72, 2, unit="SECOND")
    nib.save(nib.Cifti2Image(np.ones((2, n), np.float32), header=nib.cifti2.Cifti2Header.from_axes((series, models))),
             str(template))
    mask = work / "mask.dscalar.nii"
    nib.save(nib.Cifti2Image(np.ones((1, n), np.float32), header=nib.cifti2.Cifti2Header.from_axes(
        (nib.cifti2.ScalarAxis(["mask"]), models))), str(mask))
    runs = []
    for i in range(args.runs):
        link = work / "runs" / f"sub-{i // 4:03d}_run-{i:05d}.dtseries.nii"
        link.parent.mkdir(exist_ok=True)
        if not link.exists():
            link.symlink_to(template)
        runs.append(_Run(link, f"sub-{i // 4:03d}", f"ses-{i % 4 // 2 + 1}", t, str(i % 2 + 1)))
    generator = Generator(n, t, args.planted)
    steps = Steps(generator)
    settings = replace(ICASettings(), dimension=args.dim, n_repeats=args.repeats, precision=args.precision,
                       approach=args.approach)
    start = time.perf_counter()
    out = ica_stage(runs, work / "ica", settings, tr=0.72, mask=mask, overwrite=True, progress=steps,
                    reader=generator)
    total = time.perf_counter() - start
    steps.finish()
    rate64, rate32 = gemm_rate(n, np.float64), gemm_rate(n, np.float32)
    n_internal = settings.n_internal or 2 * t
    k_run = int(round(settings.run_components * t)) if isinstance(settings.run_components, float) else t
    print(f"{args.runs} runs x {t} volumes x {n} grayordinates (float64: {args.runs * t * n * 8 / 1e9:.1f} GB), d = "
          f"{args.dim}, {args.repeats} ICASSO starts ({settings.approach} FastICA), {args.planted} planted maps, [ica] precision "
          f"{settings.precision}; numpy GEMM: {rate64:.0f} GFLOP/s "
          f"(float64), {rate32:.0f} GFLOP/s (float32)")
    print(f"{'step':22s} {'s':>8s} {'generating s':>13s} {'own s':>8s} {'peak RSS GB':>12s} {'GFLOP/s':>8s}")
    work_total = work_seconds = 0.0
    from icanets.parallel import default_workers
    from icanets.pipeline._ica import migp_block_rows

    block_rows = migp_block_rows(n, n_internal)  # as the stage sets it

    workers = default_workers()  # the generator runs in the stage's reading threads
    for name, (seconds, generating, peak) in steps.rows.items():
        generating /= workers
        own = seconds - generating
        f64, f32 = flops(name, args.runs, t, n, args.dim, k_run, n_internal, args.repeats, block_rows,
                         settings.precision, settings.approach)
        work_flops = f64 + f32
        work_total += work_flops
        work_seconds += f64 / (rate64 * 1e9) + f32 / (rate32 * 1e9)
        rate = f"{work_flops / own / 1e9:8.0f}" if work_flops and own > 0 else f"{'':8s}"
        print(f"{name:22s} {seconds:8.1f} {generating:13.1f} {own:8.1f} {peak / 1e9:12.2f} {rate}")
    own_total = total - generator.seconds / workers
    read_s = args.runs * t * n * 4 / 1e6 / args.read_mb_s
    floor = read_s + work_seconds
    print(f"{'total':22s} {total:8.1f} {generator.seconds / workers:13.1f} {own_total:8.1f}")
    print(f"(generating: the generator's thread-seconds over the {workers} reading threads)")
    print(f"floor: one read at {args.read_mb_s:g} MB/s of float32 ({read_s:.0f} s) + {work_total / 1e12:.1f} TFLOP at "
          f"the GEMM rate of their precision (the runs' passes {settings.precision}, FastICA float64: "
          f"{work_seconds:.0f} s) = {floor:.0f} s; "
          f"stage without generating / floor = {own_total / floor:.2f}")
    best = planted_recovery(generator.maps, np.asarray(nib.load(out / "melodic_IC.dscalar.nii").dataobj))
    print(f"planted maps recovered (best |r| of a component): median {np.median(best):.3f}, min {best.min():.3f}, "
          f"{int((best >= 0.8).sum())} of {len(best)} at r >= 0.8")
    if args.dask:
        compare_dask(runs, work, settings, mask, out, args)


if __name__ == "__main__":
    sys.exit(main())
