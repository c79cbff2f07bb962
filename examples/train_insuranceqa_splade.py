"""Fine-tune SPLADE-tiny on InsuranceQA train (question, correct answer) pairs with
SpladeLoss(SparseMultipleNegativesRankingLoss) and our SparseEncoderTrainer; time-bounded. Reports P@1 /
MRR@10 / nDCG@10 / Recall@100 on valid and test questions before and after, each question's pool (its
correct answers plus 200 negatives) ranked by the SPLADE dot product: the protocol of
`benchmarks/insuranceqa.py`.

    SENTENCEKIT_HOME=/tmp/sk-home-qa PYTHONPATH=src:examples nice -n 10 .venv/bin/python \\
        examples/train_insuranceqa_splade.py --max-minutes 30 --test-questions 200

Choices, and why:
- SPLADE-tiny (2 layers, 128 dims, the BERT vocabulary; `scripts/fetch_splade_tiny.py`): small enough to
  train on two CPU cores; --model takes any SparseEncoder or *ForMaskedLM folder.
- SpladeLoss with sentence-transformers' default weights (documents 3e-5, queries 5e-5), warmed up
  quadratically over the first third of the steps by the trainer's callback; in-batch negatives only
  (batch 32) and the no-duplicates sampler (a question with two correct answers would otherwise meet its
  second answer as a "negative").
- The run stops on a wall clock (`--max-minutes`); the learning rate is constant after warm-up. The
  regulariser warm-up is planned over the whole epoch, so a short run trains with a small FLOPS weight.
- Evaluation embeds every distinct answer of the questions' pools once (~200 per question; 200 test
  questions are ~21k answers). SPLADE is slow to encode on a CPU: the MLM head multiplies every token by
  the 30,522-term vocabulary; SPLADE-tiny took 0.12 s per answer (160 tokens) on two shared cores, so
  200 full test pools take ~40 min per evaluation. --valid-questions / --test-questions size it;
  --pool-negatives keeps only each pool's first negatives for a quick check (those figures are not
  comparable with the full-pool protocol). Evaluation runs on ONNX Runtime by default (`--eval-backend`:
  the model folder, before and after, exported once with the SPLADE pooling in the graph), about 6x the
  torch path's speed on these cores.

`--output` gets the final model (`final/`, sentence-transformers format); the weights are not committed.

Measured (2 cores, nice 5, other work beside it), `--max-minutes 18 --valid-questions 50 --test-questions 200`:
18.1 min, 258 steps of 32 pairs (0.39 epoch); train loss 1.11 (steps 1-25) -> 0.69 (50) -> 0.59 (250), the
FLOPS weights at their full 3e-5 / 5e-5 from step ~220; evaluations on ONNX Runtime 40-80 s each.

    split (questions)   P@1 before -> after   MRR@10 before -> after   Recall@100   query active dims
    valid (50)          0.320 -> 0.320        0.398 -> 0.436           0.887 -> 0.963    18 -> 19
    test (200)          0.320 -> 0.355        0.408 -> 0.454           0.862 -> 0.889    19 -> 19

On the same 200 test questions (`benchmarks/insuranceqa.py --limit 200`): BM25 0.210 / 0.296, dense
all-MiniLM-L6-v2 0.415 / 0.534, RRF hybrid 0.290 / 0.383 (P@1 / MRR@10). So SPLADE-tiny (2 layers of 128
dims) sits between BM25 and the dense model (6 layers of 384), and 0.4 epoch moves it
+0.046 MRR@10; still rising when the budget ended.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_model() -> str:
    """SPLADE-tiny where `scripts/fetch_splade_tiny.py` puts it (``$SENTENCEKIT_SPLADE_TINY`` or the venv)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "fetch_splade_tiny.py"
    spec = importlib.util.spec_from_file_location("fetch_splade_tiny", script)
    fetcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)  # type: ignore[union-attr]
    folder = fetcher.default_target()
    if not fetcher.is_complete(folder):
        raise SystemExit(f"SPLADE-tiny is not in {folder}: run `python scripts/fetch_splade_tiny.py` (or pass --model)")
    return str(folder)


def evaluation_model(model, folder: str, backend: str, max_length: int):  # noqa: ANN001, ANN201
    """The model to evaluate: ``model`` itself on torch, else the saved ``folder`` loaded on ``backend``
    (ONNX: the same weights, several times faster to encode on a CPU), cut at the training length."""
    if backend == "torch":
        return model
    from sentencekit import SparseEncoder

    evaluated = SparseEncoder(folder, backend=backend)
    evaluated.max_seq_length = max_length
    return evaluated


def evaluate(model, data, splits: dict, label: str) -> dict:  # noqa: ANN001
    """Pool metrics of each split (``{split: questions}``), printed as one line each."""
    from insuranceqa_data import pool_metrics, sparse_pool_rankings

    results = {}
    for split, questions in splits.items():
        start = time.perf_counter()
        metrics = pool_metrics(sparse_pool_rankings(model, data, questions), questions)
        sparsity = model.sparsity(model.encode_query([q.text for q in questions[:50]]))["active_dims"]
        results[split] = metrics
        print(f"[{label}] {split} ({len(questions)} questions): "
              + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
              + f" | query active dims {sparsity:.0f} [{time.perf_counter() - start:.0f} s]", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="SparseEncoder / *ForMaskedLM folder (default: SPLADE-tiny)")
    parser.add_argument("--max-minutes", type=float, default=30, help="wall-clock training budget")
    parser.add_argument("--train-questions", type=int, default=None, help="first N train questions (default all)")
    parser.add_argument("--valid-questions", type=int, default=50)
    parser.add_argument("--test-questions", type=int, default=200)
    parser.add_argument("--pool-negatives", type=int, default=None,
                        help="keep only each pool's first N negatives (quick checks; default: the full pools)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--output", default="out/insuranceqa-splade")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eval-backend", default="onnx", choices=("onnx", "torch"),
                        help="backend the before/after evaluations encode on (default: %(default)s)")
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from insuranceqa_data import TimeBudget, load_insuranceqa

    from sentencekit import SparseEncoder
    from sentencekit.losses.sparse import SparseMultipleNegativesRankingLoss, SpladeLoss
    from sentencekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments

    torch.manual_seed(args.seed)
    data = load_insuranceqa()
    questions = data.questions("train", args.train_questions)
    pairs = Dataset.from_dict({"question": [q.text for q in questions for _ in q.positives],
                               "answer": [data.answers[a] for q in questions for a in q.positives]})
    pairs = pairs.shuffle(seed=args.seed)  # a time-bounded run should see every domain
    splits = {"valid": data.questions("valid", args.valid_questions),
              "test": data.questions("test", args.test_questions)}
    if args.pool_negatives is not None:
        splits = {split: [replace(q, negatives=q.negatives[: args.pool_negatives]) for q in qs]
                  for split, qs in splits.items()}

    folder = args.model or default_model()
    model = SparseEncoder(folder)
    model.max_seq_length = args.max_length
    before = evaluate(evaluation_model(model, folder, args.eval_backend, args.max_length), data, splits, "before")

    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    training_args = SparseEncoderTrainingArguments(
        output_dir=args.output, num_train_epochs=1, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=20, lr_scheduler_type="constant_with_warmup",
        use_cpu=not torch.cuda.is_available(), save_strategy="no", logging_steps=25, seed=args.seed,
        report_to="none", batch_sampler="no_duplicates",
    )
    trainer = SparseEncoderTrainer(model=model, args=training_args, train_dataset=pairs, loss=loss,
                                   callbacks=[TimeBudget(args.max_minutes, args.max_minutes, evaluate=False)])
    start = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - start) / 60
    steps = trainer.state.global_step
    final = os.path.join(args.output, "final")
    model.save(final, model_name="insuranceqa-splade-tiny")
    print(f"\nTraining took {minutes:.1f} min: {steps} steps of {args.batch_size} pairs "
          f"({steps * args.batch_size / len(pairs):.2f} epochs of {len(pairs)} pairs). Saved to {final}", flush=True)
    after = evaluate(evaluation_model(model, final, args.eval_backend, args.max_length), data, splits, "after")
    print("\nMRR@10 before -> after: " + ", ".join(
        f"{split} {before[split]['MRR@10']:.4f} -> {after[split]['MRR@10']:.4f}" for split in splits))


if __name__ == "__main__":
    main()
