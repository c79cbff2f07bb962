"""The one corpus reader (sentencekit.search.corpus) behind `search`, `index build`, `rerank`, `encode` and
`embed-corpus`: the same rules for every format, errors that name the file and line, streaming."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentencekit.cli import main
from sentencekit.search.corpus import Document, corpus_format, count_rows, iter_corpus, load_corpus

ROWS = [{"id": "a1", "title": "Refunds", "text": "how do i get a refund"},
        {"id": "b2", "title": "", "text": "the weather in paris, today"},
        {"id": "c3", "title": "Passwords", "text": 'reset my "password"'}]


def write(path, rows=ROWS):
    """``rows`` (dicts) written in the format ``path``'s suffix names."""
    fmt = corpus_format(path)
    if fmt == "parquet":
        pq.write_table(pa.table({key: [r[key] for r in rows] for key in rows[0]}), path, row_group_size=2)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt in ("csv", "tsv"):
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["c.jsonl", "c.ndjson", "c.json", "c.csv", "c.tsv", "c.parquet"])
def test_every_structured_format_reads_ids_titles_and_texts_alike(tmp_path, name):
    docs = load_corpus(write(tmp_path / name))
    assert docs == [Document(r["id"], r["text"], r["title"]) for r in ROWS]


@pytest.mark.parametrize("name", ["c.txt", "c.md", "c"])
def test_plain_text_is_one_document_a_line_numbered_from_zero(tmp_path, name):
    path = tmp_path / name
    path.write_text("first line\n\n   \n  second, indented\r\nthird\n", encoding="utf-8")
    assert load_corpus(path) == [Document("0", "first line"), Document("1", "  second, indented"),
                                 Document("2", "third")]


def test_blank_lines_are_skipped_and_row_numbers_count_documents(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": ""}\n  \n{"text": "c"}\n', encoding="utf-8")
    batches = list(iter_corpus(path))
    assert [(b.ids, b.texts, b.titles) for b in batches] == [([0, 1, 2], ["a", "", "c"], ["", "", ""])]
    assert count_rows(path) == 3


@pytest.mark.parametrize("content, where, what", [
    ('{"text": "ok"}\n{"title": "no text"}\n', ":2:", "expected a JSON object with 'text' holding text, found no"),
    ('{"text": "ok"}\n\n{"text": 7}\n', ":3:", "found a int"),
    ('{"text": "ok"}\n{"text": null}\n', ":2:", "found no value"),
    ('{"text": "ok"}\n{"text": "unterminated\n', ":2:", "not valid JSON"),
    ('["a list"]\n', ":1:", "found a list"),
])
def test_a_bad_json_row_names_the_file_and_line(tmp_path, content, where, what):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        load_corpus(path)
    assert str(exc.value).startswith(f"{path}{where}") and what in str(exc.value)


def test_a_bad_csv_row_or_a_missing_column_names_the_file_line_and_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,text\n1,fine\n2\n", encoding="utf-8")  # the third line has no text cell
    with pytest.raises(ValueError, match=r"bad\.csv:3: the 'text' column has no value"):
        load_corpus(path)
    path.write_text("id,body\n1,fine\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv: no 'text' column \(its columns: 'id', 'body'\); .*--column"):
        load_corpus(path)
    assert load_corpus(path, column="body") == [Document("1", "fine")]


def test_a_null_parquet_text_names_the_row_and_a_missing_column_is_refused(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["a", "b", None]}), path)
    with pytest.raises(ValueError, match=r"c\.parquet: row 2: the 'text' column has no value"):
        count_rows(path)
    with pytest.raises(ValueError, match=r"c\.parquet: no 'body' column \(its columns: 'text'\)"):
        count_rows(path, "body")
    with pytest.raises(ValueError, match=r"c\.parquet: no 'doc' column .*--id-column"):
        count_rows(path, id_column="doc")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9\n".encode() + "na\u00efve\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:2: not UTF-8 text.*--encoding latin-1"):
        load_corpus(path)
    assert [d.text for d in load_corpus(path, encoding="latin-1")] == ["caf\u00c3\u00a9", "na\u00efve"]
    with pytest.raises(ValueError, match="unknown text encoding 'klingon'"):
        load_corpus(path, encoding="klingon")


def test_a_byte_order_mark_does_not_rename_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,id\nhello,x\n".encode())
    assert load_corpus(path) == [Document("x", "hello")]


def test_ids_from_an_id_column_stay_as_stored_and_must_be_on_every_row(tmp_path):
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"doc": [10, 11, 12], "text": ["a", "b", "c"]}), parquet)
    assert [b.ids for b in iter_corpus(parquet, id_column="doc")] == [[10, 11, 12]]  # ints stay ints
    assert [d.id for d in load_corpus(parquet, id_column="doc")] == ["10", "11", "12"]  # documents: text

    path = tmp_path / "c.jsonl"
    path.write_text('{"doc": "x", "text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"c\.jsonl:2: no 'doc' \(the id column\); give every row an id\."):
        list(iter_corpus(path, id_column="doc"))
    # the default "id" column of load_corpus is optional, but a file that starts with ids keeps them
    with pytest.raises(ValueError, match=r"c\.jsonl:2: no 'doc' .*although earlier rows have one"):
        load_corpus(path, id_column="doc")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("id,text\nx,a\n,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c\.csv:3: no 'id'"):
        load_corpus(csv_path)
    with pytest.raises(ValueError, match=r"plain text file has no 'doc' column"):
        list(iter_corpus(write(tmp_path / "c.txt"), id_column="doc"))


def test_without_an_id_column_ids_are_row_numbers(tmp_path):
    path = write(tmp_path / "c.csv", [{"text": r["text"]} for r in ROWS])
    assert [d.id for d in load_corpus(path)] == ["0", "1", "2"]
    assert [b.ids for b in iter_corpus(path)] == [[0, 1, 2]]


@pytest.mark.parametrize("name", ["c.jsonl", "c.parquet"])
def test_rows_are_streamed_in_batches(tmp_path, name):
    rows = [{"id": f"d{i}", "text": f"text {i}"} for i in range(47)]
    path = write(tmp_path / name, rows)
    batches = list(iter_corpus(path, id_column="id", batch_rows=20))
    assert [len(b) for b in batches] == [20, 20, 7]
    assert batches[2].ids[0] == "d40" and batches[2].texts[-1] == "text 46"
    assert [b.ids[0] for b in iter_corpus(path, batch_rows=20)] == [0, 20, 40]  # row numbers continue
    assert count_rows(path) == 47


def test_streaming_yields_batches_before_the_end_of_the_file_is_read(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(30)) + "not json\n")
    batches = iter_corpus(path, batch_rows=10)
    assert next(batches).texts[0] == "t0"  # the bad last line is not read yet
    with pytest.raises(ValueError, match=r"c\.jsonl:31: not valid JSON"):
        list(batches)


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_empty_corpus_is_an_error(tmp_path, content):
    for name in ("empty.txt", "empty.jsonl"):
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=f"{name} has no documents"):
            load_corpus(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        count_rows(tmp_path / "missing.jsonl")


def test_a_folder_is_one_document_per_text_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.md").write_text("markdown body")
    (tmp_path / "sub" / "a.txt").write_text("text body")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    assert load_corpus(tmp_path) == [Document("b.md", "markdown body", "b"),
                                     Document("sub/a.txt", "text body", "a")]
    (tmp_path / "latin1.txt").write_bytes("na\u00efve".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:1: not UTF-8 text"):
        load_corpus(tmp_path)
    assert load_corpus(tmp_path, encoding="latin-1")[1] == Document("latin1.txt", "na\u00efve", "latin1")


def test_cli_commands_report_a_bad_row_in_one_line(tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "fine"}\n{"body": "wrong field"}\n')
    assert main(["encode", str(path), "-o", str(tmp_path / "x.npy")]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}:2: expected a JSON object with 'text'" in err and err.count("\n") == 1


def test_index_build_and_search_read_a_parquet_corpus_with_ids_and_titles(tmp_path, tiny_st_dir, capsys):
    path = write(tmp_path / "docs.parquet")
    out = tmp_path / "index"
    assert main(["index", "build", str(path), "--out", str(out), "--model", str(tiny_st_dir)]) == 0
    assert "3 documents (3 added now)" in capsys.readouterr().out
    for source in (["--index", str(out)], ["--corpus", str(path), "--cache-dir", str(tmp_path / "cache")]):
        assert main(["search", "refund", *source, "--model", str(tiny_st_dir), "-k", "3", "--json",
                     "--rerank", "none"]) == 0
        hits = json.loads(capsys.readouterr().out)[0]["results"]
        assert sorted((h["id"], h["metadata"]["title"], h["text"]) for h in hits) == [
            (r["id"], r["title"], r["text"]) for r in ROWS]
