"""Fine-tune all-MiniLM-L6-v2 on InsuranceQA train (question, correct answer) pairs with
MultipleNegativesRankingLoss and our SentenceTransformerTrainer; time-bounded, with a learning curve
(P@1 / MRR@10 of dense ranking inside the pools of a valid subset).

    SENTENCEKIT_HOME=/tmp/sk-home-qa PYTHONPATH=src:examples nice -n 10 .venv/bin/python \\
        examples/train_insuranceqa_embedder.py --max-minutes 12 --install

Choices, and why:
- MNRL with in-batch negatives only (batch 32): every other question's answer in the batch is a negative,
  which is free (the answers are embedded anyway); the hard negatives go to the reranker's budget.
- The no-duplicates batch sampler: a question with several correct answers would otherwise meet its own
  second answer as an in-batch "negative".
- Answers cut at 160 tokens, bf16 autocast where the CPU has AVX-512 BF16, constant learning rate after
  warmup (the run stops on a wall-clock budget, not at a planned step).
- The learning curve is measured on the first 40 valid questions, each against its positives and the
  first 50 negatives of its pool: an embedder must embed every answer again at each point (~2,000 answers,
  a minute or two on two shared cores), and whole pools (~200 answers each) would allow only a handful of
  questions per point. The test figure in `benchmarks/insuranceqa.py` uses the whole pools.

`--install` copies the final model to `$SENTENCEKIT_HOME/models/insuranceqa-minilm`; the weights are not
committed.

Measured (2 cores shared with other jobs' test suites, this job at nice 10): `--max-minutes 12` ran
12.4 min, 122 steps of 32 pairs = 0.18 of an epoch of 21,325 pairs; train loss 0.474 (steps 1-25),
0.339, 0.353, 0.301 (76-100). Learning curve (40 valid questions, positives + 50 negatives each):
P@1 0.375 / MRR@10 0.530 (base) -> 0.425 / 0.577 (step 33) -> 0.375 / 0.542 (step 122); 40 questions
move P@1 in steps of 0.025, so the whole-pool test figures of `benchmarks/insuranceqa.py` are the
measure of this model.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-minutes", type=float, default=12, help="wall-clock training budget")
    parser.add_argument("--eval-every-minutes", type=float, default=6)
    parser.add_argument("--train-questions", type=int, default=None, help="first N train questions (default all)")
    parser.add_argument("--valid-questions", type=int, default=40)
    parser.add_argument("--valid-negatives", type=int, default=50, help="negatives kept per valid pool (curve only)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--output", default="out/insuranceqa-minilm")
    parser.add_argument("--install", action="store_true", help="copy to $SENTENCEKIT_HOME/models/insuranceqa-minilm")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from insuranceqa_data import (
        PoolRetrievalEvaluator,
        TimeBudget,
        compute_dtype,
        load_embedder,
        load_insuranceqa,
        save_and_curve,
    )

    from sentencekit.losses import MultipleNegativesRankingLoss
    from sentencekit.training import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    torch.manual_seed(args.seed)
    data = load_insuranceqa()
    questions = data.questions("train", args.train_questions)
    pairs = Dataset.from_dict({"question": [q.text for q in questions for _ in q.positives],
                               "answer": [data.answers[a] for q in questions for a in q.positives]})
    pairs = pairs.shuffle(seed=args.seed)  # a time-bounded run should see every domain

    model = load_embedder()
    model.max_seq_length = args.max_length
    evaluator = PoolRetrievalEvaluator(data, data.questions("valid", args.valid_questions),
                                       negatives=args.valid_negatives)
    evaluator.batch_size = 64
    base = evaluator(model, steps=0)[evaluator.primary_metric]  # the curve's starting point: the base model
    training_args = SentenceTransformerTrainingArguments(
        output_dir=args.output, num_train_epochs=1, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=20, lr_scheduler_type="constant_with_warmup",
        bf16=compute_dtype() == "bfloat16", use_cpu=not torch.cuda.is_available(), save_strategy="no",
        logging_steps=25, seed=args.seed, report_to="none", batch_sampler="no_duplicates",
    )
    budget = TimeBudget(args.max_minutes, args.eval_every_minutes)
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=pairs,
                                         loss=MultipleNegativesRankingLoss(model), evaluator=evaluator,
                                         callbacks=[budget])
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    final, curve = save_and_curve(trainer, model, evaluator, args.output, "insuranceqa-minilm")
    steps = trainer.state.global_step
    print(f"\nTraining took {minutes:.1f} min: {steps} steps of {args.batch_size} pairs "
          f"({steps * args.batch_size / len(pairs):.2f} epochs of {len(pairs)} pairs). Saved to {final}")
    curve = [(0, round(base, 4)), *curve]
    print(f"Learning curve (step, valid P@1): {curve}")
    if args.install:
        from sentencekit.search.defaults import install_model

        print(f"Installed: {install_model(final, 'insuranceqa-minilm')}")

if __name__ == "__main__":
    main()
