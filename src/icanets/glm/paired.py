"""Paired designs on an edge table: differences between two sessions of the same subjects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from icanets.glm.design import DesignError
from icanets.netmats.edges import EdgeTable

__all__ = ["PairedDifference", "paired_difference"]


@dataclass(frozen=True)
class PairedDifference:
    """Per-subject differences ``second - first`` between two sessions.

    Attributes
    ----------
    table : EdgeTable
        One row per subject with both sessions (``session_id`` is ``"<second>-<first>"``).
    dropped : tuple of str
        Subjects left out, with the session they lack.
    """

    table: EdgeTable
    dropped: tuple[str, ...]


def paired_difference(table: EdgeTable, first: str, second: str, *, subjects=None) -> PairedDifference:
    """Differences ``second - first`` for subjects having both sessions.

    Parameters
    ----------
    table : EdgeTable
        Rows are subject-sessions (``participant_id``, ``session_id``).
    first, second : str
        Session labels.
    subjects : iterable of str, optional
        Restrict to these subjects (e.g. patients); default all.

    Raises
    ------
    DesignError
        A session that does not exist, or fewer than two complete pairs.
    """
    rows = table.rows.assign(session_id=table.rows["session_id"].fillna("").astype(str))
    sessions = set(rows["session_id"])
    for label in (first, second):
        if label not in sessions:
            raise DesignError(f"session {label!r} is not in the edge table (sessions: {', '.join(sorted(sessions))})")
    wanted = list(dict.fromkeys(rows["participant_id"])) if subjects is None else list(dict.fromkeys(subjects))
    position = {(p, s): i for i, (p, s) in enumerate(zip(rows["participant_id"], rows["session_id"]))}
    keep, dropped = [], []
    for subject in wanted:
        have = [(subject, s) in position for s in (first, second)]
        if all(have):
            keep.append(subject)
        else:
            lacking = " and ".join(s for s, h in zip((first, second), have) if not h)
            dropped.append(f"{subject} (no {lacking})")
    if len(keep) < 2:
        raise DesignError(f"only {len(keep)} subject(s) have both {first} and {second}; a paired test needs at least 2")
    values = np.stack([table.values[position[(s, second)]] - table.values[position[(s, first)]] for s in keep])
    out_rows = pd.DataFrame({"participant_id": keep, "session_id": f"{second}-{first}", "n_runs": [
        int(rows["n_runs"].iloc[position[(s, first)]] + rows["n_runs"].iloc[position[(s, second)]]) if "n_runs" in rows
        else 2 for s in keep]})
    meta = {**table.metadata, "paired": {"first": first, "second": second, "n_pairs": len(keep),
                                         "dropped": dropped}}
    return PairedDifference(EdgeTable(values=values, rows=out_rows, edges=table.edges, metadata=meta), tuple(dropped))
