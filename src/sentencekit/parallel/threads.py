"""CPU budgeting for worker processes: how many cores this process may use, how many threads each of N
workers gets so that workers x threads never exceeds them, and the environment a worker starts with
(OpenMP / MKL / tokenizers read their thread counts when they load, before any code of ours runs).

>>> threads_per_worker(2, cores=8)
4
>>> threads_per_worker(4, cores=2)
1
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

# Variables the numeric libraries read once, at import: they must be set before the worker starts.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")

_env_lock = threading.Lock()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


def threads_per_worker(num_workers: int, cores: int | None = None) -> int:
    """``cores // num_workers`` (at least 1): the intra-op threads of each worker."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, num_workers))


@contextlib.contextmanager
def child_thread_env(num_threads: int) -> Iterator[None]:
    """Set the thread variables while child processes are spawned (they copy the environment when they
    start), then restore the parent's own values."""
    values = {name: str(num_threads) for name in THREAD_ENV_VARS}
    with _env_lock:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
