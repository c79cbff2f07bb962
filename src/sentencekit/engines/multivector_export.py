"""Export a torch ``MultiVectorEncoder`` to one ONNX graph (needs torch; once per model, then cached by
:mod:`sentencekit.engines.onnx_artifacts`): the transformer, then every token-level ``Dense`` and ``Normalize``
inside the graph, output ``token_embeddings`` ``[b, tokens, dim]``. What is left runs in NumPy on the
torch-free engine (:mod:`sentencekit.engines.multivector_onnx_engine`): query expansion (before the graph), the
``MultiVectorMask`` scoring mask and ``HierarchicalTokenPooling`` (after it). The settings those steps need
(lengths, the expansion and its token id, the skiplist's ids, the poolings' configs) are taken from the torch
model and stored in the graph's metadata, so both backends run the same settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from sentencekit.engines.onnx_export import UnsupportedModelError, _input_names, _sample_inputs, _write


def _token_level(module: Any) -> bool:
    return module.module_input_name == module.module_output_name == "token_embeddings"


class MultiVectorGraph(nn.Module):
    """Transformer -> token ``Dense`` / ``Normalize`` steps (in pipeline order) as one traceable module. The
    ``MultiVectorMask`` and trailing ``HierarchicalTokenPooling`` modules are recorded, not traced (NumPy runs
    them). Raises :class:`UnsupportedModelError` for other pipelines."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        from sentencekit.modules import Dense, HierarchicalTokenPooling, MultiVectorMask, Normalize, Transformer

        modules = list(model)
        kinds = [type(m).__name__ for m in modules]
        if not modules or not isinstance(modules[0], Transformer) or \
                modules[0].transformer_task != "feature-extraction":
            raise UnsupportedModelError(f"The ONNX backend exports multi-vector models that start with a Transformer; "
                                        f"this one is {kinds}. Use backend='torch'.")
        self.transformer = modules[0].auto_model
        self.steps = nn.ModuleList()
        self.masks: list[Any] = []
        self.poolings: list[Any] = []
        for module in modules[1:]:
            if self.poolings and not isinstance(module, HierarchicalTokenPooling):
                raise UnsupportedModelError(f"The ONNX backend runs token poolings last; this model has "
                                            f"{type(module).__name__} after one ({kinds}). Use backend='torch'.")
            if isinstance(module, (Dense, Normalize)) and _token_level(module):
                self.steps.append(module)
            elif isinstance(module, MultiVectorMask):
                self.masks.append(module)
            elif isinstance(module, HierarchicalTokenPooling):
                self.poolings.append(module)
            else:
                raise UnsupportedModelError(f"The ONNX backend cannot run {type(module).__name__} in a multi-vector "
                                            f"model ({kinds}); it runs token-level Dense and Normalize, "
                                            "MultiVectorMask and HierarchicalTokenPooling. Use backend='torch'.")
        if len(self.masks) > 1:
            raise UnsupportedModelError(f"The ONNX backend runs one MultiVectorMask; this model has {len(self.masks)}.")

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)[0]
        for step in self.steps:
            tokens = step({"token_embeddings": tokens})["token_embeddings"]
        return tokens

    def settings(self, transformer: Any) -> dict[str, Any]:
        """What the NumPy steps need (stored in the graph's metadata)."""
        mask = self.masks[0] if self.masks else None
        return {
            "query_length": transformer.query_length, "document_length": transformer.document_length,
            "query_expansion": transformer.query_expansion, "expansion_token_id": transformer.expansion_token_id,
            "mask": None if mask is None else {"skip_ids": list(mask.skip_ids),
                                               "skiplist_tasks": list(mask.skiplist_tasks),
                                               "keep_only_token_ids": mask.keep_only_token_ids},
            "poolings": [p.get_config_dict() for p in self.poolings],
        }


def export_multivector(model: Any, target: Path, meta: dict[str, Any]) -> Path:
    """Export a torch ``MultiVectorEncoder`` to ``target`` (atomically) and return it."""
    graph = MultiVectorGraph(model)
    transformer = model[0]
    names = _input_names(transformer)
    args = _sample_inputs(transformer, names, pairs=False)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["token_embeddings"] = {0: "batch", 1: "sequence"}
    config = transformer.auto_model.config
    meta = {**meta, "kind": "multivector", "inputs": names, "outputs": ["token_embeddings"],
            "dim": int(model.get_embedding_dimension() or 0), "max_seq_length": transformer.max_seq_length,
            "do_lower_case": transformer.do_lower_case,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None),
            "multivector": graph.settings(transformer)}
    return _write(graph, args, target, names, ["token_embeddings"], axes, meta, transformer)


__all__ = ["MultiVectorGraph", "export_multivector"]
