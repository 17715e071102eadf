"""Model-order estimation: the i.i.d.-subsampling correction (Li et al. 2007) and the criteria."""

import numpy as np
import pytest
from scipy import ndimage

from icanets.ica.data import ICAError
from icanets.ica.order import IID_ENTROPY, entropy_rate, iid_depth, itc_criteria, run_order


def _naive_criteria(eigenvalues, n):
    """MDL and AIC written out term by term (Wax & Kailath 1985, real-valued data)."""
    lam = np.sort(eigenvalues)[::-1]
    p = lam.size
    mdl, aic = [], []
    for k in range(p - 1):
        tail = lam[k:]
        log_likelihood = -n / 2.0 * (p - k) * np.log(np.mean(tail) / np.exp(np.mean(np.log(tail))))
        free = 1 + p * k - k * (k - 1) / 2.0
        mdl.append(-log_likelihood + free * np.log(n) / 2.0)
        aic.append(-2.0 * log_likelihood + 2.0 * free)
    return np.array(mdl), np.array(aic)


def test_criteria_match_a_naive_implementation(rng):
    eigenvalues = np.sort(rng.gamma(2.0, size=25))[::-1] + np.r_[np.full(4, 10.0), np.zeros(21)]
    mdl, aic = itc_criteria(eigenvalues, 500)
    naive_mdl, naive_aic = _naive_criteria(eigenvalues, 500)
    np.testing.assert_allclose(mdl, naive_mdl, rtol=1e-10)
    np.testing.assert_allclose(aic, naive_aic, rtol=1e-10)
    with pytest.raises(ICAError, match="at least two positive eigenvalues"):
        itc_criteria(np.array([1.0]), 10)


def test_entropy_rate_falls_and_depth_rises_with_smoothness(rng):
    mask = np.ones((20, 20, 20), dtype=bool)
    white = rng.normal(size=(3, mask.sum()))
    rates, depths = [], []
    for sigma in (0.0, 0.7, 1.5):
        fields = np.array([ndimage.gaussian_filter(w.reshape(mask.shape), sigma).ravel() for w in white]) \
            if sigma else white
        rates.append(entropy_rate(fields, mask))
        depths.append(iid_depth(fields, mask)[0])
    assert abs(rates[0] - IID_ENTROPY) < 0.02
    assert rates[0] > rates[1] > rates[2]
    assert depths[0] == 1 and depths[0] < depths[1] <= depths[2]
    # A brain-shaped mask: the estimate only uses pairs of voxels inside it.
    ball = np.linalg.norm(np.indices(mask.shape) - 9.5, axis=0) < 9
    assert abs(entropy_rate(rng.normal(size=(3, ball.sum())), ball) - IID_ENTROPY) < 0.03


def test_iid_correction_stops_smooth_noise_inflating_the_order(rng):
    """Spatially smooth noise makes every voxel-counting criterion see dozens of components;
    counted on effectively independent samples, MDL finds the planted five."""
    shape, t, k = (24, 24, 24), 60, 5
    mask = np.ones(shape, dtype=bool)
    maps = np.array([ndimage.gaussian_filter((rng.random(shape) < 0.002).astype(float), 2.0).ravel()
                     for _ in range(k)])
    maps /= maps.std(axis=1, keepdims=True)
    noise = np.array([ndimage.gaussian_filter(rng.normal(size=shape), 1.2).ravel() for _ in range(t)])
    data = rng.normal(size=(t, k)) * 0.6 @ maps + noise / noise.std()
    data -= data.mean(axis=0)
    corrected = run_order(data, mask)
    mdl, aic = itc_criteria(np.linalg.eigvalsh(data @ data.T / data.shape[1]), data.shape[1])
    print(f"depth {corrected.depth}: MDL {corrected.mdl}, AIC {corrected.aic}; uncorrected MDL {np.argmin(mdl)}, "
          f"AIC {np.argmin(aic)}")
    assert corrected.depth >= 3 and corrected.n_samples < mask.sum() / 20
    assert corrected.mdl == k
    assert k <= corrected.aic <= k + 5
    assert np.argmin(mdl) > 3 * k and np.argmin(aic) > 3 * k


def test_consistency_counts_shared_directions_not_strong_run_specific_ones(rng):
    """Four shared sources, one 10x weaker than the others, and in every run a strong event of its
    own (a spike pattern): the consistency estimate finds the four; the variance ranking of plain
    MIGP puts the run-specific events above the weak source."""
    from icanets.ica.order import consistency_order
    from icanets.ica.pca import migp, run_subspace

    v, t, n = 600, 80, 30
    shared = rng.normal(size=(4, v))
    runs = []
    for _ in range(n):
        x = rng.normal(size=(t, 4)) * np.array([3.0, 3.0, 3.0, 0.5]) @ shared + rng.normal(size=(t, v))
        x[rng.integers(t)] += 40.0 * rng.normal(size=v)  # a spike with its own spatial pattern
        runs.append(x - x.mean(axis=0))
    stack = [run_subspace(x, 0.5) for x in runs]
    pca = migp(stack, n_internal=2 * t)
    dimension, edge = consistency_order(pca.eigenvalues * pca.n_timepoints / n, n_runs=n, run_components=t // 2,
                                        n_voxels=v)
    assert dimension == 4
    captured = np.linalg.norm(shared[3] / np.linalg.norm(shared[3]) @ pca.components[:4].T)
    assert captured > 0.95
    plain = migp(runs, n_internal=2 * t)
    assert np.linalg.norm(shared[3] / np.linalg.norm(shared[3]) @ plain.components[:4].T) < 0.5
    # Pure noise: nothing is consistent.
    noise = [run_subspace(rng.normal(size=(t, v)), 0.5) for _ in range(n)]
    pca = migp(noise, n_internal=2 * t)
    assert consistency_order(pca.eigenvalues * pca.n_timepoints / n, n_runs=n, run_components=t // 2,
                             n_voxels=v)[0] == 0
