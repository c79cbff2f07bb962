"""sentence-transformers' public names and module paths under ``sentencekit``: every alias imports, resolves
to sentencekit's own objects, stays lazy, and the package namespace holds only public names."""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import json
import logging
import subprocess
import sys

import pytest

import sentencekit
from sentencekit import st_module_paths
from sentencekit.st_module_paths import ALIASES

# Names sentence-transformers 6.2 exports at top level that sentencekit implements.
ST_TOP_LEVEL = ["SentenceTransformer", "CrossEncoder", "SparseEncoder", "SentenceTransformerTrainer",
                "SentenceTransformerTrainingArguments", "CrossEncoderTrainer", "CrossEncoderTrainingArguments",
                "InputExample", "LoggingHandler", "SimilarityFunction", "quantize_embeddings",
                "mine_hard_negatives", "DefaultBatchSampler", "MultiVectorEncoder", "MultiVectorEncoderTrainer",
                "MultiVectorEncoderTrainingArguments"]

# Imports as sentence-transformers tutorials and docs write them (with the package name replaced).
ST_IMPORTS = [
    "from sentencekit import models; models.Transformer, models.Pooling, models.Dense, models.Normalize",
    "from sentencekit.models import Transformer, Pooling, Dense, Normalize, StaticEmbedding, Router, Asym",
    "from sentencekit.losses import MultipleNegativesRankingLoss, CoSENTLoss, MatryoshkaLoss",
    "from sentencekit.evaluation import EmbeddingSimilarityEvaluator, InformationRetrievalEvaluator, "
    "SimilarityFunction",
    "from sentencekit.training_args import BatchSamplers, MultiDatasetBatchSamplers, "
    "SentenceTransformerTrainingArguments",
    "from sentencekit.trainer import SentenceTransformerTrainer",
    "from sentencekit.sampler import DefaultBatchSampler, NoDuplicatesBatchSampler, GroupByLabelBatchSampler",
    "from sentencekit.similarity_functions import SimilarityFunction",
    "from sentencekit.readers import InputExample",
    "from sentencekit.quantization import quantize_embeddings",
    "from sentencekit.util import cos_sim, semantic_search, mine_hard_negatives, SimilarityFunction",
    "from sentencekit.sentence_transformer import SentenceTransformer, SentenceTransformerTrainer, "
    "SentenceTransformerTrainingArguments",
    "from sentencekit.sentence_transformer.model import SentenceTransformer",
    "from sentencekit.sentence_transformer.modules import Transformer, Pooling, Normalize",
    "from sentencekit.sentence_transformer.losses import MultipleNegativesRankingLoss",
    "from sentencekit.sentence_transformer.evaluation import TripletEvaluator",
    "from sentencekit.sentence_transformer.trainer import SentenceTransformerTrainer",
    "from sentencekit.sentence_transformer.training_args import BatchSamplers, SentenceTransformerTrainingArguments",
    "from sentencekit.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments",
    "from sentencekit.cross_encoder.model import CrossEncoder",
    "from sentencekit.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss, MultipleNegativesRankingLoss",
    "from sentencekit.cross_encoder.evaluation import CrossEncoderRerankingEvaluator, "
    "CrossEncoderCorrelationEvaluator, CrossEncoderClassificationEvaluator",
    "from sentencekit.cross_encoder.trainer import CrossEncoderTrainer",
    "from sentencekit.cross_encoder.training_args import CrossEncoderTrainingArguments, BatchSamplers",
    "import sentencekit.cross_encoder.losses as L; L.BinaryCrossEntropyLoss",
    "from sentencekit import SparseEncoder",
    "from sentencekit.sparse_encoder import SparseEncoder",
    "from sentencekit.sparse_encoder.models import SpladePooling, Transformer",
    "from sentencekit.sparse_encoder.modules import SpladePooling",
    "from sentencekit.sparse_encoder.modules.splade_pooling import SpladePooling",
    "from sentencekit.sparse_encoder import SparseEncoder, SparseEncoderTrainer, SparseEncoderTrainingArguments, "
    "SparseEncoderDataCollator, losses",
    "from sentencekit.sparse_encoder.losses import SpladeLoss, SparseMultipleNegativesRankingLoss, CSRLoss, FlopsLoss",
    "from sentencekit.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator, "
    "ReciprocalRankFusionEvaluator",
    "from sentencekit.sparse_encoder.trainer import SparseEncoderTrainer",
    "from sentencekit.sparse_encoder.training_args import SparseEncoderTrainingArguments, BatchSamplers",
    "from sentencekit.sparse_encoder.data_collator import SparseEncoderDataCollator",
    "from sentencekit.sparse_encoder.callbacks import SpladeRegularizerWeightSchedulerCallback, SchedulerType",
    "from sentencekit import MultiVectorEncoder, MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments",
    "from sentencekit.multi_vector_encoder import MultiVectorEncoder, MultiVectorEncoderTrainer, "
    "MultiVectorEncoderTrainingArguments, MultiVectorEncoderDataCollator, maxsim, maxsim_pairwise",
    "from sentencekit.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss, "
    "CachedMultiVectorMultipleNegativesRankingLoss, MultiVectorDistillKLDivLoss, MultiVectorMarginMSELoss",
    "from sentencekit.multi_vector_encoder.scoring import colbert_scores, colbert_kd_scores, XTRScores, XTRKDScores",
    "from sentencekit.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator, "
    "MultiVectorNanoBEIREvaluator, MultiVectorTripletEvaluator, MultiVectorRerankingEvaluator, "
    "MultiVectorDistillationEvaluator",
    "from sentencekit.multi_vector_encoder.trainer import MultiVectorEncoderTrainer",
    "from sentencekit.multi_vector_encoder.training_args import MultiVectorEncoderTrainingArguments, BatchSamplers",
    "from sentencekit.multi_vector_encoder.data_collator import MultiVectorEncoderDataCollator",
]


def defined_in_sentencekit(value: object) -> bool:
    if inspect.ismodule(value):
        return value.__name__.startswith("sentencekit")
    return getattr(value, "__module__", "").startswith("sentencekit")


@pytest.mark.parametrize("statement", ST_IMPORTS)
def test_tutorial_import_statements_work(statement):
    exec(compile(statement, "<st-import>", "exec"), {})


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_alias_resolves_to_sentencekits_own_objects(alias):
    module = importlib.import_module(alias)
    assert module.__name__ == alias and sys.modules[alias] is module
    assert "alias of" in module.__doc__
    assert module.__all__, f"{alias} exports nothing"
    target = ALIASES[alias]
    for name in module.__all__:
        value = getattr(module, name)
        assert defined_in_sentencekit(value), (alias, name, value)
        if isinstance(target, str):  # a whole-module alias: the very same objects
            assert value is getattr(importlib.import_module(target), name)
        else:
            source, _, attribute = target[name].partition(":")
            assert value is getattr(importlib.import_module(source), attribute)


def test_aliases_are_the_same_classes_as_the_real_paths():
    from sentencekit.cross_encoder.losses import BinaryCrossEntropyLoss
    from sentencekit.models import Pooling

    from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss as Real
    from sentencekit.modules import Pooling as RealPooling
    from sentencekit.training.trainer import SentenceTransformerTrainer

    assert BinaryCrossEntropyLoss is Real and Pooling is RealPooling
    assert sentencekit.models.Transformer is sentencekit.modules.Transformer
    assert sentencekit.sentence_transformer.trainer.SentenceTransformerTrainer is SentenceTransformerTrainer
    assert sentencekit.SentenceTransformerTrainer is SentenceTransformerTrainer
    assert sentencekit.cross_encoder.CrossEncoder is sentencekit.CrossEncoder


def test_no_alias_shadows_or_is_shadowed_by_a_real_module():
    # The finder answers only when no file exists; a real file added later under an alias name would
    # silently replace the alias, so each must be found by nothing but the alias table.
    for alias in ALIASES:
        parent, _, leaf = alias.rpartition(".")
        path = importlib.import_module(parent).__path__
        assert importlib.machinery.PathFinder.find_spec(alias, path) is None, alias


def test_top_level_exports_sentence_transformers_names():
    assert set(ST_TOP_LEVEL) <= set(sentencekit.__all__)
    for name in sentencekit.__all__:
        assert defined_in_sentencekit(getattr(sentencekit, name)) or name == "__version__", name
    assert isinstance(sentencekit.__version__, str)


def test_unimplemented_and_unknown_names_say_what_is_wrong():
    with pytest.raises(AttributeError, match="does not implement sentence-transformers' 'MultiVectorEncoderModelCard"):
        sentencekit.MultiVectorEncoderModelCardData  # noqa: B018
    assert sentencekit.SparseEncoderTrainer is sentencekit.sparse_encoder.SparseEncoderTrainer
    assert sentencekit.MultiVectorEncoderTrainer is sentencekit.multi_vector_encoder.MultiVectorEncoderTrainer
    with pytest.raises(AttributeError, match="has no attribute 'SentenceTransfomer'"):
        sentencekit.SentenceTransfomer  # noqa: B018
    with pytest.raises(AttributeError, match="it provides: CrossEncoder, CrossEncoderTrainer"):
        sentencekit.cross_encoder.CrossEncoderModelCardData  # noqa: B018
    with pytest.raises(ImportError):
        importlib.import_module("sentencekit.cross_encoder.not_a_path")


# Run in a fresh interpreter: this test process has imported torch long ago.
FRESH = """
import importlib.util, json, sys
import sentencekit
namespace = sorted(sentencekit.__dict__)
listing = dir(sentencekit)
import sentencekit.cross_encoder, sentencekit.sentence_transformer
from sentencekit import CrossEncoder, SentenceTransformer, InputExample, LoggingHandler, SimilarityFunction
from sentencekit.cross_encoder import CrossEncoder as CE
specs = [importlib.util.find_spec(a) is not None for a in sentencekit.st_module_paths.ALIASES]
before = sorted(m for m in ("torch", "transformers") if m in sys.modules)
sentencekit.cross_encoder.CrossEncoderTrainer  # the probe's positive control: this one needs transformers
after = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(json.dumps({"namespace": namespace, "dir": listing, "all": sentencekit.__all__, "specs": specs,
                  "before": before, "after": after}))
"""


@pytest.fixture(scope="module")
def fresh() -> dict:
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_names_and_aliases_stay_lazy(fresh):
    assert all(fresh["specs"])
    assert fresh["before"] == []  # torch-free after touching the aliases' names
    assert fresh["after"] == ["torch", "transformers"]


def test_package_namespace_holds_only_public_names(fresh):
    public = set(fresh["all"])
    for listing in (fresh["namespace"], fresh["dir"]):
        leaked = [n for n in listing if not n.startswith("_") and n not in public and n != "st_module_paths"]
        assert leaked == [], leaked
        assert not {"Any", "importlib", "TYPE_CHECKING", "annotations", "typing"} & set(listing)
    assert len(fresh["all"]) == len(public)  # no duplicates
    assert public == {"__version__", *sentencekit._LAZY}


def test_input_example_has_sentence_transformers_fields():
    example = sentencekit.InputExample(guid="a1", texts=("query", "document"), label=0.5)
    assert (example.guid, example.texts, example.label) == ("a1", ["query", "document"], 0.5)
    assert str(example) == "<InputExample> label: 0.5, texts: query; document"
    assert sentencekit.InputExample().texts == [] and sentencekit.InputExample().label == 0
    with pytest.raises(TypeError, match=r"write texts=\['query'\]"):
        sentencekit.InputExample(texts="query")


def test_logging_handler_writes_through_tqdm(capsys):
    logger = logging.getLogger("sentencekit-test-handler")
    handler = sentencekit.LoggingHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        logger.warning("refund issued")
    finally:
        logger.removeHandler(handler)
    assert "WARNING refund issued" in capsys.readouterr().out


def test_install_is_idempotent():
    st_module_paths.install()
    st_module_paths.install()
    assert sum(finder is st_module_paths._AliasLoader for finder in sys.meta_path) == 1


def test_util_helpers_sentence_transformers_users_call():
    import importlib.util as iu

    import torch

    from sentencekit import util

    features = {"input_ids": torch.ones(1, 3, dtype=torch.long), "text_keys": ["a"]}
    moved = util.batch_to_device(features, "meta")
    assert moved["input_ids"].device.type == "meta" and moved["text_keys"] == ["a"]
    assert features["input_ids"].device.type == "cpu"  # a new dict; the caller's is left alone
    assert util.is_training_available() == (iu.find_spec("datasets") is not None
                                            and iu.find_spec("accelerate") is not None)
    assert util.SimilarityFunction is sentencekit.SimilarityFunction
    assert util.LoggingHandler is sentencekit.LoggingHandler
