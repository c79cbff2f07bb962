"""The FastAPI application of ``sentencekit serve``: routes in three wire formats on one set of models.

================  ==========================  ===========================================================
family            routes                      errors
================  ==========================  ===========================================================
OpenAI            ``POST /v1/embeddings``,    ``{"error": {"message", "type", "param", "code"}}``
                  ``/embeddings``,
                  ``GET /v1/models``
Cohere / Jina     ``POST /v1/rerank``,        same as OpenAI (every ``/v1/`` route)
                  ``/v2/rerank``
TEI               ``POST /embed``,            ``{"error": "...", "error_type": "..."}``
                  ``/rerank``, ``/similarity``,
                  ``/tokenize``, ``/decode``
status            ``GET /health``, ``/info``, TEI shape
                  ``/metrics``, ``/docs``,
                  ``/openapi.json``
================  ==========================  ===========================================================

Statuses: 401 (API key), 413 (too many inputs, body too large, input too long with ``truncate=false``),
422 (malformed JSON, wrong types, unknown prompt, bad token ids), 424 (rerank without a reranker), 429
(``--max-concurrent-requests`` reached, with ``Retry-After``), 503 (shutting down).

>>> from sentencekit.serve.models import load_models                               # doctest: +SKIP
>>> config = ServeConfig(model="sentence-transformers/all-MiniLM-L6-v2")
>>> app = create_app(load_models(config), config)                                   # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8080)                  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sentencekit import __version__
from sentencekit.serve import schemas as s
from sentencekit.serve.errors import ApiError, error_response, validation_message
from sentencekit.serve.metrics import CONTENT_TYPE, ServerMetrics
from sentencekit.serve.middleware import ServeMiddleware
from sentencekit.serve.models import ServedModels
from sentencekit.serve.service import Outcome, Service, postprocess

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorTEI, "description": text} for code, text in [
        (401, "missing or wrong API key"), (413, "too many inputs, body too large, or input too long"),
        (422, "malformed JSON or wrong types"), (429, "too many requests in flight (see Retry-After)")]
}
_RERANK_ERRORS = {**_ERRORS, 424: {"model": s.ErrorTEI, "description": "the server has no reranker"}}


def _json(payload: Any, outcome: Outcome | None = None, started: float | None = None) -> Response:
    headers = {}
    if outcome is not None and started is not None:
        # TEI's timing headers (milliseconds), so its clients and dashboards read them as usual.
        batch = outcome.batch
        headers = {"x-compute-tokens": str(outcome.tokens), "x-queue-time": f"{batch.queue_s * 1000:.2f}",
                   "x-inference-time": f"{batch.inference_s * 1000:.2f}",
                   "x-total-time": f"{(time.perf_counter() - started) * 1000:.2f}",
                   "x-batch-inputs": str(batch.batch_inputs), "x-batch-requests": str(batch.batch_requests)}
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json", headers=headers)


def _b64(row: np.ndarray) -> str:
    # OpenAI's base64: the raw little-endian float32 bytes, standard base64.
    return base64.b64encode(np.ascontiguousarray(row, dtype="<f4").tobytes()).decode("ascii")


def create_app(models: ServedModels, config: Any, metrics: ServerMetrics | None = None) -> FastAPI:
    """The application serving ``models`` with the limits of ``config`` (a :class:`ServeConfig`).

    Its lifespan starts the batchers and, at shutdown (after uvicorn has finished the requests in
    flight), runs whatever is still queued before stopping them.
    """
    metrics = metrics or ServerMetrics()
    service = Service(models, config, metrics)
    embedder = models.embedder

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(title="sentencekit serve", version=__version__, lifespan=lifespan,
                  description="Embeddings and reranking over the OpenAI, Hugging Face TEI and Cohere/Jina APIs.")
    app.state.service = service

    # -- errors ---------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        message, param = validation_message(list(exc.errors()))
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type:
            message += f" (the body was sent as {content_type!r}: send Content-Type: application/json)"
        return error_response(request.url.path, ApiError(422, message, "Validation", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "NotFound", 405: "Validation"}.get(exc.status_code, "Validation")
        message = {404: f"no route {request.url.path}; see /docs for the routes",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return error_response(request.url.path, ApiError(exc.status_code, message, kind))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return error_response(request.url.path, ApiError(500, f"internal error: {type(exc).__name__}: {exc}",
                                                         "Internal"))

    # -- OpenAI ---------------------------------------------------------------------------------------
    @app.post("/v1/embeddings", response_model=s.EmbeddingResponse, responses=_ERRORS, tags=["OpenAI"])
    async def openai_embeddings(body: s.EmbeddingRequest) -> Response:
        """OpenAI embeddings. Without ``dimensions`` the vectors are ``model.encode``'s; with it, the first
        ``dimensions`` values, renormalized."""
        started = time.perf_counter()
        with service.admit():
            service.check_dimensions(body.dimensions)
            texts = service.texts_from(body.input, "input")
            out = await service.embed(texts, prompt_name=None, truncate=config.auto_truncate, param="input")
        vectors = out.values if body.dimensions is None else postprocess(out.values, body.dimensions, True)
        encode = _b64 if body.encoding_format == "base64" else (lambda row: row.tolist())
        data = [{"object": "embedding", "embedding": encode(row), "index": i} for i, row in enumerate(vectors)]
        return _json({"object": "list", "data": data, "model": embedder.name,
                      "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens}}, out, started)

    app.add_api_route("/embeddings", openai_embeddings, methods=["POST"], response_model=s.EmbeddingResponse,
                      responses=_ERRORS, tags=["OpenAI"], include_in_schema=False)

    @app.get("/v1/models", response_model=s.ModelList, tags=["OpenAI"])
    async def openai_models() -> Response:
        created = int(time.time())
        cards = [{"id": m.name, "object": "model", "created": created, "owned_by": "sentencekit"}
                 for m in (models.embedder, models.reranker) if m is not None]
        return _json({"object": "list", "data": cards})

    # -- TEI ------------------------------------------------------------------------------------------
    @app.post("/embed", response_model=list[list[float]], responses=_ERRORS, tags=["TEI"])
    async def tei_embed(body: s.TEIEmbedRequest) -> Response:
        """TEI embeddings: a bare array of vectors."""
        started = time.perf_counter()
        with service.admit():
            service.check_dimensions(body.dimensions)
            texts = service.texts_from(body.inputs, "inputs")
            truncate = config.auto_truncate if body.truncate is None else body.truncate
            out = await service.embed(texts, prompt_name=body.prompt_name, truncate=truncate, param="inputs",
                                      direction=service.direction(body.truncation_direction))
        return _json(postprocess(out.values, body.dimensions, body.normalize).tolist(), out, started)

    @app.post("/similarity", response_model=list[float], responses=_ERRORS, tags=["TEI"])
    async def tei_similarity(body: s.TEISimilarityRequest) -> Response:
        """TEI similarity of ``source_sentence`` to each of ``sentences`` (the model's similarity function)."""
        from sentencekit.similarity import np_similarity_fn

        started = time.perf_counter()
        with service.admit():
            if not body.inputs.sentences:
                raise ApiError(422, "`inputs.sentences` is empty; send at least one sentence", "Empty",
                               param="inputs")
            texts = [body.inputs.source_sentence, *body.inputs.sentences]
            truncate = config.auto_truncate if body.truncate is None else body.truncate
            out = await service.embed(texts, prompt_name=body.prompt_name, truncate=truncate, param="inputs",
                                      direction=service.direction(body.truncation_direction))
        scores = np_similarity_fn(embedder.model.similarity_fn_name)(out.values[:1], out.values[1:])[0]
        return _json(np.asarray(scores, dtype=np.float32).tolist(), out, started)

    @app.post("/tokenize", response_model=list[list[s.SimpleToken]], responses=_ERRORS, tags=["TEI"])
    async def tei_tokenize(body: s.TokenizeRequest) -> Response:
        """The embedding model's tokens of each input (prompt included, not truncated)."""
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        service.check_count(len(texts), "inputs")
        prompt = service.resolve_prompt(body.prompt_name)
        texts = [prompt + t for t in texts]
        out = []
        for text, enc in zip(texts, embedder.tokens.encode(texts, body.add_special_tokens)):
            tokens = []
            for tid, token, (start, stop), special in zip(enc.ids, enc.tokens, enc.offsets, enc.special_tokens_mask):
                if special:
                    tokens.append({"id": tid, "text": token, "special": True, "start": None, "stop": None})
                else:
                    tokens.append({"id": tid, "text": text[start:stop], "special": False, "start": start,
                                   "stop": stop})
            out.append(tokens)
        return _json(out)

    @app.post("/decode", response_model=list[str], responses=_ERRORS, tags=["TEI"])
    async def tei_decode(body: s.DecodeRequest) -> Response:
        """Text of token ids of the embedding model's tokenizer."""
        if body.ids and isinstance(body.ids[0], int):
            return _json(embedder.tokens.decode([body.ids], body.skip_special_tokens))
        batch = list(body.ids)
        service.check_count(len(batch), "ids")
        for i, ids in enumerate(batch):
            bad = embedder.tokens.check_ids(ids)
            if bad is not None:
                raise ApiError(422, f"token id {bad} of ids[{i}] is outside the model's vocabulary", "Tokenizer",
                               param="ids")
        return _json(embedder.tokens.decode(batch, body.skip_special_tokens))

    @app.post("/rerank", response_model=list[s.TEIRank], responses=_RERANK_ERRORS, tags=["TEI"])
    async def tei_rerank(body: s.TEIRerankRequest) -> Response:
        """TEI rerank: ``[{"index", "score"(, "text")}]``, best first."""
        started = time.perf_counter()
        with service.admit():
            service.require_reranker()
            truncate = config.auto_truncate if body.truncate is None else body.truncate
            out = await service.rerank(body.query, body.texts, raw_scores=body.raw_scores, truncate=truncate,
                                       param="texts", direction=service.direction(body.truncation_direction))
        order = np.argsort(-out.values, kind="stable")
        ranks = [{"index": int(i), "score": float(out.values[i])} for i in order]
        if body.return_text:
            for r in ranks:
                r["text"] = body.texts[r["index"]]
        return _json(ranks, out, started)

    # -- Cohere / Jina --------------------------------------------------------------------------------
    @app.post("/v1/rerank", response_model=s.RerankResponse, responses=_RERANK_ERRORS, tags=["Cohere / Jina"])
    async def cohere_rerank(body: s.RerankRequest) -> Response:
        """Cohere / Jina rerank: ``results[].index/relevance_score`` best first, ``top_n`` of them."""
        started = time.perf_counter()
        with service.admit():
            reranker = service.require_reranker()
            if body.top_n is not None and body.top_n <= 0:
                raise ApiError(422, f"top_n must be a positive integer, got {body.top_n}", "Validation",
                               param="top_n")
            documents = [d if isinstance(d, str) else d.text for d in body.documents]
            out = await service.rerank(body.query, documents, raw_scores=body.raw_scores,
                                       truncate=config.auto_truncate, param="documents")
        order = np.argsort(-out.values, kind="stable")[: body.top_n]
        results = []
        for i in order:
            result: dict[str, Any] = {"index": int(i), "relevance_score": float(out.values[i])}
            if body.return_documents:
                result["document"] = {"text": documents[i]}
            results.append(result)
        return _json({"id": uuid.uuid4().hex, "object": "rerank", "model": reranker.name, "results": results,
                      "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens}}, out, started)

    app.add_api_route("/v2/rerank", cohere_rerank, methods=["POST"], response_model=s.RerankResponse,
                      responses=_RERANK_ERRORS, tags=["Cohere / Jina"], include_in_schema=False)

    # -- status ---------------------------------------------------------------------------------------
    @app.get("/health", response_model=s.Health, tags=["status"])
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get("/info", tags=["status"])
    async def info() -> Response:
        """The served models and the server's limits."""
        return _json({
            "model_id": embedder.name, "model_type": {"embedding": embedder.info()},
            "reranker": models.reranker.info() if models.reranker is not None else None,
            "backend": embedder.backend, "dimension": embedder.dimension, "max_input_length": embedder.max_length,
            "max_batch_tokens": config.max_batch_tokens, "max_client_batch_size": config.max_client_batch_size,
            "max_concurrent_requests": config.max_concurrent_requests, "payload_limit": config.payload_limit,
            "auto_truncate": config.auto_truncate, "batch_wait_ms": config.batch_wait_ms,
            "api_key_required": bool(config.api_key), "version": __version__,
        })

    @app.get("/metrics", tags=["status"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, errors, latency, queue depth, batch sizes, tokens."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(ServeMiddleware, metrics=metrics, api_key=config.api_key,
                       payload_limit=config.payload_limit, routes=[r.path for r in app.routes])
    return app
