"""Hugging Face TEI's API: ``POST /embed``, ``/embed_sparse``, ``/similarity``, ``/tokenize``, ``/decode`` and
``/rerank``.

Errors are TEI's ``{"error": "...", "error_type": "Validation|Empty|Tokenizer|Overloaded|..."}``, the
server's native shape: the status routes and unknown paths answer in it too.

>>> from sentencekit.serve.http_errors import ApiError
>>> tei_error_body(ApiError(413, "too many inputs", "Validation"))
{'error': 'too many inputs', 'error_type': 'Validation'}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.responses import Response

from sentencekit.serve import schemas as s
from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.routes.route_family import RouteFamily, answer, documented_errors, json_response
from sentencekit.serve.service import Outcome, Service

#: the OpenAPI ``responses`` of a TEI-shaped route (and of a rerank route)
ERRORS = documented_errors(s.ErrorTEI, 401, 413, 422, 424, 429)
RERANK_ERRORS = documented_errors(s.ErrorTEI, 401, 413, 422, 424, 429)


def tei_error_body(error: ApiError) -> dict[str, Any]:
    """TEI's error JSON for ``error``."""
    return {"error": error.message, "error_type": error.error_type}


def _token(text: str, tid: int, token: str, span: tuple[int, int], special: bool) -> dict[str, Any]:
    # TEI's SimpleToken: special tokens have no place in the text; the others carry their slice of it.
    if special:
        return {"id": tid, "text": token, "special": True, "start": None, "stop": None}
    start, stop = span
    return {"id": tid, "text": text[start:stop], "special": False, "start": start, "stop": stop}


def tei_router(service: Service) -> APIRouter:
    """The TEI routes over ``service``."""
    router = APIRouter()

    @router.post("/embed", response_model=list[list[float]], responses=ERRORS)
    async def tei_embed(body: s.TEIEmbedRequest) -> Response:
        """TEI embeddings: a bare array of vectors."""
        return await answer(lambda: service.embed(
            body.inputs, param="inputs", prompt_name=body.prompt_name, truncate=body.truncate,
            direction=body.truncation_direction, dimensions=body.dimensions, normalize=body.normalize),
            lambda out: out.values.tolist())

    @router.post("/embed_sparse", response_model=list[list[s.SparseValue]], responses=ERRORS)
    async def tei_embed_sparse(body: s.TEIEmbedSparseRequest) -> Response:
        """TEI sparse embeddings (SPLADE): per input its active terms ``[{"index", "value"}, ...]``, ascending
        by index. 424 on a server without a sparse encoder."""
        from sentencekit.sparse_formats import as_tei

        return await answer(lambda: service.embed_sparse(
            body.inputs, param="inputs", prompt_name=body.prompt_name, truncate=body.truncate,
            direction=body.truncation_direction), lambda out: as_tei(out.values))

    @router.post("/similarity", response_model=list[float], responses=ERRORS)
    async def tei_similarity(body: s.TEISimilarityRequest) -> Response:
        """TEI similarity of ``source_sentence`` to each of ``sentences`` (the model's similarity function)."""
        from sentencekit.similarity import np_similarity_fn

        async def call() -> Outcome:
            if not body.inputs.sentences:
                raise ApiError(422, "`inputs.sentences` is empty; send at least one sentence", "Empty",
                               param="inputs")
            # named here by their fields; service.embed would name them inputs[0], inputs[1], ...
            service.check_texts([body.inputs.source_sentence], "inputs.source_sentence", single=True)
            service.check_texts(body.inputs.sentences, "inputs.sentences")
            return await service.embed([body.inputs.source_sentence, *body.inputs.sentences], param="inputs",
                                       prompt_name=body.prompt_name, truncate=body.truncate,
                                       direction=body.truncation_direction)

        def respond(out: Outcome) -> list[float]:
            similarity = np_similarity_fn(service.models.embedder.model.similarity_fn_name)
            return np.asarray(similarity(out.values[:1], out.values[1:])[0], dtype=np.float32).tolist()

        return await answer(call, respond)

    @router.post("/tokenize", response_model=list[list[s.SimpleToken]], responses=ERRORS)
    async def tei_tokenize(body: s.TokenizeRequest) -> Response:
        """The embedding model's tokens of each input (prompt included, not truncated)."""
        encoded = service.tokenize(body.inputs, prompt_name=body.prompt_name,
                                   add_special_tokens=body.add_special_tokens)
        return json_response([[_token(text, *parts) for parts in zip(enc.ids, enc.tokens, enc.offsets,
                                                                     enc.special_tokens_mask)]
                              for text, enc in encoded])

    @router.post("/decode", response_model=list[str], responses=ERRORS)
    async def tei_decode(body: s.DecodeRequest) -> Response:
        """Text of token ids of the embedding model's tokenizer."""
        return json_response(service.decode(body.ids, "ids", body.skip_special_tokens))

    @router.post("/rerank", response_model=list[s.TEIRank], responses=RERANK_ERRORS)
    async def tei_rerank(body: s.TEIRerankRequest) -> Response:
        """TEI rerank: ``[{"index", "score"(, "text")}]``, best first."""
        def respond(out: Outcome) -> list[dict[str, Any]]:
            ranks: list[dict[str, Any]] = []
            for i in np.argsort(-out.values, kind="stable"):
                rank: dict[str, Any] = {"index": int(i), "score": float(out.values[i])}
                if body.return_text:
                    rank["text"] = body.texts[i]
                ranks.append(rank)
            return ranks

        return await answer(lambda: service.rerank(
            body.query, body.texts, param="texts", raw_scores=body.raw_scores, truncate=body.truncate,
            direction=body.truncation_direction), respond)

    return router


FAMILY = RouteFamily("TEI", tei_router, tei_error_body)
