"""Benchmark: group ICA recovery on a simulated study, and MIGP against exact PCA.

Simulates a study (default: the demo preset), runs the ICA stage and prints:
- for every true node, the best spatial correlation of a component map (target >= 0.9);
- the classifier's sensitivity (artifacts flagged) and specificity (nodes kept);
- correlations of stage-1 time courses with the true node time courses;
- what the stability analysis (ICASSO, the default's FastICA starts) costs: the stage's time
  with the default starts and with one (target: under a third of the stage);
- the principal angles between MIGP's and the exact concatenation PCA's subspaces, and how
  well the ICA maps from both agree.

Usage: python benchmarks/bench_ica.py [--preset demo] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.linalg import subspace_angles

from icanets.config import load_config
from icanets.ica.data import load_mask, preprocess_run, read_run
from icanets.ica.ica import spatial_ica
from icanets.ica.pca import concat_pca, migp
from icanets.pipeline import ICASettings, ica_stage
from icanets.simulate import simulate_study
from icanets.study import load_study


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="icanets-bench-ica-"))
    try:
        sim = simulate_study(work / "study", args.preset, seed=args.seed)
        config = load_config(sim.config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = load_study(config=config)
        start = time.perf_counter()
        out = ica_stage(study.runs, work / "ica", ICASettings(), tr=study.tr, mask=config.mask)
        seconds = time.perf_counter() - start
        # The stability analysis' cost: the same stage with one FastICA start instead of the default's.
        start = time.perf_counter()
        ica_stage(study.runs, work / "ica-one-start", ICASettings(n_repeats=1), tr=study.tr, mask=config.mask)
        seconds_one = time.perf_counter() - start
        mask = np.asarray(nib.load(sim.mask).dataobj).astype(bool)
        true = np.asarray(nib.load(sim.truth / "node_maps.nii.gz").dataobj)[mask].T
        artifacts = np.asarray(nib.load(sim.truth / "artifact_maps.nii.gz").dataobj)[mask].T
        ic = np.asarray(nib.load(out / "melodic_IC.nii.gz").dataobj)[mask].T
        k, a = len(true), len(artifacts)
        corr = np.abs(np.corrcoef(np.vstack([true, artifacts, ic]))[: k + a, k + a:])
        best = corr.argmax(axis=1)
        match = corr[np.arange(k + a), best]
        table = pd.read_csv(out / "components.tsv", sep="\t")
        labels, keep = table["label"].to_numpy(), table["keep"].to_numpy()
        kept = sum(bool(keep[best[n]]) for n in range(k))
        found = [j for j in range(a) if match[k + j] >= 0.8]
        flagged = sum(labels[best[k + j]] != "signal" for j in found)
        subjects = pd.read_csv(out / "subjects.tsv", sep="\t")
        r = []
        for row in subjects.itertuples():
            stem = Path(row.source).name.replace("_bold.nii.gz", "")
            truth = np.load(sim.truth / "timeseries" / f"{stem}_nodes.npy")
            tc = np.load(out / "dr_stage1" / f"{stem}_timeseries.npy")
            r += [abs(np.corrcoef(truth[:, n], tc[:, best[n]])[0, 1]) for n in range(k)]
        r = np.array(r)
        print(f"group ICA on the {args.preset} study (seed {args.seed}): {len(study.runs)} runs, "
              f"{ic.shape[0]} components estimated ({k} nodes + {a} artifacts planted), {seconds:.1f} s")
        print(f"{'measure':<58}{'value':>12}{'target':>10}")
        print(f"{'node maps: smallest best spatial correlation':<58}{match[:k].min():>12.3f}{'>= 0.9':>10}")
        print(f"{'node maps: median best spatial correlation':<58}{np.median(match[:k]):>12.3f}")
        print(f"{'artifact maps found (best r >= 0.8)':<58}{f'{len(found)}/{a}':>12}")
        print(f"{'classifier sensitivity (found artifacts noise or uncertain)':<58}{f'{flagged}/{len(found)}':>12}")
        print(f"{'classifier specificity (nodes kept as signal)':<58}{f'{kept}/{k}':>12}")
        print(f"{'stage-1 time courses vs truth: median r':<58}{np.median(r):>12.3f}")
        print(f"{'stage-1 time courses vs truth: 5th percentile r':<58}{np.percentile(r, 5):>12.3f}")
        print(f"{'stage-1 time courses vs truth: fraction r >= 0.9':<58}{np.mean(r >= 0.9):>12.3f}")

        space = load_mask(config.mask, study.runs[0].path)
        order = np.random.default_rng(0).permutation(len(study.runs))
        data = [preprocess_run(read_run(study.runs[i].path, space))[0] for i in order]
        t0 = time.perf_counter()
        approx = migp(data, n_internal=2 * max(r.n_volumes for r in study.runs))
        t_migp = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact = concat_pca(data, n_components=approx.components.shape[0])
        t_exact = time.perf_counter() - t0
        d = ic.shape[0]
        angles = np.degrees(subspace_angles(exact.components[:d].T, approx.components[:d].T))
        maps_exact = spatial_ica(exact, d, seed=0).maps
        maps_migp = spatial_ica(approx, d, seed=0).maps
        agree = np.abs(np.corrcoef(np.vstack([maps_exact, maps_migp]))[:d, d:]).max(axis=1)
        print(f"{'MIGP vs exact PCA: largest principal angle (top d), degrees':<58}{angles.max():>12.2f}")
        print(f"{'MIGP vs exact PCA: ICA maps, smallest best correlation':<58}{agree.min():>12.4f}")
        print(f"{'MIGP peak rows / exact rows':<58}{f'{approx.peak_rows}/{exact.peak_rows}':>12}")
        repeats = ICASettings().n_repeats
        share = (seconds - seconds_one) / seconds
        print(f"{f'ICA stage seconds, {repeats} FastICA starts (ICASSO) / one start':<58}"
              f"{f'{seconds:.1f}/{seconds_one:.1f}':>12}")
        print(f"{'share of the stage spent on the extra starts':<58}{share:>12.1%}{'< 33 %':>10}")
        print(f"{'MIGP seconds / exact (V x V scatter) seconds':<58}{f'{t_migp:.1f}/{t_exact:.1f}':>12}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
