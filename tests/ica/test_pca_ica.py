import numpy as np
import pytest
from scipy.linalg import subspace_angles

from icanets.ica.data import ICAError
from icanets.ica.ica import spatial_ica
from icanets.ica.pca import concat_pca, concat_spectrum, estimate_dimension, laplace_evidence, migp


def _runs(rng, n_runs=12, t=80, v=600, k=5, noise=0.5):
    """Runs sharing k sparse, non-Gaussian spatial sources with run-specific time courses."""
    sources = rng.laplace(size=(k, v)) * (rng.random((k, v)) < 0.2)
    runs = []
    for _ in range(n_runs):
        tc = rng.normal(size=(t, k)) * np.linspace(3, 1.5, k)
        data = tc @ sources + noise * rng.normal(size=(t, v))
        runs.append(data - data.mean(axis=0))
    return runs, sources


def test_migp_matches_exact_pca_subspace(rng):
    runs, _ = _runs(rng)
    exact = concat_pca(runs, n_components=5)
    approx = migp(runs, n_internal=160, n_components=5)
    angles = np.degrees(subspace_angles(exact.components.T, approx.components.T))
    print(f"principal angles MIGP vs exact (degrees): {np.round(angles, 3)}")
    assert angles.max() < 2.0
    np.testing.assert_allclose(approx.eigenvalues, exact.eigenvalues, rtol=0.05)


def test_migp_memory_does_not_grow_with_runs(rng):
    for n_runs in (4, 40):
        runs, _ = _runs(rng, n_runs=n_runs, t=50, v=200)
        assert migp(iter(runs), n_internal=100).peak_rows <= 100 + 50


def test_ica_recovers_sources_up_to_sign_and_order(rng):
    runs, sources = _runs(rng, noise=0.2)
    for pca in (concat_pca(runs, n_components=5), migp(runs, n_internal=160)):
        ica = spatial_ica(pca, 5, seed=0)
        corr = np.abs(np.corrcoef(np.vstack([sources, ica.maps]))[:5, 5:])
        assert corr.max(axis=1).min() > 0.95
        assert len(set(corr.argmax(axis=1))) == 5
        assert np.all(np.diff(ica.explained_variance) <= 1e-12)  # sorted, strongest first
        from scipy import stats

        assert np.all(stats.skew(ica.maps, axis=1) > 0)  # heavier tail positive


def test_ica_from_migp_and_exact_agree(rng):
    runs, _ = _runs(rng, noise=0.2)
    a = spatial_ica(concat_pca(runs, n_components=5), 5, seed=1).maps
    b = spatial_ica(migp(runs, n_internal=160), 5, seed=1).maps
    corr = np.abs(np.corrcoef(np.vstack([a, b]))[:5, 5:])
    assert corr.max(axis=1).min() > 0.99


def test_stability_analysis(rng):
    runs, _ = _runs(rng, noise=0.2)
    ica = spatial_ica(concat_pca(runs, n_components=5), 5, seed=0, n_repeats=4)
    assert ica.stability.shape == (5,) and np.all(ica.stability > 0.8)


def test_laplace_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.decomposition._pca")
    if not hasattr(sk, "_assess_dimension"):
        pytest.skip("scikit-learn's private _assess_dimension is not available")
    spectrum = np.sort(np.random.default_rng(0).gamma(2.0, size=30))[::-1]
    for rank in (1, 5, 12, 29):
        assert laplace_evidence(spectrum, rank, 500) == pytest.approx(sk._assess_dimension(spectrum, rank, 500), rel=1e-9)


def test_dimension_estimate_finds_the_planted_rank(rng):
    runs, _ = _runs(rng, n_runs=6, t=100, v=800, k=5, noise=1.0)
    spectrum = concat_spectrum(runs)
    for method in ("laplace", "bic"):
        dim, evidence = estimate_dimension(spectrum, 800, method=method, max_rank=40)
        assert dim == 5, method
    with pytest.raises(ICAError, match="must be 'laplace' or 'bic'"):
        estimate_dimension(spectrum, 800, method="aic")


def _migp_by_stacking(runs, n_internal):
    """MIGP written the plain way: stack each run under the internal matrix, reduce when too tall."""
    from icanets.ica.pca import _top_rows

    w = None
    for x in runs:
        w = x.copy() if w is None else np.vstack([w, x])
        if w.shape[0] > n_internal:
            w = _top_rows(w, n_internal)
    return w


def test_migp_buffer_and_absorb_equal_stacking_exactly(rng):
    from icanets.ica.pca import MIGPAccumulator

    runs = [rng.normal(size=(int(rng.integers(30, 60)), 300)) for _ in range(9)]
    a, b = MIGPAccumulator(80), MIGPAccumulator(80)
    for i, x in enumerate(runs):
        (a if i % 2 else b).add(x)
    np.testing.assert_array_equal(a._w, _migp_by_stacking(runs[1::2], 80))
    merged = a.merge(b)
    both = _migp_by_stacking([a._w, b._w], 80)  # the second half's rows after the first's
    np.testing.assert_array_equal(merged._w, both)
    result = merged.result()
    absorbed = a.absorb(b)
    assert absorbed is a and b._w is None and b.n_runs == 5  # b is freed, its counts kept
    np.testing.assert_array_equal(absorbed._w, both)
    again = absorbed.result()
    np.testing.assert_array_equal(again.components, result.components)
    np.testing.assert_array_equal(again.eigenvalues, result.eigenvalues)
    counts = (9, sum(len(x) for x in runs), 160)  # runs, time points, rows held at most
    assert (again.n_runs, again.n_timepoints, again.peak_rows) == counts
    assert (result.n_runs, result.n_timepoints, result.peak_rows) == counts
    assert absorbed.result(7).components.flags.owndata  # a slice of the components is not a view of all of them
    absorbed.release()
    with pytest.raises(ICAError, match="no runs"):
        absorbed.result()


def test_preprocess_in_place_equals_copy(rng):
    from icanets.ica.data import preprocess_run

    data = rng.normal(size=(40, 120)) + 5.0
    copy, mean, scale = preprocess_run(data.copy(), highpass=60.0, tr=2.0)
    work = data.copy()
    inplace, mean2, scale2 = preprocess_run(work, highpass=60.0, tr=2.0, overwrite=True)
    assert inplace is work
    np.testing.assert_array_equal(inplace, copy)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(scale, scale2)
    untouched = data.copy()
    preprocess_run(untouched)
    np.testing.assert_array_equal(untouched, data)  # without overwrite the caller's array is left as it was
