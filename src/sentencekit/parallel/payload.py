"""How a model travels to another process (a pool worker or a Ray actor).

- A torch model (``SentenceTransformer`` / ``CrossEncoder``) travels as itself: it is pickled with its
  weights, so a model that exists only in memory (fine-tuned, modules built by hand, prompts changed)
  reaches the workers exactly as it is. For pool workers its tensors are first moved to shared memory
  (``share_memory()``), so N workers map the parent's weights instead of copying them through a pipe.
- An ONNX Runtime model (``backend="onnx"``) cannot be pickled (its session is native): it travels as
  a :class:`ModelSpec`, the resolved model folder plus the settings it was loaded with, and each worker
  opens its own session from that folder.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

# Plain attributes of an ONNX model that users change after loading and that workers must share.
_ONNX_ATTRIBUTES = ("prompts", "default_prompt_name", "_similarity_fn_name", "truncate_dim", "activation_fn",
                    "batch_tokens_per_text")


def is_torch_model(model: Any) -> bool:
    return hasattr(model, "share_memory") and hasattr(model, "state_dict")


@dataclass
class ModelSpec:
    """A recipe that rebuilds a model from its folder in another process."""

    cls: type
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    max_seq_length: int | None = None

    def build(self, num_threads: int | None = None) -> Any:
        kwargs = dict(self.kwargs)
        if num_threads:
            kwargs["num_threads"] = num_threads
        model = self.cls(self.path, **kwargs)
        for name, value in self.attributes.items():
            setattr(model, name, value)
        if self.max_seq_length is not None and model.max_seq_length != self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        return model


def onnx_spec(model: Any) -> ModelSpec:
    """The :class:`ModelSpec` of a loaded ONNX model: its resolved folder (never the Hub name, so workers
    need no network) and its compute dtype, prompts and other plain settings."""
    folder = getattr(model, "model_folder", None) or getattr(model, "model_name_or_path", None)
    if folder is None:
        raise ValueError(f"{type(model).__name__} has no model folder to reload in worker processes.")
    attributes = {}
    for name in _ONNX_ATTRIBUTES:
        if name in vars(model):
            value = getattr(model, name)
            try:
                pickle.dumps(value)
            except Exception:  # e.g. a lambda activation: workers keep the model's own
                continue
            attributes[name] = value
    return ModelSpec(type(model), str(folder), {"compute_dtype": getattr(model, "compute_dtype", None),
                                                 "local_files_only": True},
                     attributes, getattr(model, "max_seq_length", None))


def portable_model(model: Any) -> Any:
    """What to send to another process for ``model``: the model itself (torch) or a :class:`ModelSpec`."""
    return model if is_torch_model(model) else onnx_spec(model)


def materialize(payload: Any, *, device: str | None, num_threads: int | None) -> Any:
    """The model a worker uses: built from a spec, or the unpickled torch model moved to ``device`` with
    its intra-op threads set."""
    if isinstance(payload, ModelSpec):
        return payload.build(num_threads)
    model = payload
    if device is not None and str(model.device) != str(device):
        model.to(device)
    if num_threads:
        model.num_threads = num_threads
    return model
