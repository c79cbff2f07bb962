"""The modules of a generative (causal-LM) reranker, by sentence-transformers 6.2's rules (``cross_encoder/
model.py`` ``_load_default_modules``): a CrossEncoder save's ``[Transformer(text-generation), LogitScore]``, or,
for a plain ``*ForCausalLM`` folder, a fresh ``text-generation`` Transformer and a ``LogitScore`` over the
tokenizer's ``"yes"`` / ``"no"`` tokens."""

from __future__ import annotations

from typing import Any

from sentencekit.engines.protocol import EngineOptions
from sentencekit.files import ModelFormatError
from sentencekit.spec.model_spec import ModelSpec

#: the answers a plain causal LM is asked for (6.2's defaults)
TRUE_TOKEN, FALSE_TOKEN = "yes", "no"


def answer_token_id(tokenizer: Any, token: str, folder: Any) -> int:
    """The vocabulary id of ``token`` as one token; ``ModelFormatError`` when the tokenizer lacks it."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    if token_id is None or (unk is not None and token_id == unk and token != tokenizer.unk_token):
        raise ModelFormatError(
            f"The tokenizer of {folder} has no {token!r} token, which a plain causal language model is scored with "
            f"(LogitScore: logit('{TRUE_TOKEN}') - logit('{FALSE_TOKEN}') at the last position). Build the model "
            "from modules instead: CrossEncoder(modules=[Transformer(path, transformer_task='text-generation'), "
            "LogitScore(true_token_id=..., false_token_id=...)]).")
    return int(token_id)


def load_generative_reranker_modules(spec: ModelSpec, options: EngineOptions) -> tuple[list[Any], dict[str, list[str]]]:
    """``[Transformer(text-generation), LogitScore]`` of ``spec`` (see the module docstring). The tokenizer is
    left-padded; a fresh load whose tokenizer has a chat template renders inputs through it. Raises
    ``ModelFormatError`` for other saved modules or a tokenizer without ``yes`` / ``no``."""
    from sentencekit.format import load_modules
    from sentencekit.modules import LogitScore, Transformer

    kwargs = {"trust_remote_code": options.trust_remote_code, "model_kwargs": options.model_kwargs,
              "tokenizer_kwargs": options.tokenizer_kwargs, "config_kwargs": options.config_kwargs,
              "transformer_task": "text-generation"}
    if spec.layout == "sentence-transformers" and spec.model_type == "CrossEncoder":
        if spec.module_kinds != ["Transformer", "LogitScore"]:
            raise ModelFormatError(f"{spec.folder / 'modules.json'}: a generative CrossEncoder is a text-generation "
                                   f"Transformer followed by LogitScore; this one has {spec.module_kinds}.")
        modules, module_kwargs = load_modules(spec.modules, **kwargs)
    else:
        transformer = Transformer.load(spec.transformer_folder, **kwargs)
        tok = transformer.tokenizer
        head = LogitScore(answer_token_id(tok, TRUE_TOKEN, spec.folder), answer_token_id(tok, FALSE_TOKEN, spec.folder))
        modules, module_kwargs = [transformer, head], {}
    if options.max_length is not None:
        modules[0].max_seq_length = options.max_length
    modules[0].untrained_head = None
    return modules, module_kwargs


__all__ = ["load_generative_reranker_modules", "answer_token_id"]
