"""How numbers are written for people: one rule for every p-value in tables, figures and text."""

from __future__ import annotations

import math
import re

__all__ = ["format_p", "p_relation", "is_p_column", "P_FLOOR_NOTE"]

#: What the floor mark means, for captions and table notes.
P_FLOOR_NOTE = "<= marks the floor of a permutation p-value: 1 / the number of relabellings"

_P_COLUMN = re.compile(r"^(p|q)(_[a-z]+)*$|^(p|q)[ _-](value|fwe|unc|fdr|gg|perm)$|.*_p$", re.IGNORECASE)


def is_p_column(name: object) -> bool:
    """Whether a table column holds p-values (``p``, ``p_unc``, ``p_FWE``, ``q_FDR``, ``p_gg``, ...).

    Examples
    --------
    >>> [is_p_column(c) for c in ("p", "p_FWE", "q_fdr", "p_gg", "perm", "n", "pairs", "p_val")]
    [True, True, True, True, False, False, False, True]
    """
    return bool(_P_COLUMN.match(str(name)))


def format_p(p, floor: float | None = None) -> str:
    """A p-value as text: ``< 0.0001`` below that, ``<= 0.0002`` at a permutation floor
    (``floor`` = 1 / the number of relabellings; never shown as 0), two significant digits
    below 0.001, three decimals otherwise.

    Examples
    --------
    >>> [format_p(v) for v in (0.0, 3e-7, 0.00042, 0.0312, 0.5, 1.0)]
    ['< 0.0001', '< 0.0001', '0.00042', '0.031', '0.500', '1.000']
    >>> format_p(0.0002, floor=1 / 5000), format_p(0.125, floor=1 / 8)
    ('<= 0.0002', '<= 0.125')
    >>> format_p(float("nan")), format_p(None)
    ('n/a', 'n/a')
    """
    if p is None:
        return "n/a"
    try:
        p = float(p)
    except (TypeError, ValueError):
        return str(p)
    if math.isnan(p):
        return "n/a"
    if floor is not None and p <= floor * (1 + 1e-9):
        return f"<= {_short(floor)}"
    if p < 1e-4:
        return "< 0.0001"
    if p < 1e-3:
        return f"{p:.2g}"
    return f"{p:.3f}" if p < 0.9995 or p >= 1 else "1.000"


def _short(value: float) -> str:
    if value >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def p_relation(p, floor: float | None = None) -> str:
    """:func:`format_p` with its relation, to follow a ``p``: ``= 0.031``, ``< 0.0001``,
    ``<= 0.0002`` (at the floor) or ``n/a``.

    Examples
    --------
    >>> p_relation(0.031), p_relation(1e-6), p_relation(0.0002, 1 / 5000), p_relation(None)
    ('= 0.031', '< 0.0001', '<= 0.0002', 'n/a')
    """
    text = format_p(p, floor)
    return text if text.startswith(("<", "n/a")) else f"= {text}"
