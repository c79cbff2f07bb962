"""The loop a pool worker runs: build the model once, then call ``encode`` / ``predict`` on each chunk
it is sent and send back the result, or the exception with its traceback. A worker never dies of a
bad chunk; it exits on a ``None`` task, or when its parent is gone.

Messages to the parent (over the worker's own pipe):

- ``("ready", pid)`` once the model is loaded; ``("load_error", text, traceback)`` if it could not be;
- ``("ok", job, chunk, (result, truncated, max_seq_length))``: the chunk's result and which of its inputs
  were cut at ``max_seq_length`` (positions in the chunk; the parent reports them once for the whole job,
  so workers do not warn themselves); ``("error", job, chunk, text, traceback)``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback
import warnings
from typing import Any

from sentencekit.parallel.payload import materialize
from sentencekit.pipeline.batching import TruncationWarning


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def worker_main(payload: Any, device: str | None, num_threads: int | None, tasks: Any, results: Any,
                cancelled: Any) -> None:
    """Entry point of a spawned worker process."""
    try:
        model = materialize(payload, device=device, num_threads=num_threads)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent, not a hang
        results.send(("load_error", _describe(exc), traceback.format_exc()))
        raise SystemExit(1) from None
    del payload
    results.send(("ready", os.getpid()))
    parent = multiprocessing.parent_process()
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return  # orphaned: the parent died without stopping the pool
            continue
        if task is None:
            return
        job, chunk, method, items, kwargs = task
        if job <= cancelled.value:
            continue  # the job this chunk belonged to was abandoned (an error, or the caller stopped early)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TruncationWarning)
                result = getattr(model, method)(items, **kwargs)
            info = getattr(model, "last_info", None)
            # the limit the call cut at (a multi-vector query's or a Router route's own), else the model's
            limit = getattr(info, "max_seq_length", None) or getattr(model, "max_seq_length", None)
            message: tuple = ("ok", job, chunk, (result, tuple(getattr(info, "truncated_indices", ())), limit))
        except Exception as exc:
            message = ("error", job, chunk, _describe(exc), traceback.format_exc())
        try:
            results.send(message)
        except (BrokenPipeError, EOFError):
            return
        except Exception as exc:  # a result that cannot be pickled
            results.send(("error", job, chunk, f"could not send the result back: {_describe(exc)}",
                          traceback.format_exc()))
