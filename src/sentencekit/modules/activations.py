"""Activation functions named by dotted path in saved configs, resolved without running arbitrary code.

``torch.nn.modules.activation.Tanh`` (what sentence-transformers writes) and ``torch.nn.Tanh`` resolve to
torch's own classes. Anything outside ``torch`` is imported only with ``trust_remote_code=True``.
"""

from __future__ import annotations

import importlib

from torch import nn


def activation_name(activation: object) -> str:
    """Dotted path saved in configs: the class of an ``nn.Module`` instance, else the function itself."""
    target = activation if not isinstance(activation, nn.Module) else type(activation)
    return f"{target.__module__}.{target.__qualname__}"


def resolve_activation(dotted: str | None, *, trust_remote_code: bool = False) -> nn.Module:
    if dotted is None or dotted in ("", "None"):
        return nn.Identity()
    if not isinstance(dotted, str) or "." not in dotted:
        raise ValueError(f"Activation function must be a dotted class path such as "
                         f"'torch.nn.modules.activation.Tanh', got {dotted!r}")
    module_name, _, class_name = dotted.rpartition(".")
    if not (module_name == "torch" or module_name.startswith("torch.")) and not trust_remote_code:
        raise ValueError(
            f"Refusing to import activation function {dotted!r}: only torch's own activations are "
            "resolved unless you pass trust_remote_code=True."
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Unknown activation function {dotted!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"Activation function {dotted!r} is not a torch.nn.Module class.")
    return cls()
