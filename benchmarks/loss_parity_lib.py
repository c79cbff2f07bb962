"""What the loss-parity scripts (``sparse_loss_parity.py``, ``multivector_loss_parity.py``) share: the batch texts,
deterministic training mode, one forward + backward per side, and the comparison of loss values and parameter
gradients between sentencekit and sentence-transformers 6.2 (run in the peer environment)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

QUERIES = ["how do i get a refund", "capital of france", "reset my password please", "shipping is late again"]
POSITIVES = ["Refunds are paid within five days of the return arriving.", "Paris is the capital of France.",
             "Use the forgotten password link on the login page.", "Parcels may take longer during holidays."]
NEGATIVES = ["The weather in Paris is mild today.", "Berlin has many museums.", "Cats sleep most of the day.",
             "Stock prices fell sharply on Monday."]
NEGATIVES_2 = ["A recipe for tomato soup.", "The train leaves at noon.", "Passwords must be long.",
               "Refund requests need a receipt."]
TOLERANCE = 1e-5

#: a row of a parity table: (label, max |loss difference|, max |gradient difference|, relative to the largest
#: gradient, agrees)
Row = tuple[str, float, float, float, bool]


def quiet_dropout(model: Any) -> Any:
    """Train mode with every dropout at p = 0: the training code paths, deterministic."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    return model


def grads(model: Any) -> dict[str, torch.Tensor]:
    """Parameter gradients keyed by a name both libraries share (``auto_model``/``model`` dropped)."""
    out = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            out[name.replace(".auto_model.", ".").replace(".model.", ".")] = param.grad.detach().clone()
    return out


def run(model: Any, loss: Any, features: list[dict[str, Any]], labels: Any) -> tuple[dict[str, float], dict]:
    """Loss values (``total`` plus each dict entry) and parameter gradients of one forward + backward on
    already tokenized columns."""
    model.zero_grad()
    out = loss(features, labels)
    parts = out if isinstance(out, dict) else {"loss": out}
    total = torch.stack(list(parts.values())).sum()
    total.backward()
    values = {"total": float(total.detach())} | {key: float(v.detach()) for key, v in parts.items()}
    return values, grads(model)


def tokenized(model: Any, columns: list[list[str]]) -> list[dict[str, Any]]:
    """Each column tokenized by the model (``preprocess`` in sentence-transformers, ``tokenize`` here)."""
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    return [tokenize(texts) for texts in columns]


def compare(label: str, ours: tuple, theirs: tuple) -> Row:
    """One table row: values agree to ``TOLERANCE`` (absolute, or relative to the value) and gradients to
    ``TOLERANCE`` (absolute, or relative to the largest gradient)."""
    (our_values, our_grads), (their_values, their_grads) = ours, theirs
    if set(our_values) != set(their_values):
        raise AssertionError(f"{label}: loss keys differ: {sorted(our_values)} vs {sorted(their_values)}")
    if set(our_grads) != set(their_grads):
        raise AssertionError(f"{label}: parameters with gradients differ: "
                             f"{sorted(set(our_grads) ^ set(their_grads))[:5]}")
    value_diff = max(abs(our_values[k] - their_values[k]) for k in our_values)
    value_ok = all(abs(our_values[k] - their_values[k]) <= TOLERANCE * max(1.0, abs(their_values[k]))
                   for k in our_values)
    grad_diff = max(float((our_grads[k] - their_grads[k]).abs().max()) for k in our_grads)
    scale = max(float(g.abs().max()) for g in their_grads.values())
    relative = grad_diff / scale if scale else grad_diff
    ok = value_ok and (grad_diff <= TOLERANCE or relative <= TOLERANCE)
    return label, value_diff, grad_diff, relative, ok


def failed_row(label: str, error: Exception) -> Row:
    """A case that raised: a failing row of the table, not the end of the run."""
    return f"{label}: {type(error).__name__}: {str(error)[:90]}", float("nan"), float("nan"), float("nan"), False


def print_rows(rows: list[Row], width: int = 62) -> None:
    print(f"\n{'':4}{'case':<{width}}{'max|dloss|':>12}{'max|dgrad|':>12}{'rel':>10}")
    for label, value_diff, grad_diff, relative, ok in rows:
        print(f"{'OK ' if ok else 'BAD'} {label:<{width}}{value_diff:>12.2e}{grad_diff:>12.2e}{relative:>10.1e}")
    print(f"\n{sum(r[4] for r in rows)} of {len(rows)} cases agree")


def print_raised(cases: list[tuple[str, Callable[[Any, Any], Any]]], sides: list[tuple[Any, Any]],
                 width: int = 62) -> None:
    """Misuse: the exception class each side raises (``-`` when none); ``sides`` = ``[(losses module, model)]``
    for sentencekit, then sentence-transformers."""
    print(f"\n{'':4}{'misuse':<{width}}{'sentencekit':>22}{'sentence-transformers':>24}")
    for label, call in cases:
        raised = []
        for losses, model in sides:
            try:
                call(losses, model)
                raised.append("-")
            except Exception as error:  # noqa: BLE001 (the class raised is what is compared)
                raised.append(type(error).__name__)
        print(f"{'OK ' if raised[0] == raised[1] else 'BAD'} {label:<{width}}{raised[0]:>22}{raised[1]:>24}")
