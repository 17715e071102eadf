"""Benchmark: the ICA stage's maps and time series in float32 against float64 on the demo study.

The stage holds and multiplies the runs in ``[ica] precision`` (float32 by default; products
over voxels summed in float64, eigenproblems and regressions in float64). This runs the
demo study's ICA stage three times: ``float64``, ``float32``, and ``float64`` on the runs
perturbed by a relative 1e-7 (half a float32 rounding step), which measures how far FastICA
and ICASSO move under a perturbation of float32's own size whatever the precision of the
arithmetic. With the estimated model order, each variant's order is printed; the maps are
then compared at a fixed dimension (float64's order, ``--dim`` to set it), so that the same
number of components is matched one to one.

Printed: per variant, the matched |r| of every component with float64's (min, median, how
many below 0.999) with each low one's ICASSO stability, label and best |r| with a planted
node, and the stage-1 time series' largest difference from float64's (relative to their
standard deviation) for the components matched at r >= 0.999.

Usage: python benchmarks/bench_ica_precision.py [--preset demo] [--seed 0] [--dim N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


class Perturbed:
    """A reader: the run in float64, each value times ``1 + 1e-7 e`` (``e`` standard normal,
    seeded by the file's name)."""

    def __init__(self, size: float = 1e-7):
        self.size = size

    def __call__(self, path: Path, space) -> np.ndarray:
        import zlib

        from icanets.ica.data import read_run

        data = read_run(path, space, dtype=np.float64)
        rng = np.random.default_rng(zlib.crc32(Path(path).name.encode()))
        data *= 1.0 + self.size * rng.standard_normal(data.shape)
        return data


def main(argv=None) -> int:
    from icanets.config import load_config
    from icanets.pipeline import ICASettings, ica_stage
    from icanets.simulate import simulate_study
    from icanets.simulate._evaluate import match_maps
    from icanets.study import load_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, help="fixed dimension of the comparison (default: float64's estimate)")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ica_precision_"))
    root = work / "study"
    if not root.exists():
        simulate_study(root, args.preset, seed=args.seed)
    config = load_config(root / "study.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=config)
    mask = np.asarray(nib.load(config.mask).dataobj).astype(bool)
    nodes = np.asarray(nib.load(root / "truth" / "node_maps.nii.gz").dataobj)[mask].T

    def run(name: str, settings: ICASettings, reader=None) -> tuple[Path, float]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = ica_stage(study.runs, work / name, settings, tr=study.tr, mask=config.mask, overwrite=True,
                            reader=reader)
        return out, time.perf_counter() - start

    print(f"{args.preset} study (seed {args.seed}): {len(study.runs)} runs, {int(mask.sum())} voxels")
    variants = {"float64": ({"precision": "float64"}, None), "float32": ({"precision": "float32"}, None),
                "float64, runs x (1 + 1e-7 e)": ({"precision": "float64"}, Perturbed())}
    orders = {}
    for name, (change, reader) in variants.items():
        out, seconds = run(f"order-{len(orders)}", replace(ICASettings(), **change), reader)
        orders[name] = json.loads((out / "model_order.json").read_text())["dimension"]
        print(f"  estimated model order, {name}: {orders[name]} ({seconds:.0f} s)")
    dim = args.dim or orders["float64"]
    outs = {}
    for k, (name, (change, reader)) in enumerate(variants.items()):
        outs[name], _ = run(f"fixed-{k}", replace(ICASettings(), dimension=dim, **change), reader)

    def load(out: Path, name: str = "melodic_IC"):
        maps = np.asarray(nib.load(out / f"{name}.nii.gz").dataobj)[mask].T
        table = pd.read_csv(out / "components.tsv", sep="\t")
        series = {p.name: np.load(p) for p in sorted((out / "dr_stage1").glob("*_timeseries.npy"))}
        return maps, table, series

    ref_maps, ref_table, ref_series = load(outs["float64"])
    node_r = match_maps(nodes, ref_maps).best  # the component each node is closest to
    node_of = {int(c): n for n, c in enumerate(node_r)}
    print(f"\nAt d = {dim}: components matched one to one with float64's (|r| of the maps)")
    print(f"{'variant':30s} {'min r':>7s} {'median r':>9s} {'r < 0.999':>10s} {'time series':>12s}  low components")
    for name in list(variants)[1:]:
        maps, table, series = load(outs[name])
        match = match_maps(ref_maps, maps)  # each float64 component's partner
        r = match.assigned_r
        good = np.flatnonzero(r >= 0.999)
        diff = 0.0
        for key, ref in ref_series.items():
            other = series[key][:, match.assigned[good]] * np.sign(
                np.einsum("kv,kv->k", ref_maps[good], maps[match.assigned[good]]))
            diff = max(diff, float(np.max(np.abs(other - ref[:, good]) / ref[:, good].std(axis=0))))
        low = [f"IC{c + 1} r {r[c]:.3f} (stability {ref_table['stability'][c]:.2f}, "
               f"{ref_table['label'][c]}, {'node' if c in node_of else 'no node'})"
               for c in np.argsort(r) if r[c] < 0.999]
        print(f"{name:30s} {r.min():7.4f} {np.median(r):9.5f} {int((r < 0.999).sum()):10d} {diff:12.1e}  "
              + ("; ".join(low) or "none"))
    print("(time series: the largest |difference| from float64's over runs and volumes, in units of float64's "
          "standard deviation, for the components matched at r >= 0.999)")
    given = outs["float64"] / "melodic_IC.nii.gz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = {p: ica_stage(study.runs, work / f"given-{p}", replace(ICASettings(), precision=p), tr=study.tr,
                              mask=config.mask, maps=given, overwrite=True) for p in ("float64", "float32")}
    a, b = load(fixed["float64"])[2], load(fixed["float32"])[2]
    worst = max(float(np.max(np.abs(b[key] - a[key]) / a[key].std(axis=0))) for key in a)
    print(f"\nDual regression alone, on float64's maps: float32's stage-1 time series differ from float64's by at "
          f"most {worst:.1e} of their standard deviation (over {len(a)} runs and every component)")
    reference = load(outs["float64"], "ica_estimates")[0]
    print("\nThe spatial ICA's own maps (before back-reconstruction), matched one to one with float64's:")
    for name in list(variants)[1:]:
        r = match_maps(reference, load(outs[name], "ica_estimates")[0]).assigned_r
        print(f"{name:30s} {r.min():7.4f} {np.median(r):9.5f} {int((r < 0.999).sum()):10d}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
