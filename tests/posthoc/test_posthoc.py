import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from icanets.posthoc import correlation, demographics_table, group_test, pairwise_tests, rm_anova, time_by_remission


def test_rm_anova_matches_pingouin_with_gg(rng):
    wide = pd.DataFrame(rng.normal(size=(15, 3)) * [1.0, 2.0, 3.5] + [20, 14, 9], columns=["ses-1", "ses-2", "ses-3"])
    wide.iloc[2, 1] = np.nan  # a missing session: complete cases only
    ours = rm_anova(wide)
    long = wide.dropna().reset_index().melt(id_vars="index", var_name="session", value_name="hdrs")
    ref = pg.rm_anova(long, dv="hdrs", within="session", subject="index", correction=True)
    assert ours.n == 14
    assert ours.f == pytest.approx(ref["F"].iloc[0], rel=1e-9)
    assert ours.df1 == ref["ddof1"].iloc[0] and ours.df2 == ref["ddof2"].iloc[0]
    assert ours.epsilon == pytest.approx(ref["eps"].iloc[0], rel=1e-9)
    assert ours.p_gg == pytest.approx(ref["p_GG_corr"].iloc[0], rel=1e-6)


def test_group_tests_match_scipy(rng):
    values = pd.Series(rng.normal(size=30))
    groups = pd.Series(["a"] * 12 + ["b"] * 18)
    t = group_test(values, groups)
    ref = stats.ttest_ind(values[:12], values[12:])
    assert t["statistic"] == pytest.approx(ref.statistic) and t["df"] == 28 and t["p"] == pytest.approx(ref.pvalue)
    sex = pd.Series(["F"] * 7 + ["M"] * 5 + ["F"] * 8 + ["M"] * 10)
    c = group_test(sex, groups)
    chi2, p, dof, _ = stats.chi2_contingency([[7, 8], [5, 10]], correction=False)
    assert c["statistic"] == pytest.approx(chi2) and c["df"] == dof and c["p"] == pytest.approx(p)


def test_correlation_with_closed_form_interval(rng):
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(size=40)
    y[3] = np.nan
    r = correlation(x, y)
    ref_r, ref_p = stats.pearsonr(np.delete(x, 3), np.delete(y, 3))
    z = np.arctanh(ref_r)
    assert r["n"] == 39 and r["r"] == pytest.approx(ref_r) and r["p"] == pytest.approx(ref_p)
    assert r["ci_low"] == pytest.approx(np.tanh(z - 1.959964 / 6.0), abs=1e-6)
    s = correlation(x, y, method="spearman")
    assert s["r"] == pytest.approx(stats.spearmanr(np.delete(x, 3), np.delete(y, 3))[0])


def test_mixed_model_interaction_is_difference_of_mean_changes(rng):
    """Balanced complete data: the REML fixed effect equals the closed-form contrast."""
    subjects = [f"sub-{i:02d}" for i in range(20)]
    remission = pd.Series([1.0] * 10 + [0.0] * 10, index=subjects)
    rows = []
    for s in subjects:
        base = rng.normal()
        for ses, t in (("ses-1", 0), ("ses-3", 1)):
            rows.append((s, ses, base + (-0.8 if remission[s] else 0.5) * t + 0.3 * rng.normal()))
    long = pd.DataFrame(rows, columns=["participant_id", "session_id", "fc"])
    out = time_by_remission(long, remission, subjects, "ses-1", "ses-3")
    wide = long.pivot(index="participant_id", columns="session_id", values="fc")
    change = wide["ses-3"] - wide["ses-1"]
    expected = change[remission == 1].mean() - change[remission == 0].mean()
    assert out["interaction"]["coef"] == pytest.approx(expected, rel=1e-6)
    frame = long.assign(time=(long["session_id"] == "ses-3").astype(float),
                        remission=remission.reindex(long["participant_id"]).to_numpy())
    ref = smf.mixedlm("fc ~ time * remission", frame, groups=frame["participant_id"]).fit(reml=True)
    assert out["interaction"]["p"] == pytest.approx(ref.pvalues["time:remission"], rel=1e-6)
    assert out["n_subjects"] == 20 and out["n_observations"] == 40


def test_pairwise_tests_and_demographics(rng):
    long = pd.DataFrame({"participant_id": [f"s{i}" for i in range(10)] * 2,
                         "session_id": ["ses-1"] * 10 + ["ses-2"] * 10, "fc": rng.normal(size=20)})
    groups = pd.Series(["A"] * 5 + ["B"] * 5, index=[f"s{i}" for i in range(10)])
    table = pairwise_tests(long, groups, ["ses-1", "ses-2"])
    welch = table[table["comparison"] == "A vs B at ses-1"].iloc[0]
    ref = stats.ttest_ind(long["fc"][:5], long["fc"][5:10], equal_var=False)
    assert welch["statistic"] == pytest.approx(ref.statistic) and welch["p"] == pytest.approx(ref.pvalue)
    paired = table[table["comparison"] == "A: ses-2 vs ses-1"].iloc[0]
    assert paired["statistic"] == pytest.approx(stats.ttest_rel(long["fc"][10:15], long["fc"][:5]).statistic)
    variables = pd.DataFrame({"group": ["HC"] * 4 + ["MDD"] * 6, "age": [30.0, 32, 31, np.nan, 40, 41, 39, 45, 38, 44],
                              "sex": list("FFMF") + list("MMFMFM")}, index=[f"s{i}" for i in range(10)])
    demo, tests = demographics_table(variables, "group", numeric=("age",), sex="sex")
    demo = demo.set_index("variable")
    assert demo.loc["N", "HC"] == "4" and demo.loc["sex (% F)", "HC"] == "75.0"
    assert demo.loc["age", "HC"].endswith("[N=3]")
    assert {t["variable"] for t in tests} == {"sex", "age"}
