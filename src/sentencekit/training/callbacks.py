"""Training bookkeeping: what the model card reports (base model, data, loss, hyper-parameters,
evaluation results) and a plot of the training curves written when training ends; and the SPLADE
regulariser-weight warm-up (:class:`SpladeRegularizerWeightSchedulerCallback`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from enum import Enum
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

PLOT_FILE = "training_curves.png"


class TrainingRecordCallback(TrainerCallback):
    """Keeps ``model.training_record`` (read by the model card) up to date and plots the curves."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        trainer = self.trainer
        model = trainer.st_model
        changed = _changed_arguments(args)
        losses = trainer.loss if isinstance(trainer.loss, dict) else {"train": trainer.loss}
        model.training_record = {
            "base_model": getattr(model, "model_name_or_path", None),
            "datasets": _describe(trainer.train_dataset, "train"),
            "eval_datasets": _describe(trainer.eval_dataset, "eval"),
            "losses": {name: {"class": type(fn).__name__, "config": _config(fn)} for name, fn in losses.items()},
            "hyperparameters": json.loads(json.dumps(changed, default=str)),
            "evaluation": [],
        }

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
        record = getattr(self.trainer.st_model, "training_record", None)
        if record is not None and metrics:
            record["evaluation"].append({"epoch": state.epoch, "step": state.global_step,
                                         **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}})

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if args.should_save and args.output_dir:
            try:
                plot_training_curves(state.log_history, os.path.join(args.output_dir, PLOT_FILE))
            except ImportError:
                logger.info("matplotlib is not installed: no training plot (pip install sentencekit[train]).")


def plot_training_curves(log_history: list[dict[str, Any]], path: str) -> str | None:
    """Loss per step (training and evaluation) and each evaluation metric per step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [h for h in log_history if any(k.startswith("eval_") for k in h)]
    eval_loss = [(h["step"], h["eval_loss"]) for h in evals if "eval_loss" in h]
    metric_names = sorted({k for h in evals for k, v in h.items() if k.startswith("eval_") and k != "eval_loss"
                           and isinstance(v, (int, float)) and not k.endswith(("_runtime", "_per_second"))})
    if not train and not evals:
        return None
    fig, axes = plt.subplots(1, 2 if metric_names else 1, figsize=(12 if metric_names else 6, 4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="training loss")
    if eval_loss:
        ax.plot(*zip(*eval_loss), marker="o", label="evaluation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    if train or eval_loss:
        ax.legend()
    if metric_names:
        ax = axes[0][1]
        for name in metric_names[:8]:
            points = [(h["step"], h[name]) for h in evals if name in h]
            ax.plot(*zip(*points), marker="o", label=name.removeprefix("eval_"))
        ax.set_xlabel("step")
        ax.set_title("Evaluation metrics")
        ax.legend(fontsize="small")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# Bookkeeping fields (paths, logging, set by us or by post-init) that say nothing about the training.
_NOT_HYPERPARAMETERS = {
    "output_dir", "logging_dir", "run_name", "accelerator_config", "debug", "report_to", "disable_tqdm",
    "activation_checkpointing", "gradient_checkpointing", "prediction_loss_only", "remove_unused_columns",
    "do_eval", "do_train", "do_predict", "logging_steps", "save_steps", "save_total_limit", "eval_steps",
    "logging_strategy", "save_strategy", "eval_strategy", "overwrite_output_dir", "dataloader_num_workers",
    "push_to_hub", "hub_model_id", "hub_token", "router_mapping", "learning_rate_mapping",
}


def _changed_arguments(args: Any) -> dict[str, Any]:
    """Arguments that differ from their declared defaults (no new instance: building one would reset
    accelerate's state mid-training)."""
    changed = {}
    for f in dataclasses.fields(args):
        if f.name in _NOT_HYPERPARAMETERS or f.name.startswith("_"):
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        value = getattr(args, f.name, default)
        if value != default and not (hasattr(value, "value") and value.value == default):
            changed[f.name] = getattr(value, "value", value)
    return changed


def _describe(dataset: Any, default_name: str) -> dict[str, Any] | None:
    if dataset is None:
        return None
    parts = dataset.items() if isinstance(dataset, dict) else [(default_name, dataset)]
    return {name: {"rows": len(ds), "columns": [c for c in ds.column_names if c != "dataset_name"]}
            for name, ds in parts}


def _config(loss: Any) -> Any:
    getter = getattr(loss, "get_config_dict", None)
    try:
        return json.loads(json.dumps(getter(), default=str)) if getter else {}
    except (TypeError, ValueError):
        return {}


class SchedulerType(str, Enum):
    """How :class:`SpladeRegularizerWeightSchedulerCallback` ramps the weights up (sentence-transformers' names)."""

    LINEAR = "linear"
    QUADRATIC = "quadratic"


class SpladeRegularizerWeightSchedulerCallback(TrainerCallback):
    """Ramp a ``SpladeLoss``'s regulariser weights from 0 to their set values over the first
    ``warmup_ratio`` of the training steps: at the start of step ``s`` (0-based ``state.global_step``) the
    weight is ``max * r`` (linear) or ``max * r**2`` (quadratic), ``r = s / max(1, int(total_steps *
    warmup_ratio))``, and ``max`` from then on. Strong FLOPS pressure before the ranking loss has shaped
    the vectors collapses them to nothing; SPLADE (Formal et al. 2021, sec. 3) warms the weights up
    quadratically over the first 50k steps for that reason. Behaviour and defaults as sentence-transformers
    6.2's callback, which its trainer adds at callback index 1 for every ``SpladeLoss`` (so does
    ``SparseEncoderTrainer``). The current weights are logged as ``document_regularizer_weight`` /
    ``query_regularizer_weight``.

    Raises ``ValueError`` for a loss that is not a ``SpladeLoss``, an unknown ``scheduler_type`` or a
    ``warmup_ratio`` outside ``(0, 1]``.
    """

    def __init__(self, loss: Any, scheduler_type: str | SchedulerType = SchedulerType.QUADRATIC,
                 warmup_ratio: float = 1 / 3) -> None:
        from sentencekit.losses.sparse import SpladeLoss

        if not isinstance(loss, SpladeLoss):
            raise ValueError(f"SpladeRegularizerWeightSchedulerCallback schedules a SpladeLoss, got "
                             f"{type(loss).__name__}.")
        if not 0 < warmup_ratio <= 1:
            raise ValueError(f"warmup_ratio must be in (0, 1], got {warmup_ratio}")
        self.loss = loss
        self.scheduler_type = SchedulerType(getattr(scheduler_type, "value", scheduler_type))
        self.warmup_ratio = warmup_ratio
        self.max_document_weight: float = loss.document_regularizer_weight
        self.max_query_weight: float | None = loss.query_regularizer_weight
        self.warmup_steps: int | None = None

    def weight(self, step: int, max_weight: float | None) -> float | None:
        """The weight at the start of (0-based) ``step``, for a set value ``max_weight``."""
        if max_weight is None or self.warmup_steps is None or step >= self.warmup_steps:
            return max_weight
        ratio = step / self.warmup_steps
        return max_weight * (ratio if self.scheduler_type is SchedulerType.LINEAR else ratio**2)

    def _apply(self, step: int) -> None:
        self.loss.document_regularizer_weight = self.weight(step, self.max_document_weight)
        self.loss.query_regularizer_weight = self.weight(step, self.max_query_weight)

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self.warmup_steps = max(1, int(state.max_steps * self.warmup_ratio))
        self._apply(state.global_step)  # 0, or where a resumed run left off

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self._apply(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        # the loss keeps the full weights after training (e.g. for a later evaluation loss)
        self.loss.document_regularizer_weight = self.max_document_weight
        self.loss.query_regularizer_weight = self.max_query_weight

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if logs is not None and "loss" in logs:
            logs["document_regularizer_weight"] = self.loss.document_regularizer_weight
            if self.loss.query_regularizer_weight is not None:
                logs["query_regularizer_weight"] = self.loss.query_regularizer_weight
