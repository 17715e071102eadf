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
