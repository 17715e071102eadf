"""Network matrices (netmats) from node time series, FSLNets style.

Typical use::

    runs = prepare_timeseries(load_timeseries(paths), varnorm=0, good=good_nodes)
    partial = compute_netmats(runs, "ridgep", rho=0.1)       # FSLNets z by default
    full = compute_netmats(runs, "corr")
    table = average_runs(partial)                            # subject-sessions x edges
    order = ward_clustering(one_sample_z(average_runs(full).matrices())).order
"""

from icanets.netmats._compute import RunNetmats, average_runs, compute_netmats
from icanets.netmats.clean import NetmatsError, check_timeseries, clean_nodes, prepare_timeseries, variance_normalise
from icanets.netmats.edges import EdgeTable, edge_index, edges_to_matrix, matrix_to_edges, n_nodes_from_edges
from icanets.netmats.estimators import (
    ESTIMATORS,
    amplitude,
    correlation,
    covariance,
    geometric_mean,
    glasso_partial,
    ledoit_wolf_partial,
    partial_correlation,
    rcorr,
    ridgep,
    tangent,
)
from icanets.netmats.group import WardClustering, group_mean, one_sample_z, ward_clustering
from icanets.netmats.ztransform import fisher_z, fslnets_z_scale, median_ar1

__all__ = [
    "RunNetmats", "average_runs", "compute_netmats",
    "NetmatsError", "check_timeseries", "clean_nodes", "prepare_timeseries", "variance_normalise",
    "EdgeTable", "edge_index", "edges_to_matrix", "matrix_to_edges", "n_nodes_from_edges",
    "ESTIMATORS", "amplitude", "correlation", "covariance", "geometric_mean", "glasso_partial",
    "ledoit_wolf_partial", "partial_correlation", "rcorr", "ridgep", "tangent",
    "WardClustering", "group_mean", "one_sample_z", "ward_clustering",
    "fisher_z", "fslnets_z_scale", "median_ar1",
]
