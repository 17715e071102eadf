"""The HTML report: one self-contained file built from a finished run's output folder."""

from __future__ import annotations

import base64
import io
import json
import os
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from icanets._version import __version__
from icanets.errors import IcanetsError
from icanets.io.atomic import atomic_folder
from icanets._format import P_FLOOR_NOTE, format_p, p_relation
from icanets.report._html import page, rounded, sortable_table, table_html

__all__ = ["build_report"]


#: Figures also written as SVG and PDF (publication figures), by name prefix.
_PUBLISHED = ("netmat", "motion", "qcfc", "edge-", "predict-")


def _png(fig, folder: Path | None, name: str) -> str:
    """Embed a figure as a base64 PNG (100 dpi; the HTML holds the only copy) and write the
    publication figures (the netmat, each edge's node maps, bar and scatter plots, motion and
    QC-FC, predictions) as SVG and PDF to ``folder/figures``."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    data = buffer.getvalue()
    if folder is not None:
        figures = folder / "figures"
        if name.startswith(_PUBLISHED):
            figures.mkdir(exist_ok=True)
            fig.savefig(figures / f"{name}.svg", format="svg", bbox_inches="tight", metadata={"Date": None})
            fig.savefig(figures / f"{name}.pdf", format="pdf", bbox_inches="tight",
                        metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return f'<img alt="{escape(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IcanetsError(f"cannot read {path}: {exc}") from None


def build_report(out: Path, *, overwrite: bool = True, max_components: int = 60) -> Path:
    """Build ``out/report.html`` (self-contained: it embeds every figure) and
    ``out/report/figures/`` (SVG and PDF of the publication figures) from a run's outputs.

    Needs ``out/analyses/stats.json``; uses ``out/netmats`` and ``out/ica`` when present.
    Every kept component's map is drawn (on the cortical surfaces for CIFTI), and the
    strongest rejected ones up to ``max_components`` figures in all.
    """
    out = Path(out)
    stats_path = out / "analyses" / "stats.json"
    if not stats_path.exists():
        raise IcanetsError(f"no analyses in {out} ({stats_path} is missing): run 'icanets run' first")
    stats = _read_json(stats_path)
    with atomic_folder(out / "report", overwrite=overwrite) as folder:
        sections = _sections(out, stats, folder, max_components)
        html = page(title=_title(out), sections=sections, summary=_summary(stats), methods=_methods(out, stats))
    tmp = out / f".report.html.{os.getpid()}"
    tmp.write_text(html)
    os.replace(tmp, out / "report.html")
    return out / "report.html"


def _title(out: Path) -> str:
    description = out / "dataset_description.json"
    if description.exists():
        return _read_json(description).get("Name", "icanets report")
    return "icanets report"


def _namer(stats: dict):
    """Node short name -> display name (``IC14 - R Visual``) from the run's node anatomy."""
    from icanets.io.atlas import display_name

    anatomy = pd.DataFrame(stats.get("nodes") or [])
    return lambda name: display_name(str(name), anatomy)


def _summary(stats: dict) -> str:
    named = _namer(stats)
    rows = []
    for analysis in stats["analyses"]:
        for contrast in analysis["contrasts"]:
            for hit in contrast["significant"]:
                floor = 1.0 / analysis["n_perm"]
                rows.append({"analysis": analysis["name"], "contrast": contrast["name"],
                             "node i": named(hit["name_i"]), "node j": named(hit["name_j"]),
                             "statistic": round(hit["statistic"], 3),
                             "p_unc": format_p(hit["p_unc"], floor), "p_FWE": format_p(hit["p_fwe"], floor),
                             "q_FDR": format_p(hit["q_fdr"]), "N": analysis["n_used"]})
    if not rows:
        return "<p id='no-findings'>No edge is significant at p<sub>FWE</sub> &lt; 0.05 in any analysis.</p>"
    return (f"<p>{len(rows)} significant result(s) at p<sub>FWE</sub> &lt; 0.05 "
            f"(FWE over all edges, per contrast; nothing is corrected across contrasts or analyses):</p>"
            + sortable_table(pd.DataFrame(rows), table_id="findings")
            + f"<p class='note'>{escape(P_FLOOR_NOTE)} of the analysis.</p>")


def _methods(out: Path, stats: dict) -> str:
    parts = []
    study = stats.get("study")
    if study:
        volumes = study["volumes"]
        span = (f"{volumes[0]}" if len(volumes) == 1 else f"{volumes[0]}-{volumes[-1]}") if volumes else "?"
        parts.append(f"Data: {study['n_subjects']} subjects, {study['n_runs']} {study.get('kind') or ''} BOLD runs "
                     f"of {span} volumes, TR {study['tr']:g} s.")
    ica_json = out / "ica" / "ica.json"
    if ica_json.exists():
        ica = _read_json(ica_json)["settings"]
        method = "exact temporal-concatenation PCA" if ica.get("exact") else \
            f"MIGP group PCA (internal dimension {ica['n_internal']})"
        kept = ica.get("n_kept", ica.get("n_signal"))
        labels = (f"{ica['n_noise']} were classified as artifacts "
                  f"({'from a labels file' if ica.get('labels_file') else 'automatically, on spatial and temporal features'})"
                  f" and {kept} kept as nodes ({ica.get('n_uncertain', 0)} of them uncertain)")
        threshold = ica.get("dr_threshold", 0)
        dr = ("Dual regression stage 1 (all components as regressors, demeaned" +
              (f"; each map restricted to its voxels with |z| > {threshold:g}" if threshold else "; whole maps") +
              ") gave one time series per component per run.")
        if ica.get("refine_maps") and not ica.get("maps"):
            dr = ("The maps were refined by back-reconstruction (the average over runs of their dual-regression "
                  "stage-2 maps). " + dr)
        space = _space_text(ica)
        if ica.get("maps"):
            parts.append(f"Group maps were given ({Path(ica['maps']).name}, {ica['dimension_used']} components) "
                         f"within {space}; {labels}. {dr}")
        else:
            prep = "voxel-wise variance normalisation" if ica.get("variance_normalise") else "no variance normalisation"
            if ica.get("highpass"):
                prep += f", a {ica['highpass']:g} s high-pass"
            if ica.get("run_components") is not None:
                rc = ica["run_components"]
                order_json = ica_json.parent / "model_order.json"
                dims = (_read_json(order_json).get("run_dimensions") or []) if order_json.exists() else []
                count = (f"{dims[0]}" if len(dims) == 1 else f"{min(dims)}-{max(dims)}" if dims else "")
                what = (f"{count} (a quarter of its time points, at least 50 in runs of 150 volumes or more)" if rc == "auto"
                        else f"{rc:g} of its time points" if isinstance(rc, float) else f"{rc}")
                prep += (f"; each run entered the group PCA as its strongest {what} spatial principal directions "
                         f"with unit weight")

            how = ("estimated by " + str(ica["dimension"])) if isinstance(ica["dimension"], str) else "fixed"
            stability = (f", FastICA from {ica['n_repeats']} starts clustered by ICASSO" if ica.get("n_repeats", 1) > 1
                         else "")
            contrast = (f" ({ica['approach']}, {ica['nonlinearity']})" if "approach" in ica else "")
            parts.append(f"Group ICA ({prep}; {method}; spatial FastICA{contrast}{stability}) of all runs gave "
                         f"{ica['dimension_used']} components ({how}) within {space}; "
                         f"{labels}. {dr}")
    nets_json = out / "netmats" / "netmats.json"
    if nets_json.exists():
        nets = _read_json(nets_json)["settings"]
        rtoz = {"fslnets": "Fisher's r-to-z scaled by an AR(1) null (FSLNets)", "fisher": "Fisher's r-to-z",
                "none": "no r-to-z"}.get(nets.get("rtoz") or "fslnets")
        parts.append(f"Network matrices: {nets['partial']} (rho = {nets['rho']}) and {nets['full']} per run, "
                     f"{rtoz}, averaged over each subject-session's runs; nodes ordered by Ward clustering of the "
                     f"group {nets['full']} z.")
    analyses = stats["analyses"]
    if analyses:
        n_perm = sorted({a["n_perm"] for a in analyses})
        covariates = sorted({c for a in analyses for c in (a.get("design_columns") or []) if c not in ("Intercept", "mean")})
        tails = sorted({c["tails"] for a in analyses for c in a["contrasts"] if c["kind"] == "t"})
        tails_text = {(1,): "t contrasts one-tailed, each tested in its own direction as in randomise",
                      (2,): "t contrasts two-tailed (|t|)"}.get(tuple(tails), "t contrasts one- or two-tailed "
                                                                              "as each analysis sets")
        across = [a["name"] for a in analyses if a.get("fwe_across")]
        scope = ("FWE via the maximum statistic over all edges, per contrast"
                 + (f" (over all t contrasts together in {', '.join(across)})" if across else "")
                 + "; nothing is corrected across contrasts or across the analyses")
        parts.append(f"{len(analyses)} edge-wise GLMs with permutation inference ({', '.join(map(str, n_perm))} "
                     f"relabellings; {analyses[0]['method']} for nuisance regressors; {tails_text}; {scope}); "
                     f"design columns used: {', '.join(covariates) or 'none'}. "
                     f"N per analysis: " + ", ".join(f"{a['name']} {a['n_used']}" for a in analyses) + ".")
    for item in stats.get("predictions", []):
        cv = (f"{item['repeats']} x repeated stratified {item['folds']}-fold" if item["cv"] == "kfold"
              else "leave-one-out")
        parts.append(f"Prediction {item['name']}: {item['target']} ({item['kind']}) from the edges with "
                     f"{item['model']}, {cv} cross-validation with every step fitted in the training folds "
                     f"(confounds: {', '.join(item['confounds']) or 'none'}), N = {item['n']}; p from "
                     f"{item['n_perm']} permutations of the whole procedure.")
    motion = stats.get("motion")
    if motion:
        settings = motion["settings"]
        text = (f"Head motion: framewise displacement (Power et al. 2012, {settings['head_radius']:g} mm head radius) "
                f"from {', '.join(settings['source'])} motion files, volumes over {settings['fd_threshold']:g} mm "
                f"counted as high-motion; ")
        text += (f"runs excluded when {'; or '.join(settings['rules'])} ({motion['n_excluded']} of {motion['n_runs']})"
                 if settings["rules"] else "no run excluded for motion")
        text += f"; {settings['cleaning']}"
        if settings.get("volumes_censored"):
            text += f" ({settings['volumes_censored']} of {settings['volumes']} volumes censored)"
        text += ("; mean FD a covariate in " + ", ".join(motion["covariate_in"]) if motion["covariate_in"]
                 else "; mean FD not a covariate of any analysis")
        text += ("; mean FD compared between groups (t-test) and over sessions (repeated-measures ANOVA, "
                 "Greenhouse-Geisser); QC-FC of the analysed edges partialling "
                 f"{', '.join(settings['qcfc_covariates']) or 'nothing'}.")
        parts.append(text)
    anova = stats.get("demographics", {}).get("rm_anova")
    if anova:
        parts.append(f"The clinical score over sessions was tested with a repeated-measures ANOVA with "
                     f"Greenhouse-Geisser correction ({anova['n']} subjects with every session).")
    return " ".join(escape(p) for p in parts)


def _space_text(ica: dict) -> str:
    """Where the decomposition was done: 'a mask of N voxels', or the grayordinates and surfaces."""
    grey = ica.get("grayordinates")
    if not grey:
        return f"a mask of {ica['n_voxels']} voxels"
    surfaces = ", ".join(Path(p).name for p in ica.get("surfaces") or [])
    text = (f"{ica['n_voxels']} CIFTI grayordinates ({grey['surface_vertices']} cortical surface vertices, "
            f"{grey['volume_voxels']} volume voxels)")
    if grey.get("surfaces_missing"):
        return text + f", without surfaces for {', '.join(grey['surfaces_missing'])}"
    return text + (f", with spatial features computed on the surfaces {surfaces}" if surfaces else "")


def _sections(out: Path, stats: dict, folder: Path, max_components: int) -> list[tuple[str, str]]:
    cifti = _cifti_maps(out)  # read once, for the component panels and the edges' node maps
    sections = [("Study", _study_section(stats))]
    if stats.get("motion"):
        sections.append(("Head motion", _motion_section(out, stats, folder)))
    if (out / "ica" / "components.tsv").exists():
        sections.append(("Group ICA", _ica_section(out, folder, max_components, cifti)))
    if (out / "netmats").exists():
        sections.append(("Network matrices", _netmat_section(out, folder)))
    if stats.get("nodes"):
        sections.append(("Nodes", _nodes_section(stats)))
    sections.append(("Analyses", _analyses_section(out, stats, folder)))
    sections.append(("Post-hoc", _posthoc_section(out, stats, folder, cifti)))
    if stats.get("predictions"):
        sections.append(("Prediction", _prediction_section(out, stats, folder)))
    sections.append(("Provenance", _provenance_section(out)))
    return sections


def _study_section(stats: dict) -> str:
    demo = stats.get("demographics", {})
    html = "<h3>Demographics and clinical measures</h3>" + table_html(pd.DataFrame(demo.get("table", [])))
    anova = demo.get("rm_anova")
    if anova:
        html += (f"<p>Repeated-measures ANOVA over sessions: F({anova['df1_gg']:.2f}, {anova['df2_gg']:.2f}) = "
                 f"{anova['f']:.2f}, p {_p_relation(anova['p_gg'], None)} (Greenhouse-Geisser epsilon {anova['epsilon']:.3f}; "
                 f"uncorrected F({anova['df1']:.0f}, {anova['df2']:.0f}), p {_p_relation(anova['p'], None)}); "
                 f"N = {anova['n']}, {escape(anova['rule'])}.</p>")
    return html + _notes(demo.get("notes", []))


def _nodes_section(stats: dict) -> str:
    nodes = pd.DataFrame(stats["nodes"])
    named = _namer(stats)
    atlases = [c for c in nodes.columns if c.endswith(" label")]
    shown = pd.DataFrame({"node": nodes["name"].map(named), "hemisphere": nodes["hemisphere"]})
    for axis in ("peak", "com"):
        shown[f"{'peak' if axis == 'peak' else 'centre of mass'} (x, y, z mm)"] = [
            ", ".join("n/a" if pd.isna(v) else f"{v:.0f}" for v in xyz)
            for xyz in nodes[[f"{axis}_x", f"{axis}_y", f"{axis}_z"]].to_numpy()]
    for column in atlases:
        atlas = column.removesuffix(" label")
        shown[atlas] = nodes[atlas]
    text = (f"<p>Where each node's map lies: its peak and the centre of mass of its positive part above the z "
            f"threshold, in the maps' world coordinates (MNI for MNI-space data), the hemisphere(s) it covers, and "
            + (f"the labels of {escape(', '.join(c.removesuffix(' label') for c in atlases))} holding most of its "
               f"suprathreshold mass (fraction, top 3)." if atlases else
               "no atlas labels: give one as <code>[anatomy] atlas</code> and <code>labels</code>, or have nilearn's "
               "Harvard-Oxford or Yeo atlases in its data folder.") + "</p>")
    return text + sortable_table(shown, table_id="nodes")


def _motion_section(out: Path, stats: dict, folder: Path) -> str:
    from icanets.viz.qc import plot_motion, plot_qcfc

    motion = stats["motion"]
    settings = motion["settings"]
    runs = motion["runs"]["mean_fd"]
    diff = settings.get("fd_file_max_difference")
    html = (f"<p>Framewise displacement (Power et al. 2012; rotations on a {settings['head_radius']:g} mm sphere) "
            f"of {motion['n_runs']} runs from {escape(', '.join(settings['source']))} motion files"
            + (f"; the files' own FD column used for {settings['fd_from_file']} runs, equal to the FD computed from "
               f"their parameters within {diff:.2g} mm" if settings["fd_from_file"] and diff is not None else "")
            + f". Mean FD per run: mean {runs['mean']:.3f} mm, median {runs['median']:.3f}, largest {runs['max']:.3f}; "
            f"volumes with FD &gt; {settings['fd_threshold']:g} mm are counted as high-motion.</p>")
    dvars_tsv = out / "ica" / "dvars.tsv"
    if dvars_tsv.exists():
        dv = pd.read_csv(dvars_tsv, sep="\t")["mean_dvars"].dropna()
        if len(dv):
            html += (f"<p>DVARS (root mean square over the mask of the volume-to-volume change, computed from the "
                     f"images as analysed, in their units): median over runs of the run mean {dv.median():.4g}, "
                     f"largest {dv.max():.4g} (per run: ica/dvars.tsv).</p>")
    html += (f"<p>Cleaning before group ICA, dual regression and the netmats: {escape(settings['cleaning'])}"
             + (f"; {settings['volumes_censored']} of {settings['volumes']} volumes "
                f"({100 * settings['volumes_censored'] / max(settings['volumes'], 1):.1f} %) censored"
                if settings.get("volumes_censored") else "") + ".</p>")
    rules = settings["rules"]
    if rules:
        html += (f"<p>Exclusion rules: runs with {escape('; or '.join(rules))}. {motion['n_excluded']} run(s) "
                 f"excluded:</p>" + (table_html(pd.DataFrame(motion["excluded"])) if motion["excluded"] else ""))
    else:
        html += "<p>No motion exclusion rules were set; every run was kept.</p>"
    html += "<h3>Mean FD by group and session</h3>" + table_html(pd.DataFrame(motion["table"]))
    test = motion.get("group_test")
    if test and "p" in test:
        means = test.get("means") or {}
        html += (f"<p>Between groups at {escape(str(test['session']))}: {escape(test['test'])}({test['df']}) = "
                 f"{test['statistic']:.2f}, p {_p_relation(test['p'], None)}"
                 + (" (" + ", ".join(f"{escape(g)} {m:.3f} mm" for g, m in means.items()) + ")" if means else "")
                 + ".</p>")
    anova = motion.get("rm_anova")
    if anova:
        html += (f"<p>Over sessions in the patients: repeated-measures ANOVA F({anova['df1_gg']:.2f}, "
                 f"{anova['df2_gg']:.2f}) = {anova['f']:.2f}, p {_p_relation(anova['p_gg'], None)} (Greenhouse-Geisser epsilon "
                 f"{anova['epsilon']:.3f}); N = {anova['n']}, {escape(anova['rule'])}.</p>")
    if motion.get("covariate_in"):
        html += (f"<p>Mean FD (at each analysis' session, or its change for a difference) is a covariate in: "
                 f"{escape(', '.join(motion['covariate_in']))}.</p>")
    sessions_tsv = out / "analyses" / "motion" / "sessions.tsv"
    if sessions_tsv.exists():
        frame = pd.read_csv(sessions_tsv, sep="\t", keep_default_na=False, na_values=[""])
        frame["session_id"] = frame["session_id"].fillna("")
        html += _png(plot_motion(frame, session_names=stats.get("sessions") or {}), folder, "motion")
    qc = [q for q in motion.get("qcfc", []) if "fraction_p_below_0.05" in q]
    if qc:
        rows = [{"edges": q.get("edges", ""), "session": q["session"], "N": q["n"],
                 "covariates": ", ".join(q["covariates"]) or "none",
                 "edges p < 0.05 (%)": round(100 * q["fraction_p_below_0.05"], 1),
                 "median |r|": round(q["median_abs_r"], 3),
                 "distance dependence (Spearman rho, p)": ("n/a" if q.get("distance_rho") is None
                                                           else f"{q['distance_rho']:.3f}, {q['distance_p']:.3g}")}
                for q in qc]
        html += ("<h3>QC-FC</h3><p>Across subjects, the partial correlation of every edge (of the analysed "
                 "netmat, and of the full correlation netmat, as QC-FC is usually quoted) with mean FD "
                 "(Ciric et al. 2017): about 5 % of edges reach p &lt; 0.05 when connectivity does not follow "
                 "motion; distance dependence is the correlation of QC-FC with the distance between the two "
                 "nodes' centres.</p>" + table_html(pd.DataFrame(rows)))
        entries = []
        for q in qc:
            path = out / "analyses" / "motion" / f"qcfc_{q.get('edges', '')}_{q['session_id'] or 'all'}.tsv"
            if path.exists():
                t = pd.read_csv(path, sep="\t")
                entries.append((f"{q.get('edges', '')} {q['session']}", t["r"].to_numpy(), t["p"].to_numpy()))
        if entries:
            html += _png(plot_qcfc(entries), folder, "qcfc")
    return html + _notes(motion.get("notes", []))


def _ica_section(out: Path, folder: Path, max_components: int, cifti=None) -> str:
    import nibabel as nib

    from icanets.viz import plot_component, plot_component_surface, plot_model_order

    table = pd.read_csv(out / "ica" / "components.tsv", sep="\t")
    ica = _read_json(out / "ica" / "ica.json")["settings"]
    counts = table["label"].value_counts()
    keep = table["keep"] if "keep" in table else table["label"] != "noise"
    html = (f"<p>{len(table)} components: {int(keep.sum())} kept as nodes ({int(counts.get('signal', 0))} signal, "
            f"{int(counts.get('uncertain', 0))} uncertain), {int(counts.get('noise', 0))} rejected as noise "
            f"({escape(str(table['label_source'].iloc[0]) if 'label_source' in table else 'automatic')}). "
            f"A component is noise when its map lies on the brain's edge or in CSF or has no spatial structure, or "
            f"when a temporal feature (high-frequency or drift power) fires and its map is not clean, or when it is "
            f"a misregistration shadow of another component (a bipolar map shaped like that component's spatial "
            f"gradient, its time course following that component's with a sign that changes across runs); a clean "
            f"map with one temporal warning, or an unstable component, is uncertain and kept. Features, labels and "
            f"reasons: <code>ica/components.tsv</code>; FIX labels file: <code>ica/labels.txt</code> (edit it and "
            f"pass it as <code>[ica] labels</code> to override).</p>")
    order_path = out / "ica" / "model_order.json"
    if order_path.exists():
        order = _read_json(order_path)
        others = ", ".join(f"{escape(k)} {v}" for k, v in order["estimates"].items() if k != order["method"])
        chosen = (f"estimated by {escape(order['method'])}" if order["method"] != "fixed"
                  else "fixed in the settings")
        curve = order.get("reproducibility")
        split = (f"Reproducibility: spatial ICA of two halves of the subjects at each candidate dimension; "
                 f"each dimension scores the components found in both (|r| >= {curve['threshold']:g}; mean over "
                 f"{curve.get('starts', 1)} FastICA start{'s' if curve.get('starts', 1) > 1 else ''}) minus "
                 f"{curve['penalty']:g} x those that are not, averaged over the dimensions within "
                 f"max(2, {curve.get('window', 0.1):g} x d) of each (neighbouring dimensions differ by a component "
                 f"or two by chance). The best averaged score is at {curve['best']}"
                 + (f"; at that dimension the classifier's spatial rules call {curve['nuisance']:g} map"
                    f"{'' if curve['nuisance'] == 1 else 's'} noise (mean of the two halves), and the order adds "
                    f"that many (room for structured nuisance). " if curve.get("nuisance") is not None else ". ")
                 if curve and curve.get("best") else "")
        note = f" {escape(order['note'])}." if order.get("note") else ""
        html += (f"<h3>Model order</h3><p>{order['dimension']} components, {chosen} (other estimates: {others}; "
                 f"at most {order['max_dimension']}).{note} {split}Consistency counts the group directions that more "
                 f"runs share than random subspaces would, assuming spatially white noise (limit "
                 f"{order.get('consistency_edge') or float('nan'):.3f}); Laplace "
                 f"and BIC use the eigenspectrum of {order['subset_runs']} runs ({order['subset_timepoints']} time "
                 f"points, {order['n_voxels']} voxels); MDL and AIC use the i.i.d.-subsampling correction of Li et "
                 f"al. (2007), run by run.</p>")
        eigen = pd.read_csv(out / "ica" / "eigenvalues.tsv", sep="\t")
        evidence = {c.removeprefix("log_evidence_"): eigen[c].dropna().to_numpy() for c in eigen.columns
                    if c.startswith("log_evidence_")}
        fig = plot_model_order(eigen["eigenvalue"].to_numpy(), evidence, dimension=order["dimension"],
                               estimates=order["estimates"], method=order["method"],
                               consistency=eigen["consistency"].to_numpy() if "consistency" in eigen else None,
                               edge=order.get("consistency_edge"), reproducibility=curve)
        html += _png(fig, folder, "model-order")
    if table["stability"].notna().any():
        html += (f"<p>Stability: ICASSO index over {ica.get('n_repeats', '?')} FastICA starts (1 = found identically "
                 f"from every start); median {table['stability'].median():.2f}, lowest "
                 f"{table['stability'].min():.2f}.</p>")
    if "partner_r" in table and table["partner_r"].notna().any():
        pairs = {}
        for row in table.itertuples():
            if row.partner > 0:
                pairs[tuple(sorted((int(row.component), int(row.partner))))] = float(row.partner_r)
        top = sorted(pairs.items(), key=lambda item: -abs(item[1]))[:5]
        html += ("<p>Most correlated pairs of components (the mean over runs of their stage-1 time courses' "
                 "correlation; columns <code>partner</code> and <code>partner_r</code>): "
                 + ", ".join(f"IC{a}-IC{b} {r:.2f}" for (a, b), r in top)
                 + ". ICA keeps maps apart, not time courses: a network the model order splits over two "
                 "components shows up as such a pair, but so can a node and an artifact that carries part of "
                 "its signal. A high pair is a reason to look at the two maps, not proof of a split (on "
                 "simulated data split nodes' pairs correlated at 0.69-0.75; on the demo, with every node "
                 "recovered and none split, the top pairs, a node with an artifact or an uncertain map, "
                 "reached 0.69-0.79).</p>")
    columns = ["component", "label", "keep", "reasons", "stability", "partner", "partner_r", "explained_variance"]
    shown = table[[c for c in columns if c in table] + [c for c in table.columns if c not in columns
                                                        and c != "label_source"]]
    shown = rounded(shown, 3).astype(object)
    html += sortable_table(shown.where(shown.notna(), ""), table_id="components")
    maps_path = out / "ica" / "melodic_IC.nii.gz"
    rules = ica.get("rules_not_applied") or []
    shadow = [r for r in rules if r.startswith("misregistration shadow")]
    others = [r for r in rules if r not in shadow]
    if others:
        html += (f"<p class='note'>Rules the classifier could not apply: {escape(', '.join(others))} (their features "
                 f"are unavailable: {escape(_unavailable_why(ica))}).</p>")
    if shadow:
        html += ("<p class='note'>The classifier could not look for misregistration shadows (bipolar components "
                 "shaped like another's spatial gradient): that needs a volume grid's axes (not CIFTI "
                 "grayordinates) and the time courses of at least 5 runs.</p>")
    if cifti is not None:
        html += _cifti_note(ica)
        if cifti[2]:
            html += (f"<p class='note'>The surfaces the ICA stage used cannot be read now ({escape(cifti[2])}): "
                     f"the maps are drawn without them.</p>")
    if maps_path.exists() or cifti is not None:
        maps = np.asarray(nib.load(maps_path).dataobj) if cifti is None else None
        series = sorted((out / "ica" / "dr_stage1").glob("*_timeseries.npy"))[:20]
        timecourses = [np.load(p) for p in series]
        figures = []
        kept = table["keep"].astype(bool) if "keep" in table else table["label"] != "noise"
        room = max(max_components - int(kept.sum()), 0)
        rejected = table.index[~kept][:room]
        shown = table[kept | table.index.isin(rejected)]
        for k, row in shown.iterrows():
            features = {c: row[c] for c in ("edge_fraction", "csf_fraction", "hf_fraction", "stability") if c in row
                        and pd.notna(row[c])}
            reasons = row["reasons"] if isinstance(row.get("reasons"), str) else ""
            title = f"IC{int(row['component'])}" + (f" ({reasons})" if reasons else "")
            threshold = (ica.get("classifier") or {}).get("z_threshold")
            if cifti is None:
                fig = plot_component(maps[..., k], [tc[:, k] for tc in timecourses], ica.get("tr", 1.0),
                                     title=title, features=features, label=row["label"], threshold=threshold)
            else:
                fig = plot_component_surface(_surface_map(cifti, k), [tc[:, k] for tc in timecourses],
                                             ica.get("tr", 1.0), title=title, features=features, label=row["label"],
                                             threshold=threshold)
            figures.append(_png(fig, folder, f"component-{int(row['component']):03d}"))
        if len(shown) < len(table):
            html += (f"<p class='note'>Showing every kept component ({int(kept.sum())}) and the {len(rejected)} "
                     f"strongest of the {int((~kept).sum())} rejected; all are listed in the table above.</p>")
        html += "<div class='thumbs'>" + "".join(figures) + "</div>"
    return html


def _netmat_section(out: Path, folder: Path) -> str:
    from icanets.viz import plot_netmat

    nets = _read_json(out / "netmats" / "netmats.json")["settings"]
    partial, full = nets["partial"], nets["full"]
    z_partial = np.load(out / "netmats" / f"group_{partial}_z.npy")
    z_full = np.load(out / "netmats" / f"group_{full}_z.npy")
    ward = pd.read_csv(out / "netmats" / "ward.tsv", sep="\t")
    linkage = np.load(out / "netmats" / "ward_linkage.npy")
    names = ward["name"].astype(str).tolist()
    fig = plot_netmat(z_full, z_partial, linkage, labels=ward["cluster"].to_numpy(), names=names,
                      lower_label=f"{full} (group z)", upper_label=f"{partial} (group z)")
    html = ("<p>Group-average netmats in z: full correlation below the diagonal, partial correlation above, "
            "each with its own symmetric colour bar; nodes in the order of Ward clustering of the full correlation "
            "(the dendrogram), clusters outlined. The values: <code>netmats/group_*_z.npy</code>.</p>")
    html += _png(fig, folder, "netmat")
    return html


def _analyses_section(out: Path, stats: dict, folder: Path) -> str:
    from icanets.viz import plot_null

    named = _namer(stats)
    html = ""
    for analysis in stats["analyses"]:
        name = analysis["name"]
        html += f"<h3 id='analysis-{escape(name)}'>{escape(name)}</h3>"
        html += f"<p>{escape(analysis.get('description') or '')}</p>"
        kind = "all distinct relabellings (exhaustive)" if analysis["exhaustive"] else "random relabellings"
        html += (f"<p>N = {analysis['n_used']} (of {analysis['n_subset']} selected); {analysis['n_perm']} {kind}, "
                 f"{escape(analysis['scheme'])}, {escape(analysis['method'])}.</p>")
        floor = 1.0 / analysis["n_perm"]
        tails = sorted({c["tails"] for c in analysis["contrasts"] if c["kind"] == "t"})
        scope = ("FWE over all edges and all t contrasts of the analysis" if analysis.get("fwe_across")
                 else "FWE over all edges, per contrast")
        html += (f"<p>{escape(scope)}; t contrasts "
                 f"{'one-tailed (each in its own direction)' if tails == [1] else 'two-tailed' if tails == [2] else 'as set'}"
                 f"; the smallest attainable p is 1/{analysis['n_perm']} = {escape(format_p(floor))}.</p>")
        if floor >= 0.05:
            html += (f"<p class='note'>This analysis cannot reach p &lt; 0.05: with {analysis['n_perm']} distinct "
                     f"relabellings its smallest p is {escape(format_p(floor))}.</p>")
        if analysis["dropped"]:
            html += f"<p class='note'>Left out: {escape('; '.join(analysis['dropped']))}</p>"
        null = out / "analyses" / "analyses" / name / "null_max.npy"
        results = out / "analyses" / "analyses" / name / "results.tsv"
        table = pd.read_csv(results, sep="\t") if results.exists() else None
        nulls = np.load(null) if null.exists() else None
        figures = []
        for k, contrast in enumerate(analysis["contrasts"]):
            if nulls is not None and table is not None:
                observed = table.loc[table["contrast"] == contrast["name"], "statistic"].to_numpy()
                observed = np.abs(observed) if contrast["tails"] == 2 else observed
                fig = plot_null(nulls[k], observed, title=f"{name}: {contrast['name']}", statistic=contrast["kind"])
                figures.append(_png(fig, folder, f"null-{name}-{k}"))
        html += "<div class='row'>" + "".join(figures) + "</div>"
        for contrast in analysis["contrasts"]:
            rows = [{"node i": named(h["name_i"]), "node j": named(h["name_j"]), "statistic": round(h["statistic"], 3),
                     "p_unc": format_p(h["p_unc"], floor), "p_FWE": format_p(h["p_fwe"], floor),
                     "q_FDR": format_p(h["q_fdr"])}
                    for h in contrast["significant"]]
            html += f"<h4>{escape(contrast['name'])} ({contrast['kind']})</h4>"
            if rows:
                html += sortable_table(pd.DataFrame(rows), table_id=f"sig-{name}-{contrast['name']}")
            else:
                html += (f"<p>No edge with p<sub>FWE</sub> &lt; 0.05 (smallest p<sub>FWE</sub> "
                         f"{escape(format_p(contrast['min_p_fwe'], floor))}).</p>")
            for comp in contrast.get("nbs", []):
                html += (f"<p>NBS component: {len(comp['edges'])} edges, {len(comp['nodes'])} nodes, size "
                         f"{comp['size']:.1f}, p<sub>FWE</sub> {_p_relation(comp['p_fwe'], None)}</p>")
    return html


def _interval_statement(item: dict) -> str:
    m = item["metrics"][item["primary"]]
    low, high = m["ci"]
    chance = {"r": 0.0, "q2": 0.0, "auc": 0.5, "balanced_accuracy": 0.5}.get(item["primary"])
    text = (f"With N = {item['n']}, the 95 % bootstrap interval of {item['primary']} is [{low:.2f}, {high:.2f}] "
            f"(width {high - low:.2f})")
    if chance is not None and low <= chance <= high:
        text += f": it includes chance ({chance:g}), so these data cannot tell this model from no model."
    elif chance is not None and high < chance:
        text += (f": below chance ({chance:g}), which is what cross-validation without predictive information "
                 f"gives at small N, not a reversed effect (the permutation p is the test).")
    else:
        text += "."
    text += " The interval resamples the out-of-fold predictions; it measures precision, not significance."
    if item["n"] < 100:
        text += (" Cross-validated estimates from fewer than about 100 subjects vary widely between samples "
                 "(Varoquaux 2018); a replication in an independent sample is what would establish the prediction.")
    return text


def _prediction_section(out: Path, stats: dict, folder: Path) -> str:
    from icanets.viz import plot_consensus_edges, plot_metric_null, plot_predicted, plot_roc

    html = ("<p>Each prediction is cross-validated: every step (confound regression, edge selection, scaling, "
            "penalty tuning) is fitted on the training fold only, and the p-value comes from running the whole "
            "procedure, folds included, on permuted targets. Unlike the post-hoc correlations above, these "
            "estimates are not circular.</p>")
    ward = out / "netmats" / "ward.tsv"
    order = np.argsort(pd.read_csv(ward, sep="\t")["position"].to_numpy()) if ward.exists() else None
    for item in stats["predictions"]:
        name = item["name"]
        base = out / "analyses" / "predict" / name
        html += f"<h3 id='predict-{escape(name)}'>{escape(name)}</h3><p>{escape(item.get('description') or '')}</p>"
        cv = (f"{item['repeats']} x repeated stratified {item['folds']}-fold" if item["cv"] == "kfold"
              else "leave-one-out")
        networks = {"both": "positive and negative networks", "positive": "positive network",
                    "negative": "negative network"}.get(item.get("network"), "")
        if item["model"] == "cpm":
            model = f"connectome-based predictive modelling (edges with p &lt; {item['threshold']:g}, {networks})"
        else:
            model = {"ridge": "ridge regression" if item["kind"] == "continuous" else "ridge classifier",
                     "logistic": "L2 logistic regression"}[item["model"]]
        where = (f"the change {escape(item['difference'][0])} &rarr; {escape(item['difference'][1])}"
                 if item.get("difference") else f"session {escape(item['session'] or '(the only one)')}")
        classes = (f" ({item['classes']['1']} x 1, {item['classes']['0']} x 0)" if item.get("classes") else "")
        html += (f"<p>Target <code>{escape(item['target'])}</code> ({item['kind']}{classes}) from the "
                 f"{item['n_edges']} edges of {where}; {model}; confounds regressed out in each training fold: "
                 f"{escape(', '.join(item['confounds']) or 'none')}; {cv} cross-validation (seed {item['seed']}); "
                 f"N = {item['n']}; {item['n_perm']} permutations of the whole procedure; {item['n_boot']} bootstrap "
                 f"resamples of the out-of-fold predictions.</p>")
        rows = [{"metric": k, "value": round(v["value"], 4), "95 % CI": f"[{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]",
                 "permutation p": format_p(v["p"], 1.0 / (item["n_perm"] + 1) if item.get("n_perm") else None)}
                for k, v in item["metrics"].items()]
        html += table_html(pd.DataFrame(rows))
        html += f"<p>{escape(_interval_statement(item))}</p>"
        figures = []
        predictions = base / "predictions.tsv"
        if predictions.exists():
            frame = pd.read_csv(predictions, sep="\t")
            if item["kind"] == "binary":
                scores = frame[[c for c in frame.columns if c.startswith("predicted_repeat")]].to_numpy().T
                fig = plot_roc(frame["observed"], scores, auc=item["metrics"]["auc"]["value"])
            else:
                fig = plot_predicted(frame["observed"], frame["predicted"], target=item["target"],
                                     r=item["metrics"]["r"]["value"])
            figures.append(_png(fig, folder, f"predict-{name}"))
        null = base / "null.npy"
        if null.exists() and item["n_perm"]:
            values = np.load(null)
            primary = list(item["metrics"]).index(item["primary"])
            m = item["metrics"][item["primary"]]
            figures.append(_png(plot_metric_null(values[:, primary], m["value"], metric=item["primary"], p=m["p"],
                                                 title=f"{name}: null of the whole procedure"),
                                folder, f"predict-null-{name}"))
        edges = pd.DataFrame(item["edges"])
        names = pd.read_csv(ward, sep="\t")["name"].astype(str).tolist() if ward.exists() else None
        if item["model"] == "cpm" and not edges.empty and names is not None:
            figures.append(_png(plot_consensus_edges(edges, names, order=order,
                                                     title=f"{name}: {len(edges)} consensus edge(s)"),
                                folder, f"predict-edges-{name}"))
        html += "<div class='row'>" + "".join(figures) + "</div>"
        if item["model"] == "cpm":
            html += (f"<h4>Consensus edges (selected in &ge; {item['consensus']:.0%} of the fits)</h4>" +
                     (table_html(edges[["name_i", "name_j", "sign", "fraction"]]) if not edges.empty
                      else "<p>None.</p>"))
        else:
            html += ("<h4>Largest mean weights (standardised edges; every edge is used)</h4>" +
                     table_html(edges[["name_i", "name_j", "mean_weight", "fraction"]].rename(
                         columns={"fraction": "sign agreement over fits"})) if not edges.empty else "")
        if item["dropped"]:
            html += f"<p class='note'>Left out: {escape('; '.join(item['dropped']))}</p>"
        html += _notes(item.get("notes", []))
    return html


def _cifti_maps(out: Path):
    """``(geometry, maps (K, n), problem)`` of a CIFTI run's group maps, with the surfaces the
    ICA stage was given (those still readable; ``problem`` says why any is not), or None for
    NIfTI."""
    from icanets.errors import StudyError
    from icanets.io.cifti import brain_models, with_surfaces

    path = out / "ica" / "melodic_IC.dscalar.nii"
    if not path.exists():
        return None
    import nibabel as nib

    geometry = brain_models(path)
    settings = _read_json(out / "ica" / "ica.json").get("settings", {})
    recorded = [Path(p) for p in settings.get("surfaces") or []]
    gone = [p for p in recorded if not p.is_file()]
    problem = f"not found: {', '.join(map(str, gone))}" if gone else None
    try:
        geometry = with_surfaces(geometry, [p for p in recorded if p.is_file()])
    except StudyError as exc:
        problem = str(exc)
    return geometry, np.asarray(nib.load(path).dataobj, dtype=float), problem


def _surface_map(cifti, index: int):
    from icanets.io.cifti import surface_values, volume_values
    from icanets.viz import SurfaceMap

    geometry, maps, _ = cifti
    hemispheres = {}
    for structure, surface in geometry.surfaces.items():
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "left", "CIFTI_STRUCTURE_CORTEX_RIGHT": "right"}.get(structure)
        if hemi is not None:
            hemispheres[hemi] = (surface.coordinates, surface.faces, surface_values(geometry, maps[index], structure))
    return SurfaceMap(hemispheres, volume_values(geometry, maps[index]))


def _cifti_note(ica: dict) -> str:
    grey = ica.get("grayordinates") or {}
    missing = grey.get("surfaces_missing") or []
    given = grey.get("surfaces_given") or []
    html = (f"<p>CIFTI data: {grey.get('surface_vertices', '?')} surface vertices and "
            f"{grey.get('volume_voxels', '?')} volume voxels in the mask. Maps are drawn on the cortical surfaces "
            f"given in <code>[bold] surfaces</code> (lateral and medial views) and the volume part as maximum-|z| "
            f"projections.</p>")
    if missing:
        html += (f"<p class='note'>No surface was given for {escape(', '.join(missing))}: its vertices cannot be "
                 f"placed, so they are not drawn, and the classifier's rim, cluster and smoothness features are "
                 f"unavailable. Give the subjects' or the group's midthickness surfaces (GIFTI) as "
                 f"<code>[bold] surfaces</code>.</p>")
    elif not given:
        html += "<p class='note'>These CIFTI data have no surface structures (volume only).</p>"
    return html


def _unavailable_why(ica: dict) -> str:
    grey = ica.get("grayordinates") or {}
    if grey.get("surfaces_missing"):
        return f"no surface given for {', '.join(grey['surfaces_missing'])}"
    if grey and not grey.get("volume_voxels"):
        return "CSF-like voxels are looked for in the volume part, and these data have none"
    return "see ica/components.tsv"


def _node_image(node_name: str, maps_img):
    """The 3D map of node ``IC<k>`` from the 4D group maps, or None."""
    import nibabel as nib

    if maps_img is None or not node_name.startswith("IC"):
        return None
    index = int(node_name[2:]) - 1
    data = np.asarray(maps_img.dataobj)[..., index]
    return nib.Nifti1Image(data.astype(np.float32), maps_img.affine)


def _posthoc_section(out: Path, stats: dict, folder: Path, cifti=None) -> str:
    import nibabel as nib

    from icanets.viz import plot_bars, plot_edge_nodes, plot_edge_nodes_surface, plot_scatter

    items = stats.get("posthoc", [])
    if not items:
        return "<p>No edge to follow up.</p>"
    maps_path = out / "ica" / "melodic_IC.nii.gz"
    maps_img = nib.load(maps_path) if maps_path.exists() else None
    sessions = stats.get("sessions", {})
    partial_mean = None
    nets_json = out / "netmats" / "netmats.json"
    if nets_json.exists():
        partial = _read_json(nets_json)["settings"]["partial"]
        partial_mean = np.load(out / "netmats" / f"group_{partial}_mean.npy")
    n_perm = {a["name"]: a["n_perm"] for a in stats.get("analyses", [])}
    html = ("<p class='note'>These edges were selected by the analyses above; tests on them here (group and "
            "session means, pairwise tests, clinical correlations, the mixed model) use the same data and are "
            "descriptive: their p-values are not corrected for the selection (circularity) nor across edges. "
            "Stars on the bar plots: * p &lt; 0.05, ** p &lt; 0.01, *** p &lt; 0.001 (Welch t between groups at a "
            "session, uncorrected).</p>")
    named = _namer(stats)
    for item in items:
        label = f"{named(item['name_i'])} -- {named(item['name_j'])}" if named(item["name_i"]) != item["name_i"] \
            else f"{item['name_i']} - {item['name_j']}"
        stem = f"edge-{item['node_i']}-{item['node_j']}"
        html += f"<h3 id='{escape(stem)}'>{escape(label)}</h3>"
        if item["hits"]:
            html += "<ul>" + "".join(
                f"<li>{escape(h['analysis'])}: {escape(h['contrast'])}, statistic {h['statistic']:.2f}, "
                f"p<sub>FWE</sub> {_p_relation(h['p_fwe'], n_perm.get(h['analysis']))} (N = {h['n']})</li>"
                for h in item["hits"]) + "</ul>"
        if partial_mean is not None:
            value = partial_mean[item["node_i"], item["node_j"]]
            html += (f"<p>Group-average partial correlation (z): {value:.2f} "
                     f"({'positive' if value > 0 else 'negative'}).</p>")
        img_i = _node_image(item["name_i"], maps_img)
        img_j = _node_image(item["name_j"], maps_img)
        figures = []
        if cifti is not None and item["name_i"].startswith("IC") and item["name_j"].startswith("IC"):
            figures.append(_png(plot_edge_nodes_surface(
                _surface_map(cifti, int(item["name_i"][2:]) - 1), _surface_map(cifti, int(item["name_j"][2:]) - 1),
                name_i=item["name_i"], name_j=item["name_j"], title=label), folder, f"{stem}-nodes"))
        elif img_i is not None and img_j is not None:
            figures.append(_png(plot_edge_nodes(img_i, img_j, name_i=item["name_i"], name_j=item["name_j"],
                                                title=label), folder, f"{stem}-nodes"))
        means = pd.DataFrame(item["means"])
        pairwise = pd.DataFrame(item["pairwise"])
        for grouping in dict.fromkeys(means.get("grouping", pd.Series(dtype=str))):
            sub = means[means["grouping"] == grouping]
            figures.append(_png(plot_bars(sub, session_names=sessions, pairwise=pairwise,
                                          title=f"{label}: mean FC by {grouping} and session (+- SE)"),
                                folder, f"{stem}-bars-{grouping}"))
        scatter = pd.DataFrame(item.get("scatter") or [])
        if not scatter.empty:
            for column, what in (("baseline", "baseline FC"), ("change", "change in FC")):
                figures.append(_png(plot_scatter(scatter["clinical"], scatter[column], xlabel="clinical change (%)",
                                                 ylabel=what, title=label), folder, f"{stem}-scatter-{column}"))
        html += "<div class='row'>" + "".join(figures) + "</div>"
        html += "<h4>Mean FC per group and session</h4>" + table_html(rounded(means))
        if not pairwise.empty:
            html += "<h4>Pairwise tests</h4>" + table_html(rounded(pairwise))
        if item.get("correlations"):
            html += "<h4>Correlations with clinical change</h4>" + table_html(rounded(pd.DataFrame(item["correlations"])))
        mixed = item.get("mixed")
        if mixed:
            inter = mixed["interaction"]
            html += (f"<p>Linear mixed model {escape(mixed['formula'])}: time x remission = {inter['coef']:.3f} "
                     f"(SE {inter['se']:.3f}, z = {inter['z']:.2f}, p {_p_relation(inter['p'], None)}); "
                     f"{mixed['n_subjects']} subjects, {mixed['n_observations']} observations"
                     f"{'' if mixed['converged'] else ' (did not converge)'}.</p>")
        html += _notes(item.get("notes", []))
    return html


def _p_relation(p: float, n_perm: int | None) -> str:
    """``= 0.0012`` or ``<= 0.0002`` (at the permutation floor), escaped."""
    return escape(p_relation(p, 1.0 / n_perm if n_perm else None))


def _notes(notes) -> str:
    return "".join(f"<p class='note'>{escape(note)}</p>" for note in notes)


def _provenance_section(out: Path) -> str:
    rows = []
    for stage in ("ica", "netmats", "analyses"):
        for name in ("ica.json", "netmats.json", "stats.json"):
            path = out / stage / name
            if path.exists():
                data = _read_json(path)
                data = data.get("provenance", data)
                software = data.get("software", {})
                rows.append({"stage": stage, "seed": data.get("seed"), "inputs": len(data.get("inputs", {})),
                             **{k: v for k, v in software.items()}})
    html = table_html(pd.DataFrame(rows)) if rows else "<p>No provenance found.</p>"
    record_path = out / "run.json"
    if record_path.exists():
        record = _read_json(record_path)
        html += (f"<p>Run of {escape(str(record.get('created')))}: <code>{escape(str(record.get('command')))}</code>; "
                 f"config {escape(str(record.get('config')))} ({escape(str(record.get('config_sha256')))}), "
                 f"icanets {escape(str(record.get('icanets')))}.</p>"
                 + table_html(pd.DataFrame([{"what": k, "seed": v} for k, v in record.get("seeds", {}).items()])))
    return html + f"<p>Report built by icanets {escape(__version__)}.</p>"
