"""sentencekit.ray on a local single-node Ray cluster (``ray.init(num_cpus=2)``; Ray has no local_mode any
more): the real default model gives the same embeddings through Ray actors as in process, row by row,
in order, with ids kept; reranking scores and ``embed-corpus --ray`` likewise."""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray,
              pytest.mark.filterwarnings("ignore:.*were truncated:UserWarning", "ignore::DeprecationWarning")]

TEXTS = [f"Customer {i} asks how to {['reset a password', 'get a refund', 'cancel an order'][i % 3]}"
         + " and whether shipping is free" * (i % 4) for i in range(200)]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.mark.real_model
def test_embed_dataset_real_model_equals_encode(cluster, minilm_dir, minilm):
    from sentencekit.ray import embed_dataset

    ds = ray.data.from_items([{"id": f"doc-{i}", "text": t} for i, t in enumerate(TEXTS)])
    rows = embed_dataset(ds, str(minilm_dir), batch_size=50, num_actors=2, num_cpus_per_actor=1,
                         normalize_embeddings=True).take_all()
    assert [r["id"] for r in rows] == [f"doc-{i}" for i in range(len(TEXTS))]
    assert [r["text"] for r in rows] == TEXTS
    got = np.stack([r["embedding"] for r in rows])
    expected = minilm.encode(TEXTS, normalize_embeddings=True)
    assert got.dtype == np.float32 and got.shape == (200, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # batches differ: float rounding only


def test_rerank_dataset_with_loaded_model(cluster, tiny_ce_dir):
    from sentencekit.families.reranker import CrossEncoder
    from sentencekit.ray import rerank_dataset

    model = CrossEncoder(str(tiny_ce_dir), device="cpu")
    pairs = [(TEXTS[i], TEXTS[-1 - i]) for i in range(40)]
    ds = ray.data.from_items([{"q": q, "d": d, "pair": i} for i, (q, d) in enumerate(pairs)])
    rows = rerank_dataset(ds, model, query_column="q", document_column="d", batch_size=16, num_actors=1).take_all()
    assert [r["pair"] for r in rows] == list(range(40))
    np.testing.assert_allclose([r["score"] for r in rows], model.predict(pairs), atol=1e-5)


def test_embed_dataset_checks_arguments(cluster, tiny_st_dir):
    from sentencekit.ray import embed_dataset

    ds = ray.data.from_items([{"body": "x"}])
    with pytest.raises(ValueError, match="no column 'text'"):
        embed_dataset(ds, str(tiny_st_dir))
    with pytest.raises(ValueError, match="precision must stay float32"):
        embed_dataset(ds, str(tiny_st_dir), column="body", precision="int8")


def test_embed_corpus_resumes_on_ray(cluster, tmp_path, tiny_st_dir, monkeypatch):
    import pyarrow.parquet as pq

    from sentencekit import SentenceTransformer, corpus_embed
    from sentencekit.corpus_embed import embed_corpus, parts_dir

    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:90]))
    out = tmp_path / "out.parquet"
    real_write = corpus_embed._write_shard

    def crash_at_third(parts, k, *args):
        if k == 2:
            raise KeyboardInterrupt("simulated crash")
        real_write(parts, k, *args)

    monkeypatch.setattr(corpus_embed, "_write_shard", crash_at_third)
    with pytest.raises(KeyboardInterrupt):  # in process: shards 0 and 1 are written, then the crash
        embed_corpus(src, out, str(tiny_st_dir), shard_size=25, model_kwargs={"device": "cpu"})
    monkeypatch.setattr(corpus_embed, "_write_shard", real_write)
    (parts_dir(out) / "shard-000001.parquet").unlink()
    again = embed_corpus(src, out, str(tiny_st_dir), shard_size=25, ray_address="local", ray_actors=2,
                         model_kwargs={"device": "cpu"})
    assert again.computed == [1, 2, 3] and again.reused == [0]
    assert not parts_dir(out).exists()
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(90))
    expected = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS[:90])
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), expected, atol=1e-6)


def test_more_actors_than_the_cluster_holds_are_capped_not_a_hang(cluster, tiny_st_dir):
    """num_actors=8 on 2 CPUs (the README's call on a small machine) used to wait forever: now 2 actors run,
    with a warning that says so, and the embeddings are right; an actor that fits nowhere is an error."""
    import threading
    import time

    from sentencekit import SentenceTransformer
    from sentencekit.ray import embed_dataset

    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS[:40])])
    with pytest.warns(UserWarning, match=r"num_actors=8 .*\(2 CPUs\): starting 2 instead") as caught:
        mapped = embed_dataset(ds, str(tiny_st_dir), batch_size=10, num_actors=8, model_kwargs={"device": "cpu"})
    assert caught[0].filename == __file__  # points at the caller's line
    rows: list = []
    runner = threading.Thread(target=lambda: rows.extend(mapped.take_all()), daemon=True)
    start = time.monotonic()
    runner.start()
    runner.join(timeout=180)
    assert not runner.is_alive(), "embed_dataset(num_actors=8) still running after 180 s on a 2-CPU cluster"
    assert [r["id"] for r in rows] == list(range(40)), time.monotonic() - start
    expected = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS[:40])
    np.testing.assert_allclose(np.stack([r["embedding"] for r in rows]), expected, atol=1e-6)

    with pytest.raises(ValueError, match=r"One actor needs 4 CPU but the Ray cluster has 2 CPUs"):
        embed_dataset(ds, str(tiny_st_dir), num_cpus_per_actor=4)
    with pytest.raises(ValueError, match=r"needs 1 CPU and 1 GPU but the Ray cluster has 2 CPUs and 0 GPUs"):
        embed_dataset(ds, str(tiny_st_dir), num_gpus_per_actor=1)
