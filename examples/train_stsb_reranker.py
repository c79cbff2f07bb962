"""Train a real reranker: a CrossEncoder initialised from all-MiniLM-L6-v2 (a fresh one-score head),
trained on STS Benchmark train with scores scaled to 0-1 and BinaryCrossEntropyLoss. Reports STS-B test
Spearman, and with --install copies it to $SENTENCEKIT_HOME/models/minilm-stsb-reranker (for
`--rerank PATH`: `--rerank auto` never picks it, see sentencekit.search.defaults).

    .venv/bin/python examples/train_stsb_reranker.py --install     # 3 epochs, lr 4e-5, batch 16

The weights are not committed (too large for git); this one command recreates them.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--output", default="out/minilm-stsb-reranker")
    parser.add_argument("--install", action="store_true",
                        help="copy the model to $SENTENCEKIT_HOME/models/minilm-stsb-reranker")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import torch
    from datasets import Dataset

    from sentencekit import CrossEncoder
    from sentencekit.datasets import load_stsb
    from sentencekit.evaluation import CrossEncoderCorrelationEvaluator
    from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss
    from sentencekit.search.defaults import install_model
    from sentencekit.training import CrossEncoderTrainer, CrossEncoderTrainingArguments

    def split(name: str):
        pairs = load_stsb(name)
        return Dataset.from_dict({"sentence1": [p.sentence1 for p in pairs],
                                  "sentence2": [p.sentence2 for p in pairs],
                                  "score": [p.score / 5.0 for p in pairs]})

    def evaluator(name: str):
        data = split(name)
        return CrossEncoderCorrelationEvaluator(list(zip(data["sentence1"], data["sentence2"])), data["score"],
                                                name=f"sts-{name}", batch_size=64)

    torch.manual_seed(args.seed)
    model = CrossEncoder(args.model, num_labels=1)
    training_args = CrossEncoderTrainingArguments(
        output_dir=args.output, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_ratio=args.warmup_ratio, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=1, logging_steps=50, seed=args.seed, report_to="none",
    )
    trainer = CrossEncoderTrainer(model=model, args=training_args, train_dataset=split("train"),
                                  loss=BinaryCrossEntropyLoss(model), evaluator=evaluator("dev"))
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    final = os.path.join(args.output, "final")
    model.save(final, model_name="minilm-stsb-reranker")
    test = evaluator("test")
    spearman = test(model)[test.primary_metric]
    print(f"\nTraining took {minutes:.1f} min. STS-B test Spearman: {100 * spearman:.2f}")
    if args.install:
        target = install_model(final, "minilm-stsb-reranker")
        print(f"Installed: {target} (use it with --rerank {target}; --rerank auto never picks an STS-B "
              "reranker: it scores similarity, not answers)")


if __name__ == "__main__":
    main()
