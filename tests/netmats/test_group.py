import numpy as np
from scipy import stats

from icanets.netmats import group_mean, one_sample_z, ward_clustering


def test_fslnets_group_z_and_mean_reproduce_the_reference(fslcourse):
    partial = np.load(fslcourse / "Pnetmats_ridgep.npy").reshape(12, 63, 63)
    full = np.load(fslcourse / "Fnetmats_corr.npy").reshape(12, 63, 63)
    np.testing.assert_allclose(one_sample_z(partial, fslnets_compat=True), np.load(fslcourse / "Znet_P.npy"),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(group_mean(full), np.load(fslcourse / "Mnet_F.npy"), rtol=0, atol=1e-10)


def test_one_sample_z_matches_scipy_ttest(rng):
    data = rng.normal(0.3, 1.0, size=(15, 40))
    t, p = stats.ttest_1samp(data, 0.0)
    expected = np.sign(t) * stats.norm.isf(p / 2)
    np.testing.assert_allclose(one_sample_z(data), expected, rtol=1e-9)
    np.testing.assert_allclose(one_sample_z(np.zeros((4, 3))), 0.0)


def test_ward_recovers_planted_blocks(rng):
    blocks = np.repeat([0, 1, 2], [5, 4, 6])
    perm = rng.permutation(blocks.size)
    labels = blocks[perm]
    netmat = np.where(labels[:, None] == labels[None, :], 3.0, 0.2) + rng.normal(0, 0.1, (15, 15))
    netmat = (netmat + netmat.T) / 2
    np.fill_diagonal(netmat, 0)
    result = ward_clustering(netmat, n_clusters=3)
    assert sorted(result.order.tolist()) == list(range(15))
    # Same partition up to relabelling, and each block contiguous in the order.
    pairs = {(a, b) for a, b in zip(labels, result.labels)}
    assert len(pairs) == 3
    ordered = labels[result.order]
    assert sum(ordered[1:] != ordered[:-1]) == 2
