"""NanoBEIREvaluator and SparseNanoBEIREvaluator on a local dataset folder in NanoBEIR's layout (configs
``corpus`` / ``queries`` / ``qrels``, one parquet split per subset, declared in the README's YAML as on the Hub),
read by the evaluators' real ``datasets.load_dataset`` code with the Hub switched off. Aggregates are checked
against the per-subset results, the subsets against retrieval evaluators built by hand, and the sparse
aggregates (sizes-weighted active dims, FLOPS over all texts) by hand on a bag-of-words SparseEncoder."""

from __future__ import annotations

import csv
import inspect

import pytest
from datasets import Dataset

from sentencekit import SparseEncoder
from sentencekit.evaluation import (
    InformationRetrievalEvaluator,
    NanoBEIREvaluator,
    SparseInformationRetrievalEvaluator,
    SparseNanoBEIREvaluator,
)

pytestmark = pytest.mark.unit

SUBSETS = {
    "NanoSciFact": {
        "corpus": [{"_id": "s1", "text": "refund policy please"}, {"_id": "s2", "text": "refund order"},
                   {"_id": "s3", "text": "password help"}, {"_id": "s4", "text": "reset my password"},
                   {"_id": "s5", "text": ""}],  # empty texts are dropped
        "queries": [{"_id": "q1", "text": "refund policy"}, {"_id": "q2", "text": "password reset"},
                    {"_id": "q3", "text": "weather in paris"}],  # q3 has no relevant document: skipped
        "qrels": [{"query-id": "q1", "corpus-id": "s2"}, {"query-id": "q2", "corpus-id": "s4"}],
    },
    "NanoNFCorpus": {
        "corpus": [{"_id": "n1", "text": "the cat sat on the mat"}, {"_id": "n2", "text": "cat and dog"},
                   {"_id": "n3", "text": "weather in paris today"}],
        "queries": [{"_id": "a", "text": "cat mat"}, {"_id": "b", "text": "paris weather"},
                    {"_id": "c", "text": "dog"}, {"_id": "d", "text": "cat"}],
        "qrels": [{"query-id": "a", "corpus-id": "n1"}, {"query-id": "b", "corpus-id": "n3"},
                  {"query-id": "c", "corpus-id": "n2"}, {"query-id": "d", "corpus-id": "n1"},
                  {"query-id": "d", "corpus-id": "n2"}],
    },
}


def write_nano_beir(folder, subsets=SUBSETS):
    """A dataset folder as ``sentence-transformers/NanoBEIR-en`` is laid out: ``{config}/{split}.parquet``."""
    lines = ["---", "configs:"]
    for config in ("corpus", "queries", "qrels"):
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, data in subsets.items():
            (folder / config).mkdir(parents=True, exist_ok=True)
            Dataset.from_list(data[config]).to_parquet(str(folder / config / f"{split}.parquet"))
            lines += [f"  - split: {split}", f"    path: {config}/{split}.parquet"]
    (folder / "README.md").write_text("\n".join([*lines, "---", ""]), encoding="utf-8")
    return folder


@pytest.fixture()
def nano_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local folder only: nothing may reach the Hub
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    return write_nano_beir(tmp_path / "NanoBEIR-local")


@pytest.fixture(scope="module")
def bow(tiny_mlm_dir):
    from transformers import AutoTokenizer

    from sentencekit.modules import SparseStaticEmbedding

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_mlm_dir))
    return SparseEncoder(modules=[SparseStaticEmbedding(tokenizer)], device="cpu")


def by_hand(cls, split, **kwargs):
    data = SUBSETS[split]
    relevant = {}
    for row in data["qrels"]:
        relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    return cls(queries={r["_id"]: r["text"] for r in data["queries"]},
               corpus={r["_id"]: r["text"] for r in data["corpus"] if r["text"]}, relevant_docs=relevant, name=split,
               **kwargs)


def test_defaults_are_sentence_transformers(nano_dir):
    for cls in (NanoBEIREvaluator, SparseNanoBEIREvaluator):
        parameters = inspect.signature(cls).parameters
        assert parameters["dataset_id"].default == "sentence-transformers/NanoBEIR-en"
        assert parameters["dataset_names"].default is None and parameters["aggregate_key"].default == "mean"
    assert list(inspect.signature(SparseNanoBEIREvaluator).parameters)[10] == "max_active_dims"


def test_dense_aggregates_the_subsets(nano_dir, tiny_model, tmp_path):
    evaluator = NanoBEIREvaluator(dataset_names=["scifact", "NFCorpus"], dataset_id=str(nano_dir),
                                  query_prompts="query: ")
    assert [e.name for e in evaluator.evaluators] == ["NanoSciFact", "NanoNFCorpus"]
    assert evaluator.evaluators[0].queries_ids == ["q1", "q2"] and "s5" not in evaluator.evaluators[0].corpus_ids
    assert evaluator.evaluators[1].relevant_docs["d"] == {"n1", "n2"}
    results = evaluator(tiny_model, output_path=str(tmp_path / "out"))
    for split in ("NanoSciFact", "NanoNFCorpus"):  # the subsets are exactly retrieval evaluators on the data
        expected = by_hand(InformationRetrievalEvaluator, split, query_prompt="query: ")(tiny_model)
        assert {k: v for k, v in results.items() if k.startswith(split)} == pytest.approx(expected)
    for metric in ("cosine_ndcg@10", "cosine_mrr@10", "cosine_accuracy@1", "cosine_map@100", "cosine_recall@3"):
        mean = (results[f"NanoSciFact_{metric}"] + results[f"NanoNFCorpus_{metric}"]) / 2
        assert results[f"NanoBEIR_mean_{metric}"] == pytest.approx(mean)
    assert evaluator.primary_metric == "NanoBEIR_mean_cosine_ndcg@10"
    with open(tmp_path / "out" / "NanoBEIR_evaluation_mean_results.csv", encoding="utf-8") as f:
        header, row = list(csv.reader(f))
    assert header[:3] == ["epoch", "steps", "cosine-Accuracy@1"] and len(header) == len(row)
    assert float(row[header.index("cosine-NDCG@10")]) == pytest.approx(results["NanoBEIR_mean_cosine_ndcg@10"])
    assert evaluator.get_config_dict() == {"dataset_names": ["scifact", "NFCorpus"], "dataset_id": str(nano_dir),
                                           "query_prompts": {"scifact": "query: ", "NFCorpus": "query: "}}


def test_dense_truncate_dim_median_and_main_score_function(nano_dir, tiny_model):
    import numpy as np

    evaluator = NanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"], dataset_id=str(nano_dir), truncate_dim=16,
                                  aggregate_fn=np.median, aggregate_key="median", main_score_function="dot",
                                  score_functions={"dot": lambda a, b: a @ b.T})
    results = evaluator(tiny_model)
    assert evaluator.name == "NanoBEIR_median_16" and evaluator.evaluators[0].name == "NanoSciFact_16"
    assert "NanoSciFact_16_dot_ndcg@10" in results and evaluator.primary_metric == "NanoBEIR_median_16_dot_ndcg@10"


def test_errors_name_the_problem(nano_dir, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        NanoBEIREvaluator(dataset_names=[], dataset_id=str(nano_dir))
    with pytest.raises(ValueError, match=r"\['scifacts'\] are not NanoBEIR datasets"):
        NanoBEIREvaluator(dataset_names=["scifacts"], dataset_id=str(nano_dir))
    with pytest.raises(ValueError, match=r"corpus_prompts has no prompt for \['nfcorpus'\]"):
        NanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"], dataset_id=str(nano_dir),
                          corpus_prompts={"scifact": "passage: "})
    with pytest.raises(ValueError, match="split 'NanoFiQA2018'"):  # a valid name the folder does not hold
        NanoBEIREvaluator(dataset_names=["fiqa2018"], dataset_id=str(nano_dir))
    broken = {"NanoSciFact": {**SUBSETS["NanoSciFact"], "qrels": [{"query-id": "q1", "doc": "s2"}]}}
    with pytest.raises(ValueError, match=r"lacks the columns \['corpus-id'\]"):
        NanoBEIREvaluator(dataset_names=["scifact"], dataset_id=str(write_nano_beir(tmp_path / "broken", broken)))
    with pytest.raises(ValueError, match="write_predictions"):
        NanoBEIREvaluator(dataset_names=["scifact"], dataset_id=str(nano_dir), write_predictions=True)


def test_sparse_aggregates_sparsity_over_all_texts(nano_dir, bow, tmp_path):
    evaluator = SparseNanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"], dataset_id=str(nano_dir))
    results = evaluator(bow, output_path=str(tmp_path / "out"))
    for split in ("NanoSciFact", "NanoNFCorpus"):
        expected = by_hand(SparseInformationRetrievalEvaluator, split)(bow)
        assert {k: v for k, v in results.items() if k.startswith(split)} == pytest.approx(expected)
    # SciFact (first sub-test of test_sparse_evaluators): dot MRR 0.75. NFCorpus, counting shared words:
    # a "cat mat" -> n1 (2); b "paris weather" -> n3 (2); c "dog" -> n2; d "cat" ties n1/n2, both relevant
    assert results["NanoSciFact_dot_mrr@10"] == pytest.approx(0.75) and results["NanoNFCorpus_dot_mrr@10"] == 1.0
    assert results["NanoBEIR_mean_dot_mrr@10"] == pytest.approx(0.875)
    # queries: 2 words each in SciFact (2 queries); NFCorpus 2, 2, 1, 1 -> (4 + 6) / 6 texts
    assert results["NanoBEIR_mean_query_active_dims"] == pytest.approx(10 / 6)
    # corpus: 3, 2, 2, 3 distinct words (SciFact; "my" counts) and 5 ("the" once), 3, 4 (NFCorpus) -> 22 / 7
    corpus_active = results["NanoBEIR_mean_corpus_active_dims"]
    assert corpus_active == pytest.approx(22 / 7)
    dim = bow.get_embedding_dimension()
    assert results["NanoBEIR_mean_corpus_sparsity_ratio"] == pytest.approx(1 - corpus_active / dim)
    # FLOPS over all texts: mean query count vector . mean corpus count vector
    queries = [r["text"] for s in SUBSETS.values() for r in s["queries"] if r["_id"] != "q3"]
    corpus = [r["text"] for s in SUBSETS.values() for r in s["corpus"] if r["text"]]
    q = (bow.encode(queries, convert_to_sparse_tensor=False) != 0).float().mean(dim=0)
    c = (bow.encode(corpus, convert_to_sparse_tensor=False) != 0).float().mean(dim=0)
    assert results["NanoBEIR_mean_avg_flops"] == pytest.approx(float(q @ c))
    assert evaluator.primary_metric == "NanoBEIR_mean_dot_ndcg@10"
    with open(tmp_path / "out" / "NanoBEIR_evaluation_mean_results.csv", encoding="utf-8") as f:
        header, row = list(csv.reader(f))
    assert header[-5:] == ["query_active_dims", "query_sparsity_ratio", "corpus_active_dims", "corpus_sparsity_ratio",
                           "avg_flops"]
    assert float(row[-1]) == pytest.approx(results["NanoBEIR_mean_avg_flops"])


def test_sparse_max_active_dims_names_and_config(nano_dir, bow):
    evaluator = SparseNanoBEIREvaluator(dataset_names=["nfcorpus"], dataset_id=str(nano_dir), max_active_dims=1)
    results = evaluator(bow)
    assert evaluator.name == "NanoBEIR_mean_1" and evaluator.evaluators[0].name == "NanoNFCorpus_1"
    assert results["NanoBEIR_mean_1_query_active_dims"] == 1.0  # every text capped to one weight
    assert evaluator.get_config_dict() == {"dataset_names": ["nfcorpus"], "dataset_id": str(nano_dir),
                                           "max_active_dims": 1}
    with pytest.raises(ValueError):
        SparseNanoBEIREvaluator(dataset_names=["nfcorpus"], dataset_id=str(nano_dir), max_active_dims=0)
