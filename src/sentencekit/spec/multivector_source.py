"""What a folder holds when it is loaded as a ``MultiVectorEncoder`` (torch-free): which of the layouts
sentence-transformers 6.2 reads it is, and the settings its older formats keep outside the modules.

Layouts (``MultiVectorSource.kind``):

- ``"native"``: a ``MultiVectorEncoder`` save (``model_type: MultiVectorEncoder``, or a module only multi-vector
  models have): its ``modules.json``;
- ``"pylate"``: a PyLate (<= 3) ColBERT save (``model_type: ColBERT``): ``[Transformer, Dense]``, then a
  ``MultiVectorMask`` (the config's ``skiplist_words``, else punctuation) and a token ``Normalize`` are appended;
  the top-level ``query_prefix`` / ``document_prefix`` become prompt prefixes (registered as special tokens),
  ``document_length`` a Transformer setting, ``query_length`` the expansion length unless ``do_query_expansion``
  is false, ``attend_to_expansion_tokens`` the expansion's ``attend``;
- ``"stanford"``: a Stanford ColBERT checkpoint (``architectures: ["HF_ColBERT"]``): the backbone, a ``Dense``
  from the root weight ``linear.weight``, a punctuation ``MultiVectorMask`` (unless ``mask_punctuation`` is
  false) and a token ``Normalize``; ``artifact.metadata`` gives the markers (``[unused0] `` / ``[unused1] ``
  prompts), ``doc_maxlen`` and the fixed query expansion (``query_maxlen``, default 32;
  ``attend_to_mask_tokens``); without the file the defaults are used, with a warning;
- ``"sentence-transformers"``: a SentenceTransformer save: its modules without ``Pooling`` and sentence-level
  ``Normalize``; a sentence-level ``Dense`` works on tokens (keeping its weights), else a new random
  ``Dense(hidden -> 128)`` is added; then ``MultiVectorMask([])`` and a token ``Normalize``; the similarity
  becomes ``maxsim``;
- ``"retrieval"``: a transformers-native late-interaction retriever (``architectures`` ending in
  ``ForRetrieval``: ColPali, ColQwen2, ColModernVBert) without ``modules.json``: ``Transformer(transformer_task=
  "retrieval")`` (text and image through ``forward`` -> ``embeddings``, as ``token_embeddings``) +
  ``MultiVectorMask([])``; the head already projects, L2-normalizes and zeroes padding, and the processor renders
  the query prefix, augmentation tokens and visual prompt (ColPali paper: Faysse et al., "ColPali: Efficient
  Document Retrieval with Vision Language Models", 2024). A saved one is ``"native"``;
- ``"transformers"``: any other Hugging Face encoder folder: ``Transformer`` + a random ``Dense(hidden -> 128,
  no bias)`` + ``MultiVectorMask([])`` + token ``Normalize`` (to be trained).

Saved sparse encoders and rerankers are refused (``ModelFormatError``).
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, field
from typing import Any

from sentencekit.files import ModelFormatError, read_json_if_exists
from sentencekit.spec.model_spec import ModelSpec

logger = logging.getLogger(__name__)

#: the similarity functions a MultiVectorEncoder takes
SIMILARITY_FN_NAMES = ("maxsim", "meanmaxsim")
#: PyLate's top-level settings; any of them marks a PyLate-style config
_PYLATE_KEYS = ("query_length", "document_length", "query_expansion", "do_query_expansion",
                "attend_to_expansion_tokens", "attend_to_mask_tokens", "query_prefix", "document_prefix",
                "skiplist_words")
STANFORD_METADATA = "artifact.metadata"


@dataclass(frozen=True)
class MultiVectorSource:
    """A folder as a multi-vector model (see the module docstring). ``prompts`` are the saved ones (legacy
    prefixes composed in front); ``prefixes`` the legacy markers to register as special tokens;
    ``transformer_settings`` Transformer settings the format keeps elsewhere (a setting the Transformer's own
    config has wins); ``skiplist_words`` the skiplist of an appended ``MultiVectorMask``."""

    kind: str
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    prefixes: dict[str, str] = field(default_factory=dict)
    transformer_settings: dict[str, Any] = field(default_factory=dict)
    skiplist_words: list[str] = field(default_factory=list)


def _refuse_other_families(spec: ModelSpec) -> None:
    archs = [str(a) for a in spec.hf_config.get("architectures") or []]
    if spec.is_sparse:
        raise ModelFormatError(f"{spec.folder} is a SparseEncoder (sparse vocabulary vectors), not a multi-vector "
                               "model: load it with SparseEncoder.")
    if spec.model_type == "CrossEncoder" or any(a.endswith("ForSequenceClassification") for a in archs):
        raise ModelFormatError(f"{spec.folder} is a CrossEncoder (reranker), not a multi-vector model: load it with "
                               "CrossEncoder.")
    if spec.layout == "model2vec" or spec.is_static:
        raise ModelFormatError(f"{spec.folder} is a static-embedding model (one vector per text from a token table), "
                               "which has no contextual token vectors to score with MaxSim.")


def _legacy_settings(config: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """``(prompts, prefixes, transformer settings)`` from a ``config_sentence_transformers.json`` that may carry
    PyLate's top-level keys (sentence-transformers 6.2's ``_parse_model_config`` rules)."""
    prompts = {k: v for k, v in (config.get("prompts") or {}).items() if v is not None}
    prefixes: dict[str, str] = {}
    for key, role in (("query_prefix", "query"), ("document_prefix", "document")):
        if key in config:
            prefix = config[key] or ""
            prefixes[role] = prefix
            prompts[role] = prefix + (prompts.get(role) or "").removeprefix(prefix)
    settings = {k: config[k] for k in ("query_length", "document_length", "query_expansion")
                if k in config and (config[k] is not None or k == "query_expansion")}
    if "query_expansion" not in settings and any(k in config for k in _PYLATE_KEYS):
        if config.get("do_query_expansion") is False:
            settings["query_expansion"] = None
        else:
            attend = config.get("attend_to_expansion_tokens", config.get("attend_to_mask_tokens"))
            length = settings.pop("query_length", None) or 32
            settings["query_expansion"] = {"strategy": "fixed", "attend": bool(attend), "length": length}
    return prompts, prefixes, settings


def _stanford(spec: ModelSpec, warn: bool) -> MultiVectorSource:
    metadata = read_json_if_exists(spec.folder / STANFORD_METADATA, what="Stanford ColBERT metadata")
    if metadata is None and warn:
        logger.warning("%s is a Stanford ColBERT checkpoint without %s: using the defaults ([unused0] / [unused1] "
                       "markers, 32-token fixed query expansion, punctuation skiplist).", spec.folder,
                       STANFORD_METADATA)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ModelFormatError(f"{spec.folder / STANFORD_METADATA}: expected a JSON object.")
    markers = {"query": (metadata.get("query_token_id") or "[unused0]") + " ",
               "document": (metadata.get("doc_token_id") or "[unused1]") + " "}
    settings: dict[str, Any] = {"query_expansion": {"strategy": "fixed",
                                                    "attend": bool(metadata.get("attend_to_mask_tokens")),
                                                    "length": metadata.get("query_maxlen") or 32}}
    if metadata.get("doc_maxlen") is not None:
        settings["document_length"] = metadata["doc_maxlen"]
    skiplist = list(string.punctuation) if metadata.get("mask_punctuation", True) else []
    return MultiVectorSource("stanford", prompts=dict(markers), prefixes=dict(markers),
                             transformer_settings=settings, skiplist_words=skiplist)


def is_retrieval_model(spec: ModelSpec) -> bool:
    """Whether ``spec`` is a ``*ForRetrieval`` late-interaction retriever (ColPali, ColQwen2, ColModernVBert): a
    plain Hugging Face folder whose ``architectures`` end in ``ForRetrieval``, or a save whose Transformer records
    ``transformer_task: "retrieval"``."""
    if spec.layout == "transformers":
        return any(str(a).endswith("ForRetrieval") for a in spec.hf_config.get("architectures") or [])
    return spec.transformer_config.get("transformer_task") == "retrieval"


def read_multivector_source(spec: ModelSpec, *, warn: bool = True) -> MultiVectorSource:
    """The layout and legacy settings of ``spec`` as a multi-vector model (see the module docstring;
    ``warn=False``: no warning about a missing ``artifact.metadata``, for a second reading). Raises
    ``ModelFormatError`` for a sparse encoder, a reranker or a static model."""
    _refuse_other_families(spec)
    if spec.layout == "transformers":
        archs = [str(a) for a in spec.hf_config.get("architectures") or []]
        if "HF_ColBERT" in archs:
            return _stanford(spec, warn)
        if any(a.endswith("ForRetrieval") for a in archs):
            return MultiVectorSource("retrieval")
        return MultiVectorSource("transformers")
    config = spec.model_config
    prompts, prefixes, settings = _legacy_settings(config)
    saved_similarity = config.get("similarity_fn_name")
    similarity = saved_similarity if saved_similarity in SIMILARITY_FN_NAMES else None
    common = {"prompts": prompts, "default_prompt_name": config.get("default_prompt_name"), "prefixes": prefixes,
              "transformer_settings": settings}
    skiplist = config.get("skiplist_words")
    if spec.model_type == "ColBERT":
        return MultiVectorSource("pylate", similarity_fn_name=similarity, **common,
                                 skiplist_words=list(skiplist) if skiplist is not None else list(string.punctuation))
    if spec.is_multivector:
        return MultiVectorSource("native", similarity_fn_name=similarity, **common)
    if spec.model_type != "SentenceTransformer":
        raise ModelFormatError(f"{spec.folder} is a {spec.model_type} save, which MultiVectorEncoder cannot load.")
    if skiplist is None and prefixes:
        skiplist = list(string.punctuation)
    return MultiVectorSource("sentence-transformers", similarity_fn_name=similarity or "maxsim", **common,
                             skiplist_words=list(skiplist or []))


__all__ = ["MultiVectorSource", "read_multivector_source", "SIMILARITY_FN_NAMES", "STANFORD_METADATA"]
