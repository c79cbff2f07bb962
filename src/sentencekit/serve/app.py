"""The FastAPI application of ``sentencekit serve``: every route family (see :mod:`sentencekit.serve.routes`)
mounted over one :class:`~sentencekit.serve.service.Service`, the server-wide exception handlers, and
the middleware (metrics, API key, body limit).

Statuses: 401 (API key), 413 (too many inputs, body too large, input too long with ``truncate=false``),
422 (malformed JSON, wrong types, unknown prompt, bad token ids), 424 (a route whose model the server does
not serve: rerank without a reranker, /embed_sparse without a sparse encoder, dense routes on a sparse-only
server), 429 (``--max-concurrent-requests`` reached and no slot freed within ``--admission-wait-ms``, with
``Retry-After``), 499 in metrics only (the client left before its answer; its work was dropped), 503
(shutting down, with ``Retry-After``). Each answers in the error shape of the family whose path it is on.

Shutdown (SIGTERM, Ctrl-C) is :class:`sentencekit.serve.draining_server.DrainingServer`'s: no new
connections; new and waiting requests 503; queued work runs while it can finish within
``--graceful-timeout``; then the process exits.

>>> from sentencekit.serve.models import load_models                               # doctest: +SKIP
>>> config = ServeConfig(model="sentence-transformers/all-MiniLM-L6-v2")
>>> app = create_app(load_models(config), config)                                   # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8080)                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sentencekit import __version__
from sentencekit.serve.http_errors import ApiError, validation_message
from sentencekit.serve.middleware import ServeMiddleware
from sentencekit.serve.models import ServedModels
from sentencekit.serve.routes import FALLBACK, FAMILIES, ErrorShapes
from sentencekit.serve.server_metrics import ServerMetrics
from sentencekit.serve.service import Service


def create_app(models: ServedModels, config: Any, metrics: ServerMetrics | None = None) -> FastAPI:
    """The application serving ``models`` with the limits of ``config`` (a :class:`ServeConfig`).

    Its lifespan starts the batchers and, at shutdown (after uvicorn has finished the requests in
    flight, or cancelled them past ``--graceful-timeout``), stops them.
    """
    metrics = metrics or ServerMetrics()
    service = Service(models, config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(title="sentencekit serve", version=__version__, lifespan=lifespan,
                  description="Embeddings, sparse embeddings and reranking over the OpenAI, Hugging Face TEI and "
                              "Cohere/Jina APIs.")
    app.state.service = service

    mounted = [(family, family.router(service)) for family in FAMILIES]
    for family, router in mounted:
        app.include_router(router, tags=[family.tag])
    errors = ErrorShapes(mounted, FALLBACK)
    app.state.errors = errors

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return errors.response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, param = validation_message(list(exc.errors()))
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type:
            message += f" (the body was sent as {content_type!r}: send Content-Type: application/json)"
        return errors.response(request.url.path, ApiError(422, message, "Validation", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "NotFound", 405: "Validation"}.get(exc.status_code, "Validation")
        message = {404: f"no route {request.url.path}; see /docs for the routes",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return errors.response(request.url.path, ApiError(exc.status_code, message, kind))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return errors.response(request.url.path, ApiError(500, f"internal error: {type(exc).__name__}: {exc}",
                                                          "Internal"))

    # The paths metrics name (any other counts as "other"): the families' routes and FastAPI's docs. Read
    # from the routers, not app.routes, which newer FastAPI versions fill with whole included routers.
    docs = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    paths = [route.path for _, router in mounted for route in router.routes] + [p for p in docs if p]
    # Admission limits the routes that run a model; /tokenize and /decode only tokenize, inline and cheap.
    posts = [route.path for _, router in mounted for route in router.routes
             if "POST" in route.methods and route.path not in ("/tokenize", "/decode")]
    app.add_middleware(ServeMiddleware, metrics=metrics, api_key=config.api_key, errors=errors,
                       payload_limit=config.payload_limit, routes=paths, admission=service.admission,
                       admitted_routes=posts)
    return app
