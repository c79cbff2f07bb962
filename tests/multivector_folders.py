"""Tiny multi-vector (ColBERT) checkpoints in the layouts other tools write, built file by file without those
tools (the layouts are described in model-families.md, section 2.1, and src/sentencekit/spec/multivector_source.py):

- PyLate (<= 3): ``modules.json`` ``[Transformer, pylate.models.Dense.Dense]``, the ``[Q] `` / ``[D] `` prefixes
  added to the tokenizer as plain tokens (and the embeddings resized), ``config_sentence_transformers.json``
  with ``model_type: ColBERT`` and PyLate's top-level settings, a Dense config without input names;
- Stanford ColBERT: a Hugging Face ``HF_ColBERT`` folder (encoder weights under ``bert.``, the projection at
  the root as ``linear.weight``), a BERT vocabulary with ``[unused0]`` / ``[unused1]``, and ``artifact.metadata``.

``benchmarks/st_compat.py`` loads the same folders with sentence-transformers 6.2 to check both libraries read
them alike.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from tests.conftest import WORDS, write_vocab

PYLATE_SKIPLIST = ["!", ",", ".", "?", "'", "-"]


def _bert(folder: Path, vocab: Path, *, seed: int, hidden: int = 32, max_positions: int = 64):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tokenizer = BertTokenizerFast(**{arg: str(vocab)}, do_lower_case=True, model_max_length=max_positions)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=hidden * 2, max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    return BertModel(config).eval(), tokenizer


def build_pylate_folder(folder: Path, *, seed: int = 0, out_features: int = 16, query_length: int = 12,
                        document_length: int = 40, do_query_expansion: bool = True, attend: bool = False,
                        skiplist: list[str] | None = None) -> Path:
    """A PyLate (<= 3) ColBERT save of a random tiny BERT (see the module docstring)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _bert(folder, write_vocab(folder), seed=seed)
    tokenizer.add_tokens(["[Q] ", "[D] "])  # PyLate adds its prefixes as (normalized) tokens
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48, "do_lower_case": False}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}], indent=2))
    dense = folder / "1_Dense"
    dense.mkdir()
    (dense / "config.json").write_text(json.dumps({"in_features": 32, "out_features": out_features, "bias": False,
                                                    "activation_function": "torch.nn.modules.linear.Identity"}))
    torch.manual_seed(seed + 1)
    save_file({"linear.weight": torch.randn(out_features, 32) / 4}, str(dense / "model.safetensors"))
    config = {"__version__": {"sentence_transformers": "3.4.1", "transformers": "4.48.2", "pytorch": "2.5.1"},
              "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "MaxSim", "query_prefix": "[Q] ",
              "document_prefix": "[D] ", "query_length": query_length, "document_length": document_length,
              "attend_to_expansion_tokens": attend, "skiplist_words": skiplist if skiplist is not None
              else PYLATE_SKIPLIST, "model_type": "ColBERT"}
    if not do_query_expansion:
        config["do_query_expansion"] = False
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config, indent=2))
    return folder


def _stanford_vocab(folder: Path) -> Path:
    """A BERT vocabulary with the [unusedN] slots ColBERT's markers use (BERT keeps them after [PAD])."""
    vocab = write_vocab(folder)
    tokens = vocab.read_text(encoding="utf-8").split()
    tokens = [tokens[0], "[unused0]", "[unused1]", *tokens[1:]]
    vocab.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    return vocab


def build_stanford_folder(folder: Path, *, seed: int = 0, out_features: int = 16, metadata: dict | None = None,
                          write_metadata: bool = True) -> Path:
    """A Stanford ColBERT (``HF_ColBERT``) checkpoint of a random tiny BERT (see the module docstring)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _bert(folder, _stanford_vocab(folder), seed=seed)
    tokenizer.save_pretrained(str(folder))
    config = model.config.to_dict()
    config.update({"architectures": ["HF_ColBERT"], "model_type": "bert"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(seed + 1)
    state = {f"bert.{k}": v.contiguous() for k, v in model.state_dict().items()}
    state["linear.weight"] = torch.randn(out_features, 32) / 4
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if write_metadata:
        meta = {"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 10, "doc_maxlen": 30,
                "mask_punctuation": True, "attend_to_mask_tokens": False, "dim": out_features,
                "similarity": "cosine", "nbits": 2, **(metadata or {})}
        (folder / "artifact.metadata").write_text(json.dumps(meta, indent=4))
    return folder


TEXTS = ["how do i get a refund", "reset my password please", "the cat sat on the mat, today!",
         "what is your return policy?", "hello world", "the weather in paris is mild and the delivery is late"]

__all__ = ["build_pylate_folder", "build_stanford_folder", "TEXTS", "WORDS", "PYLATE_SKIPLIST"]
