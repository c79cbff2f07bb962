"""A multimodal (CLIP-style) ``SentenceTransformer`` on ONNX Runtime, without torch.

One graph per modality, exported once with torch by :mod:`sentencekit.engines.multimodal_export` and cached like
every export (:func:`sentencekit.engines.onnx_artifacts.locate`, one cache key per modality): texts run as in
:class:`~sentencekit.engines.onnx_engine.OnnxEngine` (the Rust tokenizer, token-length batches, the text tower's
graph); images are loaded (:func:`sentencekit.pipeline.modality.load_batch`), preprocessed in NumPy and Pillow
with the settings the export recorded (:class:`~sentencekit.engines.image_processor.ImageProcessor`) and run
through the vision tower's graph. Both graphs output ``sentence_embedding``; the export records the torch model's
fingerprint, so an index built on either backend opens on the other. float32 only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.image_processor import ImageProcessor
from sentencekit.engines.onnx_artifacts import export_variant, locate
from sentencekit.engines.onnx_engine import OnnxEngine, check_compute_dtype
from sentencekit.engines.onnx_session import make_session, read_metadata
from sentencekit.engines.protocol import EngineOptions, Tokenized
from sentencekit.pipeline.modality import load_batch
from sentencekit.spec.model_spec import ModelSpec


class MultimodalOnnxEngine(OnnxEngine):
    """The torch-free engine of a multimodal embedder (see the module docstring). The text tower is the
    inherited :class:`OnnxEngine` graph (tokenizer, length limit, prompts, fingerprint); the other modalities'
    graphs and processors are added here. Pickles as the paths it runs from."""

    def __init__(self, spec: ModelSpec, options: EngineOptions) -> None:
        if options.device is not None and str(options.device) != "cpu":
            raise ValueError(f"The ONNX backend runs on the CPU; got device={options.device!r}. Use backend='torch' "
                             "for GPUs.")
        if check_compute_dtype(options.compute_dtype) not in ("auto", "float32"):
            raise ValueError("Multimodal models run in float32 on the ONNX backend (int8 calibration scores texts "
                             "only); use compute_dtype='float32', or backend='torch'.")
        if (options.model_kwargs or {}).get("file_name"):
            raise ValueError("A multimodal model runs from one graph per modality, which sentencekit exports and "
                             "caches; model_kwargs={'file_name': ...} names one graph. Leave it out.")
        self.spec, self.family, self.compute_dtype = spec, "embedder", "float32"
        self.batch_tokens_per_text = 32  # as for text embedders (onnx_engine.py); images go batch_size at a time
        self.graphs: dict[str, Path] = {}
        exporter: Any = None

        def export(modality: str, target: Path) -> Path:
            nonlocal exporter
            if exporter is None:  # torch is imported only when a graph is missing
                from sentencekit.engines.multimodal_export import TowerExporter

                exporter = TowerExporter(spec, options)
            return exporter(modality, target)

        tokenizer_json = None
        for modality in spec.modalities:
            variant = export_variant(f"embedder:modality={modality}", options.torch_kwargs("embedder"))
            artifact = locate(spec.folder, variant, file_name=None, compute_dtype="float32",
                              export=lambda target, m=modality: export(m, target), calibration=None,
                              transformer_only=False)
            self.graphs[modality] = artifact.graph
            if modality == "text":
                tokenizer_json = artifact.tokenizer_json
        if tokenizer_json is None:
            raise ValueError(f"{spec.folder} takes {list(spec.modalities)}; the ONNX backend runs multimodal models "
                             "that also take text. Use backend='torch'.")
        self.graph, self.tokenizer_json = self.graphs["text"], tokenizer_json
        self._num_threads = options.num_threads
        self._open()

    def _open(self) -> None:
        super()._open()  # the text tower: session, metadata, tokenizer
        self._media_sessions: dict[str, Any] = {}
        self._processors: dict[str, ImageProcessor] = {}
        for modality, graph in self.graphs.items():
            if modality == "text":
                continue
            session = make_session(graph, self._num_threads)
            self._media_sessions[modality] = session
            self._processors[modality] = ImageProcessor.from_config(read_metadata(session)["image_processor"])

    def _reopen_sessions(self) -> None:  # a new num_threads: the text tower's session and each modality's
        super()._reopen_sessions()
        self._media_sessions = {m: make_session(self.graphs[m], self._num_threads) for m in self._media_sessions}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_media_sessions", None)  # reopened by _open from the paths
        return state

    # -- the pipeline's two steps ------------------------------------------------------------------------------
    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        if outputs not in ({"sentence_embedding"}, {"*"}):
            raise ValueError("This model has no token embeddings (it gives one embedding per text or image): use "
                             "output_value='sentence_embedding'.")
        if tokenized.modality == "text":
            features = {k: v for k, v in self._tokenizer.pad(tokenized, indices).items() if k in self._inputs}
            embedding = self._session.run(["sentence_embedding"], features)[0]
        else:
            session = self._media_sessions.get(tokenized.modality)
            if session is None:
                raise ValueError(f"This model encodes {', '.join(self.modalities)}, not {tokenized.modality}.")
            items = load_batch([tokenized.items[i] for i in indices], tokenized.modality)
            features = {"pixel_values": self._processors[tokenized.modality](items)}
            embedding = session.run(["sentence_embedding"], features)[0]
        return {"sentence_embedding": embedding, **(features if "*" in outputs else {})}

    # -- what the model reports -----------------------------------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.meta.get("modalities") or self.spec.modalities)

    @property
    def media_sessions(self) -> dict[str, Any]:
        """The ``onnxruntime.InferenceSession`` of each non-text modality (``session`` is the text tower's)."""
        return dict(self._media_sessions)

    def describe(self) -> str:
        graphs = ", ".join(f"{m}={p.name!r}" for m, p in self.graphs.items())
        return f"onnx ({graphs}), threads={self.num_threads}"


__all__ = ["MultimodalOnnxEngine"]
