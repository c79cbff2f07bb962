"""``SentenceTransformer``: the bi-encoder. Turns texts into embeddings on any backend, scores them, and
saves the model in the sentence-transformers format. The work is done by the engine ``backend=`` names
(:mod:`sentencekit.engines`) and the one encode pipeline (:mod:`sentencekit.pipeline.encode`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentencekit import __version__
from sentencekit.engines.protocol import EngineOptions
from sentencekit.families.model_base import Model, QueryDocumentEncoding, pool_aware
from sentencekit.pipeline.batching import EncodeInfo, TruncationWarning
from sentencekit.pipeline.encode import encode as run_encode
from sentencekit.pipeline.postprocess import check_truncate_dim
from sentencekit.pipeline.prompts import DOCUMENT_PROMPT_NAMES
from sentencekit.similarity import check_similarity_fn_name

OutputValue = Literal["sentence_embedding", "token_embeddings"] | None


class SentenceTransformer(QueryDocumentEncoding, Model):
    """Load a sentence-transformers model and turn texts into embeddings.

    >>> from sentencekit import SentenceTransformer
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> emb = model.encode(["How do I get a refund?", "What is your return policy?"])  # doctest: +SKIP
    >>> emb.shape                                                                     # doctest: +SKIP
    (2, 384)
    >>> float(model.similarity(emb[:1], emb[1:])) > 0.4                               # doctest: +SKIP
    True

    ``backend="torch"`` (default) runs the ``nn.Sequential`` of modules (training, GPUs, any module);
    ``backend="onnx"`` runs without torch: an exported ONNX graph on ONNX Runtime (``compute_dtype="int8"``
    for calibrated int8), a NumPy table lookup for static-embedding models. ``compute_dtype="bfloat16"``
    (or ``"auto"`` on CPUs with AVX-512 BF16 / AMX) runs the torch model in bf16, embeddings still
    float32; ``num_threads`` sets the CPU threads. ``modules=[...]`` builds a torch model from modules.
    Raises ``ModelFormatError`` for a folder that is no model, ``ValueError`` for bad settings.
    """

    family = "embedder"
    _info_attribute = "last_encode_info"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        modules: list[Any] | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        truncate_dim: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        *,
        backend: Literal["torch", "onnx"] = "torch",
        num_threads: int | None = None,
        compute_dtype: str | None = None,
        calibration_texts: list[str] | None = None,
    ) -> None:
        options = EngineOptions(device=device, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs,
                                tokenizer_kwargs=tokenizer_kwargs, config_kwargs=config_kwargs,
                                num_threads=num_threads, compute_dtype=compute_dtype, calibration=calibration_texts)
        self._build(model_name_or_path, modules, backend=backend, options=options, cache_folder=cache_folder,
                    revision=revision, local_files_only=local_files_only, token=token)
        # config_sentence_transformers.json counts beside a modules.json only: sentence-transformers 6.2 builds a
        # plain Hugging Face folder's model from its defaults without reading it (prompts, similarity, truncate_dim)
        saved = self.spec.model_config if self.spec is not None and self.spec.model_type == "SentenceTransformer" \
            and self.spec.layout != "transformers" else {}
        self.prompts = {"query": "", "document": "",
                        **{k: v for k, v in (saved.get("prompts") or {}).items() if v is not None}, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or saved.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}.")
        fn_name = similarity_fn_name or saved.get("similarity_fn_name")
        self._similarity_fn_name = check_similarity_fn_name(fn_name) if fn_name else None
        self.truncate_dim = truncate_dim if truncate_dim is not None else saved.get("truncate_dim")
        check_truncate_dim(self.truncate_dim, self.engine.dimension())

    # -- settings -------------------------------------------------------------------------------------------------
    @property
    def similarity_fn_name(self) -> str:
        """The similarity ``similarity()`` uses: the saved or given one, else cosine (then recorded, so a saved
        model names it)."""
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "cosine"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = check_similarity_fn_name(value)

    @property
    def last_encode_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` call made by this thread."""
        return self.last_info

    def get_sentence_embedding_dimension(self) -> int | None:
        """Dimension of the embeddings ``encode`` returns (``truncate_dim`` applied)."""
        dim = self.engine.dimension()
        if dim is not None and self.truncate_dim is not None:
            return min(dim, self.truncate_dim)
        return dim

    get_embedding_dimension = get_sentence_embedding_dimension

    # -- encode ---------------------------------------------------------------------------------------------------
    @pool_aware
    def encode(
        self,
        sentences: str | list[Any] | np.ndarray | Any,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: OutputValue = "sentence_embedding",
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str] | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        max_batch_tokens: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed texts. A list gives a ``[N, dim]`` float32 NumPy array, a single string ``[dim]``
        (``convert_to_tensor``: a torch tensor; ``precision``: int8/uint8 or packed binary/ubinary codes).

        Every text is tokenized once; inputs are sorted by token length into batches, so batches pad little,
        and returned in input order. On CPUs a batch holds ``batch_size * model.batch_tokens_per_text`` padded
        tokens (short texts share bigger batches, long ones smaller); an explicit ``max_batch_tokens`` caps
        the tokens and ``batch_size`` the texts; on GPUs batches hold ``batch_size`` texts. Texts longer than
        512 tokens are also batched by attention memory (rows x length^2), so 8k-token texts run one at a time
        whatever ``batch_size`` says (``sentencekit.pipeline.batching.resolve_batching``). Texts longer than
        ``max_seq_length`` are cut by the tokenizer: that is reported (a ``TruncationWarning`` per call, and
        ``model.last_encode_info``), never silent. ``truncate_dim`` keeps the first dimensions (Matryoshka),
        then ``normalize_embeddings`` scales to unit length. ``output_value="token_embeddings"`` gives one
        ``[tokens, hidden]`` array per text. Raises ``TypeError`` naming a bad input's index.

        Models that take images (CLIP: ``model.modalities == ["text", "image"]``) embed texts and images into one
        space: an input may be a PIL image, an image file path, a ``data:image/...;base64`` URI, an ``[H, W, C]``
        array or 3-D tensor, ``{"image": x}`` / ``{"text": t}``, or a list mixing them (each modality is batched
        on its own, images ``batch_size`` at a time through the model's image processor, and rows come back in
        input order); ``similarity`` compares them (cosine). Prompts apply to texts only. Strings are images
        only when they name an existing image file, a data URI or an http(s) image URL, which is fetched only
        with ``model.allow_url_inputs = True``. An input of a modality the model does not take raises
        ``ValueError`` naming its index and ``model.modalities`` (see :mod:`sentencekit.pipeline.modality`).

        >>> model.encode("Hello world").shape                      # doctest: +SKIP
        (384,)
        >>> model.encode(["a", "b"], normalize_embeddings=True, truncate_dim=128).shape  # doctest: +SKIP
        (2, 128)

        ``pool=model.start_multi_process_pool()`` (or ``device=["cuda:0", "cuda:1"]``) spreads the texts over
        worker processes in chunks of ``chunk_size`` (see ``sentencekit.parallel``).
        """
        return run_encode(self, sentences, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                          show_progress_bar=show_progress_bar, output_value=output_value, precision=precision,
                          convert_to_numpy=convert_to_numpy, convert_to_tensor=convert_to_tensor, device=device,
                          normalize_embeddings=normalize_embeddings, truncate_dim=truncate_dim,
                          max_batch_tokens=max_batch_tokens, kwargs=kwargs)

    # -- similarity -----------------------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """All-pairs scores ``[n, m]`` with the model's similarity function (cosine by default; euclidean and
        manhattan are negated distances, so higher is always more similar): a torch tensor on the torch
        backend, a NumPy array on the torch-free one."""
        return self._similarity_fns()[0](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Row-by-row scores ``[n]`` with the model's similarity function."""
        return self._similarity_fns()[1](embeddings1, embeddings2)

    def _similarity_fns(self) -> tuple[Any, Any]:
        if self.engine.backend == "torch":
            from sentencekit.similarity import pairwise_similarity_fn, similarity_fn

            return similarity_fn(self.similarity_fn_name), pairwise_similarity_fn(self.similarity_fn_name)
        from sentencekit.similarity import np_pairwise_similarity_fn, np_similarity_fn

        return np_similarity_fn(self.similarity_fn_name), np_pairwise_similarity_fn(self.similarity_fn_name)

    # -- saving ---------------------------------------------------------------------------------------------------
    def _save_to(self, network: Any, folder: Path, *, safe_serialization: bool) -> None:
        import torch
        import transformers

        from sentencekit.format import save_modules, write_model_config

        save_modules(list(network), folder, safe_serialization=safe_serialization, module_kwargs=network.module_kwargs)
        config: dict[str, Any] = {
            "model_type": "SentenceTransformer",
            "__version__": {"sentencekit": __version__, "transformers": transformers.__version__,
                            "pytorch": torch.__version__},
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "similarity_fn_name": self.similarity_fn_name,
        }
        if self.truncate_dim is not None:
            config["truncate_dim"] = self.truncate_dim
        write_model_config(folder, config)


__all__ = ["SentenceTransformer", "EncodeInfo", "TruncationWarning", "DOCUMENT_PROMPT_NAMES"]
