"""The trainers on tiny models: training lowers the loss, checkpoints are sentence-transformers folders,
a run killed with SIGKILL resumes to the same weights, evaluators, multi-dataset, model card, plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn

from sentencekit import CrossEncoder, SentenceTransformer
from sentencekit.training import (
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
    last_complete_checkpoint,
)
from tests.training_script import CosineMSE, run, toy_dataset

pytestmark = pytest.mark.slow

SCRIPT = os.path.join(os.path.dirname(__file__), "training_script.py")


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_lowers_loss_and_writes_st_checkpoints(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    data = toy_dataset()
    loss = CosineMSE(model)
    batch = next(iter(SentenceTransformerTrainer(model=model, loss=loss, train_dataset=data, args=(
        SentenceTransformerTrainingArguments(output_dir=str(tmp_path / "probe"), report_to="none"))
    ).get_train_dataloader()))
    with torch.no_grad():
        before = float(loss(batch["features"], batch["label"]))
    trainer = run(str(tiny_st_dir), str(tmp_path / "out"), epochs=3, save_steps=6)  # 18 steps
    with torch.no_grad():
        after = float(CosineMSE(trainer.st_model)(batch["features"], batch["label"]))
    assert after < before * 0.7, (before, after)
    checkpoints = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-12", "checkpoint-18", "checkpoint-6"]
    folder = tmp_path / "out" / "checkpoint-18"
    assert (folder / "modules.json").is_file() and (folder / "trainer_state.json").is_file()
    reloaded = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_allclose(reloaded.encode(["hello world"]), trainer.st_model.encode(["hello world"]), atol=1e-6)
    assert (tmp_path / "out" / "training_curves.png").stat().st_size > 1000


def test_killed_run_resumes_to_the_same_weights(tiny_st_dir, tmp_path):
    reference = run(str(tiny_st_dir), str(tmp_path / "ref")).model
    out = tmp_path / "crash"
    proc = subprocess.run([sys.executable, SCRIPT, str(tiny_st_dir), str(out), "--kill-at-step", "7"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL
    assert last_complete_checkpoint(out).endswith("checkpoint-4")
    # A checkpoint the crash left half-written is never picked.
    (out / "checkpoint-6").mkdir()
    (out / "checkpoint-6" / "model.safetensors").write_bytes(b"partial")
    assert last_complete_checkpoint(out).endswith("checkpoint-4")
    resumed = run(str(tiny_st_dir), str(out), resume=True)
    assert resumed.state.global_step == 12
    ref, got = params(reference), params(resumed.model)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=1e-4)


class FixedEvaluator:
    """Returns a metric that improves with the step number, to drive best-model selection."""

    primary_metric = "toy_score"
    greater_is_better = True

    def __init__(self):
        self.calls = []

    def __call__(self, model, output_path=None, epoch=-1, steps=-1):
        self.calls.append(steps)
        return {"toy_score": float(-abs(steps - 4))}  # best at step 4


def test_evaluator_metrics_and_best_model(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    evaluator = FixedEvaluator()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=16, learning_rate=5e-4,
        eval_strategy="steps", eval_steps=2, save_steps=2, load_best_model_at_end=True,
        metric_for_best_model="eval_toy_score", report_to="none", disable_tqdm=True)
    data = toy_dataset(64)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                         eval_dataset=data.select(range(16)), loss=CosineMSE(model),
                                         evaluator=evaluator)
    trainer.train()
    assert evaluator.calls[:2] == [2, 4]
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-4")
    best = SentenceTransformer(str(tmp_path / "out" / "checkpoint-4"), device="cpu")
    np.testing.assert_allclose(trainer.st_model.encode(["cat sat"]), best.encode(["cat sat"]), atol=1e-6)
    metrics = trainer.evaluate()
    assert "eval_toy_score" in metrics and "eval_loss" in metrics
    # Without an eval dataset, evaluate() still runs the evaluator.
    trainer.eval_dataset = None
    assert set(trainer.evaluate()) == {"eval_toy_score"}
    # ... and an evaluator alone drives evaluation during training.
    evaluator_only = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=CosineMSE(model),
                                                evaluator=FixedEvaluator())
    evaluator_only.train()
    assert evaluator_only.evaluator.calls[:2] == [2, 4]
    trainer.save_model(str(tmp_path / "final"))
    card = (tmp_path / "final" / "README.md").read_text()
    assert "CosineMSE" in card and "64 rows" in card and "toy_score" in card


def test_multi_dataset_training_with_a_loss_per_dataset(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    seen = {"a": 0, "b": 0}

    class Counting(CosineMSE):
        def __init__(self, model, name):
            super().__init__(model)
            self.name = name

        def forward(self, features, labels):
            seen[self.name] += 1
            return super().forward(features, labels)

    a, b = toy_dataset(32, seed=1), toy_dataset(16, seed=2)
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1,
                                                per_device_train_batch_size=8, report_to="none", disable_tqdm=True,
                                                save_strategy="no")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset={"a": a, "b": b},
                                         loss={"a": Counting(model, "a"), "b": Counting(model, "b")})
    trainer.train()
    assert seen == {"a": 4, "b": 2}
    with pytest.raises(ValueError, match="No loss for training dataset"):
        SentenceTransformerTrainer(model=model, args=args, train_dataset={"a": a, "b": b},
                                   loss={"a": CosineMSE(model)})


def test_prompts_and_learning_rate_mapping(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), prompts={"sentence1": "query: "}, report_to="none",
        learning_rate=1e-4, learning_rate_mapping={r"encoder\.layer\.1\.": 5e-3})
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=toy_dataset(8), loss=CosineMSE(model))
    batch = trainer.data_collator([toy_dataset(8)[0]])
    ids = batch["features"][0]["input_ids"][0].tolist()
    query_ids = model.tokenizer("query:", add_special_tokens=False)["input_ids"]
    assert ids[1 : 1 + len(query_ids)] == query_ids  # the prompt was prepended to sentence1 only
    ids2 = batch["features"][1]["input_ids"][0].tolist()
    assert ids2[1 : 1 + len(query_ids)] != query_ids
    optimizer = trainer.create_optimizer()
    lrs = sorted({g["lr"] for g in optimizer.param_groups})
    assert lrs == [1e-4, 5e-3]
    layer1 = {id(p) for n, p in model.named_parameters() if "encoder.layer.1." in n}
    for group in optimizer.param_groups:
        if any(id(p) in layer1 for p in group["params"]):
            assert group["lr"] == 5e-3


def test_loss_parameters_are_trained_and_checkpointed(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")

    class WithHead(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.head = nn.Linear(32, 1)

        def forward(self, features, labels):
            a, b = (self.model(f)["sentence_embedding"] for f in features)
            return ((self.head(a * b).squeeze(-1) - labels) ** 2).mean()

    loss = WithHead(model)
    before = loss.head.weight.detach().clone()
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1,
                                                per_device_train_batch_size=16, save_steps=2, report_to="none",
                                                disable_tqdm=True, learning_rate=1e-2)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=toy_dataset(32), loss=loss).train()
    assert not torch.equal(before, loss.head.weight)
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "out" / "checkpoint-2" / "loss_state.safetensors"))
    assert set(state) == {"0.head.weight", "0.head.bias"}  # only the loss's own parameters


def test_cross_encoder_trainer(tiny_ce_dir, tmp_path):
    model = CrossEncoder(str(tiny_ce_dir), device="cpu")
    data = toy_dataset(64)

    class BCE(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, inputs, labels):
            features = self.model.tokenize(list(zip(*inputs)))
            features.pop("truncated")
            logits = self.model({k: v.to(self.model.device) for k, v in features.items()})["scores"].squeeze(-1)
            return nn.functional.binary_cross_entropy_with_logits(logits, labels)

    loss = BCE(model)
    pairs = list(zip(data["sentence1"], data["sentence2"]))
    with torch.no_grad():
        before = float(loss([data["sentence1"], data["sentence2"]], torch.tensor(data["score"])))
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=4,
                                         per_device_train_batch_size=16, learning_rate=1e-3, report_to="none",
                                         disable_tqdm=True, save_steps=8)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss)
    trainer.train()
    with torch.no_grad():
        after = float(loss([data["sentence1"], data["sentence2"]], torch.tensor(data["score"])))
    assert after < before
    reloaded = CrossEncoder(str(tmp_path / "out" / "checkpoint-16"), device="cpu")
    np.testing.assert_allclose(reloaded.predict(pairs[:4]), trainer.st_model.predict(pairs[:4]), atol=1e-6)
    with pytest.raises(TypeError, match="CrossEncoderTrainingArguments"):
        CrossEncoderTrainer(model=model, args=SentenceTransformerTrainingArguments(output_dir=str(tmp_path)),
                            train_dataset=data, loss=loss)


def test_bad_datasets_are_refused(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), report_to="none")
    with pytest.raises(ValueError, match="only a label column"):
        SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"label": [1.0]}),
                                   loss=CosineMSE(model))
    with pytest.raises(TypeError, match="datasets.Dataset"):
        SentenceTransformerTrainer(model=model, args=args, train_dataset=[{"a": "x"}], loss=CosineMSE(model))
    assert json.loads(json.dumps(args.to_dict(), default=str))["batch_sampler"] == "batch_sampler"
