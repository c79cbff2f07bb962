"""The server's own routes: ``GET /health`` (liveness, no API key), ``/info`` (the served models and the
limits) and ``/metrics`` (Prometheus). Errors are TEI's shape, the server's native one."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from sentencekit import __version__
from sentencekit.serve import schemas as s
from sentencekit.serve.routes.route_family import RouteFamily, json_response
from sentencekit.serve.routes.tei_routes import tei_error_body
from sentencekit.serve.server_metrics import CONTENT_TYPE
from sentencekit.serve.service import Service


def status_router(service: Service) -> APIRouter:
    """The status routes over ``service``."""
    router = APIRouter()
    models, config = service.models, service.config

    @router.get("/health", response_model=s.Health)
    async def health() -> Response:
        """``{"status": "ok"}`` while the server runs (once it is shutting down it accepts no connections)."""
        return json_response({"status": "ok"})

    @router.get("/info")
    async def info() -> Response:
        """The served models and the server's limits."""
        primary = models.primary  # the embedder, else the sparse encoder
        model_type = ({"embedding": models.embedder.info()} if models.embedder is not None
                      else {"sparse_embedding": models.sparse.info()})
        return json_response({
            "model_id": primary.name, "model_type": model_type,
            "reranker": models.reranker.info() if models.reranker is not None else None,
            "sparse_model": models.sparse.info() if models.sparse is not None else None,
            "routes": {"embed": models.embedder is not None, "embed_sparse": models.sparse is not None,
                       "rerank": models.reranker is not None},
            "backend": primary.backend, "dimension": primary.dimension, "max_input_length": primary.max_length,
            "max_batch_tokens": config.max_batch_tokens, "max_client_batch_size": config.max_client_batch_size,
            "max_concurrent_requests": config.max_concurrent_requests, "payload_limit": config.payload_limit,
            "auto_truncate": config.auto_truncate, "batch_wait_ms": config.batch_wait_ms,
            "api_key_required": bool(config.api_key), "version": __version__,
        })

    @router.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, errors, latency, queue depth, batch sizes, tokens."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return router


FAMILY = RouteFamily("status", status_router, tei_error_body)
