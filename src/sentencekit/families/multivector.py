"""``MultiVectorEncoder``: late-interaction (ColBERT-style) retrieval. A text becomes one vector per token
(``[n_tokens, dim]``), and a query scores a document by MaxSim: each query token's best match among the
document's tokens, summed.

ColBERT: Khattab & Zaharia, "ColBERT: Efficient and Effective Passage Search via Contextualized Late
Interaction over BERT" (SIGIR 2020); ColBERTv2: Santhanam et al. (NAACL 2022). Interface, outputs and on-disk
format: sentence-transformers 6.2 (``sentence_transformers.multi_vector_encoder.MultiVectorEncoder``). Encoding
runs the one pipeline (:func:`sentencekit.pipeline.encode.run_pipeline`) with the multi-vector last step
(:mod:`sentencekit.pipeline.multivector_output`); the modules are ``Transformer`` (per-task lengths, query
expansion) -> token ``Dense`` -> ``MultiVectorMask`` -> token ``Normalize`` [-> ``HierarchicalTokenPooling``].

Two backends: ``backend="torch"`` (default) returns torch tensors, as sentence-transformers does;
``backend="onnx"`` runs without importing torch and returns NumPy (see :meth:`MultiVectorEncoder.encode`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from sentencekit import __version__
from sentencekit.engines.protocol import EngineOptions
from sentencekit.families.model_base import Model, pool_aware
from sentencekit.pipeline.batching import EncodeInfo
from sentencekit.pipeline.encode import read_inputs, run_pipeline
from sentencekit.pipeline.multivector_output import (
    check_output_value,
    gather_rows,
    multivector_batch_step,
    warn_compounding,
)
from sentencekit.pipeline.prompts import DOCUMENT_PROMPT_NAMES
from sentencekit.spec.multivector_source import SIMILARITY_FN_NAMES, MultiVectorSource, read_multivector_source

logger = logging.getLogger(__name__)

NO_TENSOR = ("MultiVectorEncoder.encode() has no convert_to_tensor: the other model families stack embeddings into "
              "one tensor, but multi-vector embeddings have a different number of rows per text, so there is nothing "
              "to stack. encode() already returns a list of tensors; pass convert_to_numpy=True for NumPy arrays.")


def check_multivector_similarity(value: Any) -> str:
    """``"maxsim"`` or ``"meanmaxsim"`` (a ``SimilarityFunction``-like enum's value too); ``ValueError`` otherwise."""
    name = str(getattr(value, "value", value))
    if name in SIMILARITY_FN_NAMES:
        return name
    if name == "xtr":
        raise ValueError("MultiVectorEncoder scores with 'maxsim' or 'meanmaxsim'. XTR is a training-time scoring: "
                         "its global top-k runs over the in-batch token pool, so a pair's score depends on the batch "
                         "and is not defined for a model-level similarity.")
    raise ValueError(f"MultiVectorEncoder supports the similarity functions {SIMILARITY_FN_NAMES}, got {value!r}: "
                     "cosine / dot / euclidean / manhattan score single vectors, not per-token embeddings.")


class MultiVectorEncoder(Model):
    """Load a multi-vector (ColBERT-style) model and turn texts into per-token embeddings scored by MaxSim.

    >>> from sentencekit import MultiVectorEncoder
    >>> model = MultiVectorEncoder("path/to/colbert")                                 # doctest: +SKIP
    >>> q = model.encode_query(["What is the capital of France?"])                    # doctest: +SKIP
    >>> d = model.encode_document(["Paris is the capital of France.", "Berlin is in Germany."])  # doctest: +SKIP
    >>> q[0].shape                                  # [query tokens (expanded to 32), 128]  # doctest: +SKIP
    torch.Size([32, 128])
    >>> model.similarity(q, d)                                                        # doctest: +SKIP
    tensor([[25.1, 17.3]])

    Loads what sentence-transformers 6.2 loads as one (:mod:`sentencekit.spec.multivector_source`): its own saves,
    PyLate (<= 3) and Stanford ColBERT checkpoints (their prefixes, lengths, expansion and skiplist), and any encoder (a
    SentenceTransformer save or a Hugging Face folder), which gets a new random projection to 128 dimensions, with a
    warning: train it. A transformers ``*ForRetrieval`` page retriever (ColPali, ColQwen2, ColModernVBert) encodes text
    queries with :meth:`encode_query` and page images (PIL images, paths) with :meth:`encode_document`, through its
    processor (torch backend only). ``modules=[...]`` builds one from modules. Every argument after the first is
    keyword-only. ``similarity_fn_name``: ``"maxsim"`` (default, recorded when first read) or ``"meanmaxsim"``.
    ``backend="onnx"`` runs the model on ONNX Runtime without torch (the transformer, token ``Dense`` and ``Normalize``
    in one exported graph; masking, expansion and pooling in NumPy / SciPy); ``compute_dtype="int8"`` there quantizes
    that graph, calibrated on the per-token cosine to float32 over ``calibration_texts`` (default: the bundled sample
    queries and passages; each set has its own cached file). Raises ``ModelFormatError`` for a folder that is no model,
    a sparse encoder or a reranker, ``ValueError`` for bad settings.
    """

    family = "multivector"
    _info_attribute = "last_encode_info"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        modules: list[Any] | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        model_card_data: Any = None,
        backend: Literal["torch", "onnx"] = "torch",
        similarity_fn_name: str | None = None,
        num_threads: int | None = None,
        compute_dtype: str | None = None,
        calibration_texts: list[str] | None = None,
    ) -> None:
        options = EngineOptions(device=device, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs,
                                tokenizer_kwargs=processor_kwargs, config_kwargs=config_kwargs,
                                num_threads=num_threads, compute_dtype=compute_dtype, calibration=calibration_texts)
        self._build(model_name_or_path, modules, backend=backend, options=options, cache_folder=cache_folder,
                    revision=revision, local_files_only=local_files_only, token=token)
        source = read_multivector_source(self.spec, warn=False) if self.spec is not None else \
            MultiVectorSource("modules")
        self.model_card_data = model_card_data
        self.prompts = {"query": "", "document": "", **source.prompts, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or source.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}.")
        self._similarity_fn_name: str | None = None
        fn_name = similarity_fn_name or source.similarity_fn_name
        if fn_name:
            self.similarity_fn_name = fn_name
        if self.engine.backend == "torch":
            self._prepare_modules()

    def _prepare_modules(self) -> None:
        """Resolve the skiplists with the final tokenizer, and note an expansion no mask scores (as
        sentence-transformers does)."""
        from sentencekit.modules import MultiVectorMask, Transformer

        modules = list(self.network)
        for module in modules:
            if isinstance(module, MultiVectorMask):
                module.resolve_with_tokenizer(self.tokenizer)
        for i, module in enumerate(modules):
            if isinstance(module, Transformer) and module.query_expansion is not None and \
                    not any(isinstance(m, MultiVectorMask) for m in modules[i + 1:]):
                logger.warning("query_expansion is set on the Transformer, but no MultiVectorMask follows it: the "
                               "expansion tokens will not be scored. Add a MultiVectorMask after the Transformer.")

    # -- settings -------------------------------------------------------------------------------------------------
    @property
    def similarity_fn_name(self) -> str:
        """``"maxsim"`` or ``"meanmaxsim"`` (MaxSim divided by the query's token count); ``"maxsim"`` when never
        set (then recorded, so a saved model names it; a model saved before reading it saves ``null``)."""
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "maxsim"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = check_multivector_similarity(value)

    @property
    def last_encode_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` call made by this thread: inputs whose content was cut at
        their task's length (``query_length`` / expansion length / ``document_length`` / ``max_seq_length``)."""
        return self.last_info

    def get_embedding_dimension(self) -> int | None:
        """Width of each token vector ``encode`` returns."""
        return self.engine.dimension()

    @property
    def is_page_retriever(self) -> bool:
        """Whether this is a transformers ``*ForRetrieval`` model (ColPali, ColQwen2, ColModernVBert): text queries,
        page-image documents (only the torch backend runs them)."""
        from sentencekit.modules import Transformer

        first = self.network[0] if self.engine.backend == "torch" else None
        return isinstance(first, Transformer) and first.transformer_task == "retrieval"

    def _pipeline_pools(self) -> bool:
        if self.engine.backend != "torch":
            return bool(getattr(self.engine, "poolings", ()))
        from sentencekit.modules import BaseTokenPooling

        return any(isinstance(m, BaseTokenPooling) for m in self.network)

    # -- encode ---------------------------------------------------------------------------------------------------
    @pool_aware
    def encode(
        self,
        inputs: str | list[str] | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["token_embeddings"] | None = "token_embeddings",
        convert_to_numpy: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        pool: Any = None,
        chunk_size: int | None = None,
        token_pooling: Any = None,
        task: str | None = None,
        max_batch_tokens: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Per-token embeddings: a list with one ``[n_tokens_i, dim]`` tensor per text, on the model's device
        (a single text gives one 2-D tensor; no texts ``[]``). Each text keeps the tokens its scoring mask keeps
        (``MultiVectorMask``: real tokens, plus the expansion tokens of queries, minus skiplisted document
        tokens). ``convert_to_numpy=True``: float32 NumPy arrays instead (moved to the CPU batch by batch).
        ``normalize_embeddings``: L2-normalise each token vector (before ``token_pooling``).
        ``token_pooling`` (e.g. ``HierarchicalTokenPooling(2)``): pool the inputs of the tasks it applies to
        (documents by default); it compounds with a pooling the model already has (noted once).
        ``output_value=None``: one dict per text with every per-input feature (``token_embeddings``,
        ``attention_mask`` holding the scoring mask, ``input_ids``...), unsliced and padded to its batch;
        ``normalize_embeddings`` and ``convert_to_numpy`` do not apply there. ``task``: ``"query"`` or
        ``"document"`` (:meth:`encode_query` / :meth:`encode_document` set it): the length limit, query
        expansion and skiplist follow it; ``None`` counts as a document for the skiplist and uses
        ``max_seq_length``.

        On the torch-free backend (``backend="onnx"``) the results are NumPy arrays (float32 rows, dicts of
        arrays) whatever ``convert_to_numpy`` says.

        Texts are tokenized once and run in length-sorted batches, returned in input order; content cut at the
        task's length is reported (a ``TruncationWarning`` and ``model.last_encode_info``; padding a short
        query with expansion tokens is not truncation). ``pool=model.start_multi_process_pool()`` (or
        ``device=["cuda:0", "cuda:1"]``) spreads the texts over worker processes: the same rows, on the CPU.
        Raises ``ValueError`` for ``convert_to_tensor`` (multi-vector rows cannot be stacked), an unknown
        ``output_value`` or keyword argument, or a bad ``batch_size``; ``TypeError`` naming a bad input.
        """
        if "sentences" in kwargs:
            if inputs is not None:
                raise TypeError("encode() got both inputs and sentences; pass one.")
            inputs = kwargs.pop("sentences")
        if "convert_to_tensor" in kwargs:
            raise ValueError(NO_TENSOR)
        check_output_value(output_value)
        checked = read_inputs(self.engine, inputs)
        if token_pooling is not None:
            if not callable(getattr(token_pooling, "applies_to", None)):
                raise TypeError("token_pooling must be a token pooling module (HierarchicalTokenPooling, "
                                "LambdaTokenPooling, a BaseTokenPooling subclass), got "
                                f"{type(token_pooling).__name__}.")
            warn_compounding(token_pooling, task, self._pipeline_pools())
        step = multivector_batch_step(output_value=output_value, normalize_embeddings=normalize_embeddings,
                                      token_pooling=token_pooling, task=task,
                                      convert_to_numpy=convert_to_numpy and output_value is not None)
        outputs = frozenset({"token_embeddings"} if output_value is not None else {"*"})
        run = run_pipeline(self, checked, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                           show_progress_bar=show_progress_bar, device=device, max_batch_tokens=max_batch_tokens,
                           outputs=outputs, kwargs={**kwargs, "task": task}, batch_step=step)
        rows = gather_rows(run.parts.get("rows", []), run.inverse)
        return rows[0] if run.single else rows

    def encode_query(self, inputs: Any = None, prompt_name: str | None = None, prompt: str | None = None,
                     batch_size: int = 32, show_progress_bar: bool | None = None,
                     output_value: Literal["token_embeddings"] | None = "token_embeddings",
                     convert_to_numpy: bool = False, device: str | None = None, normalize_embeddings: bool = False,
                     pool: Any = None, chunk_size: int | None = None, token_pooling: Any = None,
                     **kwargs: Any) -> Any:
        """:meth:`encode` with ``task="query"``: the ``query`` prompt (when no prompt is given), the query
        length, query expansion, and the query side of the skiplist. Same arguments and results as
        :meth:`encode` (in sentence-transformers' positional order)."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(inputs, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                           show_progress_bar=show_progress_bar, output_value=output_value,
                           convert_to_numpy=convert_to_numpy, device=device, normalize_embeddings=normalize_embeddings,
                           pool=pool, chunk_size=chunk_size, token_pooling=token_pooling, task="query", **kwargs)

    def encode_document(self, inputs: Any = None, prompt_name: str | None = None, prompt: str | None = None,
                        batch_size: int = 32, show_progress_bar: bool | None = None,
                        output_value: Literal["token_embeddings"] | None = "token_embeddings",
                        convert_to_numpy: bool = False, device: str | None = None, normalize_embeddings: bool = False,
                        pool: Any = None, chunk_size: int | None = None, token_pooling: Any = None,
                        **kwargs: Any) -> Any:
        """:meth:`encode` with ``task="document"``: the first of the ``document`` / ``passage`` / ``corpus``
        prompts the model has (when no prompt is given), the document length, and the skiplist."""
        if prompt_name is None and prompt is None:
            prompt_name = next((n for n in DOCUMENT_PROMPT_NAMES if n in self.prompts), None)
        return self.encode(inputs, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                           show_progress_bar=show_progress_bar, output_value=output_value,
                           convert_to_numpy=convert_to_numpy, device=device, normalize_embeddings=normalize_embeddings,
                           pool=pool, chunk_size=chunk_size, token_pooling=token_pooling, task="document", **kwargs)

    # -- similarity -----------------------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any, **kwargs: Any) -> Any:
        """MaxSim (or MeanMaxSim, per :attr:`similarity_fn_name`) of every query in ``embeddings1`` with every
        document in ``embeddings2``: ``[n, m]`` float32. Each side is a list of ``[tokens, dim]`` tensors /
        arrays, a padded ``[batch, tokens, dim]`` tensor or one ``[tokens, dim]`` tensor. Keyword arguments go
        to the scoring function (:mod:`sentencekit.late_interaction_tensors`): ``a_mask`` / ``b_mask``,
        ``chunk_elements``, ``length_normalize``, ``device``. A tensor on the documents' device on the torch
        backend; a NumPy array on the torch-free one (:mod:`sentencekit.late_interaction`, no ``device``)."""
        return self._similarity_fns()[0](embeddings1, embeddings2, **kwargs)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any, **kwargs: Any) -> Any:
        """The score of each query with its own document (``embeddings1[i]`` with ``embeddings2[i]``): ``[n]``
        float32, with :meth:`similarity`'s inputs and keyword arguments."""
        return self._similarity_fns()[1](embeddings1, embeddings2, **kwargs)

    # -- reranking -------------------------------------------------------------------------------------------------
    def predict(self, sentences: Any, batch_size: int = 32, show_progress_bar: bool | None = None,
                **kwargs: Any) -> Any:
        """Late-interaction scores of ``(query, document)`` pairs: ``[n]`` float32 NumPy (a single pair: one
        float). Each distinct query is encoded once with :meth:`encode_query`, each document with
        :meth:`encode_document`, and each pair scored with the model's similarity (MaxSim / MeanMaxSim), the
        same numbers as ``similarity_pairwise``. An addition to sentence-transformers' interface, in
        ``CrossEncoder.predict``'s shape, so that a ColBERT model reranks wherever a cross-encoder does:
        ``EmbeddingIndex.search(reranker=model)``, ``sentencekit rerank`` / ``search --rerank``, and the server's
        rerank routes. Keyword arguments go to both encode calls (e.g. ``max_batch_tokens``). Raises
        ``TypeError`` for an input that is not a pair of strings, ``ValueError`` for a ``*ForRetrieval`` model
        (ColPali: its documents are page images, so text pairs would be scored query against query).

        >>> model.predict([("how do i get a refund", "Refunds take 5 days.")])   # doctest: +SKIP
        array([11.7], dtype=float32)
        """
        import numpy as np

        from sentencekit.pipeline.batching import as_input_list

        if self.is_page_retriever:
            # its documents are page images: text documents would be rendered as queries and scored as such
            raise ValueError("predict / rank score (query, text document) pairs, but this *ForRetrieval model "
                             "(ColPali family) takes documents as page images: score with model.similarity("
                             "model.encode_query(queries), model.encode_document(images)).")
        pairs, single = as_input_list(sentences, allow_pairs=True, what="sentences")
        for i, pair in enumerate(pairs):
            if isinstance(pair, str) or len(pair) != 2:
                raise TypeError(f"sentences[{i}] is not a (query, document) pair: {pair!r}")
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        queries = list(dict.fromkeys(q for q, _ in pairs))
        position = {q: i for i, q in enumerate(queries)}
        options = {"batch_size": batch_size, "show_progress_bar": show_progress_bar, "convert_to_numpy": True,
                   **kwargs}
        query_rows = self.encode_query(queries, **options)
        document_rows = self.encode_document([d for _, d in pairs], **options)
        from sentencekit.late_interaction import SIMILARITIES

        scores = np.asarray(SIMILARITIES[self.similarity_fn_name][1](
            [query_rows[position[q]] for q, _ in pairs], document_rows), dtype=np.float32)
        return float(scores[0]) if single else scores

    def rank(self, query: str, documents: Any, top_k: int | None = None, return_documents: bool = False,
             batch_size: int = 32, show_progress_bar: bool | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """``documents`` ranked for ``query`` by late interaction (:meth:`predict`): ``[{"corpus_id", "score"(,
        "text")}]``, best first, as ``CrossEncoder.rank`` returns. Raises ``TypeError`` for a query that is not
        a string or documents given as one string, ``ValueError`` for ``top_k <= 0`` or a ``*ForRetrieval`` model
        (its documents are page images: :meth:`predict`)."""
        from sentencekit.pipeline.batching import as_input_list
        from sentencekit.pipeline.predict import ranked

        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str):
            raise TypeError("documents must be a list of strings, not a single string.")
        docs, _ = as_input_list(documents, what="documents")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        scores = self.predict([(query, d) for d in docs], batch_size=batch_size, show_progress_bar=show_progress_bar,
                              **kwargs) if docs else []
        return ranked(scores, docs, top_k, return_documents)

    def _similarity_fns(self) -> tuple[Any, Any]:
        name = self.similarity_fn_name
        if self.engine.backend == "torch":
            from sentencekit.late_interaction_tensors import SIMILARITIES
        else:
            from sentencekit.late_interaction import SIMILARITIES
        return SIMILARITIES[name]

    # -- saving ---------------------------------------------------------------------------------------------------
    def _save_to(self, network: Any, folder: Path, *, safe_serialization: bool) -> None:
        import torch
        import transformers

        from sentencekit.format import save_modules, write_model_config

        save_modules(list(network), folder, safe_serialization=safe_serialization, module_kwargs=network.module_kwargs)
        write_model_config(folder, {
            "model_type": "MultiVectorEncoder",
            "__version__": {"sentencekit": __version__, "transformers": transformers.__version__,
                            "pytorch": torch.__version__},
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "similarity_fn_name": self._similarity_fn_name,  # null until set or read (loads back as maxsim)
        })


__all__ = ["MultiVectorEncoder", "check_multivector_similarity"]
