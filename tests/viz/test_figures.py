import numpy as np
import pytest
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
    assert shown[2, 0] == full[order[2], order[0]] and shown[0, 2] == partial[order[0], order[2]]
    assert np.all(np.isnan(np.diag(shown)))
    link = hierarchy.linkage(rng.normal(size=(6, 3)), "ward")
    fig = plot_netmat(full, partial, link, labels=np.array([1, 1, 2, 2, 3, 3]), names=list("abcdef"))
    ax = fig.axes[1]
    leaves = hierarchy.dendrogram(link, no_plot=True)["leaves"]
    lower, upper = (np.ma.filled(im.get_array(), np.nan) for im in ax.images)
    drawn = np.where(np.isnan(lower), upper, lower)
    np.testing.assert_allclose(drawn, netmat_display(full, partial, leaves), equal_nan=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == [list("abcdef")[i] for i in leaves]
    assert fig._suptitle.get_text().startswith("Group network matrix\n6 nodes")


def _texts(fig):
    from matplotlib.text import Text

    fig.canvas.draw()
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("n", [3, 20, 172])
def test_netmat_figure_is_legible_at_any_size(n, rng, tmp_path):
    """Fonts >= 8 pt at the saved size, two symmetric colour bars in z, no overlapping text, and
    SVG and PDF written beside the PNG (as the report's figures folder holds them)."""
    from icanets.viz.netmat import MIN_FONT_PT

    data = rng.normal(size=(120, n))
    full = np.corrcoef(data.T) * 8
    partial = full / 3
    link = hierarchy.linkage(data.T, "ward")
    fig = plot_netmat(full, partial, link, labels=rng.integers(0, 4, n), names=[f"IC{k + 1}" for k in range(n)])
    texts = _texts(fig)
    assert min(t.get_fontsize() for t in texts) >= MIN_FONT_PT
    colourbars = [a for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    assert len(colourbars) == 2
    triangle = np.tril_indices(n, -1)
    expected = [np.percentile(np.abs(m[triangle]), 99) for m in (full, partial)]  # z units, not scaled to 1
    for bar, limit in zip(colourbars, expected):
        low, high = bar._colorbar.mappable.get_clim()
        assert low == pytest.approx(-high) and high == pytest.approx(limit)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            overlap = boxes[a].intersection(boxes[a], boxes[b])
            assert overlap is None or overlap.width * overlap.height < 1.0, (texts[a].get_text(), texts[b].get_text())
    for kind in ("png", "svg", "pdf"):
        fig.savefig(tmp_path / f"netmat.{kind}", format=kind)
        assert (tmp_path / f"netmat.{kind}").stat().st_size > 1000


def test_bar_heights_are_the_group_means():
    means = pd.DataFrame({"group": ["HC", "HC", "MDD", "MDD"], "session": ["ses-1", "ses-2"] * 2,
                          "n": [10, 4, 12, 9], "mean": [0.5, 0.4, 0.1, 0.3], "se": [0.05, 0.1, 0.04, 0.06]})
    pairwise = pd.DataFrame({"comparison": ["HC vs MDD at ses-1"], "p": [0.001]})
    fig = plot_bars(means, session_names={"ses-1": "TP1"}, pairwise=pairwise, title="edge")
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [0.5, 0.4, 0.1, 0.3]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["TP1", "ses-2"]
    assert [t.get_text() for t in ax.texts if t.get_gid() != "n"] == ["**"]
    assert [t.get_text() for t in ax.texts if t.get_gid() == "n"] == ["N=10", "N=4", "N=12", "N=9"]
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
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0].startswith("FWE 0.05 threshold = ") and "largest observed t = 10.00" in legend


def test_every_figure_uses_fonts_of_at_least_8_pt(rng, tmp_path):
    """The report's figures at their saved size (components, model order, bars, scatter, null,
    motion, QC-FC, edge node maps): no text under 8 pt."""
    import nibabel as nib

    from icanets.viz import plot_component, plot_edge_nodes, plot_model_order
    from icanets.viz.netmat import MIN_FONT_PT
    from icanets.viz.qc import plot_motion, plot_qcfc

    volume = np.zeros((10, 12, 10))
    volume[3:6, 4:7, 4:6] = 5.0
    means = pd.DataFrame({"group": ["HC", "MDD"], "session": ["ses-1", "ses-1"], "n": [10, 12], "mean": [0.5, 0.1],
                          "se": [0.05, 0.04]})
    sessions = pd.DataFrame({"session_id": ["ses-1"] * 6, "group": ["HC"] * 3 + ["MDD"] * 3,
                             "mean_fd": rng.gamma(2, 0.1, 6), "n_runs": [1] * 6})
    affine = np.diag([8.0, 8.0, 8.0, 1.0])
    affine[:3, 3] = [-40, -48, -40]
    img = nib.Nifti1Image(volume, affine)
    figures = {
        "component": plot_component(volume, [rng.normal(size=100)], 0.8, title="IC1", features={"stability": 0.9},
                                    label="signal", threshold=3.0),
        "model order": plot_model_order(np.sort(rng.gamma(2, 1, 40))[::-1], {"laplace": rng.normal(size=39)},
                                        dimension=10, estimates={"laplace": 10}, method="laplace"),
        "bars": plot_bars(means, title="edge"),
        "scatter": plot_scatter(rng.normal(size=20), rng.normal(size=20), xlabel="x", ylabel="y", title="e"),
        "null": plot_null(rng.normal(size=500), np.array([3.0]), title="a"),
        "motion": plot_motion(sessions),
        "qcfc": plot_qcfc([("TP1", rng.uniform(-0.3, 0.3, 50), rng.uniform(0, 1, 50))]),
        "edge nodes": plot_edge_nodes(img, img, name_i="IC1", name_j="IC2", title="IC1 -- IC2"),
    }
    for name, fig in figures.items():
        small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < MIN_FONT_PT]
        assert not small, (name, small[:5])
