"""Once a model's ONNX export exists, loading and running it imports neither torch nor transformers
(checked in fresh interpreters, as users start them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # each test starts fresh interpreters

CHECK = """
import json, sys
from sentencekit import {cls}
model = {cls}({path!r}, backend="onnx")
out = model.{call}
print(json.dumps({{"shape": list(getattr(out, "shape", ())), "loaded": sorted(
    m for m in ("torch", "transformers") if m in sys.modules)}}))
"""


def run_fresh(code: str, home) -> dict:
    env = {**os.environ, "SENTENCEKIT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["embedder", "reranker"])
def test_onnx_path_never_imports_torch_or_transformers(kind, tiny_st_dir, tiny_ce_dir, tmp_path):
    src = tiny_st_dir if kind == "embedder" else tiny_ce_dir
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    cls = "SentenceTransformer" if kind == "embedder" else "CrossEncoder"
    call = "encode(['hello world', 'a refund'])" if kind == "embedder" else "predict([('q', 'refund'), ('q', 'a')])"
    code = CHECK.format(cls=cls, path=str(folder), call=call)
    first = run_fresh(code, tmp_path / "home")  # exports: torch is allowed here
    assert first["shape"] == ([2, 32] if kind == "embedder" else [2])
    second = run_fresh(code, tmp_path / "home")
    assert second == {"shape": first["shape"], "loaded": []}


def test_int8_export_and_encode_without_torch_afterwards(tiny_st_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_st_dir, folder)
    code = CHECK.format(cls="SentenceTransformer", path=str(folder), call="encode(['hello world'])").replace(
        'backend="onnx"', 'backend="onnx", compute_dtype="int8"')
    run_fresh(code, tmp_path / "home")
    assert run_fresh(code, tmp_path / "home")["loaded"] == []


def test_stored_index_on_onnx_without_torch(tiny_st_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_st_dir, folder)
    code = f"""
import json, sys
from sentencekit import EmbeddingIndex, SentenceTransformer
model = SentenceTransformer({str(folder)!r}, backend="onnx")
index = EmbeddingIndex.create({str(tmp_path / "idx")!r}, model)
index.add([("refund order payment card number " * 40), "the cat sat on the mat"], ids=["long", "cat"], chunk=True)
hits = index.search("refund", top_k=2)
print(json.dumps({{"shape": [len(hits)], "loaded": sorted(m for m in ("torch", "transformers") if m in sys.modules)}}))
"""
    run_fresh(CHECK.format(cls="SentenceTransformer", path=str(folder), call="encode(['x'])"), tmp_path / "home")
    assert run_fresh(code, tmp_path / "home") == {"shape": [2], "loaded": []}


def test_sparse_encoder_and_its_helpers_without_torch(tiny_mlm_dir, tmp_path):
    """SPLADE on ONNX Runtime: import, encode (SciPy CSR), decode, sparsity, intersection and every similarity
    function run without torch once the graph is exported."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_mlm_dir, folder)
    code = f"""
import json, sys
from sentencekit import SparseEncoder
model = SparseEncoder({str(folder)!r}, backend="onnx")
emb = model.encode(["how do i get a refund", "the cat sat on the mat", "hello"])
terms = model.decode(emb, top_k=3)
stats = model.sparsity(emb)
shared = model.intersection(emb[0], emb)
scores = {{}}
for name in ("dot", "cosine", "euclidean", "manhattan"):
    model.similarity_fn_name = name
    scores[name] = [list(model.similarity(emb, emb).shape), list(model.similarity_pairwise(emb, emb).shape)]
print(json.dumps({{"shape": [type(emb).__name__, *emb.shape], "terms": [len(t) for t in terms],
                   "scores": scores, "shared": type(shared).__name__,
                   "loaded": sorted(m for m in ("torch", "transformers") if m in sys.modules)}}))
"""
    first = run_fresh(code, tmp_path / "home")  # exports: torch is allowed here
    second = run_fresh(code, tmp_path / "home")
    assert second == {**first, "loaded": []}
    assert second["shape"][0] == "csr_matrix" and second["terms"] == [3, 3, 3] and second["shared"] == "csr_matrix"
    assert all(v == [[3, 3], [3]] for v in second["scores"].values())
