"""Exception and warning classes of icanets.

Every error raised for bad input is an :class:`IcanetsError` (a ``ValueError``), whose
message names the file, subject, column or parameter at fault.
"""

__all__ = [
    "IcanetsError",
    "BIDSError",
    "StudyError",
    "ConfigError",
    "ExpressionError",
    "IcanetsWarning",
    "MissingDataWarning",
]


class IcanetsError(ValueError):
    """Base class of the errors icanets raises for bad input."""


class BIDSError(IcanetsError):
    """A dataset that does not follow the BIDS layout icanets reads (files, names, tables)."""


class StudyError(IcanetsError):
    """A dataset whose content is inconsistent (subjects, sessions, images, variables)."""


class ConfigError(IcanetsError):
    """A study configuration with unknown keys, wrong types or values out of range."""


class ExpressionError(IcanetsError):
    """A derived-variable expression that cannot be parsed or evaluated."""


class IcanetsWarning(UserWarning):
    """Base class of the warnings icanets issues."""


class MissingDataWarning(IcanetsWarning):
    """Data that a study lists but that is missing (e.g. a session without a BOLD run)."""


class LabelWarning(IcanetsWarning):
    """Category labels that look like typos (values differing only in case) or groups too small
    for the tests they enter."""
