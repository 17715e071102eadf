"""Defaults and choices shared by the API, the command line and the study config (one value each)."""

#: Tails of t contrasts: 1 tests each contrast in its own direction, as FSL randomise does.
DEFAULT_TAILS = 1

#: Model-order methods of the group ICA stage (see icanets.ica.order); the first is the default.
ORDER_METHODS = ("reproducibility", "consistency", "laplace", "bic", "mdl", "aic")

#: Fewest volumes a BOLD run may have ([bold] min_volumes).
DEFAULT_MIN_VOLUMES = 40

#: Fewest time points of a run's node time series for a netmat ([netmats] min_timepoints).
MIN_TIMEPOINTS = 20
