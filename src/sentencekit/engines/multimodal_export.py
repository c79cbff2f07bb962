"""Export a multimodal (CLIP-style) embedder to one ONNX graph per modality (needs torch; once per model, then
cached by :mod:`sentencekit.engines.onnx_artifacts`): the text tower (``get_text_features`` on token ids) and
the vision tower (``get_image_features`` on ``pixel_values``), each output ``sentence_embedding``
``[b, projection_dim]`` (the method's ``pooler_output``, what the torch Transformer outputs), followed by
``Normalize`` when the model ends in one.

The text graph's tokenizer is saved beside it, as for every embedder export. The image graph records the image
processor's settings in its metadata, so the torch-free engine preprocesses with
:class:`~sentencekit.engines.image_processor.ImageProcessor` and needs neither transformers nor the processor
files; a processor it cannot reproduce is refused here, before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.engines.onnx_attention import export_attention
from sentencekit.engines.onnx_export import (
    UnsupportedModelError,
    _tokenizer_meta,
    _write,
    torch_model_for_export,
)
from sentencekit.engines.protocol import EngineOptions
from sentencekit.modules.transformer import position_limit
from sentencekit.spec.model_spec import ModelSpec

#: what each modality's graph takes
TOWER_INPUTS = {"text": ["input_ids", "attention_mask"], "image": ["pixel_values"]}


class TowerGraph(nn.Module):
    """One modality's method of a dual encoder (its ``modality_config`` entry) as a traceable module, plus
    ``Normalize`` when the model ends in one."""

    def __init__(self, transformer: Any, modality: str, normalize: bool) -> None:
        super().__init__()
        entry = transformer.modality_config[modality]
        self.model = transformer.auto_model
        self.method, self.field = entry["method"], entry["method_output_name"]
        params, self.takes_dict = transformer._method_params[self.method]
        self.names = [n for n in TOWER_INPUTS[modality] if n in params]
        self.normalize = normalize

    def forward(self, *inputs: Tensor) -> Tensor:
        kwargs = {"return_dict": True} if self.takes_dict else {}
        out = getattr(self.model, self.method)(**dict(zip(self.names, inputs)), **kwargs)
        value = out if isinstance(out, Tensor) else out[self.field]
        return nn.functional.normalize(value, p=2, dim=1) if self.normalize else value


def _check_pipeline(model: Any) -> tuple[Any, bool]:
    """``(the multimodal Transformer, whether a Normalize follows)``; ``UnsupportedModelError`` otherwise."""
    from sentencekit.modules import Normalize, Transformer

    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    if not modules or not isinstance(modules[0], Transformer) or not modules[0].is_multimodal or \
            modules[0].module_output_name != "sentence_embedding" or \
            any(not isinstance(m, Normalize) for m in modules[1:]) or len(modules) > 2:
        raise UnsupportedModelError(f"The ONNX backend exports multimodal models made of a Transformer that outputs "
                                    f"sentence embeddings per modality (CLIP), optionally then Normalize; this one is "
                                    f"{kinds}. Use backend='torch'.")
    return modules[0], len(modules) == 2


def _sample_inputs(transformer: Any, modality: str, names: list[str]) -> tuple[Tensor, ...]:
    if modality == "text":
        features = transformer.tokenize(["hello world", "a somewhat longer sentence for tracing"])
    else:
        from PIL import Image

        images = [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (40, 80), (10, 90, 200))]
        features = transformer.process_media(images, modality)
    return tuple(features[n] for n in names)


class TowerExporter:
    """Exports the towers of one model: the torch model is loaded on the first call and reused by the next
    (one load for both graphs). ``exporter(modality, target)`` writes that modality's graph to ``target``."""

    def __init__(self, spec: ModelSpec, options: EngineOptions) -> None:
        self.spec, self.options = spec, options
        self._model: Any = None

    def __call__(self, modality: str, target: Path) -> Path:
        from sentencekit.engines.image_processor import ImageProcessor

        if self._model is None:
            self._model = torch_model_for_export(self.spec, "embedder", self.options)
        model = self._model
        transformer, normalize = _check_pipeline(model)
        if modality not in transformer.modalities:
            raise UnsupportedModelError(f"This model encodes {transformer.modalities}, not {modality}.")
        graph = TowerGraph(transformer, modality, normalize).eval()
        names = graph.names
        args = _sample_inputs(transformer, modality, names)
        axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} if modality == "text" else {0: "batch"}
                                           for n in names}
        axes["sentence_embedding"] = {0: "batch"}
        meta: dict[str, Any] = {"source": str(self.spec.folder), "fingerprint": model.fingerprint(),
                                "kind": "embedder" if modality == "text" else f"embedder-{modality}",
                                "modality": modality, "modalities": list(transformer.modalities), "inputs": names,
                                "outputs": ["sentence_embedding"], "dim": int(model.engine.dimension() or 0),
                                "include_prompt": True}
        if modality == "text":
            meta.update(_tokenizer_meta(transformer), max_seq_length=transformer.max_seq_length,
                        do_lower_case=transformer.do_lower_case,
                        max_position_embeddings=position_limit(transformer.auto_model.config))
        else:  # refused here (before writing) when the NumPy preprocessing cannot reproduce the processor
            meta["image_processor"] = ImageProcessor.from_config(transformer.processors[modality].to_dict()).to_config()
        with export_attention(transformer.auto_model, fused=False), torch.no_grad():
            return _write(graph, args, target, names, ["sentence_embedding"], axes, meta,
                          transformer if modality == "text" else None)


__all__ = ["TowerGraph", "TowerExporter", "TOWER_INPUTS"]
