import json
import warnings

import numpy as np
import pandas as pd
import pytest

from icanets.config import config_from_dict, load_config
from icanets.glm import DesignError
from icanets.glm.analysis import run_analysis
from icanets.io.timeseries import RunTimeSeries
from icanets.netmats import average_runs, compute_netmats
from icanets.pipeline import analyses_stage
from icanets.study import load_study


@pytest.fixture(scope="module")
def demo_netmats(demo_study):
    """Netmats of the demo study from its true node time courses (the planted network)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=load_config(demo_study.config))
    runs = []
    for run in study.runs:
        stem = run.name.removesuffix("_bold")
        data = np.load(demo_study.truth / "timeseries" / f"{stem}_nodes.npy")
        runs.append(RunTimeSeries(data, run.subject, run.session, run.run_label, stem))
    names = [f"N{k + 1:03d}" for k in range(runs[0].n_nodes)]
    table = average_runs(compute_netmats(runs, "ridgep", seed=0), node_names=names)
    planted = pd.read_csv(demo_study.truth / "planted_edges.tsv", sep="\t").set_index("effect")
    return study, table, planted


def _edge(table, i, j):
    return int(table.edges.index[(table.edges["node_i"] == i) & (table.edges["node_j"] == j)][0])


@pytest.mark.slow
def test_planted_effects_found_in_the_right_analyses(demo_netmats, tmp_path):
    study, table, planted = demo_netmats
    # The GLMs and their post-hoc statistics; the demo's prediction (its permutation null is most
    # of the stage's time) is tested by tests/predict and the demo run.
    stats = analyses_stage(study, table, tmp_path / "out", analyses=list(study.config.analyses))
    significant = {(a["name"], c["name"]): {h["edge"] for h in c["significant"]}
                   for a in stats["analyses"] for c in a["contrasts"]}
    group = _edge(table, *planted.loc["group", ["node_i", "node_j"]])
    treatment = _edge(table, *planted.loc["treatment", ["node_i", "node_j"]])
    interaction = _edge(table, *planted.loc["interaction", ["node_i", "node_j"]])
    assert group in significant[("hc_vs_mdd_tp1", "HC>MDD")]
    assert treatment in significant[("tp1_vs_tp3", "TP1>TP3")]
    assert interaction in significant[("delta_remit", "nonremit>remit")]
    assert interaction in significant[("remit_tp1", "remit>nonremit")]
    for wrong in [("hc_vs_mdd_tp1", "MDD>HC"), ("tp1_vs_tp3", "TP3>TP1"), ("delta_remit", "remit>nonremit")]:
        assert not significant[wrong] & {group, treatment, interaction}
    planted_set = {group, treatment, interaction}
    false_positives = sum(len(edges - planted_set) for edges in significant.values())
    assert false_positives <= 2
    post = {item["edge"]: item for item in stats["posthoc"]}
    corr = {(c["measure"], c["method"]): c for c in post[interaction]["correlations"]}
    assert corr[("baseline FC", "pearson")]["r"] > 0.3 and corr[("baseline FC", "pearson")]["p"] < 0.05
    assert corr[("change in FC", "pearson")]["r"] < -0.3 and corr[("change in FC", "pearson")]["p"] < 0.05
    assert post[interaction]["mixed"]["interaction"]["p"] < 0.05
    means = pd.DataFrame(post[group]["means"])
    hc = means[(means["group"] == "HC") & (means["session"] == "ses-1")].iloc[0]
    mdd = means[(means["group"] == "MDD") & (means["session"] == "ses-1")].iloc[0]
    assert hc["mean"] > mdd["mean"] and hc["n"] == 20 and mdd["n"] == 30
    anova = stats["demographics"]["rm_anova"]
    assert anova["p_gg"] < 0.05 and 0.5 <= anova["epsilon"] <= 1
    assert (tmp_path / "out" / "findings.txt").read_text().count("p_FWE") >= 4
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["analyses"][0]["n_used"] == 50


def test_analysis_errors_are_clear(demo_netmats):
    study, table, _ = demo_netmats
    variables = study.variables()

    def spec(**body):
        return config_from_dict({"sessions": {"roles": {"TP1": "ses-1", "TP3": "ses-3"}},
                                 "analyses": {"a": body}}).analyses["a"]

    with pytest.raises(DesignError, match=r"session 'ses-7' \(ses-7\) is not in the edge table"):
        run_analysis(spec(session="ses-7", formula="~ group", contrasts={"x": "group[T.MDD]"}), table, variables)
    with pytest.raises(DesignError, match="subset \"group == 'XX'\" selects no subjects"):
        run_analysis(spec(subset="group == 'XX'", session="ses-1", formula="~ age", contrasts={"x": "age"}),
                     table, variables)
    with pytest.raises(DesignError, match=r"analysis .a. \(2 observations, subset 2\): the design has 2 observations for 2"):
        run_analysis(spec(subset="age < 21", session="ses-1", formula="~ age", contrasts={"x": "age"}), table,
                     variables.assign(age=np.r_[20.0, 20.5, np.full(len(variables) - 2, 50.0)]))
    with pytest.raises(DesignError, match="uses unknown variable"):
        run_analysis(spec(session="ses-1", formula="~ weight", contrasts={"x": "weight"}), table, variables)
    result = run_analysis(spec(subset="group == 'MDD'", session="ses-1", formula="~ remitter",
                               contrasts={"r": "remitter"}, n_perm=50), table, variables,
                          resolve_session=lambda s: {"TP1": "ses-1"}.get(s, s))
    assert result.n_used == 25 and result.n_subset == 30
    assert sum("remitter missing" in d for d in result.dropped) == 5


def test_posthoc_of_a_named_edge_with_an_uncomputable_clinical_variable(tiny_study, tmp_path):
    # Issue 12.9: a constant or all-n/a derived clinical variable crashed the analyses stage;
    # issue 12.10: [posthoc] edges = [["IC1", "IC2"]] was refused by a generic type check.
    text = tiny_study.config.read_text().replace('dataset = "bids"', f'dataset = "{tiny_study.bids}"')
    text = text.replace('mask = "mask.nii.gz"', f'mask = "{tiny_study.mask}"')
    text = text.replace('hdrs_change_pct = "100 * (hdrs[TP1] - hdrs[TP3]) / hdrs[TP1]"',
                        'hdrs_change_pct = "100 * (hdrs[TP1] - hdrs[TP3]) / 0"')
    text = text.replace('female = "F"', 'female = "F"\nedges = [["N001", "N002"], ["3", "4"]]')
    config_path = tmp_path / "study-broken.toml"
    config_path.write_text(text)
    config = load_config(config_path)
    assert config.posthoc.edges == (("N001", "N002"), ("3", "4"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=config)
    runs = []
    for run in study.runs:
        stem = run.name.removesuffix("_bold")
        runs.append(RunTimeSeries(np.load(tiny_study.truth / "timeseries" / f"{stem}_nodes.npy"), run.subject,
                                  run.session, run.run_label, stem))
    names = [f"N{k + 1:03d}" for k in range(runs[0].n_nodes)]
    table = average_runs(compute_netmats(runs, "ridgep", seed=0), node_names=names)
    for analysis in study.config.analyses.values():
        object.__setattr__(analysis, "n_perm", 200)
    stats = analyses_stage(study, table, tmp_path / "out")
    named = [item for item in stats["posthoc"] if not item["hits"]]
    assert {(i["name_i"], i["name_j"]) for i in named} >= {("N001", "N002"), ("N004", "N005")}
    for item in stats["posthoc"]:
        assert not item["correlations"]
        assert any("clinical correlations not computable: 'hdrs_change_pct' has no finite value" in n
                   for n in item["notes"])
    findings = (tmp_path / "out" / "findings.txt").read_text()
    assert "N001 - N002: clinical correlations not computable" in findings
