"""``InputExample``: one training example of sentence-transformers' v2-era API (``readers.InputExample``).

Kept so that old scripts and datasets built from it still load; new code passes a
``datasets.Dataset`` to the trainer instead. Torch-free.

>>> InputExample(texts=["How do I get a refund?", "Refunds take 5 days."], label=1.0)
InputExample(guid='', texts=['How do I get a refund?', 'Refunds take 5 days.'], label=1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InputExample:
    """An example: an optional ``guid``, its ``texts`` (one per input column) and a ``label``
    (a float score or an int class; 0 by default), as in ``sentence_transformers.InputExample``."""

    guid: str = ""
    texts: list[str] = field(default_factory=list)
    label: int | float = 0

    def __post_init__(self) -> None:
        # sentence-transformers accepts any sequence (tuples are common); keep a list, as it does.
        if isinstance(self.texts, str):
            raise TypeError("InputExample(texts=...) takes a list of texts (one per column), not a single "
                            f"string: write texts=[{self.texts!r}].")
        self.texts = list(self.texts) if self.texts is not None else []

    def __str__(self) -> str:
        return f"<InputExample> label: {self.label}, texts: {'; '.join(self.texts)}"
