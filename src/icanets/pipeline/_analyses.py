"""The analyses stage: declared GLMs, post-hoc statistics of significant edges, demographics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from icanets.errors import IcanetsError
from icanets.io.atomic import atomic_folder
from icanets.pipeline._common import json_default, provenance, records

if TYPE_CHECKING:
    from icanets.netmats import EdgeTable

__all__ = ["analyses_stage", "findings_text"]


def analyses_stage(study, table: EdgeTable, out: Path, *, analyses: Sequence[str] | None = None,
                   n_jobs: int | None = None, overwrite: bool = False, inputs: Sequence[Path] = (),
                   log: Callable[[str], None] | None = None) -> dict:
    """The study's declared analyses, post-hoc statistics of significant edges, demographics.

    Parameters
    ----------
    study : icanets.study.Study
        Its config declares ``[analyses.*]`` and ``[posthoc]``.
    table : EdgeTable
        Subject-sessions x edges (e.g. ``edges_ridgep`` of the netmats stage).
    analyses : sequence of str, optional
        Run only these.

    Outputs
    -------
    ``analyses/<name>/results.tsv`` (+ ``null_max.npy``, ``rows_used.tsv``),
    ``posthoc/edge-<i>-<j>_{means,pairwise,correlations,scatter}.tsv``, ``demographics.tsv``,
    ``stats.json`` (every statistic, for the report) and ``findings.txt``.

    Returns
    -------
    dict
        The content of ``stats.json``.
    """
    from icanets.glm.analysis import check_analysis_variables, run_analysis
    from icanets.posthoc.summary import run_posthoc, significant_edges, study_demographics

    say = log or (lambda message: None)
    config = study.config
    specs = list(config.analyses.values())
    if analyses is not None:
        unknown = sorted(set(analyses) - set(config.analyses))
        if unknown:
            raise IcanetsError(f"unknown analyses {', '.join(unknown)} (declared: {', '.join(config.analyses)})")
        specs = [config.analyses[name] for name in analyses]
    variables = study.variables()
    for spec in specs:
        check_analysis_variables(spec, variables)
    results = []
    for spec in specs:
        start = time.monotonic()
        result = run_analysis(spec, table, variables, resolve_session=config.resolve_session, n_jobs=n_jobs)
        hits = {c.name: int(np.sum(c.p_fwe < config.posthoc.alpha)) for c in result.glm.contrasts}
        say(f"{spec.name}: N = {result.n_used}, {result.glm.n_perm} relabellings, "
            f"{', '.join(f'{k}: {v}' for k, v in hits.items())} edges with p_FWE < {config.posthoc.alpha} "
            f"({time.monotonic() - start:.1f} s)")
        results.append(result)
    findings = significant_edges(results, table.edges, alpha=config.posthoc.alpha, named=config.posthoc.edges)
    sessions = sorted({s for s in table.rows["session_id"].fillna("").astype(str) if s})
    edge_stats = run_posthoc(table, findings, variables, config.posthoc, group=config.group_column,
                             sessions=sessions, resolve_session=config.resolve_session)
    roles = {v: k for k, v in config.session_roles.items()}
    demographics, tests, anova, notes = study_demographics(variables, study.sessions, config.posthoc,
                                                           group=config.group_column, session_labels=study.session_labels,
                                                           roles=roles)
    stats_json = {
        "analyses": [_analysis_json(r, table.edges, config.posthoc.alpha) for r in results],
        "posthoc": [_posthoc_json(e) for e in edge_stats],
        "demographics": {"table": records(demographics), "tests": tests,
                         "rm_anova": anova.to_dict() if anova is not None else None, "notes": notes},
        "sessions": {s: roles.get(s, s) for s in sessions},
        "edge_table": table.metadata,
    }
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        for result in results:
            folder = tmp / "analyses" / result.spec.name
            folder.mkdir(parents=True)
            result.glm.table(table.edges).to_csv(folder / "results.tsv", sep="\t", index=False, float_format="%.8g")
            np.save(folder / "null_max.npy", np.vstack([c.null_max for c in result.glm.contrasts]))
            result.rows.to_csv(folder / "rows_used.tsv", sep="\t", index=False)
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
        sidecar = provenance("analyses", {"analyses": [r.spec.name for r in results]}, list(inputs), None)
        stats_json["provenance"] = sidecar
        (tmp / "stats.json").write_text(json.dumps(stats_json, indent=2, default=json_default) + "\n")
        (tmp / "findings.txt").write_text(findings_text(stats_json))
    return stats_json


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
            "formula": spec.formula, "session": spec.session, "paired": spec.paired, "difference": spec.difference,
            "subset": spec.subset.text if spec.subset else None, "design_columns": list(glm.design_columns),
            "contrasts": contrasts}


def _posthoc_json(item) -> dict:
    f = item.finding
    return {"edge": f.edge, "node_i": f.node_i, "node_j": f.node_j, "name_i": f.name_i, "name_j": f.name_j,
            "hits": list(f.hits), "means": records(item.means), "pairwise": records(item.pairwise),
            "correlations": records(item.correlations), "scatter": records(item.scatter),
            "mixed": item.mixed, "notes": list(item.notes)}


def findings_text(stats_json: dict) -> str:
    """A plain-text summary of the findings of every analysis."""
    lines = []
    for analysis in stats_json["analyses"]:
        kind = "exhaustive" if analysis["exhaustive"] else "random"
        lines.append(f"{analysis['name']}: {analysis['description'] or ''}".rstrip(": "))
        lines.append(f"  N = {analysis['n_used']} ({analysis['n_perm']} {kind} relabellings, {analysis['scheme']})")
        if analysis["dropped"]:
            lines.append(f"  left out: {'; '.join(analysis['dropped'])}")
        for c in analysis["contrasts"]:
            if not c["significant"]:
                lines.append(f"  {c['name']}: no edge with p_FWE < 0.05 (smallest p_FWE {c['min_p_fwe']:.3g})")
                continue
            lines.append(f"  {c['name']}: {c['n_significant']} edge(s) with p_FWE < 0.05")
            for hit in c["significant"][:20]:
                lines.append(f"    {hit['name_i']} - {hit['name_j']}: {c['kind']} = {hit['statistic']:.2f}, "
                             f"p_FWE = {hit['p_fwe']:.4f}")
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
