"""What ``encode(..., pool=...)`` and ``predict(..., pool=...)`` do, for every model class and backend:
send the inputs through the pool with the caller's arguments, show one progress bar over the whole
job, and merge the chunks into what the single-process call returns.

Workers always return float32 NumPy arrays; precision (int8, binary...) and tensor conversion are
applied once, after merging, so quantization ranges are computed over all embeddings as in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sentencekit._warnings import external_stacklevel
from sentencekit.parallel.payload import is_torch_model
from sentencekit.parallel.pool import MultiProcessPool, default_chunk_size, start_pool
from sentencekit.pipeline.batching import as_input_list, check_batch_args, report_truncation
from sentencekit.pipeline.postprocess import finish_embeddings
from sentencekit.quantization import check_precision

logger = logging.getLogger("sentencekit")


@contextlib.contextmanager
def _active_pool(model: Any, pool: MultiProcessPool | None, device: Any) -> Iterator[MultiProcessPool]:
    """The caller's pool, or (``device=["cuda:0", "cuda:1"]``) one started for this call and stopped after."""
    if pool is not None:
        if not isinstance(pool, MultiProcessPool):
            raise TypeError(f"pool must come from model.start_multi_process_pool(), got {type(pool).__name__}.")
        yield pool
        return
    with start_pool(model, list(device)) as temporary:
        yield temporary


def _length(item: Any) -> int:
    """Characters of a text (or a pair); 1 for an image or a dict input (no text length to sort by)."""
    if isinstance(item, str):
        return len(item)
    return sum(len(str(part)) for part in item) if isinstance(item, (tuple, list)) else 1


def _encode_inputs(model: Any, sentences: Any) -> tuple[list[Any], bool, tuple[tuple[str, int], ...]]:
    """The inputs of ``encode(..., pool=...)`` as a list, checked as one process checks them (so a bad input
    fails before any worker runs), whether one was given, and the inputs per modality when not all are text
    (:class:`~sentencekit.pipeline.batching.EncodeInfo`). A multimodal model's inputs are sent as given: each
    worker detects their modality again, as one process would."""
    if tuple(model.modalities) == ("text",):
        return (*as_input_list(sentences), ())
    from collections import Counter

    from sentencekit.pipeline.encode import read_inputs
    from sentencekit.pipeline.modality import URL_SETTING, as_batch

    checked = read_inputs(model.engine, sentences, allow_urls=bool(getattr(model, URL_SETTING, False)))
    counts = tuple(Counter(checked.modalities).items()) if checked.modalities is not None else ()
    return (*as_batch(sentences), counts)


def run_chunks(model: Any, pool: MultiProcessPool, method: str, items: Sequence[Any], *, chunk_size: int | None,
               kwargs: dict[str, Any], show_progress_bar: bool | None, desc: str) -> tuple[list[Any], list[int]]:
    """``model.<method>`` over ``items`` through the pool, with one progress bar: each chunk's result, and the
    order the items were sent in (``order[p]``: the input index of the ``p``-th item sent; the chunks' rows
    follow that order).

    The inputs are sorted by length (longest first) before they are cut into chunks, so each chunk holds
    texts of similar length and pads little, as one process's length-sorted batches do. Inputs the workers
    had to truncate are reported once for the whole job (a ``TruncationWarning`` and
    ``model.last_encode_info`` / ``last_predict_info``), as in one process.
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(len(items), pool.num_workers)
    if show_progress_bar is None:
        show_progress_bar = logger.getEffectiveLevel() <= logging.INFO
    order = sorted(range(len(items)), key=lambda i: -_length(items[i]))
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="input")
    try:
        parts = list(pool.map_chunks(method, [items[i] for i in order], chunk_size=chunk_size, kwargs=kwargs,
                                     progress=bar, index_of=order))
    finally:
        if bar is not None:
            bar.close()
    truncated = [order[k * chunk_size + int(i)] for k, (_, cut, _) in enumerate(parts) for i in cut]
    max_length = next((m for _, _, m in parts), getattr(model, "max_seq_length", None))
    info = report_truncation(len(items), truncated, max_length, getattr(model, "_info_attribute", "last_info"),
                             external_stacklevel() + 1)
    model._set_info(info)
    return [result for result, _, _ in parts], order


def run_pooled(model: Any, pool: MultiProcessPool, method: str, items: Sequence[Any], *, chunk_size: int | None,
               kwargs: dict[str, Any], show_progress_bar: bool | None, desc: str) -> np.ndarray | list[Any] | None:
    """:func:`run_chunks`, merged: one NumPy array (or a list of rows, for token embeddings) in input
    order; ``None`` for no input."""
    results, order = run_chunks(model, pool, method, items, chunk_size=chunk_size, kwargs=kwargs,
                                show_progress_bar=show_progress_bar, desc=desc)
    if not results:
        return None
    if all(isinstance(r, np.ndarray) for r in results):
        flat = np.concatenate(results)
        restored = np.empty_like(flat)
        restored[order] = flat
        return restored
    rows = [row for result in results for row in result]
    out: list[Any] = [None] * len(items)
    for position, index in enumerate(order):
        out[index] = rows[position]
    return out


def pooled_runner(model: Any, method: str) -> Any:
    """The function that runs ``model.<method>(..., pool=...)``: ``predict`` of rerankers, ``encode`` of
    sparse encoders, of multi-vector encoders, of the embedders."""
    if method == "predict":
        return predict_with_pool
    return {"sparse": sparse_encode_with_pool, "multivector": multivector_encode_with_pool}.get(
        getattr(model, "family", ""), encode_with_pool)


def encode_with_pool(
    model: Any,
    sentences: Any,
    *,
    pool: MultiProcessPool | None,
    device: Any = None,
    chunk_size: int | None = None,
    show_progress_bar: bool | None = None,
    output_value: str | None = "sentence_embedding",
    precision: str = "float32",
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
    **encode_kwargs: Any,
) -> Any:
    """``model.encode(sentences, pool=pool, ...)``: the same result as one process, computed by the pool."""
    texts, single, counts = _encode_inputs(model, sentences)
    check_precision(precision)
    check_batch_args(encode_kwargs.get("batch_size", 32), encode_kwargs.get("max_batch_tokens"))  # before any worker
    if convert_to_tensor:
        convert_to_numpy = False
    sentence_embedding = output_value == "sentence_embedding"
    worker_kwargs = {**encode_kwargs, "output_value": output_value, "show_progress_bar": False,
                     "precision": "float32", "convert_to_numpy": sentence_embedding, "convert_to_tensor": False}
    with _active_pool(model, pool, device) as active:
        merged = run_pooled(model, active, "encode", texts, chunk_size=chunk_size, kwargs=worker_kwargs,
                            show_progress_bar=show_progress_bar, desc="Encoding")
    if counts:
        model._set_info(dataclasses.replace(model.last_info, modality_counts=counts))
    if not sentence_embedding:  # token embeddings / all outputs: one entry per text
        rows = list(merged) if merged is not None else []
        return rows[0] if single else rows
    if merged is not None:
        embeddings = np.asarray(merged)
    else:
        dim = model.get_sentence_embedding_dimension() or 0
        truncate_dim = encode_kwargs.get("truncate_dim")
        embeddings = np.empty((0, min(dim, truncate_dim) if truncate_dim else dim), dtype=np.float32)
    result = finish_embeddings(embeddings, precision=precision, convert_to_numpy=convert_to_numpy,
                               convert_to_tensor=convert_to_tensor)
    if isinstance(result, list) and is_torch_model(model):  # as one process: a list of tensors
        import torch

        result = [torch.from_numpy(np.asarray(row)) for row in result]
    return result[0] if single else result


def predict_with_pool(
    model: Any,
    sentences: Any,
    *,
    pool: MultiProcessPool | None,
    device: Any = None,
    chunk_size: int | None = None,
    show_progress_bar: bool | None = None,
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
    **predict_kwargs: Any,
) -> Any:
    """``model.predict(pairs, pool=pool, ...)``: the same scores as one process, computed by the pool."""
    from sentencekit.pipeline.predict import check_trained_head

    check_trained_head(model)  # here too, so that the error comes before any worker starts
    pairs, single = as_input_list(sentences, allow_pairs=True, what="sentences")
    check_batch_args(predict_kwargs.get("batch_size", 32), predict_kwargs.get("max_batch_tokens"))
    pairs = [tuple(p) for p in pairs]
    worker_kwargs = {**predict_kwargs, "show_progress_bar": False, "convert_to_numpy": True,
                     "convert_to_tensor": False}
    with _active_pool(model, pool, device) as active:
        merged = run_pooled(model, active, "predict", pairs, chunk_size=chunk_size, kwargs=worker_kwargs,
                            show_progress_bar=show_progress_bar, desc="Scoring")
    scores = np.asarray(merged, dtype=np.float32) if merged is not None else np.empty(0, dtype=np.float32)
    if convert_to_tensor or (not convert_to_numpy and is_torch_model(model)):
        import torch

        tensor = torch.from_numpy(scores)
        result: Any = tensor if convert_to_tensor else list(tensor)
    else:
        result = scores if convert_to_numpy else list(scores)
    return result[0] if single else result


def _token_family_inputs(model: Any, inputs: Any, encode_kwargs: dict[str, Any]) -> tuple[list[Any], bool]:
    """The checked inputs of a sparse / multi-vector ``encode`` (``sentences=``, their old name, popped from
    ``encode_kwargs``; a multimodal model's images too, e.g. a ColPali retriever's pages: :func:`_encode_inputs`),
    with the batch arguments checked before any worker starts: ``(inputs, was_single)``."""
    if "sentences" in encode_kwargs:
        if inputs is not None:
            raise TypeError("encode() got both inputs and sentences; pass one.")
        inputs = encode_kwargs.pop("sentences")
    texts, single, _ = _encode_inputs(model, inputs)
    check_batch_args(encode_kwargs.get("batch_size", 32), encode_kwargs.get("max_batch_tokens"))
    return texts, single


def sparse_encode_with_pool(
    model: Any,
    inputs: Any,
    *,
    pool: MultiProcessPool | None,
    device: Any = None,
    chunk_size: int | None = None,
    show_progress_bar: bool | None = None,
    convert_to_tensor: bool = True,
    convert_to_sparse_tensor: bool = True,
    save_to_cpu: bool = False,
    max_active_dims: int | None = None,
    **encode_kwargs: Any,
) -> Any:
    """``SparseEncoder.encode(inputs, pool=pool, ...)``: the rows of one process, computed by the pool, on
    the CPU (as sentence-transformers' multi-process encode returns them). Workers send their rows back as
    NumPy CSR arrays (:class:`sentencekit.sparse_arrays.CsrArrays`: compact, no torch tensors through the
    pipes); they are stacked, put back in input order and converted once, here, by the same last step as one
    process (:func:`sentencekit.pipeline.sparse_output.gather_sparse_rows`)."""
    from sentencekit import sparse_arrays
    from sentencekit.pipeline.sparse_output import check_max_active_dims, gather_sparse_rows

    del save_to_cpu  # pool results are on the CPU in any case
    texts, single = _token_family_inputs(model, inputs, encode_kwargs)
    check_max_active_dims(max_active_dims)
    worker_kwargs = {**encode_kwargs, "max_active_dims": max_active_dims, "show_progress_bar": False}
    with _active_pool(model, pool, device) as active:
        results, order = run_chunks(model, active, "encode_csr_arrays", texts, chunk_size=chunk_size,
                                    kwargs=worker_kwargs, show_progress_bar=show_progress_bar, desc="Encoding")
    torch_output = is_torch_model(model)
    parts: list[Any] = []
    if results:
        stacked = sparse_arrays.csr_arrays(results)
        if torch_output:
            from sentencekit.sparse_tensors import from_csr_arrays

            parts = [from_csr_arrays(stacked, sparse=convert_to_sparse_tensor)]
        elif convert_to_sparse_tensor:
            parts = [sparse_arrays.as_csr(stacked)]
        else:
            parts = [sparse_arrays.as_csr(stacked).toarray()]
    result = gather_sparse_rows(parts, np.argsort(np.asarray(order, dtype=np.int64)),
                                convert_to_tensor=convert_to_tensor or single,
                                convert_to_sparse_tensor=convert_to_sparse_tensor, device="cpu",
                                torch_output=torch_output)
    return result[0] if single else result


def multivector_encode_with_pool(
    model: Any,
    inputs: Any,
    *,
    pool: MultiProcessPool | None,
    device: Any = None,
    chunk_size: int | None = None,
    show_progress_bar: bool | None = None,
    output_value: str | None = "token_embeddings",
    convert_to_numpy: bool = False,
    **encode_kwargs: Any,
) -> Any:
    """``MultiVectorEncoder.encode(inputs, pool=pool, ...)``: the rows of one process, computed by the pool, on
    the CPU (as sentence-transformers' multi-process encode returns them). Workers send float32 NumPy rows (no
    torch tensors through the pipes; ``output_value=None``: per-input dicts as one process gives them); a torch
    model's caller gets CPU tensors back unless ``convert_to_numpy``."""
    from sentencekit.families.multivector import NO_TENSOR
    from sentencekit.pipeline.multivector_output import check_output_value

    if "convert_to_tensor" in encode_kwargs:
        raise ValueError(NO_TENSOR)
    check_output_value(output_value)
    texts, single = _token_family_inputs(model, inputs, encode_kwargs)
    worker_kwargs = {**encode_kwargs, "output_value": output_value, "show_progress_bar": False,
                     "convert_to_numpy": output_value is not None}
    with _active_pool(model, pool, device) as active:
        merged = run_pooled(model, active, "encode", texts, chunk_size=chunk_size, kwargs=worker_kwargs,
                            show_progress_bar=show_progress_bar, desc="Encoding")
    rows = list(merged) if merged is not None else []
    if output_value is not None and not convert_to_numpy and is_torch_model(model):
        import torch

        rows = [torch.from_numpy(row) for row in rows]
    return rows[0] if single else rows
