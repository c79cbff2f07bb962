"""The torch engine: the model as an ``nn.Sequential`` of modules passing one ``features`` dict
(:class:`ModuleSequence`, what training optimizes), built from a :class:`~sentencekit.spec.model_spec.ModelSpec`
or from modules made by hand, placed on a device and run batch by batch for the pipeline.

Inputs are tokenized once per text: a Transformer with a fast tokenizer tokenizes everything unpadded
(its lengths plan the batches) and each batch is padded from those ids; other input modules (Router,
StaticEmbedding, custom code, slow tokenizers) tokenize each batch when it runs. Images (a CLIP-style
Transformer) are loaded and run through the model's Hugging Face image processor batch by batch
(:meth:`~sentencekit.modules.transformer.Transformer.process_media`).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from sentencekit._warnings import external_stacklevel
from sentencekit.devices import resolve_device
from sentencekit.engines.protocol import Engine, EngineOptions, Tokenized, check_num_threads
from sentencekit.files import ModelFormatError
from sentencekit.modules import Normalize, Pooling, Router, StaticEmbedding, Transformer
from sentencekit.modules.transformer import position_limit
from sentencekit.pipeline.modality import load_batch
from sentencekit.spec.model_spec import ModelSpec


class ModuleSequence(nn.Sequential):
    """The modules of a model in order; ``forward(features)`` passes the dict through each, giving each
    module the keyword arguments it accepts (its ``forward_kwargs`` and the ``kwargs`` of its
    ``modules.json`` entry)."""

    def __init__(self, modules: list[nn.Module] | OrderedDict, module_kwargs: dict[str, list[str]] | None = None):
        if isinstance(modules, (OrderedDict, dict)):
            super().__init__(OrderedDict(modules))
        else:
            super().__init__(*modules)
        self.module_kwargs = dict(module_kwargs or {})

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for name, module in self.named_children():
            allowed = set(getattr(module, "forward_kwargs", set())) | set(self.module_kwargs.get(name, []))
            features = module(features, **{k: v for k, v in kwargs.items() if k in allowed})
        return features

    def get_model_kwargs(self) -> set[str]:
        """Keyword arguments ``encode(**kwargs)`` may pass to the modules."""
        kwargs: set[str] = set()
        for module in self:
            kwargs |= set(getattr(module, "forward_kwargs", set()))
        for names in self.module_kwargs.values():
            kwargs |= set(names)
        return kwargs

    def tokenize(self, texts: list[Any], task: str | None = None, max_length: int | None = None) -> dict[str, Any]:
        """Tokenize a batch with the input module (padded tensors, plus a ``truncated`` flag per input).
        ``max_length`` overrides the length limit (training's ``max_length``; a ``Transformer`` input module
        only: ``ValueError`` otherwise). For a multimodal input module (CLIP) a batch of one non-text modality
        (images: PIL images, paths, arrays, ``{"image": x}``) is processed as encode processes it
        (:meth:`process_media`: ``pixel_values`` ``[b, 3, H, W]`` plus ``"modality"``); a batch mixing
        modalities raises ``ValueError`` (a training column holds one kind of input)."""
        first = self[0]
        media = self._media_batch(texts)
        if media is not None:
            return self.process_media(*media)
        if max_length is not None:
            if not isinstance(first, Transformer):
                raise ValueError(f"max_length={max_length} needs a Transformer input module; this model starts with "
                                 f"{type(first).__name__}. Leave max_length unset.")
            return first.tokenize(texts, task=task, max_length=max_length)
        return first.tokenize(texts, task=task) if isinstance(first, (Router, Transformer)) else first.tokenize(texts)

    def _media_batch(self, inputs: list[Any]) -> tuple[list[Any], str] | None:
        """``(items, modality)`` when the input module is multimodal and ``inputs`` are all of one non-text
        modality (detected and checked as encode does); ``None`` for text. ``ValueError`` for a mixed batch."""
        from sentencekit.pipeline.modality import read_inputs_by_modality

        first = self[0]
        if not isinstance(first, Transformer) or first.modalities == ["text"]:
            return None
        items, kinds, _ = read_inputs_by_modality(list(inputs), first.modalities, what="inputs")
        if kinds is None:
            return None
        found = sorted({str(k) for k in kinds})
        if len(found) > 1:
            raise ValueError(f"A batch mixes {' and '.join(found)} inputs; a training column must hold one kind "
                             "(e.g. an 'image' column and a 'caption' column).")
        return items, kinds[0]

    def process_media(self, items: list[Any], modality: str) -> dict[str, Any]:
        """A batch of media inputs (paths, PIL images, arrays, data URIs) of ``modality``, loaded
        (:func:`~sentencekit.pipeline.modality.load_batch`) and run through the input module's processor:
        the features encode and training both feed the network (images: ``pixel_values`` ``[b, 3, H, W]``)."""
        return self[0].process_media(load_batch(items, modality), modality)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.float32


# -- building the modules of a folder ---------------------------------------------------------------------------
def load_embedder_modules(spec: ModelSpec, options: EngineOptions) -> tuple[list[nn.Module], dict[str, list[str]]]:
    """The modules of an embedder folder: its ``modules.json``; a model2vec table; a plain Hugging Face dual
    encoder (CLIP), which is one Transformer embedding texts and images (sentence-transformers 6.2's inference);
    or a plain Hugging Face transformer, which gets mean pooling, or last-token pooling when it is a causal LM
    (``*ForCausalLM``: the base model, its saved tokenizer and padding side, no Normalize; sentence-transformers
    6.2's rule, :mod:`sentencekit.spec.decoder_config`), with a warning: it was not saved as an embedder."""
    from sentencekit.format import load_modules

    kwargs = options.torch_kwargs("embedder")
    if spec.layout == "sentence-transformers" and spec.model_type == "SentenceTransformer":
        return load_modules(spec.modules, **kwargs)
    if spec.layout == "model2vec":
        modules: list[nn.Module] = [StaticEmbedding.from_model2vec(spec.folder)]
        return (modules + [Normalize()] if spec.normalize else modules), {}
    if not (spec.folder / "config.json").is_file():
        raise ModelFormatError(f"{spec.folder} is not an embedding model folder: it is a {spec.model_type} "
                               "without a transformer config.json.")
    transformer = Transformer.load(spec.folder, **kwargs)
    if transformer.is_multimodal:  # its output is the sentence embedding: nothing to pool
        return [transformer], {}
    saved_as = f" (it was saved as a {spec.model_type})" if spec.model_type != "SentenceTransformer" else ""
    (mode,) = spec.pooling_modes  # one mode: mean, or lasttoken for a causal LM
    how = "last-token pooling (Transformer + Pooling('lasttoken'): a causal LM)" if mode == "lasttoken" else \
        "mean pooling (Transformer + Pooling)"
    unread = " Its config_sentence_transformers.json (prompts, similarity) is not read without a modules.json, " \
        "as in sentence-transformers: pass prompts=... or save the model." if spec.model_config.get("prompts") else ""
    warnings.warn(f"No sentence-transformers model found in {spec.folder}{saved_as}: creating a new one with "
                  f"{how}.{unread}", stacklevel=external_stacklevel())
    return [transformer, Pooling(transformer.get_word_embedding_dimension(), pooling_mode=mode)], {}


def load_reranker_modules(spec: ModelSpec, options: EngineOptions) -> tuple[list[nn.Module], dict[str, list[str]]]:
    """The modules of a cross-encoder folder: a generative reranker (:func:`load_generative_reranker_modules`),
    else the one sequence-classification Transformer of sentence-transformers v6 (``modules.json`` with
    ``model_type: CrossEncoder``) or v5 (a Hugging Face ``*ForSequenceClassification`` folder; any other
    transformer gets a fresh one-label head, marked ``untrained_head`` on the module)."""
    if spec.is_generative_reranker:
        from sentencekit.engines.generative_reranker import load_generative_reranker_modules

        return load_generative_reranker_modules(spec, options)
    config_kwargs = dict(options.config_kwargs or {})
    if options.num_labels is not None:
        config_kwargs["num_labels"] = options.num_labels
    if spec.layout == "sentence-transformers" and spec.model_type == "CrossEncoder":
        kinds = spec.module_kinds
        if kinds != ["Transformer"]:
            raise ModelFormatError(f"{spec.folder / 'modules.json'}: this CrossEncoder uses modules {kinds}; "
                                   "sentencekit supports sequence-classification rerankers (a single Transformer "
                                   "module) and generative ones (a text-generation Transformer + LogitScore).")
        folder = spec.modules[0].path
    else:
        folder = spec.transformer_folder
        archs = spec.hf_config.get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            config_kwargs.setdefault("num_labels", 1)  # a fresh classification head
    transformer = Transformer.load(folder, model_kwargs=options.model_kwargs, tokenizer_kwargs=options.tokenizer_kwargs,
                                   config_kwargs=config_kwargs, trust_remote_code=options.trust_remote_code,
                                   transformer_task="sequence-classification")
    if options.max_length is not None:
        transformer.max_seq_length = options.max_length
    # Travels with the module (pickling, pool workers, the trainer); predict refuses to score while it is set
    # (pipeline.predict.check_trained_head), training clears it.
    transformer.untrained_head = spec.untrained_head
    return [transformer], {}


def load_sparse_modules(spec: ModelSpec, options: EngineOptions) -> tuple[list[nn.Module], dict[str, list[str]]]:
    """The modules of a sparse-encoder folder, by sentence-transformers 6.2's rules:

    - a saved sparse encoder: its ``modules.json`` (v6 and v5 type strings, ``MLMTransformer`` included);
    - a plain Hugging Face ``*ForMaskedLM`` folder: ``[Transformer(fill-mask), SpladePooling("max")]`` (SPLADE);
    - a saved SentenceTransformer: its modules + ``SparseAutoEncoder(d, 4d, k=d//4, k_aux=d//2)``;
    - any other plain transformer: ``[Transformer, Pooling(mean), SparseAutoEncoder(d, 4d, k=256, k_aux=512)]``.

    The last two add an untrained (random) autoencoder, to be trained: a warning says so. Raises
    ``ModelFormatError`` for a cross-encoder."""
    from sentencekit.format import load_modules
    from sentencekit.modules import SparseAutoEncoder, SpladePooling

    # a saved Transformer is what its config says (fill-mask is always written; 5.x's MLMTransformer implies it)
    kwargs = {**options.torch_kwargs("sparse"), "accept_tasks": ("fill-mask", "feature-extraction")}
    if spec.layout == "sentence-transformers" and spec.is_sparse:
        return load_modules(spec.modules, **kwargs)
    if spec.layout == "transformers" and spec.is_masked_lm:
        transformer = Transformer.load(spec.folder, **kwargs, transformer_task="fill-mask")
        return [transformer, SpladePooling("max", embedding_dimension=transformer.get_word_embedding_dimension())], {}
    archs = spec.hf_config.get("architectures") or []
    if spec.model_type == "CrossEncoder" or any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise ModelFormatError(f"{spec.folder} is a CrossEncoder (reranker), not a sparse encoder.")
    if spec.layout == "sentence-transformers":
        modules, module_kwargs = load_embedder_modules(spec, options)
        dim = int(TorchEngine.modules_dimension(modules))
        sae = SparseAutoEncoder(dim, 4 * dim, k=max(1, dim // 4), k_aux=max(1, dim // 2))
        what = f"a {spec.model_type} model"
    else:
        transformer = Transformer.load(spec.folder, **options.torch_kwargs("embedder"))
        dim = transformer.get_word_embedding_dimension()
        modules, module_kwargs = [transformer, Pooling(dim, pooling_mode="mean")], {}
        sae = SparseAutoEncoder(dim, 4 * dim, k=256, k_aux=512)
        what = "a transformer without a masked-language-model head"
    warnings.warn(f"{spec.folder} is {what}: creating a CSR SparseEncoder from it with a new, untrained "
                  f"SparseAutoEncoder({dim} -> {4 * dim}, k={sae.k}); train it before use.",
                  stacklevel=external_stacklevel())
    return [*modules, sae], module_kwargs


def load_multivector_modules(spec: ModelSpec, options: EngineOptions) -> tuple[list[nn.Module], dict[str, list[str]]]:
    """The modules of a multi-vector (ColBERT) model: see :mod:`sentencekit.engines.multivector_modules`."""
    from sentencekit.engines.multivector_modules import load_multivector_modules as load

    return load(spec, options)


_LOADERS = {"embedder": load_embedder_modules, "reranker": load_reranker_modules, "sparse": load_sparse_modules,
            "multivector": load_multivector_modules}


class TorchEngine(Engine):
    """The ``nn.Sequential`` of a model on a device (see the module docstring)."""

    backend = "torch"

    def __init__(self, network: ModuleSequence, options: EngineOptions, family: str) -> None:
        from sentencekit.engines.torch_precision import apply_compute_dtype

        self.network = network
        self.family = family
        # All modules share the dtype of the first parameter (e.g. model_kwargs={"torch_dtype": bf16}).
        first = next(network.parameters(), None)
        if first is not None and first.is_floating_point():
            network.to(first.dtype)
        network.to(resolve_device(options.device))
        self._num_threads: int | None = None
        self.num_threads = options.num_threads
        self.compute_dtype = apply_compute_dtype(network, options.compute_dtype or "float32")
        self._prompt_lengths: dict[str, int] = {}

    @classmethod
    def from_spec(cls, spec: ModelSpec, family: str, options: EngineOptions) -> TorchEngine:
        modules, module_kwargs = _LOADERS[family](spec, options)
        return cls(ModuleSequence(modules, module_kwargs), options, family)

    # -- the pipeline's two steps ----------------------------------------------------------------------------
    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        first = self.network[0]
        if isinstance(first, Transformer):
            tokenized = first.tokenize_unpadded(items, task=task)
            if tokenized is not None:
                return tokenized
        return Tokenized.deferred(items)

    accepts_processing_kwargs = True

    def tokenize_with(self, items: list[Any], processing_kwargs: dict[str, Any], task: str | None = None) -> Tokenized:
        first = self.network[0]
        tokenized = first.tokenize_unpadded(items, task=task, processing_kwargs=processing_kwargs) \
            if isinstance(first, Transformer) else None
        if tokenized is None:
            raise ValueError("processing_kwargs per call needs a Transformer input module with a fast tokenizer.")
        return tokenized

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        kwargs = dict(kwargs or {})
        if task is not None:
            kwargs["task"] = task
        cut = None
        if tokenized.modality != "text":
            features = self.network.process_media([tokenized.items[i] for i in indices], tokenized.modality)
        elif tokenized.is_deferred:
            features = self.network.tokenize([tokenized.items[i] for i in indices], task=task)
            cut = features.pop("truncated", None)
        else:
            features = self.network[0].pad_features(tokenized, indices, task=task)
        device = self.device
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        if prompt_length:
            features["prompt_length"] = prompt_length
        with torch.inference_mode():
            out = self.network(features, **kwargs)
        result = self._select(out, outputs, len(indices))
        if cut is not None:
            result["truncated"] = cut.cpu().numpy()
        return result

    def _select(self, out: dict[str, Any], outputs: frozenset[str], n: int) -> dict[str, Any]:
        def wide(t: torch.Tensor) -> torch.Tensor:  # bf16 arithmetic, float32 results
            return t.float() if t.is_floating_point() and t.dtype.itemsize < 4 and self.compute_dtype == "bfloat16" \
                else t

        if self.family == "reranker":
            return {"scores": out["scores"].detach()}
        if self.family == "multivector" and "*" not in outputs:  # token vectors and the scoring mask
            return {"token_embeddings": wide(out["token_embeddings"].detach()), "attention_mask": out["attention_mask"]}
        if "*" in outputs:
            return {k: wide(v.detach()) for k, v in out.items()
                    if isinstance(v, torch.Tensor) and v.dim() and len(v) == n}
        result = {"sentence_embedding": wide(out["sentence_embedding"].detach())}
        if "token_embeddings" in outputs:
            if "token_embeddings" not in out:
                raise ValueError(f"This model has no token embeddings ({type(self.network[0]).__name__} gives only "
                                 "sentence embeddings): use output_value='sentence_embedding'.")
            result["token_embeddings"] = wide(out["token_embeddings"].detach())
            result["attention_mask"] = out["attention_mask"]
        return result

    def prepare(self, device: Any, kwargs: dict[str, Any]) -> None:
        unknown = set(kwargs) - self.network.get_model_kwargs() - {"task"}
        if unknown:
            raise ValueError(f"got unexpected keyword argument(s) {sorted(unknown)}; this model accepts "
                             f"{sorted(self.network.get_model_kwargs() | {'task'})} besides the standard ones.")
        if device is not None:
            target = resolve_device(device)
            if target != self.device:
                self.network.to(target)
        if any(m.training for m in self.network.modules()):  # a submodule left in train mode: dropout on
            self.network.eval()

    # -- what the model reports -------------------------------------------------------------------------------
    @property
    def message_format(self) -> str | None:  # type: ignore[override]
        first = self.network[0]
        return getattr(first, "message_format", None) if isinstance(first, Transformer) else None

    @property
    def modalities(self) -> tuple[str, ...]:  # type: ignore[override]
        first = self.network[0]
        return tuple(first.modalities) if isinstance(first, Transformer) else ("text",)

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def dtype(self) -> torch.dtype:
        return self.network.dtype

    @property
    def tokenizer(self) -> Any:
        first = self.network[0]
        if isinstance(first, Router):
            first = next(iter(first.sub_modules.values()))[0]
        return getattr(first, "tokenizer", None)

    @property
    def do_lower_case(self) -> bool:
        first = self.network[0]
        if isinstance(first, Router):
            first = next(iter(first.sub_modules.values()))[0]
        return bool(getattr(first, "do_lower_case", False))

    @property
    def max_seq_length(self) -> int | float | None:
        return getattr(self.network[0], "max_seq_length", None)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_seq_length must be a positive integer, got {value!r}")
        first = self.network[0]
        config = getattr(getattr(first, "auto_model", None), "config", None)
        limit = position_limit(config) if config is not None else None
        if limit is not None and value > limit:
            raise ValueError(f"max_seq_length={value} exceeds the model's {limit} position embeddings.")
        first.max_seq_length = value

    @property
    def num_threads(self) -> int:
        """CPU threads for inference (``torch.set_num_threads``, which is process-wide in torch)."""
        return self._num_threads or torch.get_num_threads()

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        check_num_threads(value)
        self._num_threads = value
        if value:
            torch.set_num_threads(value)

    @property
    def batch_tokens_per_text(self) -> int | None:  # type: ignore[override]
        """Padded tokens per text of ``batch_size`` a batch may hold when ``max_batch_tokens`` is not given:
        on CPUs 32 (128 with bf16 matrix products, which gain from bigger batches), measured on
        all-MiniLM-L6-v2; ``None`` (exactly ``batch_size`` texts per batch) on GPUs. Settable."""
        if getattr(self, "_batch_tokens_per_text", "unset") != "unset":
            return self._batch_tokens_per_text
        if self.device.type != "cpu":
            return None
        return 128 if self.compute_dtype == "bfloat16" or self.dtype == torch.bfloat16 else 32

    @batch_tokens_per_text.setter
    def batch_tokens_per_text(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"batch_tokens_per_text must be a positive integer or None, got {value!r}")
        self._batch_tokens_per_text = value

    def dimension(self) -> int | None:
        return self.modules_dimension(list(self.network))

    @staticmethod
    def modules_dimension(modules: list[nn.Module]) -> int | None:
        """Width of what a list of modules outputs: the last module that knows its width."""
        for module in reversed(modules):
            for name in ("get_sentence_embedding_dimension", "get_word_embedding_dimension"):
                method = getattr(module, name, None)
                if method is not None:
                    dim = method()
                    if dim is not None:
                        return int(dim)
        return None

    @property
    def include_prompt(self) -> bool:
        return not any(isinstance(m, Pooling) and not m.include_prompt for m in self.network.modules())

    def max_seq_length_for(self, task: str | None) -> Any:
        first = self.network[0]
        if isinstance(first, Router) and (task is not None or first.default_route is not None):
            return getattr(first.sub_modules[first._route(task)][0], "max_seq_length", None)
        if isinstance(first, Transformer):  # multi-vector models cut queries / documents at their own lengths
            return first.max_length_for(task)
        return self.max_seq_length

    def prompt_length(self, prompt: str, task: str | None = None) -> int:
        """Tokens the prompt adds (without a trailing special token), for ``include_prompt=False``."""
        key = f"{prompt}\0{task}"
        if key not in self._prompt_lengths:
            ids = self.network.tokenize([prompt], task=task)["input_ids"]
            length = int(ids.shape[-1])
            special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
            if length and int(ids[0, -1]) in special:
                length -= 1
            self._prompt_lengths[key] = length
        return self._prompt_lengths[key]

    @property
    def routes(self) -> tuple[str, ...]:
        names: list[str] = []
        for module in self.network.modules():
            if isinstance(module, Router):
                names += [r for r in module.sub_modules if r not in names]
        return tuple(names)

    def fingerprint(self) -> str:
        from sentencekit.fingerprint import network_fingerprint

        return network_fingerprint(self.network)

    def describe(self) -> str:
        return f"torch device={self.device}"


__all__ = ["TorchEngine", "ModuleSequence", "load_embedder_modules", "load_reranker_modules", "load_sparse_modules",
           "load_multivector_modules"]
