"""sentencekit: text embeddings, reranking and training, compatible with sentence-transformers.

Heavy libraries (torch, transformers) are imported only when a model class is first used, so that
``import sentencekit`` and the CLI start fast; ``SentenceTransformer(..., backend="onnx")`` (and
``CrossEncoder``) run on ONNX Runtime without importing them at all.

Code written for sentence-transformers runs with the package name changed: the names below are those of
``sentence_transformers`` that sentencekit implements, and its module paths (``sentencekit.models``,
``sentencekit.cross_encoder.losses`` ...) are accepted (see :mod:`sentencekit.st_module_paths`).

>>> from sentencekit import SentenceTransformer            # doctest: +SKIP
>>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
>>> model.encode(["How do I get a refund?"]).shape
(1, 384)
"""

import typing as _typing

from sentencekit import st_module_paths as _st_module_paths

__version__ = "0.1.0"

# public name -> "module:attribute" ("module" alone: the name is that module), imported on first access.
_LAZY = {
    "SentenceTransformer": "sentencekit.families.embedder:SentenceTransformer",
    "CrossEncoder": "sentencekit.families.reranker:CrossEncoder",
    "SparseEncoder": "sentencekit.families.sparse:SparseEncoder",
    "MultiVectorEncoder": "sentencekit.families.multivector:MultiVectorEncoder",
    "EncodeInfo": "sentencekit.pipeline.batching:EncodeInfo",
    "EmbeddingIndex": "sentencekit.search.index:EmbeddingIndex",
    "SentenceTransformerTrainer": "sentencekit.training.trainer:SentenceTransformerTrainer",
    "SentenceTransformerTrainingArguments": "sentencekit.training.args:SentenceTransformerTrainingArguments",
    "CrossEncoderTrainer": "sentencekit.training.trainer:CrossEncoderTrainer",
    "CrossEncoderTrainingArguments": "sentencekit.training.args:CrossEncoderTrainingArguments",
    "SparseEncoderTrainer": "sentencekit.training.trainer:SparseEncoderTrainer",
    "SparseEncoderTrainingArguments": "sentencekit.training.args:SparseEncoderTrainingArguments",
    "MultiVectorEncoderTrainer": "sentencekit.training.trainer:MultiVectorEncoderTrainer",
    "MultiVectorEncoderTrainingArguments": "sentencekit.training.args:MultiVectorEncoderTrainingArguments",
    "DefaultBatchSampler": "sentencekit.training.samplers:DefaultBatchSampler",
    "InputExample": "sentencekit.input_example:InputExample",
    "LoggingHandler": "sentencekit.logging_handler:LoggingHandler",
    "mine_hard_negatives": "sentencekit.training.hard_negatives:mine_hard_negatives",
    "SimilarityFunction": "sentencekit.similarity:SimilarityFunction",
    "quantize_embeddings": "sentencekit.quantization:quantize_embeddings",
    # modules, under the names sentence-transformers users import them by
    "util": "sentencekit.util",
    "losses": "sentencekit.losses",
    "evaluation": "sentencekit.evaluation",
    "models": "sentencekit.models",
    "training_args": "sentencekit.training_args",
    "trainer": "sentencekit.trainer",
    "sentence_transformer": "sentencekit.sentence_transformer",
    "cross_encoder": "sentencekit.cross_encoder",
    "sparse_encoder": "sentencekit.sparse_encoder",
    "multi_vector_encoder": "sentencekit.multi_vector_encoder",
}

# sentence-transformers 6.2 top-level names sentencekit does not implement: say so instead of a bare
# AttributeError, so a ported script fails with the reason.
_NOT_IMPLEMENTED = (
    "SparseEncoderModelCardData", "MultiVectorEncoderModelCardData", "SentenceTransformerModelCardData",
    "CrossEncoderModelCardData",
    "SentencesDataset", "ParallelSentencesDataset", "MultiDatasetDefaultBatchSampler",
    "export_optimized_onnx_model", "export_dynamic_quantized_onnx_model", "export_static_quantized_openvino_model",
)

if _typing.TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from sentencekit import (
        cross_encoder,
        evaluation,
        losses,
        models,
        multi_vector_encoder,
        sentence_transformer,
        sparse_encoder,
        trainer,
        training_args,
        util,
    )
    from sentencekit.families.embedder import SentenceTransformer
    from sentencekit.families.multivector import MultiVectorEncoder
    from sentencekit.families.reranker import CrossEncoder
    from sentencekit.families.sparse import SparseEncoder
    from sentencekit.input_example import InputExample
    from sentencekit.logging_handler import LoggingHandler
    from sentencekit.pipeline.batching import EncodeInfo
    from sentencekit.quantization import quantize_embeddings
    from sentencekit.search.index import EmbeddingIndex
    from sentencekit.similarity import SimilarityFunction
    from sentencekit.training.args import (
        CrossEncoderTrainingArguments,
        MultiVectorEncoderTrainingArguments,
        SentenceTransformerTrainingArguments,
        SparseEncoderTrainingArguments,
    )
    from sentencekit.training.hard_negatives import mine_hard_negatives
    from sentencekit.training.samplers import DefaultBatchSampler
    from sentencekit.training.trainer import (
        CrossEncoderTrainer,
        MultiVectorEncoderTrainer,
        SentenceTransformerTrainer,
        SparseEncoderTrainer,
    )

_st_module_paths.install()


def __getattr__(name: str) -> object:
    import importlib  # not at module level: it would show in the package namespace

    target = _LAZY.get(name)
    if target is None:
        if name in _NOT_IMPLEMENTED:
            raise AttributeError(f"sentencekit does not implement sentence-transformers' {name!r} (yet); "
                                 f"see the README section 'Coming from sentence-transformers'.")
        raise AttributeError(f"module 'sentencekit' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    if attribute:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# The same names as _LAZY (a test checks), spelled out for type checkers and `from sentencekit import *`.
__all__ = [
    "__version__",
    "SentenceTransformer", "CrossEncoder", "SparseEncoder", "MultiVectorEncoder", "EncodeInfo", "EmbeddingIndex",
    "SentenceTransformerTrainer", "SentenceTransformerTrainingArguments", "CrossEncoderTrainer",
    "CrossEncoderTrainingArguments", "SparseEncoderTrainer", "SparseEncoderTrainingArguments",
    "MultiVectorEncoderTrainer", "MultiVectorEncoderTrainingArguments", "DefaultBatchSampler",
    "InputExample", "LoggingHandler",
    "mine_hard_negatives", "SimilarityFunction", "quantize_embeddings",
    "util", "losses", "evaluation", "models", "training_args", "trainer", "sentence_transformer", "cross_encoder",
    "sparse_encoder", "multi_vector_encoder",
]
