"""MTEB adapter (``pip install sentencekit[mteb]``, mteb 2.x).

:class:`SentencekitMTEBEncoder` wraps a sentencekit ``SentenceTransformer`` as an MTEB encoder (an
``mteb.models.AbsEncoder`` with its ``mteb_model_meta``), so ``mteb.evaluate`` runs it: queries go through
``encode_query``, documents through ``encode_document``, everything else through ``encode``, with the
prompt MTEB picks from the model's ``prompts`` (task name, task type, then query / document) and the
model's own similarity function. :func:`local_sts_task` and :func:`local_retrieval_task` build MTEB tasks
from data in memory, for evaluating on your own data without the Hub.

The model's fingerprint is the metadata's ``revision`` (unless one is given): MTEB keys its result cache
by name and revision, so results of two different models never mix, even under one name.

mteb 2.x declares sentence-transformers as a dependency and ``mteb.evaluate`` imports it (to recognise its
models); the adapter itself never uses it.

>>> import mteb                                                                  # doctest: +SKIP
>>> from sentencekit.integrations.mteb import SentencekitMTEBEncoder, local_sts_task
>>> encoder = SentencekitMTEBEncoder(model, name="sentence-transformers/all-MiniLM-L6-v2")
>>> task = local_sts_task("MySTS", [("A man plays guitar.", "A man is playing a guitar.", 5.0), ...])
>>> mteb.evaluate(encoder, [task], cache=None).task_results[0].get_score()
0.82
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder, get_prompt_name
from mteb.types import PromptType

from sentencekit.fingerprint import model_fingerprint
from sentencekit.integrations.model_loading import load_model


def model_meta(model: Any, *, name: str | None = None, revision: str | None = None,
               fingerprint: str | None = None) -> ModelMeta:
    """MTEB ``ModelMeta`` of a sentencekit ``SentenceTransformer``: ``name`` (default: the model's Hub name, or
    ``sentencekit/<folder name>`` for a local folder; MTEB wants ``org/model``), ``revision`` (default: the
    model's fingerprint), embedding size, maximum tokens, parameter count, similarity function, prompts use."""
    fingerprint = fingerprint or model_fingerprint(model)
    source = str(getattr(model, "model_name_or_path", None) or "")
    if name is None:
        looks_like_hub_name = source.count("/") == 1 and not Path(source).exists()
        name = source if looks_like_hub_name else f"sentencekit/{Path(source).name or 'model'}"
    try:
        n_parameters = sum(p.numel() for p in model.parameters())
    except Exception:  # a torch-free backend has no parameters to count
        n_parameters = None
    max_tokens = getattr(model, "max_seq_length", None)
    return ModelMeta(
        loader=None, name=name, revision=revision or fingerprint, release_date=None, languages=None,
        n_parameters=n_parameters, memory_usage_mb=None, max_tokens=max_tokens,
        embed_dim=model.get_sentence_embedding_dimension(), license=None, open_weights=None,
        public_training_code=None, public_training_data=None,
        framework=["PyTorch"] if getattr(model, "backend", "torch") == "torch" else ["ONNX"],
        similarity_fn_name=model.similarity_fn_name, use_instructions=any(v for v in model.prompts.values()),
        training_datasets=None, modalities=["text"], model_type=["dense"],
    )


class SentencekitMTEBEncoder(AbsEncoder):
    """An MTEB encoder over a sentencekit ``SentenceTransformer`` (or a path / name to load one).

    ``encode(inputs, task_metadata=..., hf_split=..., hf_subset=..., prompt_type=...)`` reads the texts of
    MTEB's DataLoader batches (``batch["text"]``) and returns a float32 NumPy array ``[n, dim]``.
    ``model_prompts`` add to (and override) the model's ``prompts``; keys are MTEB's: a task name, a task
    type, ``query`` / ``document``, or ``"{task}-{query|document}"``. ``fingerprint`` is the model's identity.

    >>> encoder = SentencekitMTEBEncoder(model)                                   # doctest: +SKIP
    >>> encoder.mteb_model_meta.revision == encoder.fingerprint
    True
    """

    def __init__(self, model: Any, *, name: str | None = None, revision: str | None = None,
                 model_prompts: Mapping[str, str] | None = None) -> None:
        self.model = load_model(model, "SentenceTransformer")
        self.fingerprint: str = model_fingerprint(self.model)
        prompts = {k: v for k, v in {**self.model.prompts, **(model_prompts or {})}.items() if v}
        self.model_prompts = self.validate_task_to_prompt_name(prompts, raise_for_invalid_keys=False)[0] or {}
        self.mteb_model_meta = model_meta(self.model, name=name, revision=revision, fingerprint=self.fingerprint)

    def encode(self, inputs: Any, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str,
               prompt_type: PromptType | None = None, **kwargs: Any) -> Any:
        texts = [text for batch in inputs for text in batch["text"]]
        prompt_name = get_prompt_name(self.model_prompts, task_metadata, prompt_type)
        prompt = self.model_prompts.get(prompt_name) if prompt_name else None
        if prompt_type == PromptType.query:
            encode = self.model.encode_query
        elif prompt_type == PromptType.document:
            encode = self.model.encode_document
        else:
            encode = self.model.encode
        options = {"batch_size": kwargs.get("batch_size", 32),
                   "show_progress_bar": bool(kwargs.get("show_progress_bar", False))}
        if kwargs.get("precision"):
            options["precision"] = kwargs["precision"]
        return encode(texts, prompt=prompt, convert_to_numpy=True, **options)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """All-pairs scores with the model's own similarity function."""
        return self.model.similarity(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Row-by-row scores with the model's own similarity function."""
        return self.model.similarity_pairwise(embeddings1, embeddings2)


def _task_metadata(name: str, task_type: str, main_score: str, description: str, split: str) -> TaskMetadata:
    return TaskMetadata(
        name=name, type=task_type, main_score=main_score, description=description,
        reference=None, dataset={"path": f"local/{name}", "revision": "local"}, category="t2t",
        eval_splits=[split], eval_langs=["eng-Latn"], date=None, dialect=None, domains=None, task_subtypes=None,
        license=None, annotations_creators=None, modalities=["text"], sample_creation=None, bibtex_citation=None,
    )


def local_sts_task(name: str, pairs: Sequence[tuple[str, str, float]], *, min_score: float = 0,
                   max_score: float = 5, split: str = "test", description: str = "A local STS task.") -> AbsTaskSTS:
    """An MTEB STS task over ``pairs`` of ``(sentence1, sentence2, gold score in [min_score, max_score])``;
    its main score is ``cosine_spearman``. Raises ``ValueError`` for an empty list."""
    if not pairs:
        raise ValueError(f"local_sts_task({name!r}) got no pairs.")
    rows = [(str(a), str(b), float(s)) for a, b, s in pairs]

    class LocalSTSTask(AbsTaskSTS):
        metadata = _task_metadata(name, "STS", "cosine_spearman", description, split)

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            from datasets import Dataset

            columns = {"sentence1": [r[0] for r in rows], "sentence2": [r[1] for r in rows],
                       "score": [r[2] for r in rows]}
            self.dataset = {"default": {split: Dataset.from_dict(columns)}}
            self.data_loaded = True

    LocalSTSTask.min_score, LocalSTSTask.max_score = min_score, max_score
    return LocalSTSTask()


def local_retrieval_task(name: str, queries: Mapping[str, str], corpus: Mapping[str, str],
                         relevant_docs: Mapping[str, Sequence[str] | Mapping[str, int]], *, split: str = "test",
                         description: str = "A local retrieval task.") -> AbsTaskRetrieval:
    """An MTEB retrieval task: ``queries`` and ``corpus`` map ids to texts, ``relevant_docs`` maps a query id to
    its relevant corpus ids (or ``{corpus id: grade}``); its main score is ``ndcg_at_10``. Raises ``ValueError``
    when a relevant id is not in ``corpus`` or ``queries``."""
    judged: dict[str, dict[str, int]] = {}
    for qid, docs in relevant_docs.items():
        if qid not in queries:
            raise ValueError(f"local_retrieval_task({name!r}): relevant_docs names query {qid!r}, not in queries.")
        grades = dict(docs) if isinstance(docs, Mapping) else dict.fromkeys(docs, 1)
        missing = [d for d in grades if d not in corpus]
        if missing:
            raise ValueError(f"local_retrieval_task({name!r}): query {qid!r} has relevant ids not in corpus: "
                             f"{missing[:5]}")
        judged[str(qid)] = {str(d): int(g) for d, g in grades.items()}

    class LocalRetrievalTask(AbsTaskRetrieval):
        metadata = _task_metadata(name, "Retrieval", "ndcg_at_10", description, split)

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            from datasets import Dataset

            data = {"queries": Dataset.from_list([{"id": str(k), "text": v} for k, v in queries.items()]),
                    "corpus": Dataset.from_list([{"id": str(k), "text": v} for k, v in corpus.items()]),
                    "relevant_docs": judged, "top_ranked": None}
            self.dataset = {"default": {split: data}}
            self.data_loaded = True

    return LocalRetrievalTask()


__all__ = ["SentencekitMTEBEncoder", "model_meta", "local_sts_task", "local_retrieval_task"]
