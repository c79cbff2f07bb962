"""One pure-ASGI middleware in front of every route: request metrics (count, status, latency), the API
key (401), admission (429 past ``--max-concurrent-requests``, 503 while shutting down), the body size
limit (413), and cancelling a request whose client went away; errors are answered in the route
family's error shape.

Admission applies to every ``POST`` route that runs a model (not ``/tokenize``, ``/decode``) and comes before the
body is parsed: past the limit a request costs the server the reading of its bytes and nothing more
(no JSON parsing, no validation), which is what keeps it serving while it sheds load.

A client that disconnects before its answer (a client timeout, a cancelled call) has its request
cancelled at once: its slot is freed and its queued work is dropped before it reaches the model
(metrics count it with status 499, nginx's "client closed request"). Under overload that is the
difference between serving and collapse: otherwise the model spends its time on answers nobody reads.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task or stream to requests it does not admit.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from sentencekit.serve.admission import Admission
from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.server_metrics import ServerMetrics

if TYPE_CHECKING:  # the middleware itself stays free of FastAPI
    from sentencekit.serve.routes.route_family import ErrorShapes

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: routes open without the API key: liveness probes and the (static) API docs
PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
#: past the limit, the rest of a body is read and dropped (so the client reads our 413 rather than a
#: reset connection) up to this many times the limit
DRAIN_FACTOR = 8


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _presented_key(scope: Scope) -> str | None:
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else auth.strip()
    return _header(scope, b"x-api-key")


#: the status metrics record for a request whose client went away before its answer (nginx's)
CLIENT_CLOSED = 499


class ServeMiddleware:
    """Metrics, API key, admission, body limit and cancel-on-disconnect (see the module docstring)."""

    def __init__(self, app: Any, *, metrics: ServerMetrics, api_key: str | None, errors: ErrorShapes,
                 payload_limit: int, routes: Iterable[str], admission: Admission,
                 admitted_routes: Iterable[str]) -> None:
        self.app, self.metrics, self.api_key, self.payload_limit = app, metrics, api_key, payload_limit
        self.errors = errors  # these errors come before any route runs, in the shape of the path's family
        self.routes = frozenset(routes)  # metric labels: known routes only, so scanners cannot blow them up
        self.admission = admission
        self.admitted_routes = frozenset(admitted_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"
        started = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        admitted = False
        try:
            error = self._check_key(scope)
            if error is None and scope.get("method") == "POST" and path in self.admitted_routes:
                try:
                    await self.admission.acquire()
                    admitted = True
                except ApiError as exc:
                    error = exc
            if scope.get("method") in ("POST", "PUT", "PATCH") and (error is None or error.status in (429, 503)):
                # read (and drop) the body of a shed request too, so that its keep-alive connection goes on
                receive, body_error = await self._read_body(scope, receive, watched=admitted)
                error = error or body_error
            if isinstance(receive, Replay) and receive.left_during_body:
                status["code"] = CLIENT_CLOSED  # nobody to answer, nothing to run
            elif error is not None:
                await self.errors.response(path, error)(scope, receive, send_wrapper)
            elif isinstance(receive, Replay) and receive.watched:
                await self._run_until_disconnect(scope, receive, send_wrapper, status)
            else:
                await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs past --graceful-timeout (a model call, or a body still
            # arriving): answer 503 in the family's shape rather than uvicorn's plain-text 500
            if status["started"]:
                raise
            error = Admission.shutting_down("the server is shutting down and its graceful timeout ended before "
                                            "this request was answered; retry on another instance")
            await self.errors.response(path, error)(scope, receive, send_wrapper)
        finally:
            if admitted:
                self.admission.release()
            code = str(status["code"])
            self.metrics.requests.inc(route=route, status=code)
            if status["code"] >= 400:
                self.metrics.errors.inc(route=route, status=code)
            self.metrics.latency.observe(time.perf_counter() - started, route=route)

    async def _run_until_disconnect(self, scope: Scope, receive: Replay, send: Send, status: dict[str, Any]) -> None:
        """Run the app on an admitted request whose body has been read (``receive``: :meth:`_read_body`
        with ``watched=True``), cancelling it if the client disconnects before the response starts. If this
        is cancelled itself (the end of the graceful timeout), the app is cancelled too, and the caller
        answers 503."""
        app_task = asyncio.ensure_future(self.app(scope, receive, send))
        gone = asyncio.ensure_future(receive.gone.wait())
        try:
            try:
                await asyncio.wait({app_task, gone}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                app_task.cancel()
                await asyncio.gather(app_task, return_exceptions=True)
                raise
            if not app_task.done() and not status["started"]:  # the client left: drop its work
                app_task.cancel()
                await asyncio.gather(app_task, return_exceptions=True)
                status["code"] = CLIENT_CLOSED
                return
            await app_task  # done, or answering: let it finish (and raise what it raises)
        finally:
            gone.cancel()
            receive.stop_watching()

    def _check_key(self, scope: Scope) -> ApiError | None:
        if not self.api_key or scope.get("path") in PUBLIC_PATHS:
            return None
        presented = _presented_key(scope)
        if presented is not None and hmac.compare_digest(presented.encode(), self.api_key.encode()):
            return None
        what = "no API key" if presented is None else "a wrong API key"
        return ApiError(401, f"the request has {what}; send 'Authorization: Bearer <key>' with the key the server "
                             "was started with (--api-key / SENTENCEKIT_API_KEY)", "Unauthorized",
                        code="invalid_api_key")

    async def _read_body(self, scope: Scope, receive: Receive, *,
                         watched: bool = False) -> tuple[Receive, ApiError | None]:
        """Read the whole body (at most ``payload_limit`` bytes) and hand it to the app in one message.
        With ``watched``, the returned receive also watches for the client's disconnect (its ``gone``
        event is set when it leaves)."""
        limit = self.payload_limit
        declared = _header(scope, b"content-length")
        too_large = ApiError(413, f"the request body is larger than the {limit}-byte limit (--payload-limit); "
                                  "send fewer or shorter inputs per request", "Validation")
        if declared is not None and declared.isdigit() and int(declared) > limit * DRAIN_FACTOR:
            return receive, too_large
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return Replay([], receive, watched, disconnected=True), None
            body = message.get("body", b"")
            size += len(body)
            if size <= limit:
                chunks.append(body)
            elif size > limit * DRAIN_FACTOR:
                return receive, too_large
            more = message.get("more_body", False)
        if size > limit:
            return receive, too_large
        return Replay(chunks, receive, watched), None


class Replay:
    """The ASGI ``receive`` of a request whose body was read: the body in one message, then (as the app
    expects) the disconnect. ``watched``: a task reads the connection for the disconnect from the start,
    setting ``gone``, so that a request can be cancelled when its client leaves."""

    def __init__(self, chunks: list[bytes], receive: Receive, watched: bool, disconnected: bool = False) -> None:
        self._body: bytes | None = None if disconnected else b"".join(chunks)
        self._receive = receive
        self.gone = asyncio.Event()
        if disconnected:
            self.gone.set()
        self.watched = watched
        #: the client disconnected before its body was complete
        self.left_during_body = disconnected
        self._watch = asyncio.ensure_future(self._watch_disconnect()) if watched and not disconnected else None

    def stop_watching(self) -> None:
        """Stop reading the connection (once the app is done with the request)."""
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()

    async def _watch_disconnect(self) -> None:
        # uvicorn's receive() returns the disconnect when the client leaves, or once the response is sent
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone.set()

    async def __call__(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        if self._watch is None and not self.gone.is_set():
            return await self._receive()
        await self.gone.wait()
        return {"type": "http.disconnect"}
