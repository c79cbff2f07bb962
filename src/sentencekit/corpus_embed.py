"""``sentencekit embed-corpus``: embed a whole corpus file into one Parquet file, resumably.

The rows are cut into shards of ``shard_size``; each finished shard is written atomically (a temporary
file renamed into place) into ``OUT.parquet.parts/``, beside a manifest that records the input file
(size and SHA-256), the text/id columns, the shard size, the model (name and fingerprint) and the
settings that change embeddings. A rerun after a crash computes only the missing shards, and refuses to
mix shards made from another input, model or settings. When every shard exists, they are assembled into
``OUT.parquet`` (columns: the id column, default the row number, and ``embedding``; the manifest in its
metadata), and ``OUT.parquet.parts/`` is removed, so no second copy of the output is left behind. A rerun
of a finished job finds the manifest in ``OUT.parquet`` and does nothing.

The shards are computed in this process, by a multi-process pool (``--processes N``) or on a Ray
cluster (``--ray ADDRESS|auto|local``); the embeddings are the same, so a run may be resumed with
another engine. The input is streamed shard by shard (in-process and pool runs never hold more than a
shard of texts), after a first pass that counts and checks every row.

>>> from sentencekit.corpus_embed import embed_corpus                          # doctest: +SKIP
>>> result = embed_corpus("docs.jsonl", "docs.emb.parquet", "sentence-transformers/all-MiniLM-L6-v2",
...                       processes=4, normalize_embeddings=True)
>>> result.computed, result.reused
([0, 1, 2], [])
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentencekit.search.corpus import count_rows, iter_corpus

MANIFEST = "manifest.json"
OUTPUT_METADATA_KEY = b"sentencekit.embed_corpus"  # the job's manifest, in the assembled file's metadata
FORMAT_VERSION = 1
ROW_ID = "row"  # the id column when the input has none


class ManifestMismatchError(ValueError):
    """Finished shards were made with another input, model or settings than this run."""


@dataclass
class EmbedCorpusResult:
    """What a run did: the output file, its rows and shards, which shards it computed and which it
    found already finished."""

    output: Path
    rows: int
    dimension: int
    computed: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    seconds: float = 0.0


def parts_dir(out: str | os.PathLike) -> Path:
    """Where the shards of ``out`` are kept: ``OUT.parquet.parts/``."""
    return Path(f"{os.fspath(out)}.parts")


def _shard_path(parts: Path, k: int) -> Path:
    return parts / f"shard-{k:06d}.parquet"


# -- input ------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- manifest ---------------------------------------------------------------------------------------
def _check_manifest(parts: Path, wanted: dict[str, Any]) -> None:
    """Write the manifest of a new run, or check that an existing one describes the same job."""
    path = parts / MANIFEST
    if not path.is_file():
        parts.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{MANIFEST}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(wanted, indent=2, sort_keys=True, default=str), encoding="utf-8")
        os.replace(tmp, path)
        return
    found = json.loads(path.read_text(encoding="utf-8"))
    differences = _differences(found, wanted)
    if differences:
        raise ManifestMismatchError(
            f"{parts} holds shards of a different job, so they cannot be reused:\n  " + "\n  ".join(differences)
            + f"\nRerun with the same input, model and settings to resume, or delete {parts} (or choose another "
              "--out) to start over.")


def _differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [f"{key}: finished shards have {found.get(key)!r}, this run {value!r}"
            for key, value in wanted.items() if found.get(key) != json.loads(json.dumps(value, default=str))]


def _finished_output(out: Path, wanted: dict[str, Any]) -> bool:
    """Whether ``out`` is the assembled output of this very job (its metadata holds the same manifest);
    raises ``ManifestMismatchError`` when it is the output of another job."""
    if not out.is_file():
        return False
    import pyarrow.parquet as pq

    try:
        stored = (pq.read_schema(out).metadata or {}).get(OUTPUT_METADATA_KEY)
    except Exception:  # not a Parquet file we wrote: leave it to the assembly to replace
        return False
    if stored is None:
        return False
    differences = _differences(json.loads(stored), wanted)
    if differences:
        raise ManifestMismatchError(
            f"{out} was made by a different job:\n  " + "\n  ".join(differences)
            + f"\nDelete {out} (or choose another --out) to embed with this input, model and settings.")
    return True


def _manifest(input_path: Path, rows: int, column: str, id_column: str | None, shard_size: int, model: Any,
              model_name: str, encode_kwargs: dict[str, Any]) -> dict[str, Any]:
    from sentencekit.fingerprint import model_fingerprint

    return {
        "format": FORMAT_VERSION,
        "input": {"name": input_path.name, "size": input_path.stat().st_size, "sha256": file_sha256(input_path),
                  "rows": rows},
        "columns": {"text": column, "id": id_column or ROW_ID},
        "shard_size": shard_size,
        "model": {"name": model_name, "fingerprint": model_fingerprint(model), "class": type(model).__name__,
                  "compute_dtype": getattr(model, "compute_dtype", None),
                  "max_seq_length": getattr(model, "max_seq_length", None)},
        "encode": {k: encode_kwargs[k] for k in sorted(encode_kwargs)},
    }


# -- shards -----------------------------------------------------------------------------------------
def _write_shard(parts: Path, k: int, ids: list, embeddings: Any, id_name: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    try:
        id_array = pa.array(ids)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed id types: keep them as text
        id_array = pa.array([str(i) for i in ids])
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), embeddings.shape[1])
    table = pa.table({id_name: id_array, "embedding": vectors})
    final = _shard_path(parts, k)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, final)  # a crash leaves either no shard or a whole one


def _finished_shards(parts: Path, bounds: list[tuple[int, int]]) -> set[int]:
    import pyarrow.parquet as pq

    done = set()
    for k, (start, end) in enumerate(bounds):
        path = _shard_path(parts, k)
        if path.is_file():
            try:
                if pq.ParquetFile(path).metadata.num_rows == end - start:
                    done.add(k)
            except Exception:  # unreadable: computed again
                pass
    return done


def _assemble(parts: Path, shards: int, out: Path, manifest: dict[str, Any]) -> int:
    """Concatenate the shards into ``out`` (atomically, with the job's manifest in its metadata); returns
    the embedding dimension."""
    import pyarrow.parquet as pq

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    writer = None
    dim = 0
    try:
        for k in range(shards):
            table = pq.read_table(_shard_path(parts, k))
            if writer is None:
                metadata = {**(table.schema.metadata or {}),
                            OUTPUT_METADATA_KEY: json.dumps(manifest, sort_keys=True, default=str).encode()}
                writer = pq.ParquetWriter(tmp, table.schema.with_metadata(metadata))
                dim = table.schema.field("embedding").type.list_size
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, out)
    return dim


def _output_dimension(out: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_schema(out).field("embedding").type.list_size


# -- engines ----------------------------------------------------------------------------------------
ShardJob = tuple[int, list[str]]
Engine = Callable[[Iterable[ShardJob]], Iterator[tuple[int, Any]]]


def _local_engine(model: Any, encode_kwargs: dict[str, Any]) -> Engine:
    def run(jobs: Iterable[ShardJob]) -> Iterator[tuple[int, Any]]:
        for k, texts in jobs:
            yield k, model.encode(texts, show_progress_bar=False, **encode_kwargs)
    return run


def _pool_engine(model: Any, processes: int, threads: int | None, chunk_size: int | None,
                 encode_kwargs: dict[str, Any]) -> Engine:
    def run(jobs: Iterable[ShardJob]) -> Iterator[tuple[int, Any]]:
        with model.start_multi_process_pool(["cpu"] * processes, threads_per_worker=threads) as pool:
            for k, texts in jobs:
                yield k, model.encode(texts, pool=pool, chunk_size=chunk_size, show_progress_bar=False,
                                      **encode_kwargs)
    return run


def _ray_engine(model_ref: Any, address: str, actors: int | None, threads: int | None,
                model_kwargs: dict[str, Any], encode_kwargs: dict[str, Any]) -> Engine:
    def run(jobs: Iterable[ShardJob]) -> Iterator[tuple[int, Any]]:
        import numpy as np
        import pyarrow as pa

        from sentencekit.ray import _ray, embed_dataset

        # One Ray dataset for every shard to do, so actors load the model once: the driver holds their
        # texts (local and pool runs stream the input shard by shard instead).
        jobs = list(jobs)
        ray = _ray()
        started = not ray.is_initialized()
        if started:
            if address == "local":  # a fresh single-node cluster on this machine
                ray.init(include_dashboard=False, log_to_driver=False)
            else:  # "auto" (a running cluster, or RAY_ADDRESS) or "ray://head:10001"
                try:
                    ray.init(address=address, log_to_driver=False)
                except ConnectionError as exc:  # "auto" with no cluster: say what to do instead
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise ConnectionError(
                        f"--ray {address}: found no running Ray cluster ({reason}). Use --ray local to start a "
                        "one-machine cluster for this run, or start one first (ray start --head).") from None
        context = ray.data.DataContext.get_current()
        preserve = context.execution_options.preserve_order
        context.execution_options.preserve_order = True  # shards are written as their rows come back
        try:
            batch = max(1, min(1024, max(len(t) for _, t in jobs)))
            tables = [pa.table({"_shard": [k] * len(texts[s:s + batch]), "text": texts[s:s + batch]})
                      for k, texts in jobs for s in range(0, len(texts), batch)]
            ds = embed_dataset(ray.data.from_arrow(tables), model_ref, batch_size=batch, num_actors=actors,
                               num_cpus_per_actor=threads or 1, model_kwargs=model_kwargs, **encode_kwargs)
            expected = {k: len(texts) for k, texts in jobs}
            pending: dict[int, list[Any]] = {}
            for out in ds.iter_batches(batch_format="numpy", batch_size=None):
                for k in np.unique(out["_shard"]):
                    rows = out["embedding"][out["_shard"] == k]
                    pending.setdefault(int(k), []).append(rows)
                    if sum(len(r) for r in pending[int(k)]) == expected[int(k)]:
                        yield int(k), np.concatenate(pending.pop(int(k)))
        finally:
            context.execution_options.preserve_order = preserve
            if started:
                ray.shutdown()
    return run


# -- the job ----------------------------------------------------------------------------------------
def embed_corpus(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    model: Any,
    *,
    column: str = "text",
    id_column: str | None = None,
    shard_size: int = 10_000,
    processes: int | None = None,
    ray_address: str | None = None,
    ray_actors: int | None = None,
    threads: int | None = None,
    chunk_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    encoding: str = "utf-8",
    **encode_kwargs: Any,
) -> EmbedCorpusResult:
    """Embed ``column`` of ``input_path`` into the Parquet file ``out`` (see the module docstring).

    ``model``: a name or folder (loaded with ``model_kwargs``), or a loaded model. ``processes``: a
    multi-process pool of that many CPU workers; ``ray_address``: ``"local"``, ``"auto"`` or
    ``"ray://head:10001"`` (Ray actors load the model by name, so on a multi-node cluster give a Hub id or
    a path every node can read). ``encode_kwargs`` (``normalize_embeddings``, ``prompt_name``,
    ``truncate_dim``, ``batch_size``...) go to ``encode``; those that change embeddings are recorded.
    ``model_kwargs["backend"]`` may be ``"auto"`` (see :func:`sentencekit.engines.load_on_backend`);
    ``encoding``: of a text input file.

    >>> embed_corpus("docs.parquet", "emb.parquet", "all-MiniLM-L6-v2", shard_size=50_000)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    log = log or (lambda message: print(message, file=sys.stderr))
    if processes is not None and ray_address is not None:
        raise ValueError("Choose one engine: processes=N (a local pool) or ray_address=... (Ray), not both.")
    if not isinstance(shard_size, int) or shard_size <= 0:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    if encode_kwargs.get("precision", "float32") != "float32":
        raise ValueError("embed-corpus writes float32 embeddings; quantize the assembled file afterwards "
                         "(quantization ranges must come from the whole corpus, not from one shard).")
    input_path, out = Path(input_path), Path(out)
    # also checks every row before any work
    rows = count_rows(input_path, column, id_column=id_column, encoding=encoding)
    by_name = isinstance(model, (str, os.PathLike))
    if by_name:
        from sentencekit import SentenceTransformer
        from sentencekit.engines import load_on_backend

        model_name = os.fspath(model)
        model_kwargs = dict(model_kwargs or {})
        # backend "auto" (the CLI's default) is resolved once here; Ray actors then load the same backend
        model, backend = load_on_backend(SentenceTransformer, model_name, model_kwargs.pop("backend", "torch"),
                                         **model_kwargs)
        model_kwargs["backend"] = backend
    else:
        model_name = str(getattr(model, "model_name_or_path", None) or type(model).__name__)
    recorded = {k: v for k, v in encode_kwargs.items() if k not in ("batch_size", "max_batch_tokens")}
    parts = parts_dir(out)
    manifest = _manifest(input_path, rows, column, id_column, shard_size, model, model_name, recorded)
    bounds = [(s, min(s + shard_size, rows)) for s in range(0, rows, shard_size)]
    if not parts.exists() and _finished_output(out, manifest):
        log(f"{out} is already the output of this job ({rows} rows); nothing to do.")
        return EmbedCorpusResult(out, rows, int(_output_dimension(out)), [], list(range(len(bounds))),
                                 time.perf_counter() - t0)
    _check_manifest(parts, manifest)
    reused = sorted(_finished_shards(parts, bounds))
    todo = [k for k in range(len(bounds)) if k not in set(reused)]
    log(f"{input_path.name}: {rows} rows in {len(bounds)} shards; {len(reused)} already done, "
        f"{len(todo)} to compute" + (f" ({'Ray ' + ray_address if ray_address else f'{processes} processes'})"
                                     if todo and (ray_address or processes) else ""))
    if todo:
        if ray_address is not None:
            actor_kwargs = {k: v for k, v in (model_kwargs or {}).items() if k != "device"}
            # actors load a named model themselves (any node can); a model object travels to them
            engine = _ray_engine(model_name if by_name else model, ray_address, ray_actors, threads, actor_kwargs,
                                 encode_kwargs)
        elif processes is not None:
            engine = _pool_engine(model, processes, threads, chunk_size, encode_kwargs)
        else:
            engine = _local_engine(model, encode_kwargs)
        id_name = id_column or ROW_ID
        shard_ids: dict[int, list] = {}  # ids of the shards handed to the engine and not written yet
        wanted = set(todo)

        def jobs() -> Iterator[ShardJob]:  # shards are read from the file as the engine asks for them
            for k, batch in enumerate(iter_corpus(input_path, column, id_column=id_column, batch_rows=shard_size,
                                                  encoding=encoding)):
                if k in wanted:
                    shard_ids[k] = batch.ids
                    yield k, batch.texts

        for done, (k, embeddings) in enumerate(engine(jobs()), 1):
            start, end = bounds[k]
            _write_shard(parts, k, shard_ids.pop(k), embeddings, id_name)
            log(f"shard {k + 1}/{len(bounds)} (rows {start}..{end - 1}) written [{done}/{len(todo)} this run, "
                f"{time.perf_counter() - t0:.1f}s]")
    dim = _assemble(parts, len(bounds), out, json.loads(json.dumps(manifest, default=str))) if bounds else 0
    import shutil

    shutil.rmtree(parts, ignore_errors=True)  # OUT holds every row now; the shards would be a second copy
    seconds = time.perf_counter() - t0
    log(f"Wrote {out}: {rows} rows x {dim} dims ({len(todo)} shards computed, {len(reused)} reused) "
        f"in {seconds:.1f}s")
    return EmbedCorpusResult(out, rows, dim, todo, reused, seconds)


# -- command line -----------------------------------------------------------------------------------
def add_embed_corpus_parser(sub: Any) -> None:
    """Register ``sentencekit embed-corpus`` on the CLI's subparsers."""
    from sentencekit.cli_options import add_encoding_arg, add_model_args

    p = sub.add_parser(
        "embed-corpus", help="embed a whole corpus file into Parquet, resumably (pool or Ray)",
        description="Embed COLUMN of INPUT (Parquet, JSON lines, CSV/TSV, text) into OUT (Parquet: the id column "
                    "and 'embedding'). Shards are kept in OUT.parts/ as they finish (removed once OUT is "
                    "assembled); a rerun after a crash computes only the missing ones. --processes N uses N "
                    "worker processes; --ray ADDRESS "
                    "(local, auto, ray://head:10001) uses Ray actors.")
    p.add_argument("input", help="INPUT.parquet | .jsonl | .csv | .tsv | .txt")
    p.add_argument("--out", "-o", required=True, help="output Parquet file")
    p.add_argument("--column", default="text", help="text column (default: %(default)s)")
    p.add_argument("--id-column", default=None, help=f"id column to keep (default: the row number, as {ROW_ID!r})")
    p.add_argument("--shard-size", type=int, default=10_000, help="rows per shard (default: %(default)s)")
    engine = p.add_mutually_exclusive_group()
    engine.add_argument("--processes", type=int, default=None, metavar="N", help="N local worker processes")
    engine.add_argument("--ray", default=None, metavar="ADDRESS", help="Ray cluster: local, auto or ray://host:port")
    p.add_argument("--ray-actors", type=int, default=None, help="Ray actors (default: one per CPU)")
    p.add_argument("--chunk-size", type=int, default=None, help="texts per pool chunk (--processes)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    p.add_argument("--prompt-name", default=None, help="a prompt of the model, e.g. document")
    p.add_argument("--truncate-dim", type=int, default=None, help="Matryoshka: keep the first N dimensions")
    add_model_args(p)
    add_encoding_arg(p)
    p.set_defaults(func=cmd_embed_corpus)


def cmd_embed_corpus(args: argparse.Namespace) -> int:
    if args.processes is not None and args.processes <= 0:
        raise ValueError("--processes must be a positive integer")
    encode_kwargs: dict[str, Any] = {"batch_size": args.batch_size}
    if args.normalize:
        encode_kwargs["normalize_embeddings"] = True
    if args.prompt_name:
        encode_kwargs["prompt_name"] = args.prompt_name
    if args.truncate_dim:
        encode_kwargs["truncate_dim"] = args.truncate_dim
    model_kwargs: dict[str, Any] = {"local_files_only": args.local_files_only, "compute_dtype": args.compute_dtype,
                                    "backend": args.model_backend}
    if args.device:
        model_kwargs["device"] = args.device
    if args.threads and args.processes is None and args.ray is None:
        model_kwargs["num_threads"] = args.threads
    from sentencekit.cli_notes import truncation_notes

    with truncation_notes("texts"):
        embed_corpus(args.input, args.out, args.model, column=args.column, id_column=args.id_column,
                     shard_size=args.shard_size, processes=args.processes, ray_address=args.ray,
                     ray_actors=args.ray_actors, threads=args.threads, chunk_size=args.chunk_size,
                     model_kwargs=model_kwargs, encoding=args.encoding, **encode_kwargs)
    return 0
