"""What the main job picks up from $SENTENCEKIT_HOME: `--rerank auto` uses the installed QA reranker and
never an STS-B one; installing a model replaces the previous one whole."""

from __future__ import annotations

import pytest

from sentencekit.cli import main
from sentencekit.search.defaults import default_reranker_dir, install_model, installed_model_dir, installed_reranker


def search(tiny_st_dir, tmp_path, capsys) -> str:
    corpus = tmp_path / "c.txt"
    corpus.write_text("refunds take five days\nwe ship worldwide\nreset your password\n", encoding="utf-8")
    assert main(["search", "how do i get a refund", "--model", str(tiny_st_dir), "--corpus", str(corpus)]) == 0
    return capsys.readouterr().out


def test_rerank_auto_uses_the_installed_qa_reranker(tiny_st_dir, tiny_ce_dir, tmp_path, capsys):
    assert installed_reranker() is None
    assert "reranked by" not in search(tiny_st_dir, tmp_path, capsys)
    target = install_model(tiny_ce_dir, "insuranceqa-reranker")
    assert target == default_reranker_dir() and installed_reranker() == target
    assert "reranked by insuranceqa-reranker (top 20)" in search(tiny_st_dir, tmp_path, capsys)


def test_rerank_auto_never_picks_an_stsb_reranker(tiny_st_dir, tiny_ce_dir, tmp_path, capsys):
    install_model(tiny_ce_dir, "minilm-stsb-reranker")  # what examples/train_stsb_reranker.py --install does
    assert installed_reranker() is None
    assert "reranked by" not in search(tiny_st_dir, tmp_path, capsys)


def test_install_replaces_the_previous_model_whole(tiny_st_dir, tiny_ce_dir, tmp_path):
    install_model(tiny_st_dir, "m")
    install_model(tiny_ce_dir, "m")
    names = sorted(p.name for p in installed_model_dir("m").iterdir())
    assert names == sorted(p.name for p in tiny_ce_dir.iterdir())
    assert sorted(p.name for p in installed_model_dir("m").parent.iterdir()) == ["m"]  # no .tmp / .old left
    with pytest.raises(FileNotFoundError, match="not a saved model folder"):
        install_model(tmp_path, "m")


def test_index_commands_on_a_file_say_it_is_not_an_index(tmp_path, capsys):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"id": "a", "text": "b"}\n', encoding="utf-8")
    assert main(["index", "info", str(corpus)]) == 1
    err = capsys.readouterr().err
    assert "is a file, not an embedding index folder" in err and "damaged" not in err
