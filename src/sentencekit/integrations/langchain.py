"""LangChain adapters (``pip install sentencekit[langchain]``, langchain-core 1.x).

:class:`SentencekitEmbeddings` is a ``langchain_core.embeddings.Embeddings`` over a sentencekit
``SentenceTransformer`` (queries through ``encode_query``, documents through ``encode_document``, so the
model's query / document prompts apply); :class:`SentencekitReranker` is a ``BaseDocumentCompressor`` over a
``CrossEncoder`` (``rank``). Async methods run the blocking encode in a worker thread.

The model-fingerprint guard: LangChain vector stores keep no record of the model that embedded them, so the
adapter writes one into each document's metadata and checks it on the way out
(:meth:`SentencekitEmbeddings.check_documents`, a step to pipe a retriever into, and
:meth:`SentencekitEmbeddings.check_vector_store` for a store reloaded from disk). Add documents with
:func:`add_stamped_documents` (``add_stamped_documents(store, docs)``): it stamps them with the fingerprint of the
embeddings the store itself embeds with, so the stamp cannot name another model than the one that embedded
them (:meth:`SentencekitEmbeddings.stamp` stamps with its own model, right only when it is the store's).
LangChain gives no hook that runs on every ``add_documents`` or search, so documents added unstamped are not
guarded.

>>> from langchain_core.vectorstores import InMemoryVectorStore            # doctest: +SKIP
>>> from langchain_core.documents import Document
>>> from sentencekit.integrations.langchain import SentencekitEmbeddings, add_stamped_documents
>>> embeddings = SentencekitEmbeddings("sentence-transformers/all-MiniLM-L6-v2")
>>> store = InMemoryVectorStore(embeddings)
>>> add_stamped_documents(store, [Document("Refunds are paid within 5 days.")])
>>> store.similarity_search("How do I get a refund?", k=1)[0].page_content
'Refunds are paid within 5 days.'
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict

from sentencekit.fingerprint import model_fingerprint
from sentencekit.integrations.metadata_guard import FINGERPRINT_KEY, check_fingerprints
from sentencekit.integrations.model_loading import load_model


class SentencekitEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over a sentencekit ``SentenceTransformer`` (or a path / name to load one).

    ``embed_documents(texts) -> list[list[float]]`` (``len(texts)`` rows of ``dim`` floats) uses
    ``model.encode_document``; ``embed_query(text) -> list[float]`` uses ``model.encode_query``; both pass
    ``batch_size``, ``normalize_embeddings`` and any ``encode_kwargs`` on. ``fingerprint`` is the model's
    identity (:func:`sentencekit.fingerprint.model_fingerprint`). Raises ``TypeError`` for a text that is not
    a string (from the model's input check).

    >>> embeddings = SentencekitEmbeddings(model)                          # doctest: +SKIP
    >>> len(embeddings.embed_query("How do I get a refund?")) == model.get_sentence_embedding_dimension()
    True
    """

    def __init__(self, model: Any, *, batch_size: int = 32, normalize_embeddings: bool = False,
                 encode_kwargs: dict[str, Any] | None = None) -> None:
        self.model = load_model(model, "SentenceTransformer")
        self.batch_size = batch_size
        self.normalize_embeddings = normalize_embeddings
        self.encode_kwargs = dict(encode_kwargs or {})
        self.fingerprint: str = model_fingerprint(self.model)

    def _options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "normalize_embeddings": self.normalize_embeddings,
                "show_progress_bar": False, **self.encode_kwargs, "convert_to_numpy": True}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One embedding per text, through the model's document prompt."""
        if not texts:
            return []
        return self.model.encode_document(list(texts), **self._options()).tolist()

    def embed_query(self, text: str) -> list[float]:
        """The embedding of one query, through the model's query prompt."""
        if not isinstance(text, str):
            raise TypeError(f"embed_query takes one string, got {type(text).__name__}; use embed_documents "
                            "for a list.")
        return self.model.encode_query([text], **self._options())[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread (the event loop keeps running)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread (the event loop keeps running)."""
        return await asyncio.to_thread(self.embed_query, text)

    # -- the fingerprint guard ------------------------------------------------------------------------------------
    def stamp(self, documents: Sequence[Document]) -> list[Document]:
        """Copies of ``documents`` whose metadata records this model's fingerprint (under
        ``"sentencekit_fingerprint"``), so that :meth:`check_documents` can tell which model embedded them.
        Add them only to a store that embeds with this same object (``InMemoryVectorStore(embeddings)``): the
        stamp names this adapter's model, not the store's. :func:`add_stamped_documents` (``store`` in, the
        stamp from ``store.embeddings``) cannot get that wrong."""
        return [doc.model_copy(update={"metadata": {**doc.metadata, FINGERPRINT_KEY: self.fingerprint}})
                for doc in documents]

    def check_documents(self, documents: Sequence[Document]) -> Sequence[Document]:
        """Return ``documents`` unchanged if none was embedded by another model, else raise ``ValueError``
        naming the document and both fingerprints. Pipe a retriever into it:
        ``store.as_retriever() | RunnableLambda(embeddings.check_documents)``."""
        check_fingerprints(((doc.id, doc.metadata) for doc in documents), self.fingerprint,
                           where="SentencekitEmbeddings")
        return documents

    def check_vector_store(self, store: Any) -> None:
        """Refuse a vector store built with another model: raise ``ValueError`` if the store's own embeddings
        are a :class:`SentencekitEmbeddings` of another model, or (for stores that expose their records, like
        ``InMemoryVectorStore``) if a stored document's metadata names another model's fingerprint."""
        own = getattr(store, "embeddings", None)
        if isinstance(own, SentencekitEmbeddings) and own.fingerprint != self.fingerprint:
            raise ValueError(f"SentencekitEmbeddings: the vector store embeds with model fingerprint "
                             f"{own.fingerprint}, this adapter's model is {self.fingerprint}: use the same model "
                             "for documents and queries.")
        records = getattr(store, "store", None)
        if isinstance(records, dict):
            hint = ("" if own is None else " If this store embeds with this model (it was not saved by "
                    "another one), the stamp is wrong: the documents were stamped with another "
                    "SentencekitEmbeddings' stamp() than the store's embeddings; add them with "
                    "add_stamped_documents(store, documents), which stamps with store.embeddings.")
            check_fingerprints(((key, rec.get("metadata")) for key, rec in records.items()
                                if isinstance(rec, dict)), self.fingerprint, where="SentencekitEmbeddings",
                               hint=hint)


def add_stamped_documents(store: Any, documents: Sequence[Document], **kwargs: Any) -> list[str]:
    """``store.add_documents`` of ``documents`` stamped with the fingerprint of ``store.embeddings`` (the
    model that embeds them), so :meth:`SentencekitEmbeddings.check_documents` and
    :meth:`SentencekitEmbeddings.check_vector_store` can tell which model embedded them. ``kwargs`` go to
    ``add_documents`` (e.g. ``ids``); returns its ids. Raises ``TypeError`` when the store does not embed
    with a :class:`SentencekitEmbeddings` (its fingerprint is unknown).

    >>> store = InMemoryVectorStore(SentencekitEmbeddings(model))               # doctest: +SKIP
    >>> add_stamped_documents(store, [Document("Refunds are paid within 5 days.")])
    ['3f2a...']
    """
    own = getattr(store, "embeddings", None)
    if not isinstance(own, SentencekitEmbeddings):
        raise TypeError(f"add_stamped_documents: {type(store).__name__} embeds with "
                        f"{type(own).__name__ if own is not None else 'no embeddings object'}, not a "
                        "SentencekitEmbeddings, so the model that embeds the documents has no fingerprint to "
                        "stamp. Build the store with SentencekitEmbeddings(model), or add the documents unstamped.")
    return store.add_documents(own.stamp(documents), **kwargs)


class SentencekitReranker(BaseDocumentCompressor):
    """LangChain document compressor that reranks retrieved documents with a sentencekit ``CrossEncoder``
    (``model.rank``) and keeps the best ``top_n``, best first, each with its score in
    ``metadata["relevance_score"]`` (a float; the model's activation applied). The documents given are not
    changed (copies are returned).

    >>> from langchain_classic.retrievers import ContextualCompressionRetriever   # doctest: +SKIP
    >>> reranker = SentencekitReranker(model=CrossEncoder("path/to/reranker"), top_n=3)
    >>> reranker.compress_documents(docs, "How do I get a refund?")[0].metadata["relevance_score"]
    0.93
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any
    top_n: int = 3
    batch_size: int = 32

    def model_post_init(self, context: Any) -> None:
        self.model = load_model(self.model, "CrossEncoder")
        if self.top_n <= 0:
            raise ValueError(f"top_n must be a positive integer, got {self.top_n!r}")

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """The ``top_n`` best ``documents`` for ``query``, best first."""
        if not documents:
            return []
        hits = self.model.rank(query, [doc.page_content for doc in documents], top_k=self.top_n,
                               batch_size=self.batch_size, show_progress_bar=False)
        picked = [(documents[hit["corpus_id"]], float(hit["score"])) for hit in hits]
        return [doc.model_copy(update={"metadata": {**doc.metadata, "relevance_score": score}})
                for doc, score in picked]

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Callbacks | None = None) -> Sequence[Document]:
        """:meth:`compress_documents` in a worker thread (the event loop keeps running)."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


__all__ = ["SentencekitEmbeddings", "SentencekitReranker", "add_stamped_documents", "FINGERPRINT_KEY"]
