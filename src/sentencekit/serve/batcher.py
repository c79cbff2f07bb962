"""Dynamic batching: requests are queued and packed into shared model calls by a token budget.

One worker task per batcher takes the oldest queued request, adds every other queued request with the
same settings (``key``: the prompt, or raw scores) while the batch's tokens stay within
``max_batch_tokens``, and runs the batch function on the inference thread (``run_in_executor``), so
the event loop keeps accepting requests meanwhile. Requests arriving during a model call queue up and
share the next one: under load batches grow by themselves, with no added delay (``max_wait_s`` can add
one). Every request's future gets its own slice of the results, in its own input order.

One executor thread serves all batchers of a server: the models never run two calls at once, so a
model and its tokenizer are only ever used by one thread.

A failing batch is retried request by request, so only the request at fault gets the error. A request
whose future is cancelled (its client went away: see :mod:`sentencekit.serve.middleware`) is dropped
from the queue unrun.

At shutdown, :meth:`DynamicBatcher.drain` sets a deadline: queued work runs while it can finish by then
(judged by the seconds per token of recent batches); what cannot, and whatever is still queued at the
deadline, fails with :class:`BatcherClosed` (the server answers 503 with ``Retry-After``).

>>> import asyncio
>>> async def demo():
...     batcher = DynamicBatcher(lambda key, items: [x * 2 for x in items], max_batch_tokens=100)
...     batcher.start()
...     results = await asyncio.gather(batcher.submit("k", [1, 2], 2), batcher.submit("k", [3], 1))
...     await batcher.close()
...     return [r.values for r in results]
>>> asyncio.run(demo())
[[2, 4], [6]]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


def _too_late() -> BatcherClosed:
    return BatcherClosed("the server is shutting down and could not run this request before its graceful "
                         "timeout; retry on another instance")


@dataclass
class BatchResult:
    """A request's results (a slice of the batch's) and where its time went."""

    values: Any
    queue_s: float
    inference_s: float
    batch_inputs: int
    batch_requests: int


@dataclass
class _Job:
    key: Hashable
    items: Sequence[Any]
    tokens: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Queue + worker packing requests by tokens (see the module docstring).

    ``run(key, items)`` runs on the inference thread and returns one result per item (a list or an
    array). ``metrics`` (optional) is a :class:`sentencekit.serve.server_metrics.ServerMetrics`; ``name``
    labels this batcher's series.
    """

    def __init__(self, run: Callable[[Hashable, list[Any]], Sequence[Any]], *, max_batch_tokens: int,
                 max_wait_s: float = 0.0, executor: concurrent.futures.Executor | None = None,
                 metrics: Any = None, name: str = "embedder") -> None:
        if max_batch_tokens <= 0:
            raise ValueError(f"max_batch_tokens must be positive, got {max_batch_tokens}")
        self._run = run
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sentencekit-infer")
        self._metrics = metrics
        self.name = name
        self._queue: deque[_Job] = deque()
        self._queued_items = 0
        self._queued_tokens = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closing = False
        self._deadline: float | None = None  # monotonic; set by drain()
        self._expiry: asyncio.TimerHandle | None = None
        self._seconds_per_token: float | None = None  # moving average over recent batches

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker (call from the running event loop)."""
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.name}")

    def drain(self, deadline: float | None) -> None:
        """Shutdown has begun: run queued work only while it can end by ``deadline`` (``time.monotonic()``
        seconds; ``None``: no limit) and fail the rest, and whatever is queued at the deadline, with
        :class:`BatcherClosed`. Requests may still be submitted until the deadline."""
        if deadline is None:
            return
        self._deadline = deadline
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()), self._fail_queued)
        if self._wakeup is not None:
            self._wakeup.set()

    async def close(self) -> None:
        """Stop taking work, run everything still queued, then stop the worker. Past a :meth:`drain`
        deadline nothing is waited for: queued work fails (503) and a model call still running is
        abandoned (its requests were answered already), so that the process can exit in time."""
        self._closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        late = self._past_deadline()
        if late:
            self._fail_queued()
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            if late and not self._worker.done():
                self._worker.cancel()  # the thread finishes its call on its own; nobody waits for it
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._own_executor:
            self._executor.shutdown(wait=not late, cancel_futures=late)

    @property
    def past_deadline(self) -> bool:
        """Whether a :meth:`drain` deadline has passed."""
        return self._past_deadline()

    @property
    def queued_items(self) -> int:
        """Inputs waiting for a batch."""
        return self._queued_items

    # -- submitting -----------------------------------------------------------------------------------
    async def submit(self, key: Hashable, items: Sequence[Any], tokens: int) -> BatchResult:
        """Queue ``items`` (costing ``tokens``) under ``key`` and wait for their results."""
        if self._closing or self._worker is None or self._past_deadline():
            raise BatcherClosed("the server is shutting down; retry on another instance")
        job = _Job(key, items, max(1, int(tokens)), asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._account(len(items), job.tokens)
        self._wakeup.set()
        return await job.future

    def _account(self, items: int, tokens: int) -> None:
        self._queued_items += items
        self._queued_tokens += tokens
        if self._metrics is not None:
            self._metrics.queue_depth.set(self._queued_items, model=self.name)

    # -- the worker -----------------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_wait_s > 0 and not self._closing:
                await self._wait_for_more()
            batch = self._take()
            if self._deadline is not None and batch and not self._can_finish(batch):
                for job in batch:
                    self._fail(job, _too_late())
                self._fail_queued()
                continue
            try:
                await self._run_batch(batch)
            except Exception as exc:  # noqa: BLE001 - a bug here must not leave requests waiting forever
                logger.exception("batch bookkeeping failed")
                for job in batch:
                    self._fail(job, exc)

    async def _wait_for_more(self) -> None:
        """Give more requests up to ``max_wait_s`` (from the oldest one's arrival) to join a batch."""
        deadline = self._queue[0].enqueued + self.max_wait_s
        while not self._closing and self._queued_tokens < self.max_batch_tokens:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                return

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _can_finish(self, batch: list[_Job]) -> bool:
        """Whether ``batch`` should end before the drain deadline, at the recent seconds per token."""
        rate = self._seconds_per_token or 0.0
        return time.monotonic() + rate * sum(job.tokens for job in batch) < self._deadline

    def _fail_queued(self) -> None:
        """Fail every queued job (the drain deadline has come, or the rest of the queue cannot make it)."""
        while self._queue:
            job = self._queue.popleft()
            self._account(-len(job.items), -job.tokens)
            self._fail(job, _too_late())

    def _take(self) -> list[_Job]:
        """The oldest job, and the queued jobs with its key that fit the token budget (oldest first)."""
        head = self._queue[0]
        batch, tokens, kept = [], 0, deque()
        for job in self._queue:
            if job.future.done():  # the client went away: drop it
                self._account(-len(job.items), -job.tokens)
                continue
            fits = job.key == head.key and (not batch or tokens + job.tokens <= self.max_batch_tokens)
            if fits:
                batch.append(job)
                tokens += job.tokens
                self._account(-len(job.items), -job.tokens)
            else:
                kept.append(job)
        self._queue = kept
        return batch

    async def _run_batch(self, batch: list[_Job]) -> None:
        if not batch:
            return
        loop = asyncio.get_running_loop()
        key = batch[0].key
        items = [x for job in batch for x in job.items]
        started = time.monotonic()
        try:
            values = await loop.run_in_executor(self._executor, self._run, key, items)
            if len(values) != len(items):
                raise RuntimeError(f"the batch function returned {len(values)} results for {len(items)} inputs")
        except Exception as exc:  # noqa: BLE001 - isolate the request at fault, below
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            logger.warning("a batch of %d requests failed (%s); retrying them one by one", len(batch), exc)
            for job in batch:
                await self._run_batch([job])
            return
        elapsed = time.monotonic() - started
        rate = elapsed / max(1, sum(job.tokens for job in batch))
        previous = self._seconds_per_token
        self._seconds_per_token = rate if previous is None else 0.7 * previous + 0.3 * rate
        self._observe(batch, len(items), elapsed)
        offset = 0
        for job in batch:
            n = len(job.items)
            if not job.future.done():
                job.future.set_result(BatchResult(values[offset: offset + n], started - job.enqueued, elapsed,
                                                  len(items), len(batch)))
            offset += n

    def _fail(self, job: _Job, exc: Exception) -> None:
        if not job.future.done():
            job.future.set_exception(exc)

    def _observe(self, batch: list[_Job], n_items: int, elapsed: float) -> None:
        m = self._metrics
        if m is None:
            return
        tokens = sum(job.tokens for job in batch)
        m.batch_size.observe(n_items, model=self.name)
        m.batch_requests.observe(len(batch), model=self.name)
        m.batch_tokens.observe(tokens, model=self.name)
        m.inference_time.observe(elapsed, model=self.name)
        m.tokens.inc(tokens, model=self.name)
        m.inputs.inc(n_items, model=self.name)
        now = time.monotonic()
        for job in batch:
            m.queue_time.observe(max(0.0, now - elapsed - job.enqueued), model=self.name)
