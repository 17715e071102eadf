"""Benchmark: does group ICA hold up on data it was not tuned to?

Runs a matrix of simulated cohorts through the whole pipeline (group ICA, classification, dual
regression, netmats, the reference study's six analyses) twice: with the maps icanets estimates,
and with the true maps (the oracle: the simulation's node and artifact maps given as
``melodic_IC``, artifacts labelled noise). nilearn's CanICA runs on the same runs with the same
model order. The cohorts: every realism factor of the simulator at its realistic level; all off;
all harsh; and each factor in turn off and harsh with the others realistic, each for several
seeds.

Per cohort it prints: the model order; nodes recovered (a distinct component at r >= 0.8,
one-to-one assignment) by icanets among all its components, among those it keeps, and by
CanICA; true nodes rejected (best component at r >= 0.8 labelled noise); artifacts flagged;
for each planted edge the t of its analysis with the estimated maps (best pair of kept
components whose maps are closest to the two nodes) beside the oracle's t, and whether it is
FWE-significant (*); false positives (significant edges whose two nodes carry no planted
effect) with estimated maps and with the oracle. A summary checks the targets at realistic
levels and prints the figures at harsh ones, with the FWE families (analysis x contrast) that
have any false positive: FWE control at 0.05 allows one in twenty under the null (with planted
changes, partial correlations beside a changed edge change too, so the oracle has some).

Usage:
    python benchmarks/bench_ica_robustness.py [--preset demo] [--seeds 0 1 2]
        [--cohorts realistic off harsh spikes=harsh ...] [--no-canica] [--n-perm 5000]
        [--ica key=value ...] [--classifier key=value ...] [--tsv results.tsv]
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

from icanets.config import load_config
from icanets.ica.classify import ClassifierSettings
from icanets.netmats import EdgeTable
from icanets.pipeline import ICASettings, analyses_stage, ica_stage, netmats_stage
from icanets.simulate import REALISM_FACTORS, get_preset, simulate_study
from icanets.simulate._evaluate import match_maps
from icanets.study import load_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests._independent_cohort import make_independent_cohort  # noqa: E402  (written apart from icanets.simulate)

#: Planted effect -> (analysis, contrast) where the reference study would find it.
EXPECTED = {
    "group": [("hc_vs_mdd_tp1", "HC>MDD")],
    "treatment": [("tp1_vs_tp3", "TP1>TP3")],
    "interaction": [("delta_remit", "nonremit>remit"), ("remit_tp1", "remit>nonremit")],
}


def cohort_specs(names: list[str] | None) -> list[tuple[str, str, dict]]:
    """``(label, base level, {factor: level})`` for each cohort asked for; ``independent`` (base
    level ``"independent"``) is the cohort of ``tests/_independent_cohort.py``, with optional
    ``independent:key=value,...`` overrides of its arguments."""
    if not names:
        names = (["realistic", "off", "harsh"] + [f"{f}={lvl}" for f in REALISM_FACTORS for lvl in ("off", "harsh")]
                 + ["independent"])
    specs = []
    for name in names:
        if name.startswith("independent"):
            _, _, rest = name.partition(":")
            specs.append((name, "independent", {k: json.loads(v) for k, v in
                                                (part.split("=") for part in rest.split(",") if part)}))
        elif name in ("off", "realistic", "harsh"):
            specs.append((name if name != "off" else "all off", name, {}))
        else:
            factors = dict(part.split("=") for part in name.split(","))
            specs.append((name, "realistic", factors))
    return specs


def _overrides(items: list[str]) -> dict:
    """``key=value`` items as a dict, each value read as JSON where it is (else a string)."""
    values = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return values


def _ica_settings(overrides: list[str]) -> ICASettings:
    return ICASettings(**_overrides(overrides))


def _classifier_settings(overrides: list[str]) -> ClassifierSettings:
    return ClassifierSettings(**_overrides(overrides))


def _pipeline(study, config, out: Path, settings: ICASettings, *, maps=None, labels=None,
              classifier: ClassifierSettings | None = None) -> dict:
    ica_stage(study.runs, out / "ica", settings, tr=study.tr, mask=config.mask, maps=maps, labels_file=labels,
              classifier=classifier)
    files = sorted((out / "ica" / "dr_stage1").glob("*_timeseries.npy"))
    netmats_stage(files, out / "netmats", labels_file=out / "ica" / "labels.txt",
                  subjects=out / "ica" / "subjects.tsv")
    table = EdgeTable.load(out / "netmats", "edges_ridgep")
    return analyses_stage(study, table, out / "analyses")


def _edge_results(out: Path) -> dict[tuple[str, str], pd.DataFrame]:
    results = {}
    for folder in sorted((out / "analyses" / "analyses").iterdir()):
        table = pd.read_csv(folder / "results.tsv", sep="\t")
        for contrast, frame in table.groupby("contrast"):
            results[(folder.name, contrast)] = frame
    return results


def _component_number(name: str) -> int:
    return int(str(name).removeprefix("IC")) - 1


def evaluate(sim, out: Path, oracle: Path, n_nodes: int) -> dict:
    """Scores of one cohort (see the module docstring)."""
    mask = np.asarray(nib.load(sim.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(sim.truth / "node_maps.nii.gz").dataobj)[mask].T
    artifacts = np.asarray(nib.load(sim.truth / "artifact_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(out / "ica" / "melodic_IC.nii.gz").dataobj)[mask].T
    components = pd.read_csv(out / "ica" / "components.tsv", sep="\t")
    labels = components["label"].to_numpy()
    kept = labels != "noise"
    sources = np.vstack([true, artifacts])
    everything = match_maps(sources, ic)
    node_any = match_maps(true, ic)
    node_kept = match_maps(true, ic, candidates=kept)
    rejected = [n for n in range(n_nodes) if node_any.best_r[n] >= 0.8 and labels[node_any.best[n]] == "noise"
                and not node_kept.recovered()[n]]
    found_artifacts = [a for a in range(len(artifacts)) if everything.best_r[n_nodes + a] >= 0.8]
    flagged = [a for a in found_artifacts if labels[everything.best[n_nodes + a]] != "signal"]
    rejected_artifacts = [a for a in found_artifacts if labels[everything.best[n_nodes + a]] == "noise"]
    owner = everything.owner
    owner_r = everything.owner_r

    planted = pd.read_csv(sim.truth / "planted_edges.tsv", sep="\t").set_index("effect")
    pairs = {e: (int(planted.loc[e, "node_i"]), int(planted.loc[e, "node_j"])) for e in planted.index}
    planted_sets = [set(p) for p in pairs.values()]
    estimated, truth = _edge_results(out), _edge_results(oracle)
    edges = {}
    for effect, (i, j) in pairs.items():
        for analysis, contrast in EXPECTED[effect]:
            o = truth[(analysis, contrast)]
            row = o[((o["name_i"] == f"IC{i + 1}") & (o["name_j"] == f"IC{j + 1}"))
                    | ((o["name_i"] == f"IC{j + 1}") & (o["name_j"] == f"IC{i + 1}"))].iloc[0]
            oracle_t, oracle_p = float(row["statistic"]), float(row["p_fwe"])
            e = estimated[(analysis, contrast)]
            a = e["name_i"].map(_component_number).to_numpy()
            b = e["name_j"].map(_component_number).to_numpy()
            ok = (((owner[a] == i) & (owner[b] == j)) | ((owner[a] == j) & (owner[b] == i))) \
                & (owner_r[a] >= 0.5) & (owner_r[b] >= 0.5)
            if ok.any():
                best = e[ok].sort_values("statistic", ascending=False).iloc[0]
                est_t, est_p = float(best["statistic"]), float(best["p_fwe"])
            else:
                est_t, est_p = float("nan"), 1.0
            edges[f"{effect}:{analysis}"] = {"oracle_t": oracle_t, "oracle_p": oracle_p, "t": est_t, "p": est_p}

    def false_positives(results, mapping) -> tuple[dict[str, int], int]:
        """False-positive edges per analysis, and the FWE families (analysis x contrast) with any."""
        counts, families = {}, 0
        for (analysis, contrast), frame in results.items():
            hits = frame[frame["p_fwe"] < 0.05]
            n = 0
            for name_i, name_j in zip(hits["name_i"], hits["name_j"]):
                nodes = {mapping(name_i), mapping(name_j)}
                n += nodes not in planted_sets
            counts[analysis] = counts.get(analysis, 0) + n
            families += n > 0
        return counts, families

    def estimated_node(name):
        c = _component_number(name)
        return int(owner[c]) if owner_r[c] >= 0.5 else -1 - c

    fp, fp_families = false_positives(estimated, estimated_node)
    fp_oracle, fp_families_oracle = false_positives(truth, _component_number)
    return {
        "dimension": int(len(ic)),
        "recovered_any": int(node_any.recovered().sum()),
        "recovered_thresholded": int(match_maps(true, canica_threshold(ic)).recovered().sum()),
        "recovered_kept": int(node_kept.recovered().sum()),
        "min_r_kept": float(node_kept.assigned_r.min()),
        "rejected": len(rejected),
        "artifacts_found": len(found_artifacts),
        "artifacts_flagged": len(flagged),
        "artifacts_noise": len(rejected_artifacts),
        "uncertain": int((labels == "uncertain").sum()),
        "noise": int((labels == "noise").sum()),
        "edges": edges,
        "fp": fp,
        "fp_oracle": fp_oracle,
        "fp_families": fp_families,
        "fp_families_oracle": fp_families_oracle,
        "n_families": len(estimated),
    }


def canica_threshold(maps: np.ndarray) -> np.ndarray:
    """CanICA's ``threshold="auto"``: zero every value below the ``100 - 100 / n`` percentile of
    ``|maps|`` over all ``n`` maps together (nilearn ``CanICA._unmix_components``)."""
    limit = np.percentile(np.abs(maps), 100.0 - 100.0 / len(maps))
    return np.where(np.abs(maps) < limit, 0.0, maps)


def run_canica(study, config, n_components: int, true: np.ndarray, mask: np.ndarray, seed: int) -> dict:
    """CanICA at its defaults, fitted once unthresholded; its default output (threshold "auto")
    is that same fit thresholded by nilearn's rule."""
    from nilearn.decomposition import CanICA

    start = time.perf_counter()
    model = CanICA(mask=str(config.mask), n_components=n_components, random_state=seed, n_jobs=1, t_r=study.tr,
                   threshold=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit([str(r.path) for r in study.runs])
        except (ValueError, np.linalg.LinAlgError) as exc:  # e.g. FastICA diverging at a high order
            return {"recovered": 0, "min_r": 0.0, "seconds": time.perf_counter() - start,
                    "error": f"{type(exc).__name__}: {exc}"}
    seconds = time.perf_counter() - start
    maps = np.asarray(model.components_img_.dataobj)[mask].T
    match = match_maps(true, canica_threshold(maps))
    raw = match_maps(true, maps)
    return {"recovered": int(match.recovered().sum()), "min_r": float(match.assigned_r.min()), "seconds": seconds,
            "recovered_unthresholded": int(raw.recovered().sum())}


def run_one(label: str, base: str, factors: dict, seed: int, args, workdir: Path) -> dict:
    folder = workdir / f"{label.replace('=', '-').replace(',', '+').replace(' ', '-').replace(':', '-')}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    if base == "independent":
        sim = make_independent_cohort(folder / "study", seed=seed,
                                      **({"n_volumes": args.volumes} if args.volumes else {}), **factors)
    else:
        preset = get_preset(args.preset).with_realism(base, **factors)
        if args.volumes:
            preset = preset.with_changes(n_volumes=args.volumes)
        sim = simulate_study(folder / "study", preset, seed=seed)
    config = load_config(sim.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=config)
    settings = _ica_settings(args.ica)
    for analysis in config.analyses.values():
        object.__setattr__(analysis, "n_perm", args.n_perm)
    start = time.perf_counter()
    _pipeline(study, config, folder / "estimated", settings, classifier=_classifier_settings(args.classifier))
    seconds = time.perf_counter() - start
    # The oracle: the true node and artifact maps, artifacts labelled noise.
    mask = np.asarray(nib.load(sim.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(sim.truth / "node_maps.nii.gz").dataobj)
    artifacts = np.asarray(nib.load(sim.truth / "artifact_maps.nii.gz").dataobj)
    maps = folder / "oracle_maps.nii.gz"
    img = nib.load(sim.truth / "node_maps.nii.gz")
    nib.save(nib.Nifti1Image(np.concatenate([true, artifacts], axis=3), img.affine), str(maps))
    n_nodes = true.shape[3]
    labels = folder / "oracle_labels.txt"
    labels.write_text(f"oracle\n{list(range(n_nodes + 1, n_nodes + artifacts.shape[3] + 1))}\n")
    _pipeline(study, config, folder / "oracle", settings, maps=maps, labels=labels)
    scores = evaluate(sim, folder / "estimated", folder / "oracle", n_nodes)
    scores.update(cohort=label, seed=seed, seconds=seconds, n_runs=len(study.runs), n_nodes=n_nodes)
    if args.canica:
        scores["canica"] = run_canica(study, config, scores["dimension"], true[mask].T, mask, seed)
    if args.compare_orders:
        scores["orders"] = compare_orders(study, config, folder, true[mask].T, mask, settings)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return scores


def compare_orders(study, config, folder: Path, true: np.ndarray, mask: np.ndarray, settings: ICASettings) -> dict:
    """Nodes recovered (distinct kept component, r >= 0.8) with the model order of every estimator,
    the rest of the ICA stage unchanged."""
    estimates = json.loads((folder / "estimated" / "ica" / "model_order.json").read_text())["estimates"]
    out = {}
    for method, dimension in sorted(estimates.items()):
        target = folder / f"order-{method}"
        ica_stage(study.runs, target, replace(settings, dimension=int(dimension)), tr=study.tr, mask=config.mask,
                  overwrite=True)
        ic = np.asarray(nib.load(target / "melodic_IC.nii.gz").dataobj)[mask].T
        keep = pd.read_csv(target / "components.tsv", sep="\t")["keep"].to_numpy()
        out[method] = {"dimension": int(dimension), "recovered": int(match_maps(true, ic, candidates=keep)
                                                                      .recovered().sum())}
        shutil.rmtree(target, ignore_errors=True)
    return out


def print_row(s: dict) -> None:
    edges = "  ".join(f"{k.split(':')[0][:5]}/{k.split(':')[1][:6]} {v['t']:5.1f}{'*' if v['p'] < 0.05 else ' '}"
                      f"({v['oracle_t']:4.1f}{'*' if v['oracle_p'] < 0.05 else ' '})" for k, v in s["edges"].items())
    if "orders" in s:
        edges += "  orders: " + ", ".join(f"{m} {o['dimension']}:{o['recovered']}" for m, o in s["orders"].items())
    canica = (f"{s['canica']['recovered']:>3}" + ("!" if "error" in s["canica"] else " ") +
              f"{s['canica'].get('recovered_unthresholded', 0):>3}") if "canica" in s else "  -    -"
    print(f"{s['cohort']:<22}{s['seed']:>3}{s['dimension']:>5}{s['recovered_any']:>5}{s['recovered_kept']:>5}"
          f"{s['recovered_thresholded']:>4}{canica:>8}"
          f"{s['rejected']:>5}{s['artifacts_flagged']:>3}({s['artifacts_noise']})/{s['artifacts_found']:<2}{s['uncertain']:>4}"
          f"{sum(s['fp'].values()):>4}{sum(s['fp_oracle'].values()):>4}  {edges}", flush=True)


def summarise(rows: list[dict], n_nodes: int) -> None:
    print("\nSummary by cohort kind (all seeds):")
    print(f"{'cohort':<22}{'nodes kept r>=.8':>17}{'rejected':>9}{'artifacts flagged (noise)':>26}{'edges found':>12}"
          f"{'t/oracle (min)':>15}{'FP est/oracle':>14}{'FWE families w/ FP':>20}{'CanICA <= icanets':>20}")
    print("(CanICA <= icanets: cohorts where CanICA's default output recovers no more nodes than icanets' maps as "
          "written, and where it does not either way when both are thresholded alike or both left unthresholded)")
    for cohort, group in pd.DataFrame(rows).groupby("cohort", sort=False):
        kept = group["recovered_kept"].sum() / group["n_nodes"].sum()
        rejected = group["rejected"].sum()
        found = group["artifacts_found"].sum()
        flagged = group["artifacts_flagged"].sum() / max(found, 1)
        noise = group["artifacts_noise"].sum() / max(found, 1)
        targets = [v for e in group["edges"] for v in e.values() if v["oracle_t"] >= 6]
        hit = sum(v["p"] < 0.05 for v in targets)
        ratio = min((v["t"] / v["oracle_t"] if np.isfinite(v["t"]) else 0.0) for v in targets) if targets else np.nan
        fp = sum(sum(f.values()) for f in group["fp"])
        fpo = sum(sum(f.values()) for f in group["fp_oracle"])
        families = (f"{group['fp_families'].sum()}/{group['fp_families_oracle'].sum()} of "
                    f"{group['n_families'].sum()}")
        if "canica" in group:
            as_written = sum(r["canica"]["recovered"] <= r["recovered_any"] for _, r in group.iterrows())
            alike = sum(r["canica"]["recovered"] <= r["recovered_thresholded"]
                        and r["canica"].get("recovered_unthresholded", 0) <= r["recovered_any"]
                        for _, r in group.iterrows())
            canica = f"{as_written}/{len(group)}, {alike}/{len(group)}"
        else:
            canica = "-"
        print(f"{cohort:<22}{kept:>16.0%} {rejected:>9}{f'{flagged:.0%} ({noise:.0%})':>26}{f'{hit}/{len(targets)}':>12}{ratio:>15.2f}"
              f"{f'{fp}/{fpo}':>14}{families:>20}{str(canica):>20}")


def summarise_orders(rows: list[dict], n_nodes: int) -> None:
    if not any("orders" in r for r in rows):
        return
    print("\nNodes recovered by kept components (r >= 0.8) with each estimator's model order, per cohort kind:")
    frame = pd.DataFrame([{"cohort": r["cohort"], **{m: o["recovered"] for m, o in r["orders"].items()}}
                          for r in rows if "orders" in r])
    totals = frame.groupby("cohort", sort=False).sum() / (n_nodes * frame.groupby("cohort", sort=False).size().to_numpy()[:, None])
    print((totals * 100).round(0).astype(int).astype(str).add(" %").to_string())
    overall = frame.drop(columns="cohort").sum() / (n_nodes * len(frame))
    print("all cohorts: " + ", ".join(f"{m} {v:.0%}" for m, v in overall.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cohorts", nargs="+", help="realistic, off, harsh, or FACTOR=LEVEL[,FACTOR=LEVEL]")
    parser.add_argument("--volumes", type=int, help="time points per run (default: the preset's)")
    parser.add_argument("--n-perm", type=int, default=5000)
    parser.add_argument("--no-canica", dest="canica", action="store_false")
    parser.add_argument("--compare-orders", action="store_true",
                        help="also run the ICA stage at every model-order estimate and print the nodes each recovers")
    parser.add_argument("--ica", nargs="*", default=[], help="ICASettings overrides, key=value")
    parser.add_argument("--classifier", nargs="*", default=[],
                        help="ClassifierSettings overrides, key=value (e.g. min_shadow_flips=0.51: no shadow rule)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep every cohort's files")
    parser.add_argument("--tsv", type=Path, help="write every figure to this table")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="icanets-bench-robust-"))
    n_nodes = get_preset(args.preset).n_nodes
    print(f"preset {args.preset}, seeds {args.seeds}, {args.n_perm} permutations, ICA settings {_ica_settings(args.ica)}, "
          f"classifier {_classifier_settings(args.classifier)}")
    print("columns: cohort, seed, model order, nodes recovered (icanets: any component, kept, maps thresholded by "
          "CanICA's rule; CanICA: default output (thresholded; ! failed), unthresholded), "
          "true nodes rejected, artifacts flagged (noise or uncertain; of them noise) / found, uncertain components, "
          "false positives (estimated, oracle), planted edges: t estimated (oracle), * p_FWE < 0.05")
    rows = []
    for label, base, factors in cohort_specs(args.cohorts):
        for seed in args.seeds:
            scores = run_one(label, base, factors, seed, args, workdir)
            rows.append(scores)
            print_row(scores)
    summarise(rows, n_nodes)
    summarise_orders(rows, n_nodes)
    if args.tsv:
        flat = []
        for r in rows:
            item = {k: v for k, v in r.items() if k not in ("edges", "fp", "fp_oracle", "canica", "orders")}
            item.update({f"order_{m}_{k}": v for m, o in r.get("orders", {}).items() for k, v in o.items()})
            item.update({f"canica_{k}": v for k, v in r.get("canica", {}).items()})
            item.update({f"{e}_{k}": v for e, d in r["edges"].items() for k, v in d.items()})
            item.update({f"fp_{k}": v for k, v in r["fp"].items()})
            item.update({f"fp_oracle_{k}": v for k, v in r["fp_oracle"].items()})
            flat.append(item)
        pd.DataFrame(flat).to_csv(args.tsv, sep="\t", index=False)
    if not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
