"""The one ``encode`` of every embedder and engine:

validate -> prompt -> tokenize once -> plan length-sorted batches -> engine -> restore order ->
truncation report -> ``truncate_dim`` / normalize / precision / convert.

``SentenceTransformer.encode`` (every backend), the pool workers, the server and the index all come
through :func:`encode`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentencekit._warnings import external_stacklevel
from sentencekit.engines.protocol import Tokenized
from sentencekit.pipeline.batching import as_input_list, report_truncation, restore_order, run_batches
from sentencekit.pipeline.postprocess import check_truncate_dim, concat, finish_embeddings, is_tensor, take
from sentencekit.pipeline.prompts import apply_prompt, resolve_prompt
from sentencekit.quantization import check_precision

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)


def encode(
    model: Any,
    sentences: Any,
    *,
    prompt_name: str | None = None,
    prompt: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    output_value: str | None = "sentence_embedding",
    precision: str = "float32",
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
    device: Any = None,
    normalize_embeddings: bool = False,
    truncate_dim: int | None = None,
    max_batch_tokens: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Any:
    """Embed ``sentences`` with ``model`` (a ``SentenceTransformer``; its ``engine`` does the compute and
    its ``prompts`` / ``default_prompt_name`` / ``truncate_dim`` are the defaults). See
    ``SentenceTransformer.encode`` for the arguments and what comes back; ``sentences`` may also be a
    :class:`~sentencekit.engines.protocol.Tokenized` (``Tokenized.from_ids``: inputs that arrive as token ids),
    which skips prompting and tokenization (the ids must already start with the prompt ``prompt`` /
    ``prompt_name`` name: it is not added again). The truncation report lands in ``model.last_encode_info``
    and, when inputs were cut, in one ``TruncationWarning`` (pointing at the caller's line)."""
    kwargs = dict(kwargs or {})
    engine = model.engine
    tokenized = sentences if isinstance(sentences, Tokenized) else None
    if tokenized is not None:
        limit = engine.max_seq_length
        too_long = np.flatnonzero(tokenized.lengths > limit) if limit else []
        if len(too_long):
            raise ValueError(f"Token-id input {int(too_long[0])} has {int(tokenized.lengths[too_long[0]])} ids, more "
                             f"than max_seq_length={limit}: truncate it with the tokenizer (keeping its special "
                             "tokens), or pass the text.")
    if tokenized is None:
        texts, single = as_input_list(sentences)
    else:
        texts, single = [None] * len(tokenized.lengths), False
    check_precision(precision)
    if output_value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be 'sentence_embedding', 'token_embeddings' or None, got {output_value!r}")
    if convert_to_tensor:
        convert_to_numpy = False
    truncate_dim = truncate_dim if truncate_dim is not None else model.truncate_dim
    full_dim = engine.dimension()
    check_truncate_dim(truncate_dim, full_dim)
    engine.prepare(device, kwargs)
    task = kwargs.pop("task", None)

    prompt_text = resolve_prompt(model.prompts, prompt_name, prompt, model.default_prompt_name)
    # token-id input already starts with its prompt; the prompt's length still matters to models whose
    # pooling leaves the prompt out
    prompt_length = engine.prompt_length(prompt_text, task) if prompt_text and not engine.include_prompt else 0
    if tokenized is None:
        tokenized = engine.tokenize([apply_prompt(prompt_text, t) for t in texts], task)
    outputs = frozenset({"sentence_embedding"} if output_value == "sentence_embedding" else
                        {"sentence_embedding", "token_embeddings"} if output_value == "token_embeddings" else {"*"})
    parts, order, cut = run_batches(engine, tokenized, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                    show_progress_bar=show_progress_bar, outputs=outputs,
                                    prompt_length=prompt_length, task=task, kwargs=kwargs)
    cut_at = np.flatnonzero(tokenized.truncated).tolist() + cut
    model._set_info(report_truncation(len(texts), cut_at, engine.max_seq_length_for(task), model._info_attribute,
                                      external_stacklevel() + 1))

    inverse = restore_order(order)
    if output_value != "sentence_embedding":
        rows = _rows(parts, inverse, output_value, truncate_dim, normalize_embeddings)
        return rows[0] if single else rows
    if parts:
        embeddings = take(concat(parts["sentence_embedding"]), inverse)
    else:
        width = min(full_dim or 0, truncate_dim or full_dim or 0)
        embeddings = np.zeros((0, width), dtype=np.float32)
    result = finish_embeddings(embeddings, truncate_dim=truncate_dim, normalize=normalize_embeddings,
                               precision=precision, convert_to_numpy=convert_to_numpy,
                               convert_to_tensor=convert_to_tensor)
    return result[0] if single else result


def _rows(parts: dict[str, list[Any]], inverse: np.ndarray, output_value: str | None, truncate_dim: int | None,
          normalize: bool) -> list[Any]:
    """Per-input results for ``token_embeddings`` (each input's real tokens, ``[tokens, hidden]``) and
    ``None`` (every per-input output the engine produced, as a dict per input)."""
    rows: list[Any] = []
    masks = parts.get("attention_mask", [])
    if output_value == "token_embeddings":
        for tokens, mask in zip(parts.get("token_embeddings", []), masks):
            for row, m in zip(tokens, mask):
                rows.append(row[m.bool()] if is_tensor(m) else row[np.asarray(m).astype(bool)])
        return [rows[i] for i in inverse]
    names = list(parts)
    for b in range(len(parts[names[0]]) if names else 0):
        batch = {name: parts[name][b] for name in names}
        emb = batch.get("sentence_embedding")
        if emb is not None:
            batch["sentence_embedding"] = finish_embeddings(emb, truncate_dim=truncate_dim, normalize=normalize,
                                                            convert_to_numpy=False, convert_to_tensor=is_tensor(emb))
        n = len(next(iter(batch.values())))
        for i in range(n):
            rows.append({name: value[i] for name, value in batch.items() if len(value) == n})
    return [rows[i] for i in inverse]


__all__ = ["encode", "OUTPUT_VALUES"]
