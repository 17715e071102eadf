import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from sklearn.covariance import EmpiricalCovariance, GraphicalLasso, LedoitWolf

from icanets.netmats import (
    NetmatsError,
    amplitude,
    correlation,
    covariance,
    glasso_partial,
    ledoit_wolf_partial,
    partial_correlation,
    rcorr,
    ridgep,
    tangent,
)
from icanets.simulate import condition_partial, get_preset, node_timecourses

OFF = lambda n: ~np.eye(n, dtype=bool)  # noqa: E731


def _series(rng, t=300, n=8):
    mixing = rng.normal(size=(n, n)) * 0.4 + np.eye(n)
    return rng.normal(size=(t, n)) @ mixing + 5.0


def naive_ridgep(ts, rho):
    """Deliberately plain: loops over elements, no broadcasting."""
    t, n = ts.shape
    x = ts - ts.mean(axis=0)
    c = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            c[i, j] = np.sum(x[:, i] * x[:, j]) / (t - 1)
    rms = np.sqrt(np.mean([c[i, i] ** 2 for i in range(n)]))
    p = np.linalg.inv(c / rms + rho * np.eye(n))
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i, j] = -p[i, j] / np.sqrt(abs(p[i, i] * p[j, j]))
    return out


def test_covariance_amplitude_correlation_match_numpy(rng):
    ts = _series(rng)
    np.testing.assert_allclose(covariance(ts), np.cov(ts, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(amplitude(ts), ts.std(axis=0, ddof=1), rtol=1e-12)
    corr = correlation(ts)
    n = ts.shape[1]
    np.testing.assert_allclose(corr[OFF(n)], np.corrcoef(ts, rowvar=False)[OFF(n)], atol=1e-13)
    assert np.all(np.diag(corr) == 0)


def test_rcorr_matches_explicit_regression(rng):
    ts = _series(rng)
    x = ts - ts.mean(axis=0)
    g = x.mean(axis=1, keepdims=True)
    resid = x - g @ np.linalg.lstsq(g, x, rcond=None)[0]
    n = ts.shape[1]
    np.testing.assert_allclose(rcorr(ts)[OFF(n)], np.corrcoef(resid, rowvar=False)[OFF(n)], atol=1e-12)


def test_partial_matches_nilearn_with_empirical_covariance(rng):
    ts = _series(rng)
    ref = ConnectivityMeasure(kind="partial correlation", cov_estimator=EmpiricalCovariance(),
                              standardize=False).fit_transform([ts])[0]
    n = ts.shape[1]
    np.testing.assert_allclose(partial_correlation(ts)[OFF(n)], ref[OFF(n)], atol=1e-10)


def test_ridgep_matches_naive_and_tends_to_partial(rng):
    ts = _series(rng)
    np.testing.assert_allclose(ridgep(ts, 0.1), naive_ridgep(ts, 0.1), atol=1e-12)
    exact = partial_correlation(ts)
    errors = [np.abs(ridgep(ts, rho) - exact).max() for rho in (1e-1, 1e-2, 1e-3, 1e-5, 1e-8)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-4 and errors[-1] < errors[0] * 1e-4


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_glasso_matches_scikit_learn():
    # Fixed data: scikit-learn's solver does not converge on every random draw.
    preset = get_preset("tiny")
    from icanets.simulate._network import make_network

    truth = condition_partial(make_network(preset, np.random.default_rng(0)), preset, "HC", "ses-1")
    ts = node_timecourses(truth, 500, 2.0, (0.005, 0.2), np.random.default_rng(1))
    standardized = (ts - ts.mean(axis=0)) / ts.std(axis=0)
    model = GraphicalLasso(alpha=0.05, max_iter=200, tol=1e-5).fit(standardized)
    p = model.precision_
    d = np.sqrt(np.diag(p))
    ref = -p / np.outer(d, d)
    np.testing.assert_allclose(glasso_partial(ts, 0.05)[OFF(6)], ref[OFF(6)], atol=1e-6)


def test_ledoit_wolf_partial_matches_scikit_learn(rng):
    ts = _series(rng, t=40, n=10)
    p = LedoitWolf().fit(ts).precision_
    d = np.sqrt(np.diag(p))
    np.testing.assert_allclose(ledoit_wolf_partial(ts)[OFF(10)], (-p / np.outer(d, d))[OFF(10)], atol=1e-10)


def test_tangent_matches_nilearn(rng):
    runs = [_series(rng, t=120, n=5) for _ in range(6)]
    ref = ConnectivityMeasure(kind="tangent").fit_transform(runs)
    ours, mean = tangent(runs)
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    assert np.allclose(mean, mean.T)


def test_batches_equal_single_runs(rng):
    runs = np.stack([_series(rng) for _ in range(4)])
    for function in (correlation, partial_correlation, ridgep, rcorr, covariance):
        batch = function(runs)
        for k in range(4):
            np.testing.assert_allclose(batch[k], function(runs[k]), atol=1e-13)


def test_ridgep_error_shrinks_with_more_time_points():
    preset = get_preset("demo")
    from icanets.simulate._network import make_network

    truth = condition_partial(make_network(preset, np.random.default_rng(2)), preset, "HC", "ses-1")
    iu = np.triu_indices(len(truth), 1)
    errors = []
    for t in (250, 1000, 4000, 16000):
        series = node_timecourses(truth, t, 2.0, (0.005, 0.2), np.random.default_rng(t))
        errors.append(np.sqrt(np.mean((ridgep(series, 0.01)[iu] - truth[iu]) ** 2)))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_partial_needs_more_time_points_than_nodes(rng):
    ts = rng.normal(size=(10, 12))
    with pytest.raises(NetmatsError, match="needs more time points than nodes .* Use 'ridgep'"):
        partial_correlation(ts)
    assert np.all(np.isfinite(ridgep(ts)))
    with pytest.raises(NetmatsError, match="rho must be a non-negative number"):
        ridgep(ts, -1)
