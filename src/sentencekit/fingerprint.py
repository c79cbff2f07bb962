"""A model's identity: a hash of everything that decides its embeddings (weights, configs, tokenizer).

Stored embeddings record it, so vectors from one model are never silently compared with another's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def model_fingerprint(model: Any) -> str:
    """Fingerprint of a loaded model: its weights, module configs and tokenizers, as they are in memory
    (so a model changed by training gets a new identity).

    Models on another backend (``backend="onnx"``) give their own ``fingerprint()``: a float32 export
    carries the fingerprint of the torch model it was exported from (its embeddings are the same), so an
    index built on one backend opens on the other; an int8 graph is a different model.
    """
    own = getattr(model, "fingerprint", None)
    if callable(own):
        return own()
    return network_fingerprint(model)


def network_fingerprint(network: Any) -> str:
    """Fingerprint of a torch pipeline (an ``nn.Sequential`` of modules): weights, configs, tokenizers."""
    model = network
    tensors = []
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        tensors.append((name, str(t.dtype), tuple(t.shape), t.view(-1).view(dtype=_byte_dtype()).numpy()))
    configs = []
    for module in model:
        get = getattr(module, "get_config_dict", None)
        configs.append([type(module).__name__, get() if get else None])
        tokenizer = getattr(module, "tokenizer", None)
        if tokenizer is not None:
            configs.append(_tokenizer_identity(tokenizer))
    return layout_fingerprint(tensors, configs)


def layout_fingerprint(tensors: list[tuple[str, str, tuple[int, ...], Any]], configs: list[Any]) -> str:
    """The fingerprint of named tensors ``(name, torch dtype string, shape, raw bytes)`` in ``state_dict``
    order and the modules' configs: what :func:`model_fingerprint` hashes, so a backend that holds the same
    weights without torch (NumPy) can compute the same identity.

    >>> import numpy as np
    >>> layout_fingerprint([("0.w", "torch.float32", (2,), np.zeros(2, np.float32))], [["M", {}]])[:8]
    '9286af0d'
    """
    digest = hashlib.sha256()
    for name, dtype, shape, data in sorted(tensors, key=lambda t: t[0]):
        digest.update(f"{name}:{dtype}:{tuple(shape)}".encode())
        digest.update(data.tobytes() if getattr(data, "size", 1) else b"")
    digest.update(json.dumps(configs, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def tokenizer_identity(tokenizer: Any) -> Any:
    """What of a tokenizer enters a fingerprint (its full spec, without per-call truncation/padding)."""
    return _tokenizer_identity(tokenizer)


def _byte_dtype():
    import torch

    return torch.uint8


def derived_fingerprint(base: str, *parts: str) -> str:
    """A fingerprint for ``base`` changed by ``parts`` (e.g. a different max_seq_length).

    >>> derived_fingerprint("ab" * 16) == derived_fingerprint("ab" * 16, "max_seq_length=128")
    False
    """
    if not parts:
        return base
    return hashlib.sha256("\0".join((base, *parts)).encode()).hexdigest()[:32]


def file_fingerprint(*parts: Any, files: tuple[Any, ...] = ()) -> str:
    """Fingerprint of files' bytes (read in blocks) and JSON-able ``parts``."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in files:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:32]


def _tokenizer_identity(tokenizer: Any) -> Any:
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    to_str = getattr(backend, "to_str", None)
    if to_str is not None:
        spec = json.loads(to_str())
        # Truncation/padding are per-call settings the last encode left behind, not part of the model.
        spec.pop("truncation", None)
        spec.pop("padding", None)
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    vocab = getattr(tokenizer, "get_vocab", lambda: {})()
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()
