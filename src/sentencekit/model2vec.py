"""model2vec folders, read the same way by the torch ``StaticEmbedding`` module and the torch-free static
path (``sentencekit.engines.static_engine``). Nothing here imports torch.

>>> is_model2vec_folder("path/to/potion-base-8M")   # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.files import read_json_if_exists


def model2vec_normalizes(path: str | os.PathLike) -> bool:
    """Whether a model2vec folder's config asks for normalized embeddings."""
    config = read_json_if_exists(Path(path) / "config.json") or {}
    return bool(config.get("normalize", False))


def is_model2vec_folder(path: str | os.PathLike) -> bool:
    """A model2vec folder: ``config.json`` (model2vec's, or none of transformers' keys),
    ``model.safetensors`` and ``tokenizer.json``."""
    path = Path(path)
    config = read_json_if_exists(path / "config.json")
    if not (isinstance(config, dict) and (path / "tokenizer.json").is_file()
            and (path / "model.safetensors").is_file()):
        return False
    # model2vec writes model_type "model2vec" / architectures ["StaticModel"]; older exports write neither.
    if config.get("model_type") == "model2vec" or "StaticModel" in (config.get("architectures") or []):
        return True
    return "model_type" not in config and "architectures" not in config


def unk_token_id(tokenizer: Any) -> int | None:
    """model2vec drops the unknown token of word-level/WordPiece vocabularies (models with an
    ``unk_token``); Unigram models keep every id."""
    unk = json.loads(tokenizer.to_str()).get("model", {}).get("unk_token")
    return tokenizer.token_to_id(unk) if unk else None


def model2vec_table(state: dict[str, np.ndarray], tokenizer: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """The float32 token table of model2vec tensors (vocabulary mapping and per-token weights folded in)
    and the ids to drop, exactly as the torch module builds them."""
    table = np.asarray(state["embeddings"]).astype(np.float32)
    mapping = state.get("mapping")
    if mapping is not None:  # vocabulary quantization: token id -> row of a smaller table
        table = table[np.asarray(mapping).astype(np.int64)]
    weights = state.get("weights")
    if weights is not None:
        table = table * np.asarray(weights).astype(np.float32)[:, None]
    unk = unk_token_id(tokenizer)
    return table, ((unk,) if unk is not None else ())
