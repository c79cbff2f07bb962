"""Dynamic int8 quantization with a calibrated choice of what stays in float32.

ONNX Runtime's ``quantize_dynamic`` turns MatMul / Attention weights into int8 (per output channel) and
quantizes activations on the fly. Some parts of a network lose more than others, so on a calibration
set (the bundled sample queries and passages by default):

1. each unit (one role -- attention, attention output, feed-forward in / out -- of one layer) is
   quantized ALONE and the cosine of the embeddings to float32 measured (for multi-vector graphs the mean
   cosine of each text's real token vectors, see :class:`GraphRunner`): its sensitivity;
2. everything is quantized; then units are kept in float32, most sensitive per weight first, while the
   mean cosine is under ``target`` and the float32 share of the weights stays under ``max_float_share``
   (a unit is kept only if it helps).

The report (units kept, mean / min cosine, every trial) is stored in the graph's metadata.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.fast_tokenizer import FastTokenizer
from sentencekit.engines.onnx_session import make_session, read_metadata

logger = logging.getLogger(__name__)

QUANTIZED_OPS = ["MatMul", "Attention"]
_ROLES = (("attention", re.compile(r"^Attention|/attention/self/")),
          ("attention_output", re.compile(r"/attention/output/")),
          ("ffn_in", re.compile(r"/intermediate/")),
          ("ffn_out", re.compile(r"/layer\.\d+/output/|/ffn/lin2|/output_dense")),
          ("head", re.compile(r"^/(pooler|dense|classifier)|/classifier/|/dense\.\d+/|/pooler/")))
_LAYER = re.compile(r"layer[._](\d+)")


@dataclass
class GraphRunner:
    """Runs a graph on texts (or pairs) for calibration: tokenizer + the output to compare.

    ``per_token=False``: ``output`` has one row per item (``[b, dim]`` embeddings, ``[b, labels]`` logits);
    :meth:`run` returns them as one ``[n, ...]`` float32 array and :meth:`agreement` is each row's cosine.
    ``per_token=True``: ``output`` is ``[b, tokens, dim]`` (multi-vector graphs); :meth:`run` returns one
    ``[tokens_i, dim]`` float32 array per item, its real tokens only (those :meth:`calibration_batches` marks,
    the attention mask here: padding rows are never scored, and their values depend on the batch), and
    :meth:`agreement` is each item's mean per-token cosine, the drift late interaction (MaxSim over token
    vectors) sees.

    ``open(graph)`` makes the session (ONNX Runtime by default; the OpenVINO int8 path passes
    :class:`~sentencekit.engines.openvino_session.OpenVinoSession`, which runs IR ``.xml`` files too).
    """

    tokenizer: FastTokenizer
    output: str
    per_token: bool = False
    open: Callable[[Path], Any] = make_session

    @property
    def metric(self) -> str:
        """What :meth:`agreement` measures, for the report."""
        return "mean per-token cosine over real tokens" if self.per_token else "cosine"

    def calibration_batches(self, items: Sequence[Any], batch_size: int,
                ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """The calibration batches of ``items``: ``(positions in items [b] int64, padded features [b, w] int64,
        which tokens to compare [b, w] bool)``. Here every item is tokenized by :attr:`tokenizer` and compared
        over its attention mask; a subclass may tokenize items differently (multi-vector queries)."""
        for rows, feats in padded_batches(self.tokenizer, items, batch_size):
            yield rows, feats, feats["attention_mask"].astype(bool)

    def batches(self, items: Sequence[Any], names: Sequence[str], batch_size: int = 32,
                ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """:meth:`calibration_batches` as a graph with inputs ``names`` takes them: ``(positions [b], feeds,
        compared tokens [b, w] bool)``, ``feeds`` holding only the graph's inputs (and a 0-d ``prompt_length``
        where the graph takes one)."""
        for rows, feats, real in self.calibration_batches(items, batch_size):
            feeds = {k: v for k, v in feats.items() if k in names}
            if "prompt_length" in names:
                feeds["prompt_length"] = np.array(0, dtype=np.int64)
            yield rows, feeds, real

    def run(self, graph: Path, items: Sequence[Any], batch_size: int = 32) -> np.ndarray | list[np.ndarray]:
        """``output`` of ``graph`` for every item, in the order of ``items`` (see the class docstring)."""
        session = self.open(graph)
        names = [i.name for i in session.get_inputs()]
        positions: list[np.ndarray] = []
        outs: list[np.ndarray] = []
        for rows, feeds, real in self.batches(items, names, batch_size):
            out = session.run([self.output], feeds)[0]
            positions.append(rows)
            if self.per_token:
                outs.extend(np.asarray(row[keep], dtype=np.float32) for row, keep in zip(out, real))
            else:
                outs.append(out)
        inverse = np.argsort(np.concatenate(positions), kind="stable")
        if self.per_token:
            return [outs[i] for i in inverse]
        return np.concatenate(outs).astype(np.float32)[inverse]

    def agreement(self, got: np.ndarray | list[np.ndarray], reference: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """``[n]`` float: per item, how close ``got`` (a quantized graph's :meth:`run`) is to ``reference``
        (float32's) -- 1.0 is identical (see the class docstring for the measure)."""
        if not self.per_token:
            return output_cosines(got, reference)
        return np.array([output_cosines(a, b).mean() for a, b in zip(got, reference)], dtype=np.float64)


def padded_batches(tokenizer: FastTokenizer, items: Sequence[Any], batch_size: int,
                   ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """``items`` tokenized once and padded in batches of ``batch_size``, longest first (less padding):
    ``(positions in items [b] int64, input_ids / attention_mask / token_type_ids [b, w] int64)``."""
    enc = tokenizer.encode(list(items))
    order = np.argsort(-enc.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, tokenizer.pad(enc, rows)


def default_calibration_texts() -> list[str]:
    """Short queries and longer passages from the bundled sample corpus (no download)."""
    data = Path(__file__).resolve().parent.parent / "data"
    queries = [json.loads(line)["query"] for line in (data / "sample_queries.jsonl").read_text().splitlines()
               if line.strip()]
    docs = [json.loads(line) for line in (data / "sample_corpus.jsonl").read_text().splitlines() if line.strip()]
    return queries + [d["title"] for d in docs[:40]] + [d["text"] for d in docs[::4]]


def default_calibration_pairs() -> list[tuple[str, str]]:
    """96 (query, passage) pairs of the bundled texts, for cross-encoders."""
    texts = default_calibration_texts()
    queries, passages = texts[:30], texts[30:]
    return [(queries[i % len(queries)], passages[(i * 7) % len(passages)]) for i in range(96)]


def calibration_items(pairs: bool, items: Sequence[Any] | None = None) -> list[Any]:
    """What int8 calibrates on: ``items`` (``calibration_texts`` / ``calibration_pairs``) when given, else
    the bundled defaults (pairs for cross-encoders, texts for embedders and SPLADE)."""
    if items:
        return list(items)
    return default_calibration_pairs() if pairs else default_calibration_texts()


def output_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine of two outputs ``[n, ...]`` (``[n]``; for a cross-encoder's ``[n, 1]`` logits a row's
    cosine is only whether the signs agree)."""
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def node_units(graph: Any) -> dict[str, list[str]]:
    """Quantizable nodes grouped by layer and role (``layer3:ffn_out``); others stand alone."""
    units: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        role = next((r for r, pattern in _ROLES if pattern.search(node.name)), None)
        layer = _LAYER.search(node.name)
        if node.op_type == "Attention" and layer is None:  # fused Attention_<n> nodes are numbered per layer
            layer = re.search(r"_(\d+)$", node.name)
        key = f"layer{int(layer.group(1))}:{role}" if layer and role else f"node:{node.name}"
        units.setdefault(key, []).append(node.name)
    return units


def _weight_sizes(model: Any) -> dict[str, int]:
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    return {node.name: sum(sizes.get(i, 0) for i in node.input) for node in model.graph.node
            if node.op_type in QUANTIZED_OPS}


def quantize_file(src: Path, dst: Path, exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> None:
    """int8 weights (per channel), dynamic int8 activations; ``exclude`` nodes stay float32 (``only``:
    quantize just these nodes)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs a "consider pre-processing" warning on every call
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                         op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=list(exclude),
                         nodes_to_quantize=list(only) if only is not None else None,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def calibrate(src: Path, dst: Path, runner: GraphRunner, items: Sequence[Any], *, target: float = 0.995,
              max_float_share: float = 0.15) -> dict[str, Any]:
    """Quantize ``src`` to ``dst`` keeping the calibrated float32 units; returns the report."""
    import onnx

    from sentencekit.engines.onnx_export import set_metadata

    model = onnx.load(str(src))
    units = node_units(model.graph)
    sizes = _weight_sizes(model)
    total = max(1, sum(sizes.values()))
    share = {name: sum(sizes.get(n, 0) for n in nodes) / total for name, nodes in units.items()}
    from sentencekit.progress import step as progress

    reference = runner.run(src, items)
    # each trial quantizes the graph and runs the calibration set: one per unit, one all-int8, at most one
    # per unit kept in float32
    most_trials, done = 2 * len(units) + 1, [0]
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=Path(dst).parent) as tmp:
        trial = Path(tmp) / "trial.onnx"

        def score(exclude: Sequence[str] = (), only: Sequence[str] | None = None, step: int = 1) -> tuple[float, float]:
            done[0] += 1
            progress("calibrating int8: trial %d (of at most %d) on %d items", done[0], most_trials,
                     len(items[::step]))
            quantize_file(src, trial, exclude, only)
            cos = runner.agreement(runner.run(trial, items[::step]), reference[::step])
            return float(cos.mean()), float(cos.min())

        # one unit at a time on every third item (ranking only); the decisions use the whole set
        step = 3 if len(items) >= 60 else 1
        sensitivity = {name: 1.0 - score(only=nodes, step=step)[0] for name, nodes in units.items()}
        mean, low = score()
        trials: dict[str, list[float]] = {"all int8": [mean, low]}
        kept: list[str] = []
        for name in sorted(units, key=lambda u: sensitivity[u] / max(share[u], 1e-9), reverse=True):
            if mean >= target:
                break
            if sum(share[k] for k in kept) + share[name] > max_float_share:
                continue
            candidate = [n for k in [*kept, name] for n in units[k]]
            m, lo = score(exclude=candidate)
            trials[f"+ float32 {name}"] = [m, lo]
            if m > mean:
                kept, mean, low = [*kept, name], m, lo
        excluded = [n for k in kept for n in units[k]]
        report = {"precision": "int8", "metric": runner.metric, "float32_units": kept,
                  "float32_weight_share": round(sum(share[k] for k in kept), 4),
                  "calibration_items": len(items), "cosine_mean": round(mean, 6), "cosine_min": round(low, 6),
                  "target": target, "trials": {k: [round(v[0], 6), round(v[1], 6)] for k, v in trials.items()},
                  "sensitivity": {k: round(v, 6) for k, v in sorted(sensitivity.items(), key=lambda x: -x[1])}}
        quantize_file(src, trial, excluded)
        meta = {**read_metadata(make_session(src, 1)), "quantization": report}
        final = Path(tmp) / "final.onnx"
        set_metadata(trial, final, meta)
        final.replace(dst)
    logger.info("int8: kept %s in float32; calibration cosine mean %.4f, min %.4f", kept or "nothing",
                report["cosine_mean"], report["cosine_min"])
    return report
