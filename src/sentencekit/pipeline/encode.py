"""The one ``encode`` of every embedder and engine:

validate (and detect each input's modality) -> prompt -> tokenize once -> plan length-sorted batches ->
engine -> restore order -> truncation report -> family post-step.

Inputs of a model that takes more than text (CLIP) run as one group per modality: texts are tokenized once
and length-sorted as always, images are batched by count and processed in their batch (see
:mod:`sentencekit.pipeline.modality`); the rows of all groups come back in input order.

:func:`run_pipeline` is the part every family shares (up to the truncation report); a family adds only
its last step: :func:`encode` (``truncate_dim`` / normalize / precision / convert) for
``SentenceTransformer``, :func:`sentencekit.pipeline.sparse_output.encode_sparse` (top-k, sparse
tensors) for ``SparseEncoder``. ``SentenceTransformer.encode`` (every backend), the pool workers, the
server and the index all come through :func:`encode`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentencekit._warnings import external_stacklevel
from sentencekit.engines.protocol import Tokenized
from sentencekit.pipeline.batching import as_input_list, report_truncation, restore_order, run_batches
from sentencekit.pipeline.modality import (
    URL_SETTING,
    check_text_only_inputs,
    explain_rejected,
    read_inputs_by_modality,
)
from sentencekit.pipeline.postprocess import check_truncate_dim, concat, finish_embeddings, is_tensor, take
from sentencekit.pipeline.prompts import prompted_inputs, resolve_prompt
from sentencekit.quantization import check_precision

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)


@dataclass
class EncodeInputs:
    """Checked inputs of an encode call: the texts (``None`` placeholders for token-id input; for a model that
    takes images, the inputs, media unwrapped from ``{"image": x}``), whether the caller passed one input, the
    token ids when they came as :class:`Tokenized`, and each input's modality when not all are text."""

    texts: list[Any]
    single: bool
    tokenized: Tokenized | None = None
    modalities: list[Any] | None = None


@dataclass
class EncodeRun:
    """What the shared part of the pipeline produced: per-output lists of batch arrays in batch order, the
    permutation that restores input order, and whether the caller passed one text."""

    parts: dict[str, list[Any]]
    inverse: np.ndarray
    single: bool

    def ordered(self, name: str) -> Any | None:
        """All rows of output ``name`` in input order (NumPy array or tensor; ``None`` for no input)."""
        if not self.parts:
            return None
        return take(concat(self.parts[name]), self.inverse)


def read_inputs(engine: Any, sentences: Any, *, allow_urls: bool = False) -> EncodeInputs:
    """Validate ``sentences`` (texts; images too for a model that takes them; or :class:`Tokenized` ids, whose
    rows must fit ``max_seq_length``). Raises ``TypeError`` naming a bad input's index, ``ValueError`` for a
    too-long id row, or naming an input of a modality the model does not take (and the model's modalities), or
    an image URL unless ``allow_urls``."""
    if isinstance(sentences, Tokenized):
        limit = engine.max_seq_length
        too_long = np.flatnonzero(sentences.lengths > limit) if limit else []
        if len(too_long):
            raise ValueError(f"Token-id input {int(too_long[0])} has {int(sentences.lengths[too_long[0]])} ids, more "
                             f"than max_seq_length={limit}: truncate it with the tokenizer (keeping its special "
                             "tokens), or pass the text.")
        return EncodeInputs([None] * len(sentences.lengths), False, sentences)
    modalities = tuple(engine.modalities)
    if modalities == ("text",):
        try:
            texts, single = as_input_list(sentences)
        except TypeError:
            explain_rejected(sentences)  # an image given to a text model: say which modalities it takes
            raise
        check_text_only_inputs(texts)
        return EncodeInputs(texts, single)
    items, kinds, single = read_inputs_by_modality(sentences, modalities, allow_urls=allow_urls)
    return EncodeInputs(items, single, modalities=kinds)


def modality_groups(inputs: EncodeInputs) -> list[tuple[str, np.ndarray | None, list[Any]]]:
    """``(modality, input positions or None for all inputs in order, items)`` per modality of the call: one
    text group covering everything when all inputs are text."""
    if inputs.modalities is None:
        return [("text", None, inputs.texts)]
    groups: dict[str, list[int]] = {}
    for i, kind in enumerate(inputs.modalities):
        groups.setdefault(kind, []).append(i)
    return [(kind, np.asarray(where, dtype=np.int64), [inputs.texts[i] for i in where])
            for kind, where in groups.items()]


def run_pipeline(
    model: Any,
    inputs: EncodeInputs,
    *,
    prompt_name: str | None,
    prompt: str | None,
    batch_size: int,
    show_progress_bar: bool | None,
    device: Any,
    max_batch_tokens: int | None,
    outputs: frozenset[str],
    kwargs: dict[str, Any] | None,
    batch_step: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> EncodeRun:
    """The part of ``encode`` every family shares: check the call's kwargs (and move to ``device``), resolve
    the prompt, tokenize once, run length-sorted batches (each through ``batch_step``, the family's
    per-batch step), and report truncation in ``model.<_info_attribute>`` (one ``TruncationWarning``,
    pointing at the first frame outside sentencekit, when inputs were cut). ``model`` supplies ``engine``,
    ``prompts`` and ``default_prompt_name``. Does not modify ``kwargs``."""
    kwargs = dict(kwargs or {})
    engine = model.engine
    engine.prepare(device, kwargs)
    task = kwargs.pop("task", None)
    prompt_text = resolve_prompt(model.prompts, prompt_name, prompt, model.default_prompt_name)
    # token-id input already starts with its prompt; the prompt's length still matters to models whose
    # pooling leaves the prompt out. A chat-template model gets the prompt as a system message, whose tokens
    # 6.2 does not track (include_prompt=False has no effect there)
    chat = engine.message_format
    prompt_length = engine.prompt_length(prompt_text, task) \
        if prompt_text and not engine.include_prompt and chat is None else 0
    parts: dict[str, list[Any]] = {}
    orders: list[np.ndarray] = []
    cut_at: list[int] = []
    batches_before = 0
    for modality, where, items in modality_groups(inputs):
        tokenized = inputs.tokenized
        if tokenized is None and modality == "text":
            tokenized = engine.tokenize(prompted_inputs(items, prompt_text, chat), task)
        elif tokenized is None:  # media: processed batch by batch by the engine (prompts are for text)
            tokenized = Tokenized.deferred(items, modality)
        group, order, cut = run_batches(engine, tokenized, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                        show_progress_bar=show_progress_bar, outputs=outputs,
                                        prompt_length=prompt_length if modality == "text" else 0, task=task,
                                        kwargs=kwargs, batch_step=batch_step)
        cut = np.flatnonzero(tokenized.truncated).tolist() + cut
        orders.append(order if where is None else where[order])
        cut_at += cut if where is None else where[cut].tolist()
        batches_before = _merge_parts(parts, group, batches_before)
    counts = () if inputs.modalities is None else tuple(Counter(inputs.modalities).items())
    model._set_info(report_truncation(len(inputs.texts), cut_at, engine.max_seq_length_for(task),
                                      model._info_attribute, external_stacklevel() + 1, modality_counts=counts))
    order = np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64)
    return EncodeRun(parts, restore_order(order), inputs.single)


def _merge_parts(parts: dict[str, list[Any]], group: dict[str, list[Any]], batches_before: int) -> int:
    """Append one modality group's per-output batch lists to ``parts``, keeping every list one entry per batch
    (``None`` where a group has no such output, e.g. ``input_ids`` of image batches); returns the batch count."""
    batches = len(next(iter(group.values()))) if group else 0
    for name in set(parts) | set(group):
        parts.setdefault(name, [None] * batches_before).extend(group.get(name, [None] * batches))
    return batches_before + batches


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
    engine = model.engine
    inputs = read_inputs(engine, sentences, allow_urls=bool(getattr(model, URL_SETTING, False)))
    check_precision(precision)
    if output_value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be 'sentence_embedding', 'token_embeddings' or None, got {output_value!r}")
    if convert_to_tensor:
        convert_to_numpy = False
    truncate_dim = truncate_dim if truncate_dim is not None else model.truncate_dim
    full_dim = engine.dimension()
    check_truncate_dim(truncate_dim, full_dim)
    outputs = frozenset({"sentence_embedding"} if output_value == "sentence_embedding" else
                        {"sentence_embedding", "token_embeddings"} if output_value == "token_embeddings" else {"*"})
    run = run_pipeline(model, inputs, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                       show_progress_bar=show_progress_bar, device=device, max_batch_tokens=max_batch_tokens,
                       outputs=outputs, kwargs=kwargs)
    if output_value != "sentence_embedding":
        rows = _rows(run.parts, run.inverse, output_value, truncate_dim, normalize_embeddings)
        return rows[0] if run.single else rows
    embeddings = run.ordered("sentence_embedding")
    if embeddings is None:
        width = min(full_dim or 0, truncate_dim or full_dim or 0)
        embeddings = np.zeros((0, width), dtype=np.float32)
    result = finish_embeddings(embeddings, truncate_dim=truncate_dim, normalize=normalize_embeddings,
                               precision=precision, convert_to_numpy=convert_to_numpy,
                               convert_to_tensor=convert_to_tensor)
    return result[0] if run.single else result


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
        # a call mixing modalities has outputs only some groups' batches hold (None in the others)
        batch = {name: parts[name][b] for name in names if parts[name][b] is not None}
        emb = batch.get("sentence_embedding")
        if emb is not None:
            batch["sentence_embedding"] = finish_embeddings(emb, truncate_dim=truncate_dim, normalize=normalize,
                                                            convert_to_numpy=False, convert_to_tensor=is_tensor(emb))
        n = len(next(iter(batch.values())))
        for i in range(n):
            rows.append({name: value[i] for name, value in batch.items() if len(value) == n})
    return [rows[i] for i in inverse]


__all__ = ["encode", "run_pipeline", "read_inputs", "EncodeInputs", "EncodeRun", "OUTPUT_VALUES"]
