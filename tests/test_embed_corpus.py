"""`sentencekit embed-corpus`: shards written atomically, reruns compute only the missing ones, the output
equals one in-process encode, and shards of another job are never mixed in."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from sentencekit import corpus_embed
from sentencekit.cli import main
from sentencekit.corpus_embed import ManifestMismatchError, embed_corpus, parts_dir

TEXTS = [f"what is the refund policy for order {i}" + " thanks" * (i % 5) for i in range(47)]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"doc": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    return path


@pytest.fixture(scope="module")
def model(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu")


def _read(out):
    table = pq.read_table(out)
    return table.column(0).to_pylist(), np.array(table.column("embedding").to_pylist(), dtype=np.float32)


def test_full_run_equals_encode_with_ids(corpus, tmp_path, model):
    out = tmp_path / "emb.parquet"
    result = embed_corpus(corpus, out, model, id_column="doc", shard_size=10, normalize_embeddings=True)
    assert (result.rows, result.dimension, result.computed, result.reused) == (47, 32, [0, 1, 2, 3, 4], [])
    ids, emb = _read(out)
    assert ids == [f"d{i}" for i in range(47)]
    np.testing.assert_allclose(emb, model.encode(TEXTS, normalize_embeddings=True), atol=1e-6)
    assert pq.read_schema(out).names == ["doc", "embedding"]


def test_rerun_after_crash_computes_only_missing_shards(corpus, tmp_path, model, monkeypatch):
    out = tmp_path / "emb.parquet"
    real_write = corpus_embed._write_shard
    written = []

    def crash_after_two(parts, k, *args):
        if len(written) == 2:
            raise KeyboardInterrupt("simulated crash")
        written.append(k)
        real_write(parts, k, *args)

    monkeypatch.setattr(corpus_embed, "_write_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        embed_corpus(corpus, out, model, shard_size=10)
    monkeypatch.setattr(corpus_embed, "_write_shard", real_write)
    assert not out.exists() and sorted(p.name for p in parts_dir(out).glob("shard-*")) == [
        "shard-000000.parquet", "shard-000001.parquet"]

    result = embed_corpus(corpus, out, model, shard_size=10)
    assert result.reused == [0, 1] and result.computed == [2, 3, 4]
    ids, emb = _read(out)
    assert ids == list(range(47))
    np.testing.assert_allclose(emb, model.encode(TEXTS), atol=1e-6)

    # the finished output is the only copy: no shards are left beside it, and a rerun does nothing
    assert not parts_dir(out).exists()
    again = embed_corpus(corpus, out, model, shard_size=10)
    assert again.computed == [] and again.reused == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(_read(out)[1], emb)


def test_other_model_or_input_refuses_to_mix_shards(corpus, tmp_path, model, tiny_ce_dir):
    out = tmp_path / "emb.parquet"
    embed_corpus(corpus, out, model, shard_size=20)
    with pytest.raises(ManifestMismatchError, match=r"(?s)encode: .*normalize_embeddings.*Delete .*emb.parquet"):
        embed_corpus(corpus, out, model, shard_size=20, normalize_embeddings=True)
    with pytest.raises(ManifestMismatchError, match="shard_size"):
        embed_corpus(corpus, out, model, shard_size=10)
    corpus.write_text(corpus.read_text().replace("order 3", "order 33"))
    with pytest.raises(ManifestMismatchError, match="input: finished shards have"):
        embed_corpus(corpus, out, model, shard_size=20)


@pytest.mark.pool
def test_cli_with_process_pool_parquet_input(tmp_path, tiny_st_dir, model, capsys):
    import pyarrow as pa

    src = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": list(range(100, 147)), "body": TEXTS}), src)
    out = tmp_path / "out.parquet"
    argv = ["embed-corpus", str(src), "--column", "body", "--id-column", "id", "--out", str(out), "--model",
            str(tiny_st_dir), "--device", "cpu", "--shard-size", "20", "--processes", "2", "--chunk-size", "6"]
    assert main(argv) == 0
    ids, emb = _read(out)
    assert ids == list(range(100, 147))
    np.testing.assert_allclose(emb, model.encode(TEXTS), atol=1e-6)
    assert "3 shards computed, 0 reused" in capsys.readouterr().err
    assert main(argv[:-4]) == 0  # done already: a rerun (in-process this time) does nothing
    assert "already the output of this job (47 rows); nothing to do" in capsys.readouterr().err
    assert not parts_dir(out).exists()


def test_input_is_streamed_shard_by_shard_and_checked_before_any_work(corpus, tmp_path, model, monkeypatch):
    # the engine receives shards one at a time, as it asks for them (the reader's own batching is tested
    # in test_corpus_reader.py)
    seen = []
    original = corpus_embed._local_engine

    def watching(model_, kwargs):
        run = original(model_, kwargs)

        def wrapped(jobs):
            assert not isinstance(jobs, list)  # a generator: the file is read as shards are needed
            for k, texts in jobs:
                seen.append(len(texts))
                yield from run([(k, texts)])
        return wrapped

    monkeypatch.setattr(corpus_embed, "_local_engine", watching)
    embed_corpus(corpus, tmp_path / "out.parquet", model, shard_size=20, log=lambda m: None)
    assert seen == [20, 20, 7]
    # a bad row at the very end is found before any shard is computed
    bad = tmp_path / "bad.jsonl"
    bad.write_text(corpus.read_text() + '{"title": "no text"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:48"):
        embed_corpus(bad, tmp_path / "bad.parquet", model, shard_size=20, log=lambda m: None)
    assert not parts_dir(tmp_path / "bad.parquet").exists()
