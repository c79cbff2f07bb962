"""One validated description of a model folder, read once and without torch.

Every consumer reads a folder through :func:`read_spec`: the torch engine (which modules to build), the
ONNX Runtime and NumPy engines (what the pipeline after the transformer is), the index fingerprint, the
CLI and the server. The folder layouts it understands:

- a sentence-transformers folder (``modules.json`` + per-module configs + ``config_sentence_transformers.json``),
  v5 and v6 type strings alike, for embedders and (v6) cross-encoders;
- a model2vec folder (a static token table);
- a plain Hugging Face transformer folder (``config.json``): an embedder gets mean pooling (last-token pooling
  for a causal LM, :mod:`sentencekit.spec.decoder_config`), a cross-encoder is the v5 layout; a CLIP-style
  dual encoder (text and vision towers and an image processor) embeds texts and images with
  ``get_text_features`` / ``get_image_features`` and no pooling (:func:`infer_modality_config`), as
  sentence-transformers 6.2 does;
- sentence-transformers' CLIP layouts: v5's ``0_CLIPModel/`` module and 6.2's root ``Transformer`` with a
  ``modality_config`` (see :attr:`ModelSpec.modality_config`).

>>> spec = read_spec("my-model")                                    # doctest: +SKIP
>>> spec.module_kinds, spec.pooling_modes, spec.normalize
(['Transformer', 'Pooling', 'Normalize'], ('mean',), True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sentencekit.files import ModelFormatError, read_json, read_json_if_exists
from sentencekit.model2vec import is_model2vec_folder, model2vec_normalizes
from sentencekit.spec.decoder_config import default_pooling_mode

MODULES_FILE = "modules.json"
MODEL_CONFIG_FILE = "config_sentence_transformers.json"
ROUTER_CONFIG_FILE = "router_config.json"
#: the Transformer module's config, by the names sentence-transformers has written over the years
TRANSFORMER_CONFIG_FILES = ("sentence_bert_config.json", "sentence_roberta_config.json",
                            "sentence_distilbert_config.json", "sentence_xlm-roberta_config.json")
#: what a Dense config without ``activation_function`` means (sentence-transformers' default: Tanh)
DEFAULT_DENSE_ACTIVATION = "torch.nn.modules.activation.Tanh"
#: legacy class names that are another kind (sentence-transformers 5.x's ``MLMTransformer`` is a fill-mask
#: ``Transformer``, its ``CLIPModel`` a Transformer over a CLIP folder; their folders are read like any
#: Transformer's)
_KIND_ALIASES = {"MLMTransformer": "Transformer", "CLIPModel": "Transformer"}
#: what sentence-transformers 6.2 runs for CLIP-style models (its ``CLIPModel`` default and its inference for
#: dual encoders): one method per modality, whose ``pooler_output`` is the projected embedding
DUAL_ENCODER_MODALITY_CONFIG = {
    "text": {"method": "get_text_features", "method_output_name": "pooler_output"},
    "image": {"method": "get_image_features", "method_output_name": "pooler_output"},
}
#: the model types a plain folder of is inferred as a dual encoder (verified: CLIP; vision-language models with a
#: text and a vision config, LLaVA-style, are not dual encoders)
DUAL_ENCODER_MODEL_TYPES = ("clip",)
#: where an image processor's settings are saved: transformers 5's processor file (nested under
#: ``image_processor``) and the older flat file
PROCESSOR_CONFIG_FILE = "processor_config.json"
PREPROCESSOR_CONFIG_FILE = "preprocessor_config.json"
#: module kinds only sparse encoders have (a folder holding one is a ``SparseEncoder``)
SPARSE_KINDS = frozenset({"SpladePooling", "SparseStaticEmbedding", "SparseAutoEncoder"})
#: module kinds only multi-vector (ColBERT) encoders have (a folder holding one is a ``MultiVectorEncoder``)
MULTIVECTOR_KINDS = frozenset({"MultiVectorMask", "HierarchicalTokenPooling", "LambdaTokenPooling"})
#: ``model_type`` values of multi-vector saves: sentence-transformers 6.2's, and PyLate <= 3's
MULTIVECTOR_MODEL_TYPES = ("MultiVectorEncoder", "ColBERT")
#: type strings of other libraries whose modules are sentence-transformers' own (PyLate's Dense is ST's Dense)
FOREIGN_KINDS = {"pylate.models.Dense.Dense": "Dense"}
#: module kinds that have no folder of their own to read (``Normalize`` may be saved without one)
_FOLDERLESS = {"Normalize"}

_POOL_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
              "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
              "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
POOLING_ORDER = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_POOL_ALIASES = {"cls_token": "cls", "max_tokens": "max", "mean_tokens": "mean", "last_token": "lasttoken",
                 "weighted_mean": "weightedmean", "mean_sqrt_len": "mean_sqrt_len_tokens"}


def module_kind(type_str: str) -> str | None:
    """The class name a ``modules.json`` type string names, for sentence-transformers' and sentencekit's
    own strings of every generation (v5 ``sentence_transformers.models.Pooling``, v6 ``sentence_transformers.
    sentence_transformer.modules.pooling.Pooling``); ``None`` for custom code (any other package).

    >>> module_kind("sentence_transformers.models.Pooling"), module_kind("my_pkg.layers.Fancy")
    ('Pooling', None)
    """
    if str(type_str) in FOREIGN_KINDS:
        return FOREIGN_KINDS[str(type_str)]
    parts = str(type_str).split(".")
    if parts[0] not in ("sentence_transformers", "sentencekit"):
        return None
    return _KIND_ALIASES.get(parts[-1], parts[-1])


def parse_pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """Pooling modes of a Pooling config, in the order the outputs are concatenated (``pooling_mode``
    strings or lists, or the ``pooling_mode_*`` booleans); mean when none is set."""
    if config.get("pooling_mode") is not None:
        raw = config["pooling_mode"]
        modes = {_POOL_ALIASES.get(m, m) for m in ([raw] if isinstance(raw, str) else raw)}
    else:
        modes = {mode for key, mode in _POOL_KEYS.items() if config.get(key)}
    return tuple(m for m in POOLING_ORDER if m in modes) or ("mean",)


def read_transformer_config(path: str | os.PathLike) -> dict[str, Any]:
    """The Transformer module's own config in ``path`` (``sentence_bert_config.json`` or a sibling name);
    ``{}`` when there is none."""
    for name in TRANSFORMER_CONFIG_FILES:
        file = Path(path) / name
        if file.is_file():
            config = read_json(file, what="Transformer config")
            if not isinstance(config, dict):
                raise ModelFormatError(f"{file}: expected a JSON object.")
            return config
    return {}


def default_max_length(path: str | os.PathLike) -> int | None:
    """The length limit a transformer folder gets when no ``max_seq_length`` is saved: the smaller of its
    position embeddings (a dual encoder's text tower's) and its tokenizer's ``model_max_length`` (as
    sentence-transformers does)."""
    config = read_json_if_exists(Path(path) / "config.json") or {}
    tconf = read_json_if_exists(Path(path) / "tokenizer_config.json") or {}
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    limits = [config.get("max_position_embeddings", text.get("max_position_embeddings")),
              tconf.get("model_max_length")]
    limits = [int(x) for x in limits if isinstance(x, (int, float)) and 0 < x < 1_000_000]
    return min(limits) if limits else None


#: the files transformers reads a tokenizer's chat template from, besides ``tokenizer_config.json``'s key
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def has_chat_template(path: str | os.PathLike) -> bool:
    """Whether the tokenizer saved in ``path`` has a chat template (``tokenizer_config.json``'s
    ``chat_template``, or a ``chat_template.jinja`` / ``.json`` file), read without transformers."""
    folder = Path(path)
    if any((folder / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return True
    tconf = read_json_if_exists(folder / "tokenizer_config.json") or {}
    return isinstance(tconf, dict) and bool(tconf.get("chat_template"))


def read_image_processor_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The image processor settings saved in a transformer folder (``processor_config.json``'s
    ``image_processor``, else a ``preprocessor_config.json`` that describes an image processor), or ``None``."""
    folder = Path(path)
    processor = read_json_if_exists(folder / PROCESSOR_CONFIG_FILE, what="processor")
    if isinstance(processor, dict) and isinstance(processor.get("image_processor"), dict):
        return processor["image_processor"]
    flat = read_json_if_exists(folder / PREPROCESSOR_CONFIG_FILE, what="processor")
    if isinstance(flat, dict) and ("image_processor_type" in flat or "image_mean" in flat):
        return flat
    return None


def custom_modality_config(saved: Any) -> dict[str, Any] | None:
    """A saved ``modality_config`` when it is more than the default (text through ``forward``), else ``None``."""
    if not isinstance(saved, dict) or not saved:
        return None
    text_forward = set(saved) == {"text"} and (saved["text"] or {}).get("method", "forward") == "forward"
    return None if text_forward else saved


def infer_modality_config(hf_config: dict[str, Any], has_image_processor: bool) -> dict[str, Any] | None:
    """The ``modality_config`` of a fresh load (no saved one), as sentence-transformers 6.2 infers it for the
    models sentencekit runs: a dual encoder of :data:`DUAL_ENCODER_MODEL_TYPES` (a ``text_config`` and a
    ``vision_config``) with an image processor gets :data:`DUAL_ENCODER_MODALITY_CONFIG` (output
    ``sentence_embedding``, no pooling); anything else ``None`` (text through ``forward``, the default).
    sentence-transformers infers from the model's methods, for any model type; other dual encoders (SigLIP, ...)
    load here with an explicit ``Transformer(..., modality_config=..., module_output_name=...)``, untested."""
    if has_image_processor and hf_config.get("model_type") in DUAL_ENCODER_MODEL_TYPES and \
            isinstance(hf_config.get("text_config"), dict) and isinstance(hf_config.get("vision_config"), dict):
        return {k: dict(v) for k, v in DUAL_ENCODER_MODALITY_CONFIG.items()}
    return None


@dataclass(frozen=True)
class ModuleEntry:
    """One module of the pipeline: its ``modules.json`` entry, resolved.

    ``kind`` is the class name for sentence-transformers' own module types (``Transformer``, ``Pooling``,
    ...) and ``None`` for custom code; ``path`` is absolute; ``config`` is the module's own JSON config
    where the spec needs it (Transformer, Pooling, Dense), else ``{}``.
    """

    index: int
    name: str
    type: str
    kind: str | None
    path: Path
    kwargs: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DenseSpec:
    """A ``Dense`` module as the torch-free engines apply it."""

    path: Path
    in_features: int
    out_features: int
    bias: bool
    activation: str
    config: dict[str, Any]


@dataclass(frozen=True)
class RouterSpec:
    """A ``Router`` (``Asym``) module: the modules of each route (by route name) and its parameters."""

    index: int
    path: Path
    routes: dict[str, tuple[ModuleEntry, ...]]
    default_route: str | None
    allow_empty_key: bool


@dataclass(frozen=True)
class ModelSpec:
    """A model folder as every part of sentencekit sees it (see the module docstring).

    ``layout`` is ``"sentence-transformers"``, ``"model2vec"`` or ``"transformers"`` (a plain Hugging Face
    folder); ``model_type`` is what ``config_sentence_transformers.json`` says (``SentenceTransformer`` or
    ``CrossEncoder``); ``model_config`` is that file's content (prompts, similarity function...).
    """

    folder: Path
    layout: str
    model_type: str
    modules: tuple[ModuleEntry, ...]
    model_config: dict[str, Any] = field(default_factory=dict)
    router: RouterSpec | None = None
    route_name: str | None = None

    # -- what the pipeline is ----------------------------------------------------------------------------
    @property
    def module_kinds(self) -> list[str]:
        """The pipeline's module class names (custom code shows its type string)."""
        return [e.kind or e.type for e in self.modules]

    def first(self, kind: str) -> ModuleEntry | None:
        return next((e for e in self.modules if e.kind == kind), None)

    @property
    def is_static(self) -> bool:
        """A static-embedding model (a token table averaged per text: model2vec or ``StaticEmbedding``)."""
        return self.layout == "model2vec" or (bool(self.modules) and self.modules[0].kind == "StaticEmbedding")

    @property
    def transformer_folder(self) -> Path:
        """The folder of the Hugging Face transformer (its ``config.json`` and tokenizer files)."""
        entry = self.first("Transformer")
        return entry.path if entry is not None else self.folder

    @property
    def transformer_config(self) -> dict[str, Any]:
        entry = self.first("Transformer")
        return entry.config if entry is not None else read_transformer_config(self.folder)

    @property
    def modality_config(self) -> dict[str, Any] | None:
        """What the input module runs per modality (sentence-transformers 6.2's ``modality_config``), when it
        takes more than text through ``forward``: the saved one; sentence-transformers 5's ``CLIPModel`` module
        (which saved none) and a plain dual-encoder folder get :data:`DUAL_ENCODER_MODALITY_CONFIG`. ``None``
        for text models (also a saved module without one: it is not inferred again, as in 6.2)."""
        entry = self.first("Transformer")
        if entry is None:
            return None
        if entry.config.get("modality_config"):
            # `message` is how text is formatted (a chat template: :attr:`renders_chat_template`), not a modality
            saved = {k: v for k, v in entry.config["modality_config"].items() if k != "message"}
            return custom_modality_config(saved)
        if str(entry.type).rsplit(".", 1)[-1] == "CLIPModel":
            return {k: dict(v) for k, v in DUAL_ENCODER_MODALITY_CONFIG.items()}
        if self.layout == "transformers":
            return infer_modality_config(self.hf_config, read_image_processor_config(entry.path) is not None)
        return None

    @property
    def renders_chat_template(self) -> bool:
        """Whether an embedder's text inputs go through its tokenizer's chat template (sentence-transformers
        6.2's ``message`` modality): the saved Transformer config lists ``message``, or the transformer folder has
        no Transformer config (a plain Hugging Face folder, as 6.2 infers it) and its tokenizer has a chat
        template (:func:`has_chat_template`). A saved config without ``message`` (v5, or text-only) never does."""
        entry = self.first("Transformer")
        folder = entry.path if entry is not None else self.folder
        saved = entry.config if entry is not None else read_transformer_config(folder)
        if isinstance(saved.get("modality_config"), dict):
            return "message" in saved["modality_config"]
        if saved or any((folder / name).is_file() for name in TRANSFORMER_CONFIG_FILES):
            return False
        return self.modality_config is None and has_chat_template(folder)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The input modalities (``("text",)`` for text models; ``("text", "image")`` for CLIP)."""
        config = self.modality_config
        return tuple(config) if config else ("text",)

    @property
    def is_multimodal(self) -> bool:
        """Whether the input module takes more than text (see :attr:`modality_config`)."""
        return self.modality_config is not None

    @property
    def max_seq_length(self) -> int | None:
        """The saved length limit, else the transformer's default (see :func:`default_max_length`)."""
        config = self.transformer_config
        saved = config.get("max_seq_length")
        processing = config.get("processing_kwargs") or {}
        if saved is None and isinstance(processing.get("text"), dict):
            saved = processing["text"].get("max_length")
        return int(saved) if saved else default_max_length(self.transformer_folder)

    @property
    def do_lower_case(self) -> bool:
        return bool(self.transformer_config.get("do_lower_case", False))

    @property
    def pooling(self) -> dict[str, Any]:
        """The ``Pooling`` config; a plain Hugging Face folder gets the one the loaders build for it (last-token
        for a causal LM, mean otherwise: :func:`~sentencekit.spec.decoder_config.default_pooling_mode`)."""
        entry = self.first("Pooling")
        if entry is not None:
            return entry.config
        if self.layout == "transformers":
            return {"pooling_mode": default_pooling_mode(self.hf_config)}
        return {"pooling_mode_mean_tokens": True}

    @property
    def pooling_modes(self) -> tuple[str, ...]:
        return parse_pooling_modes(self.pooling)

    @property
    def include_prompt(self) -> bool:
        """Whether prompt tokens count in pooling (``Pooling(include_prompt=False)`` leaves them out)."""
        return bool(self.pooling.get("include_prompt", True))

    @property
    def word_dim(self) -> int | None:
        dim = self.pooling.get("word_embedding_dimension", self.pooling.get("embedding_dimension"))
        return int(dim) if dim else None

    @property
    def dense(self) -> list[DenseSpec]:
        out = []
        for e in self.modules:
            if e.kind == "Dense":
                c = e.config
                out.append(DenseSpec(e.path, int(c["in_features"]), int(c["out_features"]), bool(c.get("bias", True)),
                                     str(c.get("activation_function") or DEFAULT_DENSE_ACTIVATION), c))
        return out

    @property
    def normalize(self) -> bool:
        """Whether the pipeline ends in ``Normalize`` (model2vec: its config's ``normalize``)."""
        if self.layout == "model2vec":
            return model2vec_normalizes(self.folder)
        return any(e.kind == "Normalize" for e in self.modules)

    @property
    def runs_without_torch(self) -> bool:
        """Whether the whole pipeline is Transformer -> Pooling -> Dense -> Normalize (one ONNX graph, or a
        transformer graph followed by NumPy steps)."""
        kinds = [e.kind for e in self.modules]
        return bool(kinds) and kinds[0] == "Transformer" and all(k in ("Pooling", "Dense", "Normalize")
                                                                 for k in kinds[1:])

    @property
    def is_splade(self) -> bool:
        """Whether the pipeline is SPLADE: ``Transformer`` (fill-mask) -> ``SpladePooling`` (a saved sparse
        encoder or one route of it), or a plain ``*ForMaskedLM`` folder (which loads as that). The ONNX
        backend exports these with the pooling inside the graph."""
        if self.layout == "transformers":
            return self.is_masked_lm
        return [e.kind for e in self.modules] == ["Transformer", "SpladePooling"]

    @property
    def splade_pooling(self) -> dict[str, Any]:
        """``SpladePooling``'s ``pooling_strategy`` and ``activation_function`` (its defaults, max / relu, for
        a plain ``*ForMaskedLM`` folder)."""
        entry = self.first("SpladePooling")
        saved = entry.config if entry is not None else {}
        return {"pooling_strategy": saved.get("pooling_strategy") or "max",
                "activation_function": saved.get("activation_function") or "relu"}

    # -- model-level settings ------------------------------------------------------------------------------
    @property
    def prompts(self) -> dict[str, str]:
        return dict(self.model_config.get("prompts") or {})

    @property
    def default_prompt_name(self) -> str | None:
        return self.model_config.get("default_prompt_name")

    @property
    def similarity_fn_name(self) -> str | None:
        return self.model_config.get("similarity_fn_name")

    @property
    def truncate_dim(self) -> int | None:
        return self.model_config.get("truncate_dim")

    @property
    def hf_config(self) -> dict[str, Any]:
        """The transformer's ``config.json`` (``{}`` when there is none)."""
        config = read_json_if_exists(self.transformer_folder / "config.json") or {}
        return config if isinstance(config, dict) else {}

    @property
    def is_masked_lm(self) -> bool:
        """Whether the transformer is a masked language model (an ``architectures`` entry ends in
        ``ForMaskedLM``): a plain folder of one loads as SPLADE (fill-mask Transformer + max SpladePooling)."""
        return any(str(a).endswith("ForMaskedLM") for a in self.hf_config.get("architectures") or [])

    @property
    def is_causal_lm(self) -> bool:
        """Whether the transformer's first ``architectures`` entry ends in ``ForCausalLM`` (6.2 decides on the
        first one)."""
        archs = self.hf_config.get("architectures") or []
        return bool(archs) and str(archs[0]).endswith("ForCausalLM")

    @property
    def is_generative_reranker(self) -> bool:
        """Whether a CrossEncoder over this folder is a generative reranker (6.2's rules): a CrossEncoder save
        with a ``LogitScore`` module, or a folder without a CrossEncoder ``modules.json`` whose transformer is a
        ``*ForCausalLM`` (it gets ``[Transformer(text-generation), LogitScore("yes", "no")]``)."""
        if self.layout == "sentence-transformers" and self.model_type == "CrossEncoder":
            return "LogitScore" in self.module_kinds
        return self.is_causal_lm

    @property
    def is_sparse(self) -> bool:
        """Whether the folder is a sparse encoder: saved as one (``model_type: SparseEncoder``) or holding a
        module only sparse encoders have (also inside a Router)."""
        if self.model_type == "SparseEncoder":
            return True
        entries = list(self.modules) + [e for route in (self.router.routes.values() if self.router else ())
                                        for e in route]
        return any(e.kind in SPARSE_KINDS for e in entries)

    @property
    def is_multivector(self) -> bool:
        """Whether the folder is a multi-vector (ColBERT-style) model: a sentence-transformers 6.2
        ``MultiVectorEncoder`` save (or one holding a module only those have), a PyLate (<= 3) ColBERT save
        (``model_type: ColBERT``), or a Stanford ColBERT checkpoint (``architectures: ["HF_ColBERT"]``)."""
        if self.model_type in MULTIVECTOR_MODEL_TYPES:
            return True
        if any(e.kind in MULTIVECTOR_KINDS for e in self.modules):
            return True
        return self.layout == "transformers" and "HF_ColBERT" in (self.hf_config.get("architectures") or [])

    @property
    def untrained_head(self) -> str | None:
        """Why a CrossEncoder over this folder would score with a classification head that was never trained
        (the folder has no sequence-classification head: an embedding model or a plain transformer; or a
        save recorded its head as untrained in ``config.json`` ``sentence_transformers.untrained_head``),
        or ``None``. Every backend asks this; ``pipeline.predict.check_trained_head`` acts on it."""
        hf = self.hf_config
        saved = (hf.get("sentence_transformers") or {}).get("untrained_head")
        if saved:
            return f"{self.folder} holds a classification head that was saved before it was trained ({saved})"
        if self.layout == "sentence-transformers" and self.model_type == "CrossEncoder":
            return None
        if any(a.endswith("ForSequenceClassification") for a in hf.get("architectures") or []):
            return None
        if self.is_generative_reranker:  # scored by the language-model head (LogitScore), which is trained
            return None
        kind = "an embedding model" if self.layout == "sentence-transformers" else "a transformer"
        return f"{self.folder} is {kind} without a trained classification head"

    # -- routes ---------------------------------------------------------------------------------------------
    def route(self, name: str) -> ModelSpec:
        """The spec of one route of a Router model: the route's modules, then the modules after the Router
        (no folder is written: every entry keeps its absolute path)."""
        if self.router is None:
            raise ValueError(f"{self.folder} has no Router module.")
        if name not in self.router.routes:
            raise ValueError(f"Unknown route {name!r}; this model's routes are {', '.join(self.router.routes)}.")
        after = self.modules[self.router.index + 1:]
        chain = [*self.router.routes[name], *after]
        entries = tuple(replace(e, index=i, name=str(i)) for i, e in enumerate(chain))
        return replace(self, modules=entries, router=None, route_name=name)


# -- reading ------------------------------------------------------------------------------------------------
def _module_config(kind: str | None, path: Path) -> dict[str, Any]:
    if kind == "Transformer":
        return read_transformer_config(path)
    if kind in ("Pooling", "Dense"):
        config = read_json(path / "config.json", what=f"{kind} config")
        if not isinstance(config, dict):
            raise ModelFormatError(f"{path / 'config.json'}: expected a JSON object.")
        return config
    if kind in ("SpladePooling", "SparseAutoEncoder", "SparseStaticEmbedding", "MultiVectorMask",
                "HierarchicalTokenPooling", "Normalize"):
        # what the torch-free engines need; a missing file is the torch loader's to report
        config = read_json_if_exists(path / "config.json", what=f"{kind} config")
        if config is not None and not isinstance(config, dict):
            raise ModelFormatError(f"{path / 'config.json'}: expected a JSON object.")
        return config or {}
    return {}


def _entry(index: int, raw: dict[str, Any], folder: Path, where: Path) -> ModuleEntry:
    missing = [k for k in ("path", "type") if k not in raw]
    if missing:
        raise ModelFormatError(f"{where}: entry {index} lacks {', '.join(missing)}.")
    kind = module_kind(raw["type"])
    path = (folder / str(raw["path"])).resolve()
    if kind not in _FOLDERLESS and not path.is_dir():
        raise ModelFormatError(f"{where} lists module {raw['type']!r} at {path}, which does not exist.")
    return ModuleEntry(index, str(raw.get("name", index)), str(raw["type"]), kind, path,
                       tuple(raw.get("kwargs") or ()), _module_config(kind, path) if path.is_dir() else {})


def read_modules_json(folder: Path) -> list[dict[str, Any]]:
    """The raw entries of ``modules.json``, checked to be a list of objects."""
    where = folder / MODULES_FILE
    entries = read_json(where, what="modules")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ModelFormatError(f"{where}: expected a JSON list of module entries.")
    return entries


def _read_router(entry: ModuleEntry) -> RouterSpec:
    config_file = entry.path / ROUTER_CONFIG_FILE
    if not config_file.is_file():
        config_file = entry.path / "config.json"  # legacy Asym
    config = read_json(config_file, what="Router config")
    try:
        types, structure = config["types"], config["structure"]
    except (KeyError, TypeError):
        raise ModelFormatError(f"{config_file}: a Router config needs 'types' and 'structure'.") from None
    routes = {}
    for route, module_ids in structure.items():
        chain = []
        for i, module_id in enumerate(module_ids):
            if module_id not in types:
                raise ModelFormatError(f"{config_file}: module {module_id!r} has no type entry.")
            chain.append(_entry(i, {"path": module_id, "type": types[module_id], "name": module_id},
                                entry.path, config_file))
        routes[route] = tuple(chain)
    params = config.get("parameters") or {}
    return RouterSpec(entry.index, entry.path, routes, params.get("default_route"),
                      bool(params.get("allow_empty_key", True)))


def read_model_config(folder: str | os.PathLike) -> dict[str, Any]:
    """``config_sentence_transformers.json`` of ``folder`` (``{}`` when absent)."""
    file = Path(folder) / MODEL_CONFIG_FILE
    config = read_json_if_exists(file, what="model")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ModelFormatError(f"{file}: expected a JSON object.")
    return config


def read_spec(folder: str | os.PathLike) -> ModelSpec:
    """Read and check a model folder (see the module docstring). Raises
    :class:`~sentencekit.files.ModelFormatError` naming the file for a folder that is no model, a
    malformed ``modules.json`` or a module folder that is missing."""
    folder = Path(folder).resolve()
    model_config = read_model_config(folder)
    model_type = str(model_config.get("model_type") or "SentenceTransformer")
    if (folder / MODULES_FILE).is_file():
        where = folder / MODULES_FILE
        entries = tuple(_entry(i, raw, folder, where) for i, raw in enumerate(read_modules_json(folder)))
        if not entries:
            raise ModelFormatError(f"{where} lists no modules: a model needs at least its input module.")
        router = next((_read_router(e) for e in entries if e.kind in ("Router", "Asym")), None)
        return ModelSpec(folder, "sentence-transformers", model_type, entries, model_config, router)
    if is_model2vec_folder(folder):
        return ModelSpec(folder, "model2vec", "SentenceTransformer", (), model_config)
    if not (folder / "config.json").is_file():
        raise ModelFormatError(f"{folder} is not a model folder: it has no {MODULES_FILE} (sentence-transformers) "
                               "and no config.json (Hugging Face transformer).")
    transformer = ModuleEntry(0, "0", "sentence_transformers.models.Transformer", "Transformer", folder,
                              config=read_transformer_config(folder))
    return ModelSpec(folder, "transformers", model_type, (transformer,), model_config)


__all__ = ["ModelSpec", "ModuleEntry", "DenseSpec", "RouterSpec", "read_spec", "read_model_config",
           "read_modules_json", "read_transformer_config", "default_max_length", "module_kind",
           "parse_pooling_modes", "MODULES_FILE", "MODEL_CONFIG_FILE", "DEFAULT_DENSE_ACTIVATION", "SPARSE_KINDS",
           "DUAL_ENCODER_MODALITY_CONFIG", "DUAL_ENCODER_MODEL_TYPES", "infer_modality_config",
           "custom_modality_config", "has_chat_template",
           "read_image_processor_config",
           "MULTIVECTOR_KINDS", "MULTIVECTOR_MODEL_TYPES", "FOREIGN_KINDS"]
