"""Defaults shared by the API, the command line and the study config (one value each)."""

#: Tails of t contrasts: 1 tests each contrast in its own direction, as FSL randomise does.
DEFAULT_TAILS = 1
