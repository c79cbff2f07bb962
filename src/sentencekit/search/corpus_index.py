"""Corpus files and folders turned into stored :class:`EmbeddingIndex` folders, built once and reused.

Used by the CLI: ``sentencekit index build`` (an index where you say) and ``sentencekit search`` without
``--index`` (an index kept under ``$SENTENCEKIT_HOME/indexes``, keyed by the corpus content and the
model's fingerprint, and those of the sparse and multi-vector models when there are, so a changed corpus or
model gets a new index instead of stale vectors).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

from sentencekit.search.corpus import READER_RULES, Document, load_corpus
from sentencekit.search.defaults import sentencekit_home


def add_documents(index: Any, docs: list[Document], *, batch_size: int = 32, chunk: bool = False) -> int:
    """Add the documents whose ids the index does not have yet; returns how many were added. Documents whose
    id is there but whose text or title changed are kept as indexed, with one warning naming them (an id is
    a document's identity: replacing it is ``index.delete(ids)`` then a build, never a silent overwrite)."""
    new = [d for d in docs if d.id not in index]
    stale = [d.id for d in docs if d.id in index and _changed(index.get(d.id), d)]
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        warnings.warn(f"{len(stale)} document(s) already in the index differ from the corpus ({shown}); they were "
                      "kept as indexed. To re-embed them, delete them from the index first (EmbeddingIndex.delete) "
                      "or build a new index", UserWarning, stacklevel=2)
    if new:
        index.add([d.text for d in new], ids=[d.id for d in new], metadata=[{"title": d.title} for d in new],
                  titles=[d.title or None for d in new], batch_size=batch_size, chunk=chunk,
                  show_progress_bar=len(new) > 4 * batch_size)
    return len(new)


def _changed(stored: dict[str, Any] | None, doc: Document) -> bool:
    """Whether the stored document's text or title differs from ``doc`` (metadata titles of older indexes
    count as titles)."""
    if stored is None:
        return False
    title = stored.get("title") or (stored.get("metadata") or {}).get("title") or ""
    return stored["text"] != doc.text or title != (doc.title or "")


def build_index(source: str | Path, out: str | Path, model: Any, *, column: str = "text", chunk: bool = False,
                precision: str = "float32", backend: str = "exact", batch_size: int = 32,
                lexical: bool | None = None, encoding: str = "utf-8", sparse_model: Any = None,
                multivector_model: Any = None) -> tuple[Any, int]:
    """Create (or extend) the index at ``out`` with the documents of ``source`` (a corpus file or folder, see
    :func:`~sentencekit.search.corpus.load_corpus`, read as ``encoding``; a folder of image
    files gives image documents, :func:`~sentencekit.search.image_documents.folder_images`, and needs a model
    that encodes images); ``backend``: the index kind
    (exact, hnsw, auto). Returns (index, documents added). ``lexical``: keep a BM25 side for lexical and
    hybrid search (``None``: when bm25s is installed; ``False`` leaves an existing one in place).
    ``sparse_model`` / ``multivector_model``: keep a learned-sparse / late-interaction side encoded by it (an
    existing index without that side gets it, its stored documents encoded; one with that side must have been
    built with this model: ``IndexMismatchError``)."""
    from sentencekit.search.image_documents import folder_images
    from sentencekit.search.index import EmbeddingIndex
    from sentencekit.search.lexical import lexical_available
    from sentencekit.search.storage import manifest_path

    images = folder_images(source)
    if images is not None:  # a folder of images: image documents, no text sides
        return _build_image_index(source, images, out, model, precision=precision, backend=backend,
                                  batch_size=batch_size, lexical=lexical, sparse_model=sparse_model,
                                  multivector_model=multivector_model)
    docs = load_corpus(source, column=column, encoding=encoding)
    side_models = {"sparse": sparse_model, "multivector": multivector_model}
    if manifest_path(Path(out)).exists():
        index = EmbeddingIndex.open(out, model, sparse_model=sparse_model, multivector_model=multivector_model)
        # an index that keeps a lexical side already needs nothing here, and then bm25s (a tenth of a second
        # to import) is not loaded: `sentencekit search` reopens its index on every run
        has_lexical = isinstance(index.manifest.get("lexical"), dict)
        if not has_lexical and (lexical_available() if lexical is None else lexical):
            index.enable_lexical()
        for key, side_model in side_models.items():
            if side_model is not None and not isinstance(index.manifest.get(key), dict):
                getattr(index, f"enable_{key}")(side_model)  # enable_sparse / enable_multivector
    else:
        lexical = lexical_available() if lexical is None else lexical
        index = EmbeddingIndex.create(out, model, precision=precision, backend=backend, lexical=lexical,
                                      sparse_model=sparse_model, multivector_model=multivector_model)
    return index, add_documents(index, docs, batch_size=batch_size, chunk=chunk)


def _build_image_index(source: str | Path, images: list[Path], out: str | Path, model: Any, *, precision: str,
                       backend: str, batch_size: int, lexical: bool | None, sparse_model: Any,
                       multivector_model: Any) -> tuple[Any, int]:
    """:func:`build_index` of a folder of images (see :mod:`sentencekit.search.image_documents`)."""
    from sentencekit.search.image_documents import add_folder_images, check_image_model
    from sentencekit.search.index import EmbeddingIndex
    from sentencekit.search.storage import manifest_path

    given = [name for name, m in (("a sparse model", sparse_model), ("a multi-vector model", multivector_model))
             if m is not None] + (["lexical=True"] if lexical else [])
    if given:
        raise ValueError(f"{source} is a folder of images, indexed by their embeddings alone; {' and '.join(given)} "
                         "would keep a side that reads texts. Drop it (--sparse / --multivector).")
    check_image_model(model, f"the images of {source}")
    if manifest_path(Path(out)).exists():
        index = EmbeddingIndex.open(out, model)
    else:
        index = EmbeddingIndex.create(out, model, precision=precision, backend=backend)
    return index, add_folder_images(index, Path(source), images, batch_size=batch_size)


def managed_index(source: str | Path, model: Any, *, column: str = "text", cache_dir: str | Path | None = None,
                  batch_size: int = 32, encoding: str = "utf-8", sparse_model: Any = None,
                  multivector_model: Any = None) -> tuple[Any, int]:
    """The index of ``source`` for ``model`` (and ``sparse_model`` / ``multivector_model``, kept as its
    learned-sparse / late-interaction side) kept under
    ``cache_dir`` (default ``$SENTENCEKIT_HOME/indexes``): built on first use, reused after. Returns (index,
    documents added)."""
    from sentencekit.fingerprint import model_fingerprint

    source = Path(source)
    if not source.exists():  # the corpus reader's message, before the fingerprint reads the file
        raise FileNotFoundError(f"Corpus file {source} does not exist.")
    # READER_RULES: a change in how files are read (e.g. which ids rows get) must not reuse old indexes
    digest = hashlib.sha256(f"{model_fingerprint(model)}\0{column}\0{READER_RULES}\0".encode())
    if encoding != "utf-8":  # the same bytes read as another encoding are other documents
        digest.update(f"encoding={encoding}\0".encode())
    for key, side_model in (("sparse", sparse_model), ("multivector", multivector_model)):
        if side_model is not None:  # another side model is another index (a dense-only key stays as it was)
            digest.update(f"{key}={model_fingerprint(side_model)}\0".encode())
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    for file in files:
        digest.update(str(file.relative_to(source) if source.is_dir() else file.name).encode() + b"\0")
        digest.update(file.read_bytes())
    folder = Path(cache_dir) if cache_dir is not None else sentencekit_home() / "indexes"
    return build_index(source, folder / f"{source.stem}-{digest.hexdigest()[:16]}", model, column=column,
                       batch_size=batch_size, encoding=encoding, sparse_model=sparse_model,
                       multivector_model=multivector_model)
