"""Figures (matplotlib; nilearn with its bundled MNI template for brain views).

Every function returns a matplotlib Figure and draws only what it is given; the data
drawn can be read back from the figure (tests check it).
"""

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "icanets"  # SVG element ids from a fixed salt: the same figure, the same bytes

from icanets.viz.components import plot_component, plot_model_order  # noqa: E402
from icanets.viz.edges import plot_edge_nodes  # noqa: E402
from icanets.viz.netmat import netmat_display, plot_netmat  # noqa: E402
from icanets.viz.predict import plot_consensus_edges, plot_metric_null, plot_predicted, plot_roc  # noqa: E402
from icanets.viz.stats import plot_bars, plot_null, plot_scatter  # noqa: E402
from icanets.viz.surface import SurfaceMap, plot_component_surface, plot_edge_nodes_surface  # noqa: E402

__all__ = ["plot_component", "plot_model_order", "plot_edge_nodes", "netmat_display", "plot_netmat", "plot_bars", "plot_null",
           "plot_scatter", "plot_predicted", "plot_roc", "plot_metric_null", "plot_consensus_edges",
           "SurfaceMap", "plot_component_surface", "plot_edge_nodes_surface"]
