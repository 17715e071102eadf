"""An edge's two node maps on the MNI template shipped with nilearn: orthogonal slices through
each node's peak and a glass brain, with colour bars and the peak's coordinates."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_edge_nodes"]


def _peak(img) -> tuple[float, float, float]:
    data = np.asarray(img.dataobj, dtype=float)
    index = np.unravel_index(int(np.nanargmax(data)), data.shape)
    return tuple(float(v) for v in img.affine[:3, :3] @ np.asarray(index) + img.affine[:3, 3])


def plot_edge_nodes(map_i, map_j, *, name_i: str, name_j: str, title: str, threshold: float = 3.0) -> Figure:
    """Per node (rows): orthogonal slices through its peak over the MNI template, and a glass
    brain (left, right and top views), both with a z colour bar; the peak's coordinates in the
    title. ``map_i``, ``map_j``: 3D NIfTI z maps. No download: nilearn's template and glass
    brain are part of the package.
    """
    from nilearn import plotting

    fig, axes = plt.subplots(2, 2, figsize=(11.0, 5.4), gridspec_kw={"width_ratios": [1, 1.1]})
    for row, img, name, cmap in ((0, map_i, name_i, "autumn"), (1, map_j, name_j, "winter")):
        x, y, z = _peak(img)
        where = f"{name}: peak ({x:.0f}, {y:.0f}, {z:.0f}) mm, |z| > {threshold:g}"
        plotting.plot_stat_map(img, threshold=threshold, axes=axes[row, 0], display_mode="ortho",
                               cut_coords=(x, y, z), colorbar=True, cmap=cmap, annotate=True, draw_cross=False,
                               title=None)
        plotting.plot_glass_brain(img, threshold=threshold, axes=axes[row, 1], display_mode="lzr", colorbar=True,
                                  plot_abs=False, cmap=cmap, title=None)
        axes[row, 0].set_title(where, fontsize=9, loc="left")
    fig.suptitle(title, fontsize=10)
    return fig
