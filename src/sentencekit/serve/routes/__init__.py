"""The route families of ``sentencekit serve``: one module each, all built over the one service.

* **OpenAI** (``openai_routes``): ``POST /v1/embeddings`` (also ``/embeddings``), ``GET /v1/models``.
  Errors: ``{"error": {"message", "type", "param", "code"}}``, also on unknown ``/v1/`` and ``/v2/`` paths.
* **TEI** (``tei_routes``): ``POST /embed``, ``/similarity``, ``/tokenize``, ``/decode``, ``/rerank``.
  Errors: ``{"error": "...", "error_type": "..."}``, also on every other unknown path.
* **Cohere / Jina** (``cohere_routes``): ``POST /v1/rerank`` (also ``/v2/rerank``). Errors: OpenAI's.
* **status** (``status_routes``): ``GET /health``, ``/info``, ``/metrics``. Errors: TEI's.

A new family is one module here defining ``FAMILY = RouteFamily(tag, router, error_body)`` (see
:mod:`~sentencekit.serve.routes.route_family`) plus its line in :data:`FAMILIES`; ``create_app`` mounts
every family in that tuple and answers errors on its paths in its shape.
"""

from __future__ import annotations

from sentencekit.serve.routes import cohere_routes, openai_routes, status_routes, tei_routes
from sentencekit.serve.routes.route_family import ErrorShapes, RouteFamily

#: the families the server mounts, in this order (the order of the OpenAPI schema)
FAMILIES: tuple[RouteFamily, ...] = (
    openai_routes.FAMILY,
    tei_routes.FAMILY,
    cohere_routes.FAMILY,
    status_routes.FAMILY,
)

#: the shape of errors on paths no family claims (an unknown route): TEI's, the server's native API
FALLBACK = tei_routes.FAMILY

__all__ = ["FAMILIES", "FALLBACK", "ErrorShapes", "RouteFamily"]
