"""How attention is traced into an exported ONNX graph (needs torch; export time only).

Plain (``eager``): MatMul + Softmax, the graph every runtime reads. ONNX Runtime then materialises each
layer's ``[batch, heads, n, n]`` scores and probabilities, and transformers' eager decoders add a
``[batch, 1, n, n]`` float causal mask on top.

Fused (causal self-attention over a padding mask: Qwen2/3, Llama, Gemma; not with a sliding window, as
Mistral's config has, nor softcapping: those refuse and export plain): each layer's attention becomes one
``com.microsoft.GroupQueryAttention`` node (ONNX Runtime contrib op, CPU kernel): causal, keys limited per
row by ``seqlens_k`` (valid length - 1), K/V heads shared as grouped query attention; no ``[b, 1, n, n]`` mask
is built either. Its CPU kernel never holds the n x n matrices of all heads at once: one attention layer of
an 8k row, 4 heads, takes 59 MiB instead of 2,640 and runs ~2.8x faster (``benchmarks/ort_attention_kernels.py``);
a whole 8k-token Qwen3 embedder row 116 MiB over the loaded model instead of 3,039 (``benchmarks/long_context.py``).
The op masks keys after each row's length only, so a graph exported this way records ``"right_padding": true``
in its metadata and the ONNX engine pads its batches on the right whatever the tokenizer's side (RoPE scores
depend on relative positions only, so rows match a left-padded torch run to float rounding; with absolute
positions each row is the text's unpadded result).

Encoders (BERT & co.) keep the plain graph: ``com.microsoft.MultiHeadAttention``'s CPU flash path runs only
without a key padding mask, and with one it was no faster at MiniLM's ~230 tokens. OpenVINO's ONNX reader
has no ``GroupQueryAttention``: its exports stay plain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

#: the name this module registers with transformers' attention and mask interfaces
FUSED_ATTENTION = "sentencekit_ort_gqa"


class FusedAttentionRefused(RuntimeError):
    """A layer's attention is not plain causal attention over a padding mask (bidirectional, sliding window,
    softcapping, a custom mask pattern, ...): the export falls back to the plain graph."""


class _GroupQueryAttention(torch.autograd.Function):
    """Causal grouped-query attention, exported as ONNX Runtime's ``com.microsoft.GroupQueryAttention``.

    Inputs: ``query`` float ``[b, n, heads * d]``, ``key`` / ``value`` float ``[b, n, kv_heads * d]``,
    ``seqlens_k`` int32 ``[b]`` (each row's valid length - 1; keys after it are padding), ``total_length``
    int32 scalar (``n``). Output ``[b, n, heads * d]``. The torch forward runs only while tracing: its values
    are the eager arithmetic with right padding, so the traced graph's shapes and a check against it hold.
    Source: ORT ``docs/ContribOperators.md`` (com.microsoft.GroupQueryAttention, version 1)."""

    @staticmethod
    def forward(ctx: Any, query: Tensor, key: Tensor, value: Tensor, seqlens_k: Tensor, total_length: Tensor,
                num_heads: int, kv_num_heads: int, scale: float) -> Tensor:
        b, n, _ = query.shape
        d = query.shape[-1] // num_heads
        q = query.view(b, n, num_heads, d).transpose(1, 2)
        k = key.view(b, n, kv_num_heads, d).transpose(1, 2).repeat_interleave(num_heads // kv_num_heads, dim=1)
        v = value.view(b, n, kv_num_heads, d).transpose(1, 2).repeat_interleave(num_heads // kv_num_heads, dim=1)
        positions = torch.arange(n, device=query.device)
        allowed = (positions[None, :] <= positions[:, None])[None] & \
            (positions[None, None, :] <= seqlens_k.to(torch.int64)[:, None, None])
        scores = (q @ k.transpose(-1, -2)) * scale
        scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, num_heads * d)

    @staticmethod
    def symbolic(g: Any, query: Any, key: Any, value: Any, seqlens_k: Any, total_length: Any, num_heads: int,
                 kv_num_heads: int, scale: float) -> Any:
        none = g.op("prim::Constant")  # an omitted optional input (no past key / value)
        none.setType(torch._C.OptionalType.ofTensor())
        # present_key / present_value are required outputs of the op; nothing reads them
        output, _, _ = g.op("com.microsoft::GroupQueryAttention", query, key, value, none, none, seqlens_k,
                            total_length, num_heads_i=num_heads, kv_num_heads_i=kv_num_heads, scale_f=scale,
                            outputs=3)
        return output


def _fused_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                     scaling: float | None = None, dropout: float = 0.0, sliding_window: int | None = None,
                     softcap: float | None = None, **kwargs: Any) -> tuple[Tensor, None]:
    """transformers' attention-function signature: ``query`` ``[b, heads, n, d]``, ``key`` / ``value``
    ``[b, kv_heads, n, d]`` (RoPE applied), ``attention_mask`` the 2-D ``[b, n]`` padding mask (1 = token;
    :func:`_padding_mask`). Returns ``([b, n, heads, d], None)`` like eager attention. Raises
    :class:`FusedAttentionRefused` for anything but plain causal self-attention."""
    if not getattr(module, "is_causal", False) or sliding_window or softcap or dropout or \
            attention_mask is None or attention_mask.dim() != 2 or query.shape[-2] != key.shape[-2]:
        raise FusedAttentionRefused(f"{type(module).__name__} is not plain causal self-attention")
    b, _, n, _ = query.shape  # traced sizes: the graph keeps batch and length dynamic
    # op attributes must be Python numbers; sizes read while tracing are traced values
    heads, kv_heads, d = int(query.shape[1]), int(key.shape[1]), int(query.shape[3])
    mask = attention_mask.to(torch.int32)
    seqlens_k = mask.sum(-1, dtype=torch.int32) - 1
    total_length = torch.ones_like(mask[0]).sum(dtype=torch.int32)  # n, traced from the input's shape
    scale = float(scaling) if scaling is not None else d ** -0.5
    out = _GroupQueryAttention.apply(query.transpose(1, 2).reshape(b, n, -1),
                                     key.transpose(1, 2).reshape(b, n, -1),
                                     value.transpose(1, 2).reshape(b, n, -1),
                                     seqlens_k, total_length, heads, kv_heads, scale)
    return out.view(b, n, heads, d), None  # eager's layout: [b, n, heads, d]


def _padding_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
                  mask_function: Any = None, attention_mask: Tensor | None = None, **kwargs: Any) -> Tensor | None:
    """transformers' mask-function signature: the 2-D padding mask as it came (GroupQueryAttention applies
    causality itself), so no ``[b, 1, n, n]`` mask is built. Raises :class:`FusedAttentionRefused` for any
    pattern but the plain causal one (sliding window, packed sequences, bidirectional overlays)."""
    from transformers.masking_utils import causal_mask_function

    if mask_function is not causal_mask_function or q_offset or kv_offset or q_length != kv_length:
        raise FusedAttentionRefused("not a plain causal mask")
    return attention_mask


def _register_fused_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(FUSED_ATTENTION, _fused_attention)
    AttentionMaskInterface.register(FUSED_ATTENTION, _padding_mask)


@contextlib.contextmanager
def export_attention(auto_model: nn.Module | None, fused: bool) -> Iterator[str | None]:
    """Trace ``auto_model``'s attention as :data:`FUSED_ATTENTION` (``fused``, where the model takes it) or
    eager; the model's setting is restored afterwards. Yields the implementation set (``None``: left as is).

    Eager rather than sdpa for the plain graph: the sdpa path exports extra NaN guards (more nodes, a little
    slower in ONNX Runtime); same arithmetic."""
    setter = getattr(auto_model, "set_attn_implementation", None)
    before = getattr(getattr(auto_model, "config", None), "_attn_implementation", None)
    if setter is None or before is None:
        yield None
        return
    # only causal attention can take GroupQueryAttention: an encoder is traced once, plain
    fused = fused and any(getattr(m, "is_causal", False) is True for m in auto_model.modules())
    chosen = None
    for name in ((FUSED_ATTENTION, "eager") if fused else ("eager",)):
        if name == FUSED_ATTENTION:
            _register_fused_attention()
        try:
            setter(name)
        except Exception:  # the architecture has no such path (e.g. no attention interface): try the next
            continue
        chosen = name
        break
    try:
        yield chosen
    finally:
        if chosen is not None and chosen != before:
            setter(before)
