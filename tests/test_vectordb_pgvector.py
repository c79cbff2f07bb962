"""PostgreSQL + pgvector export of an EmbeddingIndex (sentencekit.integrations.vectordb), against a real
throwaway server (tests/postgres_server.py: 127.0.0.1, started and stopped by this module): round trip against
the index's own search, the model record, refusing another model, atomic writes and `sentencekit index export`.

Without PostgreSQL's binaries, pgvector or psycopg these tests skip, except under CI=true, where they fail:
CI installs them (scripts/install_pgvector.sh, the pgvector extra) and this is its proof that they work."""

from __future__ import annotations

import os

import pytest

from sentencekit import SentenceTransformer
from sentencekit.integrations.vectordb import export_index, open_store
from sentencekit.search.index_errors import IndexFormatError, IndexReadOnlyError
from tests.postgres_server import ServerUnavailable, postgres_server
from tests.vectordb_corpus import (
    build_index,
    build_other_model,
    build_zero_vector_index,
    check_record_kept,
    check_refuses,
    check_round_trip,
    check_zero_vector_hits,
    dot_model,
)

pytestmark = pytest.mark.pgvector


def unavailable(reason: str):
    """Skip, or under CI=true fail: CI must prove the pgvector tests run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the pgvector tests must run in CI; see scripts/install_pgvector.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    """The URL of a fresh PostgreSQL server with the vector extension created in its database."""
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg
    except ImportError as exc:
        unavailable(f"needs psycopg 3 and pgvector: pip install 'sentencekit[pgvector]' ({exc})")
    try:
        with postgres_server() as dsn:
            with psycopg.connect(dsn, autocommit=True) as conn:
                try:
                    conn.execute("CREATE EXTENSION vector")
                except psycopg.Error as exc:
                    unavailable(f"the pgvector extension is not installed in PostgreSQL "
                                f"(sudo bash scripts/install_pgvector.sh): {str(exc).strip()}")
            yield dsn
    except ServerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture()
def index(tiny_model, tmp_path):
    return build_index(tmp_path / "index", tiny_model)


@pytest.fixture()
def table(request, server):
    """A table name of its own per test."""
    return "t_" + request.node.name.split("[")[0].removeprefix("test_")[:50]


def test_round_trip_matches_the_index_search(index, tiny_model, server, table):
    location = f"{server}?table={table}"
    with export_index(index, location) as written:
        check_round_trip(index, written)
    with open_store(location, tiny_model) as store:  # a new connection
        check_round_trip(index, store)


def test_zero_vector_document_scores_zero_as_in_the_index(tiny_model, tmp_path, monkeypatch, server, table):
    index = build_zero_vector_index(tmp_path / "index", tiny_model, monkeypatch)
    with export_index(index, f"{server}?table={table}", vector_index="hnsw") as store:
        check_zero_vector_hits(index, store)


def test_dot_product_index_round_trip(tiny_bert_dir, tmp_path, server, table):
    model = dot_model(tiny_bert_dir)
    index = build_index(tmp_path / "index", model, normalize=False)
    export_index(index, f"{server}?table={table}").close()
    with open_store(f"{server}?table={table}", model) as store:
        assert store.record["similarity_fn_name"] == "dot"
        check_round_trip(index, store)  # ordered by <#>, scores = inner products


def test_record_rows_and_metadata_are_stored(index, server, table):
    import psycopg

    export_index(index, f"{server}?table={table}").close()
    with open_store(f"{server}?table={table}") as store:  # no model: inspection only
        check_record_kept(index, store.record)
        with pytest.raises(IndexReadOnlyError, match="opened without a model"):
            store.search("refund")
    with psycopg.connect(server) as conn:  # what any client sees
        record = conn.execute("SELECT record FROM sentencekit_vector_tables WHERE table_name = %s",
                              (table,)).fetchone()[0]
        assert record["model"] == index.manifest["model"] and record["dimension"] == 32
        rows = conn.execute(f"SELECT id, part, metadata, title, vector::text FROM {table} ORDER BY id, part").fetchall()
        column = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
                              "AND attname = 'vector'", (table,)).fetchone()[0]
    assert column == "vector(32)"
    stored = {(d["id"], p): (d, v) for batch in index.iter_vectors() for d, p, v in zip(*batch)}
    assert sorted(stored) == [(r[0], r[1]) for r in rows]
    for doc_id, part, metadata, title, vector in rows:
        doc, want = stored[(doc_id, part)]
        assert metadata == doc["metadata"] and title == doc.get("title")  # jsonb: the same JSON values
        assert [float(x) for x in vector.strip("[]").split(",")] == pytest.approx(want.tolist(), abs=1e-6)


def test_prompts_are_recorded_and_reapplied(tiny_st_dir, tmp_path, server, table):
    from sentencekit.search.index import EmbeddingIndex

    prompted = SentenceTransformer(str(tiny_st_dir), device="cpu",
                                   prompts={"query": "query: ", "document": "passage: "})
    index = build_index(tmp_path / "index", prompted)
    export_index(index, f"{server}?table={table}").close()
    plain = SentenceTransformer(str(tiny_st_dir), device="cpu")  # same weights, no prompts given
    with open_store(f"{server}?table={table}", plain) as store:
        assert store.record["query_prompt"] == "query: "
        check_round_trip(EmbeddingIndex.open(index.path, plain), store)


def test_another_model_is_refused(index, tmp_path_factory, server, table):
    location = f"{server}?table={table}"
    export_index(index, location).close()
    other = SentenceTransformer(str(build_other_model(tmp_path_factory.mktemp("other"))), device="cpu")
    check_refuses(lambda model: open_store(location, model), index, other)


def test_existing_table_needs_overwrite_and_failed_writes_roll_back(index, tiny_model, server, table, monkeypatch):
    location = f"{server}?table={table}"
    export_index(index, location).close()
    with pytest.raises(FileExistsError, match="overwrite"):
        export_index(index, location)
    index.add(["a new document about login"], ids=["new"])
    real = index.iter_vectors

    def broken(batch_size=4096):  # the write dies after its first batch, inside the COPY
        yield from [next(real(1))]
        raise RuntimeError("disk full")

    monkeypatch.setattr(index, "iter_vectors", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_index(index, location, overwrite=True)
    with open_store(location) as previous:  # the previous table and record, whole
        assert previous.record["documents"] == 5 and len(previous) == 12
    with pytest.raises(RuntimeError, match="disk full"):
        export_index(index, f"{server}?table={table}_fresh")
    with pytest.raises(IndexFormatError, match="No table"):
        open_store(f"{server}?table={table}_fresh")
    monkeypatch.undo()
    with export_index(index, location, overwrite=True) as store:
        assert store.record["documents"] == 6
        check_round_trip(index, store)


def test_hnsw_index(index, server, table):
    import psycopg

    with export_index(index, f"{server}?table={table}", vector_index="hnsw") as store:
        query = "refund my payment"
        assert store.search(query, top_k=1)[0]["id"] == index.search(query, top_k=1)[0]["id"]
    with psycopg.connect(server) as conn:
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE "
                                  "'%%USING hnsw%%'", (table,)).fetchone()[0]
    assert "vector_ip_ops" in definition  # inner product for every index (cosine ones hold unit vectors)


def test_bad_table_name_and_unreachable_server(index, server):
    with pytest.raises(ValueError, match="not a plain PostgreSQL identifier"):
        export_index(index, f"{server}?table=faq;drop")
    from tests.postgres_server import free_port

    with pytest.raises(ConnectionError, match="Cannot connect to postgresql://postgres@127.0.0.1"):
        export_index(index, f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=5")


def test_cli_export(index, tiny_model, server, table, capsys):
    from sentencekit.cli import main

    location = f"{server}?table={table}"
    assert main(["index", "export", str(index.path), "--to", location, "--vector-index", "ivfflat"]) == 0
    assert "5 documents (12 vectors, 32 dimensions)" in capsys.readouterr().out
    with open_store(location, tiny_model) as store:
        assert store.search("late delivery", top_k=1)[0]["id"] == index.search("late delivery", top_k=1)[0]["id"]
    assert main(["index", "export", str(index.path), "--to", location]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["index", "export", str(index.path), "--to", location, "--overwrite"]) == 0
    with open_store(location, tiny_model) as store:  # no ivfflat index now: exact again
        check_round_trip(index, store)
