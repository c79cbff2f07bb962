from __future__ import annotations

import inspect
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from sentencekit._warnings import external_stacklevel
from sentencekit.engines.protocol import Tokenized
from sentencekit.files import ModelFormatError, write_json
from sentencekit.modules._quiet import quiet_transformers
from sentencekit.modules.base import Module
from sentencekit.modules.causal_inputs import (
    causal_logits,
    chat_token_ids,
    check_processing_kwargs,
    refuse_query_expansion,
    split_message_config,
)
from sentencekit.pipeline.chat_messages import TemplateChecks, is_conversation
from sentencekit.pipeline.query_expansion import check_lengths, check_query_expansion, expand_queries, task_max_length
from sentencekit.spec.decoder_config import unsupported_attention_settings
from sentencekit.spec.model_spec import (
    TRANSFORMER_CONFIG_FILES,
    custom_modality_config,
    infer_modality_config,
    read_image_processor_config,
    read_transformer_config,
)

logger = logging.getLogger(__name__)

# What the wrapped transformer computes: token embeddings (embedders), class logits (rerankers) or
# masked-language-model logits over the vocabulary (SPLADE sparse encoders), or next-token logits of a causal
# language model (generative rerankers: LogitScore reads the last position).
# ``retrieval``: a transformers ``*ForRetrieval`` late-interaction retriever (ColPali, ColQwen2, ColModernVBert),
# whose forward already projects, L2-normalizes and zeroes padding (sentence-transformers 6.2's task of that name).
TASKS = ("feature-extraction", "sequence-classification", "fill-mask", "text-generation", "retrieval")
#: the tasks whose model reads the last position: inputs are left-padded and must end in a real token
CAUSAL_TASKS = ("text-generation",)
#: the tasks whose text inputs go through the tokenizer's chat template when the model has one (a fresh load, or
#: a saved ``modality_config`` with ``message``); sentencekit leaves classification and fill-mask models as text
MESSAGE_TASKS = ("feature-extraction", *CAUSAL_TASKS)
#: sentence-transformers 6.2's type string of its one Transformer class; written for tasks v5 cannot run
ST6_TYPE = "sentence_transformers.base.modules.transformer.Transformer"
#: what the forward call outputs and under which name, as sentence-transformers 6.2 records it
#: (``sentence_bert_config.json``), for the tasks saved in 6.2's layout
_ST6_OUTPUTS = {"fill-mask": ("logits", "token_embeddings"), "sequence-classification": ("logits", "scores"),
                "feature-extraction": ("last_hidden_state", "token_embeddings"),
                "text-generation": ("logits", "causal_logits"), "retrieval": ("embeddings", "token_embeddings")}
#: a retriever's default modalities (6.2's ``TRANSFORMER_TASK_DEFAULTS["retrieval"]``): queries as text, pages
#: as images, both through ``forward`` (the processor has already rendered the query prefix / visual prompt)
RETRIEVAL_MODALITIES = {"text": {"method": "forward", "method_output_name": "embeddings"},
                        "image": {"method": "forward", "method_output_name": "embeddings"}}
#: sentence-transformers 6.2's bookkeeping features, never passed to a ``forward(**kwargs)``
#: (its ``_NON_MODEL_FEATURE_KEYS``, plus sentencekit's ``truncated``)
_NON_MODEL_FEATURES = frozenset({"modality", "num_images_per_sample", "num_videos_per_sample", "prompt_length",
                                 "query_expansion_positions", "task", "offset_mapping", "overflow_to_sample_mapping",
                                 "special_tokens_mask", "truncated"})
#: multi-vector (ColBERT) settings: per-task input lengths and query expansion (6.2 keys, saved when set)
MULTIVECTOR_KEYS = ("query_length", "document_length", "query_expansion")

TextInput = str | tuple[str, str] | list[str]
#: the processor of each non-text modality, by the attribute transformers' processors hold it under
_PROCESSOR_ATTRIBUTES = {"image": "image_processor"}


def _text_config(config: Any) -> Any:
    """The config of the text tower (a dual encoder's ``text_config``), else the config itself."""
    return getattr(config, "text_config", None) or config


#: model types whose position ids start after ``padding_idx`` (transformers' ``create_position_ids_from_input_ids``):
#: ``pad_token_id + 1`` of their ``max_position_embeddings`` are never usable (XLM-R: 514 embeddings, 512 tokens)
_PADDING_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"})


def position_limit(config: Any) -> int | None:
    """The text positions a transformer embeds (``max_position_embeddings``, a dual encoder's text tower's; less
    the offset of RoBERTa-style position ids, so a tokenizer without ``model_max_length`` cannot overrun them)."""
    text = _text_config(config)
    limit = getattr(config, "max_position_embeddings", None) or getattr(text, "max_position_embeddings", None)
    if limit and getattr(text, "model_type", None) in _PADDING_OFFSET_POSITIONS:
        limit = int(limit) - int(getattr(text, "pad_token_id", None) or 0) - 1
    return int(limit) if limit else None


def retrieval_model_class(config: Any) -> Any:
    """The ``*ForRetrieval`` class of ``config`` (``ColPaliForRetrieval``, ``ColQwen2ForRetrieval``...):
    transformers' retrieval mapping, else the class its ``architectures`` names (transformers has no
    ``AutoModelForRetrieval`` and its mapping misses ``colqwen2``: 6.2's ``_resolve_retrieval_model_class``).
    Raises ``ModelFormatError`` when neither resolves (e.g. a remote-code retriever: not supported)."""
    import transformers

    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_RETRIEVAL_MAPPING

        return MODEL_FOR_RETRIEVAL_MAPPING[type(config)]
    except (ImportError, KeyError):
        pass
    for architecture in getattr(config, "architectures", None) or []:
        model_class = getattr(transformers, architecture, None)
        if model_class is not None:
            return model_class
    raise ModelFormatError(f"No transformers *ForRetrieval class for model_type {config.model_type!r} "
                           f"(architectures {getattr(config, 'architectures', None)}): transformer_task='retrieval' "
                           "loads transformers' own ColPali / ColQwen2 / ColModernVBert classes (remote-code "
                           "retrievers such as ColQwen3 are not supported).")


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _normalize_model_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(model_kwargs)
    dtype = kwargs.pop("torch_dtype", None)
    if dtype is not None:
        # transformers 5 renamed torch_dtype to dtype; users of sentence-transformers pass the old name.
        kwargs.setdefault("dtype" if _transformers_major() >= 5 else "torch_dtype", dtype)
    for key in ("dtype", "torch_dtype"):
        if isinstance(kwargs.get(key), str) and kwargs[key] != "auto":
            kwargs[key] = getattr(torch, kwargs[key])
    return kwargs


class Transformer(Module):
    """A Hugging Face transformer and its tokenizer. With ``transformer_task="feature-extraction"``
    (embedders) it adds ``token_embeddings`` ``[b, tokens, hidden]`` to the features; with
    ``"sequence-classification"`` (cross-encoders) the classifier's logits as ``scores``; with
    ``"fill-mask"`` (SPLADE sparse encoders, ``AutoModelForMaskedLM``) the masked-LM logits
    ``[b, tokens, vocab]`` as ``token_embeddings`` (what ``SpladePooling`` pools), as sentence-transformers
    6.2 does. A fill-mask Transformer is saved with 6.2's type string and config keys (v5 has no such task).

    Multi-vector (ColBERT) settings, 6.2's: ``query_length`` / ``document_length`` cut inputs encoded with
    ``task="query"`` / ``"document"``; ``query_expansion`` (``{"strategy": "fixed" | "min", "attend",
    "token", "length"}``) pads queries with mask tokens (see :mod:`sentencekit.pipeline.query_expansion`).
    A Transformer with any of them is saved with 6.2's type string and keys. Setting them checks them:
    ``ValueError`` for a ``query_length`` below the expansion length, an expansion token that is not in the
    vocabulary (or none at all: no mask and no EOS token), or ``attend=False`` on flash-attention-2.

    Modalities (6.2's ``modality_config``: modality -> ``{"method", "method_output_name"}``, plus
    ``module_output_name``): the default runs text through ``forward`` (``token_embeddings``). A CLIP-style dual
    encoder (CLIP, Radford et al. 2021) runs ``get_text_features`` on texts and ``get_image_features`` on
    images and writes their ``pooler_output`` (the projected ``[b, projection_dim]`` embedding) as
    ``sentence_embedding``, so no pooling follows; without a ``modality_config`` that one is inferred for a CLIP
    folder with an image processor (:func:`~sentencekit.spec.model_spec.infer_modality_config`). Images are
    processed by the model's Hugging Face image processor (:meth:`process_media`; Pillow needed:
    ``pip install "sentencekit[image]"``); the features of an image batch carry ``"modality": "image"``, which
    ``forward`` dispatches on. Saved with 6.2's type string and keys.

    ``transformer_task="retrieval"``: a transformers ``*ForRetrieval`` late-interaction retriever (ColPali,
    ColQwen2, ColModernVBert; :func:`retrieval_model_class`) and its processor, whose tokenizer becomes the
    module's. Texts (always rendered as queries: :meth:`tokenize`) and images (pages: :meth:`process_media`) run
    through the processor's ``process_queries`` / ``process_images`` and ``forward``, whose ``embeddings``
    ``[b, tokens, embedding_dim]`` float32 (already projected, L2-normalized, zero on padding) become
    ``token_embeddings``, as in 6.2 (ColPali: Faysse et al., "ColPali: Efficient Document Retrieval with Vision
    Language Models", 2024). ``ValueError`` for ``query_expansion`` (the processor appends the augmentation).

    >>> t = Transformer("sentence-transformers/all-MiniLM-L6-v2")    # doctest: +SKIP
    >>> features = t.tokenize(["Hello world"])                     # doctest: +SKIP
    >>> t(features)["token_embeddings"].shape                        # doctest: +SKIP
    torch.Size([1, 4, 384])
    """

    st_type_v5: ClassVar[str] = "sentence_transformers.models.Transformer"
    config_file_name = "sentence_bert_config.json"
    config_keys = ["max_seq_length", "do_lower_case"]
    save_in_root = True

    def __init__(
        self,
        model_name_or_path: str,
        max_seq_length: int | None = None,
        model_args: dict[str, Any] | None = None,
        tokenizer_args: dict[str, Any] | None = None,
        config_args: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        do_lower_case: bool = False,
        tokenizer_name_or_path: str | None = None,
        *,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        transformer_task: str = "feature-extraction",
        query_length: int | None = None,
        document_length: int | None = None,
        query_expansion: dict[str, Any] | None = None,
        modality_config: dict[str, dict[str, str]] | None = None,
        module_output_name: str | None = None,
        processing_kwargs: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoModelForCausalLM,
            AutoModelForMaskedLM,
            AutoModelForSequenceClassification,
            AutoTokenizer,
            MT5EncoderModel,
            T5EncoderModel,
        )
        from transformers import __version__ as transformers_version

        if transformer_task == "any-to-any":
            raise ValueError("transformer_task='any-to-any' (multimodal generative models) is not supported by "
                             "sentencekit; text-only causal language models load with 'text-generation'.")
        if transformer_task not in TASKS:
            raise ValueError(f"transformer_task must be one of {TASKS}, got {transformer_task!r}")
        self.transformer_task = transformer_task

        hub = {"cache_dir": cache_dir, "revision": revision, "local_files_only": local_files_only,
               "token": token, "trust_remote_code": trust_remote_code}
        self.do_lower_case = bool(do_lower_case)
        config = AutoConfig.from_pretrained(model_name_or_path, **hub, **(config_args or {}))
        for message in unsupported_attention_settings(config.to_dict(), transformers_version):
            warnings.warn(message, stacklevel=external_stacklevel())
        if transformer_task == "sequence-classification":
            model_cls = AutoModelForSequenceClassification
        elif transformer_task == "fill-mask":
            model_cls = AutoModelForMaskedLM
        elif transformer_task == "text-generation":
            model_cls = AutoModelForCausalLM
        elif transformer_task == "retrieval":
            model_cls = retrieval_model_class(config)
        else:
            model_cls = {"t5": T5EncoderModel, "mt5": MT5EncoderModel}.get(config.model_type, AutoModel)
        with quiet_transformers():
            self.auto_model = model_cls.from_pretrained(
                model_name_or_path, config=config, **hub, **_normalize_model_kwargs(model_args or {})
            )
        tokenizer_kwargs = dict(tokenizer_args or {})
        self.tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_name_or_path or model_name_or_path, **hub, **tokenizer_kwargs
        )
        self.processing_kwargs = check_processing_kwargs(processing_kwargs)
        #: the chat-message format ("flat" / "structured") when inputs go through the chat template, else None
        self.message_format: str | None = None
        if transformer_task in CAUSAL_TASKS:
            # the last position must be a real token for logits_to_keep=1 and LogitScore (as 6.2 forces it)
            self.tokenizer.padding_side = "left"
        self._template_checks = TemplateChecks()
        if modality_config is None and transformer_task == "feature-extraction":
            local = Path(str(model_name_or_path))
            has_images = read_image_processor_config(local) is not None if local.is_dir() else \
                getattr(config, "vision_config", None) is not None
            modality_config = infer_modality_config(config.to_dict(), has_images)
            module_output_name = "sentence_embedding" if modality_config is not None else module_output_name
        if transformer_task == "retrieval":
            if query_expansion is not None:
                raise ValueError("query_expansion does not apply to a *ForRetrieval model: its processor appends "
                                 "the query augmentation tokens itself.")
            if modality_config is None:
                modality_config = {m: dict(e) for m, e in RETRIEVAL_MODALITIES.items()}
                module_output_name = module_output_name or "token_embeddings"
            #: whether text passed as a document was warned about (once per module, as 6.2 warns once)
            self._warned_text_document = False
        if transformer_task in MESSAGE_TASKS:
            # 6.2 adds a `message` modality whenever a fresh load's tokenizer has a chat template: embedders
            # (decoder LLMs) too, not only generative rerankers (model-families.md, section 5)
            modality_config, self.message_format = split_message_config(
                modality_config, getattr(self.tokenizer, "chat_template", None), config.model_type)
        self._set_modality_config(modality_config, module_output_name)
        #: transformers' combined processor (tokenizer + image processor) of a multimodal model, which is what
        #: saves ``processor_config.json``; ``None`` for text models
        self.processor: Any = None
        self.processors: dict[str, Any] = {}
        if any(m != "text" for m in self.modalities):
            self._load_processors(tokenizer_name_or_path or model_name_or_path, hub)
        if max_seq_length is None:
            limits = [position_limit(config), self.tokenizer.model_max_length]
            limits = [int(x) for x in limits if x is not None and 0 < x < 1_000_000]
            max_seq_length = min(limits) if limits else None
        self.max_seq_length = max_seq_length
        forward_signature = inspect.signature(self.auto_model.forward).parameters
        self._forward_params = set(forward_signature)
        self._forward_takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in forward_signature.values())
        # each modality method's argument names, and whether it takes return_dict (by name or **kwargs)
        self._method_params: dict[str, tuple[set[str], bool]] = {}
        for method in self._methods():
            params = inspect.signature(getattr(self.auto_model, method)).parameters
            takes_dict = "return_dict" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
            self._method_params[method] = (set(params), takes_dict)
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        self._query_expansion: dict[str, Any] | None = None
        check_lengths(query_length, document_length, None)
        self.query_length = query_length
        self.document_length = document_length
        self.query_expansion = query_expansion

    @property
    def uses_chat_template(self) -> bool:
        """Whether text inputs are rendered through the tokenizer's chat template (see
        :mod:`sentencekit.pipeline.chat_messages`)."""
        return self.message_format is not None

    @property
    def logits_to_keep(self) -> int:
        """Positions whose logits a causal model returns (``processing_kwargs["text"]["logits_to_keep"]``,
        default 1; 0 = all), as 6.2 sends it."""
        return int((self.processing_kwargs.get("text") or {}).get("logits_to_keep", 1))

    # -- multi-vector settings ------------------------------------------------------------------
    @property
    def query_expansion(self) -> dict[str, Any] | None:
        """ColBERT query expansion (``None``: off); see the class docstring. Checked when set."""
        return self._query_expansion

    @query_expansion.setter
    def query_expansion(self, value: dict[str, Any] | None) -> None:
        expansion = check_query_expansion(value)
        check_lengths(getattr(self, "query_length", None), getattr(self, "document_length", None), expansion)
        if expansion is not None:
            if not expansion["attend"] and getattr(self.auto_model.config, "_attn_implementation", None) == \
                    "flash_attention_2":
                raise ValueError("query_expansion with attend=False cannot run on flash-attention-2, which drops the "
                                 "positions the encoder does not attend to (the expansion tokens MaxSim scores). Load "
                                 "with attn_implementation='sdpa', or set attend=True (which changes the model).")
            self._expansion_token_id(expansion)  # raises for a token the vocabulary lacks
        self._query_expansion = expansion

    def _expansion_token_id(self, expansion: dict[str, Any]) -> int:
        tok = self.tokenizer
        if expansion["token"] is None:
            token_id = tok.mask_token_id if tok.mask_token_id is not None else tok.eos_token_id
            if token_id is None:
                raise ValueError("query_expansion with token=None uses the tokenizer's mask token, else its EOS token, "
                                 "but this tokenizer has neither: name one, query_expansion={..., 'token': '...'}.")
            return int(token_id)
        token_id = tok.convert_tokens_to_ids(expansion["token"])
        if token_id is None or (token_id == tok.unk_token_id and expansion["token"] != tok.unk_token):
            raise ValueError(f"query_expansion token {expansion['token']!r} is not in this tokenizer's vocabulary: "
                             "name a token it has (BERT-style models use '[MASK]').")
        return int(token_id)

    @property
    def expansion_token_id(self) -> int | None:
        """The id query expansion writes (``None`` without expansion)."""
        return None if self._query_expansion is None else self._expansion_token_id(self._query_expansion)

    @property
    def is_multivector(self) -> bool:
        """Whether any multi-vector setting is set (then the module is saved in 6.2's layout)."""
        return any(getattr(self, key) is not None for key in MULTIVECTOR_KEYS)

    def max_length_for(self, task: str | None, override: int | None = None) -> int | None:
        """The length inputs of ``task`` are cut at: ``query_length`` / ``document_length`` / the expansion
        length (see :func:`sentencekit.pipeline.query_expansion.task_max_length`), else ``max_seq_length``;
        ``override`` (training's ``max_length``) replaces it, except for expanded queries."""
        return task_max_length(task, max_seq_length=self.max_seq_length, query_length=self.query_length,
                               document_length=self.document_length, expansion=self._query_expansion,
                               override=override)

    # -- modalities -------------------------------------------------------------------------------
    def _set_modality_config(self, modality_config: dict[str, dict[str, str]] | None,
                             module_output_name: str | None) -> None:
        """Check and keep a ``modality_config`` (``None``, or text through ``forward``: the task's default)."""
        modality_config = custom_modality_config(modality_config)
        if modality_config is None:
            self.modality_config: dict[str, dict[str, str]] | None = None
            self.module_output_name = module_output_name or _ST6_OUTPUTS[self.transformer_task][1]
            return
        if not module_output_name:
            raise ValueError("A custom modality_config needs module_output_name (e.g. 'sentence_embedding').")
        for modality, entry in modality_config.items():
            if modality != "text" and modality not in _PROCESSOR_ATTRIBUTES:
                raise ValueError(f"modality_config lists {modality!r}; sentencekit encodes "
                                 f"{', '.join(['text', *_PROCESSOR_ATTRIBUTES])}.")
            if not isinstance(entry, dict) or not hasattr(self.auto_model, entry.get("method", "")):
                raise ValueError(f"modality_config[{modality!r}] = {entry!r} names no method of "
                                 f"{type(self.auto_model).__name__}.")
        self.modality_config = {m: dict(e) for m, e in modality_config.items()}
        self.module_output_name = module_output_name

    @property
    def modalities(self) -> list[str]:
        """The modalities this module encodes, in its ``modality_config``'s order (``["text"]`` by default)."""
        return list(self.modality_config) if self.modality_config else ["text"]

    @property
    def is_multimodal(self) -> bool:
        """Whether a ``modality_config`` is set (then the module is saved in 6.2's layout)."""
        return self.modality_config is not None

    def _methods(self) -> list[str]:
        return sorted({e["method"] for e in (self.modality_config or {}).values()})

    def _load_processors(self, name: str, hub: dict[str, Any]) -> None:
        from transformers import AutoProcessor

        from sentencekit.pipeline.modality import require_pillow

        require_pillow()  # transformers' image processors need it; say which extra provides it
        processor = AutoProcessor.from_pretrained(name, **hub)
        if self.transformer_task == "retrieval":
            if not all(hasattr(processor, m) for m in ("process_queries", "process_images")):
                raise ModelFormatError(f"{name}: the processor {type(processor).__name__} has no process_queries / "
                                       "process_images, which a *ForRetrieval model's processor (ColPaliProcessor, "
                                       "ColQwen2Processor...) has: save the model's own processor with it.")
            # a retriever's processor configures its tokenizer (ColPali's adds <image> and turns the automatic
            # BOS off, rendering it in the text): that one is the module's, as in 6.2 (``processor.tokenizer``)
            self.tokenizer = processor.tokenizer
        else:
            processor.tokenizer = self.tokenizer  # one tokenizer: the module's (loaded with its tokenizer kwargs)
        for modality in self.modalities:
            if modality == "text":
                continue
            part = getattr(processor, _PROCESSOR_ATTRIBUTES[modality], None)
            if part is None:
                raise ModelFormatError(f"{name} has no {modality} processor ({_PROCESSOR_ATTRIBUTES[modality]}), but "
                                       f"its modality_config lists {modality}: add the processor files (e.g. "
                                       "processor_config.json or preprocessor_config.json).")
            self.processors[modality] = part
        self.processor = processor

    def process_media(self, items: list[Any], modality: str) -> dict[str, Any]:
        """The features of a batch of loaded media (:func:`sentencekit.pipeline.modality.load_batch`) by the
        model's processor for ``modality``: images -> ``pixel_values`` ``[b, 3, H, W]`` float32 (resized,
        cropped, rescaled and normalized as the model's image processor says), plus ``"modality"``."""
        processor = self.processors.get(modality)
        if processor is None:
            raise ValueError(f"This model encodes {', '.join(self.modalities)}, not {modality}.")
        if self.transformer_task == "retrieval":
            # the whole processor: a page is its image tokens in the visual prompt (input_ids, attention_mask,
            # token types; ColQwen2 also image_grid_thw), with 6.2's text settings. process_images is
            # transformers' page API: ColPali's / ColQwen2's is their __call__(images=...), what 6.2 calls;
            # ColModernVBert's also renders the visual prompt, which its bare __call__ leaves out (6.2 fails there)
            features = dict(self.processor.process_images(items, padding=True, truncation="longest_first",
                                                          return_tensors="pt"))
        else:
            features = dict(processor(images=items, return_tensors="pt"))
        return {**features, "modality": modality}

    def _retrieval_text_features(self, texts: list[TextInput], task: str | None,
                                 max_length: int | None = None) -> dict[str, Any]:
        """A retriever's text batch through its processor, as sentence-transformers 6.2 runs it: always rendered
        as a query (ColPali: ``<bos>Question: {text}`` + 10 pad tokens as augmentation + a newline; ColQwen2:
        ``Query: {text}`` + 10 augmentation tokens + a newline; ColModernVBert: ``{text}`` + 10
        ``<end_of_utterance>``; transformers' ``process_queries``), padded to the longest, cut at ``max_length``
        (training's), else ``query_length`` / ``document_length`` when set, else at the tokenizer's limit. Text
        passed with another task than ``"query"`` is logged once, as 6.2 does: these models take documents as
        images."""
        if task is not None and task != "query" and not self._warned_text_document:
            self._warned_text_document = True
            logger.warning("This retrieval model's processor always renders text as a query, but task=%r was "
                           "requested: these inputs get the query prefix and augmentation tokens. *ForRetrieval "
                           "models expect image documents.", task)
        limit = max_length or {"query": self.query_length, "document": self.document_length}.get(str(task))
        text_kwargs: dict[str, Any] = {"padding": True, "truncation": "longest_first"}
        if limit is not None:
            text_kwargs["max_length"] = limit
        with self._tokenizer_lock:
            # process_queries is transformers' query API: ColPali's / ColQwen2's is their __call__(text=...), what
            # 6.2 calls; ColModernVBert's also appends the augmentation tokens its bare __call__ leaves out
            features = dict(self.processor.process_queries([str(t) for t in texts], **text_kwargs,
                                                           return_tensors="pt"))
        # the processor renders around each text, so a cut is not told apart from a fit: nothing is reported
        features["truncated"] = torch.zeros(len(texts), dtype=torch.bool)
        return {**features, "modality": "text"}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_tokenizer_lock", None)  # locks cannot be pickled; each copy gets its own
        state.pop("_template_checks", None)  # caches with a lock: rebuilt
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokenizer_lock = threading.Lock()
        self._template_checks = TemplateChecks()

    # -- tokenization ---------------------------------------------------------------------------
    def tokenize(self, texts: list[TextInput], padding: bool | str = True, task: str | None = None,
                 max_length: int | None = None) -> dict[str, Any]:
        """Tokenize a batch: strings, or pairs (``(a, b)``) for cross-encoding; ``task`` picks the length limit
        (:meth:`max_length_for`; ``max_length``, e.g. training's, overrides it) and expands queries
        (``query_expansion``).

        Adds ``truncated``: a bool tensor marking the texts that were longer than the limit.
        """
        if self.transformer_task == "retrieval":
            return self._retrieval_text_features(texts, task, max_length)
        limit = self.max_length_for(task, max_length)
        if self.uses_chat_template or (texts and is_conversation(texts[0])):
            ids, truncated = self._chat_ids(texts, task, limit)
            with self._tokenizer_lock:
                padded = self.tokenizer.pad({"input_ids": ids}, padding=padding, return_tensors="pt")
            return {**dict(padded), "truncated": torch.tensor(truncated, dtype=torch.bool)}
        columns = self._columns(texts)
        with self._tokenizer_lock:
            encoded = self.tokenizer(
                *columns,
                padding=padding,
                truncation="longest_first" if limit else False,
                return_tensors="pt",
                max_length=limit,
            )
            truncated = self._truncated_rows(encoded, columns, limit)
        features = self._expanded(dict(encoded), task)
        features["truncated"] = truncated
        return features

    def _expanded(self, features: dict[str, Any], task: str | None) -> dict[str, Any]:
        """Padded query features with expansion tokens (``query_expansion``); others unchanged."""
        if task != "query" or self._query_expansion is None or "input_ids" not in features:
            return features
        arrays = {k: v.numpy() for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        expanded = expand_queries(arrays, self._query_expansion, self.expansion_token_id)
        return {**features, **{k: torch.from_numpy(v) for k, v in expanded.items()}}

    def _columns(self, texts: list[TextInput]) -> list[list[str]]:
        if texts and isinstance(texts[0], dict):  # legacy Asym input: {"query": text}
            texts = [next(iter(t.values())) for t in texts]
        if texts and isinstance(texts[0], (tuple, list)):
            columns = [[str(t[0]) for t in texts], [str(t[1]) for t in texts]]
        else:
            columns = [[str(t) for t in texts]]
        if self.do_lower_case:
            columns = [[s.lower() for s in col] for col in columns]
        return columns

    def merged_processing_kwargs(self, per_call: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The module's ``processing_kwargs`` with a call's on top, per key (6.2's shallow per-key merge). A call
        may set ``{"chat_template": {...}}`` (render arguments, ``restore_suffix``) and ``{"text": {"max_length":
        n}}``; anything else raises ``ValueError`` (sentencekit does not pass other tokenizer arguments)."""
        per_call = check_processing_kwargs(per_call)
        unsupported = sorted(set(per_call.get("text", {})) - {"max_length"}) + \
            sorted(k for k in per_call if k not in ("text", "chat_template"))
        if unsupported:
            raise ValueError(f"processing_kwargs per call: sentencekit reads {{'chat_template': {{...}}, 'text': "
                             f"{{'max_length': n}}}}; got {unsupported}. Set other processing on the model.")
        keys = set(self.processing_kwargs) | set(per_call)
        return {k: {**self.processing_kwargs.get(k, {}), **per_call.get(k, {})} for k in keys}

    def _chat_ids(self, items: list[Any], task: str | None, limit: int | None,
                  processing: dict[str, dict[str, Any]] | None = None) -> tuple[list[list[int]], list[bool]]:
        """Token ids and truncation flags of ``items`` through the chat template
        (:func:`~sentencekit.modules.causal_inputs.chat_token_ids`), with this module's (or a call's merged)
        ``processing_kwargs``. Expanded queries are refused
        (:func:`~sentencekit.modules.causal_inputs.refuse_query_expansion`)."""
        if task == "query" and self._query_expansion is not None:
            refuse_query_expansion()
        source = processing if processing is not None else self.processing_kwargs
        name = getattr(self.auto_model.config, "name_or_path", None) or "this model"
        return chat_token_ids(self.tokenizer, items, fmt=self.message_format,
                              settings=dict(source.get("chat_template") or {}), task=task, limit=limit,
                              checks=self._template_checks, lock=self._tokenizer_lock, name=name)

    def tokenize_unpadded(self, texts: list[TextInput], task: str | None = None,
                          processing_kwargs: dict[str, Any] | None = None) -> Tokenized | None:
        """Tokenize every text once without padding (ids, token types, lengths, truncation flags at the
        limit of ``task``, :meth:`max_length_for`), so the pipeline plans batches on real token counts and
        pads each batch from these ids (:meth:`pad_features`); ``None`` for a slow (Python) tokenizer, which
        the pipeline then calls per batch through :meth:`tokenize`. ``processing_kwargs``: a call's
        (:meth:`merged_processing_kwargs`)."""
        if not texts or self.transformer_task == "retrieval":
            return None  # a retriever's processor renders each text around it: tokenized per batch (tokenize)
        processing = self.merged_processing_kwargs(processing_kwargs)
        limit = processing.get("text", {}).get("max_length") or self.max_length_for(task)
        if self.uses_chat_template or is_conversation(texts[0]):
            ids, truncated = self._chat_ids(texts, task, limit, processing)
            arrays = [np.asarray(row, dtype=np.int64) for row in ids]
            lengths = np.fromiter((len(x) for x in arrays), dtype=np.int64, count=len(arrays))
            return Tokenized(list(texts), lengths, np.asarray(truncated, dtype=bool), arrays,
                             [np.zeros_like(x) for x in arrays])
        if not getattr(self.tokenizer, "is_fast", False):
            if processing_kwargs:
                raise ValueError("processing_kwargs per call needs a fast tokenizer (a tokenizer.json).")
            return None
        columns = self._columns(texts)
        with self._tokenizer_lock:
            encoded = self.tokenizer(*columns, padding=False, truncation="longest_first" if limit else False,
                                     max_length=limit, return_attention_mask=False)
        encodings = encoded.encodings
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        type_ids = [np.asarray(e.type_ids, dtype=np.int64) for e in encodings]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        truncated = np.fromiter((bool(limit and e.overflowing) for e in encodings), dtype=bool, count=len(ids))
        return Tokenized(list(texts), lengths, truncated, ids, type_ids)

    def pad_features(self, tokenized: Tokenized, indices: Any, task: str | None = None) -> dict[str, Tensor]:
        """The padded tensors of rows ``indices`` of :meth:`tokenize_unpadded`'s result, as the tokenizer
        pads them (its pad token, token type and side; only the inputs the tokenizer produces); queries
        (``task="query"``) get their expansion tokens when ``query_expansion`` is set."""
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        arrays = tokenized.pad(indices, pad_id=pad_id, pad_type_id=int(getattr(tok, "pad_token_type_id", 0) or 0),
                               padding_side=str(getattr(tok, "padding_side", "right") or "right"))
        names = set(getattr(tok, "model_input_names", arrays))
        arrays = {k: v for k, v in arrays.items() if k in names or k == "attention_mask"}
        if task == "query" and self._query_expansion is not None:
            arrays = expand_queries(arrays, self._query_expansion, self.expansion_token_id)
        return {k: torch.from_numpy(v) for k, v in arrays.items()}

    def _truncated_rows(self, encoded, columns: list[list[str]], limit: int | None) -> Tensor:
        n = len(columns[0])
        if not limit:
            return torch.zeros(n, dtype=torch.bool)
        encodings = getattr(encoded, "encodings", None)
        if encodings:  # fast tokenizer: the Rust side records what truncation cut off
            return torch.tensor([len(e.overflowing) > 0 for e in encodings], dtype=torch.bool)
        full = self.tokenizer(*columns, padding=False, truncation=False)["input_ids"]
        return torch.tensor([len(ids) > limit for ids in full], dtype=torch.bool)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.modality_config is not None:
            return self._forward_modality(features, kwargs)
        inputs = {k: v for k, v in features.items() if k in self._forward_params and isinstance(v, Tensor)}
        if "use_cache" in self._forward_params and "use_cache" not in kwargs:
            # a decoder's key/value cache serves generating further tokens, which embedding and scoring never
            # do: building it only costs memory (sentence-transformers 6.2 switches it off too)
            inputs["use_cache"] = False
        if self.transformer_task in CAUSAL_TASKS:
            keep = self.logits_to_keep if "logits_to_keep" in self._forward_params else None
            logits = causal_logits(self.auto_model, inputs, kwargs, logits_to_keep=keep,
                                   padding_side=str(self.tokenizer.padding_side))
            return {**features, "causal_logits": logits}
        outputs = self.auto_model(**inputs, **kwargs, return_dict=True)
        if self.transformer_task == "sequence-classification":
            return {**features, "scores": outputs.logits}
        if self.transformer_task == "fill-mask":
            return {**features, "token_embeddings": outputs.logits}
        features = {**features, "token_embeddings": outputs[0]}
        if getattr(outputs, "hidden_states", None) is not None:  # config or output_hidden_states=True
            features["all_layer_embeddings"] = outputs.hidden_states
        return features

    def _forward_modality(self, features: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``modality_config``'s method for the batch's modality, its output field as ``module_output_name``
        (a 4-D ``[b, c, h, w]`` output as ``[b, h * w, c]``, as sentence-transformers does)."""
        modality = features.get("modality", "text")
        entry = self.modality_config.get(modality) if self.modality_config else None
        if entry is None:
            raise ValueError(f"This model encodes {', '.join(self.modalities)}, not {modality}.")
        params, takes_dict = self._method_params[entry["method"]]
        if entry["method"] == "forward" and self._forward_takes_kwargs:
            # 6.2 passes a forward(**kwargs) every feature but its bookkeeping: ColPali's PaliGemma needs the
            # processor's token_type_ids (its bidirectional prefix), which the named parameters leave out
            inputs = {k: v for k, v in features.items() if k not in _NON_MODEL_FEATURES and isinstance(v, Tensor)}
        else:
            inputs = {k: v for k, v in features.items() if k in params and isinstance(v, Tensor)}
        if takes_dict:
            kwargs = {**kwargs, "return_dict": True}
        out = getattr(self.auto_model, entry["method"])(**inputs, **kwargs)
        # transformers 4 returns the projected tensor itself; 5 an output object holding it
        value = out if isinstance(out, Tensor) else out[entry["method_output_name"]]
        if value.dim() == 4:
            value = value.flatten(2).transpose(1, 2)
        return {**features, self.module_output_name: value}

    def get_sentence_embedding_dimension(self) -> int | None:
        """Width of ``sentence_embedding`` when this module outputs it (a dual encoder: ``projection_dim``),
        else ``None`` (a pooling module after it decides)."""
        if self.module_output_name != "sentence_embedding":
            return None
        dim = getattr(self.auto_model.config, "projection_dim", None)
        return int(dim) if dim else None

    def get_word_embedding_dimension(self) -> int:
        """Width of ``token_embeddings``: the hidden size, or the vocabulary size for ``fill-mask`` (whose
        token embeddings are MLM logits; sentence-transformers reports the hidden size there until the first
        forward)."""
        if self.transformer_task == "fill-mask":
            return int(self.auto_model.config.vocab_size)
        if self.transformer_task == "retrieval":  # the head projects to embedding_dim (6.2 reads the same key)
            return int(self.auto_model.config.embedding_dim)
        return int(_text_config(self.auto_model.config).hidden_size)

    @property
    def _st6_only(self) -> bool:
        """Whether sentence-transformers v5 cannot run this module (a fill-mask task, multi-vector settings, a
        ``modality_config``)."""
        return self.transformer_task in ("fill-mask", *CAUSAL_TASKS) or self.is_multivector or self.is_multimodal \
            or self.uses_chat_template

    @property
    def st_type(self) -> str:  # type: ignore[override]
        """The ``modules.json`` type string: v5's for what v5 runs, else 6.2's."""
        return ST6_TYPE if self._st6_only else type(self).st_type_v5

    # -- persistence ----------------------------------------------------------------------------
    def get_config_dict(self) -> dict[str, Any]:
        if self.is_multimodal or self.uses_chat_template or self.transformer_task in CAUSAL_TASKS:
            return self._multimodal_config()
        config: dict[str, Any] = {"max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case}
        if self._st6_only:  # v5 readers reject unknown keys: only when needed; 6.2 reads the two above too
            method_output, module_output = _ST6_OUTPUTS[self.transformer_task]
            config["transformer_task"] = self.transformer_task
            config["modality_config"] = {"text": {"method": "forward", "method_output_name": method_output}}
            config["module_output_name"] = module_output
        elif self.transformer_task != "feature-extraction":
            config["transformer_task"] = self.transformer_task
        for key in MULTIVECTOR_KEYS:  # written only when set, as 6.2 does
            if getattr(self, key) is not None:
                config[key] = dict(getattr(self, key)) if key == "query_expansion" else getattr(self, key)
        return config

    def _multimodal_config(self) -> dict[str, Any]:
        """sentence-transformers 6.2's keys, exactly what it writes for a CLIP module or a causal LM (with its
        ``message`` entry and ``processing_kwargs`` when set); a length limit or lower-casing only when set (6.2
        reads both as legacy keys)."""
        if self.modality_config is not None:
            modality_config = {m: dict(e) for m, e in self.modality_config.items()}
        else:
            method_output = _ST6_OUTPUTS[self.transformer_task][0]
            modality_config = {"text": {"method": "forward", "method_output_name": method_output}}
            if self.message_format is not None:
                modality_config["message"] = {"method": "forward", "method_output_name": method_output,
                                              "format": self.message_format}
        config: dict[str, Any] = {"transformer_task": self.transformer_task, "modality_config": modality_config,
                                  "module_output_name": self.module_output_name}
        if self.processing_kwargs:
            config["processing_kwargs"] = {k: dict(v) for k, v in self.processing_kwargs.items()}
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if self.max_seq_length is not None and self.max_seq_length != tokenizer_limit:
            config["max_seq_length"] = self.max_seq_length
        if self.do_lower_case:
            config["do_lower_case"] = True
        return config

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        output_path = Path(output_path)
        output_path.mkdir(parents=True, exist_ok=True)
        save_kwargs: dict[str, Any] = {}
        if "safe_serialization" in inspect.signature(self.auto_model.save_pretrained).parameters:
            save_kwargs["safe_serialization"] = safe_serialization  # transformers < 5 only
        with quiet_transformers():
            self.auto_model.save_pretrained(str(output_path), **save_kwargs)
        if self.processor is not None:
            # the combined processor writes processor_config.json and the tokenizer files, as 6.2 saves CLIP;
            # the module's tokenizer is the one saved (it may have been replaced since loading)
            self.processor.tokenizer = self.tokenizer
            with quiet_transformers():
                self.processor.save_pretrained(str(output_path))
        else:
            self.tokenizer.save_pretrained(str(output_path))
        write_json(output_path / self.config_file_name, self.get_config_dict(), indent=4)

    @classmethod
    def read_module_config(cls, path: str | os.PathLike) -> dict[str, Any]:
        """The saved module config (``sentence_bert_config.json`` or an older sibling name), ``{}`` if none."""
        return read_transformer_config(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        transformer_task: str = "feature-extraction",
        accept_tasks: tuple[str, ...] | None = None,
        saved_task: str | None = None,
        **hub_kwargs: Any,
    ) -> Transformer:
        """Load a saved Transformer. Its task is the saved ``transformer_task``, else ``saved_task`` (what a
        legacy type string implies, e.g. ``MLMTransformer`` -> ``fill-mask``), else ``transformer_task``; it
        must be one of ``accept_tasks`` (default: ``transformer_task`` only), or ``ModelFormatError`` says
        which model class loads it."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelFormatError(f"Missing transformer config file: {path / 'config.json'}")
        config = cls.read_module_config(path)
        task = config.get("transformer_task") or saved_task or transformer_task
        if task not in (accept_tasks or (transformer_task,)):
            wanted = {"feature-extraction": "an embedding model", "sequence-classification": "a reranker",
                      "fill-mask": "a sparse encoder"}.get(transformer_task, transformer_task)
            kind = {"feature-extraction": "an embedding model (load it with SentenceTransformer)",
                    "sequence-classification": "a reranker (load it with CrossEncoder)",
                    "fill-mask": "a masked-language (SPLADE) model (load it with SparseEncoder)",
                    "text-generation": "a generative (causal-LM) reranker (load it with CrossEncoder)",
                    "retrieval": "a *ForRetrieval late-interaction retriever (load it with MultiVectorEncoder)"}.get(
                task, f"a {task!r} model, which sentencekit does not support")
            raise ModelFormatError(f"{path} holds {kind}, but {wanted} was asked for.")

        def merged(saved_key: str, user: dict | None) -> dict:
            saved = dict(config.get(saved_key) or {})
            saved.pop("trust_remote_code", None)  # never switched on by a file
            return {**saved, **(user or {})}

        tokenizer_args = merged("tokenizer_args", tokenizer_kwargs)
        modality = cls._saved_modality_config(path, config)
        max_seq_length = config.get("max_seq_length")
        processing = config.get("processing_kwargs") or {}
        if max_seq_length is None and isinstance(processing.get("text"), dict):
            max_seq_length = processing["text"].get("max_length")
        _check_weights_present(path)
        return cls(
            str(path),
            max_seq_length=max_seq_length,
            model_args=merged("model_args", model_kwargs),
            tokenizer_args=tokenizer_args,
            config_args=merged("config_args", config_kwargs),
            do_lower_case=bool(config.get("do_lower_case", False)),
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            transformer_task=task,
            processing_kwargs=config.get("processing_kwargs") or None,
            **modality,
            **{key: config[key] for key in MULTIVECTOR_KEYS if config.get(key) is not None},
        )

    @classmethod
    def _saved_modality_config(cls, path: Path, config: dict[str, Any]) -> dict[str, Any]:
        """``modality_config`` / ``module_output_name`` to load with: the saved ones; the text default for a
        saved module without them (6.2 does not infer again); nothing (infer) for a folder with no module
        config (a plain Hugging Face folder)."""
        saved = custom_modality_config(config.get("modality_config"))
        if saved is not None:
            return {"modality_config": saved, "module_output_name": config.get("module_output_name")}
        if config or any((path / name).is_file() for name in TRANSFORMER_CONFIG_FILES):
            return {"modality_config": {"text": {"method": "forward"}}}  # the text default: not inferred again
        return {}


def _check_weights_present(path: Path) -> None:
    names = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
             "pytorch_model.bin.index.json")
    if not any((path / n).is_file() for n in names):
        raise ModelFormatError(
            f"Missing weights in {path}: expected one of {', '.join(names)}."
        )
