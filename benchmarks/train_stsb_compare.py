"""Fine-tuning speed and quality side by side: sentencekit vs sentence-transformers, same data, model and
hyper-parameters (all-MiniLM-L6-v2, STS-B train, CoSENTLoss, 2 epochs, lr 1e-4, batch 16, 10% warm-up),
one after the other in one process. Prints minutes, steps/s and STS-B test Spearman for each, and the
speed ratio.

    bash benchmarks/setup_peer.sh && .venv-peer/bin/python benchmarks/train_stsb_compare.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def data(split: str):
    from datasets import Dataset

    from sentencekit.datasets import load_stsb

    pairs = load_stsb(split)
    return Dataset.from_dict({"sentence1": [p.sentence1 for p in pairs], "sentence2": [p.sentence2 for p in pairs],
                              "score": [p.score / 5.0 for p in pairs]})


def spearman_test(model) -> float:
    from sentencekit.evaluation.metrics import spearman

    test = data("test")
    a = model.encode(test["sentence1"], batch_size=64, convert_to_numpy=True)
    b = model.encode(test["sentence2"], batch_size=64, convert_to_numpy=True)
    cos = (a * b).sum(1) / ((a**2).sum(1) ** 0.5 * (b**2).sum(1) ** 0.5)
    return 100 * spearman(cos, test["score"])


def run(lib: str, folder: str, epochs: float, seed: int) -> tuple[float, float, int]:
    if lib == "sentencekit":
        from sentencekit import SentenceTransformer
        from sentencekit.losses import CoSENTLoss
        from sentencekit.training import SentenceTransformerTrainer as Trainer
        from sentencekit.training import SentenceTransformerTrainingArguments as Args
    else:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers import SentenceTransformerTrainer as Trainer
        from sentence_transformers import SentenceTransformerTrainingArguments as Args
        from sentence_transformers.losses import CoSENTLoss
    model = SentenceTransformer(folder, device="cpu")
    args = Args(output_dir=tempfile.mkdtemp(), num_train_epochs=epochs, per_device_train_batch_size=16,
                learning_rate=1e-4, warmup_steps=0.1, save_strategy="no", logging_steps=100, seed=seed,
                report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data("train"), loss=CoSENTLoss(model))
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, spearman_test(model), trainer.state.global_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import sentence_transformers
    import torch

    from sentencekit.hub import resolve_model

    folder = str(resolve_model("sentence-transformers/all-MiniLM-L6-v2").path)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"sentence-transformers {sentence_transformers.__version__}")
    results = {}
    for lib in ("sentencekit", "sentence-transformers"):
        seconds, rho, steps = run(lib, folder, args.epochs, args.seed)
        results[lib] = seconds
        print(f"{lib:<22} {seconds / 60:5.2f} min  {steps / seconds:5.2f} steps/s  STS-B test Spearman {rho:.2f}")
    print(f"speed ratio sentencekit / sentence-transformers: "
          f"{results['sentence-transformers'] / results['sentencekit']:.2f}x")


if __name__ == "__main__":
    main()
