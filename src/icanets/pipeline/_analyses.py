"""The analyses stage: declared GLMs and predictions, post-hoc statistics of significant edges,
demographics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from icanets._format import format_p, p_relation
from icanets.errors import IcanetsError
from icanets.io.atomic import atomic_folder
from icanets.pipeline._common import json_default, provenance, records

if TYPE_CHECKING:
    from icanets.netmats import EdgeTable

__all__ = ["analyses_stage", "findings_text"]


def analyses_stage(study, table: EdgeTable, out: Path, *, analyses: Sequence[str] | None = None,
                   n_jobs: int | None = None, overwrite: bool = False, inputs: Sequence[Path] = (),
                   log: Callable[[str], None] | None = None,
                   full_table: EdgeTable | None = None, node_anatomy: pd.DataFrame | None = None) -> dict:
    """The study's declared analyses and predictions, post-hoc statistics of significant edges,
    demographics.

    Parameters
    ----------
    study : icanets.study.Study
        Its config declares ``[analyses.*]``, ``[predict.*]`` and ``[posthoc]``.
    table : EdgeTable
        Subject-sessions x edges (e.g. ``edges_ridgep`` of the netmats stage).
    analyses : sequence of str, optional
        Run only these (analysis or prediction names).
    node_anatomy : DataFrame, optional
        Coordinates and atlas labels per node (:func:`icanets.io.atlas.node_anatomy`), written
        as ``nodes.tsv``, used for the node names of ``findings.txt`` and for the distance
        dependence of QC-FC (the nodes' centres of mass).
    full_table : EdgeTable, optional
        The full-correlation edges (``edges_corr``), whose QC-FC is reported beside that of
        ``table`` (QC-FC is usually quoted for full correlation).

    Outputs
    -------
    ``analyses/<name>/results.tsv`` (+ ``null_max.npy``, ``rows_used.tsv``),
    ``predict/<name>/{predictions,metrics,edges}.tsv`` and ``null.npy``,
    ``posthoc/edge-<i>-<j>_{means,pairwise,correlations,scatter}.tsv``, ``demographics.tsv``,
    ``stats.json`` (every statistic, for the report) and ``findings.txt``; with motion files,
    ``motion/{runs,sessions,table,excluded}.tsv`` and ``motion/qcfc_<session>.tsv``.

    Returns
    -------
    dict
        The content of ``stats.json``.
    """
    from icanets.glm.analysis import analysis_variables, check_analysis_variables, run_analysis
    from icanets.posthoc.summary import run_posthoc, significant_edges, study_demographics
    from icanets.predict import run_prediction

    say = log or (lambda message: None)
    config = study.config
    specs = list(config.analyses.values())
    predictions = list(config.predict.values())
    if analyses is not None:
        unknown = sorted(set(analyses) - set(config.analyses) - set(config.predict))
        if unknown:
            raise IcanetsError(f"unknown analyses {', '.join(unknown)} "
                               f"(declared: {', '.join([*config.analyses, *config.predict])})")
        specs = [config.analyses[name] for name in analyses if name in config.analyses]
        predictions = [config.predict[name] for name in analyses if name in config.predict]
    variables = study.variables()
    own = {spec.name: analysis_variables(spec, variables, study.sessions, resolve_session=config.resolve_session)
           for spec in specs}
    for spec in specs:
        check_analysis_variables(spec, own[spec.name])
    results = []
    for spec in specs:
        start = time.monotonic()
        result = run_analysis(spec, table, own[spec.name], resolve_session=config.resolve_session, n_jobs=n_jobs)
        result = _with_exclusions(result, study)
        hits = {c.name: int(np.sum(c.p_fwe < config.posthoc.alpha)) for c in result.glm.contrasts}
        say(f"{spec.name}: N = {result.n_used}, {result.glm.n_perm} relabellings, "
            f"{', '.join(f'{k}: {v}' for k, v in hits.items())} edges with p_FWE < {config.posthoc.alpha} "
            f"({time.monotonic() - start:.1f} s)")
        results.append(result)
    predicted = []
    for spec in predictions:
        start = time.monotonic()
        result = run_prediction(spec, table, variables, resolve_session=config.resolve_session, n_jobs=n_jobs)
        name = result.primary
        low, high = result.ci.get(name, (np.nan, np.nan))
        say(f"{spec.name}: N = {len(result.data.y)}, {spec.model}, {name} = {result.observed[name]:.3f} "
            f"[{low:.3f}, {high:.3f}], permutation p = {result.p[name]:.4g} ({time.monotonic() - start:.1f} s)")
        predicted.append(_with_exclusions(result, study))
    findings = significant_edges(results, table.edges, alpha=config.posthoc.alpha, named=config.posthoc.edges)
    sessions = sorted({s for s in table.rows["session_id"].fillna("").astype(str) if s})
    edge_stats = run_posthoc(table, findings, variables, config.posthoc, group=config.group_column,
                             sessions=sessions, resolve_session=config.resolve_session)
    roles = {v: k for k, v in config.session_roles.items()}
    demographics, tests, anova, notes = study_demographics(variables, study.sessions, config.posthoc,
                                                           group=config.group_column, session_labels=study.session_labels,
                                                           roles=roles)
    coordinates = None if node_anatomy is None else node_anatomy[["com_x", "com_y", "com_z"]].to_numpy(dtype=float)
    motion = _motion_stats(study, table, variables, roles, coordinates, results, full_table)
    if motion is not None:
        test = motion["group_test"]
        if test and "p" in test:
            say(f"motion: mean FD {test['test']} = {test['statistic']:.2f}, p = {test['p']:.3g} at {test['session']}; "
                f"{len(motion['excluded'])} run(s) excluded")
    stats_json = {
        "analyses": [_analysis_json(r, table.edges, config.posthoc.alpha) for r in results],
        "predictions": [_prediction_json(r) for r in predicted],
        "posthoc": [_posthoc_json(e) for e in edge_stats],
        "demographics": {"table": records(demographics), "tests": tests,
                         "rm_anova": anova.to_dict() if anova is not None else None, "notes": notes},
        "sessions": {s: roles.get(s, s) for s in sessions},
        "edge_table": table.metadata,
        "motion": None if motion is None else {k: v for k, v in motion.items() if not k.startswith("_")},
        "nodes": records(node_anatomy) if node_anatomy is not None else [],
        "study": {"n_subjects": len(study.participants), "n_runs": len(study.runs), "tr": study.tr,
                  "volumes": sorted({r.n_volumes for r in study.runs}),
                  "kind": study.runs[0].kind if study.runs else None},
    }
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        for result in results:
            folder = tmp / "analyses" / result.spec.name
            folder.mkdir(parents=True)
            result.glm.table(table.edges).to_csv(folder / "results.tsv", sep="\t", index=False, float_format="%.8g")
            np.save(folder / "null_max.npy", np.vstack([c.null_max for c in result.glm.contrasts]))
            result.rows.to_csv(folder / "rows_used.tsv", sep="\t", index=False)
        for result in predicted:
            _write_prediction(result, tmp / "predict" / result.spec.name)
        post = tmp / "posthoc"
        post.mkdir()
        for item in edge_stats:
            stem = f"edge-{item.finding.node_i}-{item.finding.node_j}"
            item.means.to_csv(post / f"{stem}_means.tsv", sep="\t", index=False, float_format="%.6g")
            item.pairwise.to_csv(post / f"{stem}_pairwise.tsv", sep="\t", index=False, float_format="%.6g")
            if item.correlations is not None:
                item.correlations.to_csv(post / f"{stem}_correlations.tsv", sep="\t", index=False, float_format="%.6g")
                item.scatter.to_csv(post / f"{stem}_scatter.tsv", sep="\t", index=False, float_format="%.6g")
        demographics.to_csv(tmp / "demographics.tsv", sep="\t", index=False)
        if node_anatomy is not None:
            node_anatomy.to_csv(tmp / "nodes.tsv", sep="\t", index=False, float_format="%.1f")
        if motion is not None:
            _write_motion(motion, study, table, tmp / "motion")
        sidecar = provenance("analyses", {"analyses": [r.spec.name for r in results],
                                          "predict": [r.spec.name for r in predicted]}, list(inputs), None)
        stats_json["provenance"] = sidecar
        (tmp / "stats.json").write_text(json.dumps(stats_json, indent=2, default=json_default) + "\n")
        (tmp / "findings.txt").write_text(findings_text(stats_json))
    return stats_json


def _motion_stats(study, table, variables, roles, coordinates, results, full_table=None) -> dict | None:
    """Motion table, tests and QC-FC (None without motion files)."""
    from icanets.posthoc.motion import motion_table, study_qc_fc
    from icanets.posthoc.summary import _mask
    from icanets.qc.motion import motion_settings

    if study.motion is None:
        return None
    config = study.config
    settings = motion_settings(dict(config.motion))
    spec = config.posthoc
    baseline = config.resolve_session(spec.baseline) if spec.baseline else (study.session_labels or [""])[0]
    patients = _mask(spec.patients, variables) if spec.patients is not None else None
    summary = motion_table(study.sessions, study.groups, session_labels=study.session_labels, baseline=baseline,
                           patients=patients, roles=roles)
    distance = None
    if coordinates is not None and len(coordinates) > int(table.edges[["node_i", "node_j"]].to_numpy().max()):
        i, j = table.edges["node_i"].to_numpy(), table.edges["node_j"].to_numpy()
        distance = np.linalg.norm(np.asarray(coordinates)[i] - np.asarray(coordinates)[j], axis=1)
    qcfc = []
    tables = [("analysed", table)] + ([("full correlation", full_table)] if full_table is not None
                                      and full_table.values.shape[1] == table.values.shape[1] else [])
    for name, edges in tables:
        kind = edges.metadata.get("method", name) if isinstance(edges.metadata, dict) else name
        qcfc += [{"edges": kind, **q} for q in study_qc_fc(edges.values, edges.rows, study.sessions, variables,
                                                          covariates=settings.qcfc_covariates, distance=distance,
                                                          roles=roles)]
    excluded = study.excluded.reset_index()
    uses = [r.spec.name for r in results if r.spec.formula and "mean_fd" in r.design.columns]
    runs = study.motion
    return {
        "settings": {"source": sorted(set(runs["source"])), "head_radius": settings.head_radius,
                     "fd_threshold": settings.fd_threshold, "fd_from_file": int((runs["fd_source"] == "file").sum()),
                     "fd_file_max_difference": (float(runs["fd_file_difference"].max())
                                                if runs["fd_file_difference"].notna().any() else None),
                     "rules": settings.rules(), "qcfc_covariates": list(settings.qcfc_covariates),
                     "cleaning": settings.cleaning_text(),
                     "volumes_censored": int((runs["n_volumes"] - runs["n_volumes_analysed"])[runs["excluded"] == ""].sum()),
                     "volumes": int(runs["n_volumes"][runs["excluded"] == ""].sum())},
        "n_runs": int(len(runs)), "n_excluded": int(len(excluded)),
        "runs": {"mean_fd": _describe(runs["mean_fd"]), "max_fd": _describe(runs["max_fd"]),
                 "fraction_high_motion": _describe(runs["fraction_high_motion"])},
        "excluded": records(excluded),
        "table": records(summary["table"]), "group_test": summary["group_test"], "rm_anova": summary["rm_anova"],
        "notes": summary["notes"], "covariate_in": uses,
        "qcfc": [{k: v for k, v in q.items() if k not in ("r", "p")} for q in qcfc],
        "_qcfc": qcfc, "_table": summary["table"], "_distance": distance,
    }


def _describe(values: pd.Series) -> dict:
    values = values.dropna().astype(float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
            "median": float(values.median()), "max": float(values.max())}


def _write_motion(motion: dict, study, table, folder: Path) -> None:
    from icanets.study import MOTION_MEASURES

    folder.mkdir(parents=True)
    study.motion.reset_index().to_csv(folder / "runs.tsv", sep="\t", index=False, float_format="%.6g")
    sessions = study.sessions[list(MOTION_MEASURES) + ["n_runs", "n_runs_excluded"]].reset_index()
    sessions.insert(2, "group", sessions["participant_id"].map(study.groups))
    sessions.to_csv(folder / "sessions.tsv", sep="\t", index=False, float_format="%.6g")
    motion["_table"].to_csv(folder / "table.tsv", sep="\t", index=False)
    study.excluded.reset_index().to_csv(folder / "excluded.tsv", sep="\t", index=False)
    for q in motion["_qcfc"]:
        if "r" not in q:
            continue
        frame = table.edges[["edge", "name_i", "name_j"]].assign(r=q["r"], p=q["p"])
        if motion["_distance"] is not None:
            frame["distance_mm"] = motion["_distance"]
        frame.to_csv(folder / f"qcfc_{q['edges']}_{q['session_id'] or 'all'}.tsv", sep="\t", index=False,
                     float_format="%.6g")


def _with_exclusions(result, study):
    """The analysis' (or prediction's) left-out list, with the motion rule that excluded a
    session named where that is why a subject has no data for it."""
    from dataclasses import replace

    if study.motion is None or not (study.motion["excluded"] != "").any():
        return result
    spec = result.spec
    pair = getattr(spec, "paired", None) or spec.difference
    sessions = [s for s in ([spec.session] if spec.session else list(pair or ())) if s]
    labels = [study.config.resolve_session(s) for s in sessions] or sorted(set(study.motion["session_id"]))
    holder = result.data if hasattr(result, "data") else result
    dropped = []
    for entry in holder.dropped:
        subject = entry.split(" ", 1)[0]
        why = [w for w in (study.exclusion_of(subject, label) for label in labels) if w]
        dropped.append(f"{entry} [{'; '.join(why)}]" if why and "(no " in entry else entry)
    if holder is result:
        return replace(result, dropped=tuple(dropped))
    return replace(result, data=replace(holder, dropped=tuple(dropped)))


def _analysis_json(result, edges: pd.DataFrame, alpha: float) -> dict:
    glm = result.glm
    contrasts = []
    for c in glm.contrasts:
        hits = np.flatnonzero(c.p_fwe < alpha)
        hits = hits[np.argsort(c.p_fwe[hits])]
        contrasts.append({
            "name": c.name, "kind": c.kind, "tails": c.tails, "df": list(c.df),
            "n_significant": int(hits.size), "min_p_fwe": float(c.p_fwe.min()),
            "fwe_threshold": float(np.quantile(c.null_max, 1 - alpha)),
            "significant": [{"edge": int(e), "node_i": int(edges.iloc[e]["node_i"]),
                             "node_j": int(edges.iloc[e]["node_j"]), "name_i": str(edges.iloc[e]["name_i"]),
                             "name_j": str(edges.iloc[e]["name_j"]), "statistic": float(c.statistic[e]),
                             "p_unc": float(c.p_unc[e]), "p_fwe": float(c.p_fwe[e]), "q_fdr": float(c.q_fdr[e])}
                            for e in hits],
            "nbs": [{"nodes": comp.nodes.tolist(), "edges": comp.edges.tolist(), "size": comp.size,
                     "p_fwe": comp.p_fwe} for comp in c.nbs],
        })
    spec = result.spec
    return {"name": spec.name, "description": spec.description, "n_used": result.n_used,
            "n_subset": result.n_subset, "dropped": list(result.dropped), "n_perm": glm.n_perm,
            "exhaustive": glm.exhaustive, "scheme": glm.scheme, "method": glm.method,
            "fwe_across": bool(spec.fwe_across),
            "formula": spec.formula, "session": spec.session, "paired": spec.paired, "difference": spec.difference,
            "subset": spec.subset.text if spec.subset else None, "design_columns": list(glm.design_columns),
            "contrasts": contrasts}


def _write_prediction(result, folder: Path) -> None:
    folder.mkdir(parents=True)
    data, cv = result.data, result.cv
    rows = data.rows.assign(observed=data.y, predicted=cv.predictions.mean(axis=0))
    for r in range(len(cv.predictions)):
        rows[f"predicted_repeat{r + 1}"] = cv.predictions[r]
        rows[f"fold_repeat{r + 1}"] = cv.fold_of[r]
    rows.to_csv(folder / "predictions.tsv", sep="\t", index=False, float_format="%.8g")
    metrics = pd.DataFrame([{"metric": m, "value": result.observed[m], "ci_low": result.ci.get(m, (np.nan,) * 2)[0],
                             "ci_high": result.ci.get(m, (np.nan,) * 2)[1], "p_perm": result.p[m],
                             "n_perm": len(result.null)} for m in result.metric_names])
    metrics.to_csv(folder / "metrics.tsv", sep="\t", index=False, float_format="%.8g")
    np.save(folder / "null.npy", result.null)
    result.edge_table.to_csv(folder / "edges.tsv", sep="\t", index=False, float_format="%.6g")


def _prediction_json(result) -> dict:
    spec, data = result.spec, result.data
    edges = result.edge_table
    if spec.model == "cpm":
        shown = edges[edges["consensus"]].sort_values("fraction", ascending=False)
    else:  # ridge and logistic use every edge: the largest mean weights
        shown = edges.reindex(edges["mean_weight"].abs().sort_values(ascending=False).index).head(10)
    return {
        "name": spec.name, "description": spec.description, "target": spec.target,
        "kind": "binary" if data.binary else "continuous", "model": spec.model,
        "session": spec.session, "difference": spec.difference, "subset": spec.subset.text if spec.subset else None,
        "confounds": list(data.confounds), "n": int(len(data.y)), "n_edges": int(len(data.edges)),
        "classes": ({str(int(c)): int(np.sum(data.y == c)) for c in (0.0, 1.0)} if data.binary else None),
        "cv": spec.cv, "folds": spec.folds if spec.cv == "kfold" else int(len(data.y)),
        "repeats": data.settings.repeats, "seed": spec.seed, "n_perm": int(len(result.null)),
        "n_boot": spec.n_boot, "threshold": spec.threshold if spec.model == "cpm" else None,
        "network": spec.network if spec.model == "cpm" else None, "consensus": spec.consensus,
        "primary": result.primary,
        "metrics": {m: {"value": result.observed[m], "ci": list(result.ci.get(m, (np.nan, np.nan))),
                        "p": result.p[m]} for m in result.metric_names},
        "edges": [{"edge": int(e.edge), "node_i": int(e.node_i), "node_j": int(e.node_j), "name_i": str(e.name_i),
                   "name_j": str(e.name_j), "fraction": float(e.fraction), "sign": int(e.sign),
                   "mean_weight": float(e.mean_weight)} for e in shown.itertuples()],
        "n_consensus": int(edges["consensus"].sum()),
        "dropped": list(data.dropped), "notes": list(data.notes),
    }


def _posthoc_json(item) -> dict:
    f = item.finding
    return {"edge": f.edge, "node_i": f.node_i, "node_j": f.node_j, "name_i": f.name_i, "name_j": f.name_j,
            "hits": list(f.hits), "means": records(item.means), "pairwise": records(item.pairwise),
            "correlations": records(item.correlations), "scatter": records(item.scatter),
            "mixed": item.mixed, "notes": list(item.notes)}


def findings_text(stats_json: dict) -> str:
    """A plain-text summary of the findings of every analysis (nodes by their display names,
    ``IC14 - R Visual``, where an atlas names them)."""
    from icanets.io.atlas import display_name

    anatomy = pd.DataFrame(stats_json.get("nodes") or [])

    def named(name: str) -> str:
        return display_name(name, anatomy)

    between = " -- " if "label" in anatomy and anatomy["label"].astype(bool).any() else " - "

    lines = []
    for analysis in stats_json["analyses"]:
        kind = "exhaustive" if analysis["exhaustive"] else "random"
        lines.append(f"{analysis['name']}: {analysis['description'] or ''}".rstrip(": "))
        lines.append(f"  N = {analysis['n_used']} ({analysis['n_perm']} {kind} relabellings, {analysis['scheme']})")
        if analysis["dropped"]:
            lines.append(f"  left out: {'; '.join(analysis['dropped'])}")
        for c in analysis["contrasts"]:
            floor = 1.0 / analysis["n_perm"]
            if not c["significant"]:
                lines.append(f"  {c['name']}: no edge with p_FWE < 0.05 (smallest p_FWE "
                             f"{format_p(c['min_p_fwe'], floor)})")
                continue
            lines.append(f"  {c['name']}: {c['n_significant']} edge(s) with p_FWE < 0.05")
            for hit in c["significant"][:20]:
                lines.append(f"    {named(hit['name_i'])}{between}{named(hit['name_j'])}: {c['kind']} = {hit['statistic']:.2f}, "
                             f"p_FWE {p_relation(hit['p_fwe'], floor)}")
        lines.append("")
    for item in stats_json.get("predictions", []):
        m = item["metrics"][item["primary"]]
        lines.append(f"{item['name']}: {item['description'] or ''}".rstrip(": "))
        lines.append(f"  {item['model']} predicting {item['target']} ({item['kind']}), N = {item['n']}, "
                     f"{item['repeats']} x {item['folds']}-fold" if item["cv"] == "kfold" else
                     f"  {item['model']} predicting {item['target']} ({item['kind']}), N = {item['n']}, leave-one-out")
        lines.append(f"  {item['primary']} = {m['value']:.3f} [95 % CI {m['ci'][0]:.3f}, {m['ci'][1]:.3f}], "
                     f"permutation p = {m['p']:.4g} ({item['n_perm']} permutations of the whole procedure)")
        if item["model"] == "cpm":
            lines.append(f"  {item['n_consensus']} consensus edge(s) (selected in >= {item['consensus']:.0%} of fits)"
                         + (": " + ", ".join(f"{e['name_i']}-{e['name_j']} ({'+' if e['sign'] > 0 else '-'})"
                                             for e in item["edges"][:10]) if item["edges"] else ""))
        for note in item["notes"]:
            lines.append(f"  note: {note}")
        lines.append("")
    anova = stats_json["demographics"].get("rm_anova")
    if anova:
        lines.append(f"Repeated-measures ANOVA: F({anova['df1_gg']:.2f}, {anova['df2_gg']:.2f}) = {anova['f']:.2f}, "
                     f"p = {anova['p_gg']:.3g} (Greenhouse-Geisser, epsilon = {anova['epsilon']:.3f}, N = {anova['n']})")
    for item in stats_json["posthoc"]:
        mixed = item.get("mixed")
        if mixed:
            inter = mixed["interaction"]
            lines.append(f"{item['name_i']} - {item['name_j']}: time x remission {inter['coef']:.3f} "
                         f"(SE {inter['se']:.3f}, p = {inter['p']:.3g}, {mixed['n_subjects']} subjects)")
        for note in item.get("notes") or []:
            lines.append(f"  {item['name_i']} - {item['name_j']}: {note}")
        for corr in item.get("correlations") or []:
            if corr["method"] == "pearson" and corr.get("r") is None:
                lines.append(f"  {corr['measure']} vs clinical change: not computable (N = {corr['n']})")
            elif corr["method"] == "pearson":
                lines.append(f"  {corr['measure']} vs clinical change: r = {corr['r']:.2f} "
                             f"[{corr['ci_low']:.2f}, {corr['ci_high']:.2f}], p = {corr['p']:.3g}, N = {corr['n']}")
    return "\n".join(lines) + "\n"
