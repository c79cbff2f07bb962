"""Token counts and ids of requests, as a served model will see them, for either backend.

The torch models carry a Hugging Face fast tokenizer, the ONNX ones sentencekit's ``FastTokenizer``;
both wrap a Rust ``tokenizers.Tokenizer``. :class:`TokenCounter` keeps its own copy of that tokenizer,
with truncation and padding off, so that

* it sees the full length of every input (to refuse ``truncate=false`` inputs that are too long, and to
  pack batches by a token budget);
* it never shares mutable tokenizer state with the inference thread: Hugging Face tokenizers change
  their truncation settings on each call, and two threads doing that at once fail with "Already
  borrowed". The copy is never changed after construction, so request handlers may use it from any
  thread.

>>> counter = TokenCounter.for_model(model)                       # doctest: +SKIP
>>> counter.lengths(["hello world", "a much longer text ..."])    # full lengths, special tokens included
[4, 9]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class TokenCounter:
    """Lengths, ids and decoding with a model's tokenizer (see the module docstring)."""

    def __init__(self, tokenizer: Any, *, max_length: int | None, do_lower_case: bool = False) -> None:
        from tokenizers import Tokenizer

        # A private copy: settings on the model's own tokenizer may change under our feet.
        self._tok = Tokenizer.from_str(tokenizer.to_str())
        self._tok.no_truncation()
        self._tok.no_padding()
        # static-embedding models have no length limit (max_seq_length is infinite)
        self.max_length = int(max_length) if max_length and math.isfinite(max_length) else None
        self.do_lower_case = do_lower_case
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def for_model(cls, model: Any) -> TokenCounter:
        """The counter of a ``SentenceTransformer`` / ``CrossEncoder`` of either backend."""
        tok = model.tokenizer
        raw = None
        for attribute in ("backend_tokenizer", "backend"):  # HF fast tokenizer / sentencekit FastTokenizer
            raw = getattr(tok, attribute, None)
            if raw is not None and hasattr(raw, "to_str"):
                break
        if raw is None and hasattr(tok, "to_str"):
            raw = tok  # a bare tokenizers.Tokenizer (static-embedding models)
        if raw is None or not hasattr(raw, "to_str"):
            raise ValueError(f"the model's tokenizer ({type(tok).__name__}) is not a fast (Rust) tokenizer; "
                             "sentencekit serve needs one to count tokens. Save the model with a tokenizer.json.")
        return cls(raw, max_length=model.max_seq_length, do_lower_case=model.engine.do_lower_case)

    def _prepare(self, items: Sequence[Any]) -> list[Any]:
        if not self.do_lower_case:
            return [tuple(x) if isinstance(x, (tuple, list)) else x for x in items]
        return [(x[0].lower(), x[1].lower()) if isinstance(x, (tuple, list)) else x.lower() for x in items]

    def encode(self, items: Sequence[Any], add_special_tokens: bool = True) -> list[Any]:
        """``tokenizers.Encoding`` of each text or ``(a, b)`` pair, untruncated."""
        if not items:
            return []
        return self._tok.encode_batch(self._prepare(items), add_special_tokens=add_special_tokens)

    def lengths(self, items: Sequence[Any]) -> list[int]:
        """Full token count of each text or pair (special tokens included), before any truncation."""
        return [len(e.ids) for e in self.encode(items)]

    def count(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        return len(self.encode([text], add_special_tokens=False)[0].ids) if text else 0

    def specials(self, pair: bool = False) -> int:
        """Special tokens the model adds to one text (or a pair)."""
        return int(self._tok.num_special_tokens_to_add(pair))

    def keep_end(self, text: str, budget: int) -> str:
        """The end of ``text`` that fits ``budget`` tokens (no special tokens), cut where a word starts so
        that it tokenizes the same on its own: TEI's ``truncation_direction="left"``.

        >>> counter.keep_end("one two three four", 2)                    # doctest: +SKIP
        'three four'
        """
        enc = self.encode([text], add_special_tokens=False)[0]
        if len(enc.ids) <= budget:
            return text
        if budget <= 0:
            return ""
        start = len(enc.ids) - budget
        words = enc.word_ids
        while start < len(enc.ids) and words[start] is not None and words[start] == words[start - 1]:
            start += 1  # not inside a word: its pieces would tokenize differently
        return text[enc.offsets[start][0]:] if start < len(enc.ids) else ""

    def used(self, length: int) -> int:
        """Tokens the model reads of an input of ``length`` tokens (it cuts at ``max_length``)."""
        return min(length, self.max_length) if self.max_length else length

    def too_long(self, length: int) -> bool:
        return bool(self.max_length) and length > self.max_length

    def check_ids(self, ids: Sequence[int]) -> int | None:
        """The first id outside the vocabulary, or ``None``."""
        return next((i for i in ids if not 0 <= i < self.vocab_size), None)

    def decode(self, batch: Sequence[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        """Text of each id sequence (ids must be in the vocabulary: see :meth:`check_ids`)."""
        return self._tok.decode_batch([list(ids) for ids in batch], skip_special_tokens=skip_special_tokens)
