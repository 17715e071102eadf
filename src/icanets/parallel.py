"""The executor: run independent per-item work in threads, with single-threaded BLAS.

Per-run kernels (a covariance of 1,200 x 172, an inverse of 172 x 172) are too small for
a multi-threaded BLAS to help: on small machines its thread hand-offs cost more than the
arithmetic. So the BLAS runs one thread per call, and the runs are spread over a pool of
threads instead (numpy releases the GIL inside BLAS and LAPACK). Every item is computed
the same way whatever the number of workers, so results do not depend on it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["map_items", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Workers used when none is asked for: the CPUs this process may use, at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        available = os.cpu_count() or 1
    return max(1, min(8, available))


def map_items(function: Callable[[T], R], items: Iterable[T], *, n_jobs: int | None = None) -> list[R]:
    """``[function(item) for item in items]``, in order, on ``n_jobs`` threads (default: all CPUs)."""
    items = list(items)
    workers = default_workers() if n_jobs is None else n_jobs
    if workers < 1:
        raise ValueError(f"n_jobs must be at least 1, got {n_jobs}")
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(function, items))
