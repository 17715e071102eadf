import numpy as np
import pytest

from icanets.io.timeseries import RunTimeSeries
from icanets.netmats import NetmatsError, check_timeseries, clean_nodes, prepare_timeseries, variance_normalise


def test_variance_normalisation_modes(rng):
    data = rng.normal(3.0, [1.0, 2.0, 5.0], size=(200, 3))
    none = variance_normalise(data, 0)
    np.testing.assert_allclose(none.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(none, data - data.mean(axis=0))
    run = variance_normalise(data, 1)
    assert run.std() == pytest.approx(1.0)
    np.testing.assert_allclose(run / none, 1 / none.std())
    node = variance_normalise(data, 2)
    np.testing.assert_allclose(node.std(axis=0), 1.0)
    with pytest.raises(NetmatsError, match="varnorm must be 0"):
        variance_normalise(data, 3)


def test_aggressive_cleaning_is_least_squares_residual(rng):
    import statsmodels.api as sm

    data = rng.normal(size=(120, 6))
    good = np.array([0, 2, 5])
    cleaned = clean_nodes(data, good, aggressive=True)
    bad = data[:, [1, 3, 4]]
    for k, g in enumerate(good):
        np.testing.assert_allclose(cleaned[:, k], sm.OLS(data[:, g], bad).fit().resid, atol=1e-10)
    np.testing.assert_array_equal(clean_nodes(data, good), data[:, good])
    with pytest.raises(NetmatsError, match="good node indices must lie in 0..5"):
        clean_nodes(data, [0, 6])


def _run(data, source="run1.txt"):
    return RunTimeSeries(data, "sub-01", "ses-1", "1", source)


def test_bad_time_series_are_named(rng):
    data = rng.normal(size=(50, 4))
    nan = data.copy()
    nan[7, 2] = np.nan
    with pytest.raises(NetmatsError, match=r"run1.txt: non-finite value \(nan\) in node 2 \(C\) at time point 7"):
        check_timeseries([_run(nan)], node_names=list("ABCD"))
    constant = data.copy()
    constant[:, 3] = 1.5
    with pytest.raises(NetmatsError, match=r"run1.txt: constant time series in node\(s\) 3"):
        check_timeseries([_run(constant)])
    with pytest.raises(NetmatsError, match="node counts differ across runs: run2.txt has 3 nodes"):
        check_timeseries([_run(data), _run(data[:, :3], "run2.txt")])
    with pytest.raises(NetmatsError, match="no runs given"):
        check_timeseries([])


def test_prepare_does_not_modify_inputs(rng):
    data = rng.normal(5, 1, size=(30, 4))
    copy = data.copy()
    out = prepare_timeseries([_run(data)], varnorm=2, good=[1, 3], aggressive=True)
    np.testing.assert_array_equal(data, copy)
    assert out[0].data.shape == (30, 2)


def test_duplicated_node_is_named_when_read(rng):
    # Issue 12.7: two identical columns passed silently (z of 111-133) or failed later naming nothing.
    from icanets.io.timeseries import RunTimeSeries
    from icanets.netmats import NetmatsError, check_timeseries

    data = rng.normal(size=(100, 6))
    data[:, 4] = data[:, 1]
    run = RunTimeSeries(data=data, subject="sub-07", session="ses-2", source="dr/sub-07_ses-2_timeseries.npy")
    with pytest.raises(NetmatsError, match=r"sub-07_ses-2_timeseries.npy: nodes 1 \(IC2\) and 4 \(IC5\) have identical"):
        check_timeseries([run], node_names=[f"IC{k + 1}" for k in range(6)])
    data[:, 4] = -2 * data[:, 1] + 3
    with pytest.raises(NetmatsError, match="sign-flipped"):
        check_timeseries([run.with_data(data)])
    data[:, 4] = rng.normal(size=100)
    check_timeseries([run.with_data(data)])
