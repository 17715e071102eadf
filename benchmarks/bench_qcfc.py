"""Benchmark: does denoising remove motion-related connectivity? (QC-FC, Ciric et al. 2017)

Simulates one study with a planted motion-FC bias (``motion_fc_bias``: a smooth shared signal
that follows the head's movement, so FC rises with motion) and one without, and runs the
whole pipeline on the biased study with each cleaning strategy: none (raw), nilearn's
``simple`` (24 motion parameters, high-pass cosines, white matter and CSF), nilearn's
``scrubbing`` (that plus removal of high-motion volumes; its FD and DVARS thresholds set to
the study's), and FD censoring alone. Per strategy it prints, at TP1: QC-FC as the fraction of
edges with p < 0.05 (about 5 % without motion-related FC) and the median |r|, its distance
dependence, the volumes censored, the runs excluded, and the group analysis' planted edge
(HC > MDD at TP1: t and p_FWE of the pair of components best matched to the two planted nodes).
The unbiased study, raw, is the reference: what the figures are when FC does not follow motion.

Usage:
    python benchmarks/bench_qcfc.py [--preset demo] [--bias 2.0] [--seed 0] [--n-perm 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from icanets.runner import run_study
from icanets.simulate import get_preset, simulate_study
from icanets.simulate._evaluate import match_maps

STRATEGIES = {
    "none (raw)": "",
    "simple (24P + WM/CSF + cosines)": 'denoise = "simple"\n',
    "scrubbing": 'denoise = "scrubbing"\ndenoise_options = { fd_threshold = 0.5, std_dvars_threshold = 5.0 }\n'
                 "min_volumes_kept = 60\n",
    "censor FD > 0.5 mm": "censor = true\nmin_volumes_kept = 60\n",
}


def _group_edge(sim, out: Path) -> tuple[float, float]:
    planted = pd.read_csv(sim.truth / "planted_edges.tsv", sep="\t")
    row = planted[planted["effect"].str.contains("group")].iloc[0]
    i, j = int(row["node_i"]), int(row["node_j"])
    mask = np.asarray(nib.load(sim.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(sim.truth / "node_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(out / "ica" / "melodic_IC.nii.gz").dataobj)[mask].T
    owner = match_maps(true, ic)
    results = pd.read_csv(out / "analyses" / "analyses" / "hc_vs_mdd_tp1" / "results.tsv", sep="\t")
    results = results[results["contrast"] == "HC>MDD"]
    a = results["name_i"].str[2:].astype(int).to_numpy() - 1
    b = results["name_j"].str[2:].astype(int).to_numpy() - 1
    ok = (((owner.owner[a] == i) & (owner.owner[b] == j)) | ((owner.owner[a] == j) & (owner.owner[b] == i))) \
        & (owner.owner_r[a] >= 0.5) & (owner.owner_r[b] >= 0.5)
    if not ok.any():
        return float("nan"), 1.0
    best = results[ok].sort_values("statistic", ascending=False).iloc[0]
    return float(best["statistic"]), float(best["p_fwe"])


def _run(sim, extra: str, out: Path, n_perm: int) -> dict:
    text = sim.config.read_text().replace("[analyses.hc_vs_mdd_tp1]", f"[analyses.hc_vs_mdd_tp1]\nn_perm = {n_perm}")
    for name in ("tp1_vs_tp2", "tp1_vs_tp3", "delta_remit", "remit_tp1", "hc_retest"):
        text = text.replace(f"[analyses.{name}]", f"[analyses.{name}]\nn_perm = {n_perm}")
    config = sim.root / f"{out.name}.toml"  # beside the dataset: its paths are relative
    config.write_text(text + ("\n[motion]\n" + extra if extra else ""))
    start = time.monotonic()
    result = run_study(config, out)
    stats = json.loads((result.out / "analyses" / "stats.json").read_text())
    ica = json.loads((result.out / "ica" / "ica.json").read_text())["settings"]
    motion = stats["motion"]
    tp1 = {q["edges"]: q for q in motion["qcfc"] if q["session"] == "TP1"}
    t, p = _group_edge(sim, result.out)
    return {"qcfc": tp1,
            "censored": ica["cleaning"]["volumes_censored"], "volumes": ica["cleaning"]["volumes"],
            "excluded": motion["n_excluded"], "dimension": ica["dimension_used"], "t": t, "p_fwe": p,
            "seconds": time.monotonic() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--bias", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-perm", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_qcfc_"))
    base = get_preset(args.preset)
    print(f"preset {args.preset}, seed {args.seed}, motion_fc_bias {args.bias}, {args.n_perm} permutations; "
          f"QC-FC at TP1, partialling age and sex")
    clean = simulate_study(work / "unbiased", base, seed=args.seed)
    biased = simulate_study(work / "biased", base.with_changes(motion_fc_bias=args.bias), seed=args.seed)
    rows = [("unbiased study, raw (reference)", _run(clean, "", work / "unbiased_out", args.n_perm))]
    for name, extra in STRATEGIES.items():
        rows.append((f"biased, {name}", _run(biased, extra, work / f"biased_{len(rows)}", args.n_perm)))
    print("QC-FC: % of edges with p < 0.05, median |r|, Spearman rho with node distance; for the full "
          "correlation netmat (corr) and the analysed one (ridgep)")
    print(f"{'study, cleaning':<42}{'corr: p<.05':>12}{'|r|':>7}{'rho':>8}{'ridgep: p<.05':>14}{'|r|':>7}{'rho':>8}"
          f"{'censored':>10}{'excl.':>6}{'d':>4}{'group edge t (p_FWE)':>22}{'s':>6}")

    def cells(q):
        if q is None or "fraction_p_below_0.05" not in q:
            return f"{'n/a':>12}{'':>7}{'':>8}"
        rho = "n/a" if q.get("distance_rho") is None else f"{q['distance_rho']:.3f}"
        return f"{100 * q['fraction_p_below_0.05']:>11.1f}%{q['median_abs_r']:>7.3f}{rho:>8}"

    for name, r in rows:
        print(f"{name:<42}{cells(r['qcfc'].get('corr'))}  {cells(r['qcfc'].get('ridgep'))}"
              f"{100 * r['censored'] / r['volumes']:>9.1f}%{r['excluded']:>6}{r['dimension']:>4}"
              f"{r['t']:>14.2f} ({r['p_fwe']:.4f}){r['seconds']:>6.0f}")
    print(f"(files in {work})")


if __name__ == "__main__":
    main()
