"""What the Transformer module does differently for chat-template inputs and causal language models, kept out of
``transformer.py`` (which coordinates): 6.2's ``processing_kwargs`` check, the ``message`` entry of a
``modality_config``, chat-template token ids (render, cut, ``restore_suffix``), and next-token logits read at the
last position (``logits_to_keep``, the left-padding check). The renderer itself lives in
:mod:`sentencekit.pipeline.chat_messages`; sentence-transformers 6.2's counterpart is
``base/modules/transformer.py`` (``_process_chat_messages``, ``forward``)."""

from __future__ import annotations

import threading
import warnings
from typing import Any

from sentencekit._warnings import external_stacklevel
from sentencekit.files import ModelFormatError
from sentencekit.pipeline.chat_messages import (
    TemplateChecks,
    is_conversation,
    message_format,
    render,
    restore_suffix,
    template_kwargs,
    to_conversation,
)

#: the keys of ``processing_kwargs`` (6.2's): per modality, shared, and the chat template's render arguments
PROCESSING_KEYS = ("common", "text", "chat_template")


def check_processing_kwargs(value: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A copy of 6.2's ``processing_kwargs`` (``{"text": {"logits_to_keep": n}, "chat_template": {...}}``);
    ``ValueError`` for another key, a non-dict entry or a negative / non-integer ``logits_to_keep``."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"processing_kwargs must be a dict of dicts (keys {PROCESSING_KEYS}), got {value!r}")
    for key, entry in value.items():
        if key not in PROCESSING_KEYS or not isinstance(entry, dict):
            raise ValueError(f"processing_kwargs[{key!r}] = {entry!r}: sentencekit reads the keys {PROCESSING_KEYS}, "
                             "each a dict (e.g. {'text': {'logits_to_keep': 1}, 'chat_template': {'enable_thinking': "
                             "False}}).")
    keep = (value.get("text") or {}).get("logits_to_keep", 1)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"processing_kwargs['text']['logits_to_keep'] must be a non-negative integer, got {keep!r}")
    return {k: dict(v) for k, v in value.items()}


def split_message_config(modality_config: dict[str, Any] | None, template: Any,
                         model_type: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """``(the modality_config without "message", the message format or None)``. A saved ``message`` entry keeps its
    ``format`` (``auto`` detected); a fresh load (``modality_config`` None) gets one whenever the tokenizer has a
    chat template (6.2 adds ``message`` then). ``ModelFormatError`` when ``message`` is saved but the tokenizer
    has no template."""
    has_template = isinstance(template, str) and bool(template)
    if modality_config is None:
        return None, message_format(template, model_type) if has_template else None
    rest = {k: v for k, v in modality_config.items() if k != "message"}
    fmt = None
    if "message" in modality_config:
        if not has_template:
            raise ModelFormatError("The saved modality_config lists 'message' (chat-template inputs), but the "
                                   "tokenizer has no chat_template: add chat_template.jinja to the folder.")
        fmt = message_format(template, model_type, (modality_config["message"] or {}).get("format", "auto"))
    return rest or None, fmt


def chat_token_ids(tokenizer: Any, items: list[Any], *, fmt: str | None, settings: dict[str, Any],
                   task: str | None, limit: int | None, checks: TemplateChecks, lock: threading.Lock,
                   name: str) -> tuple[list[list[int]], list[bool]]:
    """Token ids (one list per item) and truncation flags of texts / pairs / conversations rendered through the
    tokenizer's chat template (texts and pairs become messages first:
    :func:`~sentencekit.pipeline.chat_messages.to_conversation`), tokenized without special tokens (as
    ``apply_chat_template`` does), cut at ``limit``; a cut row gets the template's tail back
    (``settings["restore_suffix"]``, default on). ``settings`` is ``processing_kwargs["chat_template"]``; ``name``
    names the model in errors. Raises ``ValueError`` when the template drops a pair's query or document. The
    tokenizer is called under ``lock`` (fast tokenizers are not thread-safe)."""
    template = getattr(tokenizer, "chat_template", None)
    fmt = fmt or message_format(template, None)
    conversations = [item if is_conversation(item) else to_conversation(item, fmt) for item in items]
    kwargs = template_kwargs(settings, template, task)
    if any({"query", "document"} <= {m.get("role") for m in c} for c in conversations):
        checks.check_pair_roles(tokenizer, fmt, kwargs, name)
    with lock:
        texts = render(tokenizer, conversations, kwargs)
        encoded = tokenizer(texts, add_special_tokens=False, padding=False, truncation=bool(limit), max_length=limit,
                            return_attention_mask=False)
        ids = [list(row) for row in encoded["input_ids"]]
        if limit:
            encodings = getattr(encoded, "encodings", None)
            truncated = [bool(e.overflowing) for e in encodings] if encodings else \
                [len(r) > limit for r in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        else:
            truncated = [False] * len(ids)
        if settings.get("restore_suffix", True):
            ids = [restore_suffix(row, checks.suffix_ids(tokenizer, conv, kwargs)) if cut else row
                   for row, conv, cut in zip(ids, conversations, truncated)]
        if limit and any(truncated):
            _warn_if_template_fills(tokenizer, conversations[truncated.index(True)], kwargs, limit, name)
    return ids, truncated


def _blank(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with every non-system message's text emptied (the template's fixed part, prompt kept)."""
    def empty(content: Any) -> Any:
        if isinstance(content, str):
            return ""
        return [{**part, "text": ""} if isinstance(part, dict) and part.get("type") == "text" else part
                for part in content or []]
    return [m if m.get("role") == "system" else {**m, "content": empty(m.get("content"))} for m in conversation]


def _warn_if_template_fills(tokenizer: Any, conversation: list[dict[str, Any]], kwargs: dict[str, Any], limit: int,
                            name: str) -> None:
    """Warn when the template and prompt alone take ``limit`` tokens: then no text of any input reaches the model
    and every input gets the same output (sentence-transformers 6.2 computes the same numbers, silently)."""
    fixed = len(tokenizer(render(tokenizer, [_blank(conversation)], kwargs), add_special_tokens=False,
                          return_attention_mask=False)["input_ids"][0])
    if fixed >= limit:
        warnings.warn(
            f"{name}: the chat template and prompt alone take {fixed} tokens, but inputs are cut at {limit}: no "
            "text of the query, document or input reaches the model, so every input gets the same output. Raise "
            f"max_length (max_seq_length) well above {fixed}.", UserWarning, stacklevel=external_stacklevel())


def refuse_query_expansion() -> None:
    """Raise the ``ValueError`` for query expansion on chat-template inputs (6.2 refuses it too): the expansion
    length would cut the rendered text, so every query would become the template's preamble."""
    raise ValueError("query_expansion cannot be combined with a chat-template model (6.2 refuses it too): "
                     "queries are rendered through the template, then cut to the expansion length, which "
                     "drops their content. Put query augmentation in the template (it receives "
                     "task='query'), or load with modality_config={'text': {'method': 'forward', "
                     "'method_output_name': 'last_hidden_state'}} and module_output_name='token_embeddings'.")


def causal_logits(model: Any, inputs: dict[str, Any], kwargs: dict[str, Any], *, logits_to_keep: int | None,
                  padding_side: str) -> Any:
    """Next-token logits ``[b, logits_to_keep or T, vocab]`` (float, the model's dtype) of a causal model
    ``model`` on ``inputs`` (``input_ids`` / ``attention_mask`` ``[b, T]``); ``logits_to_keep`` is sent only when
    not ``None`` (the model's forward takes it). Raises ``ValueError`` when a row ends in padding (the last
    position must be a real token: left padding; ``padding_side`` is the tokenizer's, for the message)."""
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 2 and not bool(mask[:, -1].all()):
        raise ValueError("At least one row ends in a padding token, but a causal model reads the last position "
                         "(logits_to_keep, LogitScore), so inputs must be left-padded. The tokenizer's "
                         f"padding_side is {padding_side!r}: set model.tokenizer.padding_side = 'left' (it is set "
                         "on load).")
    if logits_to_keep is not None:
        kwargs = {**kwargs, "logits_to_keep": logits_to_keep}
    return model(**inputs, **kwargs, return_dict=True).logits


__all__ = ["PROCESSING_KEYS", "check_processing_kwargs", "split_message_config", "chat_token_ids",
           "refuse_query_expansion", "causal_logits"]
