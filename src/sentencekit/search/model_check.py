"""What an :class:`~sentencekit.search.index.EmbeddingIndex` records about its model, the checks that
refuse a different model or settings, and embedding with exactly the recorded settings.

>>> mismatches({"normalize": True, "dimension": 384}, None, normalize=False)
['normalize: recorded True, given False']
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from sentencekit.fingerprint import model_fingerprint
from sentencekit.pipeline.prompts import DOCUMENT_PROMPT_NAMES, resolve_prompt
from sentencekit.search.index_errors import IndexMismatchError

logger = logging.getLogger(__name__)


def check_bi_encoder(model: Any) -> None:
    """Refuse anything that cannot embed texts on its own, cross-encoders first of all.

    >>> check_bi_encoder(object())
    Traceback (most recent call last):
    ...
    TypeError: EmbeddingIndex needs a bi-encoder (a SentenceTransformer, with encode()); got object.
    """
    name = type(model).__name__
    has_encode = callable(getattr(model, "encode", None))
    if "CrossEncoder" in name or (callable(getattr(model, "predict", None)) and not has_encode):
        raise TypeError(f"{name} is a cross-encoder (reranker): it scores (query, document) pairs and cannot "
                        "embed a corpus for first-stage search. Build the index with a bi-encoder "
                        "(SentenceTransformer) and pass the cross-encoder as search(..., reranker=...).")
    if getattr(model, "family", None) in ("multivector", "sparse"):  # one vector per token / per vocabulary term
        keyword = "multivector_model" if model.family == "multivector" else "sparse_model"
        raise TypeError(f"{name} cannot be an index's dense model: it gives "
                        f"{'one vector per token' if model.family == 'multivector' else 'sparse term weights'}. "
                        f"Build the index with a SentenceTransformer and pass this model as {keyword}=..., "
                        f"e.g. EmbeddingIndex.create(path, dense_model, {keyword}=model).")
    if not has_encode:
        raise TypeError(f"EmbeddingIndex needs a bi-encoder (a SentenceTransformer, with encode()); got {name}.")


def check_reranker(reranker: Any) -> None:
    """A reranker must score pairs: ``predict(list of (query, text)) -> scores``.

    >>> check_reranker(object())
    Traceback (most recent call last):
    ...
    TypeError: reranker must be a cross-encoder with predict(list of (query, text) pairs) -> scores; got object.
    """
    if not callable(getattr(reranker, "predict", None)):
        raise TypeError("reranker must be a cross-encoder with predict(list of (query, text) pairs) -> scores; "
                        f"got {type(reranker).__name__}.")


def _similarity(model: Any, normalize: bool) -> str:
    name = getattr(model, "similarity_fn_name", None) or "cosine"
    if normalize:
        if name == "dot":
            logger.warning("The model scores with dot product; normalize=True ranks by cosine instead. Pass "
                           "normalize=False to keep its dot-product scores.")
        return "cosine"
    if name == "dot":
        return "dot"
    if name == "cosine":
        raise ValueError("normalize=False with a cosine-similarity model would rank by raw dot product. Keep "
                         "normalize=True: cosine is the dot product of normalized vectors.")
    raise ValueError(f"EmbeddingIndex scores by cosine (normalize=True) or dot product (normalize=False, for "
                     f"dot-product models); this model's similarity is {name!r}. Use normalize=True.")


def _prompts(model: Any, prompt_name: str | None, query_prompt_name: str | None) -> dict[str, Any]:
    """The prompt texts ``encode_document`` / ``encode_query`` would prepend (or the named ones)."""
    prompts = dict(getattr(model, "prompts", None) or {})
    default = getattr(model, "default_prompt_name", None)
    doc_name = prompt_name or next((n for n in DOCUMENT_PROMPT_NAMES if n in prompts), None)
    query_name = query_prompt_name or ("query" if "query" in prompts else None)
    return {"prompt_name": doc_name, "document_prompt": resolve_prompt(prompts, doc_name, None, default) or "",
            "query_prompt_name": query_name, "query_prompt": resolve_prompt(prompts, query_name, None, default) or ""}


def _encode(model: Any, texts: list[str], *, query: bool, prompt: str, normalize: bool, truncate_dim: int | None,
            batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
    method = getattr(model, "encode_query" if query else "encode_document", None) or model.encode
    vectors = method(texts, prompt=prompt, normalize_embeddings=normalize, truncate_dim=truncate_dim,
                     batch_size=batch_size, show_progress_bar=show_progress_bar, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def index_settings(model: Any, *, normalize: bool, prompt_name: str | None, query_prompt_name: str | None,
                   truncate_dim: int | None) -> dict[str, Any]:
    """The manifest fields that fix how texts are embedded: model identity, prompts, dimension,
    normalization and similarity (the dimension is measured by embedding a probe text).

    >>> settings = index_settings(model, normalize=True, prompt_name=None, query_prompt_name=None,
    ...                           truncate_dim=None)  # doctest: +SKIP
    >>> settings["dimension"], settings["similarity_fn_name"]  # doctest: +SKIP
    (384, 'cosine')
    """
    normalize = bool(normalize)
    similarity = _similarity(model, normalize)
    prompts = _prompts(model, prompt_name, query_prompt_name)
    if truncate_dim is None:
        truncate_dim = getattr(model, "truncate_dim", None)
    probe = _encode(model, ["dimension probe"], query=False, prompt=prompts["document_prompt"], normalize=normalize,
                    truncate_dim=truncate_dim)
    model_info = {"name_or_path": _model_name(model), "class": type(model).__name__,
                  "fingerprint": model_fingerprint(model)}
    return {"model": model_info, "dimension": int(probe.shape[-1]), "truncate_dim": truncate_dim,
            "normalize": normalize, "similarity_fn_name": similarity, **prompts}


def _model_name(model: Any) -> str | None:
    name = getattr(model, "model_name_or_path", None)
    return os.fspath(name) if name is not None else None


def embed(model: Any, settings: dict[str, Any], texts: list[str], *, query: bool, batch_size: int = 32,
          show_progress_bar: bool = False) -> np.ndarray:
    """Embed documents (``query=False``) or queries with the recorded prompt, dimension and
    normalization; refuse vectors of any other dimension.

    >>> embed(model, index.manifest, ["refund?"], query=True).shape  # doctest: +SKIP
    (1, 384)
    """
    vectors = _encode(model, list(texts), query=query, prompt=settings["query_prompt" if query else "document_prompt"],
                      normalize=settings["normalize"], truncate_dim=settings["dimension"], batch_size=batch_size,
                      show_progress_bar=show_progress_bar)
    if vectors.ndim != 2 or vectors.shape[1] != settings["dimension"]:
        raise IndexMismatchError(f"The model produced vectors of shape {vectors.shape}, but the index stores "
                                 f"{settings['dimension']}-dimensional vectors: was the model changed after the "
                                 "index was opened? Reopen it with the model it was built with.")
    return vectors


def mismatches(manifest: dict[str, Any], model: Any, *, normalize: bool | None = None,
               truncate_dim: int | None = None) -> list[str]:
    """Every way ``model`` / the given settings differ from the recorded ones, as
    ``"what: recorded X, given Y"`` lines (empty when they match).

    >>> mismatches({"normalize": True, "dimension": 384}, None, truncate_dim=256)
    ['dimension: recorded 384, given 256 (truncate_dim)']
    """
    problems = []
    if normalize is not None and bool(normalize) != manifest["normalize"]:
        problems.append(f"normalize: recorded {manifest['normalize']}, given {bool(normalize)}")
    if truncate_dim is not None and truncate_dim != manifest["dimension"]:
        problems.append(f"dimension: recorded {manifest['dimension']}, given {truncate_dim} (truncate_dim)")
    if model is None:
        return problems
    recorded, given = manifest["model"], model_fingerprint(model)
    if given != recorded["fingerprint"]:
        problems.append(f"model fingerprint: recorded {recorded['fingerprint']} (model {recorded['name_or_path']!r}), "
                        f"given {given} (model {_model_name(model)!r})")
    get_dim = getattr(model, "get_sentence_embedding_dimension", None)
    dim = get_dim() if callable(get_dim) else None
    model_truncate = getattr(model, "truncate_dim", None)
    recorded_dim = manifest["dimension"]
    if dim is not None and (dim < recorded_dim or (model_truncate is not None and dim != recorded_dim)):
        how = f" (the model was loaded with truncate_dim={model_truncate})" if model_truncate is not None else ""
        problems.append(f"dimension: recorded {manifest['dimension']}, given {dim}{how}")
    return problems


def mismatch_error(where: Any, problems: list[str], manifest: dict[str, Any] | None = None, *,
                   built: str = "built", rebuild: str = "build a new index for this model with "
                   "EmbeddingIndex.create(new_path, model) and add the documents again") -> IndexMismatchError:
    """The error for :func:`mismatches`: what differs, and what to do about each kind of difference. ``where``
    names the index or table, ``manifest`` is its record (it names the recorded model and ``truncate_dim``),
    ``built`` how its vectors were made ("built", "exported") and ``rebuild`` the way out with this model.

    >>> print(mismatch_error("the embedding index at idx", ["normalize: recorded True, given False"],
    ...                      {"normalize": True}))  # doctest: +NORMALIZE_WHITESPACE
    Cannot use the embedding index at idx with this model/settings; its stored vectors would not be
    comparable with new ones:
      - normalize: recorded True, given False
    To use it: open it with normalize=True. Or build a new index for this model with
    EmbeddingIndex.create(new_path, model) and add the documents again.
    >>> print(mismatch_error("t", ["dimension: recorded 384, given 128 (the model was loaded with truncate_dim=128)"],
    ...                      {"truncate_dim": None, "dimension": 384}, built="exported", rebuild="export again"))
    ... # doctest: +NORMALIZE_WHITESPACE
    Cannot use t with this model/settings; its stored vectors would not be
    comparable with new ones:
      - dimension: recorded 384, given 128 (the model was loaded with truncate_dim=128)
    To use it: it was exported with 384-dimensional vectors: load the model without truncate_dim (or with
    truncate_dim=384) and pass no other truncate_dim. Or export again.
    """
    manifest = manifest or {}
    lines = "\n".join(f"  - {p}" for p in problems)
    advice = []
    if any("model fingerprint" in p for p in problems):
        name = (manifest.get("model") or {}).get("name_or_path")
        advice.append(f"open it with the model(s) it was {built} with"
                      + (f" ({name!r})" if name and any(p.startswith("model fingerprint") for p in problems) else ""))
    if any(p.startswith("dimension") and "truncate_dim" in p for p in problems):
        dim, recorded = manifest.get("dimension"), manifest.get("truncate_dim")
        how = (f"load the model with truncate_dim={recorded}" if recorded is not None else
               f"load the model without truncate_dim (or with truncate_dim={dim})")
        advice.append(f"it was {built} with {dim}-dimensional vectors: {how} and pass no other truncate_dim")
    if any(p.startswith("normalize") for p in problems):
        advice.append(f"open it with normalize={manifest.get('normalize')}")
    todo = f"To use it: {'; '.join(advice)}. Or {rebuild}." if advice else (
        f"Open it with the model and settings it was {built} with, or {rebuild}.")
    return IndexMismatchError(
        f"Cannot use {where} with this model/settings; its stored vectors would not be\n"
        f"comparable with new ones:\n{lines}\n{todo}")
