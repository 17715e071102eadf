"""Group PCA: MIGP (incremental, bounded memory) and exact temporal-concatenation PCA,
and model-order selection on the eigenspectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from icanets._blocked import gram, working
from icanets.ica.data import ICAError
from icanets.ica.order import bic_evidence, estimate_dimension, laplace_evidence

__all__ = ["GroupPCA", "migp", "concat_pca", "concat_spectrum", "estimate_dimension", "laplace_evidence",
           "bic_evidence", "run_subspace", "MIGPAccumulator", "ScatterAccumulator"]


@dataclass(frozen=True)
class GroupPCA:
    """The group principal subspace.

    Attributes
    ----------
    components : ndarray, shape (m, V)
        Orthonormal spatial eigenvectors, strongest first (``m`` rows kept).
    eigenvalues : ndarray, shape (m,)
        Their eigenvalues (variance of the concatenated data along each, per time point).
    n_runs : int
    n_timepoints : int
        Total time points seen.
    peak_rows : int
        Largest number of rows the internal matrix held (MIGP's memory bound).
    """

    components: np.ndarray
    eigenvalues: np.ndarray
    n_runs: int
    n_timepoints: int
    peak_rows: int


#: Columns (voxels) per block of MIGP's products and in-place reductions.
_BLOCK = 8192


def run_subspace(data: np.ndarray, n_components: int | float) -> np.ndarray:
    """A run's strongest spatial principal directions, each with unit weight, shape ``(k, V)``.

    ``data`` ``(T, V)`` is a preprocessed run; ``n_components`` is a count, or a fraction of
    its time points. Feeding these whitened subspaces to :func:`migp` instead of the data
    themselves gives every run's signal subspace the same weight, whatever the amplitude of
    what lies in it: a direction present in many runs (a network) outranks one that is strong
    in a few (a motion spike, a run's drift, one subject's misregistration), and weak networks
    count as much as strong ones. This is the subject-level whitening of GIFT and of nilearn's
    CanICA (its canonical correlation step), applied per run. float32 data give float32 rows
    (the Gram matrix summed in float64, the eigenproblem solved in float64).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 50))
    >>> w = run_subspace(x - x.mean(0), 0.5)
    >>> w.shape, bool(np.allclose(w @ w.T, np.eye(10)))
    ((10, 50), True)
    """
    t = data.shape[0]
    k = int(round(n_components * t)) if isinstance(n_components, float) else int(n_components)
    k = max(1, min(k, t - 1 if t > 1 else 1, data.shape[1]))
    data = working(data)
    values, vectors = np.linalg.eigh(gram(data))
    order = np.argsort(values)[::-1][:k]
    values, vectors = values[order], vectors[:, order]
    positive = values > values[0] * 1e-12
    rows = vectors[:, positive].T.astype(data.dtype) @ data  # sums over time points: the data's precision
    rows /= np.sqrt(values[positive]).astype(data.dtype)[:, None]  # in place: one (k, V) matrix, not two
    return rows


class MIGPAccumulator:
    """MELODIC's Incremental Group-PCA (Smith et al. 2014), one run at a time.

    Runs (each ``(T_i, V)``, preprocessed) are appended to an internal matrix ``W``; once it
    holds more than ``n_internal + block_rows`` rows it is reduced to its ``n_internal``
    strongest eigen-directions, ``W <- U' W``. MELODIC reduces after every run
    (``block_rows = 0``); reducing after a block of runs costs far less (the reduction's cost
    is mostly the projection, whatever the rows added) and truncates less often, so it is
    closer to the exact PCA. Memory holds at most ``n_internal + max(block_rows, T_i)`` rows,
    however many runs there are. Two accumulators over disjoint runs combine (:meth:`absorb`)
    into the MIGP of all their runs.

    The matrix is held in ``dtype`` (float32 by default: half the memory, and GEMMs twice as
    fast). Products over voxels are summed block by block in float64, the eigenproblems are
    solved in float64, and after a reduction the rows are known to be orthogonal, so only
    their products with the new rows are computed (the Gram matrix's leading block is the
    diagonal of the kept eigenvalues). :meth:`result` orthonormalises the final rows in float64.
    """

    def __init__(self, n_internal: int, *, block_rows: int = 0, dtype=np.float32):
        if n_internal < 1:
            raise ICAError(f"n_internal must be at least 1, got {n_internal}")
        if block_rows < 0:
            raise ICAError(f"block_rows must be at least 0, got {block_rows}")
        self.n_internal = int(n_internal)
        self.block_rows = int(block_rows)
        self.dtype = np.dtype(dtype)
        # Rows are appended into one preallocated buffer and reduced in place, so memory holds
        # that buffer only, never a stacked or a reduced copy of it as well.
        self._buffer: np.ndarray | None = None
        self._rows = 0
        self._values = np.zeros(0)  # squared norms of the leading rows, mutually orthogonal after a reduction
        self.n_runs = self.n_timepoints = self.peak_rows = 0

    @property
    def _w(self) -> np.ndarray | None:
        return None if self._buffer is None else self._buffer[:self._rows]

    def add(self, x: np.ndarray) -> None:
        self._append(np.asarray(x), runs=1, timepoints=x.shape[0])

    def _append(self, x: np.ndarray, *, runs: int, timepoints: int) -> None:
        if self._buffer is not None and x.shape[1] != self._buffer.shape[1]:
            raise ICAError(f"run {self.n_runs + 1} has {x.shape[1]} voxels, earlier runs {self._buffer.shape[1]}")
        rows = x.shape[0]
        if self._rows > self.n_internal and self._rows + rows > self.n_internal + self.block_rows:
            self._reduce(self.n_internal)
        held = self._rows
        if self._buffer is None or self._buffer.shape[0] < held + rows:
            grown = np.empty((max(held + rows, self.n_internal + max(self.block_rows, rows)), x.shape[1]),
                             dtype=self.dtype)
            if held:
                grown[:held] = self._buffer[:held]
            self._buffer = grown
        self._buffer[held:held + rows] = x
        self._rows = held + rows
        self.peak_rows = max(self.peak_rows, self._rows)
        self.n_runs += runs
        self.n_timepoints += timepoints

    def _gram(self) -> np.ndarray:
        """``W W'`` in float64; the leading rows' block from their known norms."""
        n, r = self._rows, self._values.size
        gram = np.zeros((n, n))
        for start in range(0, self._buffer.shape[1], _BLOCK):
            block = self._buffer[:n, start:start + _BLOCK]
            gram[:, r:] += block @ block[r:].T
        gram[:r, :r] = np.diag(self._values)
        gram[r:, :r] = gram[:r, r:].T
        return gram

    def _reduce(self, k: int) -> None:
        """``W <- U_k' W`` in place (a block of voxels at a time), ``U_k`` the top ``k``
        eigenvectors of ``W W'``."""
        values, vectors = np.linalg.eigh(self._gram())
        order = np.argsort(values)[::-1][:k]
        basis = vectors[:, order].T.astype(self.dtype)
        n = self._rows
        for start in range(0, self._buffer.shape[1], _BLOCK):
            self._buffer[:basis.shape[0], start:start + _BLOCK] = basis @ self._buffer[:n, start:start + _BLOCK]
        self._rows = basis.shape[0]
        self._values = np.clip(values[order], 0.0, None)

    def release(self) -> None:
        """Free the internal matrix (after :meth:`result` or :meth:`absorb`, when no longer needed)."""
        self._buffer, self._rows, self._values = None, 0, np.zeros(0)

    def absorb(self, other: "MIGPAccumulator") -> "MIGPAccumulator":
        """Add the runs of ``other`` (an accumulator over other runs) to this one, as if they
        had come after this one's; ``other`` is freed. Returns this accumulator.

        Each is first reduced to its ``n_internal`` rows, then ``other``'s rows are appended
        like one more run: memory holds no more than two internal matrices and the new rows.
        """
        self.n_internal = max(self.n_internal, other.n_internal)
        self.block_rows = max(self.block_rows, other.block_rows)
        peak = max(self.peak_rows, other.peak_rows)
        if other._w is not None:
            if other._rows > other.n_internal:
                other._reduce(other.n_internal)
            if self._rows > self.n_internal:
                self._reduce(self.n_internal)
            rows, runs, timepoints = other._w, other.n_runs, other.n_timepoints
            if self._w is None:
                self._values = other._values
            other.release()
            self._append(rows, runs=runs, timepoints=timepoints)
            del rows
        self.peak_rows = max(self.peak_rows, peak)
        return self

    def result(self, n_components: int | None = None) -> GroupPCA:
        """The group principal subspace: the top ``n_components`` (default ``n_internal``)
        orthonormal components and their eigenvalues, in float64."""
        if self._w is None:
            raise ICAError("no runs given to MIGP")
        if self._rows > self.n_internal:
            self._reduce(self.n_internal)
        if self._buffer.shape[0] > self._rows:  # give back the spare rows before the decomposition
            self._buffer = self._buffer[:self._rows].copy()
        n = self._rows
        keep = min(n_components or self.n_internal, n)
        gram = np.zeros((n, n))
        for start in range(0, self._buffer.shape[1], _BLOCK):
            block = self._buffer[:, start:start + _BLOCK].astype(np.float64)
            gram += block @ block.T
        values, vectors = np.linalg.eigh(gram)
        order = np.argsort(values)[::-1][:keep]
        values = np.clip(values[order], 0.0, None)
        basis = vectors[:, order].T / np.sqrt(np.maximum(values, max(values[0] * 1e-30, 1e-300)))[:, None]
        components = np.empty((keep, self._buffer.shape[1]))
        for start in range(0, self._buffer.shape[1], _BLOCK):
            components[:, start:start + _BLOCK] = basis @ self._buffer[:, start:start + _BLOCK].astype(np.float64)
        return GroupPCA(components=components, eigenvalues=values / self.n_timepoints, n_runs=self.n_runs,
                        n_timepoints=self.n_timepoints, peak_rows=self.peak_rows)


class ScatterAccumulator:
    """Exact PCA of temporally concatenated runs through the ``V x V`` scatter matrix
    ``sum_i X_i' X_i``, one run at a time (the reference for MIGP on small data)."""

    def __init__(self, n_components: int):
        self.n_components = int(n_components)
        self._scatter: np.ndarray | None = None
        self.n_runs = self.n_timepoints = 0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if self._scatter is not None and x.shape[1] != self._scatter.shape[0]:
            raise ICAError(f"run {self.n_runs + 1} has {x.shape[1]} voxels, earlier runs {self._scatter.shape[0]}")
        self._scatter = x.T @ x if self._scatter is None else self._scatter + x.T @ x
        self.n_runs += 1
        self.n_timepoints += x.shape[0]

    def merge(self, other: "ScatterAccumulator") -> "ScatterAccumulator":
        out = ScatterAccumulator(max(self.n_components, other.n_components))
        parts = [p._scatter for p in (self, other) if p._scatter is not None]
        out._scatter = sum(parts[1:], parts[0].copy()) if parts else None
        out.n_runs = self.n_runs + other.n_runs
        out.n_timepoints = self.n_timepoints + other.n_timepoints
        return out

    def absorb(self, other: "ScatterAccumulator") -> "ScatterAccumulator":
        """:meth:`merge` into this accumulator; ``other`` is freed. Returns this accumulator."""
        merged = self.merge(other)
        other.release()
        self.n_components, self._scatter = merged.n_components, merged._scatter
        self.n_runs, self.n_timepoints = merged.n_runs, merged.n_timepoints
        return self

    def release(self) -> None:
        """Free the scatter matrix."""
        self._scatter = None

    def result(self, n_components: int | None = None) -> GroupPCA:
        if self._scatter is None:
            raise ICAError("no runs given to the PCA")
        values, vectors = np.linalg.eigh(self._scatter)
        order = np.argsort(values)[::-1][:n_components or self.n_components]
        return GroupPCA(components=vectors[:, order].T, eigenvalues=values[order] / self.n_timepoints,
                        n_runs=self.n_runs, n_timepoints=self.n_timepoints, peak_rows=self.n_timepoints)


def migp(runs: Iterable[np.ndarray], *, n_internal: int, n_components: int | None = None, block_rows: int = 0,
         dtype=np.float32) -> GroupPCA:
    """MELODIC's Incremental Group-PCA (Smith et al. 2014) of ``runs`` (see :class:`MIGPAccumulator`).

    Parameters
    ----------
    runs : iterable of ndarray, each (T_i, V)
        Preprocessed runs, in a shuffled order (the caller's seed).
    n_internal : int
        Rows kept between runs (MELODIC: about 2 x T).
    n_components : int, optional
        Components to return (default: all ``n_internal``).
    block_rows : int, default 0
        Rows added between reductions beyond ``n_internal`` (0: after every run, as MELODIC).
    dtype : default float32
        Precision of the internal matrix (the eigenproblems are solved in float64).

    References
    ----------
    Smith SM, Hyvarinen A, Varoquaux G, Miller KL, Beckmann CF (2014). Group-PCA for very
    large fMRI datasets. NeuroImage 101:738-749.
    """
    acc = MIGPAccumulator(n_internal, block_rows=block_rows, dtype=dtype)
    for x in runs:
        acc.add(x)
    return acc.result(n_components)


def concat_pca(runs: Iterable[np.ndarray], *, n_components: int) -> GroupPCA:
    """Exact PCA of the temporally concatenated runs, through the ``V x V`` scatter matrix
    (see :class:`ScatterAccumulator`)."""
    acc = ScatterAccumulator(n_components)
    for x in runs:
        acc.add(x)
    return acc.result()


def concat_spectrum(runs: Iterable[np.ndarray]) -> np.ndarray:
    """Non-zero eigenvalues (descending) of the covariance of temporally concatenated runs.

    Each run ``(T_i, V)`` has its temporal mean removed (one dimension each), so the
    spectrum has ``sum(T_i) - n_runs`` entries at most. Computed through the smaller of
    the time x time and voxel x voxel products, block by block (the runs are never stacked
    into one copy; float32 runs are multiplied in float32 and the products summed in
    float64). Used for model-order selection on a subset of runs, where MIGP's repeatedly
    truncated spectrum has no flat noise floor.

    Examples
    --------
    >>> x = [np.random.default_rng(i).normal(size=(30, 200)) for i in range(3)]
    >>> x = [a - a.mean(0) for a in x]
    >>> stacked = np.vstack(x)
    >>> reference = np.sort(np.linalg.eigvalsh(stacked @ stacked.T))[::-1][:87] / 200
    >>> bool(np.allclose(concat_spectrum(x), reference))
    True
    """
    runs = [np.asarray(x) for x in runs]
    if not runs:
        raise ICAError("no runs for the spectrum")
    sizes = [x.shape[0] for x in runs]
    n_time, n_voxels = sum(sizes), runs[0].shape[1]
    if n_time <= n_voxels:
        product = np.empty((n_time, n_time))
        edges = np.concatenate([[0], np.cumsum(sizes)])
        for i, a in enumerate(runs):
            for j in range(i, len(runs)):
                block = np.asarray(a @ runs[j].T, dtype=np.float64)
                product[edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = block
                product[edges[j]:edges[j + 1], edges[i]:edges[i + 1]] = block.T
    else:
        product = np.zeros((n_voxels, n_voxels))
        for x in runs:
            product += np.asarray(x.T @ x, dtype=np.float64)
    values = np.sort(np.linalg.eigvalsh(product))[::-1] / n_voxels
    rank = min(n_time - len(runs), n_voxels)
    return values[:rank]
