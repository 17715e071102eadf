"""icanets: data-driven whole-brain functional connectomics for clinical studies.

The analysis runs from preprocessed 4D BOLD images laid out as BIDS to an HTML report:
group ICA, dual regression, network matrices, edge-wise permutation GLMs, post-hoc
clinical statistics and figures. See the README for the command-line tool.
"""

from icanets._version import __version__
from icanets.errors import (
    BIDSError,
    ConfigError,
    ExpressionError,
    IcanetsError,
    IcanetsWarning,
    MissingDataWarning,
    StudyError,
)

__all__ = [
    "__version__",
    "BIDSError",
    "ConfigError",
    "ExpressionError",
    "IcanetsError",
    "IcanetsWarning",
    "MissingDataWarning",
    "StudyError",
]
