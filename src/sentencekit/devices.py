"""Device resolution: ``None`` picks the best available accelerator (CUDA, then MPS), else the CPU."""

from __future__ import annotations

import os

import torch


def default_device() -> str:
    if torch.cuda.is_available():
        rank = os.environ.get("LOCAL_RANK")
        return f"cuda:{rank}" if rank is not None and rank.isdigit() else "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device(default_device())
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Invalid device {device!r}: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available on this machine; "
                         "use device='cpu' (or leave device unset to pick the best available).")
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved
