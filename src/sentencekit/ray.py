"""Corpus-scale embedding and reranking on Ray Data (``pip install "sentencekit[ray]"``).

``embed_dataset`` adds an embedding column to a Ray ``Dataset`` with ``map_batches``, a callable class
and an ``ActorPoolStrategy``: each actor loads the model once and encodes batch after batch, on a
laptop (a local single-node cluster) or on a multi-node cluster (``ray.init(address="ray://head:10001")``
or ``RAY_ADDRESS``) with the same call. ``rerank_dataset`` does the same for cross-encoder scores.

>>> import ray                                                          # doctest: +SKIP
>>> from sentencekit.ray import embed_dataset
>>> ray.init(num_cpus=2, include_dashboard=False)
>>> ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
>>> ds = embed_dataset(ds, "sentence-transformers/all-MiniLM-L6-v2", num_actors=2, normalize_embeddings=True)
>>> ds.write_parquet("/data/embeddings/")

The model may be a name or folder (loaded by each actor: on a multi-node cluster, a Hub id or a path
every node can read) or a loaded model (shipped to the actors through Ray's object store; an ONNX model
travels as its folder and settings, see ``sentencekit.parallel.payload``). Ray and its imports are
loaded only when a function here is called.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from sentencekit._warnings import external_stacklevel

if TYPE_CHECKING:  # pragma: no cover
    import ray.data


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError('sentencekit.ray needs Ray Data: pip install "sentencekit[ray]"') from exc
    return ray


class ModelActor:
    """The callable class ``map_batches`` instantiates once per actor: it builds the model in
    ``__init__`` and runs ``encode`` / ``predict`` on each batch (a dict of NumPy columns)."""

    def __init__(self, model: Any, family: str, inputs: list[str], output_column: str, call_kwargs: dict[str, Any],
                 model_kwargs: dict[str, Any], num_threads: int | None, device: str | None) -> None:
        from sentencekit.parallel.payload import materialize

        if isinstance(model, (str, os.PathLike)):
            import sentencekit

            cls = sentencekit.SentenceTransformer if family == "encode" else sentencekit.CrossEncoder
            kwargs = dict(model_kwargs)
            kwargs.setdefault("num_threads", num_threads)
            if device is not None:
                kwargs.setdefault("device", device)
            self.model = cls(os.fspath(model), **kwargs)
        else:
            self.model = materialize(model, device=device, num_threads=num_threads)
        self.method = getattr(self.model, "encode" if family == "encode" else "predict")
        self.family = family
        self.inputs = inputs
        self.output_column = output_column
        self.call_kwargs = call_kwargs

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        columns = [batch[name] for name in self.inputs]
        if self.family == "encode":
            items: list[Any] = [str(t) for t in columns[0]]
        else:
            items = [(str(q), str(d)) for q, d in zip(*columns)]
        out = self.method(items, show_progress_bar=False, convert_to_numpy=True, **self.call_kwargs)
        return {**batch, self.output_column: out}


def _actors_that_fit(resources: dict[str, float], num_actors: int | None, num_cpus_per_actor: float,
                     num_gpus_per_actor: float) -> int:
    """How many actors to start: ``num_actors``, or all the cluster holds when it is ``None``; capped, with a
    warning, at what the cluster holds now, because Ray Data waits forever for actors that cannot be placed.

    >>> _actors_that_fit({"CPU": 2.0}, None, 1, 0)
    2
    >>> _actors_that_fit({"CPU": 16.0, "GPU": 2.0}, None, 2, 0.5)
    4
    """
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fit = int(cpus // num_cpus_per_actor) if num_cpus_per_actor else num_actors or 1
    if num_gpus_per_actor:
        fit = min(fit, int(gpus // num_gpus_per_actor))
    need = f"{num_cpus_per_actor:g} CPU" + (f" and {num_gpus_per_actor:g} GPU" if num_gpus_per_actor else "")
    have = f"{cpus:g} CPUs" + (f" and {gpus:g} GPUs" if num_gpus_per_actor else "")
    if fit < 1:
        raise ValueError(f"One actor needs {need} but the Ray cluster has {have} in all, so no actor could start "
                         "(Ray would wait forever). Lower num_cpus_per_actor / num_gpus_per_actor, or add nodes "
                         "to the cluster before calling this.")
    if num_actors is None:
        return fit
    if num_actors > fit:
        warnings.warn(f"num_actors={num_actors} actors of {need} each do not fit in the Ray cluster ({have}): "
                      f"starting {fit} instead (Ray Data would wait forever for the others). Leave num_actors "
                      "unset to use the whole cluster, or add nodes before calling this.", UserWarning,
                      stacklevel=external_stacklevel())
        return fit
    return num_actors


def _map_model(ds: ray.data.Dataset, model: Any, family: str, inputs: list[str], output_column: str, *,
               batch_size: int, num_actors: int | None, num_cpus_per_actor: float | None,
               num_gpus_per_actor: float, model_kwargs: dict[str, Any] | None,
               call_kwargs: dict[str, Any]) -> ray.data.Dataset:
    ray = _ray()
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer (rows per Ray batch), got {batch_size!r}")
    missing = [c for c in inputs if c not in ds.columns()]
    if missing:
        raise ValueError(f"The dataset has no column {missing[0]!r} (columns: {ds.columns()}); pass the name of "
                         "the text column, e.g. column='body'.")
    if call_kwargs.get("precision", "float32") != "float32":
        raise ValueError("precision must stay float32 here: each Ray batch would be quantized with its own ranges. "
                         "Quantize the collected embeddings once with sentencekit.quantize_embeddings.")
    if num_cpus_per_actor is None:
        num_cpus_per_actor = 1
    if num_actors is not None and (not isinstance(num_actors, int) or num_actors <= 0):
        raise ValueError(f"num_actors must be a positive integer, got {num_actors!r}")
    if not ray.is_initialized():
        ray.init()
    num_actors = _actors_that_fit(ray.cluster_resources(), num_actors, num_cpus_per_actor, num_gpus_per_actor)
    if not isinstance(model, (str, os.PathLike)):
        from sentencekit.parallel.payload import portable_model

        model = portable_model(model)
    device = "cuda" if num_gpus_per_actor else "cpu"
    num_threads = max(1, int(num_cpus_per_actor))
    return ds.map_batches(
        ModelActor,
        fn_constructor_kwargs={"model": model, "family": family, "inputs": inputs, "output_column": output_column,
                               "call_kwargs": call_kwargs, "model_kwargs": dict(model_kwargs or {}),
                               "num_threads": num_threads, "device": device},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=num_cpus_per_actor,
        num_gpus=num_gpus_per_actor or None,
    )


def embed_dataset(
    ds: ray.data.Dataset,
    model: Any,
    column: str = "text",
    output_column: str = "embedding",
    batch_size: int = 256,
    num_actors: int | None = None,
    num_cpus_per_actor: float | None = None,
    num_gpus_per_actor: float = 0,
    *,
    model_kwargs: dict[str, Any] | None = None,
    **encode_kwargs: Any,
) -> ray.data.Dataset:
    """``ds`` with an ``output_column`` of float32 embeddings of ``column`` (other columns kept).

    ``batch_size``: rows per Ray batch (one ``encode`` call; pass ``encode_kwargs`` such as
    ``normalize_embeddings=True`` or ``prompt_name="document"`` through). ``num_actors``: model copies
    (default: cluster CPUs // ``num_cpus_per_actor``, or GPUs // ``num_gpus_per_actor``; more than the
    cluster holds are capped to what it holds, with a warning, as Ray would wait for them forever); each actor
    runs ``num_cpus_per_actor`` (default 1) torch threads, or one GPU share. ``model_kwargs`` go to the
    model's constructor in each actor (e.g. ``{"backend": "onnx"}``) when ``model`` is a name or path.
    Ray keeps each row's columns together (ids stay with their embeddings); set
    ``ray.data.DataContext.get_current().execution_options.preserve_order = True`` to keep row order.

    >>> ds = embed_dataset(ray.data.read_parquet("s3://bucket/docs/"), "BAAI/bge-small-en-v1.5",
    ...                    num_actors=4, num_gpus_per_actor=1, normalize_embeddings=True)  # doctest: +SKIP
    """
    return _map_model(ds, model, "encode", [column], output_column, batch_size=batch_size, num_actors=num_actors,
                      num_cpus_per_actor=num_cpus_per_actor, num_gpus_per_actor=num_gpus_per_actor,
                      model_kwargs=model_kwargs, call_kwargs=encode_kwargs)


def rerank_dataset(
    ds: ray.data.Dataset,
    model: Any,
    query_column: str = "query",
    document_column: str = "document",
    output_column: str = "score",
    batch_size: int = 256,
    num_actors: int | None = None,
    num_cpus_per_actor: float | None = None,
    num_gpus_per_actor: float = 0,
    *,
    model_kwargs: dict[str, Any] | None = None,
    **predict_kwargs: Any,
) -> ray.data.Dataset:
    """``ds`` with an ``output_column`` of cross-encoder scores of (``query_column``, ``document_column``)
    pairs; the same actor pool as :func:`embed_dataset`.

    >>> ds = rerank_dataset(ray.data.from_items(pairs), "cross-encoder/ms-marco-MiniLM-L6-v2",
    ...                     num_actors=2)                                                # doctest: +SKIP
    """
    return _map_model(ds, model, "predict", [query_column, document_column], output_column,
                      batch_size=batch_size, num_actors=num_actors, num_cpus_per_actor=num_cpus_per_actor,
                      num_gpus_per_actor=num_gpus_per_actor, model_kwargs=model_kwargs, call_kwargs=predict_kwargs)


__all__ = ["embed_dataset", "rerank_dataset", "ModelActor"]
