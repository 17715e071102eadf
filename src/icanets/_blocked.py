"""Products and moments of a run ``(T, V)`` a block of voxels at a time.

Each block is multiplied in the data's own precision (float32 data in float32: half the
memory traffic and twice the GEMM rate of float64) and the products over voxels are summed
in float64, so a run is never copied whole and sums over ~10^5 voxels do not accumulate
float32 rounding."""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK", "working", "gram", "run_moments"]

#: Voxels per block (a block of a 500-volume float32 run is 8 MB).
BLOCK = 4096


def working(data: np.ndarray) -> np.ndarray:
    """``data`` as float32 or float64 (other types as float64), without a copy where possible."""
    data = np.asarray(data)
    return data if data.dtype in (np.float32, np.float64) else data.astype(np.float64)


def gram(data: np.ndarray) -> np.ndarray:
    """``data data'`` ``(T, T)`` in float64, each block's product in the data's precision.

    Examples
    --------
    Against float64, relative to the largest entry (entries near zero carry the same absolute
    rounding as the rest, so an entry-wise relative check depends on the BLAS kernel):

    >>> x = np.random.default_rng(0).normal(size=(5, 10000))
    >>> exact = x @ x.T
    >>> bool(np.abs(gram(x.astype(np.float32)) - exact).max() <= 1e-6 * np.abs(exact).max())
    True
    """
    data = working(data)
    out = np.zeros((data.shape[0], data.shape[0]))
    for start in range(0, data.shape[1], BLOCK):
        block = data[:, start:start + BLOCK]
        out += block @ block.T
    return out


def run_moments(data: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Of a run ``(T, V)``, a block of voxels at a time: its mean image, its sum of squares
    about that mean (its energy) and its DVARS (the root mean square over voxels of the
    backward temporal difference; the first volume's is 0, Power et al. 2012). Differences
    are taken in the data's precision and every sum in float64.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(6, 10000)).astype(np.float32)
    >>> mean, energy, dv = run_moments(x)
    >>> x64 = x.astype(float)
    >>> bool(np.isclose(energy, ((x64 - x64.mean(0)) ** 2).sum()))
    True
    >>> bool(np.allclose(dv[1:], np.sqrt((np.diff(x64, axis=0) ** 2).mean(1))))
    True
    """
    data = working(data)
    t, v = data.shape
    mean = data.mean(axis=0, dtype=np.float64)
    centre = mean.astype(data.dtype)
    energy = 0.0
    change = np.zeros(max(t - 1, 0))
    for start in range(0, v, BLOCK):
        block = data[:, start:start + BLOCK]
        step = np.diff(block, axis=0)
        change += np.einsum("tv,tv->t", step, step)  # float32 data: a block's sums in float32 (~1e-6)
        block = block - centre[start:start + BLOCK]
        energy += float(np.einsum("tv,tv->v", block, block).sum(dtype=np.float64))
    return mean, energy, np.concatenate([[0.0], np.sqrt(change / v)])
