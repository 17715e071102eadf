import numpy as np
import pytest
from scipy import signal

from icanets.io.timeseries import RunTimeSeries
from icanets.netmats import NetmatsError, compute_netmats, fisher_z, fslnets_z_scale, median_ar1


def _ar1_runs(n_runs, t, n, a, seed):
    rng = np.random.default_rng(seed)
    return [RunTimeSeries(signal.lfilter([1], [1, -a], rng.normal(size=(t, n)), axis=0), f"sub-{k:02d}")
            for k in range(n_runs)]


def test_fisher_z():
    r = np.array([-0.5, 0.0, 0.3, 0.99])
    np.testing.assert_allclose(fisher_z(r), 0.5 * np.log((1 + r) / (1 - r)))
    with pytest.raises(NetmatsError, match="correlations must lie in"):
        fisher_z(np.array([1.5]))


def test_median_ar1_recovers_the_coefficient():
    runs = _ar1_runs(4, 4000, 10, 0.6, 0)
    assert median_ar1([r.data for r in runs]) == pytest.approx(0.6, abs=0.02)


def test_white_noise_scale_is_sqrt_t_minus_3():
    # Fisher z of a correlation of white noise has SD 1 / sqrt(T - 3).
    scale = fslnets_z_scale([(200, 30)] * 10, 0.0, "full", seed=1)
    assert scale == pytest.approx(np.sqrt(197), rel=0.03)


@pytest.mark.parametrize("method", ["corr", "partial"])
def test_fslnets_z_is_unit_variance_under_the_null(method):
    runs = _ar1_runs(12, 300, 20, 0.7, 5)
    result = compute_netmats(runs, method, seed=3)
    off = ~np.eye(20, dtype=bool)
    assert result.matrices[:, off].std() == pytest.approx(1.0, abs=0.06)
    assert result.ar1 == pytest.approx(0.7, abs=0.05)


def test_scale_is_deterministic_and_independent_of_run_order():
    runs = _ar1_runs(5, 100, 8, 0.3, 9)
    a = compute_netmats(runs, "ridgep", seed=4)
    b = compute_netmats(runs[::-1], "ridgep", seed=4)
    assert a.z_scale == b.z_scale
    np.testing.assert_array_equal(a.matrices, b.matrices[::-1])
    c = compute_netmats(runs, "ridgep", seed=5)
    assert c.z_scale != a.z_scale
    state = np.random.get_state()[1].copy()
    compute_netmats(runs, "corr", seed=4)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global random state untouched


def test_rtoz_options():
    runs = _ar1_runs(3, 80, 5, 0.2, 1)
    fisher = compute_netmats(runs, "corr", rtoz="fisher")
    raw = compute_netmats(runs, "corr", rtoz="none")
    np.testing.assert_allclose(fisher.matrices, np.arctanh(raw.matrices))
    assert compute_netmats(runs, "cov").rtoz == "none"
    with pytest.raises(NetmatsError, match="does not give correlations"):
        compute_netmats(runs, "cov", rtoz="fslnets")
    with pytest.raises(NetmatsError, match="unknown netmat method 'pearson'"):
        compute_netmats(runs, "pearson")


def test_workers_do_not_change_results():
    runs = _ar1_runs(6, 90, 7, 0.3, 2)
    one = compute_netmats(runs, "ridgep", seed=1, n_jobs=1)
    two = compute_netmats(runs, "ridgep", seed=1, n_jobs=2)
    np.testing.assert_array_equal(one.matrices, two.matrices)
    assert one.z_scale == two.z_scale and one.null_runs == 6


@pytest.mark.slow
def test_default_null_is_one_per_run_and_a_stratified_pool_is_unbiased():
    # Issue 12.6: the pooled null (32 runs at the ends of the sorted lengths) was 5 % off on
    # real unequal runs (122-156 time points, 116 AAL nodes). Default: one null run per run.
    import inspect

    from icanets.netmats.ztransform import null_run_shapes

    assert inspect.signature(compute_netmats).parameters["null_runs"].default is None
    lengths = np.random.default_rng(0).integers(122, 157, size=240)
    shapes = [(int(t), 90) for t in lengths]
    ends = [shapes[k] for k in np.argsort(lengths)[np.r_[0:16, -16:0]]]  # the old pick, at the ends

    def mean_scale(runs, offset, null_runs=None):  # over seeds: one draw's Monte Carlo error is ~1 %
        return np.mean([fslnets_z_scale(runs, 0.3, "partial", seed=offset + s, null_runs=null_runs)
                        for s in range(8)])

    per_run = mean_scale(shapes, 0)
    assert abs(mean_scale(shapes, 10, null_runs=32) / per_run - 1) < 0.01
    assert mean_scale(ends, 20) / per_run - 1 < -0.03
    picked = sorted(t for t, _ in null_run_shapes(shapes, 32))
    assert np.quantile(lengths, 0.01) <= picked[0] and picked[-1] <= np.quantile(lengths, 0.99)
