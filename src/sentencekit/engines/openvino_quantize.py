"""int8 for ``backend="openvino"``: NNCF static post-training quantization (PTQ) of the float32 graph.

OpenVINO runs ONNX Runtime's dynamic-quantization graph (``DynamicQuantizeLinear`` / ``MatMulInteger``, see
:mod:`sentencekit.engines.onnx_quantize`) slowly, so the OpenVINO engine makes its own int8 model the way
sentence-transformers' ``export_static_quantized_openvino_model`` (optimum-intel) does: ``nncf.quantize``
(NNCF's PTQ: SmoothQuant, min-max statistics of every quantized activation on a calibration set, bias
correction) inserts static ``FakeQuantize`` ops that OpenVINO's CPU plugin turns into int8 kernels
(VNNI / AMX). The source is the float32 graph the ONNX engine exports and caches (the whole pipeline:
transformer, pooling, Dense, Normalize; a cross-encoder's logits; SPLADE with its pooling), read by
OpenVINO; calibration feeds are the tokenized calibration items (the ONNX engine's: ``calibration_texts`` /
``calibration_pairs``, else the bundled ones) in length-sorted padded batches of 8.

The result is an IR ``.xml`` + ``.bin`` carrying the float32 graph's ``sentencekit`` metadata plus a
``quantization`` report (method, settings, calibration items, cosine mean / min to float32 on them). NNCF
is needed only to make it: the IR loads with OpenVINO alone. ``ImportError`` (with the pip command) when
NNCF is missing; NNCF is imported lazily (about 2 s, and it imports torch) and with its telemetry off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.onnx_quantize import GraphRunner, output_cosines
from sentencekit.engines.openvino_session import (
    OpenVinoSession,
    model_metadata,
    read_model,
    require_openvino,
    save_ir,
    telemetry_hidden,
)

logger = logging.getLogger(__name__)

#: fewer calibration items than this draw a warning (static ranges from a handful of texts drift)
FEW_CALIBRATION_ITEMS = 100
#: rows per calibration batch (NNCF collects statistics per batch; 8 keeps padding low in length-sorted batches)
CALIBRATION_BATCH = 8


def require_nncf() -> Any:
    """The ``nncf`` module, imported with its usage telemetry off (NNCF sends a GA4 event per
    ``nncf.quantize`` through ``openvino_telemetry`` when that imports: :func:`telemetry_hidden` makes it
    fall back to its no-op stub; NNCF writes nothing else under ``~`` for OpenVINO models). ``ImportError``
    with the install command when it is missing."""
    if sys.modules.get("nncf") is not None:
        return sys.modules["nncf"]
    require_openvino()
    with telemetry_hidden():
        try:
            import nncf
        except ImportError as exc:
            raise ImportError("compute_dtype='int8' on backend='openvino' quantizes the model with NNCF (once; "
                              "the saved int8 model then loads without it): pip install 'sentencekit[openvino]' "
                              "(or pip install nncf).") from exc
    return nncf


def quantize_static(src: Path, dst: Path, runner: GraphRunner, items: list[Any], *, preset: str = "mixed",
                    fast_bias_correction: bool = True, smooth_quant_alpha: float | None = 0.7,
                    ignored_patterns: list[str] | None = None, batch_size: int = CALIBRATION_BATCH) -> dict[str, Any]:
    """Write the int8 OpenVINO IR of the float32 graph ``src`` (``.onnx`` or ``.xml``) to ``dst`` (``.xml``,
    its ``.bin`` beside it; both renamed from a temporary folder beside them, the ``.bin`` first, so an
    ``.xml`` that is there has its weights) and return
    the report stored in its ``sentencekit`` metadata under ``quantization``.

    NNCF PTQ (``nncf.quantize``, ``model_type=TRANSFORMER``) calibrated on ``items`` (texts, or pairs for a
    cross-encoder), tokenized by ``runner.tokenizer``; ``runner.output`` is the output compared with float32
    (``sentence_embedding`` ``[n, d]``, ``logits`` ``[n, 1]``). ``preset``: ``"mixed"`` (symmetric int8
    weights, asymmetric activations) or ``"performance"`` (both symmetric); ``fast_bias_correction``: NNCF's
    fast bias correction (``False``: the slower full one); ``smooth_quant_alpha``: SmoothQuant's alpha for
    MatMuls (``None`` or negative: off); ``ignored_patterns``: regular expressions of op names (as the
ONNX export names them, e.g. ``/transformer/encoder/layer.5/output/dense/MatMul``) left in float32.
    ``ImportError`` without NNCF.

    The defaults were chosen by measurement (``/tmp`` sweep scripts, not kept: they call this function with
    each setting) on all-MiniLM-L6-v2 calibrated on the 120 bundled texts, OpenVINO 2026.4.1, NNCF 3.4.0,
    AMD EPYC 2 vCPUs (AVX-512 VNNI), shared with other jobs; cosine to float32 on the 2 x 1379 STS-B test
    sentences (out of the calibration set), STS-B test Spearman (float32: 82.03), int8 speed / float32 speed
    on OpenVINO (best of 3 alternating rounds, batch 32; 512 short ~14-token texts / 96 ~230-token ones):

    ================================================  ===============  =====  ============  ============
    setting                                           cosine mean/min  STS-B  short x fp32  long x fp32
    ================================================  ===============  =====  ============  ============
    mixed, SmoothQuant 0.95 (NNCF's default)           0.9938 / 0.927  82.07        -             -
    mixed, SmoothQuant 0.85                            0.9962 / 0.943  82.00      2.71x         2.22x
    **mixed, SmoothQuant 0.7** (default)               0.9971 / 0.974  82.07      3.29x         2.30x
    mixed, SmoothQuant 0.5                             0.9918 / 0.966  81.83        -             -
    mixed, SmoothQuant off                             0.9917 / 0.959  81.65        -             -
    performance, SmoothQuant 0.8                       0.9959 / 0.958  81.89      2.55x         2.21x
    mixed, 0.95, full (not fast) bias correction       0.9880 / 0.878  81.99        -             -
    mixed, 0.8, FFN-out MatMuls float32                0.9987 / 0.976  82.02      1.78x         1.56x
    mixed, 0.8, attention-output MatMuls float32       0.9976 / 0.977  82.04      2.21x         2.06x
    ================================================  ===============  =====  ============  ============

    Keeping the most sensitive MatMuls (the FFN output ones) in float32 buys little accuracy for much speed,
    so nothing is ignored by default. Quantizing takes 8-15 s there (full bias correction: 43 s)."""
    nncf = require_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    if len(items) < FEW_CALIBRATION_ITEMS:
        # static int8 fixes every activation's range from these items; a handful leaves most ranges wrong
        # (all-MiniLM-L6-v2 calibrated on 3 texts: cosine to float32 0.935-0.961, against 0.994-0.999 on the 120
        # bundled ones), where ONNX Runtime's dynamic int8 measures ranges per batch and barely notices
        warnings.warn(f"OpenVINO int8 calibrates static activation ranges on only {len(items)} items; with fewer "
                      f"than {FEW_CALIBRATION_ITEMS} the embeddings may drift from float32 (cosine ~0.94 measured "
                      "with 3 texts). Give more texts like your inputs, or leave calibration_texts unset for the "
                      "bundled ones.", UserWarning, stacklevel=2)

    model = read_model(src)
    names = [port.get_any_name() for port in model.inputs]
    batches = [feeds for _, feeds, _ in runner.batches(items, names, batch_size)]
    alpha = -1.0 if smooth_quant_alpha is None else float(smooth_quant_alpha)
    advanced = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=alpha))
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)  # NNCF logs each algorithm step at INFO
    # NNCF's progress bars (rich) print to stdout, which a CLI command's output may be: show them on stderr
    try:
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(
                model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER,
                preset=nncf.QuantizationPreset(preset), subset_size=len(batches),
                fast_bias_correction=fast_bias_correction, advanced_parameters=advanced,
                ignored_scope=nncf.IgnoredScope(patterns=list(ignored_patterns), validate=False)
                if ignored_patterns else None)
    finally:
        nncf_logger.setLevel(level)
    metadata = model_metadata(model)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix=".ov-int8-", dir=dst.parent) as tmp:
        trial = save_ir(quantized, Path(tmp) / "trial.xml", metadata)
        # the report compares what OpenVINO will run: both graphs compiled as the engine compiles them
        on_openvino = dataclasses.replace(runner, open=OpenVinoSession)
        reference = on_openvino.run(Path(src), items)
        result = on_openvino.run(trial, items)
        cos = output_cosines(result, reference)
        report: dict[str, Any] = {
            "precision": "int8", "method": "nncf static post-training quantization", "nncf": nncf.__version__,
            "preset": preset, "fast_bias_correction": fast_bias_correction, "smooth_quant_alpha": alpha,
            "ignored_patterns": list(ignored_patterns or []), "calibration_items": len(items),
            "cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6)}
        if reference.reshape(len(reference), -1).shape[1] == 1:
            # one score per item (cross-encoders): a row's cosine is only its sign; compare the score columns
            report["score_cosine"] = round(float(output_cosines(result.T, reference.T)[0]), 6)
            report["score_max_abs_diff"] = round(float(np.abs(result - reference).max()), 6)
        final = save_ir(quantized, Path(tmp) / "final.xml", {**metadata, "quantization": report})
        os.replace(final.with_suffix(".bin"), dst.with_suffix(".bin"))  # weights first: an .xml found is whole
        os.replace(final, dst)
    logger.info("OpenVINO int8 (NNCF %s preset): calibration cosine mean %.4f, min %.4f", preset,
                report["cosine_mean"], report["cosine_min"])
    return report


__all__ = ["CALIBRATION_BATCH", "quantize_static", "require_nncf"]
