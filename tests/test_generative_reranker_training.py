"""Training a generative (causal-LM) reranker as sentence-transformers 6.2 does: ``CrossEncoderTrainer`` +
``BinaryCrossEntropyLoss`` on the ``LogitScore`` scores (logit("yes") - logit("no") at the last position), the
pairs rendered through the chat template. 6.2 refuses nothing here (``BinaryCrossEntropyLoss.forward`` runs
``model.preprocess`` and reads ``outputs["scores"]``), so neither do we."""

from __future__ import annotations

import numpy as np
import torch

from sentencekit import CrossEncoder
from tests.decoder_folders import build_generative_reranker, decoder_test_marks

pytestmark = decoder_test_marks()
QUERIES = ["capital of France", "fast animal", "boiling point of water", "largest planet"]
GOOD = ["Paris is the capital of France.", "Cheetahs are the fastest land animals.",
        "Water boils at 100 degrees Celsius.", "Jupiter is the largest planet."]


def pairs_and_labels() -> tuple[list[str], list[str], list[float]]:
    """Each query with its answer (label 1) and with another query's answer (label 0)."""
    first, second, labels = [], [], []
    for i, query in enumerate(QUERIES):
        first += [query, query]
        second += [GOOD[i], GOOD[(i + 1) % len(GOOD)]]
        labels += [1.0, 0.0]
    return first, second, labels


def test_trainer_trains_a_generative_reranker(tmp_path):
    from datasets import Dataset

    from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss
    from sentencekit.training import CrossEncoderTrainer, CrossEncoderTrainingArguments

    folder = build_generative_reranker(tmp_path / "reranker", "qwen3-reranker")
    model = CrossEncoder(str(folder), device="cpu")
    assert model.engine.message_format == "flat" and type(model[1]).__name__ == "LogitScore"
    first, second, labels = pairs_and_labels()
    data = Dataset.from_dict({"query": first, "document": second, "label": labels})
    loss = BinaryCrossEntropyLoss(model)
    target = torch.tensor(labels)

    def loss_value() -> float:
        with torch.no_grad():
            return float(loss([first, second], target))

    before_loss = loss_value()
    before_weights = model[0].auto_model.model.layers[0].mlp.up_proj.weight.detach().clone()
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=15,
                                         per_device_train_batch_size=4, learning_rate=5e-3, report_to="none",
                                         disable_tqdm=True, save_strategy="no", seed=0)
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    model.eval()
    after_loss = loss_value()
    assert after_loss < before_loss - 0.1, (before_loss, after_loss)  # from ln 2 (random yes/no logits)
    moved = model[0].auto_model.model.layers[0].mlp.up_proj.weight.detach()
    assert float((moved - before_weights).abs().max()) > 1e-4
    scores = model.predict(list(zip(first, second)))
    assert scores[0::2].mean() > scores[1::2].mean() + 0.1  # the answers now score above the mismatches
    model.save(tmp_path / "trained")
    reloaded = CrossEncoder(str(tmp_path / "trained"), device="cpu")
    assert reloaded.engine.message_format == "flat"
    np.testing.assert_allclose(reloaded.predict(list(zip(first, second))), scores, atol=1e-5)
