from __future__ import annotations

import inspect
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from sentencekit.engines.protocol import Tokenized
from sentencekit.files import ModelFormatError, write_json
from sentencekit.modules._quiet import quiet_transformers
from sentencekit.modules.base import Module
from sentencekit.spec.model_spec import read_transformer_config

# What the wrapped transformer computes: token embeddings (embedders), class logits (rerankers) or
# masked-language-model logits over the vocabulary (SPLADE sparse encoders).
TASKS = ("feature-extraction", "sequence-classification", "fill-mask")
#: sentence-transformers 6.2's type string of its one Transformer class; written for tasks v5 cannot run
ST6_TYPE = "sentence_transformers.base.modules.transformer.Transformer"
#: what the forward call outputs and under which name, as sentence-transformers 6.2 records it
#: (``sentence_bert_config.json``), for the tasks saved in 6.2's layout
_ST6_OUTPUTS = {"fill-mask": ("logits", "token_embeddings")}

TextInput = str | tuple[str, str] | list[str]


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
    ) -> None:
        super().__init__()
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoModelForMaskedLM,
            AutoModelForSequenceClassification,
            AutoTokenizer,
            MT5EncoderModel,
            T5EncoderModel,
        )

        if transformer_task not in TASKS:
            raise ValueError(f"transformer_task must be one of {TASKS}, got {transformer_task!r}")
        self.transformer_task = transformer_task

        hub = {"cache_dir": cache_dir, "revision": revision, "local_files_only": local_files_only,
               "token": token, "trust_remote_code": trust_remote_code}
        self.do_lower_case = bool(do_lower_case)
        config = AutoConfig.from_pretrained(model_name_or_path, **hub, **(config_args or {}))
        if transformer_task == "sequence-classification":
            model_cls = AutoModelForSequenceClassification
        elif transformer_task == "fill-mask":
            model_cls = AutoModelForMaskedLM
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
        if max_seq_length is None:
            limits = [getattr(config, "max_position_embeddings", None), self.tokenizer.model_max_length]
            limits = [int(x) for x in limits if x is not None and 0 < x < 1_000_000]
            max_seq_length = min(limits) if limits else None
        self.max_seq_length = max_seq_length
        self._forward_params = set(inspect.signature(self.auto_model.forward).parameters)
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_tokenizer_lock", None)  # locks cannot be pickled; each copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokenizer_lock = threading.Lock()

    # -- tokenization ---------------------------------------------------------------------------
    def tokenize(self, texts: list[TextInput], padding: bool | str = True) -> dict[str, Any]:
        """Tokenize a batch: strings, or pairs (``(a, b)``) for cross-encoding.

        Adds ``truncated``: a bool tensor marking the texts that were longer than ``max_seq_length``.
        """
        columns = self._columns(texts)
        with self._tokenizer_lock:
            encoded = self.tokenizer(
                *columns,
                padding=padding,
                truncation="longest_first" if self.max_seq_length else False,
                return_tensors="pt",
                max_length=self.max_seq_length,
            )
            truncated = self._truncated_rows(encoded, columns)
        features = dict(encoded)
        features["truncated"] = truncated
        return features

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

    def tokenize_unpadded(self, texts: list[TextInput]) -> Tokenized | None:
        """Tokenize every text once without padding (ids, token types, lengths, truncation flags), so the
        pipeline plans batches on real token counts and pads each batch from these ids
        (:meth:`pad_features`); ``None`` for a slow (Python) tokenizer, which the pipeline then calls per
        batch through :meth:`tokenize`."""
        if not getattr(self.tokenizer, "is_fast", False) or not texts:
            return None
        columns = self._columns(texts)
        with self._tokenizer_lock:
            encoded = self.tokenizer(*columns, padding=False, truncation="longest_first" if self.max_seq_length
                                     else False, max_length=self.max_seq_length, return_attention_mask=False)
        encodings = encoded.encodings
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        type_ids = [np.asarray(e.type_ids, dtype=np.int64) for e in encodings]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        truncated = np.fromiter((bool(self.max_seq_length and e.overflowing) for e in encodings), dtype=bool,
                                count=len(ids))
        return Tokenized(list(texts), lengths, truncated, ids, type_ids)

    def pad_features(self, tokenized: Tokenized, indices: Any) -> dict[str, Tensor]:
        """The padded tensors of rows ``indices`` of :meth:`tokenize_unpadded`'s result, as the tokenizer
        pads them (its pad token, token type and side; only the inputs the tokenizer produces)."""
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        arrays = tokenized.pad(indices, pad_id=pad_id, pad_type_id=int(getattr(tok, "pad_token_type_id", 0) or 0),
                               padding_side=str(getattr(tok, "padding_side", "right") or "right"))
        names = set(getattr(tok, "model_input_names", arrays))
        return {k: torch.from_numpy(v) for k, v in arrays.items() if k in names or k == "attention_mask"}

    def _truncated_rows(self, encoded, columns: list[list[str]]) -> Tensor:
        n = len(columns[0])
        if not self.max_seq_length:
            return torch.zeros(n, dtype=torch.bool)
        encodings = getattr(encoded, "encodings", None)
        if encodings:  # fast tokenizer: the Rust side records what truncation cut off
            return torch.tensor([len(e.overflowing) > 0 for e in encodings], dtype=torch.bool)
        full = self.tokenizer(*columns, padding=False, truncation=False)["input_ids"]
        return torch.tensor([len(ids) > self.max_seq_length for ids in full], dtype=torch.bool)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        inputs = {k: v for k, v in features.items() if k in self._forward_params and isinstance(v, Tensor)}
        outputs = self.auto_model(**inputs, **kwargs, return_dict=True)
        if self.transformer_task == "sequence-classification":
            return {**features, "scores": outputs.logits}
        if self.transformer_task == "fill-mask":
            return {**features, "token_embeddings": outputs.logits}
        features = {**features, "token_embeddings": outputs[0]}
        if getattr(outputs, "hidden_states", None) is not None:  # config or output_hidden_states=True
            features["all_layer_embeddings"] = outputs.hidden_states
        return features

    def get_word_embedding_dimension(self) -> int:
        """Width of ``token_embeddings``: the hidden size, or the vocabulary size for ``fill-mask`` (whose
        token embeddings are MLM logits; sentence-transformers reports the hidden size there until the first
        forward)."""
        if self.transformer_task == "fill-mask":
            return int(self.auto_model.config.vocab_size)
        return int(self.auto_model.config.hidden_size)

    @property
    def st_type(self) -> str:  # type: ignore[override]
        """The ``modules.json`` type string: v5's for the tasks v5 runs, else 6.2's."""
        return ST6_TYPE if self.transformer_task == "fill-mask" else type(self).st_type_v5

    # -- persistence ----------------------------------------------------------------------------
    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case}
        if self.transformer_task != "feature-extraction":  # v5 readers reject unknown keys: only when needed
            config["transformer_task"] = self.transformer_task
        if self.transformer_task == "fill-mask":  # a 6.2-only save: 6.2's keys (it reads the two above too)
            method_output, module_output = _ST6_OUTPUTS[self.transformer_task]
            config["modality_config"] = {"text": {"method": "forward", "method_output_name": method_output}}
            config["module_output_name"] = module_output
        return config

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        output_path = Path(output_path)
        output_path.mkdir(parents=True, exist_ok=True)
        save_kwargs: dict[str, Any] = {}
        if "safe_serialization" in inspect.signature(self.auto_model.save_pretrained).parameters:
            save_kwargs["safe_serialization"] = safe_serialization  # transformers < 5 only
        with quiet_transformers():
            self.auto_model.save_pretrained(str(output_path), **save_kwargs)
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
                    "fill-mask": "a masked-language (SPLADE) model (load it with SparseEncoder)"}.get(
                task, f"a {task!r} model, which sentencekit does not support")
            raise ModelFormatError(f"{path} holds {kind}, but {wanted} was asked for.")

        def merged(saved_key: str, user: dict | None) -> dict:
            saved = dict(config.get(saved_key) or {})
            saved.pop("trust_remote_code", None)  # never switched on by a file
            return {**saved, **(user or {})}

        tokenizer_args = merged("tokenizer_args", tokenizer_kwargs)
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
        )


def _check_weights_present(path: Path) -> None:
    names = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
             "pytorch_model.bin.index.json")
    if not any((path / n).is_file() for n in names):
        raise ModelFormatError(
            f"Missing weights in {path}: expected one of {', '.join(names)}."
        )
