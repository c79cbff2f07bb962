"""``SparseEncoder``: learned sparse retrieval (SPLADE). Texts become vocabulary-sized vectors with few
non-zero weights (each weight: how much a vocabulary term matters to the text, expansions included), scored
by dot product and searchable with an inverted index.

SPLADE: Formal et al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking" (SIGIR 2021);
"SPLADE v2" (arXiv:2109.10086). Interface, outputs and on-disk format: sentence-transformers 6.2
(``sentence_transformers.sparse_encoder.SparseEncoder``). Encoding runs the one pipeline
(:func:`sentencekit.pipeline.encode.run_pipeline`) with the sparse last step
(:mod:`sentencekit.pipeline.sparse_output`).

Two backends. ``backend="torch"`` (default) returns torch tensors, as sentence-transformers does.
``backend="onnx"`` runs SPLADE (and inference-free SPLADE Routers) without torch: ONNX Runtime with the
SPLADE pooling inside the exported graph (exported once, with torch, then cached), NumPy for a
``SparseStaticEmbedding`` query route; results are SciPy / NumPy (see :meth:`SparseEncoder.encode`) and the
helpers (``decode``, ``sparsity``, ``intersection``, ``similarity``) read them with
:mod:`sentencekit.sparse_arrays`. CSR models (``SparseAutoEncoder``) run on torch only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from sentencekit import __version__
from sentencekit.engines.protocol import EngineOptions
from sentencekit.families.model_base import Model, QueryDocumentEncoding, pool_aware
from sentencekit.pipeline.batching import EncodeInfo
from sentencekit.pipeline.encode import read_inputs, run_pipeline
from sentencekit.pipeline.sparse_output import check_max_active_dims, gather_sparse_rows, sparse_batch_step
from sentencekit.similarity import check_similarity_fn_name

_EMBEDDING = frozenset({"sentence_embedding"})


class SparseEncoder(QueryDocumentEncoding, Model):
    """Load a sparse encoder (SPLADE) and turn texts into sparse vocabulary-sized vectors.

    >>> from sentencekit import SparseEncoder
    >>> model = SparseEncoder("naver/splade-cocondenser-ensembledistil")          # doctest: +SKIP
    >>> emb = model.encode(["capital of france", "Paris is the capital of France."])  # doctest: +SKIP
    >>> emb.shape, emb.layout                                                    # doctest: +SKIP
    (torch.Size([2, 30522]), torch.sparse_coo)
    >>> model.decode(emb[0], top_k=3)                                           # doctest: +SKIP
    [('france', 2.1), ('capital', 1.9), ('paris', 1.4)]
    >>> model.similarity(emb[:1], emb[1:])                                      # doctest: +SKIP
    tensor([[21.3]])

    Loads a folder saved by sentence-transformers (6.2 ``Transformer(transformer_task="fill-mask")`` +
    ``SpladePooling``, or 5.x ``MLMTransformer`` + ``SpladePooling``; inference-free ``Router`` models with a
    ``SparseStaticEmbedding`` query route; CSR models ending in ``SparseAutoEncoder``) or a plain Hugging
    Face ``*ForMaskedLM`` folder (as SPLADE: fill-mask Transformer + max ``SpladePooling``). A dense model
    (a SentenceTransformer save or another transformer) gets a new, untrained ``SparseAutoEncoder``, with a
    warning, as sentence-transformers does. ``modules=[...]`` builds one from modules. Every argument after
    the first is keyword-only (as in sentence-transformers 6.2); ``tokenizer_kwargs`` is the old name of
    ``processor_kwargs``. ``max_active_dims`` (a positive int) keeps each embedding's largest weights only
    (default: the saved value, else a ``SparseAutoEncoder``'s ``k``, else all). ``similarity_fn_name``
    defaults to ``"dot"``. ``backend="onnx"`` runs SPLADE folders (and inference-free SPLADE Routers) on ONNX
    Runtime without importing torch, returning SciPy / NumPy (see :meth:`encode`); ``compute_dtype="int8"``
    quantizes the exported graph (calibrated on ``calibration_texts``, default the bundled texts). CSR
    (``SparseAutoEncoder``) folders raise ``ValueError`` there.
    Raises ``ModelFormatError`` for a folder that is no model or a reranker, ``ValueError`` for bad settings.
    """

    family = "sparse"
    _info_attribute = "last_encode_info"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        modules: list[Any] | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        model_card_data: Any = None,
        backend: Literal["torch", "onnx"] = "torch",
        similarity_fn_name: str | None = None,
        max_active_dims: int | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        num_threads: int | None = None,
        compute_dtype: str | None = None,
        calibration_texts: list[str] | None = None,
    ) -> None:
        if processor_kwargs is not None and tokenizer_kwargs is not None:
            raise ValueError("Pass processor_kwargs or its old name tokenizer_kwargs, not both.")
        options = EngineOptions(device=device, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs,
                                tokenizer_kwargs=processor_kwargs if processor_kwargs is not None else tokenizer_kwargs,
                                config_kwargs=config_kwargs, num_threads=num_threads, compute_dtype=compute_dtype,
                                calibration=calibration_texts)
        self._build(model_name_or_path, modules, backend=backend, options=options, cache_folder=cache_folder,
                    revision=revision, local_files_only=local_files_only, token=token)
        # a converted SentenceTransformer keeps its prompts and similarity, as in sentence-transformers
        saved = self.spec.model_config if self.spec is not None and self.spec.model_type in (
            "SparseEncoder", "SentenceTransformer") else {}
        self.model_card_data = model_card_data
        self.prompts = {"query": "", "document": "",
                        **{k: v for k, v in (saved.get("prompts") or {}).items() if v is not None}, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or saved.get("default_prompt_name")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                             f"{sorted(self.prompts)}.")
        self._similarity_fn_name: str | None = None
        fn_name = similarity_fn_name or saved.get("similarity_fn_name")
        if fn_name:
            self.similarity_fn_name = fn_name
        if max_active_dims is None:
            max_active_dims = saved.get("max_active_dims")
        if max_active_dims is None and self.engine.backend == "torch":  # a CSR model (torch only): its autoencoder's k
            from sentencekit.modules import SparseAutoEncoder

            max_active_dims = next((m.k for m in self.network.modules() if isinstance(m, SparseAutoEncoder)), None)
        self.max_active_dims = max_active_dims

    # -- settings -------------------------------------------------------------------------------------------------
    @property
    def max_active_dims(self) -> int | None:
        """At most this many non-zero weights per embedding (``None``: no cap). Settable."""
        return self._max_active_dims

    @max_active_dims.setter
    def max_active_dims(self, value: int | None) -> None:
        self._max_active_dims = check_max_active_dims(value)

    @property
    def similarity_fn_name(self) -> str:
        """The similarity ``similarity()`` uses: the saved or given one, else ``"dot"`` (then recorded, so a
        saved model names it). ``"maxsim"`` (multi-vector models) raises ``ValueError``."""
        if self._similarity_fn_name is None:
            self._similarity_fn_name = "dot"
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        if str(getattr(value, "value", value)) == "maxsim":
            raise ValueError("similarity_fn_name='maxsim' scores multi-vector embeddings; a SparseEncoder gives one "
                             "vector per text: use 'dot' (default), 'cosine', 'euclidean' or 'manhattan'.")
        self._similarity_fn_name = check_similarity_fn_name(value)

    @property
    def last_encode_info(self) -> EncodeInfo:
        """Truncation report of the last ``encode`` call made by this thread."""
        return self.last_info

    def get_embedding_dimension(self) -> int | None:
        """Width of the embeddings (the vocabulary size for SPLADE)."""
        return self.engine.dimension()

    get_sentence_embedding_dimension = get_embedding_dimension

    @property
    def splade_pooling_chunk_size(self) -> int | None:
        """``chunk_size`` of the ``SpladePooling`` module (tokens pooled at a time; ``None``: all): smaller
        chunks, less peak memory, same embeddings. Setting it on a model without ``SpladePooling`` raises
        ``ValueError``; on the torch-free backend (pooling inside the ONNX graph) it is ``None`` and setting it
        raises ``TypeError``."""
        if self.engine.backend != "torch":
            return None
        pools = self._splade_pools()
        return pools[0].chunk_size if pools else None

    @splade_pooling_chunk_size.setter
    def splade_pooling_chunk_size(self, value: int | None) -> None:
        pools = self._splade_pools()
        if not pools:
            raise ValueError("This SparseEncoder has no SpladePooling module to set chunk_size on.")
        for pool in pools:
            pool.chunk_size = value

    def _splade_pools(self) -> list[Any]:
        from sentencekit.modules import SpladePooling

        return [m for m in self.network.modules() if isinstance(m, SpladePooling)]

    # -- encode ---------------------------------------------------------------------------------------------------
    @pool_aware
    def encode(
        self,
        inputs: str | list[str] | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = True,
        convert_to_sparse_tensor: bool = True,
        save_to_cpu: bool = False,
        device: str | None = None,
        max_active_dims: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        max_batch_tokens: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed texts as sparse vectors: a list gives one sparse COO float32 tensor ``[N, dim]`` on the
        model's device (not coalesced), a single string a 1-D tensor ``[dim]``; ``convert_to_sparse_tensor
        =False`` gives dense tensors, ``convert_to_tensor=False`` a list of 1-D tensors; an empty list gives
        ``torch.tensor([])`` (sparse: shape ``(0,)``); ``save_to_cpu`` moves each batch to the CPU.

        On the torch-free backend (``backend="onnx"``) torch is never loaded and the same arguments give
        SciPy / NumPy: a list gives a ``scipy.sparse.csr_matrix`` ``[N, dim]`` float32 (sorted terms, no stored
        zeros); a single string a ``csr_matrix`` ``[1, dim]`` (SciPy matrices are 2-D: ``decode`` of it is a
        list with one list of terms); ``convert_to_sparse_tensor=False`` dense float32 NumPy (``[N, dim]``, a
        single string ``[dim]``); ``convert_to_tensor=False`` a list of ``[1, dim]`` CSR rows (or ``[dim]``
        NumPy rows); an empty list an empty NumPy array ``(0,)`` (``[]`` with ``convert_to_tensor=False``).
        ``save_to_cpu`` changes nothing there. ``scipy.sparse`` is needed (``pip install sentencekit[sparse]``)
        unless ``convert_to_sparse_tensor=False``.
        ``max_active_dims`` (default ``model.max_active_dims``) keeps each row's largest-magnitude weights.
        ``sentences=`` is accepted for ``inputs``.

        Texts are tokenized once and run in length-sorted batches, returned in input order; texts longer than
        ``max_seq_length`` are cut and reported (a ``TruncationWarning`` and ``model.last_encode_info``).
        ``pool=model.start_multi_process_pool()`` (or ``device=["cuda:0", "cuda:1"]``) spreads the texts over
        worker processes in chunks of ``chunk_size``: the same rows, on the CPU (as sentence-transformers
        returns multi-process results), on either backend.
        Raises ``TypeError`` naming a bad input's index, ``ValueError`` for unknown keyword arguments (the
        modules' forward arguments and ``task`` are accepted) or a bad ``max_active_dims`` / ``batch_size``;
        ``PoolWorkerError`` when a pool worker fails.

        >>> model.encode(["capital of france"]).shape                              # doctest: +SKIP
        torch.Size([1, 30522])
        """
        if "sentences" in kwargs:
            if inputs is not None:
                raise TypeError("encode() got both inputs and sentences; pass one.")
            inputs = kwargs.pop("sentences")
        max_active_dims = check_max_active_dims(max_active_dims)
        if max_active_dims is None:
            max_active_dims = self.max_active_dims
        if max_active_dims is not None and "max_active_dims" in self._module_kwargs():
            kwargs["max_active_dims"] = max_active_dims  # modules that sparsify themselves (SparseAutoEncoder)
        checked = read_inputs(self.engine, inputs)
        step = sparse_batch_step(max_active_dims=max_active_dims, convert_to_sparse_tensor=convert_to_sparse_tensor,
                                 save_to_cpu=save_to_cpu)
        run = run_pipeline(self, checked, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
                           show_progress_bar=show_progress_bar, device=device, max_batch_tokens=max_batch_tokens,
                           outputs=_EMBEDDING, kwargs=kwargs, batch_step=step)
        result = gather_sparse_rows(run.parts.get("sentence_embedding", []), run.inverse,
                                    convert_to_tensor=convert_to_tensor or run.single,
                                    convert_to_sparse_tensor=convert_to_sparse_tensor, device=self.device,
                                    torch_output=self.engine.backend == "torch")
        return result[0] if run.single else result

    def encode_csr_arrays(self, inputs: list[str], **kwargs: Any) -> Any:
        """``encode(inputs, **kwargs)`` as :class:`sentencekit.sparse_arrays.CsrArrays` ``[n, dim]`` (NumPy
        arrays on the CPU): what a pool worker sends back (compact, and no torch tensors through the pipes)."""
        from sentencekit.sparse_arrays import csr_arrays

        return csr_arrays(self.encode(inputs, convert_to_tensor=True, convert_to_sparse_tensor=True, save_to_cpu=True,
                                      **kwargs))

    def _module_kwargs(self) -> set[str]:
        network = getattr(self.engine, "network", None)
        return network.get_model_kwargs() if network is not None else set()

    # -- reading embeddings -----------------------------------------------------------------------------------------
    def decode(self, embeddings: Any, top_k: int | None = None) -> list[Any]:
        """The vocabulary terms of sparse embeddings with their weights, largest first, non-zero only: a 1-D
        embedding gives ``[(token, weight), ...]``, a 2-D one a list of those per row (tokens as the
        tokenizer's ``convert_ids_to_tokens`` spells them, e.g. ``"##s"``). ``top_k`` keeps the first
        ``top_k`` per row. Torch tensors, SciPy matrices and NumPy arrays are read alike
        (:func:`sentencekit.sparse_arrays.top_weights`; torch only for a tensor; a SciPy matrix is 2-D, so
        ``[1, dim]`` gives a list with one list). Raises ``ValueError`` for ``top_k <= 0`` or an input that is
        not 1-D / 2-D.

        >>> model.decode(model.encode("capital of france"), top_k=2)   # doctest: +SKIP
        [('france', 2.05), ('capital', 1.93)]
        """
        from sentencekit import sparse_arrays

        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k <= 0):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
        decoded = [list(zip(self.tokenizer.convert_ids_to_tokens(ids), weights))
                   for ids, weights in sparse_arrays.top_weights(embeddings, top_k)]
        return decoded[0] if sparse_arrays.is_vector(embeddings) else decoded

    @staticmethod
    def sparsity(embeddings: Any) -> dict[str, float]:
        """``{"active_dims": mean non-zero weights per row, "sparsity_ratio": 1 - active_dims / dim}`` for a
        1-D or 2-D embedding (torch tensor, sparse or dense; SciPy matrix or NumPy array, read without torch;
        :func:`sentencekit.sparse_arrays.sparsity`); no rows: ``{0.0, 1.0}``."""
        from sentencekit.sparse_arrays import sparsity

        return sparsity(embeddings)

    @staticmethod
    def intersection(embeddings_1: Any, embeddings_2: Any) -> Any:
        """Shared terms: the element-wise product of a 1-D embedding with a 1-D embedding or each row of a
        2-D one, as a sparse COO tensor holding the entries > 0 (products, as sentence-transformers returns;
        ``decode`` lists them). SciPy / NumPy inputs (the torch-free backend's) give a ``csr_matrix``
        ``[n, dim]`` without torch, and ``embeddings_1`` may there be a one-row matrix ``[1, dim]``. Raises
        ``ValueError`` for a 2-D ``embeddings_1`` (more than one row) or mismatched widths."""
        from sentencekit import sparse_arrays

        if not (sparse_arrays.is_torch(embeddings_1) or sparse_arrays.is_torch(embeddings_2)):
            return sparse_arrays.intersection(embeddings_1, embeddings_2)
        from sentencekit.sparse_tensors import intersection

        return intersection(embeddings_1, embeddings_2)

    # -- similarity -----------------------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """All-pairs scores ``[n, m]`` with the model's similarity function (dot by default); sparse, dense
        and mixed inputs are accepted. A dense float tensor on the torch backend; a dense float32 NumPy array
        on the torch-free one (SciPy / NumPy inputs, scored sparse without torch), as the dense embedder's
        ``similarity`` does."""
        return self._similarity_fns()[0](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Row-by-row scores ``[n]`` with the model's similarity function (tensor or NumPy, as
        :meth:`similarity`)."""
        return self._similarity_fns()[1](embeddings1, embeddings2)

    def _similarity_fns(self) -> tuple[Any, Any]:
        name = self.similarity_fn_name
        if self.engine.backend == "torch":
            from sentencekit.similarity import pairwise_similarity_fn, similarity_fn

            return similarity_fn(name), pairwise_similarity_fn(name)
        from sentencekit import sparse_arrays

        return sparse_arrays.ALL_PAIRS[name], sparse_arrays.PAIRWISE[name]

    # -- saving ---------------------------------------------------------------------------------------------------
    def _save_to(self, network: Any, folder: Path, *, safe_serialization: bool) -> None:
        import torch
        import transformers

        from sentencekit.format import save_modules, write_model_config

        save_modules(list(network), folder, safe_serialization=safe_serialization, module_kwargs=network.module_kwargs)
        config: dict[str, Any] = {
            "model_type": "SparseEncoder",
            "__version__": {"sentencekit": __version__, "transformers": transformers.__version__,
                            "pytorch": torch.__version__},
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "similarity_fn_name": self._similarity_fn_name,  # null until set or read (loads back as dot)
        }
        if self.max_active_dims is not None:
            config["max_active_dims"] = self.max_active_dims
        write_model_config(folder, config)


__all__ = ["SparseEncoder"]
