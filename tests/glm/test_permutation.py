import math

import numpy as np
import pytest
from scipy import stats

from icanets.glm import Design, DesignError, Exchangeability, NBSOptions, permutation_glm, plan_relabellings
from icanets.netmats import edges_to_matrix, matrix_to_edges


def _two_group(n_a, n_b, covariate=None):
    cols = [np.r_[np.ones(n_a), np.zeros(n_b)], np.r_[np.zeros(n_a), np.ones(n_b)]]
    names = ["A", "B"]
    if covariate is not None:
        cols.append(covariate)
        names.append("cov")
    x = np.column_stack(cols)
    c = np.zeros((1, x.shape[1]))
    c[0, :2] = [1, -1]
    return Design(matrix=x, columns=tuple(names), contrasts=c, contrast_names=("A>B",))


def _one_sample(n, blocks=None):
    return Design(matrix=np.ones((n, 1)), columns=("mean",), contrasts=np.array([[1.0]]), contrast_names=("mean",),
                  blocks=blocks)


def test_distinct_relabellings_are_counted_on_design_rows():
    d = _two_group(6, 6)
    plan = plan_relabellings(d.matrix, Exchangeability(), 5000)
    assert plan.exhaustive and plan.n == math.comb(12, 6)
    # identity first, all distinct relabelled designs
    assert np.array_equal(plan.perms[0], np.arange(12))
    designs = {tuple(np.argmax(d.matrix[np.argsort(p)], axis=1)) for p in plan.perms}
    assert len(designs) == 924
    flips = plan_relabellings(np.ones((8, 1)), Exchangeability(permute=False, flip=True), 5000)
    assert flips.exhaustive and flips.n == 256 and np.all(flips.signs[0] == 1)
    assert len({tuple(s) for s in flips.signs}) == 256
    blocks = np.repeat([0, 1, 2], 4)
    x = np.column_stack([np.ones(12), np.tile([1.0, 0, 0, 1], 3)])
    within = plan_relabellings(x, Exchangeability(blocks=blocks), 5000)
    assert within.n == 6**3 and within.exhaustive
    for perm in within.perms:
        assert np.all(blocks[perm] == blocks)
    random = plan_relabellings(np.column_stack([np.ones(30), np.arange(30.0)]), Exchangeability(), 100, seed=3)
    assert random.n == 100 and not random.exhaustive and random.n_distinct == math.factorial(30)
    assert np.array_equal(random.perms[0], np.arange(30))


def test_whole_block_permutation():
    blocks = np.repeat([0, 1, 2, 3], 3)
    x = np.column_stack([np.repeat([1.0, 1, 0, 0], 3), np.repeat([0.0, 0, 1, 1], 3)])
    plan = plan_relabellings(x, Exchangeability(blocks=blocks, whole_blocks=True), 1000)
    assert plan.n == math.comb(4, 2)
    for perm in plan.perms:
        # each block maps onto one block, keeping its internal order
        assert all(len(set(blocks[perm[blocks == b]])) == 1 for b in range(4))
    with pytest.raises(DesignError, match="blocks of equal size"):
        plan_relabellings(x, Exchangeability(blocks=np.repeat([0, 1, 2, 3], [2, 4, 3, 3]), whole_blocks=True), 10)


def test_results_do_not_depend_on_chunk_size_or_workers(rng):
    d = _two_group(15, 15, rng.normal(size=30))
    y = rng.normal(size=(30, 40))
    a = permutation_glm(y, d, n_perm=300, seed=2, chunk_size=7, n_jobs=1)
    b = permutation_glm(y, d, n_perm=300, seed=2, chunk_size=128, n_jobs=2)
    for field in ("statistic", "p_unc", "p_fwe", "null_max"):
        np.testing.assert_array_equal(getattr(a.contrasts[0], field), getattr(b.contrasts[0], field))
    c = permutation_glm(y, d, n_perm=300, seed=3)
    assert not np.array_equal(a.contrasts[0].null_max, c.contrasts[0].null_max)


def _fwe_and_uniformity(make, n_datasets=500, n_perm=100, seed=0):
    master = np.random.default_rng(seed)
    hits, first_p = 0, []
    for k in range(n_datasets):
        y, design, scheme = make(master)
        result = permutation_glm(y, design, n_perm=n_perm, exchangeability=scheme, seed=k, n_jobs=1)
        hits += bool(np.any(result.contrasts[0].p_fwe <= 0.05))
        first_p.append(result.contrasts[0].p_unc[0])
    return hits / n_datasets, np.array(first_p)


def _check_calibration(rate, p, n_datasets, n_perm):
    lo, hi = stats.binomtest(25, n_datasets).proportion_ci(0.95)  # interval around 0.05 * 500
    assert lo <= rate <= hi, f"FWE rate {rate} outside [{lo:.3f}, {hi:.3f}]"
    # p takes values k / n_perm; compare with the discrete uniform by a KS test on jittered values
    jitter = np.random.default_rng(1).uniform(-1, 0, p.size) / n_perm
    assert stats.kstest(p + jitter, "uniform").pvalue > 0.01


@pytest.mark.slow
def test_fwe_calibrated_with_correlated_nuisance():
    def make(rng):
        n = 30
        group = np.repeat([1.0, 0.0], 15)
        age = 0.8 * group + rng.normal(size=n)  # covariate correlated with the tested variable
        x = np.column_stack([np.ones(n), group, age])
        y = 2.0 * age[:, None] + rng.normal(size=(n, 20))  # nuisance effect, no group effect
        design = Design(matrix=x, columns=("c", "g", "age"), contrasts=np.array([[0, 1.0, 0]]), contrast_names=("g",))
        return y, design, Exchangeability()

    rate, p = _fwe_and_uniformity(make)
    _check_calibration(rate, p, 500, 100)


@pytest.mark.slow
def test_fwe_calibrated_for_sign_flips():
    def make(rng):
        y = rng.standard_t(5, size=(16, 20))  # symmetric, heavy-tailed paired differences
        return y, _one_sample(16), Exchangeability(permute=False, flip=True)

    rate, p = _fwe_and_uniformity(make)
    _check_calibration(rate, p, 500, 100)


@pytest.mark.slow
def test_fwe_calibrated_within_blocks():
    def make(rng):
        blocks = np.repeat(np.arange(6), 4)
        block_effect = rng.normal(0, 2, 6)[blocks]  # blocks differ in mean: only within-block exchangeable
        cond = np.tile([1.0, 0, 1, 0], 6)
        x = np.column_stack([cond, np.eye(6)[blocks]])
        y = block_effect[:, None] + rng.normal(size=(24, 20))
        design = Design(matrix=x, columns=("cond", *[f"b{k}" for k in range(6)]),
                        contrasts=np.r_[1.0, np.zeros(6)][None], contrast_names=("cond",), blocks=blocks)
        return y, design, Exchangeability(blocks=blocks)

    rate, p = _fwe_and_uniformity(make)
    _check_calibration(rate, p, 500, 100)


def test_planted_effect_found_by_every_method(rng):
    n = 40
    group = np.repeat([1.0, 0.0], 20)
    age = rng.normal(size=n) + 0.5 * group
    x = np.column_stack([np.ones(n), group, age])
    y = rng.normal(size=(n, 30)) + age[:, None]
    y[:, 3] += 2.5 * group
    design = Design(matrix=x, columns=("c", "g", "age"), contrasts=np.array([[0, 1.0, 0], [0, -1.0, 0]]),
                    contrast_names=("g+", "g-"))
    for method in ("freedman-lane", "ter-braak", "draper-stoneman"):
        result = permutation_glm(y, design, n_perm=500, method=method, tails=1, seed=1)
        assert result["g+"].p_fwe[3] < 0.01, method
        assert np.sum(result["g+"].p_fwe < 0.05) <= 2
        assert result["g-"].p_unc[3] > 0.9


def test_nbs_finds_a_planted_component(rng):
    n_nodes, n = 12, 30
    group = np.repeat([1.0, 0.0], 15)
    x = np.column_stack([np.ones(n), group])
    effect = np.zeros((n_nodes, n_nodes))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 0), (1, 3)]:
        effect[i, j] = effect[j, i] = 2.5
    y = rng.normal(size=(n, n_nodes * (n_nodes - 1) // 2)) + group[:, None] * matrix_to_edges(effect)
    design = Design(matrix=x, columns=("c", "g"), contrasts=np.array([[0, 1.0]]), contrast_names=("g",))
    result = permutation_glm(y, design, n_perm=300, nbs=NBSOptions(threshold=3.0), seed=4)
    best = result["g"].nbs[0]
    assert set(best.nodes.tolist()) >= {0, 1, 2, 3} and best.p_fwe < 0.05
    assert result["g"].nbs_null_max.shape == (300,)
    np.testing.assert_array_equal(edges_to_matrix(matrix_to_edges(effect)), effect)


def test_fwe_across_contrasts_is_more_conservative(rng):
    d = Design(matrix=np.column_stack([np.ones(20), rng.normal(size=20), rng.normal(size=20)]),
               columns=("c", "a", "b"), contrasts=np.array([[0, 1.0, 0], [0, 0, 1.0]]), contrast_names=("a", "b"))
    result = permutation_glm(rng.normal(size=(20, 15)), d, n_perm=200, fwe_across_contrasts=True)
    assert result.p_fwe_across.shape == (2, 15)
    assert np.all(result.p_fwe_across[0] >= result["a"].p_fwe - 1e-12)


def test_bad_inputs(rng):
    d = _one_sample(10)
    with pytest.raises(DesignError, match="data have 9 rows, the design 10 observations"):
        permutation_glm(rng.normal(size=(9, 3)), d)
    y = rng.normal(size=(10, 3))
    y[4, 2] = np.nan
    with pytest.raises(DesignError, match="non-finite values .* row 5, edge 2"):
        permutation_glm(y, d)
    with pytest.raises(DesignError, match="method must be one of"):
        permutation_glm(rng.normal(size=(10, 3)), d, method="smith")
    with pytest.raises(DesignError, match="tails must be 1 or 2"):
        permutation_glm(rng.normal(size=(10, 3)), d, tails=3)


def test_f_test_of_one_contrast_is_f_equal_t_squared_with_its_own_p(rng):
    # Issue 12.4: an F-test made of one contrast row was reported as a one-tailed t.
    n = 16
    x = np.column_stack([np.ones(n), np.r_[np.zeros(8), np.ones(8)]])
    y = rng.normal(size=(n, 30))
    y[8:, :5] += 5.0
    y[8:, 5:10] -= 5.0  # effects in both directions: an F (two-sided in t) must see both
    d = Design(matrix=x, columns=("mean", "g"), contrasts=np.array([[0.0, 1.0]]), contrast_names=("g",),
               ftests=((0,),), ftest_names=("F_g",))
    result = permutation_glm(y, d, n_perm=2000, tails=1, seed=4)
    t, f = result["g"], result["F_g"]
    assert f.kind == "F" and f.tails == 1
    np.testing.assert_allclose(f.statistic, t.statistic**2, rtol=1e-10)
    fit = stats.f_oneway(y[:8], y[8:])  # one-way ANOVA F for two groups = t^2
    np.testing.assert_allclose(f.statistic, fit.statistic, rtol=1e-9)
    two = permutation_glm(y, d, n_perm=2000, tails=2, seed=4)["g"]
    np.testing.assert_allclose(f.p_unc, two.p_unc)
    np.testing.assert_allclose(f.p_fwe, two.p_fwe)
    np.testing.assert_allclose(f.null_max, two.null_max**2, rtol=1e-10)
    assert np.all(f.p_fwe[5:10] < 0.05) and np.all(t.p_fwe[5:10] > 0.5)


@pytest.mark.parametrize("intercept", [True, False])
def test_no_p_value_below_one_over_n_perm_even_for_an_exact_fit(rng, intercept):
    # Issue 12.5: an edge the design fits exactly had t = inf (or NaN) and p = 0.
    import warnings

    n = 12
    group = np.r_[np.zeros(6), np.ones(6)]
    x = np.column_stack([np.ones(n), group]) if intercept else (group - 0.5)[:, None]
    y = rng.normal(size=(n, 6))
    y[:, 0] = x[:, -1]  # residuals exactly 0
    y[:, 1] = 3.0 * intercept + 4.0 * x[:, -1]  # residuals 0 up to rounding
    c = np.zeros((1, x.shape[1]))
    c[0, -1] = 1
    d = Design(matrix=x, columns=("mean", "g")[-x.shape[1]:], contrasts=c, contrast_names=("g",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for tails in (1, 2):
            r = permutation_glm(y, d, n_perm=200, tails=tails, seed=1)["g"]
            assert np.all(r.statistic[:2] > 1e6), r.statistic  # +inf or huge, never NaN
            assert r.p_unc.min() >= 1 / 200 and r.p_fwe.min() >= 1 / 200
            assert np.all(r.p_fwe >= r.p_unc) and np.all(r.p_unc[:2] <= 0.02)


def test_one_tails_default_across_api_cli_and_config():
    # Issue 12.14: `icanets glm` and permutation_glm defaulted to two tails, study analyses to one.
    import inspect

    from icanets._defaults import DEFAULT_TAILS
    from icanets.cli import _parser
    from icanets.config import AnalysisSpec

    assert DEFAULT_TAILS == 1
    assert inspect.signature(permutation_glm).parameters["tails"].default == DEFAULT_TAILS
    args = _parser().parse_args(["glm", "--edges", "e.npy", "--out", "o"])
    assert args.tails == DEFAULT_TAILS
    assert AnalysisSpec.__dataclass_fields__["tails"].default == DEFAULT_TAILS
