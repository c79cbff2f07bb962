"""Haystack components (``pip install sentencekit[haystack]``, haystack-ai 2.x / 3.x).

:class:`SentencekitTextEmbedder` embeds a query (``encode_query``), :class:`SentencekitDocumentEmbedder`
embeds documents (``encode_document``) and :class:`SentencekitRanker` reranks documents with a
``CrossEncoder`` (``rank``); each has ``run`` and ``run_async`` (the blocking work in a worker thread).

The model-fingerprint guard: the document embedder writes its model's fingerprint into each document's
``meta["sentencekit_fingerprint"]``, the text embedder outputs its own as ``fingerprint``, and
:class:`SentencekitFingerprintCheck` (between the retriever and the ranker) refuses retrieved documents that
another model embedded. Documents embedded by other components carry no fingerprint and pass unchecked.

Serialization (``Pipeline.dumps`` / ``loads``, YAML): the components store their model's name or path and
their init arguments (``to_dict`` / ``from_dict``), as Haystack's SentenceTransformers components do. A
component given a path or Hub name loads the model lazily, in ``warm_up`` (which ``Pipeline.run`` calls; a
direct ``run`` or ``.model`` loads it too). One given a loaded model stores its ``model_name_or_path``; a model
without one (built from modules in memory) cannot be serialized (``SerializationError``). Weights changed in
memory after loading (training) are not stored: the loaded pipeline reloads the saved path. Haystack 3 loads only
trusted modules: ``Pipeline.loads(yaml, allowed_modules=["sentencekit.integrations.haystack"])``.

>>> from haystack import Document, Pipeline                                     # doctest: +SKIP
>>> from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
>>> from haystack.document_stores.in_memory import InMemoryDocumentStore
>>> from sentencekit.integrations.haystack import (SentencekitDocumentEmbedder, SentencekitFingerprintCheck,
...                                                SentencekitRanker, SentencekitTextEmbedder)
>>> store = InMemoryDocumentStore()
>>> docs = SentencekitDocumentEmbedder(model).run([Document(content="Refunds are paid within 5 days.")])
>>> store.write_documents(docs["documents"])
>>> p = Pipeline()
>>> p.add_component("embed", SentencekitTextEmbedder(model))
>>> p.add_component("retrieve", InMemoryEmbeddingRetriever(store, top_k=20))
>>> p.add_component("check", SentencekitFingerprintCheck())
>>> p.add_component("rank", SentencekitRanker(reranker, top_k=3))
>>> p.connect("embed.embedding", "retrieve.query_embedding")
>>> p.connect("embed.fingerprint", "check.fingerprint")
>>> p.connect("retrieve.documents", "check.documents")
>>> p.connect("check.documents", "rank.documents")
>>> q = "How do I get a refund?"
>>> p.run({"embed": {"text": q}, "rank": {"query": q}})["rank"]["documents"][0].content
'Refunds are paid within 5 days.'
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.errors import SerializationError

from sentencekit.fingerprint import model_fingerprint
from sentencekit.integrations.metadata_guard import FINGERPRINT_KEY, check_fingerprints
from sentencekit.integrations.model_loading import load_model


def _model_meta(model: Any, fingerprint: str) -> dict[str, Any]:
    return {"model": str(getattr(model, "model_name_or_path", None) or type(model).__name__),
            "fingerprint": fingerprint}


class _LazyModel:
    """The model of a component: given loaded, or as a path / Hub name loaded on :meth:`warm_up` (or first
    use); :meth:`to_dict` / :meth:`from_dict` store its name or path with :meth:`_init_parameters`."""

    _family = "SentenceTransformer"

    def _set_model(self, model: Any) -> None:
        self._source = model
        self._model = None if isinstance(model, (str, os.PathLike)) else model
        self._fingerprint: str | None = None

    def warm_up(self) -> None:
        """Load the model from its path or Hub name, if it is not loaded yet (``Pipeline.run`` calls this)."""
        if self._model is None:
            self._model = load_model(self._source, self._family)

    @property
    def model(self) -> Any:
        """The sentencekit model (loaded now if it was given as a path or Hub name)."""
        self.warm_up()
        return self._model

    @property
    def fingerprint(self) -> str:
        """The model's fingerprint (:func:`sentencekit.fingerprint.model_fingerprint`)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def _model_name(self) -> str:
        """The path or Hub name ``to_dict`` stores. Raises ``SerializationError`` for a loaded model without a
        ``model_name_or_path`` (built from modules in memory), which no saved pipeline could reload."""
        if isinstance(self._source, (str, os.PathLike)):
            return os.fspath(self._source)
        name = getattr(self._source, "model_name_or_path", None)
        if not name:
            raise SerializationError(
                f"Cannot serialize {type(self).__name__}: its {type(self._source).__name__} has no "
                "model_name_or_path to reload it from (it was built in memory). Save the model "
                "(model.save(folder)) and pass the folder's path, or the Hub name, to the component instead.")
        return os.fspath(name)

    def _init_parameters(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Haystack's serialization: the model's path or Hub name (``model``) and the init arguments. Raises
        ``SerializationError`` for a loaded model without a ``model_name_or_path``."""
        return default_to_dict(self, model=self._model_name(), **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The component :meth:`to_dict` described (its model loads on ``warm_up``). Raises Haystack's
        ``DeserializationError`` for data of another component type."""
        return default_from_dict(cls, data)


def _texts_to_embed(documents: list[Document], meta_fields: list[str], separator: str, who: str) -> list[str]:
    """Each document's content, after the values of its ``meta_fields`` (Haystack's embedders' convention)."""
    if not isinstance(documents, list) or any(not isinstance(d, Document) for d in documents):
        hint = "; to embed a string, use SentencekitTextEmbedder" if who == "SentencekitDocumentEmbedder" else ""
        raise TypeError(f"{who} expects a list of Documents, got {type(documents).__name__}{hint}.")
    return [separator.join([*(str(d.meta[k]) for k in meta_fields if d.meta.get(k) is not None), d.content or ""])
            for d in documents]


@component
class SentencekitTextEmbedder(_LazyModel):
    """Embeds one query string with ``model.encode_query`` (the model's query prompt; ``prefix`` / ``suffix``
    added around the text). Outputs ``embedding`` (``dim`` floats), ``meta`` (model name, fingerprint) and
    ``fingerprint`` (to connect to :class:`SentencekitFingerprintCheck`). Raises ``TypeError`` for a
    non-string input.

    >>> SentencekitTextEmbedder(model).run("How do I get a refund?")["embedding"][:2]   # doctest: +SKIP
    [0.0123, -0.0456]
    """

    def __init__(self, model: Any, *, prefix: str = "", suffix: str = "", batch_size: int = 32,
                 normalize_embeddings: bool = False) -> None:
        self._set_model(model)
        self.prefix, self.suffix = prefix, suffix
        self.batch_size, self.normalize_embeddings = batch_size, normalize_embeddings

    def _init_parameters(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "suffix": self.suffix, "batch_size": self.batch_size,
                "normalize_embeddings": self.normalize_embeddings}

    @component.output_types(embedding=list[float], meta=dict[str, Any], fingerprint=str)
    def run(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError("SentencekitTextEmbedder expects a string; to embed a list of Documents, use "
                            "SentencekitDocumentEmbedder.")
        embedding = self.model.encode_query([self.prefix + text + self.suffix], batch_size=self.batch_size,
                                            normalize_embeddings=self.normalize_embeddings,
                                            show_progress_bar=False, convert_to_numpy=True)[0]
        return {"embedding": embedding.tolist(), "meta": _model_meta(self.model, self.fingerprint),
                "fingerprint": self.fingerprint}

    @component.output_types(embedding=list[float], meta=dict[str, Any], fingerprint=str)
    async def run_async(self, text: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.run, text)


@component
class SentencekitDocumentEmbedder(_LazyModel):
    """Embeds documents with ``model.encode_document`` (the model's document prompt; the values of
    ``meta_fields_to_embed`` joined before the content with ``embedding_separator``). Outputs ``documents``:
    copies with ``embedding`` set and ``meta["sentencekit_fingerprint"]`` recording the model, and ``meta``
    (model name, fingerprint). Raises ``TypeError`` for anything but a list of Documents.

    >>> SentencekitDocumentEmbedder(model).run([Document(content="hi")])["documents"][0].embedding[:2]  # doctest: +SKIP
    [0.0123, -0.0456]
    """

    def __init__(self, model: Any, *, batch_size: int = 32, normalize_embeddings: bool = False,
                 meta_fields_to_embed: list[str] | None = None, embedding_separator: str = "\n") -> None:
        self._set_model(model)
        self.batch_size, self.normalize_embeddings = batch_size, normalize_embeddings
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def _init_parameters(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "normalize_embeddings": self.normalize_embeddings,
                "meta_fields_to_embed": self.meta_fields_to_embed, "embedding_separator": self.embedding_separator}

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        texts = _texts_to_embed(documents, self.meta_fields_to_embed, self.embedding_separator,
                                type(self).__name__)
        embeddings = self.model.encode_document(texts, batch_size=self.batch_size,
                                                normalize_embeddings=self.normalize_embeddings,
                                                show_progress_bar=False, convert_to_numpy=True) if texts else []
        out = [replace(doc, embedding=emb.tolist(), meta={**doc.meta, FINGERPRINT_KEY: self.fingerprint})
               for doc, emb in zip(documents, embeddings)]
        return {"documents": out, "meta": _model_meta(self.model, self.fingerprint)}

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        return await asyncio.to_thread(self.run, documents)


@component
class SentencekitFingerprintCheck:
    """Passes ``documents`` through, or raises ``ValueError`` when one's ``meta["sentencekit_fingerprint"]``
    names another model than ``fingerprint`` (connect it from ``SentencekitTextEmbedder.fingerprint``)."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document], fingerprint: str) -> dict[str, Any]:
        check_fingerprints(((d.id, d.meta) for d in documents), fingerprint, where="SentencekitFingerprintCheck")
        return {"documents": documents}


@component
class SentencekitRanker(_LazyModel):
    """Reranks documents for a query with a sentencekit ``CrossEncoder`` (``rank``): outputs the best
    ``top_k`` ``documents``, best first, as copies whose ``score`` is the cross-encoder's (a float);
    ``score_threshold`` drops lower scores. ``meta_fields_to_embed`` values are joined before the content as
    for the document embedder. Raises ``ValueError`` for ``top_k <= 0``.

    >>> SentencekitRanker(reranker, top_k=1).run("How do I get a refund?", docs)["documents"]   # doctest: +SKIP
    [Document(content='Refunds are paid within 5 days.', score=0.93, ...)]
    """

    _family = "CrossEncoder"

    def __init__(self, model: Any, *, top_k: int = 10, batch_size: int = 32, score_threshold: float | None = None,
                 meta_fields_to_embed: list[str] | None = None, embedding_separator: str = "\n") -> None:
        if top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        self._set_model(model)
        self.top_k, self.batch_size, self.score_threshold = top_k, batch_size, score_threshold
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def _init_parameters(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "batch_size": self.batch_size, "score_threshold": self.score_threshold,
                "meta_fields_to_embed": self.meta_fields_to_embed, "embedding_separator": self.embedding_separator}

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None,
            score_threshold: float | None = None) -> dict[str, Any]:
        top_k = self.top_k if top_k is None else top_k
        if top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        threshold = self.score_threshold if score_threshold is None else score_threshold
        if not documents:
            return {"documents": []}
        texts = _texts_to_embed(documents, self.meta_fields_to_embed, self.embedding_separator,
                                type(self).__name__)
        hits = self.model.rank(query, texts, top_k=top_k, batch_size=self.batch_size, show_progress_bar=False)
        ranked = [replace(documents[h["corpus_id"]], score=float(h["score"])) for h in hits]
        return {"documents": [d for d in ranked if threshold is None or d.score >= threshold]}

    @component.output_types(documents=list[Document])
    async def run_async(self, query: str, documents: list[Document], top_k: int | None = None,
                        score_threshold: float | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.run, query, documents, top_k, score_threshold)


__all__ = ["SentencekitTextEmbedder", "SentencekitDocumentEmbedder", "SentencekitRanker",
           "SentencekitFingerprintCheck", "FINGERPRINT_KEY"]
