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


@pytest.mark.parametrize("approach,nonlinearity", [("deflation", "pow3"), ("symmetric", "tanh"),
                                                    ("deflation", "gauss")])
def test_ica_recovers_sources_up_to_sign_and_order(rng, approach, nonlinearity):
    runs, sources = _runs(rng, noise=0.2)
    for pca in (concat_pca(runs, n_components=5), migp(runs, n_internal=160)):
        ica = spatial_ica(pca, 5, seed=0, approach=approach, nonlinearity=nonlinearity)
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


@pytest.mark.parametrize("nonlinearity", ["pow3", "tanh", "gauss"])
def test_batched_deflation_equals_scikit_learn_deflation(rng, nonlinearity):
    """All starts' deflationary FastICA iterated together equals scikit-learn's
    ``algorithm="deflation"`` from each start's seed alone, vector by vector."""
    import warnings

    from sklearn.decomposition import FastICA

    from icanets.ica.ica import _SKLEARN_FUN, _deflation_starts

    v, k = 3000, 8
    mixed = rng.laplace(size=(v, k)) ** 3 @ rng.normal(size=(k, k))
    u, _, _ = np.linalg.svd(mixed - mixed.mean(axis=0), full_matrices=False)
    x = u * np.sqrt(v)
    seeds = [3, 4, 11]
    # max_iter 5: some vectors stop at the limit, which is counted per start (and no start
    # gives up, as scikit-learn does not).
    for max_iter, tol in ((500, 1e-8), (5, 1e-12)):
        unmixing, unconverged = _deflation_starts(x, k, seeds, nonlinearity, max_iter, tol, failure_limit=k + 1)
        for w, late, seed in zip(unmixing, unconverged, seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = FastICA(k, whiten=False, fun=_SKLEARN_FUN[nonlinearity], algorithm="deflation",
                                    max_iter=max_iter, tol=tol, random_state=seed).fit(x)
            np.testing.assert_allclose(w, reference.components_, atol=1e-9)
            assert late == 0 or reference.n_iter_ == max_iter  # scikit-learn's n_iter_: the most any vector took
        assert (unconverged.max() > 0) == (max_iter == 5)


def test_a_deflation_start_gives_up_after_consecutive_failures(rng):
    """After ``failure_limit`` vectors in a row stop at ``max_iter``, a start's remaining vectors
    are its starting vectors made orthonormal to the earlier ones, without iterating; until then
    it is the plain deflation."""
    from icanets.ica.ica import FAILURE_LIMIT, _deflation_starts

    v, k = 3000, 8
    mixed = rng.laplace(size=(v, k)) ** 3 @ rng.normal(size=(k, k))
    u, _, _ = np.linalg.svd(mixed - mixed.mean(axis=0), full_matrices=False)
    x = u * np.sqrt(v)
    full, _ = _deflation_starts(x, k, [3, 4], "tanh", 5, 1e-12, failure_limit=k + 1)
    given_up, unconverged = _deflation_starts(x, k, [3, 4], "tanh", 5, 1e-12)
    assert FAILURE_LIMIT == 3 and unconverged.tolist() == [k, k]
    np.testing.assert_allclose(given_up[:, :3], full[:, :3], atol=1e-12)
    for w, seed in zip(given_up, [3, 4]):
        np.testing.assert_allclose(w @ w.T, np.eye(k), atol=1e-10)
        start = np.random.RandomState(seed).normal(size=(k, k))
        q, _ = np.linalg.qr(np.vstack([w[:3], start[3:]]).T)  # Gram-Schmidt of the rest against the first 3
        np.testing.assert_allclose(np.abs(np.sum(q.T[3:] * w[3:], axis=1)), 1.0, atol=1e-10)
    # converging vectors reset the count: with room to converge nothing is given up
    assert _deflation_starts(x, k, [3], "tanh", 500, 1e-8)[1].tolist() == [0]


def test_ica_approach_and_nonlinearity_are_checked(rng):
    runs, _ = _runs(rng, noise=0.2)
    pca = concat_pca(runs, n_components=5)
    with pytest.raises(ICAError, match="approach must be one of deflation, symmetric"):
        spatial_ica(pca, 5, approach="defl")
    with pytest.raises(ICAError, match="nonlinearity must be one of pow3, tanh, gauss"):
        spatial_ica(pca, 5, nonlinearity="cube")


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
    """MIGP written the plain way, in float64: stack each run under the internal matrix and reduce
    it to its top eigen-directions whenever it is taller than ``n_internal`` (as MELODIC)."""
    w = None
    for x in runs:
        w = x.copy() if w is None else np.vstack([w, x])
        if w.shape[0] > n_internal:
            values, vectors = np.linalg.eigh(w @ w.T)
            w = vectors[:, np.argsort(values)[::-1][:n_internal]].T @ w
    return w


def _scatter(pca):
    """``W' W`` of a group PCA (its components weighted by their eigenvalues): unique, whatever
    the signs and rotation within equal eigenvalues."""
    return (pca.components.T * (pca.eigenvalues * pca.n_timepoints)) @ pca.components


def test_migp_and_absorb_equal_plain_stacking(rng):
    from icanets.ica.pca import MIGPAccumulator

    runs = [rng.normal(size=(int(rng.integers(30, 60)), 300)) for _ in range(9)]
    a, b = MIGPAccumulator(80, dtype=np.float64), MIGPAccumulator(80, dtype=np.float64)
    for i, x in enumerate(runs):
        (a if i % 2 else b).add(x)
    reference = _migp_by_stacking(runs[1::2], 80)
    np.testing.assert_allclose(_scatter(a.result()), reference.T @ reference, rtol=1e-9, atol=1e-9)
    a, b = MIGPAccumulator(80, dtype=np.float64), MIGPAccumulator(80, dtype=np.float64)
    for i, x in enumerate(runs):
        (a if i % 2 else b).add(x)
    # The second half's internal rows after the first's, like one more run.
    both = _migp_by_stacking([_migp_by_stacking(runs[1::2], 80), _migp_by_stacking(runs[0::2], 80)], 80)
    absorbed = a.absorb(b)
    assert absorbed is a and b._w is None and b.n_runs == 5  # b is freed, its counts kept
    result = absorbed.result()
    np.testing.assert_allclose(_scatter(result), both.T @ both, rtol=1e-9, atol=1e-9)
    assert (result.n_runs, result.n_timepoints) == (9, sum(len(x) for x in runs))
    assert result.peak_rows == 160  # the two internal matrices, never more
    np.testing.assert_allclose(result.components @ result.components.T, np.eye(80), atol=1e-12)  # orthonormal
    absorbed.release()
    with pytest.raises(ICAError, match="no runs"):
        absorbed.result()


def test_migp_float32_and_blocks_agree_with_float64_per_run(rng):
    runs, _ = _runs(rng, n_runs=16, t=60, v=500, k=5, noise=1.0)
    exact = concat_pca(runs, n_components=5)
    per_run = migp(runs, n_internal=120, n_components=5, dtype=np.float64)
    single = migp(runs, n_internal=120, n_components=5)
    np.testing.assert_allclose(single.eigenvalues, per_run.eigenvalues, rtol=1e-5)
    assert np.degrees(subspace_angles(single.components.T, per_run.components.T)).max() < 0.01
    assert single.components.dtype == np.float64
    np.testing.assert_allclose(single.components @ single.components.T, np.eye(5), atol=1e-12)
    blocked = migp(runs, n_internal=120, n_components=5, block_rows=120)
    assert blocked.peak_rows <= 120 + 120
    angle = {name: np.degrees(subspace_angles(exact.components.T, p.components.T)).max()
             for name, p in (("per run", per_run), ("blocked", blocked))}
    print(f"largest principal angle to the exact PCA (degrees): {angle}")
    assert angle["blocked"] <= angle["per run"] + 0.01  # fewer truncations: no further from the exact PCA


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


def test_float32_preprocessing_and_run_subspace_agree_with_float64(rng):
    """A run in raw units (mean image ~10^4): float32 preprocessing (in place, Grams summed in
    float64) gives float64's scales and data to ~1e-6, and its run subspace is float64's."""
    from icanets.ica.data import preprocess_run
    from icanets.ica.pca import run_subspace

    runs, _ = _runs(rng, n_runs=1, t=100, v=9000, k=5, noise=1.0)
    raw = 1e4 + 500 * rng.random(9000) + 30 * runs[0]
    single = raw.astype(np.float32)
    exact, mean, scale = preprocess_run(single.astype(np.float64), highpass=60.0, tr=2.0)
    low, mean32, scale32 = preprocess_run(single.copy(), highpass=60.0, tr=2.0, overwrite=True)
    assert low.dtype == np.float32 and mean32.dtype == scale32.dtype == np.float64
    np.testing.assert_allclose(mean32, mean, rtol=1e-12)
    # The noise level removes the run's top 25 temporal components, most of them inside the noise
    # bulk, where a relative perturbation of 1e-8 already moves the scales by ~3e-6: float32's
    # Gram (~1e-6) moves them by ~2e-5.
    np.testing.assert_allclose(scale32, scale, rtol=2e-4)
    assert np.abs(low - exact).max() <= 1e-3 * exact.std()
    rows64, rows32 = run_subspace(exact, 5), run_subspace(low, 5)  # its 5 sources' subspace
    assert rows32.dtype == np.float32
    assert np.degrees(subspace_angles(rows32.T.astype(np.float64), rows64.T)).max() < 0.01


def test_icasso_from_unmixing_equals_clustering_the_maps(rng):
    """ICASSO through the starts' unmixing matrices gives the clusters, centrotypes and stability
    that clustering the starts' maps themselves (np.corrcoef) gives."""
    from icanets.ica.ica import _fastica, _icasso

    runs, _ = _runs(rng, noise=0.5)
    basis = concat_pca(runs, n_components=5).components
    x = basis.T * np.sqrt(basis.shape[1])
    from sklearn.decomposition import FastICA

    unmixing = np.vstack([_fastica(x, 5, s, 1000, 1e-4)[0] for s in range(4)])
    maps = np.vstack([FastICA(5, whiten=False, random_state=s, max_iter=1000).fit_transform(x).T for s in range(4)])
    np.testing.assert_allclose(maps, (x @ unmixing.T).T, atol=1e-10)
    chosen, stability = _icasso(unmixing, x, 5)
    similarity = np.abs(np.corrcoef(maps))
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    distance = np.clip(1.0 - similarity, 0, None)
    np.fill_diagonal(distance, 0.0)
    labels = hierarchy.fcluster(hierarchy.linkage(squareform(distance, checks=False), method="average"), 5,
                                criterion="maxclust")
    expected = []
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        others = np.flatnonzero(labels != cluster)
        within = similarity[np.ix_(members, members)]
        intra = within[~np.eye(members.size, dtype=bool)].mean() if members.size > 1 else 1.0
        expected.append((members[np.argmax(within.sum(axis=1))], intra - similarity[np.ix_(members, others)].mean()))
    np.testing.assert_allclose(chosen, unmixing[[m for m, _ in expected]], atol=0)
    np.testing.assert_allclose(stability, [i for _, i in expected], atol=1e-10)
