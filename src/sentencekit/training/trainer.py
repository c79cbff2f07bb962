"""Trainers built on ``transformers.Trainer``: one shared base, with bi-encoder, sparse-encoder, multi-vector and
cross-encoder flavours that differ only in their collator, default loss and model class (and, for sparse
encoders, the SPLADE regulariser warm-up callback).

What the base adds to ``transformers.Trainer``: sentence-transformers' dataset convention (a
``label``/``score`` column is the label, every other column an input), losses as modules (one per
dataset for a dict of datasets), batch samplers, evaluators run at each evaluation, checkpoints in
the sentence-transformers format (resumable, incomplete ones skipped), a model card and a plot of the
training curves.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader
from transformers import Trainer, TrainerCallback

from sentencekit.training.args import (
    BaseTrainingArguments,
    CrossEncoderTrainingArguments,
    MultiVectorEncoderTrainingArguments,
    SentenceTransformerTrainingArguments,
    SparseEncoderTrainingArguments,
)
from sentencekit.training.callbacks import TrainingRecordCallback
from sentencekit.training.collator import (
    VALID_LABEL_COLUMNS,
    CrossEncoderDataCollator,
    MultiVectorEncoderDataCollator,
    SentenceTransformerDataCollator,
    SparseEncoderDataCollator,
    split_columns,
)
from sentencekit.training.samplers import (
    BatchSamplers,
    DefaultBatchSampler,
    GroupByLabelBatchSampler,
    MultiDatasetBatchSampler,
    NoDuplicatesBatchSampler,
)

logger = logging.getLogger(__name__)

LOSS_STATE_FILE = "loss_state.safetensors"
_SAMPLERS = {
    BatchSamplers.BATCH_SAMPLER: DefaultBatchSampler,
    BatchSamplers.NO_DUPLICATES: NoDuplicatesBatchSampler,
    BatchSamplers.GROUP_BY_LABEL: GroupByLabelBatchSampler,
}


class BaseTrainer(Trainer):
    """Shared trainer logic; use :class:`SentenceTransformerTrainer` or :class:`CrossEncoderTrainer`."""

    args_class: type[BaseTrainingArguments] = BaseTrainingArguments

    def __init__(
        self,
        model: nn.Module | None = None,
        args: BaseTrainingArguments | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        loss: nn.Module | dict[str, nn.Module] | Callable[[nn.Module], nn.Module] | None = None,
        evaluator: Any = None,
        data_collator: Callable | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        model_init: Callable[[], nn.Module] | None = None,
        compute_metrics: Callable | None = None,
        preprocess_logits_for_metrics: Callable | None = None,
        processing_class: Any = None,
    ) -> None:
        if args is None:
            args = self.args_class(output_dir="tmp_trainer")
        elif not isinstance(args, self.args_class):
            raise TypeError(f"args must be a {self.args_class.__name__}, got {type(args).__name__}.")
        if model is None:
            if model_init is None:
                raise ValueError(f"{type(self).__name__} needs a model (or model_init).")
            model = model_init()
        if compute_metrics is not None:
            raise ValueError("compute_metrics is not used by this trainer: pass an evaluator instead.")
        train_dataset = self._prepare_dataset(train_dataset, "train_dataset")
        eval_dataset = self._prepare_dataset(eval_dataset, "eval_dataset")
        self.loss = self._prepare_loss(loss, model, train_dataset)
        self.evaluator = self._prepare_evaluator(evaluator)
        if data_collator is None:
            data_collator = self._default_collator(model, args)
        self._record = TrainingRecordCallback(self)
        #: the SentenceTransformer / CrossEncoder being trained (in place); transformers' Trainer gets its
        #: torch modules (``model.network``), the nn.Module it optimizes, as ``trainer.model``
        self.st_model = model
        super().__init__(
            model=model.network, args=args, data_collator=data_collator, train_dataset=train_dataset,
            eval_dataset=eval_dataset, processing_class=processing_class, model_init=None,
            callbacks=[self._record, *(callbacks or [])], optimizers=optimizers,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        )
        self.model_init = model_init
        for loss_fn in self._losses():
            loss_fn.to(self.model.device)

    def _validate_args(self) -> None:
        # An evaluator alone is enough to evaluate during training (transformers wants an eval_dataset).
        if self.eval_dataset is None and self.evaluator is not None:
            strategy = self.args.eval_strategy
            self.args.eval_strategy = "no"
            try:
                super()._validate_args()
            finally:
                self.args.eval_strategy = strategy
        else:
            super()._validate_args()

    # -- family-specific hooks ----------------------------------------------------------------------
    def _default_collator(self, model: nn.Module, args: BaseTrainingArguments) -> Callable:
        raise NotImplementedError

    def _default_loss(self, model: nn.Module) -> nn.Module:
        raise NotImplementedError

    def _batch_inputs(self, inputs: dict[str, Any]) -> Any:
        raise NotImplementedError

    # -- set-up -------------------------------------------------------------------------------------
    @staticmethod
    def _prepare_dataset(dataset: Any, what: str) -> Any:
        """Check the column convention; a dict of datasets gets a ``dataset_name`` column per row."""
        if dataset is None:
            return None
        from datasets import Dataset, DatasetDict

        if isinstance(dataset, (dict, DatasetDict)):
            named = {}
            for name, ds in dataset.items():
                _check_columns(ds, f"{what}[{name!r}]")
                if "dataset_name" not in ds.column_names:
                    ds = ds.add_column("dataset_name", [name] * len(ds))
                named[name] = ds
            return DatasetDict(named)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"{what} must be a datasets.Dataset or a dict of them, got {type(dataset).__name__}.")
        _check_columns(dataset, what)
        return dataset

    def _prepare_loss(self, loss: Any, model: nn.Module, train_dataset: Any) -> nn.Module | dict[str, nn.Module]:
        if loss is None:
            loss = self._default_loss(model)
            logger.info("No loss given: using %s.", type(loss).__name__)
        if isinstance(loss, dict):
            names = set(train_dataset) if isinstance(train_dataset, dict) else set()
            missing = names - set(loss)
            if missing:
                raise ValueError(f"No loss for training dataset(s) {sorted(missing)}; "
                                 f"the loss dict has {sorted(loss)}.")
            return {name: self._prepare_loss(fn, model, None) for name, fn in loss.items()}
        if not isinstance(loss, nn.Module) and callable(loss):
            loss = loss(model)  # a factory (model -> loss), e.g. for hyper-parameter search
        if not isinstance(loss, nn.Module):
            raise TypeError(f"loss must be an nn.Module, a dict of them, or a model -> loss callable; got {loss!r}")
        return loss

    @staticmethod
    def _prepare_evaluator(evaluator: Any) -> Any:
        if isinstance(evaluator, (list, tuple)):
            from sentencekit.evaluation import SequentialEvaluator

            return SequentialEvaluator(list(evaluator))
        return evaluator

    def _losses(self) -> list[nn.Module]:
        return list(self.loss.values()) if isinstance(self.loss, dict) else [self.loss]

    # -- loss ---------------------------------------------------------------------------------------
    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor | tuple[torch.Tensor, dict]:
        dataset_name = inputs.get("dataset_name")
        loss_fn = self.loss
        if isinstance(loss_fn, dict):
            if dataset_name is None:
                raise ValueError("A dict of losses needs a dict of datasets (one loss per dataset name).")
            loss_fn = loss_fn[dataset_name]
        loss = loss_fn(self._batch_inputs(inputs), inputs.get("label"))
        if isinstance(loss, dict):  # losses made of named components: train on the sum
            loss = torch.stack(list(loss.values())).sum()
        return (loss, {}) if return_outputs else loss

    def prediction_step(self, model: nn.Module, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None) -> tuple[torch.Tensor, None, None]:
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # -- optimizer: loss parameters and per-module learning rates ------------------------------------
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        named = [(n, p) for n, p in opt_model.named_parameters() if p.requires_grad]
        seen = {id(p) for _, p in named}
        for i, loss_fn in enumerate(self._losses()):  # e.g. SoftmaxLoss's classifier
            named += [(f"loss{i}.{n}", p) for n, p in loss_fn.named_parameters()
                      if p.requires_grad and id(p) not in seen and not seen.add(id(p))]
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, param in named:
            lr = next((lr for pattern, lr in self.args.learning_rate_mapping.items() if re.search(pattern, name)),
                      self.args.learning_rate)
            wd = self.args.weight_decay if (name in decay or name.startswith("loss")) and param.dim() > 1 else 0.0
            groups.setdefault((lr, wd), []).append(param)
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, opt_model)
        param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    # -- data loaders -------------------------------------------------------------------------------
    def _batch_sampler(self, dataset: Any, batch_size: int, *, shuffle: bool, drop_last: bool) -> Any:
        def one(ds: Any) -> DefaultBatchSampler:
            sampler = self.args.batch_sampler if shuffle else BatchSamplers.BATCH_SAMPLER
            cls = _SAMPLERS.get(sampler, sampler)
            if not callable(cls):
                raise ValueError(f"Unknown batch_sampler {sampler!r}")
            return cls(ds, batch_size=batch_size, drop_last=drop_last, valid_label_columns=VALID_LABEL_COLUMNS,
                       seed=self.args.seed, shuffle=shuffle)

        if isinstance(dataset, dict):
            parts = list(dataset.values())
            offsets = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
            return ConcatDataset(parts), MultiDatasetBatchSampler(
                [one(p) for p in parts], offsets, self.args.multi_dataset_batch_sampler, seed=self.args.seed)
        return dataset, one(dataset)

    def _loader(self, dataset: Any, batch_size: int, *, training: bool) -> DataLoader:
        dataset, batch_sampler = self._batch_sampler(dataset, batch_size, shuffle=training,
                                                     drop_last=training and self.args.dataloader_drop_last)
        loader = DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers,
                            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available())
        return self.accelerator.prepare(loader)

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("Training needs a train_dataset.")
        return self._loader(self.train_dataset, self._train_batch_size, training=True)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        if isinstance(eval_dataset, str):
            eval_dataset = self.eval_dataset[eval_dataset]
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("Evaluation needs an eval_dataset.")
        return self._loader(dataset, self.args.eval_batch_size, training=False)

    # -- evaluation: evaluation loss (if eval_dataset) + the evaluator's metrics ----------------------
    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        if eval_dataset is None and self.eval_dataset is None:
            if self.evaluator is None:
                raise ValueError("Nothing to evaluate: pass an eval_dataset and/or an evaluator.")
            metrics = self._evaluator_metrics(metric_key_prefix)
            self.log(dict(metrics))  # log() adds "epoch" to the dict it is given
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics
        self._evaluator_ran = False
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def evaluation_loop(self, dataloader: DataLoader, description: str, prediction_loss_only: bool | None = None,
                        ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> Any:
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                         metric_key_prefix)
        # With several eval datasets this loop runs once per dataset; the evaluator once per evaluate().
        if (self.evaluator is not None and metric_key_prefix.split("_")[0] == "eval"
                and not getattr(self, "_evaluator_ran", False)):
            self._evaluator_ran = True
            output.metrics.update(self._evaluator_metrics("eval"))
        return output

    def _evaluator_metrics(self, prefix: str) -> dict[str, float]:
        output_path = os.path.join(self.args.output_dir, "eval") if self.args.output_dir else None
        if output_path:
            os.makedirs(output_path, exist_ok=True)
        was_training = self.model.training
        metrics = self.evaluator(self.st_model, output_path=output_path, epoch=self.state.epoch or -1,
                                 steps=self.state.global_step)
        if was_training:
            self.model.train()
        return {f"{prefix}_{k}": float(v) for k, v in metrics.items()}

    # -- checkpoints in the sentence-transformers format ----------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        self.st_model.save(output_dir, create_model_card=True)
        loss_state = self._loss_state()
        if loss_state and Path(output_dir).name.startswith("checkpoint-"):
            # Parameters a loss owns (e.g. SoftmaxLoss's classifier) are needed to resume exactly.
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in loss_state.items()},
                      os.path.join(output_dir, LOSS_STATE_FILE))

    def _loss_state(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers the losses own, not those of the model they hold."""
        model_tensors = {id(t) for t in [*self.model.parameters(), *self.model.buffers()]}
        state = {}
        for i, fn in enumerate(self._losses()):
            for name, tensor in [*fn.named_parameters(), *fn.named_buffers()]:
                if id(tensor) not in model_tensors:
                    state[f"{i}.{name}"] = tensor
        return state

    def _load_weights_from(self, folder: str) -> None:
        loaded = type(self.st_model)(folder, device=str(self.st_model.device))
        self.st_model.load_state_dict(loaded.state_dict())
        loss_file = Path(folder) / LOSS_STATE_FILE
        if loss_file.is_file():
            from safetensors.torch import load_file

            state = load_file(str(loss_file))
            for i, fn in enumerate(self._losses()):
                own = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(i)}
                if own:
                    fn.load_state_dict(own, strict=False)

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """A fresh model from ``model_init`` (hyper-parameter search): it becomes :attr:`st_model`, and its
        torch modules what transformers' Trainer optimizes."""
        model = super().call_model_init(trial)
        self.st_model = model
        return model.network

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        self._load_weights_from(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        if best and os.path.isdir(best):
            logger.info("Loading best model from %s (score: %s).", best, self.state.best_metric)
            self._load_weights_from(best)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """Train. ``resume_from_checkpoint=True`` resumes from the last *complete* checkpoint in
        ``output_dir`` (one a crash interrupted while it was being written is skipped)."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint to resume from in {self.args.output_dir}.")
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest ``checkpoint-N`` folder whose trainer state was written (the Trainer writes it last)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir() and (path / "trainer_state.json").is_file():
            found.append((int(match.group(1)), path))
    return str(max(found)[1]) if found else None


def _check_columns(dataset: Any, what: str) -> None:
    columns = [c for c in dataset.column_names if c != "dataset_name"]
    if not columns:
        raise ValueError(f"{what} has no columns.")
    inputs, label = split_columns(dict.fromkeys(columns))
    if not inputs:
        raise ValueError(f"{what} has only a label column ({label!r}); it needs at least one text column.")


class SentenceTransformerTrainer(BaseTrainer):
    """Train a :class:`~sentencekit.SentenceTransformer` (bi-encoder).

    >>> from datasets import Dataset
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MultipleNegativesRankingLoss
    >>> from sentencekit.training import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")          # doctest: +SKIP
    >>> train = Dataset.from_dict({"anchor": ["How do I get a refund?"],
    ...                            "positive": ["Refunds are paid within 5 days."]})
    >>> args = SentenceTransformerTrainingArguments(output_dir="out", num_train_epochs=1)  # doctest: +SKIP
    >>> SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
    ...                            loss=MultipleNegativesRankingLoss(model)).train()      # doctest: +SKIP
    """

    args_class = SentenceTransformerTrainingArguments

    def _default_collator(self, model: nn.Module, args: BaseTrainingArguments) -> Callable:
        return SentenceTransformerDataCollator(model, prompts=args.prompts, router_mapping=args.router_mapping)

    def _default_loss(self, model: nn.Module) -> nn.Module:
        from sentencekit.losses import CoSENTLoss

        return CoSENTLoss(model)

    def _batch_inputs(self, inputs: dict[str, Any]) -> Any:
        return inputs["features"]


class CrossEncoderTrainer(BaseTrainer):
    """Train a :class:`~sentencekit.CrossEncoder` (reranker); inputs are text pairs (or a query with
    several documents), labels scores or classes.

    >>> from sentencekit.training import CrossEncoderTrainer, CrossEncoderTrainingArguments  # doctest: +SKIP
    """

    args_class = CrossEncoderTrainingArguments

    def _default_collator(self, model: nn.Module, args: BaseTrainingArguments) -> Callable:
        return CrossEncoderDataCollator()

    def _default_loss(self, model: nn.Module) -> nn.Module:
        from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss, CrossEntropyLoss

        return BinaryCrossEntropyLoss(model) if model.num_labels == 1 else CrossEntropyLoss(model)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """Train (see :meth:`BaseTrainer.train`). A CrossEncoder built on a folder without a trained head
        (``model.untrained_head``) may score from here on: training is what gives the new head meaning, and
        evaluators run ``predict`` during training."""
        self.st_model.untrained_head = None
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _batch_inputs(self, inputs: dict[str, Any]) -> Any:
        return inputs["inputs"]


class SparseEncoderTrainer(SentenceTransformerTrainer):
    """Train a :class:`~sentencekit.SparseEncoder` (SPLADE, inference-free SPLADE, CSR): the bi-encoder
    trainer with sentence-transformers 6.2's sparse defaults.

    - No loss: ``SpladeLoss(SparseMultipleNegativesRankingLoss, document_regularizer_weight=3e-5,
      query_regularizer_weight=5e-5)``.
    - Every ``SpladeLoss`` (also inside a dict of losses) gets a
      :class:`~sentencekit.training.callbacks.SpladeRegularizerWeightSchedulerCallback` (quadratic, warm-up
      1/3 of the steps), inserted at callback index 1, unless ``callbacks`` already holds one for it.
    - ``args`` must be :class:`SparseEncoderTrainingArguments`; the collator is
      :class:`~sentencekit.training.collator.SparseEncoderDataCollator`.

    >>> from datasets import Dataset
    >>> from sentencekit import SparseEncoder
    >>> from sentencekit.training import SparseEncoderTrainer, SparseEncoderTrainingArguments
    >>> model = SparseEncoder("path/to/splade")                                         # doctest: +SKIP
    >>> train = Dataset.from_dict({"query": ["How do I get a refund?"],
    ...                            "answer": ["Refunds are paid within 5 days."]})
    >>> args = SparseEncoderTrainingArguments(output_dir="out", num_train_epochs=1)     # doctest: +SKIP
    >>> SparseEncoderTrainer(model=model, args=args, train_dataset=train).train()      # doctest: +SKIP
    """

    args_class = SparseEncoderTrainingArguments

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_regularizer_schedulers()

    def _default_collator(self, model: nn.Module, args: BaseTrainingArguments) -> Callable:
        return SparseEncoderDataCollator(model, prompts=args.prompts, router_mapping=args.router_mapping)

    def _default_loss(self, model: nn.Module) -> nn.Module:
        from sentencekit.losses.sparse import SparseMultipleNegativesRankingLoss, SpladeLoss

        return SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                          query_regularizer_weight=5e-5)

    def _add_regularizer_schedulers(self) -> None:
        from sentencekit.losses.sparse import SpladeLoss
        from sentencekit.training.callbacks import SpladeRegularizerWeightSchedulerCallback

        callbacks = self.callback_handler.callbacks
        scheduled = {id(cb.loss) for cb in callbacks if isinstance(cb, SpladeRegularizerWeightSchedulerCallback)}
        for loss_fn in self._losses():
            if isinstance(loss_fn, SpladeLoss) and id(loss_fn) not in scheduled:
                logger.info("SpladeLoss without a SpladeRegularizerWeightSchedulerCallback: adding one (quadratic "
                            "warm-up over the first third of the steps).")
                # index 1: right after transformers' flow callback, before logging reads the weights
                callbacks.insert(1, SpladeRegularizerWeightSchedulerCallback(loss_fn))


class MultiVectorEncoderTrainer(SentenceTransformerTrainer):
    """Train a :class:`~sentencekit.MultiVectorEncoder` (ColBERT-style late interaction), as
    sentence-transformers 6.2's ``MultiVectorEncoderTrainer``: the bi-encoder trainer with

    - no loss: :class:`~sentencekit.losses.multivector.MultiVectorMultipleNegativesRankingLoss` (MaxSim, scale 1);
    - ``args``: :class:`MultiVectorEncoderTrainingArguments` (its ``max_length`` sets the training tokenization);
    - the collator :class:`~sentencekit.training.collator.MultiVectorEncoderDataCollator` (the first column is
      tokenized as queries, the others as documents, unless ``router_mapping`` says otherwise).

    Datasets: (query, positive[, negatives...]) for the ranking losses; (query, document_1, ..., document_N,
    scores) with a list of ``N`` teacher scores per row for ``MultiVectorDistillKLDivLoss``. Checkpoints,
    resuming and ``load_best_model_at_end`` save and load the ``MultiVectorEncoder`` format.

    >>> from datasets import Dataset
    >>> from sentencekit import MultiVectorEncoder
    >>> from sentencekit.training import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    >>> model = MultiVectorEncoder("sentence-transformers/all-MiniLM-L6-v2")           # doctest: +SKIP
    >>> train = Dataset.from_dict({"query": ["How do I get a refund?"],
    ...                            "answer": ["Refunds are paid within 5 days."]})
    >>> args = MultiVectorEncoderTrainingArguments(output_dir="out",
    ...                                            max_length={"query": 32, "document": 180})  # doctest: +SKIP
    >>> MultiVectorEncoderTrainer(model=model, args=args, train_dataset=train).train()  # doctest: +SKIP
    """

    args_class = MultiVectorEncoderTrainingArguments

    def _default_collator(self, model: nn.Module, args: BaseTrainingArguments) -> Callable:
        return MultiVectorEncoderDataCollator(model, prompts=args.prompts, router_mapping=args.router_mapping,
                                              max_length=args.max_length)

    def _default_loss(self, model: nn.Module) -> nn.Module:
        from sentencekit.losses.multivector import MultiVectorMultipleNegativesRankingLoss

        return MultiVectorMultipleNegativesRankingLoss(model)
