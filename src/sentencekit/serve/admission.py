"""Admission: the ``--max-concurrent-requests`` slots, a short wait for one, and the drain at shutdown.

A request past the limit waits up to ``--admission-wait-ms`` for a slot (first come, first served)
before it is answered 429 with ``Retry-After``. The wait is what keeps the server serving while it
sheds load: clients that retry at once after a 429 would otherwise make the server spend its CPU (and
the GIL its inference thread needs) answering thousands of 429s a second; waiting, each such client
costs at most one 429 per wait. Measured by ``benchmarks/serve_load.py --overload-clients 256``.

At shutdown (:meth:`Admission.drain`) the waiting requests and every new one are answered 503 with
``Retry-After`` and ``Connection: close``; the admitted ones go on.

>>> import asyncio
>>> async def demo():
...     admission = Admission(limit=1, wait_s=0.0)
...     await admission.acquire()
...     try:
...         await admission.acquire()
...     except ApiError as exc:
...         return exc.status, admission.in_flight
>>> asyncio.run(demo())
(429, 1)
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from sentencekit.serve.http_errors import ApiError

#: seconds a client is told to wait (``Retry-After``) after a 429 or a 503 while draining
RETRY_AFTER_S = 1


class Admission:
    """``limit`` requests in flight; ``wait_s`` seconds of waiting for a slot; ``metrics`` (optional, a
    :class:`~sentencekit.serve.server_metrics.ServerMetrics`) gets the ``in_flight`` gauge. Use from one event
    loop."""

    def __init__(self, limit: int, wait_s: float, metrics: Any = None) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self.limit, self.wait_s, self._metrics = limit, max(0.0, wait_s), metrics
        self.in_flight = 0
        self.draining = False
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> None:
        """Take a slot, waiting up to ``wait_s`` for one; raises :class:`ApiError` 429 when none freed in
        time, 503 while draining. Every successful call must be paired with :meth:`release`."""
        if self.draining:
            raise self.shutting_down()
        if self.in_flight < self.limit and not self._waiters:
            self._take()
            return
        if self.wait_s > 0:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self.wait_s)
            except asyncio.TimeoutError:
                pass
            except BaseException:  # 503 from drain(), or the request was cancelled (its client left)
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self.release()  # a slot was handed over to a request that is gone: pass it on
                raise
            finally:
                if not waiter.done():
                    waiter.cancel()
                    self._waiters.remove(waiter)
            if not waiter.cancelled():
                return  # release() handed its slot over (already counted), maybe just as the wait ran out
        waited = f" and none finished within {self.wait_s:g} s (--admission-wait-ms)" if self.wait_s else ""
        raise ApiError(429, f"the server already has {self.limit} requests in flight (--max-concurrent-requests)"
                            f"{waited}; retry after {RETRY_AFTER_S} s",
                       "Overloaded", code="rate_limit_exceeded", headers={"Retry-After": str(RETRY_AFTER_S)})

    def release(self) -> None:
        """Give the slot back: to the oldest waiting request, or to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: in_flight stays as it is
                return
        self.in_flight -= 1
        self._gauge()

    def drain(self) -> None:
        """Shutdown has begun: answer the waiting requests and every later one 503 (admitted ones go on)."""
        self.draining = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self.shutting_down())

    @staticmethod
    def shutting_down(message: str = "the server is shutting down; retry on another instance") -> ApiError:
        """The 503 of a request the server will not serve because it is shutting down."""
        return ApiError(503, message, "Unhealthy", code="server_shutting_down",
                        headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"})

    def _take(self) -> None:
        self.in_flight += 1
        self._gauge()

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.in_flight.set(self.in_flight)
