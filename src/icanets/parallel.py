"""The executor: run independent per-item work in threads, or as Dask tasks.

Per-run kernels (a covariance of 1,200 x 172, an inverse of 172 x 172) are too small for
a multi-threaded BLAS to help: on small machines its thread hand-offs cost more than the
arithmetic. So every item runs with a single-threaded BLAS, and items are spread over a
pool of threads (numpy releases the GIL inside BLAS and LAPACK), or over the workers of a
``dask.distributed`` cluster when one is in use (:func:`use_dask`). Every item is computed
the same way wherever it runs, so results do not depend on the number of workers, the
chunking, or the backend.
"""

from __future__ import annotations

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

from threadpoolctl import threadpool_limits

from icanets.errors import IcanetsError

__all__ = ["map_items", "stream_items", "default_workers", "use_dask", "dask_client"]

T = TypeVar("T")
R = TypeVar("R")

_CLIENT: contextvars.ContextVar = contextvars.ContextVar("icanets_dask_client", default=None)


def available_cpus() -> int:
    """The CPUs this process may use (its affinity mask, where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Workers used when none is asked for: the CPUs this process may use, at most 8."""
    return min(8, available_cpus())


#: Seconds :func:`dask_client` waits for a ``tcp://`` scheduler (Dask retries a refused
#: connection until then).
CONNECT_TIMEOUT = 20.0


def _batch(function: Callable[[T], R]) -> Callable[[list[T]], list[R]]:
    def run(items: list[T]) -> list[R]:
        with threadpool_limits(limits=1, user_api="blas"):
            return [function(item) for item in items]

    return run


def map_items(function: Callable[[T], R], items: Iterable[T], *, n_jobs: int | None = None) -> list[R]:
    """``[function(item) for item in items]``, in order.

    In-process on ``n_jobs`` threads (default: all CPUs), or on the Dask cluster set by
    :func:`use_dask` (items grouped into a few tasks per worker, so large arguments captured
    by ``function`` travel a few times only).
    """
    items = list(items)
    client = _CLIENT.get()
    if client is not None and len(items) > 1:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        n_tasks = min(len(items), 2 * n_workers)
        groups = [items[k::n_tasks] for k in range(n_tasks)]
        futures = client.map(_batch(function), groups, pure=False)
        parts = client.gather(futures)
        out: list = [None] * len(items)
        for k, part in enumerate(parts):
            out[k::n_tasks] = part
        return out
    workers = default_workers() if n_jobs is None else n_jobs
    if workers < 1:
        raise IcanetsError(f"n_jobs must be at least 1, got {n_jobs}")
    # threadpoolctl's limit is process-wide: set it once around the whole pool.
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1 or len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(function, items))


def stream_items(function: Callable[[T], R], items: Iterable[T], *, window: int | None = None) -> Iterator[R]:
    """``function(item)`` for each item, yielded in order, computed ``window`` at a time.

    Memory holds at most ``window`` results, however many items there are (for streamed
    reductions such as MIGP).
    """
    items = list(items)
    client = _CLIENT.get()
    if window is None:
        window = 2 * max(1, len(client.scheduler_info().get("workers", {}))) if client is not None \
            else default_workers()
    for start in range(0, len(items), window):
        yield from map_items(function, items[start:start + window])


@contextmanager
def use_dask(client) -> Iterator[None]:
    """Within the block, :func:`map_items` and :func:`stream_items` run on ``client``."""
    token = _CLIENT.set(client)
    try:
        yield
    finally:
        _CLIENT.reset(token)


@contextmanager
def dask_client(scheduler: str, *, connect_timeout: float | None = None) -> Iterator[object]:
    """A ``dask.distributed`` client for ``tcp://HOST:PORT`` (connecting within
    ``connect_timeout`` seconds, default :data:`CONNECT_TIMEOUT`) or a new ``LocalCluster`` for
    ``local:N`` (N >= 1)."""
    connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise IcanetsError("--scheduler needs dask.distributed: pip install 'icanets[dask]'") from None
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            raise IcanetsError(f"scheduler must be local:N with a number N, got {scheduler!r}") from None
        if n < 1:
            raise IcanetsError(f"scheduler local:N needs at least one worker, got {scheduler!r}")
        # Starting the workers sets OPENBLAS_NUM_THREADS=1 (and OMP/MKL, PYTHONHASHSEED) in this
        # process's environment; processes started later (a subprocess, a second run) would inherit
        # a single-threaded BLAS and compute differently. Put the environment back once they run.
        environment = dict(os.environ)
        try:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        finally:
            os.environ.clear()
            os.environ.update(environment)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
            os.environ.clear()
            os.environ.update(environment)
    elif scheduler.startswith("tcp://"):
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise IcanetsError(f"cannot reach the Dask scheduler {scheduler} within {connect_timeout:g} s "
                               f"({type(exc).__name__}: {exc}); is it running, and is the address right?") from None
        try:
            yield client
        finally:
            client.close()
    else:
        raise IcanetsError(f"scheduler must be tcp://HOST:PORT or local:N, got {scheduler!r}")
