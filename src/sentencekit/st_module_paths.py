"""sentence-transformers' module paths (v5 and v6), as aliases of sentencekit's own modules.

Code written for sentence-transformers runs with only the package name changed, so every path its
tutorials import from must exist under ``sentencekit``: ``sentencekit.models``,
``sentencekit.training_args``, ``sentencekit.sentence_transformer.losses``,
``sentencekit.cross_encoder.evaluation`` ... Those paths are listed in :data:`ALIASES`, each with the
sentencekit module (or names) it stands for; nothing is implemented twice.

Why a table and not one file per path: the same leaf names recur under different parents
(``sentence_transformer/trainer``, ``cross_encoder/trainer``, next to our ``training/trainer.py``), and
the project keeps no two files of the same name. The modules made from the table are real modules,
registered in ``sys.modules`` under their own name by the ordinary import system (``import`` and
``from ... import`` work, ``isinstance`` sees the very same classes); a finder appended to
``sys.meta_path`` answers only for the names in the table, after every real module has had its turn.

Alias modules built from a name table resolve each name on first access, so
``from sentencekit.cross_encoder import CrossEncoder`` imports neither the trainer nor torch; an alias
of a whole module imports that module when the alias is imported.

>>> from sentencekit.training_args import BatchSamplers          # doctest: +SKIP
>>> from sentencekit.cross_encoder.losses import BinaryCrossEntropyLoss  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

# An alias is either a sentencekit module path (re-export its ``__all__``) or a table
# ``{public name: "module:attribute"}`` ("module" alone: the name is that module), resolved lazily.
AliasTarget = str | dict[str, str]

_ST_TRAINING_ARGS = {
    "SentenceTransformerTrainingArguments": "sentencekit.training.args:SentenceTransformerTrainingArguments",
    "BatchSamplers": "sentencekit.training.samplers:BatchSamplers",
    "MultiDatasetBatchSamplers": "sentencekit.training.samplers:MultiDatasetBatchSamplers",
}
_CE_TRAINING_ARGS = {
    "CrossEncoderTrainingArguments": "sentencekit.training.args:CrossEncoderTrainingArguments",
    "BatchSamplers": "sentencekit.training.samplers:BatchSamplers",
    "MultiDatasetBatchSamplers": "sentencekit.training.samplers:MultiDatasetBatchSamplers",
}

_SPARSE_TRAINING_ARGS = {
    "SparseEncoderTrainingArguments": "sentencekit.training.args:SparseEncoderTrainingArguments",
    "BatchSamplers": "sentencekit.training.samplers:BatchSamplers",
    "MultiDatasetBatchSamplers": "sentencekit.training.samplers:MultiDatasetBatchSamplers",
}
_SPARSE_CALLBACKS = {
    name: f"sentencekit.training.callbacks:{name}"
    for name in ("SpladeRegularizerWeightSchedulerCallback", "SchedulerType")
}
_SPARSE_EVALUATORS = {
    name: f"sentencekit.evaluation:{name}"
    for name in ("SparseInformationRetrievalEvaluator", "SparseNanoBEIREvaluator", "SparseEmbeddingSimilarityEvaluator",
                 "SparseRerankingEvaluator", "SparseTripletEvaluator", "SparseBinaryClassificationEvaluator",
                 "SparseMSEEvaluator", "SparseTranslationEvaluator", "ReciprocalRankFusionEvaluator")
}

_SPARSE_MODULES = {
    "SpladePooling": "sentencekit.modules.splade_pooling:SpladePooling",
    "SparseStaticEmbedding": "sentencekit.modules.sparse_static_embedding:SparseStaticEmbedding",
    "SparseAutoEncoder": "sentencekit.modules.sparse_autoencoder:SparseAutoEncoder",
    "Router": "sentencekit.modules.router:Router",
    # 5.x's MLMTransformer is a Transformer with transformer_task="fill-mask" (pass it)
    "Transformer": "sentencekit.modules.transformer:Transformer",
}

_MULTIVECTOR_MODULES = {
    "MultiVectorMask": "sentencekit.modules.multi_vector_mask:MultiVectorMask",
    "BaseTokenPooling": "sentencekit.modules.token_pooling:BaseTokenPooling",
    "HierarchicalTokenPooling": "sentencekit.modules.token_pooling:HierarchicalTokenPooling",
    "LambdaTokenPooling": "sentencekit.modules.token_pooling:LambdaTokenPooling",
}

_MULTIVECTOR_TRAINING_ARGS = {
    "MultiVectorEncoderTrainingArguments": "sentencekit.training.args:MultiVectorEncoderTrainingArguments",
    "BatchSamplers": "sentencekit.training.samplers:BatchSamplers",
    "MultiDatasetBatchSamplers": "sentencekit.training.samplers:MultiDatasetBatchSamplers",
}
_MULTIVECTOR_SCORING = {
    **{name: f"sentencekit.late_interaction_scoring:{name}"
       for name in ("colbert_scores", "colbert_scores_pairwise", "colbert_kd_scores", "mean_colbert_scores",
                    "mean_colbert_scores_pairwise", "mean_colbert_kd_scores")},
    **{name: f"sentencekit.late_interaction_xtr:{name}"
       for name in ("XTRScores", "XTRKDScores", "xtr_scores", "xtr_scores_pairwise", "xtr_kd_scores")},
}
_MULTIVECTOR_EVALUATORS = {
    name: f"sentencekit.evaluation:{name}"
    for name in ("MultiVectorInformationRetrievalEvaluator", "MultiVectorNanoBEIREvaluator",
                 "MultiVectorTripletEvaluator", "MultiVectorDistillationEvaluator", "MultiVectorRerankingEvaluator")
}

ALIASES: dict[str, AliasTarget] = {
    # --- v5 paths (sentence_transformers.<x>) -------------------------------------------------------
    "sentencekit.models": "sentencekit.modules",
    "sentencekit.training_args": _ST_TRAINING_ARGS,
    "sentencekit.trainer": {"SentenceTransformerTrainer": "sentencekit.training.trainer:SentenceTransformerTrainer"},
    "sentencekit.sampler": {
        "DefaultBatchSampler": "sentencekit.training.samplers:DefaultBatchSampler",
        "NoDuplicatesBatchSampler": "sentencekit.training.samplers:NoDuplicatesBatchSampler",
        "GroupByLabelBatchSampler": "sentencekit.training.samplers:GroupByLabelBatchSampler",
    },
    "sentencekit.similarity_functions": {"SimilarityFunction": "sentencekit.similarity:SimilarityFunction"},
    "sentencekit.readers": {"InputExample": "sentencekit.input_example:InputExample"},
    # --- v6 paths (sentence_transformers.sentence_transformer.<x>) -----------------------------------
    "sentencekit.sentence_transformer": {
        "SentenceTransformer": "sentencekit:SentenceTransformer",
        "SentenceTransformerTrainer": "sentencekit.training.trainer:SentenceTransformerTrainer",
        "SentenceTransformerTrainingArguments": "sentencekit.training.args:SentenceTransformerTrainingArguments",
    },
    "sentencekit.sentence_transformer.model": {"SentenceTransformer": "sentencekit:SentenceTransformer"},
    "sentencekit.sentence_transformer.modules": "sentencekit.modules",
    "sentencekit.sentence_transformer.losses": "sentencekit.losses",
    "sentencekit.sentence_transformer.evaluation": "sentencekit.evaluation",
    "sentencekit.sentence_transformer.trainer": {
        "SentenceTransformerTrainer": "sentencekit.training.trainer:SentenceTransformerTrainer",
    },
    "sentencekit.sentence_transformer.training_args": _ST_TRAINING_ARGS,
    # --- cross-encoders (sentence_transformers.cross_encoder.<x>, v5 and v6) -------------------------
    "sentencekit.cross_encoder": {
        "CrossEncoder": "sentencekit:CrossEncoder",
        "CrossEncoderTrainer": "sentencekit.training.trainer:CrossEncoderTrainer",
        "CrossEncoderTrainingArguments": "sentencekit.training.args:CrossEncoderTrainingArguments",
    },
    "sentencekit.cross_encoder.model": {"CrossEncoder": "sentencekit:CrossEncoder"},
    "sentencekit.cross_encoder.losses": "sentencekit.losses.cross_encoder",
    "sentencekit.cross_encoder.evaluation": {
        name: f"sentencekit.evaluation:{name}"
        for name in ("CrossEncoderClassificationEvaluator", "CrossEncoderCorrelationEvaluator",
                     "CrossEncoderRerankingEvaluator")
    },
    "sentencekit.cross_encoder.trainer": {"CrossEncoderTrainer": "sentencekit.training.trainer:CrossEncoderTrainer"},
    "sentencekit.cross_encoder.training_args": _CE_TRAINING_ARGS,
    # --- sparse encoders (sentence_transformers.sparse_encoder.<x>; v5 "models", v6 "modules") ------------
    "sentencekit.sparse_encoder": {
        "SparseEncoder": "sentencekit:SparseEncoder",
        "SparseEncoderTrainer": "sentencekit.training.trainer:SparseEncoderTrainer",
        "SparseEncoderTrainingArguments": "sentencekit.training.args:SparseEncoderTrainingArguments",
        "SparseEncoderDataCollator": "sentencekit.training.collator:SparseEncoderDataCollator",
    },
    "sentencekit.sparse_encoder.losses": "sentencekit.losses.sparse",
    "sentencekit.sparse_encoder.evaluation": _SPARSE_EVALUATORS,
    "sentencekit.sparse_encoder.trainer": {"SparseEncoderTrainer": "sentencekit.training.trainer:SparseEncoderTrainer"},
    "sentencekit.sparse_encoder.training_args": _SPARSE_TRAINING_ARGS,
    "sentencekit.sparse_encoder.data_collator": {
        "SparseEncoderDataCollator": "sentencekit.training.collator:SparseEncoderDataCollator"},
    "sentencekit.sparse_encoder.callbacks": _SPARSE_CALLBACKS,
    "sentencekit.sparse_encoder.callbacks.splade_callbacks": _SPARSE_CALLBACKS,
    "sentencekit.sparse_encoder.model": {"SparseEncoder": "sentencekit:SparseEncoder"},
    "sentencekit.sparse_encoder.models": _SPARSE_MODULES,
    "sentencekit.sparse_encoder.modules": _SPARSE_MODULES,
    "sentencekit.sparse_encoder.modules.splade_pooling": {
        "SpladePooling": "sentencekit.modules.splade_pooling:SpladePooling"},
    # --- multi-vector encoders (sentence_transformers.multi_vector_encoder.<x>, v6) ------------------------
    "sentencekit.multi_vector_encoder": {
        "MultiVectorEncoder": "sentencekit:MultiVectorEncoder", **_MULTIVECTOR_MODULES,
        "MultiVectorEncoderTrainer": "sentencekit.training.trainer:MultiVectorEncoderTrainer",
        "MultiVectorEncoderTrainingArguments": "sentencekit.training.args:MultiVectorEncoderTrainingArguments",
        "MultiVectorEncoderDataCollator": "sentencekit.training.collator:MultiVectorEncoderDataCollator",
        "maxsim": "sentencekit.late_interaction_tensors:maxsim",
        "maxsim_pairwise": "sentencekit.late_interaction_tensors:maxsim_pairwise"},
    "sentencekit.multi_vector_encoder.losses": "sentencekit.losses.multivector",
    "sentencekit.multi_vector_encoder.scoring": _MULTIVECTOR_SCORING,
    "sentencekit.multi_vector_encoder.evaluation": _MULTIVECTOR_EVALUATORS,
    "sentencekit.multi_vector_encoder.trainer": {
        "MultiVectorEncoderTrainer": "sentencekit.training.trainer:MultiVectorEncoderTrainer"},
    "sentencekit.multi_vector_encoder.training_args": _MULTIVECTOR_TRAINING_ARGS,
    "sentencekit.multi_vector_encoder.data_collator": {
        "MultiVectorEncoderDataCollator": "sentencekit.training.collator:MultiVectorEncoderDataCollator"},
    "sentencekit.multi_vector_encoder.model": {"MultiVectorEncoder": "sentencekit:MultiVectorEncoder"},
    "sentencekit.multi_vector_encoder.modules": _MULTIVECTOR_MODULES,
    "sentencekit.multi_vector_encoder.modules.multi_vector_mask": {
        "MultiVectorMask": "sentencekit.modules.multi_vector_mask:MultiVectorMask"},
    "sentencekit.multi_vector_encoder.modules.token_pooling": {
        k: v for k, v in _MULTIVECTOR_MODULES.items() if k != "MultiVectorMask"},
}


def _children(alias: str) -> dict[str, str]:
    prefix = alias + "."
    return {name[len(prefix):]: name for name in ALIASES if name.startswith(prefix) and "." not in name[len(prefix):]}


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    return getattr(value, attribute) if attribute else value


def _fill_from_module(module: ModuleType, source: str) -> None:
    """An alias of a whole module: the same objects under the names of the source's ``__all__``."""
    real = importlib.import_module(source)
    names = list(getattr(real, "__all__", ()))
    if not names:  # a wrong table entry: fail where it is, not with an empty module
        raise ImportError(f"{module.__name__} is an alias of {source}, which has no __all__ to re-export; "
                          f"list its names in sentencekit.st_module_paths.ALIASES instead.")
    for name in names:
        setattr(module, name, getattr(real, name))
    module.__all__ = names


def _fill_from_table(module: ModuleType, table: dict[str, str]) -> None:
    """An alias built from a name table: each name (and each child alias) resolved on first access."""
    alias = module.__name__
    children = _children(alias)

    def __getattr__(name: str) -> Any:
        if name in table:
            value = _resolve(table[name])
        elif name in children:
            value = importlib.import_module(children[name])
        else:
            raise AttributeError(
                f"module {alias!r} (sentence-transformers' path, an alias in sentencekit) has no attribute "
                f"{name!r}; it provides: {', '.join(sorted(table) + sorted(children))}")
        setattr(module, name, value)  # cached: __getattr__ runs once per name
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(table) | set(children))

    module.__getattr__ = __getattr__
    module.__dir__ = __dir__
    module.__all__ = sorted(table)


class _AliasLoader:
    """Finder and loader (one object, as ``importlib`` allows) for the names in :data:`ALIASES`."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in ALIASES:
            return None
        # A package spec (empty __path__) lets `import alias.child` reach this finder for the child.
        return importlib.util.spec_from_loader(fullname, _AliasLoader, is_package=bool(_children(fullname)))

    @staticmethod
    def create_module(spec: Any) -> None:
        return None  # the default: a fresh module named for the alias

    @staticmethod
    def exec_module(module: ModuleType) -> None:
        target = ALIASES[module.__name__]
        if isinstance(target, str):
            module.__doc__ = f"sentence-transformers' module path, an alias of :mod:`{target}`."
            _fill_from_module(module, target)
        else:
            module.__doc__ = "sentence-transformers' module path, an alias of sentencekit's " + ", ".join(
                f"``{t.replace(':', '.')}``" for t in _targets(target)) + "."
            _fill_from_table(module, target)


def _targets(table: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(table.values()))


def install() -> None:
    """Make the alias paths importable (idempotent). Called by ``import sentencekit``; cheap: nothing is
    imported until an alias is."""
    if _AliasLoader not in sys.meta_path:
        # Appended: real modules (found by the path finder earlier in the list) always win.
        sys.meta_path.append(_AliasLoader)  # type: ignore[arg-type]
