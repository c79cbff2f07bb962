"""The multi-process pool: N spawned workers, each holding the model once, fed chunks of a job and
watched while they work.

- **Chunking and order.** A job (``encode`` or ``predict`` over many inputs) is cut into chunks. Each
  worker has its own task queue and at most two chunks queued (one running, one waiting), so no worker
  idles and the parent never holds more than a few chunks of results; results are yielded in input order.
- **Health.** Each worker answers on its own pipe. The parent waits on those pipes *and* on the
  processes' exit sentinels, so a worker that dies (SIGKILL, the OOM killer, a segfault) is noticed at
  once: the job raises :class:`PoolWorkerError` naming the worker, its exit code or signal and the
  inputs it held, instead of hanging as sentence-transformers' pool does. An exception inside a worker
  comes back with its traceback and is raised the same way; that worker stays usable.
- **Starting** does not re-run the caller's script in the workers unless the model needs it (see
  :mod:`sentencekit.parallel.spawn`), so a script without ``if __name__ == "__main__":`` works; a worker
  that dies while starting is an error that names the fix.
- **Threads.** One pool may be used from several threads at once (``encode`` and ``predict`` alike): jobs
  take turns, each running on all workers, so every result goes to the call it belongs to.
- **Stopping** always works, after a crash too: workers get a stop task, are joined with a deadline,
  then terminated.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import pickle
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from multiprocessing.connection import wait
from typing import Any

from sentencekit.parallel.payload import is_torch_model, portable_model
from sentencekit.parallel.spawn import needs_user_main, spawning
from sentencekit.parallel.threads import available_cores, child_thread_env, threads_per_worker
from sentencekit.parallel.worker import worker_main

logger = logging.getLogger(__name__)

_POLL_S = 0.5  # how often an idle parent re-checks worker health
_QUEUED_PER_WORKER = 2  # one chunk running, one waiting
_RESTART_HINT = ("The pool cannot be used any more: stop it (stop_multi_process_pool(pool), or leave its "
                 "`with` block) and start a new one.")
_MAIN_HINT = ("The workers re-ran your script because the model's class (or something it holds) is defined "
              "in it, and the script starts a pool at top level: put that code under "
              "`if __name__ == \"__main__\":`, or move the class into a module you import. The worker's own "
              "error is printed above.")
_START_HINT = "The worker's own error is printed above (on stderr)."


class PoolWorkerError(RuntimeError):
    """A pool worker died, could not load the model, or raised on a chunk; the message says which worker,
    why, and which inputs it was working on."""


def describe_exit(exitcode: int | None) -> str:
    """``"was killed by SIGKILL (...)"`` / ``"exited with code 1"`` for a process exit code.

    >>> describe_exit(-9)
    "was killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)"
    >>> describe_exit(3)
    'exited with code 3'
    """
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"


def default_target_devices(model: Any) -> list[str]:
    """All CUDA devices for a torch model on a GPU machine, else ``min(4, cores)`` CPU workers."""
    if is_torch_model(model):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * min(4, available_cores())


def default_chunk_size(num_inputs: int, num_workers: int) -> int:
    """sentence-transformers' default: about ten chunks per worker, at most 5000 inputs each.

    >>> default_chunk_size(1000, 2)
    50
    """
    return max(1, min(math.ceil(num_inputs / max(1, num_workers) / 10), 5000))


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if isinstance(items, Sequence):
        for start in range(0, len(items), size):
            yield list(items[start:start + size])
        return
    iterator = iter(items)
    while part := list(itertools.islice(iterator, size)):
        yield part


class MultiProcessPool(dict):
    """Worker processes holding one model each. It is the ``dict`` sentence-transformers returns
    (keys ``"input"``: the workers' task queues, ``"output"``: their result pipes, ``"processes"``), and
    a context manager that stops the workers on exit.

    >>> with model.start_multi_process_pool() as pool:            # doctest: +SKIP
    ...     emb = model.encode(texts, pool=pool, chunk_size=1000)
    """

    def __init__(self, model: Any, target_devices: Sequence[str] | None = None, *,
                 threads_per_worker: int | None = None) -> None:
        super().__init__()
        devices = [str(d) for d in (target_devices if target_devices is not None else default_target_devices(model))]
        if not devices:
            raise ValueError("target_devices is empty: pass e.g. ['cpu', 'cpu'] or ['cuda:0', 'cuda:1'] "
                             "(or None for all GPUs / several CPU workers).")
        if not is_torch_model(model) and any(d != "cpu" for d in devices):
            raise ValueError(f"{type(model).__name__} runs on the CPU only; use target_devices=['cpu', ...], "
                             f"not {devices}.")
        if threads_per_worker is not None and (not isinstance(threads_per_worker, int) or threads_per_worker <= 0):
            raise ValueError(f"threads_per_worker must be a positive integer, got {threads_per_worker!r}")
        self.devices = devices
        self.threads_per_worker = threads_per_worker or _threads_for(len(devices))
        self._stopped = False
        self._broken: str | None = None
        self._jobs = itertools.count()
        # Jobs take turns: the workers' pipes carry one job's chunks at a time, and a job that read
        # another's results would drop them (the other would wait forever).
        self._job_lock = threading.Lock()
        self._index_of: Sequence[int] | None = None
        self._pids: list[int | None] = [None] * len(devices)
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch's and tokenizers' threads
        self._cancelled = ctx.Value("q", -1)
        self.update({"input": [], "output": [], "processes": []})
        moved_from = None
        if is_torch_model(model):
            import torch.multiprocessing  # noqa: F401 - registers shared-memory pickling of tensors

            if model.device.type != "cpu":  # workers map CPU shared memory, then move to their own device
                moved_from = model.device
                model.to("cpu")
            model.share_memory()
        payload = portable_model(model)
        self._needs_main = needs_user_main(payload)
        try:
            with child_thread_env(self.threads_per_worker), spawning(clean_main=not self._needs_main):
                for device in devices:
                    tasks = ctx.Queue()
                    receiver, sender = ctx.Pipe(duplex=False)
                    process = ctx.Process(target=worker_main, name=f"sentencekit-pool-{len(self['processes'])}",
                                          args=(payload, device, self.threads_per_worker, tasks, sender,
                                                self._cancelled), daemon=True)
                    process.start()
                    sender.close()  # only the worker writes: its death then reads as EOF here
                    self["input"].append(tasks)
                    self["output"].append(receiver)
                    self["processes"].append(process)
            self._wait_ready()
        except BaseException:
            self.stop(timeout=2)
            raise
        finally:
            if moved_from is not None:
                model.to(moved_from)
        logger.info("Started %s", self)

    # -- inspection -----------------------------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        return len(self.devices)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "broken" if self._broken else "running"
        return (f"MultiProcessPool({self.num_workers} workers on {self.devices}, "
                f"{self.threads_per_worker} threads each, {state})")

    def _name(self, i: int) -> str:
        return f"pool worker {i} (pid {self._pids[i] or self['processes'][i].pid}, device {self.devices[i]})"

    # -- health ---------------------------------------------------------------------------------------
    def _death(self, i: int, doing: str, hint: str = _RESTART_HINT) -> PoolWorkerError:
        process = self["processes"][i]
        process.join(timeout=2)  # the exit code is set once the process is reaped
        self._broken = f"{self._name(i)} {describe_exit(process.exitcode)} {doing}."
        return PoolWorkerError(f"{self._broken} {hint}")

    def _recv(self, i: int, doing: str, hint: str = _RESTART_HINT) -> tuple:
        try:
            return self["output"][i].recv()
        except (EOFError, OSError):
            raise self._death(i, doing, hint) from None

    def _wait_ready(self) -> None:
        # A worker that dies before its first message died starting: re-running the caller's script,
        # or importing / unpickling the model.
        doing = "while starting (before it could load the model)"
        hint = _MAIN_HINT if self._needs_main else _START_HINT
        pending = set(range(self.num_workers))
        while pending:
            wait([self["output"][i] for i in pending] + [self["processes"][i].sentinel for i in pending],
                 timeout=_POLL_S)
            for i in sorted(pending):
                if self["output"][i].poll():
                    message = self._recv(i, doing, hint)
                    if message[0] == "load_error":
                        self._broken = f"{self._name(i)} could not load the model: {message[1]}"
                        raise PoolWorkerError(f"{self._broken}\n\nWorker traceback:\n{message[2]}")
                    self._pids[i] = message[1]
                    pending.discard(i)
                elif not self["processes"][i].is_alive():
                    raise self._death(i, doing, hint)

    def _check_usable(self) -> None:
        if self._stopped:
            raise RuntimeError("This pool was stopped; start a new one with model.start_multi_process_pool().")
        if self._broken:
            raise PoolWorkerError(f"{self._broken} {_RESTART_HINT}")
        for i, process in enumerate(self["processes"]):
            if not process.is_alive():
                raise self._death(i, "while the pool was idle")

    # -- jobs -----------------------------------------------------------------------------------------
    def map_chunks(self, method: str, items: Iterable[Any], *, chunk_size: int, kwargs: dict[str, Any],
                   progress: Any = None, index_of: Sequence[int] | None = None) -> Iterator[Any]:
        """Run ``model.<method>(chunk, **kwargs)`` on the workers over ``items`` cut into chunks of
        ``chunk_size``; yield each chunk's result in input order. ``progress`` (a tqdm bar) advances by
        the inputs of each finished chunk. Raises :class:`PoolWorkerError` if a worker dies or raises, naming
        the chunk's inputs (``index_of[position]``: the caller's index of each position, when it reordered).
        Jobs from several threads take turns (one job at a time on all workers)."""
        self._check_usable()
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        try:
            pickle.dumps(kwargs)
        except Exception as exc:
            raise TypeError(f"The arguments of {method}() must be picklable to reach the pool workers "
                            f"({exc}); pass e.g. a torch.nn.Module instead of a lambda.") from exc
        # Held until the job is consumed or closed: a caller that stops iterating early must close the
        # generator (run_pooled consumes it whole), or other threads' jobs wait for it.
        with self._job_lock:
            self._check_usable()  # again: the job that ran before this one may have broken the pool
            yield from self._run_job(method, items, chunk_size=chunk_size, kwargs=kwargs, progress=progress,
                                     index_of=index_of)

    def _run_job(self, method: str, items: Iterable[Any], *, chunk_size: int, kwargs: dict[str, Any],
                 progress: Any, index_of: Sequence[int] | None) -> Iterator[Any]:
        job = next(self._jobs)
        self._index_of = index_of
        source = enumerate(_chunks(items, chunk_size))
        in_flight: list[dict[int, tuple[int, int]]] = [{} for _ in range(self.num_workers)]
        done: dict[int, Any] = {}
        sent = received_upto = position = 0
        exhausted = finished = False
        window = 2 * _QUEUED_PER_WORKER * self.num_workers  # results held for order, at most
        try:
            while True:
                while not exhausted:
                    w = min(range(self.num_workers), key=lambda i: len(in_flight[i]))
                    if len(in_flight[w]) >= _QUEUED_PER_WORKER or sent - received_upto >= window:
                        break
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                        break
                    cid, part = chunk
                    self["input"][w].put((job, cid, method, part, kwargs))
                    in_flight[w][cid] = (position, len(part))
                    position += len(part)
                    sent += 1
                while received_upto in done:
                    yield done.pop(received_upto)
                    received_upto += 1
                if exhausted and received_upto == sent:
                    finished = True
                    return
                self._receive(job, method, in_flight, done, progress)
        finally:
            if not finished:  # workers skip the chunks of this job still queued
                self._cancelled.value = max(self._cancelled.value, job)

    def _receive(self, job: int, method: str, in_flight: list[dict[int, tuple[int, int]]], done: dict[int, Any],
                 progress: Any) -> None:
        processes = self["processes"]
        wait(list(self["output"]) + [p.sentinel for p in processes], timeout=_POLL_S)
        for i, conn in enumerate(self["output"]):
            while conn.poll():
                message = self._recv(i, _doing(method, in_flight[i], self._index_of))
                if message[0] not in ("ok", "error") or message[1] != job:
                    continue  # a late result of an abandoned job
                cid = message[2]
                start, count = in_flight[i][cid]
                if message[0] == "error":
                    raise PoolWorkerError(
                        f"{self._name(i)} raised {message[3]} in {method}() on {_inputs(start, count, self._index_of)} "
                        f"(chunk {cid}).\n\nWorker traceback:\n{message[4]}")
                del in_flight[i][cid]
                done[cid] = message[3]
                if progress is not None:
                    progress.update(count)
        for i, process in enumerate(processes):
            if not process.is_alive():
                raise self._death(i, _doing(method, in_flight[i], self._index_of))

    # -- stopping -------------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers: a stop task each, a join within ``timeout`` seconds, then terminate. Safe to
        call twice and after a worker died."""
        if self._stopped:
            return
        self._stopped = True
        self._cancelled.value = 2**62  # queued chunks are skipped
        processes = self["processes"]
        for tasks, process in zip(self["input"], processes):
            if process.is_alive():
                tasks.put(None)
        deadline = time.monotonic() + timeout
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            for conn in self["output"]:  # a worker blocked sending a result must get to its stop task
                try:
                    while conn.poll():
                        conn.recv()
                except (EOFError, OSError):
                    pass
            wait([p.sentinel for p in processes if p.is_alive()], timeout=0.1)
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(2)
            if process.is_alive():
                process.kill()
            process.join()
        for tasks in self["input"]:
            tasks.cancel_join_thread()  # a dead worker's queue may never be drained
            tasks.close()
        for conn in self["output"]:
            conn.close()
        logger.info("Stopped %s", self)

    def __enter__(self) -> MultiProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _threads_for(num_workers: int) -> int:
    return threads_per_worker(num_workers)


def _inputs(start: int, count: int, index_of: Sequence[int] | None) -> str:
    """``inputs 30..39``, or the caller's indices of a reordered chunk: ``inputs 4, 17, 30 (3 inputs)``."""
    if index_of is None:
        return f"inputs {start}..{start + count - 1}"
    indices = sorted(index_of[start:start + count])
    shown = ", ".join(str(i) for i in indices[:16]) + (", ..." if len(indices) > 16 else "")
    return f"inputs {shown} ({count} inputs)"


def _doing(method: str, chunks: dict[int, tuple[int, int]], index_of: Sequence[int] | None = None) -> str:
    if not chunks:
        return "while idle"
    cid = min(chunks)
    start, count = chunks[cid]
    return f"while running {method}() on {_inputs(start, count, index_of)} (chunk {cid})"


def start_pool(model: Any, target_devices: Sequence[str] | None = None, *,
               threads_per_worker: int | None = None) -> MultiProcessPool:
    """Start a :class:`MultiProcessPool` for ``model`` (see ``model.start_multi_process_pool``)."""
    return MultiProcessPool(model, target_devices, threads_per_worker=threads_per_worker)


def stop_pool(pool: Any) -> None:
    """Stop a pool made by :func:`start_pool` (or a sentence-transformers style dict of processes)."""
    if isinstance(pool, MultiProcessPool):
        pool.stop()
        return
    for process in pool.get("processes", []):  # a plain dict: best effort, as sentence-transformers
        process.terminate()
    for process in pool.get("processes", []):
        process.join()
