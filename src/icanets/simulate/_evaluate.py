"""Scoring an estimated decomposition against a simulation's ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["MapMatch", "match_maps"]


@dataclass(frozen=True)
class MapMatch:
    """How estimated component maps match true maps.

    Attributes
    ----------
    similarity : ndarray, shape (n_true, n_estimated)
        Absolute spatial correlation of every true map with every estimated map.
    assigned : ndarray of int, shape (n_true,)
        The estimated component given to each true map by a one-to-one assignment that
        maximises the total similarity (among ``candidates``), -1 where none is left.
    assigned_r : ndarray, shape (n_true,)
        Similarity of each true map with its assigned component (0 where none).
    best : ndarray of int, shape (n_true,)
        Each true map's most similar estimated component (any component).
    best_r : ndarray, shape (n_true,)
    owner : ndarray of int, shape (n_estimated,)
        For every estimated component, the true map it is most similar to.
    owner_r : ndarray, shape (n_estimated,)
    """

    similarity: np.ndarray
    assigned: np.ndarray
    assigned_r: np.ndarray
    best: np.ndarray
    best_r: np.ndarray
    owner: np.ndarray
    owner_r: np.ndarray

    def recovered(self, threshold: float = 0.8) -> np.ndarray:
        """True maps with a distinct (assigned) component at ``r >= threshold``."""
        return self.assigned_r >= threshold


def match_maps(true: np.ndarray, estimated: np.ndarray, *, candidates: np.ndarray | None = None) -> MapMatch:
    """Match true maps ``(n_true, V)`` to estimated maps ``(n_estimated, V)``.

    ``candidates`` (boolean, ``(n_estimated,)``) limits the one-to-one assignment to some
    components (e.g. those kept as signal); ``best`` and ``owner`` consider all of them.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(size=(3, 500))
    >>> m = match_maps(true, -true[[2, 0, 1]] + 0.1 * rng.normal(size=(3, 500)))
    >>> m.assigned.tolist(), bool(m.recovered().all())
    ([1, 2, 0], True)
    """
    true = np.asarray(true, dtype=float)
    estimated = np.asarray(estimated, dtype=float)
    a = true - true.mean(axis=1, keepdims=True)
    b = estimated - estimated.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    similarity = np.abs(a @ b.T) / np.outer(np.where(na > 0, na, 1.0), np.where(nb > 0, nb, 1.0))
    allowed = np.ones(len(estimated), dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    assigned = np.full(len(true), -1)
    assigned_r = np.zeros(len(true))
    columns = np.flatnonzero(allowed)
    if columns.size:
        rows, cols = linear_sum_assignment(-similarity[:, columns])
        assigned[rows] = columns[cols]
        assigned_r[rows] = similarity[rows, columns[cols]]
    return MapMatch(similarity=similarity, assigned=assigned, assigned_r=assigned_r,
                    best=similarity.argmax(axis=1), best_r=similarity.max(axis=1),
                    owner=similarity.argmax(axis=0), owner_r=similarity.max(axis=0))
