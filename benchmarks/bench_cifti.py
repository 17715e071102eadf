"""Benchmark: the same simulated study as NIfTI and as CIFTI (over its synthetic surfaces),
end to end; does the CIFTI path decompose, classify and find what the NIfTI path does?

For each seed: ``icanets simulate`` writes the study twice (``--format nifti`` and
``--format cifti``: the same data, the CIFTI reordered over two cortical meshes and a volume
part), ``icanets run`` analyses both, and the table prints per format the time of the run,
the model order, components kept, then the NIfTI-CIFTI agreement: components matched one to
one (|r| of the maps on the common voxels) and the share of matched components whose labels
agree, and, per planted edge, its t and p_FWE in its analysis with each format (the best pair
of kept components matched to its two true nodes). With ``--no-surfaces`` the CIFTI run gets
no surfaces, to show which rules the classifier cannot apply without them.

Usage: python benchmarks/bench_cifti.py [--preset demo] [--seeds 0 1] [--no-surfaces] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from icanets.runner import run_study
from icanets.simulate import get_preset, simulate_study
from icanets.simulate._cifti import cifti_layout
from icanets.simulate._images import brain_mask, make_grid

#: The analysis that tests each planted effect, and its contrast.
EFFECTS = {"group": ("hc_vs_mdd_tp1", "HC>MDD"), "treatment": ("tp1_vs_tp3", "TP1>TP3"),
           "interaction": ("delta_remit", "nonremit>remit")}


def _maps(out: Path, mask: np.ndarray, order: np.ndarray) -> np.ndarray:
    nifti = out / "ica" / "melodic_IC.nii.gz"
    if nifti.exists():
        return nib.load(nifti).get_fdata()[mask].T
    dense = np.asarray(nib.load(out / "ica" / "melodic_IC.dscalar.nii").dataobj, dtype=float)
    maps = np.zeros((dense.shape[0], mask.sum()))
    maps[:, order] = dense
    return maps


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = (a - a.mean(1, keepdims=True)) / a.std(1, keepdims=True)
    b = (b - b.mean(1, keepdims=True)) / b.std(1, keepdims=True)
    return a @ b.T / a.shape[1]


def _edge_t(out: Path, maps: np.ndarray, kept: np.ndarray, truth: np.ndarray, effect: str, i: int, j: int):
    analysis, contrast = EFFECTS[effect]
    results = pd.read_csv(out / "analyses" / "analyses" / analysis / "results.tsv", sep="\t")
    results = results[results["contrast"] == contrast]
    r = np.abs(_corr(truth[[i, j]], maps))
    r[:, ~kept] = -1
    ci, cj = f"IC{int(np.argmax(r[0])) + 1}", f"IC{int(np.argmax(r[1])) + 1}"
    row = results[((results["name_i"] == ci) & (results["name_j"] == cj))
                  | ((results["name_i"] == cj) & (results["name_j"] == ci))]
    if row.empty:
        return np.nan, np.nan
    return float(row["statistic"].iloc[0]), float(row["p_fwe"].iloc[0])


def bench(preset_name: str, seed: int, workdir: Path, surfaces: bool) -> dict:
    preset = get_preset(preset_name)
    grid = make_grid(preset.resolution)
    mask = brain_mask(grid)
    order = cifti_layout(grid, mask).order
    row = {"seed": seed}
    outs = {}
    for fmt in ("nifti", "cifti"):
        study = simulate_study(workdir / f"{fmt}-{seed}", preset, seed=seed, format=fmt, overwrite=True)
        if fmt == "cifti" and not surfaces:
            text = study.config.read_text()
            study.config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("surfaces")))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_study(study.config, workdir / f"{fmt}-{seed}-out")
        row[f"{fmt} s"] = time.perf_counter() - start
        outs[fmt] = (result.out, study)
    table = {f: pd.read_csv(o / "ica" / "components.tsv", sep="\t") for f, (o, _) in outs.items()}
    maps = {f: _maps(o, mask, order) for f, (o, _) in outs.items()}
    r = _corr(maps["nifti"], maps["cifti"])
    i, j = linear_sum_assignment(-np.abs(r))
    close = np.abs(r[i, j]) >= 0.9
    agree = table["nifti"]["label"].to_numpy()[i[close]] == table["cifti"]["label"].to_numpy()[j[close]]
    row.update({"order": f"{len(table['nifti'])}/{len(table['cifti'])}",
                "kept": f"{int(table['nifti']['keep'].sum())}/{int(table['cifti']['keep'].sum())}",
                "matched r>=.9": f"{int(close.sum())}/{len(i)}", "labels agree": f"{agree.mean():.0%}"})
    ica = json.loads((outs["cifti"][0] / "ica" / "ica.json").read_text())["settings"]
    row["rules not applied"] = ", ".join(ica["rules_not_applied"]) or "none"
    study = outs["nifti"][1]
    truth = nib.load(study.truth / "node_maps.nii.gz").get_fdata()[mask].T
    planted = pd.read_csv(study.truth / "planted_edges.tsv", sep="\t")
    for edge in planted.itertuples(index=False):
        cells = []
        for fmt in ("nifti", "cifti"):
            t, p = _edge_t(outs[fmt][0], maps[fmt], table[fmt]["keep"].to_numpy(bool), truth, edge.effect,
                           int(edge.node_i), int(edge.node_j))
            cells.append(f"{t:.2f}{'*' if p < 0.05 else ''}")
        row[edge.effect] = " / ".join(cells)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--no-surfaces", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_cifti_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = [bench(args.preset, seed, workdir, not args.no_surfaces) for seed in args.seeds]
    print(f"preset {args.preset}; CIFTI {'without' if args.no_surfaces else 'with'} surfaces; planted edges: "
          f"t with NIfTI / CIFTI maps, * p_FWE < 0.05 (5000 permutations)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
