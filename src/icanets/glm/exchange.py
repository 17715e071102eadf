"""Exchangeability: which relabellings of the observations are allowed, how many are
distinct, and drawing or enumerating them.

A relabelling is a pair ``(perm, signs)`` acting on the data as
``Y*[i] = signs[i] * Y[perm[i]]``. Relabellings that give the same relabelled design
give the same statistic, so distinct relabellings are counted on the design's rows (as
randomise does): a two-group design of 6 + 6 subjects has C(12, 6) = 924 distinct
relabellings, not 12!.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from icanets.glm.design import DesignError

__all__ = ["Exchangeability", "Relabellings", "plan_relabellings"]

_BLOCK = 1000  # relabellings drawn per seeded block: results do not depend on compute chunks


@dataclass(frozen=True)
class Exchangeability:
    """An exchangeability scheme.

    Attributes
    ----------
    permute : bool
        Permute observations (exchangeable errors).
    flip : bool
        Flip signs (symmetric errors): one-sample tests and paired differences.
    blocks : ndarray of int, shape (N,), or None
        Exchangeability blocks.
    whole_blocks : bool
        With blocks: permute (or flip) whole blocks as units instead of observations within
        each block. Whole blocks must be of equal size to be permuted.
    """

    permute: bool = True
    flip: bool = False
    blocks: np.ndarray | None = None
    whole_blocks: bool = False

    def __post_init__(self):
        if not (self.permute or self.flip):
            raise DesignError("an exchangeability scheme must permute, flip signs, or both")
        if self.whole_blocks and self.blocks is None:
            raise DesignError("whole-block exchangeability needs blocks")

    def describe(self) -> str:
        what = " and ".join(w for w, on in (("permutation", self.permute), ("sign flipping", self.flip)) if on)
        if self.blocks is None:
            return f"free {what}"
        return f"{what} of whole blocks" if self.whole_blocks else f"{what} within blocks"


@dataclass(frozen=True)
class Relabellings:
    """The relabellings of one analysis: identity first.

    Attributes
    ----------
    n : int
        How many (the number of permutations used).
    exhaustive : bool
        All distinct relabellings are enumerated.
    n_distinct : int
        Number of distinct relabellings (may be astronomically large).
    perms : ndarray of int, shape (n, N)
    signs : ndarray of int8, shape (n, N)
    """

    n: int
    exhaustive: bool
    n_distinct: int
    perms: np.ndarray
    signs: np.ndarray


def _labels(matrix: np.ndarray) -> np.ndarray:
    """Integer label per row; equal rows (to 1e-10) share a label."""
    rounded = np.round(matrix / max(1.0, np.abs(matrix).max()), 10) + 0.0
    _, labels = np.unique(rounded, axis=0, return_inverse=True)
    return labels.ravel()


def _multinomial(labels) -> int:
    counts = Counter(labels)
    out = math.factorial(sum(counts.values()))
    for c in counts.values():
        out //= math.factorial(c)
    return out


def _units(scheme: Exchangeability, n: int) -> list[np.ndarray]:
    """Groups of observation indices that are permuted among themselves."""
    if scheme.blocks is None:
        return [np.arange(n)]
    blocks = np.asarray(scheme.blocks)
    return [np.flatnonzero(blocks == b) for b in np.unique(blocks)]


def _check_whole_blocks(units: list[np.ndarray]) -> None:
    sizes = {u.size for u in units}
    if len(sizes) > 1:
        raise DesignError(f"whole-block permutation needs blocks of equal size, got sizes {sorted(sizes)}")


def count_distinct(design_matrix: np.ndarray, scheme: Exchangeability) -> int:
    """Number of distinct relabellings of the design under the scheme."""
    n = design_matrix.shape[0]
    labels = _labels(design_matrix)
    units = _units(scheme, n)
    total = 1
    if scheme.whole_blocks:
        _check_whole_blocks(units)
        if scheme.permute:
            total *= _multinomial([tuple(labels[u]) for u in units])
        if scheme.flip:
            total *= 2 ** len(units)
        return total
    if scheme.permute:
        for u in units:
            total *= _multinomial(labels[u].tolist())
    if scheme.flip:
        total *= 2**n
    return total


def _multiset_arrangements(items: list) -> Iterator[tuple]:
    """Distinct orderings of a multiset, the given order first."""
    counts = Counter(items)
    order = list(dict.fromkeys(items))
    n = len(items)
    current: list = []

    def rec():
        if len(current) == n:
            yield tuple(current)
            return
        for value in order:
            if counts[value]:
                counts[value] -= 1
                current.append(value)
                yield from rec()
                current.pop()
                counts[value] += 1

    first = tuple(items)
    yield first
    for arrangement in rec():
        if arrangement != first:
            yield arrangement


def _perm_from_arrangement(labels: list, arrangement: tuple) -> np.ndarray:
    """A permutation ``perm`` with ``labels[perm^-1]`` equal to the arrangement."""
    pools: dict = {}
    for i, label in enumerate(labels):
        pools.setdefault(label, []).append(i)
    used = {k: 0 for k in pools}
    inverse = np.empty(len(labels), dtype=np.int64)
    for j, label in enumerate(arrangement):
        inverse[j] = pools[label][used[label]]
        used[label] += 1
    perm = np.empty_like(inverse)
    perm[inverse] = np.arange(len(labels))
    return perm


def _enumerate(design_matrix: np.ndarray, scheme: Exchangeability) -> tuple[np.ndarray, np.ndarray]:
    n = design_matrix.shape[0]
    labels = _labels(design_matrix)
    units = _units(scheme, n)
    if scheme.whole_blocks:
        unit_labels = [tuple(labels[u]) for u in units]
        orders = list(_multiset_arrangements(unit_labels)) if scheme.permute else [tuple(unit_labels)]
        perms = []
        for arrangement in orders:
            unit_perm = _perm_from_arrangement(unit_labels, arrangement)
            perm = np.empty(n, dtype=np.int64)
            for target, source in enumerate(unit_perm):
                perm[units[target]] = units[source]
            perms.append(perm)
        sign_sets = _sign_patterns(len(units)) if scheme.flip else [np.ones(len(units), dtype=np.int8)]
        out_p, out_s = [], []
        for perm in perms:
            for unit_signs in sign_sets:
                signs = np.ones(n, dtype=np.int8)
                for u, s in zip(units, unit_signs):
                    signs[u] = s
                out_p.append(perm)
                out_s.append(signs)
        return np.array(out_p), np.array(out_s)
    per_unit = []
    for u in units:
        if scheme.permute:
            unit_labels = labels[u].tolist()
            per_unit.append([u[_perm_from_arrangement(unit_labels, a)] for a in _multiset_arrangements(unit_labels)])
        else:
            per_unit.append([u])
    perms = []
    for combo in _product(per_unit):
        perm = np.empty(n, dtype=np.int64)
        for u, mapped in zip(units, combo):
            perm[u] = mapped
        perms.append(perm)
    sign_sets = _sign_patterns(n) if scheme.flip else [np.ones(n, dtype=np.int8)]
    out_p = [p for p in perms for _ in sign_sets]
    out_s = [s for _ in perms for s in sign_sets]
    return np.array(out_p), np.array(out_s)


def _product(lists):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield (head,) + tail


def _sign_patterns(k: int) -> list[np.ndarray]:
    """All 2^k sign patterns, all-plus first."""
    codes = np.arange(2**k)
    bits = (codes[:, None] >> np.arange(k)) & 1
    return list((1 - 2 * bits).astype(np.int8))


def _draw(design_matrix: np.ndarray, scheme: Exchangeability, n_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = design_matrix.shape[0]
    units = _units(scheme, n)
    if scheme.whole_blocks:
        _check_whole_blocks(units)
    perms = np.empty((n_draws, n), dtype=np.int64)
    signs = np.ones((n_draws, n), dtype=np.int8)
    children = np.random.SeedSequence(seed).spawn(max(1, -(-n_draws // _BLOCK)))
    for b, child in enumerate(children):
        rng = np.random.default_rng(child)
        for k in range(b * _BLOCK, min(n_draws, (b + 1) * _BLOCK)):
            perm = np.arange(n)
            if scheme.permute:
                if scheme.whole_blocks:
                    order = rng.permutation(len(units))
                    for target, source in enumerate(order):
                        perm[units[target]] = units[source]
                else:
                    for u in units:
                        perm[u] = u[rng.permutation(u.size)]
            perms[k] = perm
            if scheme.flip:
                if scheme.whole_blocks:
                    unit_signs = rng.choice(np.array([-1, 1], dtype=np.int8), size=len(units))
                    for u, s in zip(units, unit_signs):
                        signs[k, u] = s
                else:
                    signs[k] = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
    return perms, signs


def plan_relabellings(design_matrix: np.ndarray, scheme: Exchangeability, n_perm: int, *, seed: int = 0) -> Relabellings:
    """The relabellings to use: all distinct ones if there are at most ``n_perm``, else
    the identity followed by ``n_perm - 1`` random draws (with replacement, as randomise).

    Random draws come in blocks of 1,000, block ``b`` from ``SeedSequence(seed).spawn``'s
    ``b``-th child, so they do not depend on how the work is later split.
    """
    if n_perm < 1:
        raise DesignError(f"the number of permutations must be at least 1, got {n_perm}")
    n_distinct = count_distinct(design_matrix, scheme)
    if n_distinct <= n_perm:
        perms, signs = _enumerate(design_matrix, scheme)
        if len(perms) != n_distinct:  # pragma: no cover - internal consistency
            raise RuntimeError(f"enumerated {len(perms)} relabellings, expected {n_distinct}")
        return Relabellings(n=n_distinct, exhaustive=True, n_distinct=n_distinct, perms=perms, signs=signs)
    perms, signs = _draw(design_matrix, scheme, n_perm - 1, seed)
    n = design_matrix.shape[0]
    perms = np.vstack([np.arange(n)[None], perms])
    signs = np.vstack([np.ones((1, n), dtype=np.int8), signs])
    return Relabellings(n=n_perm, exhaustive=False, n_distinct=n_distinct, perms=perms, signs=signs)
