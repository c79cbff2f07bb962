"""What a decoder (LLM) ``config.json`` says about embedding with it, torch-free.

sentence-transformers 6.2 builds ``[Transformer, Pooling]`` for a plain Hugging Face folder (no ``modules.json``);
the pooling is ``lasttoken`` when ``architectures[0]`` ends with ``ForCausalLM`` and the config does not set
``is_causal: false`` (a causal LM sees only the tokens before each position, so only the last token has read the
whole text), else ``mean`` (``sentence_transformers/sentence_transformer/model.py``, ``_load_default_modules``).
Bidirectional LLM embedders say so in their config (``is_causal: false`` or ``use_bidirectional_attention:
true``); an older transformers ignores those keys and silently runs them causally, which 6.2 warns about.

>>> default_pooling_mode({"architectures": ["Qwen3ForCausalLM"]})
'lasttoken'
>>> default_pooling_mode({"architectures": ["Qwen3ForCausalLM"], "is_causal": False})
'mean'
>>> unsupported_attention_settings({"is_causal": False}, "5.1.0")[0][:46]
'The model config specifies `is_causal=False`, '
"""

from __future__ import annotations

from typing import Any

#: ``(config key, the value that asks for bidirectional attention, the first transformers release honouring it)``,
#: as sentence-transformers 6.2 checks them
BIDIRECTIONAL_SETTINGS = (("use_bidirectional_attention", True, "4.56.2"), ("is_causal", False, "5.2.0"))


def is_causal_lm(hf_config: dict[str, Any]) -> bool:
    """Whether a ``config.json`` describes a causal (left-to-right) language model: its first architecture ends
    with ``ForCausalLM`` and it does not set ``is_causal: false`` (sentence-transformers 6.2's rule)."""
    archs = hf_config.get("architectures") or []
    return bool(archs) and str(archs[0]).endswith("ForCausalLM") and hf_config.get("is_causal", True) is not False


def default_pooling_mode(hf_config: dict[str, Any]) -> str:
    """The pooling a plain Hugging Face folder gets: ``"lasttoken"`` for a causal LM (:func:`is_causal_lm`),
    ``"mean"`` otherwise (encoders, bidirectional LLMs)."""
    return "lasttoken" if is_causal_lm(hf_config) else "mean"


def unsupported_attention_settings(hf_config: dict[str, Any], transformers_version: str) -> list[str]:
    """Warnings for a config (or any of its sub-configs, the ``*_config`` dicts) that asks for bidirectional
    attention through a key the installed transformers (``transformers_version``) does not know: it would
    ignore it and run the model causally, degrading its embeddings. Empty when there is nothing to say.
    Same checks and versions as sentence-transformers 6.2 (``Transformer._warn_on_unsupported_attention_config``)."""
    configs = [hf_config] + [v for k, v in hf_config.items() if k.endswith("_config") and isinstance(v, dict)]
    from packaging.version import Version  # transformers' own dependency: present wherever this is asked

    messages = []
    for key, value, minimum in BIDIRECTIONAL_SETTINGS:
        if Version(transformers_version) >= Version(minimum):
            continue
        if any(config.get(key, None) is value for config in configs):
            messages.append(f"The model config specifies `{key}={value}`, but the installed transformers "
                            f"{transformers_version} may not support it: it would be ignored and the model would run "
                            "with its default (usually causal) attention, giving degraded embeddings. Upgrade with "
                            f'pip install -U "transformers>={minimum}".')
    return messages


__all__ = ["is_causal_lm", "default_pooling_mode", "unsupported_attention_settings", "BIDIRECTIONAL_SETTINGS"]
