"""MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments and MultiVectorEncoderDataCollator on a tiny random
ColBERT model: each column tokenized for its task (and recorded), ``max_length`` as sentence-transformers 6.2
applies it (training batches only; fixed / min query expansion), the default loss, training that lowers the
loss, checkpoints in the MultiVectorEncoder format, resuming, load-best and the distillation data format."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from datasets import Dataset

import sentencekit
from sentencekit import MultiVectorEncoder
from sentencekit.losses.multivector import (
    CachedMultiVectorMultipleNegativesRankingLoss,
    MultiVectorDistillKLDivLoss,
    MultiVectorMultipleNegativesRankingLoss,
)
from sentencekit.modules import Dense, MultiVectorMask, Normalize, Transformer
from sentencekit.training import (
    MultiVectorEncoderDataCollator,
    MultiVectorEncoderTrainer,
    MultiVectorEncoderTrainingArguments,
    SentenceTransformerTrainingArguments,
)

pytestmark = pytest.mark.slow

QUERIES = ["how do i get a refund", "reset my password", "cancel my subscription", "shipping is late",
           "the weather in paris", "my card payment", "login help please", "the cat sat on the mat"]
ANSWERS = ["refund return policy money back", "password reset login", "cancel subscription account",
           "delivery late ship", "paris weather mild today", "card payment cost", "login account support",
           "cat dog mat"]
LONG = "refund " * 40


@pytest.fixture()
def colbert(tiny_mv_dir):
    return MultiVectorEncoder(str(tiny_mv_dir), device="cpu")


def min_expansion_model(bert_dir):
    transformer = Transformer(str(bert_dir), query_expansion={"strategy": "min", "length": 6})
    torch.manual_seed(0)
    dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    return MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask(), Normalize("token_embeddings")],
                              device="cpu")


def pairs(n=8):
    return Dataset.from_dict({"query": QUERIES[:n], "answer": ANSWERS[:n]})


def args(tmp_path, **kwargs):
    defaults = {"output_dir": str(tmp_path / "out"), "report_to": "none", "use_cpu": True, "seed": 0,
                "disable_tqdm": True, "save_strategy": "no"}
    return MultiVectorEncoderTrainingArguments(**{**defaults, **kwargs})


# -- the collator ---------------------------------------------------------------------------------------------
def test_collator_tokenizes_each_column_for_its_task_and_records_it(colbert):
    rows = [{"query": q, "answer": a, "negative": LONG, "label": [1.0, 0.5]} for q, a in zip(QUERIES[:3], ANSWERS)]
    batch = MultiVectorEncoderDataCollator(colbert)(rows)
    query, answer, negative = batch["features"]
    assert [f["task"] for f in batch["features"]] == ["query", "document", "document"]
    assert query["input_ids"].shape[1] == 12 and "query_expansion_positions" in query  # fixed expansion to 12
    assert negative["input_ids"].shape[1] == 24  # the model's document_length
    for features, task in ((query, "query"), (answer, "document")):
        expected = colbert.tokenize([r["query" if task == "query" else "answer"] for r in rows], task=task)
        assert torch.equal(features["input_ids"], expected["input_ids"])
    assert batch["label"].shape == (3, 2) and batch["label"].dtype == torch.float32  # KD scores [B, N]
    routed = MultiVectorEncoderDataCollator(colbert, router_mapping={"query": "document", "answer": "query"})(rows)
    assert [f["task"] for f in routed["features"]] == ["document", "query", "document"]
    assert routed["features"][1]["input_ids"].shape[1] == 12


def test_max_length_overrides_the_lengths_of_training_batches_only(colbert, tiny_bert_dir, caplog):
    rows = [{"query": q + " " + LONG, "answer": LONG} for q in QUERIES[:2]]
    with caplog.at_level(logging.WARNING, logger="sentencekit.training.collator"):
        collator = MultiVectorEncoderDataCollator(colbert, max_length={"query": 5, "document": 8})
    assert "ignored for queries" in caplog.text  # fixed expansion keeps its 12 tokens
    query, answer = collator(rows)["features"]
    assert query["input_ids"].shape[1] == 12 and answer["input_ids"].shape[1] == 8
    query, answer = MultiVectorEncoderDataCollator(colbert, max_length=10)(rows)["features"]
    assert query["input_ids"].shape[1] == 12 and answer["input_ids"].shape[1] == 10
    query, answer = MultiVectorEncoderDataCollator(colbert, max_length={"query": 30})(rows)["features"]
    assert answer["input_ids"].shape[1] == 24  # no document entry: the model's document_length
    assert colbert[0].document_length == 24 and colbert[0].query_expansion["length"] == 12  # the model is untouched
    # "min" expansion: the override is the ceiling, never below the expansion length
    flexible = min_expansion_model(tiny_bert_dir)
    short = [{"query": "refund", "answer": "x"}, {"query": "reset my password", "answer": "y"}]
    assert MultiVectorEncoderDataCollator(flexible, max_length=3)(short)["features"][0]["input_ids"].shape[1] == 6
    assert MultiVectorEncoderDataCollator(flexible, max_length=9)(rows)["features"][0]["input_ids"].shape[1] == 9


def test_arguments_check_max_length(tmp_path):
    assert args(tmp_path).max_length is None
    assert args(tmp_path, max_length='{"query": 32, "document": 180}').max_length == {"query": 32, "document": 180}
    assert args(tmp_path, max_length=64).max_length == 64
    for bad in (0, -3, 2.5, True, {"document": 0}, {"query": "long"}):
        with pytest.raises(ValueError, match="max_length"):
            args(tmp_path, max_length=bad)


# -- the trainer ----------------------------------------------------------------------------------------------
def test_defaults_and_top_level_names(colbert, tmp_path):
    trainer = MultiVectorEncoderTrainer(model=colbert, args=args(tmp_path, max_length=16), train_dataset=pairs())
    assert isinstance(trainer.loss, MultiVectorMultipleNegativesRankingLoss) and trainer.loss.scale == 1.0
    assert isinstance(trainer.data_collator, MultiVectorEncoderDataCollator)
    assert trainer.data_collator.max_length == 16
    with pytest.raises(TypeError, match="MultiVectorEncoderTrainingArguments"):
        MultiVectorEncoderTrainer(model=colbert, args=SentenceTransformerTrainingArguments(output_dir=str(tmp_path)),
                                  train_dataset=pairs())
    assert sentencekit.MultiVectorEncoderTrainer is MultiVectorEncoderTrainer
    assert sentencekit.MultiVectorEncoderTrainingArguments is MultiVectorEncoderTrainingArguments


def test_training_lowers_the_loss_and_checkpoints_load_as_multivector_models(colbert, tmp_path):
    loss = MultiVectorMultipleNegativesRankingLoss(colbert)
    probe = [{**colbert.tokenize(QUERIES, task="query"), "task": "query"},
             {**colbert.tokenize(ANSWERS, task="document"), "task": "document"}]
    colbert.eval()
    with torch.no_grad():
        before = float(loss(probe))
    trainer = MultiVectorEncoderTrainer(
        model=colbert, loss=loss, train_dataset=pairs(),
        args=args(tmp_path, num_train_epochs=8, per_device_train_batch_size=8, learning_rate=5e-3,
                  save_strategy="steps", save_steps=4, max_length={"document": 16}))
    trainer.train()
    colbert.eval()
    with torch.no_grad():
        after = float(loss(probe))
    assert after < before * 0.7, (before, after)
    folder = tmp_path / "out" / "checkpoint-8"
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "MultiVectorEncoder"
    assert json.loads((folder / "sentence_bert_config.json").read_text())["document_length"] == 24  # not 16
    reloaded = MultiVectorEncoder(str(folder), device="cpu")
    for ours, theirs in zip(reloaded.encode_query(QUERIES[:3]), colbert.encode_query(QUERIES[:3])):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_resuming_from_a_checkpoint_reaches_the_same_weights(tiny_mv_dir, tmp_path):
    def train(output, resume=None):
        model = MultiVectorEncoder(str(tiny_mv_dir), device="cpu")
        trainer = MultiVectorEncoderTrainer(
            model=model, train_dataset=pairs(), loss=CachedMultiVectorMultipleNegativesRankingLoss(model,
                                                                                                 mini_batch_size=2),
            args=args(tmp_path, output_dir=str(output), max_steps=6, per_device_train_batch_size=4,
                      learning_rate=1e-3, save_strategy="steps", save_steps=3))
        trainer.train(resume_from_checkpoint=resume)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    reference = train(tmp_path / "ref")
    shutil.copytree(tmp_path / "ref" / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    resumed = train(tmp_path / "resumed", resume=True)
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_best_model_is_loaded_at_the_end(colbert, tmp_path):
    from sentencekit.evaluation import MultiVectorInformationRetrievalEvaluator

    evaluator = MultiVectorInformationRetrievalEvaluator(
        queries={f"q{i}": q for i, q in enumerate(QUERIES)}, corpus={f"d{i}": a for i, a in enumerate(ANSWERS)},
        relevant_docs={f"q{i}": {f"d{i}"} for i in range(len(QUERIES))}, name="toy")
    trainer = MultiVectorEncoderTrainer(
        model=colbert, train_dataset=pairs(), eval_dataset=pairs(4), evaluator=evaluator,
        args=args(tmp_path, num_train_epochs=3, per_device_train_batch_size=4, learning_rate=2e-3,
                  eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
                  load_best_model_at_end=True, metric_for_best_model="eval_toy_maxsim_ndcg@10"))
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None and "eval_loss" in trainer.state.log_history[1]
    reloaded = MultiVectorEncoder(best, device="cpu")
    for ours, theirs in zip(reloaded.encode_document(ANSWERS[:2]), colbert.encode_document(ANSWERS[:2])):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_distillation_data_format(colbert, tmp_path):
    data = Dataset.from_dict({"query": QUERIES[:4], "document_1": ANSWERS[:4], "document_2": ANSWERS[4:],
                              "scores": [[3.0, 1.0], [2.0, 0.0], [1.5, 1.0], [4.0, 0.5]]})
    trainer = MultiVectorEncoderTrainer(model=colbert, train_dataset=data,
                                        loss=MultiVectorDistillKLDivLoss(colbert, temperature=2.0),
                                        args=args(tmp_path, max_steps=2, per_device_train_batch_size=4))
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0
