"""A small training run used by the trainer tests, in-process or as a subprocess that can be killed.

    python tests/training_script.py MODEL_DIR OUTPUT_DIR [--kill-at-step N] [--resume]
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class CosineMSE(nn.Module):
    """(cos(a, b) - label)^2, enough to train a tiny model; the trainer tests do not depend on the
    loss package."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, features, labels):
        a, b = (self.model(f)["sentence_embedding"] for f in features)
        return ((torch.cosine_similarity(a, b) - labels) ** 2).mean()


def toy_dataset(n: int = 96, seed: int = 0):
    import random

    from datasets import Dataset

    words = "hello world refund policy cat dog sat mat weather paris order ship".split()
    rng = random.Random(seed)
    rows = {"sentence1": [], "sentence2": [], "score": []}
    for _ in range(n):
        a = [rng.choice(words) for _ in range(4)]
        b = [rng.choice(words) for _ in range(4)]
        rows["sentence1"].append(" ".join(a))
        rows["sentence2"].append(" ".join(b))
        rows["score"].append(len(set(a) & set(b)) / 4)
    return Dataset.from_dict(rows)


class KillAt:
    """A callback that SIGKILLs this process right after a given step (as a crash would)."""

    def __new__(cls, step: int):
        from transformers import TrainerCallback

        class _Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == step:
                    os.kill(os.getpid(), signal.SIGKILL)

        return _Kill()


def run(model_dir: str, output_dir: str, *, kill_at_step: int | None = None, resume: bool = False,
        epochs: int = 2, save_steps: int = 4):
    from sentencekit import SentenceTransformer
    from sentencekit.training import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir, num_train_epochs=epochs, per_device_train_batch_size=16, learning_rate=5e-4,
        warmup_ratio=0.1, logging_steps=2, save_steps=save_steps, save_strategy="steps", report_to="none",
        seed=0, disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=toy_dataset(), loss=CosineMSE(model),
        callbacks=[KillAt(kill_at_step)] if kill_at_step else None,
    )
    trainer.train(resume_from_checkpoint=True if resume else None)
    return trainer


if __name__ == "__main__":
    argv = sys.argv[1:]
    kill = int(argv[argv.index("--kill-at-step") + 1]) if "--kill-at-step" in argv else None
    run(argv[0], argv[1], kill_at_step=kill, resume="--resume" in argv)
