"""Image documents of an :class:`~sentencekit.search.index.EmbeddingIndex`: the one home of what differs from
text documents.

An image document is stored like a text one (``{"id", "text", "metadata"}`` in the segment's ``docs.jsonl``),
with ``"text"`` the image file's absolute path and ``"modality": "image"``; its one vector is the model's
embedding of the image. An index that ever stored one records ``"image_documents": true`` in its manifest,
and refuses the lexical (BM25), sparse and multi-vector sides, which read texts: a file path is no text to
match words or tokens against.

>>> row_inputs([{"text": "a.png", "modality": "image"}, {"text": "hi", "chunks": None}])
[{'image': 'a.png'}, 'hi']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentencekit.pipeline.modality import IMAGE_EXTENSIONS

IMAGE = "image"
#: the manifest key set once an index stores an image document
MANIFEST_FLAG = "image_documents"


def is_image_doc(doc: dict[str, Any]) -> bool:
    """Whether a stored document record is an image document."""
    return doc.get("modality") == IMAGE


def row_inputs(docs: list[dict[str, Any]]) -> list[Any]:
    """What each row of a segment was embedded from: ``{"image": path}`` for an image document (forced to the
    image modality, whatever the path looks like), else the texts of
    :func:`~sentencekit.search.segments.row_texts`."""
    from sentencekit.search.segments import row_texts

    return [piece for doc in docs for piece in ([{IMAGE: doc["text"]}] if is_image_doc(doc) else row_texts([doc]))]


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an image by its suffix (.jpg .jpeg .png .gif .bmp .tiff .webp)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def folder_images(source: str | os.PathLike) -> list[Path] | None:
    """The image files under folder ``source`` (recursive, sorted), or ``None`` when ``source`` is no folder or
    holds none. Raises ``ValueError`` for a folder holding both images and text documents (.txt .md .rst):
    one index per kind, so neither is left out silently."""
    from sentencekit.search.corpus import FOLDER_SUFFIXES

    root = Path(source)
    if not root.is_dir():
        return None
    files = sorted(p for p in root.rglob("*") if p.is_file())
    images = [p for p in files if is_image_file(p)]
    if not images:
        return None
    texts = [p for p in files if p.suffix.lower() in FOLDER_SUFFIXES]
    if texts:
        raise ValueError(f"{root} holds both images ({len(images)}, e.g. {images[0].name}) and text documents "
                         f"({len(texts)}, e.g. {texts[0].name}); build one index of each from separate folders.")
    return images


def add_folder_images(index: Any, root: str | os.PathLike, files: list[Path], *, batch_size: int = 32) -> int:
    """Add the image ``files`` of folder ``root`` that ``index`` does not have yet (id: the path relative to
    ``root``, with ``/``); returns how many were added."""
    new = [p for p in files if p.relative_to(root).as_posix() not in index]
    if new:
        index.add_images(new, ids=[p.relative_to(root).as_posix() for p in new], batch_size=batch_size,
                         show_progress_bar=len(new) > 4 * batch_size)
    return len(new)


def check_image_model(model: Any, what: str = "image documents") -> None:
    """Raise ``TypeError`` unless ``model`` encodes images (``model.supports("image")``, e.g. a CLIP folder)."""
    supports = getattr(model, "supports", None)
    if not (callable(supports) and supports(IMAGE)):
        modalities = getattr(model, "modalities", ["text"])
        name = getattr(model, "model_name_or_path", None) or type(model).__name__
        raise TypeError(f"Cannot index or search {what} with model {name!r}: it encodes {modalities} only, not "
                        "images. Use a model that places images and texts in one space, e.g. a CLIP folder "
                        "(SentenceTransformer('path/to/clip')).")


def check_image_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The absolute paths of image files ``paths`` (one path or a list). Raises ``TypeError`` for a non-path,
    ``FileNotFoundError`` for a missing file and ``ValueError`` for a suffix that names no image, each naming
    the input."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out = []
    for i, p in enumerate(items):
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"images[{i}] is {type(p).__name__}; pass image file paths (str or Path).")
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"images[{i}]: {path} is not a file; pass the paths of existing image files.")
        if not is_image_file(path):
            raise ValueError(f"images[{i}]: {path} does not end in an image suffix ({' '.join(IMAGE_EXTENSIONS)}); "
                             "rename it or convert it to one of those formats.")
        out.append(str(path.resolve()))
    return out


def query_list(query: Any, model: Any) -> tuple[list[Any], bool]:
    """``(queries, was_single)``: for a model that encodes images, a query may be a string, a PIL image, an image
    path or a list of them (sentence-transformers' single/batch rule); for any other model strings only
    (``TypeError`` otherwise, naming the index)."""
    supports = getattr(model, "supports", None)
    if callable(supports) and supports(IMAGE):
        from sentencekit.pipeline.modality import as_batch

        return as_batch(query, what="query")
    from sentencekit.pipeline.batching import as_input_list

    return as_input_list(query, what="query")


def refuse_text_sides(manifest: dict[str, Any], path: Any, action: str) -> None:
    """Raise ``ValueError`` when ``action`` needs a lexical / sparse / multi-vector side of an index that stores
    image documents (``manifest`` flagged, or ``action`` adds some to an index keeping such a side)."""
    if manifest.get(MANIFEST_FLAG):
        raise ValueError(f"Cannot {action}: the index at {path} stores image documents, and the lexical (BM25), "
                         "sparse and multi-vector sides read texts; an image's file path is no text to match "
                         "against. Search it with retrieval='dense' (the default), by text or by image.")
    sides = [key for key in ("lexical", "sparse", "multivector") if isinstance(manifest.get(key), dict)]
    if sides:
        raise ValueError(f"Cannot {action}: the index at {path} keeps a {' and '.join(sides)} side, which reads "
                         "texts and cannot hold images. Put the images in an index created without them "
                         "(EmbeddingIndex.create(path, model), lexical=False, no sparse/multivector model; "
                         "`sentencekit index build DIR_OF_IMAGES` makes one).")


__all__ = ["IMAGE", "MANIFEST_FLAG", "add_folder_images", "check_image_model", "check_image_paths", "folder_images",
           "is_image_doc", "is_image_file", "query_list", "refuse_text_sides", "row_inputs"]
