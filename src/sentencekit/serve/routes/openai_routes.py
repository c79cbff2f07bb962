"""OpenAI's embeddings API: ``POST /v1/embeddings`` (also ``/embeddings``) and ``GET /v1/models``.

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}``, from which the OpenAI SDK raises
its ``openai.APIStatusError`` subclasses; they answer on every ``/v1/`` and ``/v2/`` path no other
family routes (an SDK pointed at a wrong path still reads the 404).

>>> from sentencekit.serve.http_errors import ApiError
>>> openai_error_body(ApiError(401, "bad key", "Unauthorized", code="invalid_api_key"))["error"]["code"]
'invalid_api_key'
"""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.responses import Response

from sentencekit.serve import schemas as s
from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.routes.route_family import RouteFamily, answer, documented_errors, json_response
from sentencekit.serve.service import Outcome, Service

# The server's kinds of error (TEI's names) as OpenAI's "type".
_OPENAI_TYPES = {
    "Validation": "invalid_request_error",
    "Empty": "invalid_request_error",
    "Tokenizer": "invalid_request_error",
    "Unauthorized": "invalid_request_error",
    "NotFound": "invalid_request_error",
    "Backend": "invalid_request_error",
    "Overloaded": "rate_limit_error",
    "Unhealthy": "server_error",
    "Internal": "server_error",
}

#: the OpenAPI ``responses`` of an OpenAI-shaped route
ERRORS = documented_errors(s.ErrorOpenAI, 401, 413, 422, 429)


def openai_error_body(error: ApiError) -> dict[str, Any]:
    """OpenAI's error JSON for ``error``."""
    kind = _OPENAI_TYPES.get(error.error_type, "invalid_request_error")
    return {"error": {"message": error.message, "type": kind, "param": error.param,
                      "code": error.code or error.error_type.lower()}}


def _b64(row: np.ndarray) -> str:
    # OpenAI's base64: the raw little-endian float32 bytes, standard base64.
    return base64.b64encode(np.ascontiguousarray(row, dtype="<f4").tobytes()).decode("ascii")


def openai_router(service: Service) -> APIRouter:
    """The OpenAI routes over ``service``."""
    router = APIRouter()
    models = service.models

    @router.post("/v1/embeddings", response_model=s.EmbeddingResponse, responses=ERRORS)
    async def openai_embeddings(body: s.EmbeddingRequest) -> Response:
        """OpenAI embeddings. Without ``dimensions`` the vectors are ``model.encode``'s; with it, the first
        ``dimensions`` values, renormalized. ``"modality": "image"`` (Infinity's field): ``input`` holds images
        (:meth:`Service.embed_images`)."""
        def respond(out: Outcome) -> dict[str, Any]:
            encode = _b64 if body.encoding_format == "base64" else (lambda row: row.tolist())
            data = [{"object": "embedding", "embedding": encode(row), "index": i} for i, row in enumerate(out.values)]
            return {"object": "list", "data": data, "model": models.embedder.name,
                    "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens}}

        embed = service.embed_images if body.modality == "image" else service.embed
        return await answer(lambda: embed(body.input, param="input", dimensions=body.dimensions,
                                          normalize=body.dimensions is not None), respond)

    # the path some clients (a base URL without /v1) call; one route in the docs is enough
    router.add_api_route("/embeddings", openai_embeddings, methods=["POST"], response_model=s.EmbeddingResponse,
                         responses=ERRORS, include_in_schema=False)

    @router.get("/v1/models", response_model=s.ModelList)
    async def openai_models() -> Response:
        """The served models (the embedder, sparse encoder and reranker that the server has)."""
        created = int(time.time())
        cards = [{"id": m.name, "object": "model", "created": created, "owned_by": "sentencekit"}
                 for m in (models.embedder, models.sparse, models.reranker) if m is not None]
        return json_response({"object": "list", "data": cards})

    return router


FAMILY = RouteFamily("OpenAI", openai_router, openai_error_body, prefixes=("/v1/", "/v2/"))
