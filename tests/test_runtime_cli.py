"""The CLI with ``--backend onnx``, ``--threads`` and ``--compute-dtype``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sentencekit.cli import main

pytest.importorskip("onnxruntime")


def test_encode_similarity_and_rerank_on_onnx(tiny_st_dir, tiny_ce_dir, tmp_path, capsys):
    model_dir, ce_dir = tmp_path / "st", tmp_path / "ce"
    shutil.copytree(tiny_st_dir, model_dir)
    shutil.copytree(tiny_ce_dir, ce_dir)
    src = tmp_path / "texts.txt"
    src.write_text("hello world\nrefund policy\nthe cat sat\n", encoding="utf-8")
    onnx_out, torch_out = tmp_path / "onnx.npy", tmp_path / "torch.npy"
    assert main(["encode", str(src), "-o", str(onnx_out), "--model", str(model_dir), "--backend", "onnx",
                 "--threads", "1", "-q"]) == 0
    assert main(["encode", str(src), "-o", str(torch_out), "--model", str(model_dir), "-q"]) == 0
    np.testing.assert_allclose(np.load(onnx_out), np.load(torch_out), atol=1e-5)
    capsys.readouterr()
    assert main(["similarity", "hello world", "refund policy", "--model", str(model_dir), "--backend", "onnx",
                 "--json"]) == 0
    onnx_score = json.loads(capsys.readouterr().out)["similarity"]
    assert main(["similarity", "hello world", "refund policy", "--model", str(model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["similarity"] == pytest.approx(onnx_score, abs=1e-5)
    corpus = tmp_path / "docs.txt"
    corpus.write_text("refund policy please\nhello world\nthe cat sat on the mat\n", encoding="utf-8")
    results = []
    for backend in ("onnx", "torch"):
        assert main(["rerank", "how do i get a refund", str(corpus), "--model", str(ce_dir), "--backend", backend,
                     "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert [r["corpus_id"] for r in results[0]] == [r["corpus_id"] for r in results[1]]


def test_int8_on_torch_is_an_error_message(tiny_st_dir, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("hello\n", encoding="utf-8")
    assert main(["encode", str(src), "-o", str(tmp_path / "x.npy"), "--model", str(tiny_st_dir),
                 "--compute-dtype", "int8", "--backend", "torch"]) == 1
    assert "backend='onnx'" in capsys.readouterr().err
