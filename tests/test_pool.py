"""The multi-process pool: same results as one process, in order, over many chunks; a worker that dies
or raises surfaces as an error within seconds and the pool still stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sentencekit.families.embedder import SentenceTransformer
from sentencekit.families.reranker import CrossEncoder
from sentencekit.parallel import PoolWorkerError, threads_per_worker
from sentencekit.parallel.pool import describe_exit

pytestmark = pytest.mark.pool

TEXTS = [f"how do i get a refund for order {i} " + "please help " * (i % 9) for i in range(120)]


class FaultyModel(SentenceTransformer):
    """Behaves like its parent except in pool workers (no ``pool`` argument) on marker texts."""

    def encode(self, sentences, *args, **kwargs):  # type: ignore[override]
        if kwargs.get("pool") is None and isinstance(sentences, list):
            if "RAISE" in sentences:
                raise ValueError("bad text in this chunk")
            if "KILL" in sentences:
                os.kill(os.getpid(), signal.SIGKILL)
            if "THREADS" in sentences:
                return np.full((len(sentences), 32), torch.get_num_threads(), dtype=np.float32)
            if any(s.startswith("SLOW") for s in sentences):
                time.sleep(0.3)
        return super().encode(sentences, *args, **kwargs)


@pytest.fixture(scope="module")
def faulty(tiny_st_dir):
    return FaultyModel(str(tiny_st_dir), device="cpu")


@pytest.fixture(scope="module")
def pool(faulty):
    pool = faulty.start_multi_process_pool(["cpu", "cpu"])
    yield pool
    pool.stop()


def test_pool_encode_equals_single_process_in_order(faulty, pool):
    expected = faulty.encode(TEXTS)
    got = faulty.encode(TEXTS, pool=pool, chunk_size=7)  # 18 chunks over 2 workers
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # the default chunk size, a tensor result, a single string, no input
    assert torch.allclose(faulty.encode(TEXTS, pool=pool, convert_to_tensor=True), torch.from_numpy(expected),
                          atol=1e-6)
    np.testing.assert_allclose(faulty.encode(TEXTS[3], pool=pool), expected[3], atol=1e-6)
    assert faulty.encode([], pool=pool).shape == (0, 32)


def test_pool_applies_precision_after_merging(faulty, pool):
    expected = faulty.encode(TEXTS, precision="int8", normalize_embeddings=True, truncate_dim=16)
    got = faulty.encode(TEXTS, pool=pool, chunk_size=11, precision="int8", normalize_embeddings=True,
                        truncate_dim=16)
    assert got.dtype == np.int8 and got.shape == (len(TEXTS), 16)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # same calibration over all rows


def test_worker_exception_names_it_and_pool_stays_usable(faulty, pool):
    texts = TEXTS[:20] + ["RAISE"] + TEXTS[20:40]
    with pytest.raises(PoolWorkerError, match=r"raised ValueError: bad text in this chunk .*inputs [0-9, ]*\b20\b"):
        faulty.encode(texts, pool=pool, chunk_size=10)
    np.testing.assert_allclose(faulty.encode(TEXTS[:30], pool=pool, chunk_size=5), faulty.encode(TEXTS[:30]),
                               atol=1e-6)


def test_threads_per_worker_never_oversubscribe(faulty, pool):
    cores = len(os.sched_getaffinity(0))
    assert pool.threads_per_worker == max(1, cores // 2)
    assert pool.threads_per_worker * pool.num_workers <= max(cores, pool.num_workers)
    seen = faulty.encode(["THREADS"] * 4, pool=pool, chunk_size=1)
    assert set(seen[:, 0].tolist()) == {float(pool.threads_per_worker)}
    assert threads_per_worker(3, cores=16) == 5 and threads_per_worker(8, cores=2) == 1


def test_cross_encoder_predict_via_pool_context_manager(tiny_ce_dir):
    model = CrossEncoder(str(tiny_ce_dir), device="cpu")
    pairs = [(t, TEXTS[-1 - i]) for i, t in enumerate(TEXTS[:60])]
    expected = model.predict(pairs)
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        got = model.predict(pairs, pool=pool, chunk_size=8)
        single = model.predict(pairs[5], pool=pool)
        # two threads at once on the same pool, each with its own pairs, get their own scores
        halves: dict[int, object] = {}
        threads = [threading.Thread(target=lambda k=k: halves.__setitem__(k, model.predict(
            pairs[k::2], pool=pool, chunk_size=4)), daemon=True) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(halves) == [0, 1], "a predict() thread did not finish within 60 s"
        np.testing.assert_allclose(halves[0], expected[0::2], atol=1e-5)
        np.testing.assert_allclose(halves[1], expected[1::2], atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.shape == (60,) and np.isclose(single, expected[5], atol=1e-5)
    assert not any(p.is_alive() for p in pool["processes"])
    with pytest.raises(RuntimeError, match="stopped"):
        model.predict(pairs, pool=pool)


def test_worker_killed_mid_job_raises_within_seconds_and_pool_stops(faulty):
    pool = faulty.start_multi_process_pool(["cpu", "cpu"])
    try:
        start = time.monotonic()
        with pytest.raises(PoolWorkerError, match=r"killed by SIGKILL \(out of memory\?") as info:
            faulty.encode(TEXTS[:30] + ["KILL"] + TEXTS[30:60], pool=pool, chunk_size=10)
        assert time.monotonic() - start < 10
        assert re.search(r"inputs [0-9, ]*\b30\b", str(info.value)) and "start a new one" in str(info.value)
        with pytest.raises(PoolWorkerError, match="SIGKILL"):  # the pool stays marked broken
            faulty.encode(TEXTS, pool=pool)
    finally:
        start = time.monotonic()
        faulty.stop_multi_process_pool(pool)
        assert time.monotonic() - start < 15
    assert not any(p.is_alive() for p in pool["processes"])
    faulty.stop_multi_process_pool(pool)  # twice is fine


def test_worker_killed_from_outside_is_detected(faulty):
    with faulty.start_multi_process_pool(["cpu", "cpu"]) as pool:
        victim = pool["processes"][1]
        threading.Timer(1.0, os.kill, (victim.pid, signal.SIGKILL)).start()
        start = time.monotonic()
        with pytest.raises(PoolWorkerError, match=r"pool worker 1 .* killed by SIGKILL"):
            faulty.encode([f"SLOW {t}" for t in TEXTS], pool=pool, chunk_size=4)  # ~9 s if nobody died
        assert time.monotonic() - start < 6


def test_describe_exit():
    assert describe_exit(-signal.SIGKILL).startswith("was killed by SIGKILL")
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert describe_exit(2) == "exited with code 2"


def test_onnx_models_use_the_pool_too(tiny_st_dir, tiny_ce_dir, tmp_path):
    """ONNX Runtime models travel as their folder and settings; each worker opens its own session."""
    pytest.importorskip("onnxruntime")
    import shutil

    from sentencekit import CrossEncoder as AnyCrossEncoder
    from sentencekit import SentenceTransformer as AnySentenceTransformer

    shutil.copytree(tiny_st_dir, tmp_path / "st")
    shutil.copytree(tiny_ce_dir, tmp_path / "ce")
    model = AnySentenceTransformer(str(tmp_path / "st"), backend="onnx")
    model.prompts["query"] = "query: "  # a setting changed after loading reaches the workers
    expected = model.encode_query(TEXTS[:40])
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        np.testing.assert_allclose(model.encode_query(TEXTS[:40], pool=pool, chunk_size=6), expected, atol=1e-6)
    reranker = AnyCrossEncoder(str(tmp_path / "ce"), backend="onnx")
    pairs = [("refund", t) for t in TEXTS[:30]]
    np.testing.assert_allclose(reranker.predict(pairs, device=["cpu", "cpu"], chunk_size=8),
                               reranker.predict(pairs), atol=1e-6)


def test_truncation_in_workers_is_reported_once_for_the_whole_job(faulty, pool):
    import warnings

    from sentencekit.pipeline.batching import TruncationWarning

    texts = ["short text"] * 10 + ["refund " * 200] + ["short"] * 5 + ["order " * 200]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        faulty.encode(texts, pool=pool, chunk_size=4)
    cut = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(cut) == 1 and "2 of 17 inputs" in str(cut[0].message)
    assert cut[0].filename == __file__  # points at the caller's line
    assert faulty.last_encode_info.truncated_indices == (10, 16)


def test_one_pool_used_from_four_threads_at_once(faulty, pool):
    """Each thread's call gets its own results (the threads ask for different outputs), in bounded time;
    before, every call dropped the others' results as stale and all four waited forever."""
    texts = TEXTS[:100]
    settings = [{}, {"truncate_dim": 8}, {"normalize_embeddings": True, "truncate_dim": 16}, {"precision": "int8"}]
    expected = [faulty.encode(texts, **kwargs) for kwargs in settings]
    results: dict[int, object] = {}

    def call(k: int) -> None:
        try:
            results[k] = faulty.encode(texts, pool=pool, chunk_size=10, **settings[k])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[k] = exc

    threads = [threading.Thread(target=call, args=(k,), daemon=True) for k in range(4)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, 90 - (time.monotonic() - start)))
    assert not any(t.is_alive() for t in threads), f"threads still waiting after 90 s: {sorted(results)} finished"
    for k in range(4):
        assert isinstance(results[k], np.ndarray), results[k]
        assert results[k].shape == expected[k].shape and results[k].dtype == expected[k].dtype
        tolerance = 1 if settings[k].get("precision") else 1e-6
        np.testing.assert_allclose(results[k].astype(np.float64), expected[k].astype(np.float64), atol=tolerance)


def _run_script(tmp_path, source: str, timeout: float = 120):
    import subprocess
    import sys

    script = tmp_path / "start_pool_without_guard.py"
    script.write_text(source)
    import sentencekit

    source_root = str(Path(sentencekit.__file__).parents[1])  # the script imports this very sentencekit
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path, env=env)
    return done, time.monotonic() - start


def test_script_without_main_guard_starts_a_pool(tmp_path, tiny_st_dir, tiny_model):
    """``python script.py`` with the pool at top level: workers do not re-run the script, so it just works."""
    done, _ = _run_script(tmp_path, f"""
import numpy as np
from sentencekit import SentenceTransformer

model = SentenceTransformer({str(tiny_st_dir)!r}, device="cpu")
pool = model.start_multi_process_pool(["cpu", "cpu"])
np.save("embeddings.npy", model.encode({TEXTS[:30]!r}, pool=pool, chunk_size=4))
model.stop_multi_process_pool(pool)
print("done")
""")
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "embeddings.npy"), tiny_model.encode(TEXTS[:30]), atol=1e-6)


def test_script_without_main_guard_and_its_own_model_class_fails_naming_the_fix(tmp_path, tiny_st_dir):
    """A model class defined in the script needs the script in the workers: that cannot work without the
    guard, and it is an error within seconds that says what to do, not a hang."""
    done, seconds = _run_script(tmp_path, f"""
from sentencekit import SentenceTransformer

class MyModel(SentenceTransformer):
    pass

model = MyModel({str(tiny_st_dir)!r}, device="cpu")
pool = model.start_multi_process_pool(["cpu", "cpu"])
print("started")
""")
    assert done.returncode != 0 and "started" not in done.stdout
    assert "PoolWorkerError" in done.stderr and "while starting" in done.stderr, done.stderr[-3000:]
    assert 'if __name__ == "__main__":' in done.stderr.splitlines()[-1]


def test_needs_user_main_finds_classes_of_the_script(tiny_model, monkeypatch):
    import sys

    from sentencekit.parallel.spawn import needs_user_main

    assert not needs_user_main(tiny_model)  # a library class: workers need not re-run the script

    class DefinedInScript(SentenceTransformer):
        pass

    DefinedInScript.__qualname__ = "DefinedInScript"
    DefinedInScript.__module__ = "__main__"
    script = sys.modules["__main__"]
    monkeypatch.setattr(script, "DefinedInScript", DefinedInScript, raising=False)
    monkeypatch.setattr(script, "__file__", getattr(script, "__file__", None) or "script.py", raising=False)
    mine = DefinedInScript.__new__(DefinedInScript)
    mine.__dict__.update(tiny_model.__dict__)
    assert needs_user_main(mine)
