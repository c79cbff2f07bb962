"""Multi-process inference on one machine: a pool of spawned workers, each holding the model once.

>>> from sentencekit import SentenceTransformer                           # doctest: +SKIP
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
>>> with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
...     emb = model.encode(texts, pool=pool, chunk_size=1000)
>>> emb.shape
(100000, 384)

``target_devices=None`` starts one worker per CUDA device, or ``min(4, cores)`` CPU workers; each worker
runs ``cores // workers`` threads, so the pool never oversubscribes the CPU. A worker that dies or
raises makes the call raise :class:`PoolWorkerError` naming the worker and the cause; the pool can then
be stopped (see :mod:`sentencekit.parallel.pool`). Several threads may use one pool (their jobs take
turns), and a script needs no ``if __name__ == "__main__":`` guard unless the model's class is defined in
it (see :mod:`sentencekit.parallel.spawn`). The model reaches workers as described in
:mod:`sentencekit.parallel.payload` (shared-memory weights for torch; the folder for ONNX).
"""

from __future__ import annotations

from typing import Any

from sentencekit.parallel.pool import MultiProcessPool, PoolWorkerError, default_chunk_size, start_pool, stop_pool
from sentencekit.parallel.threads import available_cores, threads_per_worker


def start_multi_process_pool(model: Any, target_devices: list[str] | None = None, *,
                             threads_per_worker: int | None = None) -> MultiProcessPool:
    """Start worker processes that each hold ``model`` (see ``SentenceTransformer.start_multi_process_pool``)."""
    return start_pool(model, target_devices, threads_per_worker=threads_per_worker)


def stop_multi_process_pool(pool: Any) -> None:
    """Stop the workers of ``pool``; safe after a worker died, and twice."""
    stop_pool(pool)


__all__ = ["MultiProcessPool", "PoolWorkerError", "start_multi_process_pool", "stop_multi_process_pool",
           "default_chunk_size", "available_cores", "threads_per_worker"]
