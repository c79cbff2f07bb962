"""The one ``predict`` of every cross-encoder and engine: validate pairs -> tokenize once -> plan
length-sorted batches -> engine (logits) -> restore order -> truncation report -> activation / softmax /
convert. ``CrossEncoder.predict`` and ``rank`` (every backend), pool workers and the server's rerank
routes come through :func:`predict`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sentencekit._warnings import external_stacklevel
from sentencekit.engines.protocol import Tokenized
from sentencekit.pipeline.batching import as_input_list, report_truncation, restore_order, run_batches
from sentencekit.pipeline.postprocess import concat, finish_scores, take
from sentencekit.pipeline.prompts import prompted_inputs, resolve_prompt

_SCORES = frozenset({"scores"})


def ranked(scores: Any, documents: list[Any], top_k: int | None, return_documents: bool) -> list[dict[str, Any]]:
    """``rank()``'s result from one score per document: ``[{"corpus_id", "score"(, "text")}]``, best first (ties
    in input order), the first ``top_k``. Raises ``ValueError`` for ``top_k <= 0``.

    >>> ranked([0.1, 0.9], ["a", "b"], top_k=1, return_documents=True)
    [{'corpus_id': 1, 'score': 0.9, 'text': 'b'}]
    """
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    results = [{"corpus_id": i, "score": float(s)} for i, s in enumerate(np.asarray(scores).reshape(-1).tolist())]
    if return_documents:
        for r in results:
            r["text"] = documents[r["corpus_id"]]
    results.sort(key=lambda r: r["score"], reverse=True)
    return results[:top_k] if top_k is not None else results


class UntrainedHeadError(RuntimeError):
    """A CrossEncoder was asked to score pairs with a classification head that is not in its checkpoint
    (newly created, random weights): its scores would mean nothing."""


def check_trained_head(model: Any) -> None:
    """The one rule for scoring with a new head: refuse while ``model.untrained_head`` is set (the folder has
    no sequence-classification head, or records one saved before training: ``ModelSpec.untrained_head``;
    cleared by ``CrossEncoderTrainer.train`` or by the user). Raises :class:`UntrainedHeadError` saying what
    the folder is and what to do."""
    reason = getattr(model, "untrained_head", None)
    if reason:
        raise UntrainedHeadError(
            f"{reason}: its classification head has random weights, so its scores would mean nothing. "
            "To use it as a reranker, train it first: CrossEncoderTrainer "
            "(sentencekit.training) on (query, passage, label) data; training lifts this check. To rerank now, "
            "load a trained reranker (a folder with a *ForSequenceClassification head). To score with the "
            "random head anyway (e.g. a smoke test), set model.untrained_head = None."
        )


def predict(
    model: Any,
    sentences: Any,
    *,
    prompt_name: str | None = None,
    prompt: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    activation_fn: Callable[[Any], Any] | None = None,
    apply_softmax: bool = False,
    convert_to_numpy: bool = True,
    convert_to_tensor: bool = False,
    device: Any = None,
    max_batch_tokens: int | None = None,
    processing_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Score ``(text_a, text_b)`` pairs with ``model`` (a ``CrossEncoder``); see ``CrossEncoder.predict``.
    The truncation report lands in ``model.last_predict_info`` (and one ``TruncationWarning`` when pairs
    were cut, pointing at the caller's line). Raises :class:`UntrainedHeadError` for a head that was not in
    the checkpoint (see :func:`check_trained_head`)."""
    check_trained_head(model)
    if convert_to_tensor:
        convert_to_numpy = False
    engine = model.engine
    engine.prepare(device, {})
    if isinstance(sentences, Tokenized):
        # ids that already hold the prompt / chat template (the server's counted rows): run as they are
        if prompt_name is not None or prompt is not None or processing_kwargs:
            raise ValueError("Token-id input (Tokenized) already holds its prompt and template: leave out "
                             "prompt_name, prompt and processing_kwargs.")
        tokenized, single = sentences, False
    else:
        pairs, single = as_input_list(sentences, allow_pairs=True, what="sentences")
        text = resolve_prompt(getattr(model, "prompts", {}) or {}, prompt_name, prompt,
                              getattr(model, "default_prompt_name", None))
        items = prompted_inputs([tuple(p) for p in pairs], text, engine.message_format)
        tokenized = engine.tokenize_with(items, processing_kwargs) if processing_kwargs else engine.tokenize(items)
    parts, order, cut = run_batches(engine, tokenized, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                    show_progress_bar=show_progress_bar, outputs=_SCORES)
    # a call's own processing_kwargs={"text": {"max_length": n}} is the limit its inputs were cut at
    limit = ((processing_kwargs or {}).get("text") or {}).get("max_length") or engine.max_seq_length
    model._set_info(report_truncation(len(tokenized.lengths), np.flatnonzero(tokenized.truncated).tolist() + cut,
                                      limit, model._info_attribute, external_stacklevel() + 1))
    num_labels = model.num_labels
    if not parts:
        empty = np.zeros((0,) if num_labels == 1 else (0, num_labels), dtype=np.float32)
        if convert_to_tensor:
            import torch

            return torch.from_numpy(empty)
        return empty if convert_to_numpy else []
    logits = take(concat(parts["scores"]), restore_order(order))
    activation = activation_fn if activation_fn is not None else model.activation_fn
    result = finish_scores(logits, activation=activation, num_labels=num_labels, apply_softmax=apply_softmax,
                           convert_to_numpy=convert_to_numpy, convert_to_tensor=convert_to_tensor)
    return result[0] if single else result


__all__ = ["predict"]
