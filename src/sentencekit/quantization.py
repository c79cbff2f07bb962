"""Embedding quantization: int8 / uint8 (per-dimension calibrated buckets) and binary / ubinary (sign
bits packed 8 to a byte), with sentence-transformers' exact formulas so stored vectors interoperate.

>>> import numpy as np
>>> quantize_embeddings(np.array([[0.5, -0.5, 1.0, -1.0, 0.1, 0.2, -0.3, 0.4]]), "ubinary")
array([[173]], dtype=uint8)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}.")
    return precision


def _as_numpy(embeddings: Any) -> np.ndarray:
    if isinstance(embeddings, np.ndarray):
        return embeddings
    try:
        import torch

        if isinstance(embeddings, torch.Tensor):
            return embeddings.detach().float().cpu().numpy()
        if isinstance(embeddings, list) and embeddings and isinstance(embeddings[0], torch.Tensor):
            return torch.stack(embeddings).detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(embeddings)


def quantize_embeddings(
    embeddings: Any,
    precision: str,
    ranges: np.ndarray | None = None,
    calibration_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Quantize float embeddings ``[n, dim]`` (or one embedding ``[dim]``) to ``precision``.

    int8/uint8 map each dimension's ``[min, max]`` (from ``ranges`` ``[2, dim]``, else
    ``calibration_embeddings``, else these embeddings themselves) onto 256 buckets; binary/ubinary keep the
    sign bit, packed 8 to a byte.

    Returns ``[n, dim]`` (float32 / int8 / uint8) or ``[n, ceil(dim / 8)]`` (binary: int8, ubinary: uint8);
    a 1-D input ``[dim]`` gives a 1-D result (``[dim]`` or ``[ceil(dim / 8)]``), as
    ``encode("one text", precision=...)`` returns and as sentence-transformers does where it accepts 1-D.
    Inputs: NumPy arrays, torch tensors, lists of floats or of tensors.

    Raises ``ValueError`` for an unknown precision, an input that is not 1-D or 2-D, or int8/uint8 of a
    single embedding without ``ranges`` / ``calibration_embeddings``; ``TypeError`` for int8/uint8 input.
    """
    check_precision(precision)
    emb = _as_numpy(embeddings)
    if emb.dtype in (np.int8, np.uint8):
        raise TypeError("Embeddings to quantize must be floats, not already quantized int8/uint8 values.")
    if emb.ndim not in (1, 2):
        raise ValueError(f"Expected embeddings of shape [n, dim] or [dim], got shape {emb.shape}.")
    if emb.ndim == 1:
        # One embedding: quantized as a row of one, then given back 1-D.
        return _quantize_rows(emb[None, :], precision, ranges, calibration_embeddings)[0]
    return _quantize_rows(emb, precision, ranges, calibration_embeddings)


def _quantize_rows(emb: np.ndarray, precision: str, ranges: np.ndarray | None,
                   calibration_embeddings: np.ndarray | None) -> np.ndarray:
    """:func:`quantize_embeddings` of a 2-D float array ``[n, dim]``."""
    if precision == "float32":
        return emb.astype(np.float32)
    if precision in ("int8", "uint8"):
        if ranges is None:
            if calibration_embeddings is not None:
                calib = _as_numpy(calibration_embeddings)
            elif emb.shape[0] == 1:
                raise ValueError(
                    f"Cannot compute {precision} quantization ranges from a single embedding: pass `ranges` or "
                    "`calibration_embeddings` computed from a representative set of embeddings."
                )
            else:
                if emb.shape[0] < 100:
                    logger.warning(
                        "Computing %s quantization buckets from only %d embeddings; pass "
                        "calibration_embeddings (or ranges) from a larger set for stable buckets.",
                        precision, emb.shape[0],
                    )
                calib = emb
            ranges = np.vstack((calib.min(axis=0), calib.max(axis=0)))
        ranges = np.asarray(ranges, dtype=np.float32)
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1.0, steps)  # a constant dimension maps to bucket 0, not NaN
        # Bucket index rounded down, as sentence-transformers v6 does (v5 truncated after the -128 shift).
        buckets = np.clip(np.floor((emb - starts) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    bits = np.packbits(emb > 0, axis=-1)
    if precision == "ubinary":
        return bits
    return (bits.astype(np.int16) - 128).astype(np.int8)
