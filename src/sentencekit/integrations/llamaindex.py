"""LlamaIndex adapters (``pip install sentencekit[llamaindex]``, llama-index-core 0.14).

:class:`SentencekitEmbedding` is a ``BaseEmbedding`` over a sentencekit ``SentenceTransformer`` (queries
through ``encode_query``, texts through ``encode_document``, so the model's prompts apply; the async methods
run the blocking encode in a worker thread). :class:`SentencekitRerank` is a node post-processor over a
``CrossEncoder`` (``rank``).

The model-fingerprint guard: used as a transformation (``IngestionPipeline`` or
``VectorStoreIndex.from_documents(..., transformations=[..., embed_model])``) the embedding writes its model's
fingerprint into each node's metadata (excluded from the text that is embedded or shown to the LLM);
:class:`SentencekitFingerprintCheck`, a node post-processor, refuses retrieved nodes another model embedded.
LlamaIndex's own ``VectorStoreIndex(nodes, embed_model=...)`` path embeds through
``get_text_embedding_batch`` and gives no hook to write metadata: call :meth:`SentencekitEmbedding.stamp`
on the nodes first, or they are not guarded.

>>> from llama_index.core import Document, VectorStoreIndex                 # doctest: +SKIP
>>> from sentencekit.integrations.llamaindex import SentencekitEmbedding, SentencekitFingerprintCheck
>>> embed_model = SentencekitEmbedding("sentence-transformers/all-MiniLM-L6-v2")
>>> index = VectorStoreIndex.from_documents([Document(text="Refunds are paid within 5 days.")],
...                                         embed_model=embed_model, transformations=[embed_model])
>>> retriever = index.as_retriever(similarity_top_k=1)
>>> nodes = SentencekitFingerprintCheck(fingerprint=embed_model.fingerprint).postprocess_nodes(
...     retriever.retrieve("How do I get a refund?"))
>>> nodes[0].node.get_content()
'Refunds are paid within 5 days.'
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from sentencekit.fingerprint import model_fingerprint
from sentencekit.integrations.metadata_guard import FINGERPRINT_KEY, check_fingerprints
from sentencekit.integrations.model_loading import load_model


class SentencekitEmbedding(BaseEmbedding):
    """LlamaIndex ``BaseEmbedding`` over a sentencekit ``SentenceTransformer`` (or a path / name to load).

    Query embeddings come from ``model.encode_query``, text (node) embeddings from ``model.encode_document``,
    ``embed_batch_size`` texts per call, as lists of ``dim`` floats. ``fingerprint`` is the model's identity.
    Called as a transformation (``embed_model(nodes)``) it also records the fingerprint in the nodes' metadata.

    >>> embed_model = SentencekitEmbedding(model)                              # doctest: +SKIP
    >>> len(embed_model.get_query_embedding("How do I get a refund?"))
    384
    """

    fingerprint: str = Field(default="", description="The sentencekit model fingerprint of the embeddings.")
    normalize_embeddings: bool = Field(default=False, description="L2-normalise the embeddings.")
    _model: Any = PrivateAttr()

    def __init__(self, model: Any, *, embed_batch_size: int = 32, normalize_embeddings: bool = False,
                 **kwargs: Any) -> None:
        loaded = load_model(model, "SentenceTransformer")
        kwargs.setdefault("model_name", str(getattr(loaded, "model_name_or_path", None) or "sentencekit"))
        super().__init__(embed_batch_size=embed_batch_size, normalize_embeddings=normalize_embeddings,
                         fingerprint=model_fingerprint(loaded), **kwargs)
        self._model = loaded

    @classmethod
    def class_name(cls) -> str:
        return "SentencekitEmbedding"

    @property
    def model(self) -> Any:
        """The wrapped sentencekit model."""
        return self._model

    def _encode(self, texts: list[str], side: str) -> list[Embedding]:
        encode = self._model.encode_query if side == "query" else self._model.encode_document
        return encode(texts, batch_size=self.embed_batch_size, normalize_embeddings=self.normalize_embeddings,
                      show_progress_bar=False, convert_to_numpy=True).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encode([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encode([text], "document")[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encode(list(texts), "document") if texts else []

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    # -- the fingerprint guard ------------------------------------------------------------------------------------
    def stamp(self, nodes: Sequence[BaseNode]) -> Sequence[BaseNode]:
        """Record this model's fingerprint in each node's metadata (in place; returns ``nodes``), excluded from
        the text that is embedded and the text the LLM sees."""
        for node in nodes:
            node.metadata[FINGERPRINT_KEY] = self.fingerprint
            for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
                if FINGERPRINT_KEY not in excluded:
                    excluded.append(FINGERPRINT_KEY)
        return nodes

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return super().__call__(self.stamp(nodes), **kwargs)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return await super().acall(self.stamp(nodes), **kwargs)


class SentencekitFingerprintCheck(BaseNodePostprocessor):
    """Node post-processor that passes retrieved nodes through unchanged, or raises ``ValueError`` when one
    records (in its metadata) a model fingerprint other than ``fingerprint`` (the query model's:
    ``SentencekitEmbedding.fingerprint``). Put it first in a query engine's ``node_postprocessors``."""

    fingerprint: str = Field(description="The fingerprint of the model that embeds the queries.")

    @classmethod
    def class_name(cls) -> str:
        return "SentencekitFingerprintCheck"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        check_fingerprints(((n.node.node_id, n.node.metadata) for n in nodes), self.fingerprint,
                           where="SentencekitFingerprintCheck")
        return nodes


class SentencekitRerank(BaseNodePostprocessor):
    """Node post-processor that reranks retrieved nodes with a sentencekit ``CrossEncoder`` (``rank``) and
    keeps the best ``top_n``, best first; each node's ``score`` becomes the cross-encoder's (a float).
    ``keep_retrieval_score`` keeps the retriever's score in ``metadata["retrieval_score"]``. Raises
    ``ValueError`` without a query.

    >>> rerank = SentencekitRerank(CrossEncoder("path/to/reranker"), top_n=3)    # doctest: +SKIP
    >>> engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])
    """

    top_n: int = Field(default=3, gt=0, description="Number of nodes to keep.")
    batch_size: int = Field(default=32, gt=0, description="Pairs per cross-encoder batch.")
    keep_retrieval_score: bool = Field(default=False, description="Keep the retrieval score in metadata.")
    _model: Any = PrivateAttr()

    def __init__(self, model: Any, *, top_n: int = 3, batch_size: int = 32, keep_retrieval_score: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(top_n=top_n, batch_size=batch_size, keep_retrieval_score=keep_retrieval_score, **kwargs)
        self._model = load_model(model, "CrossEncoder")

    @classmethod
    def class_name(cls) -> str:
        return "SentencekitRerank"

    @property
    def model(self) -> Any:
        """The wrapped sentencekit cross-encoder."""
        return self._model

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SentencekitRerank needs the query: call postprocess_nodes(nodes, query_str=...) or "
                             "use it in a query engine's node_postprocessors.")
        if not nodes:
            return []
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        hits = self._model.rank(query_bundle.query_str, texts, top_k=self.top_n, batch_size=self.batch_size,
                                show_progress_bar=False)
        out = []
        for hit in hits:
            picked = nodes[hit["corpus_id"]]
            if self.keep_retrieval_score:  # a score, not content: kept out of what is embedded and reranked
                picked.node.metadata["retrieval_score"] = picked.score
                if "retrieval_score" not in picked.node.excluded_embed_metadata_keys:
                    picked.node.excluded_embed_metadata_keys.append("retrieval_score")
            out.append(NodeWithScore(node=picked.node, score=float(hit["score"])))
        return out


__all__ = ["SentencekitEmbedding", "SentencekitRerank", "SentencekitFingerprintCheck", "FINGERPRINT_KEY"]
