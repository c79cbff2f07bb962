"""The small index both vector-database test files export (documents with metadata, titles and chunks), and
a second tiny model with other weights (for the refused-model checks)."""

from __future__ import annotations

from pathlib import Path

TEXTS = [
    "how do i get a refund for my order",
    "shipping is late please help",
    "reset my account password",
    "the cat sat on the mat",
    "weather in paris today is mild",
    # chunked into several windows, all different
    "payment card cost price order ship delivery late broken item please thanks support ticket email phone "
    "number hello world test sentence query document passage good bad help cancel subscription login",
]
IDS = ["refund", "late", "password", "cat", "paris", "long"]
METADATA = [{"lang": "en", "n": 1}, None, {"tags": ["account", "login"]}, {"n": 4}, None, {"kind": "manual"}]
TITLES = ["Refunds", None, "Account help", None, None, "A manual"]
QUERIES = ["refund my payment", "late delivery", "cat on a mat", "password login", "broken item"]


def build_index(path: Path, model, *, normalize: bool = True):
    """An EmbeddingIndex at ``path`` with titles, chunks (the long document) and metadata."""
    from sentencekit.search.index import EmbeddingIndex

    index = EmbeddingIndex.create(path, model, normalize=normalize)
    index.add(TEXTS[:5], ids=IDS[:5], metadata=METADATA[:5], titles=TITLES[:5])
    index.add(TEXTS[5:], ids=IDS[5:], metadata=METADATA[5:], titles=TITLES[5:], chunk=True, chunk_size=8,
              chunk_overlap=2)
    index.delete(["cat"])  # deleted documents are not exported
    return index


def build_other_model(folder: Path) -> Path:
    """Same architecture as the tiny model, different random weights."""
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Normalize, Pooling, Transformer
    from tests.conftest import build_tiny_bert

    bert = build_tiny_bert(folder / "bert", seed=1)
    model = SentenceTransformer(modules=[Transformer(str(bert), max_seq_length=48), Pooling(32, "mean"), Normalize()],
                                device="cpu")
    model.save(folder / "model")
    return folder / "model"


def assert_same_hits(got: list[dict], want: list[dict]) -> None:
    """Same documents in the same order, the same fields, scores within 1e-5."""
    assert [h["id"] for h in got] == [h["id"] for h in want]
    for a, b in zip(got, want):
        assert abs(a["score"] - b["score"]) < 1e-5, (a, b)
        assert {k: v for k, v in a.items() if k != "score"} == {k: v for k, v in b.items() if k != "score"}


def dot_model(bert_dir: Path):
    """A tiny model without Normalize that scores by dot product (vectors of different lengths)."""
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Pooling, Transformer

    return SentenceTransformer(modules=[Transformer(str(bert_dir), max_seq_length=48), Pooling(32, "mean")],
                               device="cpu", similarity_fn_name="dot")


def check_round_trip(index, store) -> None:
    """``store`` (an export of ``index``, opened with its model) finds what the index finds, for single
    queries and a batch, with the same hits (titles, chunks, metadata) and scores within 1e-5."""
    assert len(store) == index.manifest["counts"]["vectors"]
    for query in QUERIES:
        assert_same_hits(store.search(query, top_k=3), index.search(query, top_k=3))
        assert_same_hits(store.search(query, top_k=10), index.search(query, top_k=10))  # more than there are
    for got, want in zip(store.search(QUERIES, top_k=2), index.search(QUERIES, top_k=2)):
        assert_same_hits(got, want)
    found = {hit["id"] for query in QUERIES for hit in store.search(query, top_k=10)}
    assert found == set(index.ids()) and "cat" not in found  # every live document, not the deleted one


def check_record_kept(index, record: dict) -> None:
    """The table's record holds the index's model identity and every embedding setting."""
    manifest = index.manifest
    for key in ("model", "dimension", "truncate_dim", "normalize", "similarity_fn_name", "prompt_name",
                "document_prompt", "query_prompt_name", "query_prompt"):
        assert record[key] == manifest[key], key
    assert record["model"]["fingerprint"] and record["documents"] == len(index)
    assert record["vectors"] == manifest["counts"]["vectors"]
    assert record["format"] == "sentencekit-vector-table" and record["exported_with"].startswith("sentencekit ")


def check_refuses(open_with, index, other) -> None:
    """``open_with(model)`` refuses ``other`` as EmbeddingIndex.open refuses it: the same error type, naming
    both fingerprints, and what to do."""
    import pytest

    from sentencekit.search.index import EmbeddingIndex
    from sentencekit.search.index_errors import IndexMismatchError

    with pytest.raises(IndexMismatchError) as by_index:
        EmbeddingIndex.open(index.path, other)
    with pytest.raises(IndexMismatchError) as by_store:
        open_with(other)
    message = str(by_store.value)
    recorded, given = index.manifest["model"]["fingerprint"], by_index.value.args[0].split("given ")[1].split()[0]
    assert recorded in message and given in message and recorded != given
    assert "open it with the model(s) it was exported with" in message


def check_truncate_dim_named(open_with, model_dir) -> None:
    """``open_with(model)`` with the exporting model loaded with ``truncate_dim=16`` names the dimension and
    ``truncate_dim`` as what differs and says how to load the model, not "another model"."""
    import pytest

    from sentencekit import SentenceTransformer
    from sentencekit.search.index_errors import IndexMismatchError

    truncated = SentenceTransformer(str(model_dir), device="cpu", truncate_dim=16)
    with pytest.raises(IndexMismatchError) as caught:
        open_with(truncated)
    message = str(caught.value)
    assert "dimension: recorded 32, given 16 (the model was loaded with truncate_dim=16)" in message
    assert "load the model without truncate_dim (or with truncate_dim=32)" in message
    assert "model fingerprint" not in message and "another model" not in message
    assert "open it with the model" not in message


def build_zero_vector_index(path: Path, model, monkeypatch):
    """A cosine index (see :func:`build_index`) plus a document "blank" whose stored vector is all zeros
    (the model's document embedding of it is patched to zeros while it is added)."""
    import numpy as np

    index = build_index(path, model)
    encode = model.encode_document

    def zero_blank(texts, *args, **kwargs):
        vectors = np.array(encode(texts, *args, **kwargs), dtype=np.float32)
        vectors[[i for i, text in enumerate(texts) if text == "blank"]] = 0.0
        return vectors

    with monkeypatch.context() as patch:
        patch.setattr(model, "encode_document", zero_blank)
        index.add(["blank"], ids=["blank"])
    return index


def check_zero_vector_hits(index, store) -> None:
    """``store`` ranks and scores the zero-vector document "blank" as the index does: found, score 0.0."""
    for query in QUERIES:
        want = index.search(query, top_k=10)
        assert "blank" in [h["id"] for h in want] and {h["score"] for h in want if h["id"] == "blank"} == {0.0}
        assert_same_hits(store.search(query, top_k=10), want)
