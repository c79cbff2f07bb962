"""Prompt resolution, shared by every model family: an explicit ``prompt`` wins, then
``prompts[prompt_name]``, then ``prompts[default_prompt_name]``."""

from __future__ import annotations

import warnings
from typing import Any

from sentencekit._warnings import external_stacklevel
from sentencekit.pipeline.chat_messages import to_conversation

#: the prompt names ``encode_document`` looks for, in order (sentence-transformers' convention)
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


def resolve_prompt(
    prompts: dict[str, str],
    prompt_name: str | None = None,
    prompt: str | None = None,
    default_prompt_name: str | None = None,
) -> str | None:
    """Return the prompt text to prepend, or None. Given both ``prompt`` and ``prompt_name``, ``prompt`` wins
    and a ``UserWarning`` says the name is ignored (sentence-transformers 6.2 logs the same warning).

    >>> resolve_prompt({"query": "query: "}, prompt_name="query")
    'query: '
    """
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        if prompt_name is not None:
            warnings.warn(f"Both prompt={prompt!r} and prompt_name={prompt_name!r} were given: using the prompt, "
                          "ignoring prompt_name. Pass one of them.", UserWarning, stacklevel=external_stacklevel())
        return prompt or None
    if prompt_name is not None:
        if prompt_name not in prompts:
            known = ", ".join(repr(k) for k in prompts) or "none"
            raise ValueError(
                f"Prompt name {prompt_name!r} not found in the model's prompts (available: {known}). "
                "Pass prompts={...} when loading the model, or use prompt='...'."
            )
        return prompts[prompt_name] or None
    if default_prompt_name is not None:
        return prompts.get(default_prompt_name) or None
    return None


def apply_prompt(prompt: str | None, item):
    """Prepend the prompt to a text (or to the first text of a pair, or a routed dict's value)."""
    if not prompt:
        return item
    if isinstance(item, str):
        return prompt + item
    if isinstance(item, tuple):
        return (prompt + item[0], *item[1:])
    if isinstance(item, dict):
        key, value = next(iter(item.items()))
        return {key: prompt + value}
    return item


def prompted_inputs(items: list[Any], prompt: str | None, message_format: str | None) -> list[Any]:
    """The model's inputs with the prompt, by sentence-transformers 6.2's rules: with a chat template
    (``message_format`` ``"flat"`` / ``"structured"``) each text or pair becomes chat messages and the prompt a
    leading system message (:func:`~sentencekit.pipeline.chat_messages.to_conversation`); otherwise the prompt
    is prepended to each text (a pair's first text). New objects; ``items`` is not modified.

    >>> prompted_inputs(["hi"], "Q: ", None), prompted_inputs(["hi"], "Q: ", "flat")[0][0]["role"]
    (['Q: hi'], 'system')
    """
    if message_format is not None:
        return [to_conversation(item, message_format, prompt) for item in items]  # type: ignore[arg-type]
    return [apply_prompt(prompt, item) for item in items] if prompt else list(items)
