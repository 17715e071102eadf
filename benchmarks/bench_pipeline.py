"""Benchmark: time and peak memory of every stage of ``icanets run`` on simulated studies.

For each preset: simulate the study, then run group ICA, netmats, the declared analyses
and the report, each timed, with the peak of memory allocated during the stage
(tracemalloc: Python and numpy buffers). Prints one table per preset.

Usage: python benchmarks/bench_pipeline.py [--presets demo paper] [--paper-volumes 200] [--workdir DIR]

The ``paper`` preset has the reference study's cohort (40 controls, 61 patients, 48 at TP2,
51 at TP3, 2 runs per session: 420 runs) and 100 nodes; its runs have 500 volumes unless
``--paper-volumes`` asks for fewer (to save disk and time), which the output states.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

from icanets.config import load_config
from icanets.netmats import EdgeTable
from icanets.pipeline import ICASettings, NetmatsSettings, analyses_stage, ica_stage, netmats_stage
from icanets.report import build_report
from icanets.simulate import get_preset, simulate_study
from icanets.study import load_study


def measure(function):
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 1e6


def folder_size(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def bench(preset_name: str, workdir: Path, volumes: int | None) -> list[tuple[str, float, float, str]]:
    preset = get_preset(preset_name)
    if volumes:
        preset = preset.with_changes(n_volumes=volumes)
    sim_dir = workdir / f"{preset_name}-study"
    out = workdir / f"{preset_name}-out"
    shutil.rmtree(sim_dir, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    rows = []
    sim, seconds, peak = measure(lambda: simulate_study(sim_dir, preset, seed=0))
    truth = json.loads((sim.truth / "truth.json").read_text())
    rows.append(("simulate", seconds, peak, f"{truth['n_subjects']} subjects, {truth['n_runs']} runs, "
                                           f"{folder_size(sim.bids):.0f} MB of BOLD"))
    config = load_config(sim.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study, seconds, peak = measure(lambda: load_study(config=config))
    rows.append(("load study", seconds, peak, f"TR {study.tr} s, {preset.n_volumes} volumes per run"))
    _, seconds, peak = measure(lambda: ica_stage(study.runs, out / "ica", ICASettings(), tr=study.tr,
                                                 mask=config.mask))
    ica = json.loads((out / "ica" / "ica.json").read_text())["settings"]
    rows.append(("group ICA + dual regression", seconds, peak,
                 f"{ica['n_voxels']} voxels, d = {ica['dimension_used']}, kept {ica['n_signal']}, "
                 f"MIGP peak rows {ica['peak_rows']}"))
    files = sorted((out / "ica" / "dr_stage1").glob("dr_stage1_subject*.txt"))
    _, seconds, peak = measure(lambda: netmats_stage(files, out / "netmats", NetmatsSettings(),
                                                     labels_file=out / "ica" / "labels.txt",
                                                     subjects=out / "ica" / "subjects.tsv"))
    table = EdgeTable.load(out / "netmats", "edges_ridgep")
    rows.append(("netmats", seconds, peak, f"{table.values.shape[0]} subject-sessions x {table.values.shape[1]} edges"))
    stats, seconds, peak = measure(lambda: analyses_stage(study, table, out / "analyses"))
    hits = sum(c["n_significant"] for a in stats["analyses"] for c in a["contrasts"])
    rows.append(("analyses + post-hoc", seconds, peak, f"{len(stats['analyses'])} analyses, {hits} significant"))
    _, seconds, peak = measure(lambda: build_report(out))
    rows.append(("report", seconds, peak, f"{(out / 'report.html').stat().st_size / 1e6:.1f} MB HTML"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["demo", "paper"])
    parser.add_argument("--paper-volumes", type=int, default=None,
                        help="volumes per run of the paper preset (default: the preset's 500)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to simulate (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the simulated studies and outputs")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="icanets-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"pipeline benchmark on {os.cpu_count()} cores, working in {workdir}")
    try:
        for name in args.presets:
            volumes = args.paper_volumes if name == "paper" else None
            note = f" (runs shortened to {volumes} volumes; the preset has {get_preset(name).n_volumes})" \
                if volumes else ""
            print(f"\npreset {name}{note}")
            rows = bench(name, workdir, volumes)
            print(f"{'stage':<30}{'seconds':>9}{'peak MB':>10}  details")
            for stage, seconds, peak, details in rows:
                print(f"{stage:<30}{seconds:>9.1f}{peak:>10.0f}  {details}")
            total = sum(r[1] for r in rows[1:])
            print(f"{'total after simulation':<30}{total:>9.1f}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
