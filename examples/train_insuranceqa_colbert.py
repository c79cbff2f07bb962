"""Train a ColBERT head on all-MiniLM-L6-v2 with InsuranceQA train (question, correct answer) pairs:
``MultiVectorEncoder(minilm)`` (the encoder plus a new random token projection to 128 dimensions, as
sentence-transformers 6.2 builds it) fine-tuned with MultiVectorMultipleNegativesRankingLoss and our
MultiVectorEncoderTrainer; time-bounded. Reports P@1 / MRR@10 / nDCG@10 / Recall@100 on test (and valid)
questions before and after, each question's pool (its correct answers plus 200 negatives) ranked by MaxSim:
the protocol of `benchmarks/insuranceqa.py` and `examples/train_insuranceqa_splade.py`.

    SENTENCEKIT_HOME=/tmp/sk-home-qa PYTHONPATH=src:examples nice -n 10 .venv/bin/python \\
        examples/train_insuranceqa_colbert.py --max-minutes 18 --test-questions 200

Choices, and why:
- ColBERT's recipe on the converted model: queries expanded to 32 tokens with [MASK] (fixed query
  expansion: the encoder does not attend to them, MaxSim scores them), answers cut at 160 tokens
  (`document_length`, saved with the model so that inference cuts them the same way), token vectors
  L2-normalised, MaxSim. No punctuation skiplist and no [Q] / [D] markers: the conversion's defaults.
- MV-MNRL with in-batch negatives only (batch 32, scale 1: the sentence-transformers default for MaxSim) and
  the no-duplicates sampler (a question with two correct answers would otherwise meet its second answer
  as a "negative"); one learning rate (5e-5) for the encoder and the new projection; constant after
  warm-up, since the run stops on a wall clock (`--max-minutes`).
- The projection is random before training, so "before" is MiniLM's token states through a random 384 -> 128
  map (which roughly keeps their dot products); the seed (--seed) fixes it.
- Training and evaluation compute in bf16 where the CPU has it (autocast in training, as the embedder script;
  the saved model loaded with `compute_dtype="bfloat16"` for evaluation, before and after alike: the untrained
  model is saved to `initial/` first). Evaluation embeds every distinct answer of the questions' pools once
  (~21k answers for 200 test questions, ~100 token vectors each), 4,096 at a time, and scores only the pool
  pairs (`similarity_pairwise`).

`--output` gets the final model (`final/`, sentence-transformers 6.2's MultiVectorEncoder format); the weights
are not committed.

Measured (2 cores shared with other jobs, load average 4-5; this run at nice 5), `--max-minutes 18
--test-questions 200`: 18.1 min, 146 steps of 32 pairs (0.22 epoch of 21,325 pairs; 2.1-2.4 s a step over the
first 16 steps, then 7-12 s as the other jobs' load grew); train loss 0.80 (steps 1-25) -> 0.36 (50) -> 0.26
(125); each evaluation 6-7 min (~21k answers embedded in bf16).

    test (200 questions)   P@1     MRR@10   nDCG@10   Recall@100
    before                 0.235   0.375    0.379     0.929
    after                  0.435   0.548    0.540     0.969

On the same 200 questions (`benchmarks/insuranceqa.py --limit 200`): BM25 0.210 / 0.296, dense all-MiniLM-L6-v2
0.415 / 0.534, RRF hybrid 0.290 / 0.383 (P@1 / MRR@10). So the random projection alone starts below the dense
model, and a fifth of an epoch takes MaxSim past it (+0.020 P@1, +0.014 MRR@10; one run, one seed).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def evaluate(folder: str, data, splits: dict, label: str, batch_size: int) -> dict:  # noqa: ANN001
    """Pool metrics of each split (``{split: questions}``) of the model saved in ``folder``, printed as one line
    each. The model is loaded in :func:`~insuranceqa_data.compute_dtype` (bf16 where the CPU computes it: 4x
    the float32 encoding speed here), before and after training alike."""
    from insuranceqa_data import compute_dtype, multivector_pool_rankings, pool_metrics

    from sentencekit import MultiVectorEncoder

    model = MultiVectorEncoder(folder, compute_dtype=compute_dtype())
    results = {}
    for split, questions in splits.items():
        start = time.perf_counter()
        rankings = multivector_pool_rankings(model, data, questions, batch_size=batch_size)
        results[split] = pool_metrics(rankings, questions)
        print(f"[{label}] {split} ({len(questions)} questions): "
              + " ".join(f"{k} {v:.4f}" for k, v in results[split].items())
              + f" [{time.perf_counter() - start:.0f} s]", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="encoder folder (default: the installed all-MiniLM-L6-v2)")
    parser.add_argument("--max-minutes", type=float, default=18, help="wall-clock training budget")
    parser.add_argument("--train-questions", type=int, default=None, help="first N train questions (default all)")
    parser.add_argument("--valid-questions", type=int, default=0)
    parser.add_argument("--test-questions", type=int, default=200)
    parser.add_argument("--pool-negatives", type=int, default=None,
                        help="keep only each pool's first N negatives (quick checks; default: the full pools)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--query-length", type=int, default=32, help="fixed query expansion length (0: none)")
    parser.add_argument("--document-length", type=int, default=160)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--output", default="out/insuranceqa-colbert")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from insuranceqa_data import BASE_MODEL, TimeBudget, compute_dtype, load_insuranceqa

    from sentencekit import MultiVectorEncoder
    from sentencekit.hub import resolve_model
    from sentencekit.losses.multivector import MultiVectorMultipleNegativesRankingLoss
    from sentencekit.training import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

    data = load_insuranceqa()
    questions = data.questions("train", args.train_questions)
    pairs = Dataset.from_dict({"question": [q.text for q in questions for _ in q.positives],
                               "answer": [data.answers[a] for q in questions for a in q.positives]})
    pairs = pairs.shuffle(seed=args.seed)  # a time-bounded run should see every domain
    splits = {"test": data.questions("test", args.test_questions)}
    if args.valid_questions:
        splits = {"valid": data.questions("valid", args.valid_questions), **splits}
    if args.pool_negatives is not None:
        splits = {split: [replace(q, negatives=q.negatives[: args.pool_negatives]) for q in qs]
                  for split, qs in splits.items()}

    torch.manual_seed(args.seed)  # the new projection's initial weights
    model = MultiVectorEncoder(str(resolve_model(args.model or BASE_MODEL).path))
    transformer = model[0]
    transformer.document_length = args.document_length
    if args.query_length:
        transformer.query_expansion = {"strategy": "fixed", "length": args.query_length}
    initial = os.path.join(args.output, "initial")
    model.save(initial, model_name="insuranceqa-colbert-minilm-untrained")
    before = evaluate(initial, data, splits, "before", args.eval_batch_size)

    training_args = MultiVectorEncoderTrainingArguments(
        output_dir=args.output, num_train_epochs=1, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=20, lr_scheduler_type="constant_with_warmup",
        bf16=compute_dtype() == "bfloat16", use_cpu=not torch.cuda.is_available(), save_strategy="no",
        logging_steps=25, seed=args.seed,
        report_to="none", batch_sampler="no_duplicates",
    )
    trainer = MultiVectorEncoderTrainer(model=model, args=training_args, train_dataset=pairs,
                                        loss=MultiVectorMultipleNegativesRankingLoss(model),
                                        callbacks=[TimeBudget(args.max_minutes, args.max_minutes, evaluate=False)])
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    steps = trainer.state.global_step
    final = os.path.join(args.output, "final")
    model.save(final, model_name="insuranceqa-colbert-minilm")
    losses = [(h["step"], round(h["loss"], 3)) for h in trainer.state.log_history if "loss" in h]
    print(f"\nTraining took {minutes:.1f} min: {steps} steps of {args.batch_size} pairs "
          f"({steps * args.batch_size / len(pairs):.2f} epochs of {len(pairs)} pairs). Train loss (step, loss): "
          f"{losses}. Saved to {final}", flush=True)
    after = evaluate(final, data, splits, "after", args.eval_batch_size)
    print("\nP@1 / MRR@10 before -> after: " + ", ".join(
        f"{split} {before[split]['P@1']:.3f} / {before[split]['MRR@10']:.3f} -> "
        f"{after[split]['P@1']:.3f} / {after[split]['MRR@10']:.3f}" for split in splits))


if __name__ == "__main__":
    main()
