"""One pure-ASGI middleware in front of every route: request metrics (count, status, latency), the API
key (401) and the body size limit (413), answered in the route family's error shape.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task or stream per request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from sentencekit.serve.errors import ApiError
from sentencekit.serve.metrics import ServerMetrics

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


class ServeMiddleware:
    """Metrics, API key and body limit (see the module docstring)."""

    def __init__(self, app: Any, *, metrics: ServerMetrics, api_key: str | None, errors: ErrorShapes,
                 payload_limit: int, routes: Iterable[str]) -> None:
        self.app, self.metrics, self.api_key, self.payload_limit = app, metrics, api_key, payload_limit
        self.errors = errors  # these errors come before any route runs, in the shape of the path's family
        self.routes = frozenset(routes)  # metric labels: known routes only, so scanners cannot blow them up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            error = self._check_key(scope)
            if error is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                receive, error = await self._read_body(scope, receive)
            if error is not None:
                await self.errors.response(path, error)(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            code = str(status["code"])
            self.metrics.requests.inc(route=route, status=code)
            if status["code"] >= 400:
                self.metrics.errors.inc(route=route, status=code)
            self.metrics.latency.observe(time.perf_counter() - started, route=route)

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

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[Receive, ApiError | None]:
        """Read the whole body (at most ``payload_limit`` bytes) and hand it to the app in one message."""
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
                return _replay([], message, receive), None
            body = message.get("body", b"")
            size += len(body)
            if size <= limit:
                chunks.append(body)
            elif size > limit * DRAIN_FACTOR:
                return receive, too_large
            more = message.get("more_body", False)
        if size > limit:
            return receive, too_large
        return _replay(chunks, None, receive), None


def _replay(chunks: list[bytes], disconnect: dict[str, Any] | None, receive: Receive) -> Receive:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            if disconnect is not None:
                return disconnect
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()  # later calls: wait for the disconnect, as the app expects

    return replay
