"""Chat templates: the one place where text inputs become chat messages and messages become token ids.

sentence-transformers 6.2 runs every text input of a model whose Transformer has a ``message`` modality (a fresh
load of a tokenizer with a ``chat_template``, or a saved ``modality_config`` with ``"message"``) through the
template (``base/modality.py`` ``InputFormatter``, ``base/modules/transformer.py``): a pair ``(q, d)`` becomes
``[{"role": "query", "content": q}, {"role": "document", "content": d}]``, a single text ``[{"role": "user",
"content": t}]``, and a prompt a leading system message. Content is a string (``"flat"``) or
``[{"type": "text", "text": ...}]`` (``"structured"``). Rendering then tokenizes with
``add_special_tokens=False`` (what ``apply_chat_template`` does), cut at the model's length; when the cut removes
the template's fixed tail (an assistant prefill), ``restore_suffix`` writes the tail back over the last tokens.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any, Literal

MessageFormat = Literal["flat", "structured"]
Conversation = list[dict[str, Any]]

#: the roles of a pair's two halves (6.2's ``PAIR_ROLES``)
PAIR_ROLES = ("query", "document")
#: a baseline pair, then one varying only the query, then one varying only the document (6.2's probes)
_PROBES = (("alpha", "bravo"), ("charlie", "bravo"), ("alpha", "foxtrot"))
#: template text that shows the content is read as a list of typed parts (6.2's ``auto`` detection)
_STRUCTURED_PATTERNS = ("content[0]", ".type", "'type'", '"type"', "item.type", "message.content[")
#: model types whose templates read flat content whatever their source looks like (6.2's list)
_FLAT_MODEL_TYPES = frozenset({"apertus", "deepseek_v3", "gpt_oss", "seed_oss"})
#: apply_chat_template arguments that size the tokenization, never passed to the Jinja render
_SIZE_KWARGS = frozenset({"padding", "truncation", "max_length", "return_tensors"})
#: sentencekit / 6.2 flag, not a template argument
RESTORE_SUFFIX = "restore_suffix"

_EXAMPLE = {
    "flat": ('    <Query>: {{ messages | selectattr("role", "eq", "query") | map(attribute="content") | first }}\n'
             '    <Document>: {{ messages | selectattr("role", "eq", "document") | map(attribute="content") '
             '| first }}\n'),
    "structured": ('    <Query>: {{ (messages | selectattr("role", "eq", "query") | first).content[0].text }}\n'
                   '    <Document>: {{ (messages | selectattr("role", "eq", "document") | first).content[0].text }}\n'),
}


def message_format(template: str | None, model_type: str | None, saved: str | None = "auto") -> MessageFormat:
    """``"flat"`` or ``"structured"``: the saved format unless it is ``"auto"`` / missing, then 6.2's detection
    (known flat model types; structured when the template reads ``content[0]`` / ``.type``; structured without a
    template).

    >>> message_format("{{ messages[0]['content'] }}", "qwen3")
    'flat'
    """
    if saved in ("flat", "structured"):
        return saved  # type: ignore[return-value]
    if model_type in _FLAT_MODEL_TYPES:
        return "flat"
    if not isinstance(template, str) or not template:
        return "structured"
    return "structured" if any(p in template for p in _STRUCTURED_PATTERNS) else "flat"


def _message(role: str, text: str, fmt: MessageFormat) -> dict[str, Any]:
    return {"role": role, "content": text if fmt == "flat" else [{"type": "text", "text": text}]}


def to_conversation(item: str | Sequence[str], fmt: MessageFormat, prompt: str | None = None) -> Conversation:
    """One text (role ``user``) or one ``(query, document)`` pair (roles ``query`` / ``document``) as messages,
    after a ``system`` message holding ``prompt`` when one is given. The input is not modified."""
    if isinstance(item, str):
        messages = [_message("user", item, fmt)]
    else:
        messages = [_message(role, str(text), fmt) for role, text in zip(PAIR_ROLES, item, strict=True)]
    return [_message("system", prompt, fmt), *messages] if prompt else messages


def template_kwargs(settings: dict[str, Any] | None, template: str | None, task: str | None = None) -> dict[str, Any]:
    """The keyword arguments of a render: the model's ``processing_kwargs["chat_template"]`` without the size
    arguments and ``restore_suffix``, plus ``task`` when given and the template uses a ``task`` variable
    (transformers treats unknown keywords as tokenizer arguments, so 6.2 passes it only then)."""
    kwargs = {k: v for k, v in (settings or {}).items() if k not in _SIZE_KWARGS and k != RESTORE_SUFFIX}
    if task is not None and "task" not in kwargs and _uses_variable(template, "task"):
        kwargs["task"] = task
    return kwargs


def _uses_variable(template: str | None, name: str) -> bool:
    if not isinstance(template, str):
        return False
    try:
        from transformers.utils.chat_template_utils import _get_template_variables
    except ImportError:  # older transformers: an extra template argument is harmless (6.2 does the same)
        return True
    return name in _get_template_variables(template)


def render(tokenizer: Any, conversations: Sequence[Conversation], kwargs: dict[str, Any]) -> list[str]:
    """The template's text of each conversation (``tokenizer.apply_chat_template(..., tokenize=False)``)."""
    return [str(tokenizer.apply_chat_template(list(c), tokenize=False, **kwargs)) for c in conversations]


class TemplateChecks:
    """Per-tokenizer caches of the pair-role probe and the template tails (thread-safe, bounded)."""

    _LIMIT = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probe: tuple[Any, str | None] | None = None
        self._suffixes: dict[str, list[int]] = {}

    def check_pair_roles(self, tokenizer: Any, fmt: MessageFormat, kwargs: dict[str, Any], name: str) -> None:
        """Raise ``ValueError`` (with an example template) when the chat template drops the content of the
        ``query`` or ``document`` message: renders of probe pairs that differ in one role's content must differ
        (6.2's role probe; a template reading only ``user`` / ``assistant`` renders pairs as empty prompts)."""
        template = getattr(tokenizer, "chat_template", None)
        key = (template, repr(sorted(kwargs.items())), fmt)
        with self._lock:
            cached = self._probe if self._probe is not None and self._probe[0] == key else None
        if cached is None:
            try:
                base, *varied = render(tokenizer, [to_conversation(p, fmt) for p in _PROBES], kwargs)
            except Exception as exc:  # a template that raises on a pair cannot carry one: say why
                failure: str | None = f"it raised {type(exc).__name__}: {exc}"
            else:
                dropped = [role for role, text in zip(PAIR_ROLES, varied) if text == base]
                failure = (f"the {' and '.join(repr(r) for r in dropped)} content does not reach the rendered "
                           "prompt") if dropped else None
            with self._lock:
                self._probe = cached = (copy.deepcopy(key), failure)
        if cached[1] is not None:
            raise ValueError(
                f"The chat template of {name} cannot carry a 'query'/'document' pair ({cached[1]}). Pairs become one "
                "message per role, so give the model a chat template that renders both roles, e.g.:\n"
                f"{_EXAMPLE[fmt]}as a chat_template.jinja file in the model folder, or set "
                "model.tokenizer.chat_template = ... after loading.")

    def suffix_ids(self, tokenizer: Any, conversation: Conversation, kwargs: dict[str, Any]) -> list[int]:
        """The template's fixed trailing token ids for a conversation of this shape: the longest common token
        tail of two renders whose non-system contents are different fillers (6.2's derivation; cached by the
        conversation's roles, system contents and the render arguments). Empty when the renders never differ."""
        skeleton = [m if m.get("role") == "system" else {**m, "content": None} for m in conversation]
        key = repr((skeleton, sorted(kwargs.items())))
        with self._lock:
            if key in self._suffixes:
                return self._suffixes[key]

        def filled(filler: str) -> Conversation:
            return [m if m.get("role") == "system" else
                    {**m, "content": filler if isinstance(m.get("content"), str) else [{"type": "text",
                                                                                         "text": filler}]}
                    for m in conversation]

        first, second = (tokenizer(text, add_special_tokens=False)["input_ids"]
                         for text in render(tokenizer, [filled("0"), filled("1 2 3 4")], kwargs))
        count = 0
        for a, b in zip(reversed(first), reversed(second)):
            if a != b:
                break
            count += 1
        suffix = list(first[len(first) - count:]) if 0 < count < min(len(first), len(second)) else []
        with self._lock:
            if len(self._suffixes) >= self._LIMIT:
                self._suffixes.pop(next(iter(self._suffixes)))
            self._suffixes[key] = suffix
        return suffix


def restore_suffix(ids: list[int], suffix: list[int]) -> list[int]:
    """``ids`` (a row cut at the length limit) with its last ``len(suffix)`` tokens replaced by the template's
    tail, so readers of the last position (causal-LM rerankers, last-token pooling) see the prefill (6.2's
    ``restore_suffix``). A new list; ``ids`` is unchanged."""
    keep = min(len(suffix), len(ids))
    return list(ids[:len(ids) - keep]) + list(suffix[len(suffix) - keep:]) if keep else list(ids)


def is_conversation(item: Any) -> bool:
    """Whether an input is a list of chat messages (dicts with a ``role``)."""
    return isinstance(item, list) and bool(item) and all(isinstance(m, dict) and "role" in m for m in item)


__all__ = ["PAIR_ROLES", "MessageFormat", "TemplateChecks", "message_format", "to_conversation", "template_kwargs",
           "render", "restore_suffix", "is_conversation", "RESTORE_SUFFIX"]
