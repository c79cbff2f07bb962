"""LanceDB export of an EmbeddingIndex (sentencekit.integrations.vectordb): round trip against the index's own
search, the model record, refusing another model, atomic writes, bad locations and `sentencekit index export`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sentencekit import SentenceTransformer
from sentencekit.integrations.vectordb import export_index, open_store, parse_location
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.index_errors import IndexFormatError, IndexReadOnlyError
from tests.vectordb_corpus import (
    build_index,
    build_other_model,
    build_zero_vector_index,
    check_record_kept,
    check_refuses,
    check_round_trip,
    check_truncate_dim_named,
    check_zero_vector_hits,
    dot_model,
)

if os.environ.get("CI") == "true":  # CI installs the extra: a missing lancedb must fail there, not skip
    import lancedb
else:
    lancedb = pytest.importorskip("lancedb", reason="needs the lancedb extra: pip install 'sentencekit[lancedb]'")


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    return build_other_model(tmp_path_factory.mktemp("other"))


@pytest.fixture()
def index(tiny_model, tmp_path):
    return build_index(tmp_path / "index", tiny_model)


def test_round_trip_matches_the_index_search(index, tiny_model, tmp_path):
    location = f"lancedb://{tmp_path}/lance?table=faq"
    written = export_index(index, location)
    check_round_trip(index, written)
    check_round_trip(index, open_store(location, tiny_model))  # reopened from disk


def test_zero_vector_document_scores_zero_as_in_the_index(tiny_model, tmp_path, monkeypatch):
    index = build_zero_vector_index(tmp_path / "index", tiny_model, monkeypatch)
    location = f"lancedb://{tmp_path}/lance?table=faq"
    export_index(index, location)
    check_zero_vector_hits(index, open_store(location, tiny_model))


def test_dot_product_index_round_trip(tiny_bert_dir, tmp_path):
    model = dot_model(tiny_bert_dir)
    index = build_index(tmp_path / "index", model, normalize=False)
    assert index.manifest["similarity_fn_name"] == "dot"
    export_index(index, f"lancedb://{tmp_path}/lance")
    store = open_store(f"lancedb://{tmp_path}/lance", model)  # default table
    assert store.where.endswith("?table=sentencekit")
    check_round_trip(index, store)


def test_record_vectors_and_metadata_are_stored(index, tmp_path):
    export_index(index, f"lancedb://{tmp_path}/lance?table=faq")
    store = open_store(f"lancedb://{tmp_path}/lance?table=faq")  # no model: inspection only
    check_record_kept(index, store.record)
    # what any LanceDB client sees: the record in the schema metadata, the stored vectors and metadata as JSON
    table = lancedb.connect(tmp_path / "lance").open_table("faq")
    assert json.loads(table.schema.metadata[b"sentencekit"])["model"] == index.manifest["model"]
    rows = table.to_arrow().to_pylist()
    docs, parts, vectors = zip(*[(d, p, v) for batch in index.iter_vectors() for d, p, v in zip(*batch)])
    assert [(r["id"], r["part"]) for r in rows] == [(d["id"], p) for d, p in zip(docs, parts)]
    for row, doc, vector in zip(rows, docs, vectors):
        assert row["vector"] == vector.tolist()  # float32, bit for bit (normalized as the index stores them)
        assert (json.loads(row["metadata"]) if row["metadata"] else None) == doc["metadata"]
        assert row["text"] == doc["text"] and row["title"] == doc.get("title")
    with pytest.raises(IndexReadOnlyError, match="opened without a model"):
        store.search("refund")


def test_prompts_are_recorded_and_reapplied(tiny_st_dir, tmp_path):
    prompted = SentenceTransformer(str(tiny_st_dir), device="cpu",
                                   prompts={"query": "query: ", "document": "passage: "})
    index = build_index(tmp_path / "index", prompted)
    export_index(index, f"lancedb://{tmp_path}/lance")
    plain = SentenceTransformer(str(tiny_st_dir), device="cpu")  # same weights, no prompts given
    store = open_store(f"lancedb://{tmp_path}/lance", plain)
    assert store.record["query_prompt"] == "query: " and store.record["document_prompt"] == "passage: "
    check_round_trip(EmbeddingIndex.open(index.path, plain), store)


def test_another_model_is_refused(index, other_model_dir, tmp_path):
    location = f"lancedb://{tmp_path}/lance?table=faq"
    export_index(index, location)
    other = SentenceTransformer(str(other_model_dir), device="cpu")
    check_refuses(lambda model: open_store(location, model), index, other)


def test_truncate_dim_alone_is_named_not_another_model(index, tiny_st_dir, tmp_path):
    location = f"lancedb://{tmp_path}/lance?table=faq"
    export_index(index, location)
    check_truncate_dim_named(lambda model: open_store(location, model), tiny_st_dir)
    check_truncate_dim_named(lambda model: EmbeddingIndex.open(index.path, model), tiny_st_dir)


def test_existing_table_needs_overwrite_and_failed_writes_change_nothing(index, tiny_model, tmp_path, monkeypatch):
    location = f"lancedb://{tmp_path}/lance?table=faq"
    export_index(index, location)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_index(index, location)
    index.add(["a new document about login"], ids=["new"])
    real = index.iter_vectors

    def broken(batch_size=4096):  # the write dies after its first batch
        yield from [next(real(1))]
        raise RuntimeError("disk full")

    monkeypatch.setattr(index, "iter_vectors", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_index(index, location, overwrite=True)
    previous = open_store(location)  # the previous version, whole
    assert previous.record["documents"] == 5 and len(previous) == 12
    assert "new" not in previous.table.to_arrow().column("id").to_pylist()
    with pytest.raises(RuntimeError, match="disk full"):
        export_index(index, f"lancedb://{tmp_path}/lance?table=fresh")
    with pytest.raises(IndexFormatError, match="No table 'fresh'"):  # no half table under the name
        open_store(f"lancedb://{tmp_path}/lance?table=fresh")
    monkeypatch.undo()
    check_round_trip(index, export_index(index, location, overwrite=True))
    assert open_store(location).record["documents"] == 6


@pytest.mark.parametrize("location, message", [
    ("s3://bucket/vectors", "scheme 's3://' is not supported"),
    ("/data/vectors", "has no scheme"),
    ("lancedb://", "names no folder"),
    ("lancedb://x?table=", "Empty table name"),
    ("lancedb://x?tabel=faq", "take only ?table=NAME"),
    ("postgresql://", "names no server or database"),
])
def test_bad_locations(location, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        parse_location(location)


def test_parse_location():
    assert parse_location("lancedb:///abs/dir") == ("lancedb", "/abs/dir", "sentencekit",
                                                    "lancedb:///abs/dir?table=sentencekit")
    assert parse_location("lancedb://rel/dir", table="t")[1:3] == ("rel/dir", "t")
    kind, target, table, where = parse_location("postgres://u:pw@h:5/db?sslmode=disable&table=t")
    assert (kind, target, table) == ("postgresql", "postgresql://u:pw@h:5/db?sslmode=disable", "t")
    assert "pw" not in where and where.endswith("sslmode=disable&table=t")


def test_missing_table_and_foreign_table(index, tmp_path):
    with pytest.raises(IndexFormatError, match="No LanceDB database"):
        open_store(f"lancedb://{tmp_path}/nowhere")
    import pyarrow as pa

    lancedb.connect(tmp_path / "lance").create_table("theirs", pa.table({"x": [1]}))
    with pytest.raises(IndexFormatError, match="no sentencekit record"):
        open_store(f"lancedb://{tmp_path}/lance?table=theirs")


def test_missing_extra_names_the_install_command(index, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lancedb", None)  # import lancedb raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'sentencekit\[lancedb\]'"):
        export_index(index, f"lancedb://{tmp_path}/lance")


def test_cli_export(index, tiny_model, tmp_path, capsys):
    from sentencekit.cli import main

    location = f"lancedb://{tmp_path}/lance?table=faq"
    assert main(["index", "export", str(index.path), "--to", location]) == 0
    assert "5 documents (12 vectors, 32 dimensions)" in capsys.readouterr().out
    check_round_trip(index, open_store(location, tiny_model))
    assert main(["index", "export", str(index.path), "--to", location]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["index", "export", str(index.path), "--to", location, "--overwrite"]) == 0
    assert main(["index", "export", str(index.path), "--to", "mongodb://x"]) == 1
    assert "scheme 'mongodb://' is not supported" in capsys.readouterr().err
    assert main(["index", "export", str(tmp_path / "missing"), "--to", location]) == 1
    assert "No embedding index" in capsys.readouterr().err


def test_core_never_imports_the_database_clients():
    code = ("import sys, sentencekit, sentencekit.cli, sentencekit.search.index, sentencekit.integrations.vectordb\n"
            "sentencekit.cli.build_parser()\n"
            "print(sorted(m for m in ('lancedb', 'pyarrow', 'psycopg', 'pgvector') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")  # 48-token tiny model
def test_example_runs_and_matches_the_index(tiny_st_dir, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "vector_databases.py"
    spec = importlib.util.spec_from_file_location("vector_databases_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(["--model", str(tiny_st_dir), "--to", f"lancedb://{tmp_path}/lance?table=sample"])
    assert len(results) == 3 and all(len(hits) == 3 for hits in results)
    assert lancedb.connect(tmp_path / "lance").open_table("sample").count_rows() == 400  # 200 texts + 200 titles


def test_doctests():
    import doctest

    import sentencekit.integrations.vectordb as vectordb
    from sentencekit.integrations.vectordb import pgvector_store, records
    from sentencekit.search import results

    for module in (vectordb, records, pgvector_store, results):
        outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert outcome.attempted and not outcome.failed, module.__name__
