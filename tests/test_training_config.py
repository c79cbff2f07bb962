"""`sentencekit train CONFIG.yaml` on a tiny model and a small JSON lines dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentencekit.cli import main
from sentencekit.files import ModelFormatError
from sentencekit.training.config import load_config, run_config

ROWS = [("hello world", "hello there world", 0.9), ("refund policy", "the weather in paris", 0.1),
        ("the cat sat", "the cat sat on the mat", 0.8), ("password reset", "cancel my order", 0.0)] * 4


def write_rows(path):
    with open(path, "w") as f:
        for a, b, s in ROWS:
            f.write(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n")
    return path


@pytest.mark.slow
def test_train_from_yaml(tiny_st_dir, tmp_path, capsys):
    write_rows(tmp_path / "train.jsonl")
    (tmp_path / "config.yaml").write_text(f"""
model: {tiny_st_dir}
train_dataset: {{path: train.jsonl}}
eval_dataset: {{path: train.jsonl, limit: 8}}
loss: {{name: CoSENTLoss, matryoshka_dims: [32, 16]}}
evaluator: EmbeddingSimilarityEvaluator
args: {{num_train_epochs: 1, per_device_train_batch_size: 8, learning_rate: 1.0e-4, report_to: none,
        eval_strategy: epoch, save_strategy: "no", disable_tqdm: true}}
output_dir: out
""")
    assert main(["train", str(tmp_path / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "Final evaluation: pearson_cosine=" in out and "spearman_cosine=" in out
    final = tmp_path / "out" / "final"
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(final), device="cpu")
    assert model.encode(["hello"]).shape == (1, 32)
    card = (final / "README.md").read_text()
    assert "MatryoshkaLoss" in card and "16 rows" in card
    assert np.isfinite(model.encode(["hello world"])).all()


@pytest.mark.slow
def test_train_cross_encoder_from_yaml(tiny_bert_dir, tmp_path):
    write_rows(tmp_path / "train.jsonl")
    (tmp_path / "ce.yaml").write_text(f"""
model: {tiny_bert_dir}
model_type: cross-encoder
train_dataset: {{path: train.jsonl}}
eval_dataset: {{path: train.jsonl}}
loss: BinaryCrossEntropyLoss
evaluator: CrossEncoderCorrelationEvaluator
args: {{num_train_epochs: 1, per_device_train_batch_size: 8, report_to: none, save_strategy: "no"}}
output_dir: ce-out
""")
    final = run_config(tmp_path / "ce.yaml")
    from sentencekit import CrossEncoder

    assert CrossEncoder(str(final), device="cpu").predict([("hello", "world")]).shape == (1,)


def test_config_errors(tmp_path, tiny_st_dir):
    (tmp_path / "bad.yaml").write_text("model: x\n")
    with pytest.raises(ModelFormatError, match="train_dataset"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ModelFormatError, match="Malformed YAML"):
        load_config(tmp_path / "broken.yaml")
    write_rows(tmp_path / "t.jsonl")
    (tmp_path / "loss.yaml").write_text(
        f"model: {tiny_st_dir}\ntrain_dataset: {{path: t.jsonl}}\noutput_dir: o\nloss: os.system\n")
    with pytest.raises(ModelFormatError, match="Unknown loss 'os.system'"):
        run_config(tmp_path / "loss.yaml")
