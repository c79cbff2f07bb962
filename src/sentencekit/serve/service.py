"""The one service every route family is built over, independent of any wire format: the admission
slots (:class:`~sentencekit.serve.admission.Admission`, taken by the middleware), request limits (413),
the model's prompt, token counting and the ``truncate=false`` check, token-id inputs, submitting work
to the batchers, the drain at shutdown, and the per-request ``dimensions`` / normalization step.

Every check runs before a request is queued, so a bad request is answered on its own and never reaches
a batch that other requests share.

>>> service = Service(models, ServeConfig(), ServerMetrics())                 # doctest: +SKIP
>>> out = await service.embed(["hello"], param="input")                         # doctest: +SKIP
>>> out.values.shape, out.tokens                                               # doctest: +SKIP
((1, 384), 3)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentencekit.pipeline.prompts import resolve_prompt
from sentencekit.serve.admission import Admission
from sentencekit.serve.batcher import BatcherClosed, BatchResult, DynamicBatcher
from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.models import ServedModel, ServedModels
from sentencekit.serve.server_config import ServeConfig
from sentencekit.serve.server_metrics import ServerMetrics

#: a UTF-16 surrogate code point: in a Python str (from a JSON "\ud800" escape) only when unpaired
_SURROGATE = re.compile("[\ud800-\udfff]")

#: token counting of requests longer than this (characters) runs off the event loop
INLINE_TOKENIZE_CHARS = 20_000


@dataclass
class Outcome:
    """A request's results with its token count and timings (for ``usage`` and the timing headers)."""

    values: np.ndarray
    tokens: int
    batch: BatchResult


class Service:
    """The served models behind their batchers, with the limits of ``config`` (see the module docstring)."""

    def __init__(self, models: ServedModels, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.models, self.config, self.metrics = models, config, metrics
        # One inference thread for every model: a model and its tokenizer are used by one thread at a time.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sentencekit-infer")
        wait = config.batch_wait_ms / 1000.0
        embedder, sparse = models.embedder, models.sparse
        self.embed_batcher = None
        if embedder is not None:
            self.embed_batcher = DynamicBatcher(
                lambda key, texts: embedder.run_embed(key, texts, config.max_batch_tokens),
                max_batch_tokens=config.max_batch_tokens, max_wait_s=wait, executor=self._executor,
                metrics=metrics, name="embedder")
        self.sparse_batcher = None
        if sparse is not None:  # the same batching, admission and inference thread as the other models
            self.sparse_batcher = DynamicBatcher(
                lambda key, texts: sparse.run_sparse(key, texts, config.max_batch_tokens),
                max_batch_tokens=config.max_batch_tokens, max_wait_s=wait, executor=self._executor,
                metrics=metrics, name="sparse")
        self.rerank_batcher = None
        if models.reranker is not None:
            reranker = models.reranker
            self.rerank_batcher = DynamicBatcher(
                lambda key, pairs: reranker.run_rerank(key, pairs, config.max_batch_tokens),
                max_batch_tokens=config.max_batch_tokens, max_wait_s=wait, executor=self._executor,
                metrics=metrics, name="reranker")
        #: the --max-concurrent-requests slots, taken by the middleware before a request is read
        self.admission = Admission(config.max_concurrent_requests, config.admission_wait_ms / 1000.0, metrics)
        #: prompt -> its ids to put before token-id inputs, or None where that would not be exact
        self._prompt_ids_cache: dict[str, list[int] | None] = {}

    # -- life cycle -----------------------------------------------------------------------------------
    @property
    def batchers(self) -> list[DynamicBatcher]:
        """The batchers of the models served (embedder, reranker, sparse encoder)."""
        return [b for b in (self.embed_batcher, self.rerank_batcher, self.sparse_batcher) if b is not None]

    def start(self) -> None:
        """Start the batchers (from the running event loop: the app's lifespan)."""
        for batcher in self.batchers:
            batcher.start()

    async def close(self) -> None:
        """Run what is queued, then stop (the graceful part of shutdown); past the drain deadline, stop
        without waiting for a model call still running (see :meth:`DynamicBatcher.close`)."""
        for batcher in self.batchers:
            await batcher.close()
        late = any(b.past_deadline for b in self.batchers)
        self._executor.shutdown(wait=not late, cancel_futures=late)

    def drain(self, deadline: float | None) -> None:
        """Shutdown has begun (SIGTERM): new and waiting requests get 503; queued work runs while it can end
        by ``deadline`` (``time.monotonic()`` seconds, ``None``: no limit), the rest gets 503."""
        self.admission.drain()
        for batcher in self.batchers:
            batcher.drain(deadline)

    # -- limits ---------------------------------------------------------------------------------------
    def check_count(self, n: int, param: str) -> None:
        """422 for no inputs, 413 for more than ``--max-client-batch-size``."""
        if n == 0:
            raise ApiError(422, f"`{param}` is empty; send at least one input", "Empty", param=param)
        limit = self.config.max_client_batch_size
        if n > limit:
            raise ApiError(413, f"{n} inputs exceed --max-client-batch-size {limit}; send fewer per request",
                           "Validation", param=param)

    def require_reranker(self) -> ServedModel:
        """The reranker, or 424 on a server started without ``--reranker``."""
        if self.models.reranker is None or self.rerank_batcher is None:
            raise ApiError(424, "this server has no reranker; start it with --reranker NAME_OR_PATH "
                                "(a cross-encoder) to use the rerank routes", "Backend", code="model_not_loaded")
        return self.models.reranker

    def require_embedder(self) -> ServedModel:
        """The dense embedder, or 424 on a server that serves a sparse encoder alone (TEI's answer to a route
        its model type does not serve)."""
        if self.models.embedder is None or self.embed_batcher is None:
            sparse = self.models.sparse.name if self.models.sparse is not None else "a sparse encoder"
            raise ApiError(424, f"this server serves the sparse encoder {sparse} only, on POST /embed_sparse; dense "
                                "embeddings need a dense model: start the server with --model EMBEDDER "
                                "--sparse-model SPARSE to serve both", "Backend", code="model_not_loaded")
        return self.models.embedder

    def require_sparse(self) -> ServedModel:
        """The sparse encoder, or 424 on a server started without one."""
        if self.models.sparse is None or self.sparse_batcher is None:
            raise ApiError(424, "this server has no sparse encoder; start it with --sparse-model NAME_OR_PATH (a "
                                "SparseEncoder / SPLADE model) to use /embed_sparse", "Backend",
                           code="model_not_loaded")
        return self.models.sparse

    def check_dimensions(self, dimensions: int | None, param: str = "dimensions") -> None:
        """422 unless ``dimensions`` is ``None`` or between 1 and the model's dimension."""
        if dimensions is None:
            return
        full = self.require_embedder().dimension
        if dimensions <= 0 or (full is not None and dimensions > full):
            raise ApiError(422, f"dimensions={dimensions} is not between 1 and the model's {full} dimensions",
                           "Validation", param=param)

    @staticmethod
    def _cut_left(model: ServedModel, texts: list[str], budget: int) -> list[str]:
        """Each text over ``budget`` tokens cut from the start (``truncation_direction="left"``)."""
        if model.max_length is None:
            return texts
        return [model.tokens.keep_end(t, budget) for t in texts]

    # -- inputs ---------------------------------------------------------------------------------------
    # Every text and token id of a request is checked here, before anything reaches a tokenizer or a
    # batch: a value the Rust tokenizer cannot take would otherwise fail as a 500 (or fail the batch).
    def check_texts(self, texts: Sequence[str], param: str, *, single: bool = False) -> None:
        """422 for a text that is not valid Unicode: a lone surrogate (``"\\ud800"`` in JSON is valid JSON,
        but no UTF-8 text, and the tokenizer cannot take it). Empty strings and NUL are valid text.
        The message names ``param[i]``, or ``param`` for a field holding one text (``single``)."""
        for i, text in enumerate(texts):
            bad = _SURROGATE.search(text)
            if bad is not None:
                where = param if single else f"{param}[{i}]"
                raise ApiError(422, f"{where} has a lone surrogate (U+{ord(bad.group()):04X}) at character "
                                    f"{bad.start()}, which is not valid Unicode text; send UTF-8 text (a JSON "
                                    "\\uD800-\\uDFFF escape must be half of a surrogate pair)", "Validation",
                               param=param)

    @staticmethod
    def is_token_ids(inputs: Any) -> bool:
        """Whether an ``input``/``inputs`` value is token ids (``[int]`` / ``[[int]]``) rather than text."""
        return isinstance(inputs, list) and bool(inputs) and not isinstance(inputs[0], str)

    def token_ids(self, ids: Sequence[int] | Sequence[Sequence[int]], param: str, hint: str = "") -> list[list[int]]:
        """One (``[int]``) or several (``[[int]]``) id sequences of the embedding model's tokenizer (the sparse
        encoder's on a server without one), as a batch; 413 / 422 for too many sequences or an id outside the
        vocabulary (named by its position; ``hint`` ends that message). Any int JSON can carry (negative, past
        2**64) is refused here."""
        flat = bool(ids) and isinstance(ids[0], int)
        batch = [list(ids)] if flat else [list(x) for x in ids]
        self.check_count(len(batch), param)
        counter = self.models.primary.tokens
        for i, sequence in enumerate(batch):
            k = counter.check_ids(sequence)
            if k is not None:
                where = f"{param}[{k}]" if flat else f"{param}[{i}][{k}]"
                raise ApiError(422, f"{where} = {sequence[k]} is not a token id of the model's vocabulary (0 to "
                                    f"{counter.vocab_size - 1}); token ids must come from the served model's own "
                                    f"tokenizer{hint}", "Tokenizer", param=param)
        return batch

    def decode(self, ids: Sequence[int] | Sequence[Sequence[int]], param: str, skip_special_tokens: bool = True,
               hint: str = "") -> list[str]:
        """Text of each id sequence (see :meth:`token_ids`) with the embedding model's tokenizer."""
        return self.models.primary.tokens.decode(self.token_ids(ids, param, hint), skip_special_tokens)

    def texts_from(self, inputs: Any, param: str) -> list[str]:
        """Texts of a string / list of strings input, checked (:meth:`check_texts`)."""
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        self.check_count(len(texts), param)
        self.check_texts(texts, param, single=isinstance(inputs, str))
        return texts

    def _prompt_ids(self, model: ServedModel, prompt: str) -> list[int]:
        """The prompt's ids to put before token-id inputs, or 422 when that would not equal encoding the
        prompt with the text (:meth:`TokenCounter.joins_exactly`): a client asking for a prompt gets it
        exactly or not at all."""
        if prompt not in self._prompt_ids_cache:
            exact = model.tokens.joins_exactly(prompt)
            ids = model.tokens.encode([prompt], add_special_tokens=False)[0].ids
            self._prompt_ids_cache[prompt] = list(ids) if exact else None
        ids = self._prompt_ids_cache[prompt]
        if ids is None:
            raise ApiError(422, f"the prompt {prompt!r} cannot be put before token ids exactly: this model's "
                                "tokenizer tokenizes the prompt and the text together differently than apart. "
                                "Send text instead of token ids (or put the prompt's tokens in your ids and use "
                                "a model without a default prompt)", "Validation", param="prompt_name")
        return ids

    def id_inputs(self, inputs: Any, *, param: str, prompt: str, truncate: bool,
                  direction: str) -> list[list[int]]:
        """The model inputs of token-id ``inputs``: each row's own ids (the model's leading and trailing
        special tokens removed where the client sent them), the prompt's ids after the leading special
        tokens, then the special tokens again: the ids ``model.tokenizer(prompt + text)`` gives for the
        text the client tokenized. A row over the model's limit answers 413 with ``truncate=false``;
        with ``truncate=true`` its own ids are cut (from the end, or from the start for
        ``direction="left"``) so that the whole row fits, special tokens and prompt kept."""
        model = self.require_embedder()
        if not model.takes_counted_ids:
            raise ApiError(422, f"`{param}`: this model (a static-embedding or Router model, or one without a "
                                "fast tokenizer) cannot run token ids as they are; send text instead",
                           "Validation", param=param)
        # Clients that tokenize for OpenAI (LangChain) send tiktoken ids: say how to make them send text.
        rows = self.token_ids(inputs, param, hint=", or send text (LangChain: OpenAIEmbeddings(..., "
                                                  "check_embedding_ctx_length=False))")
        counter = model.tokens
        prompt_ids = self._prompt_ids(model, prompt) if prompt else []
        fixed = len(counter.head) + len(prompt_ids) + len(counter.tail)
        out = []
        for i, row in enumerate(rows):
            body = counter.strip_specials(row)
            if counter.too_long(fixed + len(body)):
                budget = (model.max_length or 0) - fixed
                if not truncate or budget < 0:
                    fix = ("send fewer ids, or send truncate=true to cut them" if not truncate else
                           "the prompt and special tokens alone exceed it; use a shorter prompt")
                    raise ApiError(413, f"{param}[{i}] has {fixed + len(body)} tokens with the model's special "
                                        f"tokens{' and the prompt' if prompt_ids else ''}, more than the model's "
                                        f"limit of {model.max_length} (truncate={str(truncate).lower()}); {fix}",
                                   "Validation", param=param)
                body = body[len(body) - budget:] if direction.lower() == "left" else body[:budget]
            out.append(counter.with_specials(body, prompt_ids))
        return out

    def prompt(self, prompt_name: str | None, served: ServedModel | None = None) -> str:
        """The prompt ``encode`` prepends for ``prompt_name`` (the model's default prompt when ``None``) with
        ``served`` (default: the embedder, else the sparse encoder).

        The model's own resolution decides (``sentencekit.pipeline.prompts.resolve_prompt`` over the model's
        ``prompts`` and ``default_prompt_name``): this is the server's only call into it, so it is the one
        line to re-point when the models resolve prompts elsewhere. An unknown name answers 422.
        """
        model = (served or self.models.primary).model
        try:
            return resolve_prompt(model.prompts, prompt_name, None, model.default_prompt_name) or ""
        except ValueError:  # an unknown prompt_name; the library's message speaks to Python users, not clients
            known = ", ".join(repr(k) for k, v in model.prompts.items() if v) or "none"
            raise ApiError(422, f"prompt_name {prompt_name!r} is not one of the model's prompts ({known}); "
                                "leave it out or use one of those", "Validation", param="prompt_name") from None

    def tokenize(self, inputs: str | list[str], *, prompt_name: str | None,
                 add_special_tokens: bool) -> list[tuple[str, Any]]:
        """``(text, tokenizers.Encoding)`` of each input with its prompt, untruncated (TEI's ``/tokenize``)."""
        texts = self.texts_from(inputs, "inputs")
        prompt = self.prompt(prompt_name)
        texts = [prompt + t for t in texts]
        return list(zip(texts, self.models.primary.tokens.encode(texts, add_special_tokens)))

    async def _encode(self, model: ServedModel, items: Sequence[Any]) -> list[Any]:
        chars = sum(len(x) if isinstance(x, str) else len(x[0]) + len(x[1]) for x in items)
        if chars > INLINE_TOKENIZE_CHARS:  # keep the event loop free for other requests
            return await asyncio.to_thread(model.tokens.encode, items)
        return model.tokens.encode(items)

    async def _count(self, model: ServedModel, items: Sequence[Any], truncate: bool, param: str,
                     encodings: list[Any] | None = None) -> list[int]:
        """Tokens the model will read of each item; 413 for an item over the limit with truncate=false."""
        lengths = [len(e.ids) for e in (encodings if encodings is not None else await self._encode(model, items))]
        if not truncate:
            for i, n in enumerate(lengths):
                if model.tokens.too_long(n):
                    raise ApiError(413, f"{param}[{i}] has {n} tokens, more than the model's limit of "
                                        f"{model.max_length} (truncate=false); shorten or split it, or send "
                                        "truncate=true to cut it", "Validation", param=param)
        return [model.tokens.used(n) for n in lengths]

    async def _chat_rows(self, model: ServedModel, items: list[Any], prompt: str, *, truncate: bool, direction: str,
                         param: str) -> tuple[list[Any], list[int]] | None:
        """For a model that renders inputs through its chat template: its own token rows of ``items`` (the
        template's text, tokenized once by the model's tokenization: :meth:`ServedModel.chat_rows`) and the tokens
        it reads of each; 413 for a row the model's limit cuts with ``truncate=false``; 422 for
        ``truncation_direction=left`` on a cut row (the template's text has no end to keep). ``None`` for
        other models."""
        rows = await asyncio.to_thread(model.chat_rows, items, prompt)
        if rows is None:
            return None
        cut = np.flatnonzero(rows.truncated).tolist()
        if cut and not truncate:
            raise ApiError(413, f"{param}[{cut[0]}] is longer than the model's limit of {model.max_length} tokens once "
                                "rendered through its chat template (truncate=false); shorten or split it, or send "
                                "truncate=true to cut it", "Validation", param=param)
        if cut and direction.lower() == "left":
            raise ApiError(422, f"{param}[{cut[0]}] must be cut, and this model renders inputs through its chat "
                                "template, whose end (the template's closing tokens) is kept: truncation_direction="
                                "left is not supported for it; send right", "Validation", param=param)
        return list(rows.ids), [int(n) for n in rows.lengths]

    async def _submit(self, batcher: DynamicBatcher, key: Any, items: list[Any], tokens: int) -> BatchResult:
        try:
            return await batcher.submit(key, items, tokens)
        except BatcherClosed as exc:
            raise Admission.shutting_down(str(exc)) from None
        except ValueError as exc:
            raise ApiError(422, str(exc), "Validation") from None
        except Exception as exc:  # noqa: BLE001 - the model failed on this request alone
            raise ApiError(500, f"the model failed on this request: {type(exc).__name__}: {exc}",
                           "Backend") from None

    # -- work -----------------------------------------------------------------------------------------
    async def embed(self, inputs: Any, *, param: str, prompt_name: str | None = None, truncate: bool | None = None,
                    direction: str = "right", dimensions: int | None = None, normalize: bool = False) -> Outcome:
        """Embeddings ``[n, dim]`` of ``inputs`` (see :meth:`texts_from`) as ``model.encode`` gives them with
        the resolved prompt, then cut to ``dimensions`` and L2-normalized when asked (:func:`postprocess`).

        ``truncate=None`` follows ``--auto-truncate``. ``direction="left"`` (any case, as TEI accepts)
        keeps the end of texts over the limit instead of their start (the prompt stays).
        """
        model = self.require_embedder()
        self.check_dimensions(dimensions)
        prompt = self.prompt(prompt_name, model)
        truncate = self._truncate(truncate)
        chat = model.model.engine.message_format is not None
        if self.is_token_ids(inputs) and chat:
            raise ApiError(422, f"`{param}`: this model renders its inputs through a chat template, so token ids "
                                "cannot be run as they are; send the texts", "Validation", param=param)
        if self.is_token_ids(inputs):
            items: list[Any] = self.id_inputs(inputs, param=param, prompt=prompt, truncate=truncate,
                                              direction=direction)
            key, tokens = (prompt, True), sum(len(r) for r in items)  # the model reads every id (rows fit its limit)
        elif chat:  # the template's rows, counted as the model reads them and run as they are
            items, used = await self._chat_rows(model, self.texts_from(inputs, param), prompt, truncate=truncate,
                                                direction=direction, param=param)
            key, tokens = (prompt, True), sum(used)
        else:
            texts = self.texts_from(inputs, param)
            encodings = await self._encode(model, [prompt + t for t in texts] if prompt else texts)
            tokens = sum(await self._count(model, texts, truncate, param, encodings))
            if model.takes_counted_ids and not any(model.tokens.too_long(len(e.ids)) for e in encodings):
                key, items = (prompt, True), [e.ids for e in encodings]  # the model runs the counted ids as they are
            else:
                if truncate and direction.lower() == "left" and model.max_length is not None:
                    budget = model.max_length - model.tokens.specials() - model.tokens.count(prompt)
                    texts = await asyncio.to_thread(self._cut_left, model, texts, budget)
                key, items = (prompt, False), texts
        result = await self._submit(self.embed_batcher, key, items, tokens)
        return Outcome(postprocess(np.asarray(result.values), dimensions, normalize), tokens, result)

    async def embed_images(self, inputs: Any, *, param: str, dimensions: int | None = None,
                           normalize: bool = False) -> Outcome:
        """Embeddings ``[n, dim]`` of image inputs (see :mod:`sentencekit.serve.image_inputs`) as ``model.encode``
        gives them for the decoded images, through the same batcher and limits as texts; each image counts as one
        token of ``usage``. 424 when the served model encodes no images; 422 for inputs that are no images."""
        from sentencekit.serve.image_inputs import check_sources, decode_images

        model = self.require_embedder()
        supports = getattr(model.model, "supports", None)
        if not (callable(supports) and supports("image")):
            raise ApiError(424, f"the served model {model.name} encodes text only; \"modality\": \"image\" needs a "
                                "model that embeds images, e.g. a CLIP folder as --model", "Backend",
                           code="modality_not_supported", param="modality")
        self.check_dimensions(dimensions)
        sources = check_sources(inputs, param, allow_urls=self.config.allow_url_inputs)
        self.check_count(len(sources), param)
        images = await asyncio.to_thread(decode_images, sources, param)
        result = await self._submit(self.embed_batcher, ("", False), images, len(images))
        return Outcome(postprocess(np.asarray(result.values), dimensions, normalize), len(images), result)

    async def embed_sparse(self, inputs: Any, *, param: str, prompt_name: str | None = None,
                           truncate: bool | None = None, direction: str = "right") -> Outcome:
        """Sparse embeddings of ``inputs`` (texts) as the sparse encoder's ``encode`` gives them with the
        resolved prompt: ``Outcome.values`` is per text its non-zero ``(indices ascending, values)``. The same
        checks, token counting, truncation and batching as :meth:`embed`; token-id inputs answer 422 (send
        text). 424 on a server without a sparse encoder."""
        model = self.require_sparse()
        prompt = self.prompt(prompt_name, model)
        truncate = self._truncate(truncate)
        if self.is_token_ids(inputs):
            raise ApiError(422, f"`{param}`: /embed_sparse takes text (a string or a list of strings), not token "
                                "ids; send the texts", "Validation", param=param)
        texts = self.texts_from(inputs, param)
        encodings = await self._encode(model, [prompt + t for t in texts] if prompt else texts)
        tokens = sum(await self._count(model, texts, truncate, param, encodings))
        if truncate and direction.lower() == "left" and model.max_length is not None:
            budget = model.max_length - model.tokens.specials() - model.tokens.count(prompt)
            texts = await asyncio.to_thread(self._cut_left, model, texts, budget)
        result = await self._submit(self.sparse_batcher, prompt, texts, tokens)
        return Outcome(result.values, tokens, result)

    async def rerank(self, query: str, documents: list[str], *, param: str, raw_scores: bool = False,
                     truncate: bool | None = None, direction: str = "right") -> Outcome:
        """Scores ``[n]`` of ``documents`` against ``query``. ``truncate=None`` follows ``--auto-truncate``;
        ``direction="left"`` keeps the end of documents that do not fit beside the query."""
        model = self.require_reranker()
        self.check_count(len(documents), param)
        self.check_texts([query], "query", single=True)
        self.check_texts(documents, param)
        truncate = self._truncate(truncate)
        pairs = [(query, d) for d in documents]
        chat = await self._chat_rows(model, pairs, self.prompt(None, model), truncate=truncate, direction=direction,
                                     param=param)
        if chat is not None:  # a chat-template reranker: count the template's rows, and run them as they are
            rows, used = chat
            result = await self._submit(self.rerank_batcher, (raw_scores, True), rows, sum(used))
            return Outcome(np.asarray(result.values), sum(used), result)
        # a late-interaction reranker reads each document on its own (the query apart, cut at its own length)
        alone = model.kind == "late_interaction"
        used = await self._count(model, documents if alone else pairs, truncate, param)
        if truncate and direction.lower() == "left" and model.max_length is not None:
            reserved = 0 if alone else model.tokens.count(query)
            budget = model.max_length - model.tokens.specials(pair=not alone) - reserved
            pairs = [(query, d) for d in await asyncio.to_thread(self._cut_left, model, documents, budget)]
        result = await self._submit(self.rerank_batcher, raw_scores, pairs, sum(used))
        return Outcome(np.asarray(result.values), sum(used), result)

    def _truncate(self, requested: bool | None) -> bool:
        """The request's ``truncate``, or ``--auto-truncate`` when it sent none."""
        return self.config.auto_truncate if requested is None else requested


def postprocess(embeddings: np.ndarray, dimensions: int | None, normalize: bool) -> np.ndarray:
    """Matryoshka truncation, then L2 normalization (as ``encode(truncate_dim=..., normalize_embeddings=True)``).

    >>> postprocess(np.array([[3.0, 4.0, 12.0]], dtype=np.float32), 2, True).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    if dimensions is not None:
        embeddings = embeddings[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings = embeddings / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(embeddings, dtype=np.float32)
