"""uvicorn's server with sentencekit's shutdown: on SIGTERM / Ctrl-C the service drains before uvicorn
waits for the requests in flight.

uvicorn alone stops accepting connections, waits up to its graceful timeout for the running requests,
then cancels them (each answered 500) and runs the application's shutdown. Draining first means: new and
waiting requests get 503 with ``Retry-After`` at once; queued work runs while it can end before the
timeout, judged by the recent seconds per token, and the rest gets 503 (not a 500 at the end); work whose
client left is dropped; so the process exits within the timeout. Measured by the SIGTERM-under-load test
in ``tests/test_serve_shutdown.py``.

>>> server = DrainingServer(uvicorn.Config(app, port=8080), app.state.service, graceful_timeout=30.0)  # doctest: +SKIP
>>> server.run()                                                                              # doctest: +SKIP
"""

from __future__ import annotations

import socket
import time
from typing import Any

import uvicorn

#: seconds of the graceful timeout kept back from queued work, for the answers to be written and the
#: application's shutdown to run before uvicorn would cancel what still runs
SHUTDOWN_MARGIN_S = 1.0


def drain_deadline(now: float, graceful_timeout: float | None) -> float | None:
    """The ``time.monotonic()`` by which queued work must end, for a shutdown begun at ``now``.

    >>> drain_deadline(100.0, 30.0), drain_deadline(100.0, 2.0), drain_deadline(100.0, None)
    (129.0, 101.8, None)
    """
    if not graceful_timeout:
        return None
    return now + graceful_timeout - min(SHUTDOWN_MARGIN_S, graceful_timeout / 10)


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` that drains ``service`` (a :class:`~sentencekit.serve.service.Service`) when
    shutdown begins; ``graceful_timeout`` in seconds (``None``: wait for everything)."""

    def __init__(self, config: uvicorn.Config, service: Any, graceful_timeout: float | None) -> None:
        super().__init__(config)
        self.service, self.graceful_timeout = service, graceful_timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.drain(drain_deadline(time.monotonic(), self.graceful_timeout))
        await super().shutdown(sockets)
