"""How a model travels to another process (a pool worker or a Ray actor): as itself, pickled.

- On the torch engine the model is pickled with its weights, so a model that exists only in memory
  (fine-tuned, modules built by hand, prompts changed) reaches the workers exactly as it is. For pool
  workers its tensors are first moved to shared memory (``share_memory()``), so N workers map the
  parent's weights instead of copying them through a pipe.
- The ONNX Runtime engine pickles as the graph and tokenizer paths it runs from, and each worker opens its
  own session; the NumPy static engine pickles its table.
"""

from __future__ import annotations

from typing import Any


def is_torch_model(model: Any) -> bool:
    """Whether ``model`` runs on the torch engine (its weights can be shared and moved to devices)."""
    return getattr(getattr(model, "engine", None), "backend", None) == "torch"


def portable_model(model: Any) -> Any:
    """What to send to another process for ``model``: the model itself (every engine pickles)."""
    return model


def materialize(payload: Any, *, device: str | None, num_threads: int | None) -> Any:
    """The model a worker uses: the unpickled model, moved to ``device`` (torch) with its CPU threads set."""
    model = payload
    if device is not None and is_torch_model(model) and str(model.device) != str(device):
        model.to(device)
    if num_threads:
        model.num_threads = num_threads
    return model
