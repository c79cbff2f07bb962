"""The `sentencekit` command line: search (with cached corpus embeddings), encode, similarity, --help."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sentencekit.cli import main


def write_corpus(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"d{i}", "title": f"T{i}", "text": t}) + "\n")
    return path


@pytest.mark.parametrize("command", [[], ["search"], ["encode"], ["similarity"], ["rerank"], ["train"],
                                     ["index"], ["index", "build"], ["index", "info"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: sentencekit" in capsys.readouterr().out


def test_import_and_cli_start_without_torch():
    code = ("import sys, sentencekit, sentencekit.cli; sentencekit.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_search_builds_a_stored_index_once(tiny_st_dir, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl", ["refund policy", "the weather in paris", "password reset help"])
    args = ["search", "how do i get a refund", "--model", str(tiny_st_dir), "--corpus", str(corpus),
            "--cache-dir", str(tmp_path / "indexes"), "--top-k", "2", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    indexes = list((tmp_path / "indexes").iterdir())
    assert len(indexes) == 1 and (indexes[0] / "manifest.json").is_file()
    assert main(args[:-1]) == 0
    assert "embeddings reused" in capsys.readouterr().out  # nothing embedded the second time
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first
    results = first[0]["results"]
    assert len(results) == 2 and results[0]["score"] >= results[1]["score"]
    assert {r["id"] for r in results} <= {"d0", "d1", "d2"} and results[0]["metadata"]["title"].startswith("T")

    # A changed corpus gets its own index, never stale vectors.
    write_corpus(corpus, ["refund policy", "the weather in paris", "password reset help", "cancel my order"])
    assert main(args) == 0
    capsys.readouterr()
    assert len(list((tmp_path / "indexes").iterdir())) == 2


def test_index_build_search_and_rerank(tiny_st_dir, tiny_ce_dir, tmp_path, capsys):
    from sentencekit import CrossEncoder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("refund policy please")
    (docs / "weather.txt").write_text("the weather in paris")
    out = tmp_path / "index"
    assert main(["index", "build", str(docs), "--out", str(out), "--model", str(tiny_st_dir)]) == 0
    assert "2 documents (2 added now)" in capsys.readouterr().out
    (docs / "cats.txt").write_text("the cat sat on the mat")
    assert main(["index", "build", str(docs), "--out", str(out), "--model", str(tiny_st_dir)]) == 0
    assert "3 documents (1 added now)" in capsys.readouterr().out
    assert main(["index", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 3
    assert main(["index", "info", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "documents     3 (6 vectors, 3 for titles)" in summary  # folder files are titled by their names
    assert "index kind    exact" in summary and "{" not in summary

    assert main(["search", "refund", "--index", str(out), "--model", str(tiny_st_dir), "--rerank",
                 str(tiny_ce_dir), "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["results"]
    reranker = CrossEncoder(str(tiny_ce_dir), device="cpu")
    scores = {h["id"]: h["score"] for h in hits}
    expected = dict(zip([h["id"] for h in hits],  # the reranker reads the title, then the text
                        reranker.predict([("refund", f"{h['title']}\n{h['text']}") for h in hits])))
    for doc_id, score in scores.items():
        assert score == pytest.approx(float(expected[doc_id]), abs=1e-5)
    assert all("retrieval_score" in h for h in hits)

    # A different model is refused with a message that says what differs.
    from tests.conftest import build_tiny_bert

    other = build_tiny_bert(tmp_path / "other", seed=5)
    with pytest.warns(UserWarning, match="mean pooling"):
        assert main(["search", "refund", "--index", str(out), "--model", str(other)]) == 1
    assert "fingerprint" in capsys.readouterr().err


def test_search_scores_equal_library_cosine(tiny_st_dir, tmp_path, capsys):
    from sentencekit import SentenceTransformer

    texts = ["refund policy", "the weather in paris", "password reset help"]
    corpus = write_corpus(tmp_path / "c.jsonl", texts)
    assert main(["search", "refund", "--model", str(tiny_st_dir), "--corpus", str(corpus), "--cache-dir",
                 str(tmp_path / "cache"), "-k", "3", "--json", "--rerank", "none"]) == 0
    results = json.loads(capsys.readouterr().out)[0]["results"]
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    query = model.encode(["refund"])
    by_text = model.similarity(query, model.encode(texts))[0].numpy()
    by_title = model.similarity(query, model.encode([f"T{i}" for i in range(len(texts))]))[0].numpy()
    for r in results:  # a titled document scores by the better of its title and its text
        i = int(r["id"][1:])
        assert r["score"] == pytest.approx(float(max(by_text[i], by_title[i])), abs=1e-5)
        assert r["field"] == ("title" if by_title[i] > by_text[i] else "text")


def test_encode_writes_npy(tiny_st_dir, tmp_path, capsys):
    from sentencekit import SentenceTransformer

    src = tmp_path / "texts.txt"
    src.write_text("hello world\nrefund policy\n\nthe cat sat\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    assert main(["encode", str(src), "-o", str(out), "--model", str(tiny_st_dir), "--normalize", "-q"]) == 0
    emb = np.load(out)
    expected = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(
        ["hello world", "refund policy", "the cat sat"], normalize_embeddings=True)
    np.testing.assert_allclose(emb, expected, atol=1e-6)
    assert "3 x 32" in capsys.readouterr().err


def test_encode_reports_truncation(tiny_st_dir, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("hello world\n" + "word " * 200 + "\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "e.npy"), "--model", str(tiny_st_dir), "-q"]) == 0
    assert "1 of 2 texts are longer" in capsys.readouterr().err


def test_similarity_command(tiny_st_dir, capsys):
    from sentencekit import SentenceTransformer

    assert main(["similarity", "hello world", "refund policy", "--model", str(tiny_st_dir), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    expected = float(model.similarity(model.encode(["hello world"]), model.encode(["refund policy"]))[0, 0])
    assert got == {"similarity": pytest.approx(expected, abs=1e-5), "function": "cosine"}


def test_errors_are_one_line_messages(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "x.npy")]) == 1
    assert "missing.txt" in capsys.readouterr().err
    assert main(["similarity", "a", "b", "--model", str(tmp_path / "no-model")]) == 1
    assert "Could not find model" in capsys.readouterr().err


@pytest.mark.real_model
def test_main_job_with_default_model_on_sample_corpus(tmp_path, capsys, minilm_dir):
    """The README's main job: default model, bundled sample corpus."""
    assert main(["search", "How do I get a refund?", "--cache-dir", str(tmp_path), "--json", "-k", "5"]) == 0
    results = json.loads(capsys.readouterr().out)[0]["results"]
    assert len(results) == 5
    assert all(0.3 < r["score"] <= 1.0 for r in results)
    top_text = " ".join(r["text"].lower() for r in results)
    assert "refund" in top_text or "reimburs" in top_text or "money back" in top_text


def test_rerank_command(tiny_ce_dir, tmp_path, capsys):
    from sentencekit import CrossEncoder

    texts = ["refund policy please", "hello world", "the cat sat on the mat"]
    corpus = write_corpus(tmp_path / "docs.jsonl", texts)
    assert main(["rerank", "how do i get a refund", str(corpus), "--model", str(tiny_ce_dir), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # the reranker reads each document's title on the first line, as `search --rerank` gives it
    expected = CrossEncoder(str(tiny_ce_dir), device="cpu").rank("how do i get a refund",
                                                                 [f"T{i}\n{t}" for i, t in enumerate(texts)])
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in expected]
    assert [r["id"] for r in got] == [f"d{r['corpus_id']}" for r in expected]
    assert got[0]["score"] == pytest.approx(expected[0]["score"], abs=1e-6)
    assert main(["rerank", "refund", str(corpus), "--model", str(tiny_ce_dir), "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and "[d" in out


def test_search_without_model_uses_the_model_the_index_records(tiny_st_dir, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "docs.jsonl", ["refund policy please", "hello world"])
    out = tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir),
                 "--backend", "torch"]) == 0
    capsys.readouterr()
    assert main(["search", "refund", "--index", str(out), "--json", "--backend", "torch"]) == 0  # no --model
    assert json.loads(capsys.readouterr().out)[0]["results"]
