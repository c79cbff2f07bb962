"""sentence-transformers' ``CLIPModel`` module: what v5 saved CLIP models as (``modules.json`` type
``sentence_transformers.models.CLIPModel``, the weights in ``0_CLIPModel/``), kept by 6.2 as a deprecated
:class:`~sentencekit.modules.transformer.Transformer` subclass. Here too it is a Transformer with CLIP's
``modality_config`` (texts through ``get_text_features``, images through ``get_image_features``, their
``pooler_output`` as ``sentence_embedding``; CLIP: Radford et al. 2021), saved under 6.2's type string for it,
as 6.2 re-saves a v5 CLIP folder (the module moves to the root).

>>> from sentencekit.models import CLIPModel                         # doctest: +SKIP
>>> model = SentenceTransformer(modules=[CLIPModel("path/to/clip")])   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from sentencekit.modules.transformer import Transformer
from sentencekit.spec.model_spec import DUAL_ENCODER_MODALITY_CONFIG

#: sentence-transformers 6.2's type string of its deprecated CLIPModel class
ST6_CLIP_TYPE = "sentence_transformers.sentence_transformer.modules.clip_model.CLIPModel"


class CLIPModel(Transformer):
    """A CLIP folder as one module (see the module docstring). ``processor_name``: where the processor
    (tokenizer and image processor) comes from, when not the model's folder (v5's argument; 6.2's alias of
    ``tokenizer_name_or_path``). The other keyword arguments are :class:`Transformer`'s."""

    st_type_v5 = "sentence_transformers.models.CLIPModel"

    def __init__(self, model_name_or_path: str = "openai/clip-vit-base-patch32", processor_name: str | None = None,
                 **kwargs: Any) -> None:
        if processor_name is not None:
            kwargs["tokenizer_name_or_path"] = processor_name
        kwargs["modality_config"] = kwargs.get("modality_config") or \
            {k: dict(v) for k, v in DUAL_ENCODER_MODALITY_CONFIG.items()}
        kwargs["module_output_name"] = kwargs.get("module_output_name") or "sentence_embedding"
        super().__init__(model_name_or_path, **kwargs)

    @property
    def st_type(self) -> str:  # type: ignore[override]
        return ST6_CLIP_TYPE


__all__ = ["CLIPModel", "ST6_CLIP_TYPE"]
