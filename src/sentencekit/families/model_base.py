"""What every model family (``SentenceTransformer``, ``CrossEncoder``) shares: finding the folder,
reading its spec, building the engine ``backend=`` names, the truncation report of the last call, the
multi-process pool, saving, and — on the torch engine — the ``nn.Sequential`` surface users and training
rely on (``model[0]``, ``model(features)``, ``model.to(...)``, ``model.parameters()``, ``state_dict``...).

The model classes are ordinary classes on every backend: ``type(SentenceTransformer(p, backend="onnx"))``
is ``SentenceTransformer``, subclasses keep their methods, and importing them loads no torch (only the
torch engine does).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sentencekit.engines import create_engine
from sentencekit.engines.protocol import Engine, EngineOptions
from sentencekit.pipeline.batching import EncodeInfo
from sentencekit.spec.model_spec import ModelSpec, read_spec

F = TypeVar("F", bound=Callable[..., Any])


def wants_pool(pool: Any, device: Any) -> bool:
    """Whether a call goes through worker processes: a pool was given, or a list of devices."""
    return pool is not None or (isinstance(device, list) and bool(device))


def pool_aware(method: F) -> F:
    """Make ``encode`` / ``predict`` run through worker processes when called with ``pool=...`` (or
    ``device=[...]``): the call's own arguments go to ``sentencekit.parallel`` unchanged, so every model
    class gets the multi-process path from this one place.

    >>> class Model:
    ...     @pool_aware
    ...     def encode(self, sentences, batch_size=32, device=None, pool=None, chunk_size=None):
    ...         return "one process"
    >>> Model().encode(["a"])
    'one process'
    """
    signature = inspect.signature(method)
    params = list(signature.parameters.values())
    first = params[1].name  # the inputs, after self
    var_keyword = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    # positional slots (after self) from which pool/device could be passed positionally
    positional = min((i - 1 for i, p in enumerate(params) if p.name in ("pool", "device")), default=len(params))

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) <= positional and not wants_pool(kwargs.get("pool"), kwargs.get("device")):
            return method(self, *args, **kwargs)  # the common call: no binding on the hot path
        bound = signature.bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        if not wants_pool(arguments.get("pool"), arguments.get("device")):
            return method(self, *args, **kwargs)
        from sentencekit.parallel import pooled_calls

        arguments.pop(params[0].name)
        inputs = arguments.pop(first, None)
        extra = arguments.pop(var_keyword, {}) if var_keyword else {}
        arguments.setdefault("pool", None)
        return pooled_calls.pooled_runner(self, method.__name__)(self, inputs, **arguments, **extra)

    return wrapper  # type: ignore[return-value]


def refuse_multivector(spec: ModelSpec, family: str, class_name: str) -> None:
    """``ModelFormatError`` when a multi-vector (ColBERT) folder, or a plain ``*ForRetrieval`` (ColPali-style)
    folder, is loaded by another family: one vector per text (or a pair score) from a model trained to be scored
    token by token would be silently wrong."""
    if family == "multivector":
        return
    from sentencekit.files import ModelFormatError
    from sentencekit.spec.multivector_source import is_retrieval_model

    if spec.is_multivector:
        raise ModelFormatError(f"{spec.folder} is a multi-vector (ColBERT-style, late-interaction) model, which gives "
                               f"one vector per token: load it with MultiVectorEncoder, not {class_name}.")
    if is_retrieval_model(spec):  # a plain ColPali-style folder: transformers' Auto classes would fail obscurely
        raise ModelFormatError(f"{spec.folder} is a *ForRetrieval late-interaction retriever (ColPali family), which "
                               f"gives one vector per token: load it with MultiVectorEncoder, not {class_name}.")


class Model:
    """The base of the model families (see the module docstring). A family sets :attr:`family` (the kind
    of engine output it turns into results) and :attr:`_info_attribute`."""

    family: ClassVar[str] = ""
    _info_attribute: ClassVar[str] = "last_info"
    #: whether image inputs given as http(s) URLs are fetched (with a timeout); off by default, so that encoding
    #: never reaches the network unasked. Set it on a model: ``model.allow_url_inputs = True``.
    allow_url_inputs: bool = False

    def _build(self, model_name_or_path: str | os.PathLike | None, modules: Any, *, backend: str,
               options: EngineOptions, cache_folder: str | None, revision: str | None, local_files_only: bool,
               token: bool | str | None) -> None:
        """Resolve the model, read its spec and build the engine of ``backend``."""
        self.model_name_or_path = None if model_name_or_path is None else os.fspath(model_name_or_path)
        self.model_folder: Path | None = None
        self.spec: ModelSpec | None = None
        self._local = threading.local()
        if modules is not None:
            if backend != "torch":
                raise ValueError(f"backend={backend!r} loads a saved model by name or path; modules=... needs "
                                 "backend='torch'.")
            from sentencekit.engines.torch_engine import ModuleSequence, TorchEngine

            self.engine: Engine = TorchEngine(ModuleSequence(modules), options, self.family)
            return
        if model_name_or_path is None:
            raise ValueError("Pass a model name or path, or a list of modules.")
        from sentencekit.hub import resolve_model

        self.model_folder = resolve_model(model_name_or_path, cache_folder=cache_folder, revision=revision,
                                          token=token, local_files_only=local_files_only).path
        self.spec = read_spec(self.model_folder)
        refuse_multivector(self.spec, self.family, type(self).__name__)
        self.engine = create_engine(backend, self.family, self.spec, options)

    # -- pickling (pool workers) --------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_local", None)  # thread-local reports do not travel
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # -- the last call's report -----------------------------------------------------------------------------------
    @property
    def last_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` / ``predict`` call made by this thread."""
        return getattr(self._local, "info", EncodeInfo())

    def _set_info(self, info: EncodeInfo) -> None:
        self._local.info = info

    # -- what the model takes ----------------------------------------------------------------------------------------
    @property
    def modalities(self) -> list[str]:
        """The input modalities the model encodes, as sentence-transformers' ``model.modalities``: ``["text"]``
        for text models, ``["text", "image"]`` for CLIP (see :mod:`sentencekit.pipeline.modality`)."""
        return list(self.engine.modalities)

    def supports(self, modality: str | tuple[str, ...]) -> bool:
        """Whether the model encodes ``modality`` (a name, or a tuple of names for one input combining them,
        which needs chat ``message`` support), as sentence-transformers' ``model.supports``."""
        from sentencekit.pipeline.modality import supports

        return supports(self.modalities, modality)

    # -- what runs the model ----------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``"torch"``, ``"openvino"`` or ``"onnx"`` (ONNX Runtime, or NumPy for static-embedding models)."""
        return self.engine.backend if self.engine.backend in ("torch", "openvino") else "onnx"

    @property
    def network(self) -> Any:
        """The torch ``nn.Sequential`` of modules (torch backend only): what training optimizes."""
        network = getattr(self.engine, "network", None)
        if network is None:
            raise TypeError(f"This {type(self).__name__} runs on {self.engine.backend} and has no torch modules; "
                            "load it with backend='torch' to train, save or inspect its modules.")
        return network

    @property
    def device(self) -> Any:
        return self.engine.device

    @property
    def dtype(self) -> Any:
        return getattr(self.engine, "dtype", "float32")

    @property
    def compute_dtype(self) -> str:
        return self.engine.compute_dtype

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of the input module (a Hugging Face tokenizer on torch, sentencekit's ``FastTokenizer``
        on ONNX Runtime, a ``tokenizers.Tokenizer`` for static models). Settable on the torch backend."""
        return self.engine.tokenizer

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self.network[0].tokenizer = value

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (ONNX backend; ``None`` for a NumPy static model), or on
        ``backend="openvino"`` the :class:`~sentencekit.engines.openvino_session.OpenVinoSession`."""
        return getattr(self.engine, "session", None)

    @property
    def max_seq_length(self) -> Any:
        """Longest input in tokens; longer inputs are cut and reported (``inf`` for static models)."""
        return self.engine.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.engine.max_seq_length = value

    @property
    def num_threads(self) -> int | None:
        """CPU threads for inference (torch intra-op threads, process-wide; or the ONNX Runtime session's)."""
        return self.engine.num_threads

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        self.engine.num_threads = value

    @property
    def batch_tokens_per_text(self) -> int | None:
        """Padded tokens per input of ``batch_size`` a batch may hold without ``max_batch_tokens`` (see
        :func:`sentencekit.pipeline.batching.resolve_batching`). Settable."""
        return self.engine.batch_tokens_per_text

    @batch_tokens_per_text.setter
    def batch_tokens_per_text(self, value: int | None) -> None:
        self.engine.batch_tokens_per_text = value

    def fingerprint(self) -> str:
        """The model's identity (weights, configs, tokenizer) as a stored index records it; a float32 ONNX
        export has the fingerprint of the torch model it came from."""
        return self.engine.fingerprint()

    def get_backend(self) -> str:
        """``"torch"``, ``"onnx"`` or ``"openvino"`` (as sentence-transformers' ``get_backend``)."""
        return self.backend

    def get_max_seq_length(self) -> Any:
        """The input length limit in tokens (``max_seq_length``)."""
        return self.max_seq_length

    def __bool__(self) -> bool:
        # a model is always truthy (``if model:``), whatever ``len()`` of its modules says or refuses to say
        return True

    # -- the torch modules (torch backend) ---------------------------------------------------------------------------
    def _first_module(self) -> Any:
        """The input module (``model[0]``)."""
        return self.network[0]

    def _last_module(self) -> Any:
        """The last module of the pipeline."""
        return self.network[-1]

    def __getitem__(self, index: Any) -> Any:
        return self.network[index]

    def __len__(self) -> int:
        return len(self.network)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.network)

    def __call__(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Run the modules on a tokenized batch (``features`` dict in, with outputs added, out)."""
        return self.network(features, **kwargs)

    forward = __call__

    def tokenize(self, texts: list[Any], **kwargs: Any) -> dict[str, Any]:
        """Tokenize a batch with the input module (padded tensors), as training's collator does: ``task=``
        picks the route / length limit, ``max_length=`` overrides the limit."""
        return self.network.tokenize(texts, task=kwargs.get("task"), max_length=kwargs.get("max_length"))

    def get_model_kwargs(self) -> set[str]:
        return self.network.get_model_kwargs()

    @property
    def module_kwargs(self) -> dict[str, list[str]]:
        return self.network.module_kwargs

    @property
    def training(self) -> bool:
        return bool(getattr(self.engine, "network", None) is not None and self.network.training)

    def to(self, *args: Any, **kwargs: Any) -> Model:
        self.network.to(*args, **kwargs)
        return self

    def cpu(self) -> Model:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Model:
        self.network.cuda(device)
        return self

    def half(self) -> Model:
        self.network.half()
        return self

    def float(self) -> Model:
        self.network.float()
        return self

    def bfloat16(self) -> Model:
        self.network.bfloat16()
        return self

    def train(self, mode: bool = True) -> Model:
        self.network.train(mode)
        return self

    def eval(self) -> Model:
        self.network.eval()
        return self

    def parameters(self, recurse: bool = True) -> Iterator[Any]:
        return self.network.parameters(recurse)

    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self.network.named_parameters(*args, **kwargs)

    def buffers(self, recurse: bool = True) -> Iterator[Any]:
        return self.network.buffers(recurse)

    def modules(self) -> Iterator[Any]:
        return self.network.modules()

    def named_modules(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self.network.named_modules(*args, **kwargs)

    def children(self) -> Iterator[Any]:
        return self.network.children()

    def named_children(self) -> Iterator[Any]:
        return self.network.named_children()

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.network.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.network.load_state_dict(state_dict, strict=strict, assign=assign)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.network.zero_grad(set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Model:
        self.network.requires_grad_(requires_grad)
        return self

    @property
    def _modules(self) -> dict[str, Any]:
        # read by accelerate / transformers.Trainer, which walk a model's submodules
        return self.network._modules

    def share_memory(self) -> Model:
        self.network.share_memory()
        return self

    # -- pools ----------------------------------------------------------------------------------------------------
    def start_multi_process_pool(self, target_devices: list[str] | None = None, *,
                                 threads_per_worker: int | None = None) -> Any:
        """Start worker processes that each hold this model, for ``encode(..., pool=pool)`` /
        ``predict(..., pool=pool)``.

        ``target_devices=None``: every CUDA device, else ``min(4, cores)`` CPU workers, each with
        ``cores // workers`` threads. Use it as a context manager, or stop it with
        :meth:`stop_multi_process_pool`.

        >>> with model.start_multi_process_pool(["cpu", "cpu"]) as pool:   # doctest: +SKIP
        ...     emb = model.encode(texts, pool=pool, chunk_size=500)
        """
        from sentencekit.parallel import start_multi_process_pool

        return start_multi_process_pool(self, target_devices, threads_per_worker=threads_per_worker)

    @staticmethod
    def stop_multi_process_pool(pool: Any) -> None:
        """Stop a pool from :meth:`start_multi_process_pool` (safe after a worker died)."""
        from sentencekit.parallel import stop_multi_process_pool

        stop_multi_process_pool(pool)

    # -- saving -------------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, model_name: str | None = None, create_model_card: bool = True,
             train_datasets: list[str] | None = None, safe_serialization: bool = True) -> None:
        """Save in the sentence-transformers format (loadable by sentence-transformers itself; torch backend;
        on ``backend="openvino"``: the loaded folder's files plus ``openvino/openvino_model.xml`` + ``.bin``).

        The folder is written beside the target and renamed into place: a failed save leaves an existing
        folder untouched; files a save does not own (notes, checkpoints) are kept.
        """
        if path is None:
            raise ValueError("save() needs a folder path.")
        from sentencekit.files import atomic_directory
        from sentencekit.format import is_foreign_entry

        save_folder = getattr(self.engine, "save_folder", None)
        if getattr(self.engine, "network", None) is None and save_folder is not None:
            # an engine without torch modules that can write its own folder (OpenVINO: source files + IR)
            with atomic_directory(path, keep=is_foreign_entry) as tmp:
                save_folder(tmp)
            return
        network = self.network

        with atomic_directory(path, keep=is_foreign_entry) as tmp:
            self._save_to(network, tmp, safe_serialization=safe_serialization)
            if create_model_card:
                from sentencekit.model_card import write_model_card

                write_model_card(self, tmp, model_name=model_name or self.model_name_or_path,
                                 train_datasets=train_datasets)

    def save_pretrained(self, path: str | os.PathLike, model_name: str | None = None, create_model_card: bool = True,
                        train_datasets: list[str] | None = None, safe_serialization: bool = True) -> None:
        """Alias of :meth:`save`."""
        self.save(path, model_name=model_name, create_model_card=create_model_card, train_datasets=train_datasets,
                  safe_serialization=safe_serialization)

    def _save_to(self, network: Any, folder: Path, *, safe_serialization: bool) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        network = getattr(self.engine, "network", None)
        if network is None:
            return f"{type(self).__name__}({self.engine.describe()})"
        lines = [f"  ({name}): {type(m).__name__}" for name, m in network.named_children()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class QueryDocumentEncoding:
    """``encode_query`` / ``encode_document`` of the families that embed texts (``SentenceTransformer``,
    ``SparseEncoder``): the model's query / document prompt, and the matching route of Router models.
    The class needs ``prompts``, ``engine`` and ``encode(inputs, prompt_name=..., **kwargs)``."""

    prompts: dict[str, str]
    engine: Engine

    def encode_query(self, sentences: Any, prompt_name: str | None = None, **kwargs: Any) -> Any:
        """``encode`` for search queries: the ``query`` prompt (if the model has one) and the ``query`` route
        of Router models."""
        if prompt_name is None and kwargs.get("prompt") is None and "query" in self.prompts:
            prompt_name = "query"
        self._set_task(kwargs, "query")
        return self.encode(sentences, prompt_name=prompt_name, **kwargs)  # type: ignore[attr-defined]

    def encode_document(self, sentences: Any, prompt_name: str | None = None, **kwargs: Any) -> Any:
        """``encode`` for documents: the first of the ``document`` / ``passage`` / ``corpus`` prompts the model
        has, and the ``document`` route of Router models."""
        from sentencekit.pipeline.prompts import DOCUMENT_PROMPT_NAMES

        if prompt_name is None and kwargs.get("prompt") is None:
            prompt_name = next((n for n in DOCUMENT_PROMPT_NAMES if n in self.prompts), None)
        self._set_task(kwargs, "document")
        return self.encode(sentences, prompt_name=prompt_name, **kwargs)  # type: ignore[attr-defined]

    def _set_task(self, kwargs: dict[str, Any], task: str) -> None:
        if "task" not in kwargs and task in self.engine.routes:
            kwargs["task"] = task


__all__ = ["Model", "QueryDocumentEncoding", "pool_aware", "wants_pool", "refuse_multivector"]
