"""Which ONNX Runtime CPU attention kernel avoids the n x n score tensor, and what each costs: one attention
layer as a standalone graph (``onnx.helper``), peak memory and time per variant, each in a fresh process.

Inputs are ``q``, ``k``, ``v`` float32 ``[batch, n, heads * 64]`` (and an int64 key padding mask ``[batch, n]``
where the variant takes one); output ``[batch, n, heads * 64]``. Variants:

- ``matmul``: what sentencekit's export emits (eager attention): split heads, ``MatMul(q, k^T) * scale``
  + additive mask, ``Softmax``, ``MatMul(., v)``, merge heads (``--causal``: plus an ``[n, n]`` causal bias,
  as transformers' eager decoders build it);
- ``mha``: ``com.microsoft.MultiHeadAttention`` (``num_heads``; ``key_padding_mask`` int32 ``[batch, n]``;
  ``--causal``: ``unidirectional=1``). Its CPU kernel runs MLAS flash attention only with no key padding
  mask, no attention bias, no past / present, not unidirectional, float32, and an L2 cache size the OS
  reports (ORT ``contrib_ops/cpu/bert/multihead_attention.cc``; ``ORT_DISABLE_FLASH_ATTENTION=1`` turns
  it off); otherwise it computes the whole ``[batch, heads, n, n]`` probabilities once;
- ``gqa``: ``com.microsoft.GroupQueryAttention`` (always causal: decoders only; ``seqlens_k`` int32
  ``[batch]`` = valid length - 1, ``total_sequence_length`` int32 scalar);
- ``attention``: the standard ``Attention`` op (ONNX opset 23; ``attn_mask`` bool ``[batch, 1, 1, n]``,
  ``is_causal``; ORT's CPU kernel refuses a mask that broadcasts over queries, so ``[batch, 1, n, n]``).

"peak MiB" is what the run added to the process's resident high-water mark (``VmHWM`` after a reset
through ``/proc/self/clear_refs``, over the RSS before it), "ms" the best of ``--repeats`` runs;
"max|diff|" is the largest difference from ``matmul`` on the same inputs (masked rows included).

    nice /work/main/.venv/bin/python benchmarks/ort_attention_kernels.py --n 2048,8192 --heads 4
    nice /work/main/.venv/bin/python benchmarks/ort_attention_kernels.py --n 512,2048 --heads 16

Measured (2026-12-06, 2 AMD EPYC cores shared with other jobs, onnxruntime 1.32 CPU, 2 threads, one row,
4 heads of 64, best of 3; ``--n 512,2048,8192 --heads 4 --cases encoder,encoder-mask,causal-mask``; the mask
input all ones; times move +-2x with the machine's load, memory does not):

    case          n     matmul           mha              gqa              attention (opset 23)
    encoder       2048    15 ms  144 MiB   12 ms   11 MiB   -                 15 ms  134 MiB
    encoder       8192   237 ms 2177 MiB  179 ms   43 MiB   -                267 ms 2120 MiB
    encoder-mask  2048    16 ms  138 MiB   15 ms   78 MiB   -                 19 ms  140 MiB
    encoder-mask  8192   278 ms 3185 MiB  264 ms 1137 MiB   -                372 ms 2196 MiB
    causal-mask    512     1 ms   15 MiB    1 ms    8 MiB    1 ms    4 MiB     1 ms    7 MiB
    causal-mask   2048    26 ms  165 MiB   19 ms   95 MiB   11 ms   15 MiB    21 ms  140 MiB
    causal-mask   8192   422 ms 2640 MiB  305 ms 1641 MiB  149 ms   59 MiB   696 ms 2196 MiB

With 16 heads at n = 2048: causal-mask 1089 / 338 / 58 / 308 MiB. Outputs agree to 1e-6. So: MultiHeadAttention
avoids the n x n tensors only on its flash path (no mask input, not causal: ``encoder``); with a key padding
mask or causality it keeps one ``[b, heads, n, n]`` buffer. ONNX Runtime 1.32's CPU ``Attention`` (opset 23)
materialises it as the MatMul pattern does (and wants a ``[b, 1, n, n]`` mask). GroupQueryAttention (causal,
padding by ``seqlens_k``) stays flat in memory and is the fastest from 2k on: what
``sentencekit.engines.onnx_attention`` exports for decoders. Encoders keep MatMul + Softmax: their batches
carry a padding mask, and at MiniLM's ~230 tokens the fused MultiHeadAttention graph was slower end to end
(``benchmarks/onnx_profile.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HEAD_DIM = 64
VARIANTS = ("matmul", "mha", "gqa", "attention")


def build(variant: str, heads: int, causal: bool, masked: bool, path: Path) -> None:
    """Write the one-layer graph of ``variant`` to ``path``. Raises ``ValueError`` for a combination the op
    cannot express (``gqa`` is causal only)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    hidden = heads * HEAD_DIM
    scale = 1.0 / HEAD_DIM ** 0.5
    nodes: list = []
    inits: list = []
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["b", "n", hidden]) for x in "qkv"]
    if masked:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "n"]))
    opsets = [helper.make_opsetid("", 23), helper.make_opsetid("com.microsoft", 1)]

    def const(name: str, value) -> str:
        inits.append(onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    if variant == "matmul":
        const("heads_shape", np.array([0, 0, heads, HEAD_DIM], np.int64))
        const("merge_shape", np.array([0, 0, hidden], np.int64))
        nodes += [helper.make_node("Reshape", [x, "heads_shape"], [x + "4"]) for x in "qkv"]
        nodes += [helper.make_node("Transpose", ["q4"], ["qt"], perm=[0, 2, 1, 3]),
                  helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
                  helper.make_node("Transpose", ["v4"], ["vt"], perm=[0, 2, 1, 3]),
                  helper.make_node("MatMul", ["qt", "kt"], ["qk"]),
                  helper.make_node("Mul", ["qk", const("scale", np.float32(scale))], ["scores0"])]
        last = "scores0"
        if masked:  # transformers' additive key mask: (1 - mask) * min, [b, 1, 1, n]
            nodes += [helper.make_node("Unsqueeze", ["mask", const("axes12", np.array([1, 2], np.int64))], ["m4"]),
                      helper.make_node("Cast", ["m4"], ["mf"], to=TensorProto.FLOAT),
                      helper.make_node("Sub", [const("one", np.float32(1)), "mf"], ["inv"]),
                      helper.make_node("Mul", ["inv", const("fmin", np.float32(np.finfo(np.float32).min))],
                                       ["bias"]),
                      helper.make_node("Add", [last, "bias"], ["scores1"])]
            last = "scores1"
        if causal:  # an [n, n] upper-triangular bias built from the runtime length, as eager decoders do
            nodes += [helper.make_node("Shape", ["q"], ["qshape"], start=1, end=2),
                      helper.make_node("ConstantOfShape", ["qshape"], ["ones_n"],
                                       value=helper.make_tensor("o", TensorProto.FLOAT, [1], [1.0])),
                      helper.make_node("Unsqueeze", ["ones_n", const("axes0", np.array([0], np.int64))], ["row"]),
                      helper.make_node("Unsqueeze", ["ones_n", const("axes1", np.array([1], np.int64))], ["col"]),
                      helper.make_node("Mul", ["col", "row"], ["square"]),
                      helper.make_node("Trilu", ["square", const("k1", np.int64(1))], ["upper"], upper=1),
                      helper.make_node("Mul", ["upper", const("cmin", np.float32(np.finfo(np.float32).min))],
                                       ["cbias"]),
                      helper.make_node("Add", [last, "cbias"], ["scores2"])]
            last = "scores2"
        nodes += [helper.make_node("Softmax", [last], ["probs"], axis=-1),
                  helper.make_node("MatMul", ["probs", "vt"], ["ctx"]),
                  helper.make_node("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["ctxt", "merge_shape"], ["out"])]
    elif variant == "mha":
        ins = ["q", "k", "v"]
        if masked:
            nodes.append(helper.make_node("Cast", ["mask"], ["mask32"], to=TensorProto.INT32))
            ins += ["", "mask32"]
        nodes.append(helper.make_node("MultiHeadAttention", ins, ["out"], domain="com.microsoft", num_heads=heads,
                                      unidirectional=int(causal)))
    elif variant == "gqa":
        if not causal:
            raise ValueError("GroupQueryAttention is causal only")
        if masked:  # seqlens_k: each row's valid length - 1 (right padding)
            nodes += [helper.make_node("ReduceSum", ["mask", const("ax1", np.array([1], np.int64))], ["len"],
                                       keepdims=0),
                      helper.make_node("Sub", ["len", const("i1", np.int64(1))], ["len1"]),
                      helper.make_node("Cast", ["len1"], ["seqlens_k"], to=TensorProto.INT32)]
        else:
            nodes += [helper.make_node("Shape", ["q"], ["bshape"], start=0, end=1),
                      helper.make_node("Shape", ["q"], ["nshape"], start=1, end=2),
                      helper.make_node("Sub", ["nshape", const("i1", np.int64(1))], ["n1"]),
                      helper.make_node("Expand", ["n1", "bshape"], ["len1"]),
                      helper.make_node("Cast", ["len1"], ["seqlens_k"], to=TensorProto.INT32)]
        nodes += [helper.make_node("Shape", ["q"], ["tshape"], start=1, end=2),
                  helper.make_node("Squeeze", ["tshape"], ["t64"]),
                  helper.make_node("Cast", ["t64"], ["total"], to=TensorProto.INT32),
                  helper.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "seqlens_k", "total"],
                                   ["out", "pk", "pv"], domain="com.microsoft", num_heads=heads,
                                   kv_num_heads=heads)]
    elif variant == "attention":
        ins = ["q", "k", "v"]
        if masked:
            # ORT's CPU kernel wants the mask's query axis to be n (no broadcast over queries): [b, 1, n, n]
            nodes += [helper.make_node("Unsqueeze", ["mask", const("axes12", np.array([1, 2], np.int64))], ["m4"]),
                      helper.make_node("Cast", ["m4"], ["mb"], to=TensorProto.BOOL),
                      helper.make_node("Shape", ["q"], ["nshape"], start=1, end=2),
                      helper.make_node("Concat", [const("ones2", np.array([1, 1], np.int64)), "nshape",
                                                  const("one1", np.array([1], np.int64))], ["mshape"], axis=0),
                      helper.make_node("Expand", ["mb", "mshape"], ["mbool"])]
            ins.append("mbool")
        nodes.append(helper.make_node("Attention", ins, ["out"], q_num_heads=heads, kv_num_heads=heads,
                                      is_causal=int(causal)))
    else:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "n", hidden])
    graph = helper.make_graph(nodes, variant, inputs, [output], inits)
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=10), str(path))


#: runs in a fresh interpreter: one session, warm-up, reset the high-water mark, time
WORKER = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
path, n, hidden, batch, pad, masked, threads, repeats, out_file = sys.argv[1:10]
n, hidden, batch, pad, threads, repeats = int(n), int(hidden), int(batch), int(pad), int(threads), int(repeats)
rng = np.random.default_rng(0)
feeds = {x: rng.standard_normal((batch, n, hidden), dtype=np.float32) for x in "qkv"}
if masked == "1":
    mask = np.ones((batch, n), np.int64)
    if pad:
        mask[-1, n - pad:] = 0  # right padding on the last row
    feeds["mask"] = mask
opts = ort.SessionOptions()
opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))
small = {k: (v[:1, :16] if k != "mask" else v[:1, :16]) for k, v in feeds.items()}
sess.run(None, small)
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    out = sess.run(None, feeds)[0]
    best = min(best, time.perf_counter() - t0)
peak = status("VmHWM") - before
np.save(out_file, out)
print(json.dumps({"ms": best * 1000, "peak_mib": peak / 1024}))
"""


def measure(variant: str, n: int, heads: int, batch: int, pad: int, causal: bool, masked: bool, threads: int,
            repeats: int, tmp: Path) -> dict:
    """One variant in a fresh process: ``{"ms", "peak_mib", "out"}`` or ``{"error"}``."""
    path = tmp / f"{variant}.onnx"
    try:
        build(variant, heads, causal, masked, path)
    except ValueError as error:
        return {"error": str(error)}
    out_file = tmp / f"{variant}.npy"
    proc = subprocess.run([sys.executable, "-c", WORKER, str(path), str(n), str(heads * HEAD_DIM), str(batch),
                           str(pad), "1" if masked else "0", str(threads), str(repeats), str(out_file)],
                          capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "out": out_file}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="2048,8192", help="sequence lengths, comma-separated")
    parser.add_argument("--heads", default="4", help="head counts (head dim 64), comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--pad", type=int, default=0, help="padding tokens on the last row (masked cases)")
    parser.add_argument("--cases", default="encoder,encoder-mask,causal,causal-mask",
                        help="encoder / causal, with or without a key padding mask input")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import numpy as np

    print(f"{'case':13} {'n':>5} {'heads':>5} {'variant':10} {'ms':>9} {'peak MiB':>9} {'max|diff|':>9}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for case in args.cases.split(","):
            causal, masked = case.startswith("causal"), case.endswith("-mask")
            for n in map(int, args.n.split(",")):
                for heads in map(int, args.heads.split(",")):
                    reference = None
                    for variant in args.variants.split(","):
                        r = measure(variant, n, heads, args.batch, args.pad, causal, masked, args.threads,
                                    args.repeats, tmp)
                        if "error" in r:
                            print(f"{case:13} {n:5} {heads:5} {variant:10} {r['error']}", flush=True)
                            continue
                        out = np.load(r["out"])
                        if variant == "matmul":
                            reference = out
                        diff = float(np.abs(out - reference).max()) if reference is not None else float("nan")
                        print(f"{case:13} {n:5} {heads:5} {variant:10} {r['ms']:9.1f} {r['peak_mib']:9.0f} "
                              f"{diff:9.1e}", flush=True)


if __name__ == "__main__":
    main()
