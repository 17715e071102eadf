import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.stats.multitest import multipletests

from icanets.glm import Design, design_from_formula, fdr_bh, fit_statistics, permutation_glm


def _random_design(rng, n=40):
    data = pd.DataFrame({"group": rng.choice(["HC", "MDD"], n), "age": rng.normal(40, 10, n),
                         "sex": rng.choice(["F", "M"], n), "score": rng.normal(size=n)})
    return data


def test_t_and_f_equal_statsmodels_on_every_edge(rng):
    data = _random_design(rng)
    y = rng.normal(size=(len(data), 30)) + 0.3 * (data["group"] == "MDD").to_numpy()[:, None]
    design = design_from_formula("~ group + age + sex + score", data,
                                 {"mdd": "group[T.MDD]", "age": "age", "mix": "0.5*age - score"},
                                 ftests={"group_or_age": ["mdd", "age"]})
    stats = fit_statistics(y, design)
    for e in range(y.shape[1]):
        frame = data.assign(y=y[:, e])
        fit = smf.ols("y ~ group + age + sex + score", frame).fit()
        assert stats["mdd"][e] == pytest.approx(fit.tvalues["group[T.MDD]"], rel=1e-9)
        assert stats["age"][e] == pytest.approx(fit.tvalues["age"], rel=1e-9)
        mix = fit.t_test("0.5*age - score = 0")
        assert stats["mix"][e] == pytest.approx(float(np.squeeze(mix.tvalue)), rel=1e-9)
        f = fit.f_test("group[T.MDD] = 0, age = 0")
        assert stats["group_or_age"][e] == pytest.approx(float(np.squeeze(f.fvalue)), rel=1e-9)


def test_observed_statistic_of_the_permutation_glm_is_the_ols_t(rng):
    x = np.column_stack([np.ones(25), rng.normal(size=25), rng.normal(size=25)])
    y = rng.normal(size=(25, 12))
    design = Design(matrix=x, columns=("c", "a", "b"), contrasts=np.array([[0, 1.0, 0]]), contrast_names=("a",))
    result = permutation_glm(y, design, n_perm=50, seed=1)
    for e in range(12):
        assert result["a"].statistic[e] == pytest.approx(sm.OLS(y[:, e], x).fit().tvalues[1], rel=1e-9)


def test_fdr_matches_statsmodels(rng):
    p = rng.uniform(size=200) ** 2
    np.testing.assert_allclose(fdr_bh(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
