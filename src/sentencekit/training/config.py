"""``sentencekit train CONFIG.yaml``: a whole training run described in one file.

```yaml
model: sentence-transformers/all-MiniLM-L6-v2   # folder or Hub id to start from
model_type: sentence-transformer                 # or cross-encoder (then num_labels: 1)
train_dataset: {stsb: train, label_scale: 0.2}   # or {path: data.jsonl | data.csv, columns: [...]}
eval_dataset: {stsb: dev, label_scale: 0.2}
loss: {name: CoSENTLoss, kwargs: {scale: 20.0}, matryoshka_dims: [384, 128]}   # matryoshka optional
evaluator: EmbeddingSimilarityEvaluator          # built from eval_dataset's first two columns and label
args: {num_train_epochs: 1, per_device_train_batch_size: 16, learning_rate: 2.0e-5, warmup_ratio: 0.1}
output_dir: out/my-model                         # checkpoints here, final model in output_dir/final
```

Losses and evaluators are looked up by name in ``sentencekit.losses`` (``.cross_encoder``) and
``sentencekit.evaluation`` only: a config file never names code to import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sentencekit.files import ModelFormatError


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"Training config not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ModelFormatError(f"Malformed YAML in training config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{path}: a training config is a mapping (model:, train_dataset:, loss:, ...).")
    for key in ("model", "train_dataset", "output_dir"):
        if key not in config:
            raise ModelFormatError(f"{path}: missing required key {key!r}.")
    return config


def load_dataset_spec(spec: Any, base: Path) -> Any:
    """A dataset from ``{stsb: split}`` or ``{path: file}`` (JSON lines, JSON, CSV/TSV, Parquet)."""
    from datasets import Dataset, load_dataset

    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict):
        raise ModelFormatError(f"Dataset spec must be a mapping, got {spec!r}")
    if "stsb" in spec:
        from sentencekit.datasets import load_stsb

        pairs = load_stsb(spec["stsb"])
        data = Dataset.from_dict({"sentence1": [p.sentence1 for p in pairs],
                                  "sentence2": [p.sentence2 for p in pairs],
                                  "score": [p.score for p in pairs]})
    elif "path" in spec:
        file = Path(spec["path"])
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            raise FileNotFoundError(f"Dataset file not found: {file}")
        kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}.get(
            file.suffix.lower())
        if kind is None:
            raise ModelFormatError(f"{file}: unsupported dataset format (use .jsonl, .json, .csv, .tsv, .parquet)")
        extra = {"delimiter": "\t"} if file.suffix.lower() == ".tsv" else {}
        data = load_dataset(kind, data_files=str(file), split="train", **extra)
    else:
        raise ModelFormatError(f"Dataset spec needs 'stsb' or 'path': {spec!r}")
    if spec.get("columns"):
        data = data.select_columns(list(spec["columns"]))
    if spec.get("limit"):
        data = data.select(range(min(int(spec["limit"]), len(data))))
    scale = spec.get("label_scale")
    if scale is not None:
        label = next((c for c in ("score", "label") if c in data.column_names), None)
        if label is None:
            raise ModelFormatError("label_scale given but the dataset has no score/label column.")
        data = data.map(lambda row: {label: float(row[label]) * float(scale)})
    return data


def _named(module: Any, name: str, what: str) -> Any:
    obj = getattr(module, name, None)
    if obj is None or name.startswith("_"):
        raise ModelFormatError(f"Unknown {what} {name!r} in {module.__name__}.")
    return obj


def build_loss(spec: Any, model: Any, cross_encoder: bool) -> Any:
    if spec is None:
        return None
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if cross_encoder:
        from sentencekit.losses import cross_encoder as losses
    else:
        import sentencekit.losses as losses
    loss = _named(losses, spec["name"], "loss")(model, **(spec.get("kwargs") or {}))
    if spec.get("matryoshka_dims"):
        from sentencekit.losses import MatryoshkaLoss

        loss = MatryoshkaLoss(model, loss, matryoshka_dims=list(spec["matryoshka_dims"]))
    return loss


def build_evaluator(spec: Any, eval_dataset: Any, cross_encoder: bool) -> Any:
    if spec is None or eval_dataset is None:
        return None
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    import sentencekit.evaluation as evaluation

    cls = _named(evaluation, spec["name"], "evaluator")
    columns = eval_dataset.column_names
    label = next((c for c in ("score", "label") if c in columns), None)
    texts = [c for c in columns if c != label]
    kwargs = dict(spec.get("kwargs") or {})
    if cross_encoder:
        # CrossEncoderCorrelationEvaluator(pairs, scores) / CrossEncoderClassificationEvaluator(pairs, labels)
        pairs = list(zip(eval_dataset[texts[0]], eval_dataset[texts[1]]))
        return cls(pairs, eval_dataset[label], **kwargs)
    return cls(eval_dataset[texts[0]], eval_dataset[texts[1]], eval_dataset[label], **kwargs)


def run_config(path: str | os.PathLike) -> Path:
    """Train as the config says; returns the folder of the final model."""
    config = load_config(path)
    base = Path(path).resolve().parent
    cross_encoder = str(config.get("model_type", "sentence-transformer")).replace("_", "-") == "cross-encoder"
    output_dir = Path(config["output_dir"])
    output_dir = output_dir if output_dir.is_absolute() else base / output_dir
    train = load_dataset_spec(config["train_dataset"], base)
    evaluation = load_dataset_spec(config["eval_dataset"], base) if config.get("eval_dataset") else None
    if cross_encoder:
        from sentencekit.families.reranker import CrossEncoder
        from sentencekit.training import CrossEncoderTrainer as Trainer
        from sentencekit.training import CrossEncoderTrainingArguments as Args

        model = CrossEncoder(config["model"], num_labels=config.get("num_labels", 1))
    else:
        from sentencekit.families.embedder import SentenceTransformer
        from sentencekit.training import SentenceTransformerTrainer as Trainer
        from sentencekit.training import SentenceTransformerTrainingArguments as Args

        model = SentenceTransformer(config["model"])
    args = Args(output_dir=str(output_dir), **(config.get("args") or {}))
    evaluator = build_evaluator(config.get("evaluator"), evaluation, cross_encoder)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                      loss=build_loss(config.get("loss"), model, cross_encoder), evaluator=evaluator)
    trainer.train(resume_from_checkpoint=True if config.get("resume") else None)
    final = output_dir / "final"
    trainer.save_model(str(final))
    if evaluator is not None:
        metrics = evaluator(trainer.st_model)
        print("Final evaluation:", ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return final
