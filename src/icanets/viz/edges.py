"""An edge's two node maps on the MNI template shipped with nilearn."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["plot_edge_nodes"]


def plot_edge_nodes(map_i, map_j, *, name_i: str, name_j: str, title: str, threshold: float = 3.0) -> Figure:
    """Glass-brain views of the two node maps (thresholded z images) of an edge.

    ``map_i``, ``map_j``: 3D NIfTI images (z maps). No download: nilearn's glass brain
    outline is part of the package.
    """
    from nilearn import plotting

    fig, axes = plt.subplots(2, 1, figsize=(6.4, 4.6))
    for ax, img, name, cmap in ((axes[0], map_i, name_i, "autumn"), (axes[1], map_j, name_j, "winter")):
        plotting.plot_glass_brain(img, threshold=threshold, axes=ax, display_mode="lzr", colorbar=False,
                                  plot_abs=False, cmap=cmap, title=name)
    fig.suptitle(title, fontsize=9)
    return fig
