"""Encoders that are not BERT-like: XLM-RoBERTa with a Unigram (sentencepiece-style) tokenizer, as multilingual
models (multilingual-e5, BGE-M3, paraphrase-multilingual) have, and ModernBERT (global + sliding-window local
attention). Tiny random models from tests/multilingual_folders.py; torch and ONNX must agree, batches must give
what one-by-one calls give (XLM-R's position ids depend on its padding id 1), and the ONNX backend's tokenizer
must give transformers' ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.multilingual_folders import MULTILINGUAL_TEXTS, build_tiny_modernbert, build_tiny_xlmr

#: the multilingual texts, plus whitespace runs, tabs, newlines, a fullwidth and an empty text, and the mask token
TEXTS = MULTILINGUAL_TEXTS + ["  leading  and  double\tspaces\nnewline ", "ｆｕｌｌｗｉｄｔｈ ①", "<mask> masked", ""]
PAIRS = [(a, b) for a, b in zip(TEXTS, reversed(TEXTS))]


def _st_folder(hf_folder: Path, out: Path) -> Path:
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Pooling, Transformer

    transformer = Transformer(str(hf_folder))
    pooling = Pooling(transformer.get_word_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(out)
    return out


@pytest.fixture(scope="session")
def xlmr_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("xlmr")
    return _st_folder(build_tiny_xlmr(root / "hf"), root / "st")


@pytest.fixture(scope="session")
def xlmr_ce_dir(tmp_path_factory) -> Path:
    from sentencekit import CrossEncoder

    root = tmp_path_factory.mktemp("xlmr-ce")
    # larger random weights than the default 0.02, so that scores of different pairs differ visibly (logits -3 .. 4)
    model = CrossEncoder(str(build_tiny_xlmr(root / "hf", head="classifier", initializer_range=0.5)), device="cpu")
    model.untrained_head = None
    model.save(root / "ce")
    return root / "ce"


@pytest.fixture(scope="session")
def modernbert_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("modernbert")
    return _st_folder(build_tiny_modernbert(root / "hf"), root / "st")


def _private(folder: Path, tmp_path: Path) -> Path:
    """A copy to export ONNX into (the session folders stay torch-only)."""
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# -- XLM-R / Unigram ----------------------------------------------------------------------------------------------
def test_fast_tokenizer_gives_transformers_ids_for_xlmr_texts_and_pairs(xlmr_dir):
    from transformers import AutoTokenizer

    from sentencekit.engines.fast_tokenizer import FastTokenizer

    # the folder as published (tokenizer.json in XLM-R's shape: a Metaspace pre-tokenizer, a normalizer), not
    # the one sentencekit saved (which holds the pipeline transformers rebuilt)
    published = xlmr_dir.parent / "hf"
    assert json.loads((published / "tokenizer.json").read_text())["pre_tokenizer"]["type"] == "Metaspace"
    hf = AutoTokenizer.from_pretrained(str(published))
    assert type(hf).__name__.startswith("XLMRobertaTokenizer")
    ours = FastTokenizer.from_file(published / "tokenizer.json", max_length=512)
    assert (ours.pad_id, ours.padding_side) == (1, "right")
    assert [list(x) for x in ours.encode(TEXTS).ids] == hf(TEXTS)["input_ids"]
    expected = hf([a for a, _ in PAIRS], [b for _, b in PAIRS])["input_ids"]
    assert [list(x) for x in ours.encode(PAIRS).ids] == expected
    # XLM-R's shapes: <s>=0 ... </s>=2; pairs <s> A </s> </s> B </s>
    one = expected[0]
    first_sep = one.index(2)
    assert (one[0], one[first_sep + 1], one[-1], one.count(2), one.count(0)) == (0, 2, 2, 3, 1)
    # runs of whitespace give no tokens of their own (transformers' WhitespaceSplit), unlike the file's Metaspace
    assert ours.encode(["a  b"]).ids[0].tolist() == ours.encode(["a b"]).ids[0].tolist()


def test_xlmr_embedder_torch_equals_onnx_and_batches_equal_one_by_one(xlmr_dir, tmp_path):
    from sentencekit import SentenceTransformer

    torch_model = SentenceTransformer(str(xlmr_dir), device="cpu")
    assert torch_model.max_seq_length == 512  # 514 position embeddings, ids from padding_idx + 1
    batch = torch_model.encode(TEXTS, batch_size=8)
    single = np.stack([torch_model.encode(t) for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    onnx_model = SentenceTransformer(str(_private(xlmr_dir, tmp_path)), backend="onnx")
    np.testing.assert_allclose(onnx_model.encode(TEXTS, batch_size=8), batch, atol=1e-5)


def test_xlmr_cross_encoder_torch_equals_onnx_and_batches_equal_one_by_one(xlmr_ce_dir, tmp_path):
    from sentencekit import CrossEncoder

    model = CrossEncoder(str(xlmr_ce_dir), device="cpu")
    scores = model.predict(PAIRS, batch_size=4)
    assert np.ptp(scores) > 0.1
    np.testing.assert_allclose(scores, [model.predict([p])[0] for p in PAIRS], atol=1e-5)
    onnx_model = CrossEncoder(str(_private(xlmr_ce_dir, tmp_path)), backend="onnx")
    np.testing.assert_allclose(onnx_model.predict(PAIRS, batch_size=4), scores, atol=1e-5)


def test_xlmr_position_limit_leaves_out_the_padding_offset(tmp_path):
    """A tokenizer without ``model_max_length`` must not let texts overrun XLM-R's 514 - 2 usable positions."""
    import warnings

    from sentencekit import SentenceTransformer
    from sentencekit.pipeline.batching import TruncationWarning

    hf = build_tiny_xlmr(tmp_path / "hf", max_position_embeddings=34)
    config = json.loads((hf / "tokenizer_config.json").read_text())
    config.pop("model_max_length", None)
    (hf / "tokenizer_config.json").write_text(json.dumps(config))
    model = SentenceTransformer(str(_st_folder(hf, tmp_path / "st")), device="cpu")
    assert model.max_seq_length == 32
    with pytest.raises(ValueError, match="33 exceeds"):
        model.max_seq_length = 33
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.encode([MULTILINGUAL_TEXTS[1] * 3, "short"])
    assert any(issubclass(w.category, TruncationWarning) for w in caught)
    assert model.last_encode_info.truncated_indices == (0,)


# -- ModernBERT -------------------------------------------------------------------------------------------------
def test_modernbert_embedder_torch_equals_onnx_and_batches_equal_one_by_one(modernbert_dir, tmp_path):
    from sentencekit import SentenceTransformer

    texts = TEXTS + [" ".join(MULTILINGUAL_TEXTS)]  # longer than the 8-token local window: both attentions
    torch_model = SentenceTransformer(str(modernbert_dir), device="cpu")
    assert torch_model.max_seq_length == 8192
    batch = torch_model.encode(texts, batch_size=8)
    single = np.stack([torch_model.encode(t) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    onnx_model = SentenceTransformer(str(_private(modernbert_dir, tmp_path)), backend="onnx")
    np.testing.assert_allclose(onnx_model.encode(texts, batch_size=8), batch, atol=1e-4)
