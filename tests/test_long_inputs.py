"""Long inputs: batches of long texts are bounded by a token budget and by attention memory (rows x length^2),
never by ``batch_size`` alone, on the torch and ONNX engines; short texts keep today's batches; a decoder with
8k positions keeps an 8k ``max_seq_length`` and reports (never silently cuts) longer texts; the search chunker
cuts 8k-token windows with a decoder's byte-level BPE tokenizer. Batches are checked by the shapes the network
receives (spies on the torch module's forward and the ONNX session's run), not by timings."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from sentencekit.pipeline.batching import (
    ATTENTION_REFERENCE_LENGTH,
    MAX_GROWTH,
    TruncationWarning,
    plan_batches,
    resolve_batching,
)
from tests.conftest import build_tiny_bert
from tests.decoder_folders import ENDOFTEXT, build_tiny_decoder

#: a tiny-BERT vocabulary word: one token each
WORD = "hello "


def _text(tokens: int) -> str:
    return (WORD * tokens).strip()


# -- the rule -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens_per_text", [None, 32, 128])
def test_short_texts_keep_todays_batches(tokens_per_text):
    """Up to ATTENTION_REFERENCE_LENGTH tokens, the attention budget never binds: the batches are those of
    the token budget alone (today's rule: ``min(rows, budget // longest)``)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, ATTENTION_REFERENCE_LENGTH + 1, size=2000)
    rows, tokens, attention = resolve_batching(32, None, tokens_per_text)
    today_rows, today_tokens = (32 * MAX_GROWTH, 32 * tokens_per_text) if tokens_per_text else (32, None)
    assert (rows, tokens is None or attention == tokens * ATTENTION_REFERENCE_LENGTH) == (today_rows, True)
    new = plan_batches(lengths, rows, tokens, attention)
    old = plan_batches(lengths, today_rows, today_tokens)
    assert [b.tolist() for b in new] == [b.tolist() for b in old]
    if tokens_per_text is None:
        assert {len(b) for b in new[:-1]} == {32}  # GPU default: exactly batch_size texts a batch


def test_8k_texts_get_batches_of_one_whatever_batch_size_says():
    lengths = [8192] * 40 + [2048] * 40 + [100] * 40
    for tokens_per_text in (None, 32, 128):
        plan = plan_batches(lengths, *resolve_batching(32, None, tokens_per_text))
        assert all(len(b) == 1 for b in plan if lengths[b[0]] == 8192)
        assert sorted(np.concatenate(plan).tolist()) == list(range(len(lengths)))
    # an explicit budget: rows x len <= max_batch_tokens and rows x len^2 <= max_batch_tokens x 512
    plan = plan_batches(lengths, *resolve_batching(32, 65536, None))
    sizes: dict[int, int] = {}
    for batch in plan:  # the largest batch of each length
        sizes[int(lengths[batch[0]])] = max(len(batch), sizes.get(int(lengths[batch[0]]), 0))
    assert sizes == {8192: 1, 2048: 8, 100: 32}  # 2048: 65536*512/2048^2 = 8 (tokens alone would give 32)
    for batch in plan:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest**2 <= 65536 * ATTENTION_REFERENCE_LENGTH


# -- the engines, seen from the network's side --------------------------------------------------------------------
@pytest.fixture(scope="session")
def long_bert_dir(tmp_path_factory) -> Path:
    """Tiny BERT with 2048 positions, as a sentence-transformers folder (mean pooling)."""
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Pooling, Transformer

    root = tmp_path_factory.mktemp("long-bert")
    transformer = Transformer(str(build_tiny_bert(root / "hf", max_positions=2048)), max_seq_length=2048)
    SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu").save(root / "st")
    return root / "st"


#: 3 texts of 1026 tokens ([CLS] + 1024 + [SEP]) and 6 short ones, shuffled
MIXED = [_text(1024) if i % 3 == 0 else _text(5 + i) for i in range(9)]


def _expected_shapes(batch_size: int, max_batch_tokens: int | None, tokens_per_text: int | None) -> list[tuple]:
    lengths = [len(t.split()) + 2 for t in MIXED]
    plan = plan_batches(lengths, *resolve_batching(batch_size, max_batch_tokens, tokens_per_text))
    return [(len(b), max(lengths[i] for i in b)) for b in plan]


def test_torch_engine_runs_long_texts_in_attention_bounded_batches(long_bert_dir):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(long_bert_dir), device="cpu")
    model.batch_tokens_per_text = None  # as on a GPU: batch_size texts a batch, no per-text allowance
    shapes = []
    hook = model[0].auto_model.register_forward_pre_hook(
        lambda _m, args, kwargs: shapes.append(tuple((kwargs.get("input_ids") if kwargs else args[0]).shape)),
        with_kwargs=True)
    try:
        batched = model.encode(MIXED, batch_size=4)
    finally:
        hook.remove()
    # 1026-token rows: 4 x 1026 tokens fit 4 x 512, but 4 x 1026^2 > 4 x 512^3 / 512: one at a time
    assert shapes == _expected_shapes(4, None, None) == [(1, 1026)] * 3 + [(4, 15), (2, 9)]
    single = np.stack([model.encode(t) for t in MIXED])
    np.testing.assert_allclose(batched, single, atol=1e-5)  # order restored


def test_onnx_engine_runs_long_texts_in_attention_bounded_batches(long_bert_dir, tmp_path):
    from sentencekit import SentenceTransformer

    folder = shutil.copytree(long_bert_dir, tmp_path / "st")
    model = SentenceTransformer(str(folder), backend="onnx")
    session, shapes = model.engine._session, []

    class Spy:
        def run(self, names, features, *args):
            shapes.append(tuple(features["input_ids"].shape))
            return session.run(names, features, *args)

        def __getattr__(self, name):
            return getattr(session, name)

    model.engine._session = Spy()
    batched = model.encode(MIXED, batch_size=8, max_batch_tokens=2100)
    # tokens alone would allow 2 rows of 1026; attention (2100 x 512 / 1026^2 = 1.02) allows one
    assert shapes == _expected_shapes(8, 2100, None) == [(1, 1026)] * 3 + [(6, 15)]
    shapes.clear()
    model.encode(MIXED, batch_size=8)  # the ONNX engine's own allowance (32 tokens a text): 256-token budget
    assert shapes == _expected_shapes(8, None, 32)
    assert all(rows == 1 for rows, length in shapes if length > 256)
    torch_model = SentenceTransformer(str(long_bert_dir), device="cpu")
    np.testing.assert_allclose(batched, torch_model.encode(MIXED, batch_size=1), atol=1e-5)


# -- 8k contexts: a decoder ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def long_decoder_dir(tmp_path_factory) -> Path:
    """Tiny random Qwen3 (8192 positions, Qwen's tokenizer appending <|endoftext|>) with last-token pooling."""
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Pooling, Transformer

    root = tmp_path_factory.mktemp("long-decoder")
    hf = build_tiny_decoder(root / "hf", "qwen3", append_eos=True, max_position_embeddings=8192)
    SentenceTransformer(modules=[Transformer(str(hf)), Pooling(32, "lasttoken")], device="cpu").save(root / "st")
    return root / "st"


def test_decoder_keeps_an_8k_window_and_reports_longer_texts(long_decoder_dir):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(long_decoder_dir), device="cpu")
    assert model.max_seq_length == 8192  # max_position_embeddings, not a BERT-sized default
    # as on a GPU: batch_size=32 texts a batch, whose 16,384-token budget would take two 8k rows; attention allows one
    model.batch_tokens_per_text = None
    too_long = "The quick brown fox jumps over the lazy dog. " * 900  # about 9,000 tokens
    fits = "The quick brown fox jumps over the lazy dog. " * 700  # about 7,000
    seen = []
    hook = model[0].auto_model.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((kwargs.get("input_ids") if kwargs else args[0]).clone()),
        with_kwargs=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.encode([fits, too_long, "short"], batch_size=32)
    finally:
        hook.remove()
    assert [w.category for w in caught if issubclass(w.category, TruncationWarning)] == [TruncationWarning]
    info = model.last_encode_info
    assert (info.truncated_indices, info.max_seq_length) == ((1,), 8192)
    eos = model.tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    # one row a batch for both long texts; the cut text keeps its closing <|endoftext|> (what lasttoken pools)
    fits_len, short_len = (len(ids) for ids in model.tokenizer([fits, "short"])["input_ids"])
    assert fits_len > 7000
    assert [tuple(ids.shape) for ids in seen] == [(1, 8192), (1, fits_len), (1, short_len)]
    assert int(seen[0][0, -1]) == eos


def test_search_chunker_cuts_8k_windows_with_a_decoder_tokenizer(long_decoder_dir):
    from sentencekit import SentenceTransformer
    from sentencekit.search.chunking import chunk_texts, default_chunk_size

    model = SentenceTransformer(str(long_decoder_dir), device="cpu")
    assert default_chunk_size(model) == 8191  # 8192 less the appended <|endoftext|>
    text = ("Résumé: 日本語のテキストも含む. Москва — столица России. " * 1200).strip()
    chunks = chunk_texts([text], model.tokenizer, chunk_size=8191, chunk_overlap=256)[0]
    assert len(chunks) >= 3
    assert all(text[c.start:c.end] == c.text for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(a.end > b.start for a, b in zip(chunks, chunks[1:]))  # windows overlap
    sizes = [len(ids) for ids in model.tokenizer([c.text for c in chunks], add_special_tokens=False)["input_ids"]]
    assert max(sizes) <= 8191 + 2  # re-tokenizing a window may merge its edge bytes differently
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # every window fits the model whole
        model.encode([c.text for c in chunks[:1]])
