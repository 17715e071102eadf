import numpy as np
import pandas as pd
from scipy.cluster import hierarchy

from icanets.viz import netmat_display, plot_bars, plot_netmat, plot_null, plot_scatter


def test_netmat_drawn_equals_the_data_in_order(rng):
    full = rng.normal(size=(6, 6))
    full = full + full.T
    partial = rng.normal(size=(6, 6))
    partial = partial + partial.T
    order = [3, 1, 5, 0, 2, 4]
    shown = netmat_display(full, partial, order)
    upper = np.triu_indices(6, 1)
    f = full[np.ix_(order, order)] / np.percentile(np.abs(full[np.ix_(order, order)][upper]), 99)
    p = partial[np.ix_(order, order)] / np.percentile(np.abs(partial[np.ix_(order, order)][upper]), 99)
    np.testing.assert_allclose(shown[2, 0], np.clip(f[2, 0], -1, 1))
    np.testing.assert_allclose(shown[0, 2], np.clip(p[0, 2], -1, 1))
    assert np.all(np.isnan(np.diag(shown)))
    link = hierarchy.linkage(rng.normal(size=(6, 3)), "ward")
    fig = plot_netmat(full, partial, link, labels=np.array([1, 1, 2, 2, 3, 3]), names=list("abcdef"))
    image = fig.axes[1].images[0].get_array()
    leaves = hierarchy.dendrogram(link, no_plot=True)["leaves"]
    np.testing.assert_allclose(np.ma.filled(image, np.nan), netmat_display(full, partial, leaves), equal_nan=True)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == [list("abcdef")[i] for i in leaves]
    assert fig._suptitle.get_text() == "Group network matrix"


def test_bar_heights_are_the_group_means():
    means = pd.DataFrame({"group": ["HC", "HC", "MDD", "MDD"], "session": ["ses-1", "ses-2"] * 2,
                          "n": [10, 4, 12, 9], "mean": [0.5, 0.4, 0.1, 0.3], "se": [0.05, 0.1, 0.04, 0.06]})
    pairwise = pd.DataFrame({"comparison": ["HC vs MDD at ses-1"], "p": [0.001]})
    fig = plot_bars(means, session_names={"ses-1": "TP1"}, pairwise=pairwise, title="edge")
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [0.5, 0.4, 0.1, 0.3]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["TP1", "ses-2"]
    assert [t.get_text() for t in ax.texts] == ["**"]
    assert ax.get_legend().get_texts()[0].get_text() == "HC"


def test_scatter_and_null_annotations(rng):
    x = rng.normal(size=30)
    y = 2 * x + rng.normal(size=30)
    fig = plot_scatter(x, y, xlabel="HDRS change (%)", ylabel="change in FC", title="e")
    title = fig.axes[0].get_title()
    assert "N = 30" in title and "r = " in title
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets()[:, 0], x)
    null = rng.normal(size=1000)
    fig = plot_null(null, np.array([10.0, 0.0]), title="a")
    assert "(1 edge(s) above)" in fig.axes[0].get_title()
    assert fig.axes[0].get_legend().get_texts()[0].get_text().startswith("FWE 0.05 threshold = ")
