"""A stored, searchable corpus: :class:`EmbeddingIndex`.

Documents are embedded once, when added, and kept on disk with their vectors; searches only embed the
query. The index records the model (fingerprint) and every encode setting, and re-applies them to
queries, so stored and query vectors always come from the same model, prompt family, dimension and
normalization. See :mod:`sentencekit.search.storage` for the folder layout and crash safety.

>>> from sentencekit import SentenceTransformer                                    # doctest: +SKIP
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")            # doctest: +SKIP
>>> index = EmbeddingIndex.create("faq-index", model)                                # doctest: +SKIP
>>> index.add(["Refunds take 5 days.", "We ship worldwide."], ids=["refund", "shipping"])  # doctest: +SKIP
['refund', 'shipping']
>>> index.search("how long until I get my money back?", top_k=1)[0]["id"]           # doctest: +SKIP
'refund'
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentencekit.pipeline.batching import as_input_list
from sentencekit.search import ann, scoring
from sentencekit.search.documents import auto_ids, check_ids, check_metadata, check_titles, refuse_existing
from sentencekit.search.hybrid import candidate_depth, check_options, fused_results, hybrid_sides
from sentencekit.search.image_documents import (
    IMAGE,
    MANIFEST_FLAG,
    check_image_model,
    check_image_paths,
    query_list,
    refuse_text_sides,
)
from sentencekit.search.index_errors import IndexFormatError, IndexReadOnlyError
from sentencekit.search.model_check import (
    check_bi_encoder,
    check_reranker,
    embed,
    index_settings,
    mismatch_error,
    mismatches,
)
from sentencekit.search.results import best_per_doc, make_hit, rerank
from sentencekit.search.segment_sides import PART_SIDES, PartCache, encode_segment, next_entry, part_kinds
from sentencekit.search.segment_sides import mismatches as side_mismatches
from sentencekit.search.segments import (
    SegmentCache,
    Snapshot,
    add_missing_checks,
    row_texts,
    write_deletes,
    write_segment,
)
from sentencekit.search.storage import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SEGMENTS,
    manifest_path,
    new_name,
    pause_before_commit,
    read_manifest,
    remove_uncommitted,
    write_manifest,
    writer_lock,
)

PRECISIONS = ("float32", "int8", "ubinary")
BACKENDS = ("exact", "hnsw", "auto")
AUTO_HNSW_MIN_VECTORS = 100_000  # backend="auto" switches to HNSW from this many live vectors


class EmbeddingIndex:
    """A corpus of documents with their embeddings, stored in a folder and searched by similarity.

    Create one with :meth:`create`, reopen it with :meth:`open`. Documents have string ids and
    optional JSON metadata; long documents can be split into token windows (``add(..., chunk=True)``).

    Search is exact by default (a chunked matrix product over the stored vectors). ``backend="hnsw"``
    (or ``"auto"`` from 100k vectors; needs ``sentencekit[faiss]``) uses an HNSW graph cached beside
    the vectors. ``precision`` trades memory for a first stage approximation:

    * ``"float32"``: the scan reads 4 bytes per dimension (1.5 KiB per 384-dim vector).
    * ``"int8"``: the scan reads 1-byte codes (per-segment calibration): 4x less RAM for the hot data;
      on CPU the codes are decoded to float before the product, so it is not faster than float32.
    * ``"ubinary"``: the scan compares sign bits by Hamming distance: 32x less RAM, and fast.

    Quantized indexes also keep the float32 vectors on disk (memory-mapped) and rescore the best
    ``top_k * rescore_multiplier`` candidates with them, so returned scores are exact cosine/dot
    scores: disk use is float32 plus the codes, but only the codes need to stay in RAM, since a
    search reads just the candidates' float rows. ``benchmarks/search.py`` measures the trade-offs.

    >>> index = EmbeddingIndex.open("faq-index", model)             # doctest: +SKIP
    >>> len(index), index.get("refund")["text"]                      # doctest: +SKIP
    (2, 'Refunds take 5 days.')
    """

    def __init__(self, path: Path, model: Any, manifest: dict[str, Any], lock_timeout: float,
                 side_models: dict[str, Any] | None = None) -> None:
        """Use :meth:`create` or :meth:`open`. ``side_models``: the model of each per-segment side (sparse,
        multivector) the index was opened with."""
        self.path = Path(path)
        self.lock_timeout = float(lock_timeout)
        self._model = model
        self._side_models = {key: m for key, m in (side_models or {}).items() if m is not None}
        self._part_caches: dict[str, PartCache] = {}  # the loaded parts of each per-segment side
        self._cache = SegmentCache(self.path)
        self._snap = self._load(manifest)
        self._stamp: tuple[int, int, int] | None = None
        self._graph: tuple[str, Any, np.ndarray] | None = None
        self._lexical: tuple[str, Any] | None = None  # (entry name, LexicalIndex) of the loaded lexical side

    # -- creating and opening --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        model: Any,
        *,
        normalize: bool = True,
        prompt_name: str | None = None,
        query_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        precision: Literal["float32", "int8", "ubinary"] = "float32",
        backend: Literal["exact", "hnsw", "auto"] = "exact",
        lexical: bool = False,
        sparse_model: Any = None,
        multivector_model: Any = None,
        lock_timeout: float = 60.0,
    ) -> EmbeddingIndex:
        """Create an empty index in the new (or empty) folder ``path`` for ``model`` (a bi-encoder).

        ``normalize`` (default) stores unit vectors and scores by cosine. Documents are embedded with
        ``prompt_name`` (default: the model's document prompt, as ``encode_document``), queries with
        ``query_prompt_name`` (default: its query prompt, as ``encode_query``); the prompt texts,
        ``truncate_dim`` and the resulting dimension are recorded in ``manifest.json``.

        ``lexical=True`` also keeps a BM25 side (:mod:`sentencekit.search.lexical`, needs
        ``sentencekit[hybrid]``), rebuilt in every commit, for ``search(retrieval="lexical" | "hybrid")``;
        without it, the first such search builds it (:meth:`enable_lexical`).

        ``sparse_model`` (a sparse encoder, e.g. SPLADE: ``encode_document`` / ``encode_query`` -> ``[n, vocab]``
        sparse vectors; needs scipy) also keeps a learned-sparse side (:mod:`sentencekit.search.sparse_side`)
        for ``search(retrieval="sparse" | "hybrid")``: every added document is encoded by both models, and
        the sparse model's fingerprint is recorded like the dense model's.

        ``multivector_model`` (a late-interaction encoder, e.g. ColBERT: ``encode_document`` / ``encode_query(texts,
        convert_to_numpy=True)`` -> one ``[n_tokens, dim]`` array per text) also keeps a late-interaction side
        (:mod:`sentencekit.search.late_interaction_side`: float16 token vectors and k-means centroids per
        segment) for ``search(retrieval="multivector" | "hybrid")``, recorded and checked the same way.

        >>> index = EmbeddingIndex.create("docs-index", model, precision="ubinary")  # doctest: +SKIP
        >>> index = EmbeddingIndex.create("hybrid-index", model, sparse_model=splade)  # doctest: +SKIP
        >>> index = EmbeddingIndex.create("colbert-index", model, multivector_model=colbert)  # doctest: +SKIP
        """
        check_bi_encoder(model)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "hnsw":
            ann.import_faiss()
        if lexical:
            from sentencekit.search.lexical import import_bm25s

            import_bm25s()
        root = Path(path)
        if manifest_path(root).exists():
            raise FileExistsError(f"An embedding index already exists at {root}: open it with "
                                  "EmbeddingIndex.open(path, model), or choose another folder.")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f"{root} exists and is not an empty folder; choose a new folder for the index.")
        settings = index_settings(model, normalize=normalize, prompt_name=prompt_name,
                                  query_prompt_name=query_prompt_name, truncate_dim=truncate_dim)
        from sentencekit import __version__

        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "created_with": f"sentencekit {__version__}", **settings,
                    "precision": precision, "backend": backend, "generation": 0, "next_id": 0,
                    "counts": Snapshot({}).counts(), "log": []}
        if lexical:
            from sentencekit.search.lexical import write_lexical

            manifest["lexical"] = write_lexical(root, new_name("lex", 0), Snapshot({"log": []}))
        side_models = {"sparse": sparse_model, "multivector": multivector_model}
        for key, side_model in side_models.items():
            if side_model is not None:
                kind = part_kinds()[key]
                kind.require()
                kind.check_model(side_model)
                manifest[key] = kind.new_entry(side_model)
        (root / SEGMENTS).mkdir(parents=True, exist_ok=True)
        with writer_lock(root, lock_timeout):
            if manifest_path(root).exists():
                raise FileExistsError(f"Another process created an embedding index at {root} meanwhile.")
            write_manifest(root, manifest)
        return cls(root, model, read_manifest(root), lock_timeout, side_models)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        model: Any = None,
        *,
        normalize: bool | None = None,
        truncate_dim: int | None = None,
        sparse_model: Any = None,
        multivector_model: Any = None,
        lock_timeout: float = 60.0,
    ) -> EmbeddingIndex:
        """Open an existing index. ``model`` must be the model it was built with (same fingerprint and
        output dimension); ``normalize``/``truncate_dim``, if given, must match the recorded ones, and so
        must ``sparse_model`` / ``multivector_model`` (their fingerprints) on an index that keeps that side.
        Anything else raises :class:`~sentencekit.search.index_errors.IndexMismatchError` listing recorded vs
        given values. ``model=None`` opens it for inspection only (``len``, ``get``, ``manifest``). An index
        with a sparse (multi-vector) side opened without ``sparse_model`` (``multivector_model``) searches,
        deletes and compacts, but cannot add documents (they would have no vectors on that side) or search
        that side.

        >>> index = EmbeddingIndex.open("docs-index", model)  # doctest: +SKIP
        >>> EmbeddingIndex.open("docs-index").manifest["dimension"]  # doctest: +SKIP
        384
        """
        root = Path(path)
        manifest = read_manifest(root)
        if model is not None:
            check_bi_encoder(model)
        problems = mismatches(manifest, model, normalize=normalize, truncate_dim=truncate_dim)
        side_models = {"sparse": sparse_model, "multivector": multivector_model}
        for key, side_model in side_models.items():
            if side_model is not None:
                part_kinds()[key].check_model(side_model)
                problems += side_mismatches(part_kinds()[key], manifest, side_model)
        if problems:
            raise mismatch_error(f"the embedding index at {root}", problems, manifest)
        return cls(root, model, manifest, lock_timeout, side_models)

    # -- damage ----------------------------------------------------------------------------------
    @classmethod
    def verify(cls, path: str | os.PathLike) -> dict[str, Any]:
        """Check every file of the index at ``path`` against the sizes and SHA-256 checksums in its
        manifest; finds damage that opening (a size check) cannot, like flipped bytes. Returns
        ``{"ok", "problems": [{"entry", "kind", "file", "problem"}], "unchecked"}``. A class method, so
        that it works on an index too damaged to open. See :mod:`sentencekit.search.integrity`.

        >>> EmbeddingIndex.verify("docs-index")["ok"]  # doctest: +SKIP
        True
        """
        from sentencekit.search.integrity import verify

        return verify(path)

    @classmethod
    def repair(cls, path: str | os.PathLike, model: Any = None, *, sparse_model: Any = None,
               multivector_model: Any = None, lock_timeout: float = 60.0) -> dict[str, Any]:
        """Make a damaged index at ``path`` usable again: damaged entries are dropped from the manifest
        (their files moved to ``damaged/``); with ``model``, segments whose stored texts survive are
        re-embedded instead (and damaged parts of the sparse / multi-vector side re-encoded with
        ``sparse_model`` / ``multivector_model``, else that side is dropped when any of its files is
        damaged). The report lists ``lost_ids`` (documents to add again), ``lost_unknown`` (documents whose
        ids were unreadable too) and ``reembedded`` ids. A damaged
        ``manifest.json`` cannot be repaired. See :mod:`sentencekit.search.integrity`.

        >>> EmbeddingIndex.repair("docs-index", model)["lost_ids"]  # doctest: +SKIP
        []
        """
        from sentencekit.search.integrity import repair

        return repair(path, model, sparse_model=sparse_model, multivector_model=multivector_model,
                      lock_timeout=lock_timeout)

    # -- inspection ------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model the index was opened with (``None``: read-only).

        >>> EmbeddingIndex.open("docs-index").model is None  # doctest: +SKIP
        True
        """
        return self._model

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the committed manifest (settings, counts, log).

        >>> index.manifest["precision"]  # doctest: +SKIP
        'float32'
        """
        return json.loads(json.dumps(self._refresh().manifest))

    def __len__(self) -> int:
        """Number of (live) documents.

        >>> len(index), "refund" in index  # doctest: +SKIP
        (2, True)
        """
        return len(self._refresh().live)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._refresh().live

    def ids(self) -> list[str]:
        """Ids of the live documents, in the order they were added.

        >>> index.ids()  # doctest: +SKIP
        ['refund', 'shipping']
        """
        return list(self._refresh().live)

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """The stored document ``{"id", "text", "metadata"}`` (plus ``"title"`` when it has one and
        ``"chunks"``: ``[start, end]`` spans when it was chunked), or ``None`` if there is no such id.

        >>> index.get("refund")["metadata"]  # doctest: +SKIP
        {'lang': 'en'}
        """
        snap = self._refresh()
        number = snap.live.get(doc_id)
        if number is None:
            return None
        return _public_doc(snap.docs[number])

    def iter_vectors(self, batch_size: int = 4096) -> Iterator[tuple[list[dict[str, Any]], np.ndarray, np.ndarray]]:
        """The stored vectors of the live documents, in the order they were added, from one committed state:
        batches of ``(docs, parts, vectors)`` with one entry per vector: ``docs[i]`` the stored document it
        belongs to (as :meth:`get` returns it; the same dict for a document's every vector), ``parts[i]`` its
        number within the document (int64; a titled document's title vector is 0, then its text's or its
        chunks'), ``vectors`` float32 ``[n, dimension]`` exactly as stored (normalized when the index is).
        A document's vectors never straddle two batches. For exporting an index (e.g.
        :mod:`sentencekit.integrations.vectordb`).

        >>> docs, parts, vectors = next(index.iter_vectors())  # doctest: +SKIP
        >>> docs[0]["id"], parts[0], vectors.shape  # doctest: +SKIP
        ('refund', 0, (2, 384))
        """
        snap = self._refresh()
        numbers = list(snap.live.values())
        for start in range(0, len(numbers), max(1, int(batch_size))):
            docs, parts, rows = [], [], []
            for number in numbers[start:start + max(1, int(batch_size))]:
                first, end = int(snap.doc_first_row[number]), int(snap.doc_first_row[number + 1])
                doc = _public_doc(snap.docs[number])
                docs.extend([doc] * (end - first))
                parts.extend(range(end - first))
                rows.extend(range(first, end))
            yield docs, np.asarray(parts, np.int64), scoring.gather(snap.blocks, snap.offsets,
                                                                     np.asarray(rows, np.int64))

    def __repr__(self) -> str:
        m = self._snap.manifest
        return (f"EmbeddingIndex({str(self.path)!r}, documents={len(self._snap.live)}, dimension={m['dimension']}, "
                f"precision={m['precision']!r}, backend={m['backend']!r})")

    # -- writing ---------------------------------------------------------------------------------
    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        batch_size: int = 32,
        *,
        chunk: bool = False,
        chunk_size: int | None = None,
        chunk_overlap: int = 32,
        show_progress_bar: bool = False,
        titles: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Embed and store documents; returns their ids (default: running integers as strings).

        ``ids`` must be unique strings not already in the index. ``metadata`` is one JSON-serializable
        dict (or ``None``) per text. With ``chunk=True`` each text is split into windows of
        ``chunk_size`` tokens (default: what the model reads, minus special and prompt tokens)
        overlapping by ``chunk_overlap`` tokens; each window gets a vector, and search returns the
        document once, with its best window. ``titles`` (one string or ``None`` per text): a document with
        a title gets one more vector, its title's, and scores by the better of its title and its text
        ("best field", as multi-field search engines score; a title is a short summary a question often
        paraphrases, and a long text's embedding dilutes it); hits then carry ``"title"`` and ``"field"``,
        BM25 reads the title with the text and rerankers read it on the first line. The batch is committed
        atomically: after a crash either all of it or none of it is in the index.

        >>> index.add(["A long manual ..."], ids=["manual"], metadata=[{"v": 2}], chunk=True)  # doctest: +SKIP
        ['manual']
        >>> index.add(["Paid within 5 days."], titles=["How long until I get my money back?"])  # doctest: +SKIP
        ['0']
        """
        model = self._require_model("add documents")
        texts, _ = as_input_list(texts, what="texts")
        given_ids = check_ids(ids, len(texts))
        meta = check_metadata(metadata, len(texts))
        if not texts:
            return []
        settings = self._refresh().manifest
        if given_ids is not None:
            refuse_existing(given_ids, self._snap)
        docs = [{"id": None, "text": t, "metadata": m, "chunks": None} for t, m in zip(texts, meta)]
        for doc, title in zip(docs, check_titles(titles, len(texts))):
            if title:
                doc["title"] = title
        if chunk:
            from sentencekit.search.chunking import chunk_texts, default_chunk_size

            size = chunk_size or default_chunk_size(model, settings["document_prompt"])
            spans = chunk_texts(texts, model.tokenizer, size, chunk_overlap)
            for doc, doc_chunks in zip(docs, spans):
                doc["chunks"] = [[c.start, c.end] for c in doc_chunks]
        pieces = row_texts(docs)
        vectors = embed(model, settings, pieces, query=False, batch_size=batch_size,
                        show_progress_bar=show_progress_bar)
        encoded = {key: self._encode_side(key, settings, pieces, query=False, action="add documents")
                   for key in PART_SIDES}
        final_ids: list[str] = []
        written: list[str] = []  # the new segment's name: the sides' encoded rows are its rows

        def write(manifest: dict[str, Any], snap: Snapshot) -> tuple[list[dict], dict]:
            entry, updates = self._write_new_segment(manifest, snap, docs, vectors, given_ids, final_ids)
            written[:] = [entry["name"]]
            return manifest["log"] + [entry], updates

        self._commit(write, side_rows={key: lambda segment, rows=rows: rows if segment["name"] in written else None
                                       for key, rows in encoded.items()})
        return list(final_ids)

    def add_images(
        self,
        images: str | os.PathLike | Sequence[str | os.PathLike],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        batch_size: int = 32,
        *,
        show_progress_bar: bool = False,
    ) -> list[str]:
        """Embed and store image files as documents; returns their ids (default: running integers as strings).

        ``images``: paths of existing image files (.jpg .jpeg .png .gif .bmp .tiff .webp). Each becomes one
        document whose ``"text"`` is the file's absolute path, with ``"modality": "image"`` (in :meth:`get` and
        in search hits), and whose one vector is the model's embedding of the image, so :meth:`search` finds it
        by a text query or an image query. ``ids`` / ``metadata``: as :meth:`add`. Committed atomically, as
        :meth:`add`. Raises ``TypeError`` when the model encodes no images (``model.supports("image")``),
        ``FileNotFoundError`` / ``ValueError`` for a path that is no image file, and ``ValueError`` on an index
        keeping a lexical, sparse or multi-vector side (they read texts).

        >>> index = EmbeddingIndex.create("photos-index", clip)  # doctest: +SKIP
        >>> index.add_images(["red-dress.jpg", "boots.png"], ids=["dress", "boots"])  # doctest: +SKIP
        ['dress', 'boots']
        >>> index.search("a red dress", top_k=1)[0]["text"]  # doctest: +SKIP
        '/photos/red-dress.jpg'
        """
        model = self._require_model("add images")
        check_image_model(model)
        paths = check_image_paths(images)
        given_ids = check_ids(ids, len(paths))
        meta = check_metadata(metadata, len(paths))
        if not paths:
            return []
        settings = self._refresh().manifest
        refuse_text_sides({key: value for key, value in settings.items() if key != MANIFEST_FLAG}, self.path,
                          "add images")
        if given_ids is not None:
            refuse_existing(given_ids, self._snap)
        docs = [{"id": None, "text": p, "metadata": m, "chunks": None, "modality": IMAGE} for p, m in zip(paths, meta)]
        vectors = embed(model, settings, [{IMAGE: p} for p in paths], query=False, batch_size=batch_size,
                        show_progress_bar=show_progress_bar)
        final_ids: list[str] = []

        def write(manifest: dict[str, Any], snap: Snapshot) -> tuple[list[dict], dict]:
            # a side enabled by another process meanwhile
            refuse_text_sides({key: value for key, value in manifest.items() if key != MANIFEST_FLAG}, self.path,
                              "add images")
            entry, updates = self._write_new_segment(manifest, snap, docs, vectors, given_ids, final_ids)
            return manifest["log"] + [entry], {MANIFEST_FLAG: True, **updates}

        self._commit(write)
        return list(final_ids)

    def delete(self, ids: str | Sequence[str], *, missing_ok: bool = False) -> int:
        """Remove documents by id; returns how many were removed. Unknown ids raise ``KeyError``
        unless ``missing_ok``. The vectors stay on disk until :meth:`compact`.

        >>> index.delete(["shipping"])  # doctest: +SKIP
        1
        """
        self._require_model("delete documents")
        wanted = [ids] if isinstance(ids, str) else list(ids)
        missing = [i for i in wanted if i not in self._refresh().live]
        if missing and not missing_ok:
            raise KeyError(f"No document with id(s) {missing[:10]} in the index at {self.path}.")
        removed = 0

        def write(manifest: dict[str, Any], snap: Snapshot) -> tuple[list[dict], dict]:
            nonlocal removed
            present = list(dict.fromkeys(i for i in wanted if i in snap.live))
            removed = len(present)
            if not present:
                return manifest["log"], {}
            entry = write_deletes(self.path, new_name("del", manifest["generation"] + 1), present)
            return manifest["log"] + [entry], {}

        self._commit(write)
        return removed

    def compact(self) -> None:
        """Rewrite the live documents into one segment, dropping deleted vectors and merging small
        segments (readers keep working during it).

        >>> index.compact()  # doctest: +SKIP
        """
        self._require_model("compact the index")
        carried: list[Any] = []  # (old manifest, live rows): the new segment's side rows are these rows' ones

        def write(manifest: dict[str, Any], snap: Snapshot) -> tuple[list[dict], dict]:
            numbers = list(snap.live.values())
            if not numbers:
                return [], {}
            rows = np.concatenate([np.arange(snap.doc_first_row[g], snap.doc_first_row[g + 1]) for g in numbers])
            carried[:] = [manifest, rows]
            vectors = scoring.gather(snap.blocks, snap.offsets, rows)
            docs = [snap.docs[g] for g in numbers]
            entry = write_segment(self.path, new_name("seg", manifest["generation"] + 1), vectors, docs,
                                  manifest["precision"])
            return [entry], {}

        self._commit(write, side_rows={key: lambda segment, key=key: self._part_cache(key).side(carried[0]).rows(
            carried[1]) for key in PART_SIDES})

    def enable_lexical(self) -> None:
        """Keep a lexical (BM25) side from now on: built from the stored texts of the live documents and
        committed like the vectors, then rebuilt by every ``add``/``delete``/``compact``. Needs
        ``sentencekit[hybrid]``. ``search(retrieval="lexical" | "hybrid")`` calls it on an index that has
        none (e.g. one built before sentencekit kept lexical sides); does nothing if it has one.

        >>> index.enable_lexical(); "lexical" in index.manifest  # doctest: +SKIP
        True
        """
        self._require_model("build the lexical side")
        if self._refresh().manifest.get(MANIFEST_FLAG):
            refuse_text_sides(self._snap.manifest, self.path, "build the lexical side")
        from sentencekit.search.lexical import import_bm25s

        import_bm25s()
        self._commit(lambda manifest, snap: (manifest["log"], {} if manifest.get("lexical") else {"lexical": None}))

    def enable_sparse(self, sparse_model: Any = None) -> None:
        """Keep a learned-sparse side from now on, for ``sparse_model`` (default: the one the index was opened
        with): every stored document (each chunk) is encoded with it and committed, then every ``add`` encodes
        its documents too. Encoding happens before the writer lock is taken (documents added meanwhile are
        encoded under it). On an index that has a sparse side, only checks that ``sparse_model`` is its model.

        >>> index.enable_sparse(splade); index.manifest["sparse"]["vocab"]  # doctest: +SKIP
        30522
        """
        self._enable_side("sparse", sparse_model)

    def enable_multivector(self, multivector_model: Any = None) -> None:
        """Keep a late-interaction side from now on, for ``multivector_model`` (a ColBERT-style encoder;
        default: the one the index was opened with), as :meth:`enable_sparse` does for a sparse model: every
        stored document (each chunk, each title) is encoded into token vectors and committed (with the
        k-means centroids of each segment's tokens), then every ``add`` encodes its documents too. On an
        index that has one, only checks that ``multivector_model`` is its model (``IndexMismatchError``).

        >>> index.enable_multivector(colbert); index.manifest["multivector"]["dim"]  # doctest: +SKIP
        128
        """
        self._enable_side("multivector", multivector_model)

    def _enable_side(self, key: str, side_model: Any) -> None:
        kind = part_kinds()[key]
        action = f"build the {kind.label} side"
        self._require_model(action)
        if self._refresh().manifest.get(MANIFEST_FLAG):
            refuse_text_sides(self._snap.manifest, self.path, action)
        side_model = side_model if side_model is not None else self._require_side_model(key, action)
        kind.check_model(side_model)
        snap = self._refresh()
        if isinstance(snap.manifest.get(key), dict):
            if side_mismatches(kind, snap.manifest, side_model):
                problems = side_mismatches(kind, snap.manifest, side_model)
                raise mismatch_error(f"the embedding index at {self.path}", problems)
            self._side_models[key] = side_model
            return
        kind.require()
        entry = kind.new_entry(side_model)
        encoded = {seg["name"]: encode_segment(kind, self.path, side_model, entry, seg)
                   for seg in snap.manifest["log"] if seg["kind"] == "segment"}
        self._side_models[key] = side_model

        def write(manifest: dict[str, Any], snap: Snapshot) -> tuple[list[dict], dict]:
            if not isinstance(manifest.get(key), dict):
                return manifest["log"], {key: entry}
            if side_mismatches(kind, manifest, side_model):  # another process enabled it meanwhile
                raise mismatch_error(f"the embedding index at {self.path}", side_mismatches(kind, manifest, side_model))
            return manifest["log"], {}

        self._commit(write, side_rows={key: lambda seg: encoded.get(seg["name"])})

    # -- searching -------------------------------------------------------------------------------
    def search(
        self,
        query: str | Sequence[str],
        top_k: int = 10,
        reranker: Any = None,
        rerank_top_n: int = 50,
        *,
        batch_size: int = 32,
        rescore_multiplier: int = 4,
        ef_search: int | None = None,
        retrieval: Literal["dense", "lexical", "sparse", "multivector", "hybrid"] = "dense",
        fusion: Literal["rrf", "weighted"] = "rrf",
        fusion_weights: Sequence[float] | dict[str, float] | None = None,
        rrf_k: float = 60,
        candidates: int | None = None,
        nprobe: int | None = None,
        ndocs: int | None = None,
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """The ``top_k`` most similar documents: for one query string a list of hits, for a list of
        queries one list per query. A hit is ``{"id", "score", "text", "metadata"}``, plus ``"chunk":
        {"index", "start", "end", "text"}`` (the best window) for chunked documents; a document appears
        at most once per list.

        The query is embedded with the recorded settings (query prompt, dimension, normalization).
        With ``reranker`` (a cross-encoder: ``predict(list of (query, text) pairs) -> scores``), the
        ``rerank_top_n`` best documents by embedding are re-scored by it and the best ``top_k`` kept;
        ``"score"`` is then the reranker's and ``"retrieval_score"`` the embedding score.
        For chunked documents the reranker reads the best chunk's text. ``rescore_multiplier`` sets how
        many candidates quantized searches rescore, ``ef_search`` the HNSW search breadth.

        ``retrieval`` picks the first stage: ``"dense"`` (embeddings, the default), ``"lexical"`` (BM25 over
        the stored texts, :mod:`sentencekit.search.lexical`; needs ``sentencekit[hybrid]``), ``"sparse"``
        (exact dot product of learned-sparse vectors, :mod:`sentencekit.search.sparse_side`; the index must
        keep a sparse side and be opened with its ``sparse_model``), ``"multivector"`` (MaxSim over token
        vectors, :mod:`sentencekit.search.late_interaction_side`; the index must keep a multi-vector side and
        be opened with its ``multivector_model``) or ``"hybrid"``: dense, plus the sparse and multi-vector
        sides the index keeps, plus the lexical side if it keeps one or has neither (a dict
        ``fusion_weights`` picks the sides instead). Each side retrieves ``candidates`` documents (default
        ``max(top_k, 100)``, or ``max(rerank_top_n, 100)`` with a reranker) and ``fusion`` merges them:
        ``"rrf"``, reciprocal rank fusion with constant ``rrf_k``
        (:func:`~sentencekit.search.fusion.reciprocal_rank_fusion`), or ``"weighted"``, a convex combination
        of min-max normalised scores (:func:`~sentencekit.search.fusion.weighted_score_fusion`).
        ``fusion_weights``: one weight per fused side in the order dense, sparse, multivector, lexical (e.g.
        ``(dense, lexical)``), or ``{side: weight}``; default equal weights. The reranker, if any, re-scores
        the fused list. Lexical, sparse, multivector and hybrid hits carry ``"score"`` (BM25, dot product,
        MaxSim, or the fused score) and ``"found_by"``: ``{side: {"rank", "score"}}`` for each side that
        retrieved the document.
        ``nprobe`` and ``ndocs`` steer the multi-vector side: segments of at least
        :data:`~sentencekit.search.late_interaction_side.AUTO_CENTROID_MIN_ROWS` rows are searched through
        candidates (each query token probes its ``nprobe`` nearest token centroids; the ``ndocs`` best
        candidates by centroid interaction are re-scored by exact MaxSim), smaller ones exactly; a given
        ``nprobe`` uses candidates in every segment, ``nprobe=0`` exact MaxSim in every one. Defaults grow
        with the depth asked (:func:`~sentencekit.search.late_interaction_side.default_nprobe`, ``default_ndocs``).
        A chunked document found by BM25 alone reports the chunk holding most query terms. An
        index without a lexical side gets one built and committed on its first lexical or hybrid search.

        >>> index.search("refund time", top_k=1)[0]["id"]                    # doctest: +SKIP
        'refund'
        >>> index.search(["refund?", "ship?"], reranker=cross_encoder, top_k=1)  # doctest: +SKIP
        [[{'id': 'refund', 'score': 0.97, 'retrieval_score': 0.61, ...}], [...]]
        >>> index.search("refund time", retrieval="hybrid", fusion="rrf")[0]["found_by"]  # doctest: +SKIP
        {'dense': {'rank': 1, 'score': 0.61}, 'lexical': {'rank': 1, 'score': 2.3}}
        """
        model = self._require_model("search")
        if reranker is not None:
            check_reranker(reranker)
        if not isinstance(top_k, int) or top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        if not isinstance(rerank_top_n, int) or rerank_top_n <= 0:
            raise ValueError(f"rerank_top_n must be a positive integer (at least top_k documents are re-scored), "
                             f"got {rerank_top_n!r}")
        weights = check_options(retrieval, fusion, fusion_weights, rrf_k, candidates)
        queries, single = query_list(query, model)
        snap = self._refresh()
        if retrieval != "dense" and snap.manifest.get(MANIFEST_FLAG):
            refuse_text_sides(snap.manifest, self.path, f"search with retrieval={retrieval!r}")
        if (reranker is not None or retrieval != "dense") and not all(isinstance(q, str) for q in queries):
            raise ValueError("Image queries are searched by their embedding alone: use retrieval='dense' (the "
                             "default) and no reranker (a cross-encoder reads text pairs).")
        if reranker is not None and snap.manifest.get(MANIFEST_FLAG):  # it would score the images' file paths
            raise ValueError(f"Cannot rerank results of the index at {self.path}: it stores image documents, and a "
                             "reranker reads texts (an image's file path is no text to score). Search it without "
                             "a reranker.")
        first_k = max(top_k, int(rerank_top_n)) if reranker is not None else top_k
        if retrieval == "dense":
            vectors = embed(model, snap.manifest, queries, query=True, batch_size=batch_size)
            found = self._retrieve(snap, vectors, first_k, rescore_multiplier, ef_search)
            results = [[make_hit(snap, *h) for h in hits] for hits in found]
        else:
            sides = hybrid_sides(retrieval, weights, has_sparse=isinstance(snap.manifest.get("sparse"), dict),
                                 has_lexical=isinstance(snap.manifest.get("lexical"), dict),
                                 has_multivector=isinstance(snap.manifest.get("multivector"), dict))
            lexical = None
            if "lexical" in sides:
                lexical, snap = self._lexical_side(snap)
            # last: their rows must be numbered as the snapshot the hits are made from
            learned, snap = self._part_sides([key for key in PART_SIDES if key in sides], snap)
            depth = first_k if retrieval != "hybrid" else candidate_depth(first_k, candidates)
            found: dict[str, list[list[tuple[int, int | None, float]]]] = {}
            for side in sides:
                if side == "dense":
                    vectors = embed(model, snap.manifest, queries, query=True, batch_size=batch_size)
                    found[side] = self._retrieve(snap, vectors, depth, rescore_multiplier, ef_search)
                elif side in learned:
                    encoded = self._encode_side(side, snap.manifest, queries, query=True,
                                                action=f"search the {part_kinds()[side].label} side")
                    options = {"nprobe": nprobe, "ndocs": ndocs} if side == "multivector" else {}
                    found[side] = learned[side].top(encoded, depth, snap, **options)
                else:
                    found[side] = [[(snap.live[i], None, score) for i, score in hits if i in snap.live]
                                   for hits in lexical.top(queries, depth)]
            results = fused_results(snap, queries, found, fusion, sides, rrf_k, first_k)
        if reranker is not None:
            results = rerank(reranker, queries, results, top_k)
        return results[0] if single else results

    def _lexical_side(self, snap: Snapshot) -> tuple[Any, Snapshot]:
        """The loaded lexical side of ``snap`` (built and committed first if the index has none), and the
        snapshot it belongs to: a newer one if a concurrent writer replaced its files meanwhile."""
        from sentencekit.search.lexical import load_lexical

        if not isinstance(snap.manifest.get("lexical"), dict):
            self.enable_lexical()
            snap = self._refresh()
        for attempt in range(10):
            entry = snap.manifest["lexical"]
            if self._lexical is None or self._lexical[0] != entry["name"]:
                try:
                    self._lexical = (entry["name"], load_lexical(self.path, entry))
                except FileNotFoundError as exc:  # a writer committed meanwhile and removed these files
                    if attempt == 9:
                        raise self._missing_file(exc) from exc
                    time.sleep(0.05)
                    snap = self._refresh()
                    continue
            return self._lexical[1], snap
        raise AssertionError("unreachable")

    def _part_sides(self, keys: list[str], snap: Snapshot) -> tuple[dict[str, Any], Snapshot]:
        """The loaded per-segment sides ``keys`` of ``snap`` (parts of new segments are loaded, the others
        kept), and the snapshot they belong to: a newer one if a concurrent writer removed their files."""
        for key in keys:
            if not isinstance(snap.manifest.get(key), dict):
                kind = part_kinds()[key]
                raise ValueError(f"The index at {self.path} keeps no {kind.label} side, so retrieval={key!r} has "
                                 f"nothing to search. Create the index with EmbeddingIndex.create(path, model, "
                                 f"{kind.model_arg}=...), or add one with index.{kind.enable}({kind.model_arg}) "
                                 f"(encodes the {len(snap.live)} stored documents).")
            self._require_side_model(key, f"search the {part_kinds()[key].label} side")
        for attempt in range(10):
            try:
                return {key: self._part_cache(key).side(snap.manifest) for key in keys}, snap
            except FileNotFoundError as exc:  # a writer committed meanwhile and removed these files
                if attempt == 9:
                    raise self._missing_file(exc) from exc
                time.sleep(0.05)
                snap = self._refresh()
        raise AssertionError("unreachable")

    def _part_cache(self, key: str) -> PartCache:
        if key not in self._part_caches:
            self._part_caches[key] = PartCache(part_kinds()[key], self.path)
        return self._part_caches[key]

    def _encode_side(self, key: str, manifest: dict[str, Any], texts: list[str], *, query: bool, action: str) -> Any:
        """Rows of ``texts`` for the ``key`` side (sparse, multivector), or ``None`` when the index keeps none."""
        if not isinstance(manifest.get(key), dict):
            return None
        return part_kinds()[key].encode(self._require_side_model(key, action), manifest[key], texts, query=query)

    def _retrieve(self, snap: Snapshot, queries: np.ndarray, k: int, multiplier: int,
                  ef_search: int | None) -> list[list[tuple[int, int, float]]]:
        """Per query up to ``k`` ``(document, row, score)``, one per document, best first. Fetches
        more rows while chunked documents take several of them."""
        total = snap.live_rows
        out: list[list[tuple[int, int, float]]] = [[] for _ in range(len(queries))]
        pending = np.arange(len(queries))
        n = min(total, k * (2 if snap.has_chunks else 1))
        while len(pending) and n > 0:
            rows, scores = self._candidates(snap, queries[pending], n, multiplier, ef_search)
            still = []
            for q, q_rows, q_scores in zip(pending, rows, scores):
                out[q] = best_per_doc(snap.row_doc, q_rows, q_scores, k)
                if len(out[q]) < k and n < total:
                    still.append(q)
            pending, n = np.array(still, dtype=np.int64), min(total, n * 4)
        return out

    def _candidates(self, snap: Snapshot, queries: np.ndarray, n: int, multiplier: int,
                    ef_search: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best rows per query with exact scores (first stage per backend/precision)."""
        precision, total = snap.manifest["precision"], snap.live_rows
        wide = min(total, n * max(1, int(multiplier))) if precision != "float32" else n
        if not self._use_hnsw(snap):
            if precision == "float32":
                return scoring.top_rows(queries, snap.blocks, snap.alive, n)
            rows, _ = scoring.top_rows(queries, snap.blocks, snap.alive, wide, kind=precision)
        else:
            graph, live_rows = self._hnsw(snap)
            pos = ann.search_hnsw(graph, precision, queries, wide, ef_search)
            rows = np.where(pos >= 0, live_rows[np.clip(pos, 0, None)], -1)
        rows, scores = scoring.rescore(queries, snap.blocks, snap.offsets, rows)
        return rows[:, :n], scores[:, :n]

    def _use_hnsw(self, snap: Snapshot) -> bool:
        backend = snap.manifest["backend"]
        if backend != "auto":
            return backend == "hnsw"
        if snap.live_rows < AUTO_HNSW_MIN_VECTORS:
            return False
        try:
            ann.import_faiss()
        except ImportError:
            return False
        return True

    def _hnsw(self, snap: Snapshot) -> tuple[Any, np.ndarray]:
        """The HNSW graph of this snapshot's live rows (memory, else disk cache, else built)."""
        key = ann.ann_key(snap.manifest)
        if self._graph is None or self._graph[0] != key:
            live_rows = np.flatnonzero(snap.alive)

            def rows() -> tuple[np.ndarray, np.ndarray | None]:
                vectors = scoring.gather(snap.blocks, snap.offsets, live_rows)
                return vectors, scoring.pack_bits(vectors) if snap.manifest["precision"] == "ubinary" else None

            graph = ann.load_or_build(self.path, key, snap.manifest["precision"], rows)
            self._graph = (key, graph, live_rows)
        return self._graph[1], self._graph[2]

    # -- state -----------------------------------------------------------------------------------
    def _require_model(self, action: str) -> Any:
        if self._model is None:
            raise IndexReadOnlyError(f"Cannot {action}: the index at {self.path} was opened without a model "
                                     "(inspection only). Open it with EmbeddingIndex.open(path, model), using "
                                     "the model it was built with.")
        return self._model

    def _require_side_model(self, key: str, action: str) -> Any:
        if key not in self._side_models:
            kind = part_kinds()[key]
            info = (self._snap.manifest.get(key) or {}).get("model", {})
            raise IndexReadOnlyError(f"Cannot {action}: the index at {self.path} keeps a {kind.label} side "
                                     f"({kind.label} model {info.get('name_or_path')!r}, fingerprint "
                                     f"{info.get('fingerprint')}) but was opened without a {kind.label} model. Open it "
                                     f"with EmbeddingIndex.open(path, model, {kind.model_arg}=...), using the "
                                     f"{kind.label} model it was built with.")
        return self._side_models[key]

    def _load(self, manifest: dict[str, Any]) -> Snapshot:
        """Snapshot of ``manifest``; re-reads the manifest if a concurrent compaction removed a file."""
        for attempt in range(10):
            try:
                return self._cache.snapshot(manifest)
            except FileNotFoundError as exc:
                if attempt == 9:
                    raise self._missing_file(exc) from exc
                time.sleep(0.05)
                manifest = read_manifest(self.path)
        raise AssertionError("unreachable")

    def _missing_file(self, exc: FileNotFoundError) -> IndexFormatError:
        return IndexFormatError(f"The embedding index at {self.path} is damaged: it lists a file that does not "
                                f"exist ({exc.filename}). Run `sentencekit index repair {self.path}` "
                                "(EmbeddingIndex.repair) to drop what is lost, or restore the folder from a backup.")

    def _refresh(self) -> Snapshot:
        """The latest committed state (cheap when the manifest is unchanged: one ``stat``)."""
        try:
            st = os.stat(self.path / MANIFEST)
        except FileNotFoundError:
            raise IndexFormatError(f"The embedding index at {self.path} was removed (no {MANIFEST}).") from None
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp != self._stamp:
            self._snap, self._stamp = self._load(read_manifest(self.path)), stamp
        return self._snap

    def _write_new_segment(self, manifest: dict[str, Any], snap: Snapshot, docs: list[dict[str, Any]],
                           vectors: np.ndarray, given_ids: list[str] | None,
                           final_ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The commit step of :meth:`add` and :meth:`add_images` (run by :meth:`_commit` under the writer lock):
        number ``docs`` (``given_ids``, else the next running integers; ``final_ids`` receives them), then write
        them with ``vectors`` as a new segment. Returns its log entry and the manifest updates (``next_id`` when
        the ids were numbered here)."""
        final_ids[:] = given_ids if given_ids is not None else auto_ids(manifest, snap, len(docs))
        refuse_existing(final_ids, snap)
        for doc, doc_id in zip(docs, final_ids):
            doc["id"] = doc_id
        entry = write_segment(self.path, new_name("seg", manifest["generation"] + 1), vectors, docs,
                              manifest["precision"])
        return entry, ({} if given_ids is not None else {"next_id": int(final_ids[-1]) + 1})

    def _commit(self, write: Callable[[dict[str, Any], Snapshot], tuple[list[dict], dict]],
                side_rows: dict[str, Callable[[dict[str, Any]], Any]] | None = None) -> None:
        """Run ``write(manifest, snapshot) -> (new log, manifest updates)`` under the writer lock on the
        latest committed state, then commit the new manifest (the commit point). On an index with per-segment
        sides (sparse, multivector), a new segment's rows of side ``key`` come from ``side_rows[key](segment
        entry)`` (missing or ``None``: encoded now from its stored texts)."""
        with writer_lock(self.path, self.lock_timeout):
            manifest = read_manifest(self.path)
            remove_uncommitted(self.path, manifest)  # leftovers of writers that died before committing
            snap = self._load(manifest)
            log, updates = write(manifest, snap)
            if log == manifest["log"] and not updates:
                return
            # entries of indexes written before checksums existed get them now (they just loaded cleanly)
            log = add_missing_checks(self.path, log)
            new = {**manifest, **updates, "generation": manifest["generation"] + 1, "log": log}
            new_snap = self._cache.snapshot(new)
            new["counts"] = new_snap.counts()
            if "lexical" in new:  # kept: BM25 statistics are corpus-wide, so rebuilt with every commit
                from sentencekit.search.lexical import write_lexical

                new["lexical"] = write_lexical(self.path, new_name("lex", new["generation"]), new_snap)
            for key, kind in part_kinds().items():  # parts follow the segments; only new segments get files
                if isinstance(new.get(key), dict):
                    new[key] = next_entry(kind, self.path, new[key], new["log"], (side_rows or {}).get(key),
                                          lambda kind=kind: new_name(kind.prefix, new["generation"]),
                                          lambda key=key: self._require_side_model(key, "add documents"))
            pause_before_commit()
            write_manifest(self.path, new)
            remove_uncommitted(self.path, new)  # files a compaction replaced
        self._refresh()


def _public_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The public form of a stored document record (what :meth:`EmbeddingIndex.get` returns for it)."""
    out = {"id": doc["id"], "text": doc["text"], "metadata": doc.get("metadata")}
    if doc.get("title"):
        out["title"] = doc["title"]
    if doc.get("chunks"):
        out["chunks"] = [list(span) for span in doc["chunks"]]
    if doc.get("modality"):
        out["modality"] = doc["modality"]
    return out


__all__ = ["EmbeddingIndex", "AUTO_HNSW_MIN_VECTORS"]
