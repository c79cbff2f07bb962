"""Issue 13: the CLI's backend choice (``auto`` everywhere, as the server picks it), its deprecated
spellings, and what a new user sees: truncation notes, --encoding, long queries, chunk hits, progress of
first-time exports, ``--ray auto`` without a cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import pytest

from sentencekit.cli import build_parser, main

MODEL_COMMANDS = [["search", "q"], ["index", "build", "in", "--out", "o"], ["index", "repair", "i"],
                  ["encode", "in", "-o", "o.npy"], ["similarity", "a", "b"], ["rerank", "q", "in", "-m", "ce"],
                  ["embed-corpus", "in", "--out", "o.parquet"]]


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch):
    """``auto`` means ONNX on a CPU-only machine; these tests are about that case, also on a GPU machine."""
    import sentencekit.engines as engines

    monkeypatch.setattr(engines, "cuda_gpu_visible", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the same for the subprocesses


@pytest.fixture(autouse=True)
def product_default_backend(monkeypatch):
    """These tests check the CLI's own default (auto); conftest sets torch for the rest of the suite. Tests
    here that load the shared tiny folders pass --backend torch, or use a private copy (st_copy)."""
    monkeypatch.delenv("SENTENCEKIT_BACKEND", raising=False)


@pytest.fixture()
def st_copy(tiny_st_dir, tmp_path):
    """A private copy of the tiny model, so its ONNX export is made (and seen) by this test."""
    folder = tmp_path / "st"
    shutil.copytree(tiny_st_dir, folder, ignore=shutil.ignore_patterns("onnx"))  # other tests export beside it
    return folder


@pytest.mark.parametrize("argv", MODEL_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_model_command_defaults_to_auto(argv, monkeypatch):
    monkeypatch.delenv("SENTENCEKIT_BACKEND", raising=False)
    assert build_parser().parse_args(argv).model_backend == "auto"
    assert build_parser().parse_args([*argv, "--backend", "torch"]).model_backend == "torch"


def test_index_build_old_backend_values_still_mean_the_index_kind(capsys):
    args = build_parser().parse_args(["index", "build", "in", "--out", "o", "--backend", "hnsw"])
    assert (args.index_kind, args.model_backend) == ("hnsw", "auto")
    assert "`--backend hnsw` for the index kind is deprecated" in capsys.readouterr().err
    args = build_parser().parse_args(["index", "build", "in", "--out", "o", "--model-backend", "onnx",
                                      "--index-kind", "auto"])
    assert (args.index_kind, args.model_backend) == ("auto", "onnx")
    assert "--model-backend is deprecated" in capsys.readouterr().err
    args = build_parser().parse_args(["index", "build", "in", "--out", "o", "--backend", "auto"])
    assert (args.index_kind, args.model_backend) == ("exact", "auto")
    assert "--backend auto now picks the model backend" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # exact/hnsw are index kinds only where they used to be
        build_parser().parse_args(["encode", "in", "-o", "o.npy", "--backend", "hnsw"])
    assert "invalid choice: 'hnsw'" in capsys.readouterr().err


def test_auto_runs_onnx_and_reports_the_first_export(st_copy, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    src = tmp_path / "texts.txt"
    src.write_text("hello world\nrefund policy\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "e.npy"), "--model", str(st_copy), "-q"]) == 0
    err = capsys.readouterr().err
    assert "exporting st to ONNX (one time" in err and "exported st to ONNX in" in err
    assert list((st_copy / "onnx").glob("sentencekit_*.onnx"))
    assert main(["encode", str(src), "-o", str(tmp_path / "e.npy"), "--model", str(st_copy), "-q"]) == 0
    assert "exporting" not in capsys.readouterr().err  # once only


def test_auto_falls_back_to_torch_for_a_model_onnx_cannot_run(st_copy, tmp_path, monkeypatch, capsys, caplog):
    from sentencekit.engines import onnx_engine

    def refuse(self, *args, **kwargs):
        raise ValueError("The ONNX backend cannot export this pipeline.")

    monkeypatch.setattr(onnx_engine.OnnxEngine, "__init__", refuse)
    assert main(["similarity", "a cat", "a dog", "--model", str(st_copy), "--json"]) == 0
    assert "cannot run on ONNX Runtime" in caplog.text and "using torch" in caplog.text  # one warning
    assert -1 <= json.loads(capsys.readouterr().out)["similarity"] <= 1
    assert main(["similarity", "a cat", "a dog", "--model", str(st_copy), "--backend", "onnx"]) == 1


@pytest.mark.slow
def test_second_search_run_imports_no_torch(st_copy, tmp_path):
    """A second run with the export and the index in place needs neither torch nor transformers (nor bm25s,
    when the index keeps a lexical side and the search is dense)."""
    pytest.importorskip("onnxruntime")
    corpus = tmp_path / "c.txt"
    corpus.write_text("refund policy\nthe weather in paris\npassword reset help\n", encoding="utf-8")
    argv = ["search", "refund", "--model", str(st_copy), "--corpus", str(corpus), "--rerank", "none"]
    code = ("import sys\nfrom sentencekit.cli import main\nassert main(sys.argv[1:]) == 0\n"
            "print(sorted(m for m in ('torch', 'transformers', 'bm25s') if m in sys.modules))")
    runs = [subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
            for _ in range(2)]
    assert "(3 embedded now)" in runs[0].stdout and "embeddings reused" in runs[1].stdout
    assert runs[1].stdout.strip().splitlines()[-1] == "[]"
    from sentencekit.search.lexical import lexical_available

    if lexical_available():  # the first run built the index's BM25 side; the second has no need of bm25s
        assert "bm25s" in runs[0].stdout.strip().splitlines()[-1]


def test_truncation_is_one_plain_line_per_kind(tiny_st_dir, tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("refund policy\n" + "word " * 200 + "\nhello\n", encoding="utf-8")
    long_query = "how do i get a refund " * 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning escaping the command fails the test
        assert main(["search", long_query, "--model", str(tiny_st_dir), "--corpus", str(corpus), "--rerank",
                     "none", "--backend", "torch"]) == 0
        captured = capsys.readouterr()
        assert main(["similarity", "word " * 200, "hello", "--model", str(tiny_st_dir), "--backend", "torch"]) == 0
    err = captured.err.splitlines()
    assert "note: 1 of 3 documents are longer than the model's 48-token limit and were truncated" in err[0]
    assert "note: 1 of 1 queries are longer than the model's 48-token limit" in err[1]
    assert "last_encode_info" not in captured.err and "Warning" not in captured.err
    # the long query is not echoed in full
    query_line = next(line for line in captured.out.splitlines() if line.startswith("Query: "))
    assert query_line.endswith("...") and len(query_line) <= len("Query: ") + 100
    sim_err = capsys.readouterr().err
    assert sim_err.count("note:") == 1 and "1 of 2 texts are longer" in sim_err


def test_encode_reports_truncation_once(tiny_st_dir, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("hello world\n" + "word " * 200 + "\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "e.npy"), "--model", str(tiny_st_dir), "-q",
                 "--backend", "torch"]) == 0  # torch: the shared tiny folder must not get an ONNX export
    err = capsys.readouterr().err
    assert err.count("truncated") == 1 and "1 of 2 texts are longer" in err


@pytest.mark.parametrize("command", ["encode", "search", "index build", "rerank", "embed-corpus"])
def test_non_utf8_input_names_file_and_line_and_offers_encoding(command, tiny_st_dir, tiny_ce_dir, tmp_path,
                                                                capsys):
    src = tmp_path / "latin1.txt"
    src.write_bytes(b"hello world\n" + "na\u00efve caf\u00e9\n".encode("latin-1"))
    argv = {"encode": ["encode", str(src), "-o", str(tmp_path / "e.npy"), "-q"],
            "search": ["search", "hello", "--corpus", str(src), "--rerank", "none"],
            "index build": ["index", "build", str(src), "--out", str(tmp_path / "idx")],
            "rerank": ["rerank", "hello", str(src)],
            "embed-corpus": ["embed-corpus", str(src), "--out", str(tmp_path / "e.parquet")]}[command]
    model = ["--model", str(tiny_ce_dir if command == "rerank" else tiny_st_dir), "--backend", "torch"]
    assert main([*argv, *model]) == 1
    err = capsys.readouterr().err
    assert "latin1.txt:2: not UTF-8 text" in err and "--encoding latin-1" in err and len(err.splitlines()) == 1
    assert main([*argv, *model, "--encoding", "latin-1"]) == 0


def test_stdin_takes_encoding_too(tiny_st_dir, tmp_path, monkeypatch, capsys):
    import io

    raw = "na\u00efve\n".encode("latin-1")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["encode", "-", "-o", str(tmp_path / "e.npy"), "--model", str(tiny_st_dir), "--backend", "torch"]) == 1
    assert "<stdin>:1: not UTF-8 text" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["encode", "-", "-o", str(tmp_path / "e.npy"), "--model", str(tiny_st_dir), "--backend", "torch",
                 "--encoding", "latin-1"]) == 0


def test_chunked_index_results_show_the_matching_chunk(tiny_st_dir, tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    long_text = " ".join(["the weather in paris is mild today"] * 12 + ["refund policy please help"] * 3)
    docs.write_text(json.dumps({"id": "manual", "text": long_text}) + "\n", encoding="utf-8")
    out = tmp_path / "idx"
    assert main(["index", "build", str(docs), "--out", str(out), "--chunk", "--model", str(tiny_st_dir),
                 "--backend", "torch"]) == 0
    capsys.readouterr()
    assert main(["search", "refund policy please help", "--index", str(out), "--model", str(tiny_st_dir),
                 "--backend", "torch", "--rerank", "none", "--json"]) == 0
    chunk = json.loads(capsys.readouterr().out)[0]["results"][0]["chunk"]
    assert main(["search", "refund policy please help", "--index", str(out), "--model", str(tiny_st_dir),
                 "--backend", "torch", "--rerank", "none"]) == 0
    hit = capsys.readouterr().out.splitlines()[-1]
    assert f"[manual] (chunk {chunk['index'] + 1}) " in hit and chunk["text"][:40] in hit
    assert main(["index", "info", str(out)]) == 0
    assert "chunks per document" in capsys.readouterr().out


def test_ray_auto_without_a_cluster_points_to_ray_local(tiny_st_dir, tmp_path, monkeypatch, capsys):
    import sentencekit.ray as sk_ray

    class NoCluster:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to.")

    monkeypatch.setattr(sk_ray, "_ray", lambda: NoCluster)
    src = tmp_path / "t.txt"
    src.write_text("hello\nworld\n", encoding="utf-8")
    assert main(["embed-corpus", str(src), "--out", str(tmp_path / "e.parquet"), "--ray", "auto", "--model",
                 str(tiny_st_dir), "--backend", "torch"]) == 1
    err = capsys.readouterr().err
    assert "--ray auto: found no running Ray cluster" in err and "Use --ray local" in err


def test_progress_lines_go_to_stderr_once_configured(capsys):
    import logging

    from sentencekit.progress import logger, show_on_stderr, step

    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        show_on_stderr()
        show_on_stderr()  # idempotent: one line per step, not two
        step("calibrating int8: trial %d (of at most %d)", 3, 16)
        assert capsys.readouterr().err == "calibrating int8: trial 3 (of at most 16)\n"
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level if level else logging.NOTSET)
        logger.propagate = propagate


def test_truncation_note_counts_every_call_of_a_command(tiny_st_dir, tmp_path, capsys):
    """embed-corpus encodes shard by shard: the note counts the inputs of every shard, not of the last."""
    src = tmp_path / "t.txt"
    src.write_text("hello\n" + "word " * 200 + "\nworld\n", encoding="utf-8")
    assert main(["embed-corpus", str(src), "--out", str(tmp_path / "e.parquet"), "--shard-size", "1", "--model",
                 str(tiny_st_dir), "--backend", "torch"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith("note: 1 of 3 texts are longer")


def test_pyproject_license_is_an_spdx_string():
    """A license table makes setuptools print a deprecation banner on every install."""
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(config["project"]["license"], str)
    assert "setuptools>=77" in config["build-system"]["requires"]


def test_search_refuses_an_empty_query_and_says_when_nothing_matches(tiny_st_dir, tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("refund policy\nshipping times\n", encoding="utf-8")
    common = ["--model", str(tiny_st_dir), "--corpus", str(corpus), "--backend", "torch", "--rerank", "none"]
    assert main(["search", "  ", *common]) == 1
    assert "query 1 is empty" in capsys.readouterr().err
    assert main(["search", "zzzq", *common, "--retrieval", "lexical"]) == 0
    assert "no results (lexical retrieval: no document matches; try --retrieval dense)" in capsys.readouterr().out
    assert main(["search", "refund", "--model", str(tiny_st_dir), "--corpus", str(tmp_path / "nope.jsonl"),
                 "--backend", "torch"]) == 1
    assert "Corpus file" in capsys.readouterr().err


def test_an_embedding_model_as_reranker_is_one_error_line_before_any_export(tiny_st_dir, tmp_path, capsys):
    folder = tmp_path / "embedder"
    shutil.copytree(tiny_st_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("refund policy\nshipping times\n", encoding="utf-8")
    assert main(["search", "refund", "--model", str(tiny_st_dir), "--corpus", str(corpus), "--backend", "torch",
                 "--rerank", str(folder)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a trained reranker" in err and "--rerank none" in err
    assert not (folder / "onnx").exists()


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".csv"])
def test_utf16_corpora_read_with_encoding_and_are_named_without(suffix, tmp_path):
    from sentencekit.search.corpus import load_corpus

    body = {".txt": "refund policy\nna\u00efve caf\u00e9\n",
            ".jsonl": '{"id": "a", "text": "refund policy"}\n{"id": "b", "text": "na\u00efve caf\u00e9"}\n',
            ".csv": "id,text\na,refund policy\nb,na\u00efve caf\u00e9\n"}[suffix]
    path = tmp_path / f"c{suffix}"
    path.write_bytes(body.encode("utf-16"))  # with a byte-order mark, as PowerShell writes
    docs = load_corpus(path, encoding="utf-16")
    assert [d.text for d in docs] == ["refund policy", "na\u00efve caf\u00e9"]
    with pytest.raises(ValueError, match="UTF-16 byte-order mark.*--encoding utf-16"):
        load_corpus(path)


def test_outputs_get_the_usual_file_mode_not_mkstemps_0600(tiny_st_dir, tmp_path):
    """``encode -o`` (and every file written atomically: saved models, index files) gets the mode a plain
    ``open()`` gives (0666 less the umask), and a file it replaces keeps its own mode."""
    import os
    import stat

    from sentencekit.files import atomic_write_bytes

    src = tmp_path / "texts.txt"
    src.write_text("hello world\n", encoding="utf-8")
    old = os.umask(0o027)
    try:
        out = tmp_path / "e.npy"
        assert main(["encode", str(src), "-o", str(out), "--model", str(tiny_st_dir), "-q", "--backend", "torch"]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o640
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"x")
        kept.chmod(0o604)
        atomic_write_bytes(kept, b"y")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_bytes() == b"y"
    finally:
        os.umask(old)


@pytest.mark.parametrize("retrieval", ["dense", "lexical"])
def test_fusion_outside_hybrid_retrieval_is_refused(retrieval, tiny_st_dir, capsys):
    assert main(["search", "q", "--model", str(tiny_st_dir), "--backend", "torch", "--retrieval", retrieval,
                 "--fusion", "weighted"]) != 0
    err = capsys.readouterr().err
    assert "--fusion" in err and "--retrieval hybrid" in err


def test_ctrl_c_ends_a_command_with_one_line_and_status_130(tiny_st_dir, monkeypatch, capsys):
    import sentencekit.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_load_model", interrupted)
    assert main(["search", "q", "--model", str(tiny_st_dir)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "sentencekit search: interrupted" and "Traceback" not in err


def test_index_build_names_documents_whose_text_changed(tiny_st_dir, tmp_path, capsys):
    corpus, out = tmp_path / "docs.jsonl", tmp_path / "idx"
    rows = [{"id": "a", "title": "Returns", "text": "Send it back within 60 days."}, {"id": "b", "text": "Hello."}]
    corpus.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    args = ["index", "build", str(corpus), "--out", str(out), "--model", str(tiny_st_dir), "--backend", "torch"]
    assert main(args) == 0
    rows[0]["text"] = "Send it back within 90 days."
    corpus.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"1 document\(s\) already in the index differ from the corpus \(a\)"):
        assert main(args) == 0
    assert "0 added now" in capsys.readouterr().out
    import warnings

    from sentencekit.cli import _plain_warnings

    with _plain_warnings("index"):  # how the CLI prints it outside a test's warning recorder
        plain = warnings.formatwarning("it differs", UserWarning, "x.py", 1)
    assert plain == "sentencekit index: warning: it differs\n"
    assert "UserWarning" in warnings.formatwarning("it differs", UserWarning, "x.py", 1)


def test_search_refuses_index_and_corpus_together(tiny_st_dir, tmp_path, capsys):
    assert main(["search", "q", "--index", str(tmp_path / "i"), "--corpus", str(tmp_path / "c.jsonl"),
                 "--model", str(tiny_st_dir)]) == 1
    assert "not both" in capsys.readouterr().err


def test_dense_encode_output_must_be_npy(tiny_st_dir, tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text("hello\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "x.npz"), "--model", str(tiny_st_dir)]) == 1
    assert "*.npy" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


def test_a_closed_pipe_ends_quietly(tiny_st_dir, monkeypatch, capsys):
    import sentencekit.cli as cli

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_similarity", closed)  # the parser built inside main() takes it
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # main swaps it for /dev/null; restored after the test
    assert main(["similarity", "a", "b", "--model", str(tiny_st_dir)]) == 141
    assert "error" not in capsys.readouterr().err


def test_encode_sparse_refuses_a_dense_model_before_loading_it(tiny_st_dir, tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text("hello\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "x.npz"), "--sparse", str(tiny_st_dir)]) == 1
    err = capsys.readouterr().err
    assert "is not a sparse encoder" in err and "untrained" in err and not (tmp_path / "x.npz").exists()


def test_serving_a_plain_masked_lm_as_model_notes_sparse_model(tiny_mlm_dir, tiny_splade_dir, tiny_st_dir):
    from sentencekit.serve.models import masked_lm_note

    assert "--sparse-model" in masked_lm_note(str(tiny_mlm_dir))
    assert masked_lm_note(str(tiny_splade_dir)) is None and masked_lm_note(str(tiny_st_dir)) is None


def test_hybrid_with_one_named_side_is_refused():
    from sentencekit.search.hybrid import hybrid_sides

    with pytest.raises(ValueError, match="at least two sides.*retrieval='sparse'"):
        hybrid_sides("hybrid", {"sparse": 1.0}, has_sparse=True, has_lexical=True)
    assert hybrid_sides("hybrid", {"dense": 0.3, "sparse": 0.7}, has_sparse=True, has_lexical=True) == \
        {"dense": 0.3, "sparse": 0.7}


def test_python_dash_m_sentencekit_runs_the_cli():
    """``python -m sentencekit`` is the ``sentencekit`` script (it failed: no ``sentencekit.__main__``)."""
    run = subprocess.run([sys.executable, "-m", "sentencekit", "--help"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout and "search" in run.stdout
