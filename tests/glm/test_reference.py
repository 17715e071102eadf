"""Exact reproduction of FSL randomise on the FSL course netmats."""

import numpy as np

from icanets.glm import Design, permutation_glm


def test_randomise_two_group_exhaustive(fslcourse):
    y = np.load(fslcourse / "Pnetmats_ridgep.npy")
    x = np.zeros((12, 2))
    x[:6, 0] = 1
    x[6:, 1] = 1
    design = Design(matrix=x, columns=("A", "B"), contrasts=np.array([[1.0, -1.0]]), contrast_names=("A>B",))
    result = permutation_glm(y, design, n_perm=5000, tails=1)
    assert result.exhaustive and result.n_perm == 924 and result.n_distinct == 924
    contrast = result["A>B"]
    expected_unc = np.load(fslcourse / "randomise_1minus_p_uncorr.npy")[0]
    expected_fwe = np.load(fslcourse / "randomise_1minus_p_corr.npy")[0]
    np.testing.assert_allclose(1 - contrast.p_unc, expected_unc, rtol=0, atol=1e-6)
    np.testing.assert_allclose(1 - contrast.p_fwe, expected_fwe, rtol=0, atol=1e-6)
