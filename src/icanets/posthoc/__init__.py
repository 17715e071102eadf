"""Post-hoc statistics on significant edges, and the demographics table."""

from icanets.posthoc.clinical import clinical_correlations, correlation, edge_long, group_session_means, pairwise_tests
from icanets.posthoc.demographics import RMAnova, demographics_table, group_test, rm_anova
from icanets.posthoc.mixed import time_by_remission

__all__ = ["clinical_correlations", "correlation", "edge_long", "group_session_means", "pairwise_tests",
           "RMAnova", "demographics_table", "group_test", "rm_anova", "time_by_remission"]
