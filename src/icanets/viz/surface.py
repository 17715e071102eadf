"""Maps of CIFTI data: both cortical surfaces (lateral and medial views, nilearn's
``plot_surf_stat_map``) and the volume part as maximum-|z| projections."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from icanets.viz.components import _caption, draw_projections, draw_spectrum

__all__ = ["SurfaceMap", "plot_component_surface", "plot_edge_nodes_surface"]

#: (hemisphere, view) of the four surface panels.
VIEWS = (("left", "lateral"), ("left", "medial"), ("right", "lateral"), ("right", "medial"))


class SurfaceMap:
    """One map of CIFTI data, ready to draw.

    Parameters
    ----------
    hemispheres : dict
        ``"left"``/``"right"`` -> ``(coordinates (n_vertices, 3), faces (m, 3), values
        (n_vertices,))``; NaN values (vertices that are not grayordinates) are drawn blank.
    volume : ndarray (x, y, z) or None
        The volume part on its grid (0 outside it).
    """

    def __init__(self, hemispheres: Mapping[str, tuple], volume: np.ndarray | None = None):
        self.hemispheres = dict(hemispheres)
        self.volume = volume

    def limit(self) -> float:
        values = [np.nanmax(np.abs(v)) for _, _, v in self.hemispheres.values() if np.isfinite(v).any()]
        if self.volume is not None:
            values.append(float(np.max(np.abs(self.volume))))
        return max(values + [1e-6])


def _draw_surfaces(fig, axes: Sequence, item: SurfaceMap, threshold: float | None, limit: float,
                   cmap: str = "RdBu_r") -> None:
    from nilearn import plotting

    for ax, (hemi, view) in zip(axes, VIEWS):
        if hemi not in item.hemispheres:
            ax.set_axis_off()
            ax.set_title(f"{hemi}: no surface", fontsize=8)
            continue
        coords, faces, values = item.hemispheres[hemi]
        shown = np.where(np.isfinite(values), values, 0.0)
        plotting.plot_surf_stat_map((coords, faces), shown, hemi=hemi, view=view, axes=ax, figure=fig,
                                    colorbar=False, threshold=threshold, vmin=-limit, vmax=limit, cmap=cmap)
        ax.set_title(f"{hemi} {view}", fontsize=8)


def plot_component_surface(item: SurfaceMap, timecourses, tr: float, *, title: str, features: Mapping[str, float],
                           label: str, threshold: float | None = None) -> Figure:
    """A CIFTI component: both surfaces in lateral and medial view (top row), the volume part's
    maximum-|z| projections with a z colour bar and the mean power spectrum of its stage-1 time
    courses (bottom row), its features and label."""
    fig = plt.figure(figsize=(11.5, 5.0))
    grid = fig.add_gridspec(2, 6, height_ratios=[1.1, 1], width_ratios=[1, 1, 1, 0.07, 0.45, 1.6])
    limit = item.limit()
    top = fig.add_gridspec(2, 4, height_ratios=[1.1, 1], left=0.02, right=0.98)
    _draw_surfaces(fig, [fig.add_subplot(top[0, i], projection="3d") for i in range(4)], item, threshold, limit)
    projections = [fig.add_subplot(grid[1, i]) for i in range(3)]
    colour_axis = fig.add_subplot(grid[1, 3])
    if item.volume is not None:
        draw_projections(fig, projections, colour_axis, item.volume, threshold, limit)
    else:
        for ax in projections + [colour_axis]:
            ax.set_axis_off()
        projections[1].set_title("no volume part", fontsize=8)
    draw_spectrum(fig.add_subplot(grid[1, 5]), timecourses, tr)
    _caption(fig, title, label, features)
    fig.subplots_adjust(top=0.9, bottom=0.1, wspace=0.25, hspace=0.25)
    return fig


def plot_edge_nodes_surface(item_i: SurfaceMap, item_j: SurfaceMap, *, name_i: str, name_j: str, title: str,
                            threshold: float = 3.0) -> Figure:
    """An edge's two node maps on the surfaces (lateral and medial views of both hemispheres)
    and, beside them, the volume part's axial maximum-|z| projection; one row per node."""
    fig = plt.figure(figsize=(11.5, 5.4))
    grid = fig.add_gridspec(2, 5, width_ratios=[1, 1, 1, 1, 0.9])
    for row, item, name in ((0, item_i, name_i), (1, item_j, name_j)):
        limit = item.limit()
        axes = [fig.add_subplot(grid[row, i], projection="3d") for i in range(4)]
        _draw_surfaces(fig, axes, item, threshold, limit)
        axes[0].set_title(f"{name}: left lateral", fontsize=8)
        ax = fig.add_subplot(grid[row, 4])
        if item.volume is not None:
            z = np.asarray(item.volume, dtype=float)
            projection = np.take_along_axis(z, np.abs(z).argmax(axis=2)[..., None], axis=2)[..., 0]
            shown = np.rot90(projection)
            shown = np.ma.masked_where(np.abs(shown) <= threshold, shown)
            image = ax.imshow(shown, cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{name}: volume part (axial max |z|)", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            bar = fig.colorbar(image, ax=ax, fraction=0.08)
            bar.set_label("z (surfaces and volume)", fontsize=8)
            bar.ax.tick_params(labelsize=8)
        else:
            ax.set_axis_off()
    fig.suptitle(f"{title} (|z| > {threshold:g})", fontsize=10)
    return fig
