"""``CrossEncoder``: the reranker. Reads a (query, document) pair jointly and scores it; slow per pair,
precise, and meant for re-scoring a shortlist, never for scanning a corpus. The engine ``backend=`` names
computes the logits; the one predict pipeline (:mod:`sentencekit.pipeline.predict`) does the rest.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from sentencekit import __version__
from sentencekit._warnings import external_stacklevel
from sentencekit.engines.protocol import EngineOptions
from sentencekit.families.model_base import Model, pool_aware
from sentencekit.files import ModelFormatError
from sentencekit.pipeline.batching import EncodeInfo, as_input_list
from sentencekit.pipeline.predict import predict as run_predict
from sentencekit.pipeline.predict import ranked

Pair = tuple[str, str] | list[str]
_SIGMOID = "torch.nn.modules.activation.Sigmoid"
_IDENTITY = "torch.nn.modules.linear.Identity"


class CrossEncoder(Model):
    """Score text pairs with a cross-encoder (reranker).

    >>> from sentencekit import CrossEncoder
    >>> model = CrossEncoder("path/to/reranker")                                    # doctest: +SKIP
    >>> model.predict([("How do I get a refund?", "Refunds take 5 days."),
    ...                ("How do I get a refund?", "Paris is mild today.")])          # doctest: +SKIP
    array([0.93, 0.01], dtype=float32)
    >>> model.rank("How do I get a refund?", ["Refunds take 5 days.", "Paris is mild today."])  # doctest: +SKIP
    [{'corpus_id': 0, 'score': 0.93}, {'corpus_id': 1, 'score': 0.01}]

    Loads both sentence-transformers layouts (v5 Hugging Face ``*ForSequenceClassification`` folders, v6
    ``modules.json``). ``backend="onnx"`` runs the classifier on ONNX Runtime (``compute_dtype="int8"``
    for calibrated int8) and the activation in NumPy. ``activation_fn`` defaults to the saved one (Sigmoid
    for one label, else Identity).

    Generative rerankers (sentence-transformers 6.2): a causal language model scored by ``LogitScore``
    (``logit("yes") - logit("no")`` at the last position, then Sigmoid), saved as ``[Transformer(text-generation),
    LogitScore]``; a plain ``*ForCausalLM`` folder gets these modules with the tokenizer's ``yes`` / ``no`` ids.
    When the tokenizer has a chat template, each pair is rendered through it as a ``query`` and a ``document``
    message (a prompt becomes a system message; see :mod:`sentencekit.pipeline.chat_messages`). Torch backend only.
    ``prompts`` / ``default_prompt_name`` (and ``predict(prompt_name=..., prompt=...)``) work for every reranker:
    without a chat template the prompt is prepended to the first text of each pair.
    """

    family = "reranker"
    _info_attribute = "last_predict_info"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        num_labels: int | None = None,
        max_length: int | None = None,
        activation_fn: Callable[[Any], Any] | None = None,
        device: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        *,
        modules: list[Any] | None = None,
        backend: Literal["torch", "onnx"] = "torch",
        num_threads: int | None = None,
        compute_dtype: str | None = None,
        calibration_pairs: list[tuple[str, str]] | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
    ) -> None:
        self.trust_remote_code = trust_remote_code
        options = EngineOptions(device=device, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs,
                                tokenizer_kwargs=tokenizer_kwargs, config_kwargs=config_kwargs,
                                num_threads=num_threads, compute_dtype=compute_dtype, calibration=calibration_pairs,
                                num_labels=num_labels, max_length=max_length)
        self._build(model_name_or_path, modules, backend=backend, options=options, cache_folder=cache_folder,
                    revision=revision, local_files_only=local_files_only, token=token)
        if self.engine.backend == "torch":
            self._check_torch_modules()
            if max_length is not None and modules is not None:
                self.max_seq_length = max_length
        if self.engine.backend != "torch":  # read once: predict asks for it on every call
            hf = self.spec.hf_config if self.spec is not None else {}
            self._labels = int(self.engine.num_labels or num_labels or hf.get("num_labels")
                               or len(hf.get("id2label") or {}) or 1)
        self.activation_fn = activation_fn if activation_fn is not None else self._saved_activation()
        saved = self.spec.model_config if self.spec is not None and self.spec.model_type == "CrossEncoder" else {}
        self.prompts: dict[str, str] = {**{k: v for k, v in (saved.get("prompts") or {}).items() if v is not None},
                                        **(prompts or {})}
        self.default_prompt_name = default_prompt_name or saved.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}.")

    def _check_torch_modules(self) -> None:
        """A CrossEncoder is a sequence-classification Transformer alone, or a text-generation Transformer
        followed by LogitScore (a generative reranker); ``ModelFormatError`` otherwise."""
        from sentencekit.modules import LogitScore, Transformer

        network = self.network
        kinds = [type(m).__name__ for m in network]
        first = network[0] if len(network) else None
        if len(network) == 1 and isinstance(first, Transformer) and first.transformer_task == "sequence-classification":
            return
        if len(network) == 2 and isinstance(first, Transformer) and first.transformer_task == "text-generation" \
                and isinstance(network[1], LogitScore):
            return
        raise ModelFormatError("A CrossEncoder is a Transformer with transformer_task='sequence-classification', or "
                               "a Transformer with transformer_task='text-generation' followed by LogitScore; got "
                               f"{kinds}" + (f" (task {first.transformer_task!r})" if isinstance(first, Transformer)
                                             else "") + ".")

    @property
    def is_generative(self) -> bool:
        """Whether this reranker scores with a causal language model's next-token logits (LogitScore)."""
        if self.engine.backend != "torch":
            return False
        from sentencekit.modules import LogitScore

        return isinstance(self.network[-1], LogitScore)

    def _saved_activation_path(self) -> str | None:
        """The activation a saved model names: the ONNX export's record, the v6 model config, the v5
        ``config.json`` (``sentence_transformers.activation_fn``) or its legacy key."""
        recorded = getattr(self.engine, "saved_activation", None)
        if recorded:
            return recorded
        if self.spec is None:
            return None
        hf = self.spec.hf_config
        return (self.spec.model_config.get("activation_fn")
                or (hf.get("sentence_transformers") or {}).get("activation_fn")
                or hf.get("sbert_ce_default_activation_function"))

    def _saved_activation(self) -> Callable[[Any], Any]:
        """The saved activation (torch's own classes only, unless ``trust_remote_code``), else Sigmoid for
        one label and Identity otherwise; a NumPy function on the torch-free backend."""
        default = _SIGMOID if self.num_labels == 1 else _IDENTITY
        path = self._saved_activation_path()
        if self.engine.backend != "torch":
            from sentencekit.engines.numpy_ops import activation

            return activation(path or default)
        from sentencekit.modules.activations import resolve_activation

        if path:
            try:
                return resolve_activation(path, trust_remote_code=self.trust_remote_code)
            except ValueError as exc:
                warnings.warn(f"{exc} Using the default activation instead.", stacklevel=external_stacklevel())
        return resolve_activation(default)

    # -- properties -------------------------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The Hugging Face ``*ForSequenceClassification`` (or, for a generative reranker, ``*ForCausalLM``)
        model (torch backend)."""
        return self.network[0].auto_model

    @property
    def config(self) -> Any:
        """The Hugging Face config of the classifier (torch backend)."""
        return self.model.config

    @property
    def num_labels(self) -> int:
        """Scores per pair."""
        if self.engine.backend == "torch":
            return 1 if self.is_generative else int(self.config.num_labels)  # LogitScore: one score
        return self._labels

    @property
    def max_length(self) -> int | None:
        """Longest (query, document) pair in tokens; longer pairs are cut and reported."""
        return self.max_seq_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.max_seq_length = value

    @property
    def untrained_head(self) -> str | None:
        """Why this model's classification head is new (random weights, not in the checkpoint: the folder is
        an embedding model or a plain transformer), or ``None`` for a trained head. While it is set,
        ``predict`` / ``rank`` raise ``UntrainedHeadError``; ``CrossEncoderTrainer.train`` clears it, and
        setting it to ``None`` opts in to scoring with the random head. Every backend: on torch the mark
        lives on the Transformer module (so the trainer and pool workers see it), else it is read from the
        folder (``ModelSpec.untrained_head``)."""
        network = getattr(self.engine, "network", None)
        if network is not None and len(network):
            return getattr(network[0], "untrained_head", None)
        if "_untrained_head" in self.__dict__:
            return self.__dict__["_untrained_head"]
        return self.spec.untrained_head if self.spec is not None else None

    @untrained_head.setter
    def untrained_head(self, value: str | None) -> None:
        network = getattr(self.engine, "network", None)
        if network is not None and len(network):
            network[0].untrained_head = value or None
        else:
            self.__dict__["_untrained_head"] = value or None

    @property
    def last_predict_info(self) -> EncodeInfo:
        """Truncation report of the last ``predict`` call made by this thread."""
        return self.last_info

    # -- inference ----------------------------------------------------------------------------------------------------
    @pool_aware
    def predict(
        self,
        sentences: Pair | Sequence[Pair],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[Any], Any] | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str] | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        processing_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Score pairs. A list of N pairs gives ``[N]`` float32 scores (``[N, num_labels]`` for multi-label
        models); a single pair gives a scalar. Every pair is tokenized once and batched by token length;
        pairs longer than ``max_length`` are reported (``TruncationWarning``, ``model.last_predict_info``),
        never cut silently. Raises ``TypeError`` naming a bad input's index.

        >>> model.predict([("query", "relevant passage"), ("query", "other text")])  # doctest: +SKIP
        array([0.91, 0.02], dtype=float32)

        ``prompt_name`` / ``prompt`` pick an instruction (``model.prompts``; ``default_prompt_name`` when neither
        is given): a system message for a chat-template model, else prepended to each pair's first text.
        ``pool=model.start_multi_process_pool()`` spreads the pairs over worker processes in chunks of
        ``chunk_size`` (see ``sentencekit.parallel``). ``processing_kwargs`` overrides the model's for this call,
        as in sentence-transformers 6.2 (torch backend): ``{"chat_template": {...}}`` (template arguments,
        ``restore_suffix``) and ``{"text": {"max_length": n}}``. ``sentences`` may also be a
        :class:`~sentencekit.engines.protocol.Tokenized` of rows the model's own tokenization gave (prompt and
        chat template included, e.g. ``model.engine.tokenize(...)``), run without tokenizing again.
        """
        return run_predict(self, sentences, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                           show_progress_bar=show_progress_bar,
                           activation_fn=activation_fn, apply_softmax=apply_softmax, convert_to_numpy=convert_to_numpy,
                           convert_to_tensor=convert_to_tensor, device=device, max_batch_tokens=max_batch_tokens,
                           processing_kwargs=processing_kwargs)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Any = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        max_batch_tokens: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score ``documents`` against ``query``; best first: ``[{"corpus_id", "score"(, "text")}]``.
        (``convert_to_numpy`` / ``convert_to_tensor`` are accepted for compatibility: scores are floats.)

        >>> model.rank("How do I get a refund?", docs, top_k=3, return_documents=True)  # doctest: +SKIP
        [{'corpus_id': 2, 'score': 0.97, 'text': 'Refunds are paid within 5 days.'}, ...]
        """
        if self.num_labels != 1:
            raise ValueError(f"rank() needs a model with one output score; this one has num_labels={self.num_labels}. "
                             "Use predict() and pick the label you need.")
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str):
            raise TypeError("documents must be a list of strings, not a single string.")
        docs, _ = as_input_list(documents, what="documents")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        scores = self.predict([(query, d) for d in docs], prompt_name=prompt_name, prompt=prompt,
                              batch_size=batch_size, show_progress_bar=show_progress_bar,
                              activation_fn=activation_fn, apply_softmax=apply_softmax, convert_to_numpy=True,
                              device=device, max_batch_tokens=max_batch_tokens)
        return ranked(scores, docs, top_k, return_documents)

    # -- saving -------------------------------------------------------------------------------------------------------
    def _save_to(self, network: Any, folder: Path, *, safe_serialization: bool) -> None:
        """The sentence-transformers v5 CrossEncoder layout (a Hugging Face sequence-classification folder
        whose config.json names the activation), which v5 and v6 both load. A head that was never trained is
        recorded there (``sentence_transformers.untrained_head``), so loading the folder still refuses to score."""
        from sentencekit.modules.activations import activation_name

        if self.is_generative:
            self._save_v6(network, folder, safe_serialization=safe_serialization)
            return
        if self.prompts:
            warnings.warn("This reranker is saved in the sentence-transformers v5 layout (a Hugging Face "
                          "sequence-classification folder), which has no place for prompts: "
                          f"{sorted(self.prompts)} are not saved. Pass prompts={{...}} when loading it.",
                          stacklevel=external_stacklevel())
        transformer = network[0]
        # sentence-transformers takes the length limit from the tokenizer; ours is max_seq_length.
        transformer.tokenizer.model_max_length = transformer.max_seq_length
        meta = {"activation_fn": activation_name(self.activation_fn), "version": f"sentencekit-{__version__}"}
        if self.untrained_head:
            # Saving does not train the new head: the reloaded model must not pass for a reranker.
            meta["untrained_head"] = self.untrained_head
        self.config.sentence_transformers = meta
        transformer.save(folder, safe_serialization=safe_serialization)

    def _save_v6(self, network: Any, folder: Path, *, safe_serialization: bool) -> None:
        """sentence-transformers 6.2's CrossEncoder layout (what it writes for a generative reranker, which v5
        cannot run): the modules (``modules.json``; the Transformer in the root with ``generation_config.json``
        and ``chat_template.jinja``, ``1_LogitScore/config.json``) and ``config_sentence_transformers.json``."""
        from sentencekit.format import save_modules, write_model_config
        from sentencekit.modules.activations import activation_name

        transformer = network[0]
        # 6.2 reads the length limit from the tokenizer (a legacy max_seq_length is honoured too)
        transformer.tokenizer.model_max_length = transformer.max_seq_length
        save_modules(list(network), folder, safe_serialization=safe_serialization,
                     module_kwargs=getattr(network, "module_kwargs", None))
        write_model_config(folder, {"__version__": {"sentencekit": __version__}, "model_type": "CrossEncoder",
                                    "activation_fn": activation_name(self.activation_fn), "prompts": dict(self.prompts),
                                    "default_prompt_name": self.default_prompt_name})


__all__ = ["CrossEncoder"]
