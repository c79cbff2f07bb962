"""Cohere's and Jina's rerank API: ``POST /v1/rerank`` (also ``/v2/rerank``).

Errors are OpenAI's shape, like every ``/v1/`` route of the server, so that one client configuration
(the OpenAI-compatible base URL) reads errors the same on every route there.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.responses import Response

from sentencekit.serve import schemas as s
from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.routes.openai_routes import openai_error_body
from sentencekit.serve.routes.route_family import RouteFamily, answer, documented_errors
from sentencekit.serve.service import Outcome, Service

#: the OpenAPI ``responses`` of the rerank routes
ERRORS = documented_errors(s.ErrorOpenAI, 401, 413, 422, 424, 429)


def cohere_router(service: Service) -> APIRouter:
    """The Cohere / Jina routes over ``service``."""
    router = APIRouter()

    @router.post("/v1/rerank", response_model=s.RerankResponse, responses=ERRORS)
    async def cohere_rerank(body: s.RerankRequest) -> Response:
        """Cohere / Jina rerank: ``results[].index/relevance_score`` best first, ``top_n`` of them."""
        documents = [d if isinstance(d, str) else d.text for d in body.documents]

        async def call() -> Outcome:
            service.require_reranker()  # 424 comes before the checks of the request's fields
            if body.top_n is not None and body.top_n <= 0:
                raise ApiError(422, f"top_n must be a positive integer, got {body.top_n}", "Validation",
                               param="top_n")
            return await service.rerank(body.query, documents, param="documents", raw_scores=body.raw_scores)

        def respond(out: Outcome) -> dict[str, Any]:
            results = []
            for i in np.argsort(-out.values, kind="stable")[: body.top_n]:
                result: dict[str, Any] = {"index": int(i), "relevance_score": float(out.values[i])}
                if body.return_documents:
                    result["document"] = {"text": documents[i]}
                results.append(result)
            reranker = service.require_reranker()  # there is one: call() checked
            return {"id": uuid.uuid4().hex, "object": "rerank", "model": reranker.name, "results": results,
                    "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens}}

        return await answer(call, respond)

    # Cohere's v2 client path; the request and response it reads are the same
    router.add_api_route("/v2/rerank", cohere_rerank, methods=["POST"], response_model=s.RerankResponse,
                         responses=ERRORS, include_in_schema=False)
    return router


FAMILY = RouteFamily("Cohere / Jina", cohere_router, openai_error_body)
