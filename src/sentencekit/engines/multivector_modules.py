"""The torch modules of a ``MultiVectorEncoder``, built from any folder sentence-transformers 6.2 loads as one
(the layouts are described in :mod:`sentencekit.spec.multivector_source`): a native save, PyLate (<= 3) and
Stanford ColBERT checkpoints, a SentenceTransformer save, or a bare Hugging Face encoder.

Every model ends up as ``Transformer -> token Dense -> MultiVectorMask -> token Normalize`` (plus whatever a
native save has after that, e.g. a ``HierarchicalTokenPooling``), except a ``*ForRetrieval`` retriever (ColPali,
ColQwen2), whose ``Transformer(transformer_task="retrieval")`` already projects and normalizes: it gets only the
``MultiVectorMask``. Legacy markers (``[unused0]``, PyLate's
``[Q] ``) are registered as non-normalized special tokens, so text-prepended prompts tokenize as the single
token those models were trained with; skiplists are resolved to ids with the final tokenizer.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentencekit._warnings import external_stacklevel
from sentencekit.engines.protocol import EngineOptions
from sentencekit.files import ModelFormatError
from sentencekit.modules import Dense, MultiVectorMask, Normalize, Pooling, Transformer
from sentencekit.spec.model_spec import ModelSpec
from sentencekit.spec.multivector_source import MultiVectorSource, read_multivector_source

#: the width of the projection a converted model gets (sentence-transformers' and ColBERT's choice)
PROJECTION_DIM = 128


def token_dense(in_features: int, out_features: int = PROJECTION_DIM, weight: torch.Tensor | None = None) -> Dense:
    """A bias-free, activation-free projection of every token vector (random unless ``weight`` is given)."""
    return Dense(in_features, out_features, bias=False, activation_function=nn.Identity(), init_weight=weight,
                 module_input_name="token_embeddings")


def register_prefix_tokens(tokenizer: Any, prefixes: dict[str, str]) -> None:
    """Make each legacy prompt marker one token: a marker the vocabulary knows (the whole prompt, e.g. PyLate's
    ``"[Q] "``, else its first word, e.g. ``"[unused0]"``) that the tokenizer would split is added as a
    non-normalized special token (sentence-transformers 6.2's ``_register_prefix_tokens``). Markers the
    vocabulary does not know stay plain text."""
    from transformers import AddedToken

    added = set(getattr(tokenizer, "added_tokens_encoder", None) or {})
    vocab = tokenizer.get_vocab()
    new = []
    for value in prefixes.values():
        if not value or not value.split():
            continue
        for prefix in (value, value.split(None, 1)[0]):
            if prefix not in added and prefix not in vocab:
                continue
            if tokenizer.tokenize(prefix) != [prefix]:
                new.append(AddedToken(prefix, normalized=False, special=True))
            break
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new})


def _root_projection(folder: Path) -> Dense:
    """Stanford ColBERT's projection: the root weight ``linear.weight`` ``[out, in]``."""
    file = folder / "model.safetensors"
    if file.is_file():
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            if "linear.weight" not in f.keys():  # noqa: SIM118 - safe_open has keys(), not __contains__
                raise ModelFormatError(f"{file} has no linear.weight: a Stanford ColBERT checkpoint keeps its "
                                       "projection there.")
            weight = f.get_tensor("linear.weight")
    else:
        from sentencekit.files import load_state_dict

        state = load_state_dict(folder)
        if "linear.weight" not in state:
            raise ModelFormatError(f"{folder} has no linear.weight: a Stanford ColBERT checkpoint keeps its "
                                   "projection there.")
        weight = state["linear.weight"]
    return token_dense(int(weight.shape[1]), int(weight.shape[0]), weight.float().clone())


#: the seed of a converted model's new projection (see :func:`_random_projection`)
PROJECTION_SEED = 0


def _random_projection(transformer: Transformer, spec: ModelSpec, what: str) -> Dense:
    """A new random token projection to :data:`PROJECTION_DIM`, with a warning: the model needs training.

    Drawn as ``nn.Linear`` initializes (uniform in +-1/sqrt(in_features)) but from a fixed seed, not the global
    generator: loading the same folder twice gives the same untrained model (sentence-transformers draws a new
    one per load), so its fingerprint, an index built with it and its ONNX export stay valid across loads."""
    dim = transformer.get_word_embedding_dimension()
    warnings.warn(f"{spec.folder} is {what}: creating a MultiVectorEncoder from it with a new, random projection "
                  f"({dim} -> {PROJECTION_DIM}, seeded: the same on every load); train it before use.",
                  stacklevel=external_stacklevel())
    generator = torch.Generator().manual_seed(PROJECTION_SEED)
    bound = 1.0 / dim**0.5
    weight = (torch.rand(PROJECTION_DIM, dim, generator=generator) * 2 - 1) * bound
    return token_dense(dim, weight=weight)


def _apply_settings(transformer: Transformer, settings: dict[str, Any], saved: dict[str, Any]) -> None:
    """The format's legacy Transformer settings, where the Transformer's own saved config has none."""
    for key in ("query_length", "document_length"):
        if key in settings and key not in saved:
            setattr(transformer, key, settings[key])
    if "query_expansion" in settings and "query_expansion" not in saved:
        transformer.query_expansion = settings["query_expansion"]


def _converted(modules: list[nn.Module], kwargs: list[list[str]], spec: ModelSpec,
               source: MultiVectorSource) -> tuple[list[nn.Module], list[list[str]]]:
    """A SentenceTransformer's modules as a multi-vector pipeline (see the module docstring)."""
    kept = [(m, k) for m, k in zip(modules, kwargs)
            if not isinstance(m, Pooling) and not (isinstance(m, Normalize) and m.sentence_level)]
    if not kept or not isinstance(kept[0][0], Transformer):
        kinds = [type(m).__name__ for m in modules]
        raise ModelFormatError(f"{spec.folder} ({kinds}) cannot become a MultiVectorEncoder: it needs a Transformer "
                               "first (Router and static-embedding models have no per-token vectors to keep).")
    out = [m for m, _ in kept]
    if not any(isinstance(m, Dense) for m in out):
        out.append(_random_projection(out[0], spec, "a SentenceTransformer without a Dense head"))
    return [*out, MultiVectorMask(source.skiplist_words), Normalize("token_embeddings")], \
        [k for _, k in kept] + [[]] * (len(out) - len(kept) + 2)


def load_multivector_modules(spec: ModelSpec, options: EngineOptions) -> tuple[list[nn.Module], dict[str, list[str]]]:
    """The modules of ``spec`` as a ``MultiVectorEncoder`` and their ``modules.json`` keyword arguments. Raises
    ``ModelFormatError`` for folders of other families (see :func:`read_multivector_source`)."""
    from sentencekit.format import load_modules

    source = read_multivector_source(spec)
    kwargs = options.torch_kwargs("multivector")
    if source.kind in ("native", "pylate", "sentence-transformers"):
        # a saved ColPali-style model's Transformer records transformer_task="retrieval"
        loaded, by_index = load_modules(spec.modules, **kwargs, accept_tasks=("feature-extraction", "retrieval"))
        module_kwargs = [by_index.get(str(i), []) for i in range(len(loaded))]
        for module in loaded:  # within a multi-vector model every Dense projects tokens (PyLate's omit the name)
            if isinstance(module, Dense) and module.sentence_level:
                module.module_input_name = module.module_output_name = "token_embeddings"
        if source.kind == "sentence-transformers":
            loaded, module_kwargs = _converted(loaded, module_kwargs, spec, source)
        elif source.kind == "pylate":
            loaded = [*loaded, MultiVectorMask(source.skiplist_words), Normalize("token_embeddings")]
            module_kwargs += [[], []]
        transformer_config = spec.transformer_config
    elif source.kind == "retrieval":
        loaded = [Transformer.load(spec.folder, **kwargs, transformer_task="retrieval"),
                  MultiVectorMask(source.skiplist_words)]
        module_kwargs = [[]] * len(loaded)
        transformer_config = {}
    else:
        loaded = [Transformer.load(spec.folder, **kwargs)]
        module_kwargs = []
        transformer_config = {}
        if source.kind == "stanford":
            loaded.append(_root_projection(spec.folder))
        else:
            loaded.append(_random_projection(loaded[0], spec, "not a multi-vector model"))
        loaded += [MultiVectorMask(source.skiplist_words), Normalize("token_embeddings")]
        module_kwargs = [[]] * len(loaded)
    transformer = loaded[0]
    if isinstance(transformer, Transformer):
        if source.prefixes:
            register_prefix_tokens(transformer.tokenizer, source.prefixes)
        _apply_settings(transformer, source.transformer_settings, transformer_config)
    return loaded, {str(i): list(k) for i, k in enumerate(module_kwargs) if k}


__all__ = ["load_multivector_modules", "register_prefix_tokens", "token_dense", "PROJECTION_DIM"]
