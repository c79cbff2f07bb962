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
        self.head, self.tail = self._special_ends()

    @classmethod
    def for_model(cls, model: Any, *, max_length: int | None = None) -> TokenCounter:
        """The counter of a model of either backend, with the model's ``max_seq_length`` as the limit (or
        ``max_length``: a multi-vector model's document length)."""
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
        return cls(raw, max_length=max_length if max_length is not None else model.max_seq_length,
                   do_lower_case=model.engine.do_lower_case)

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
        """The position of the first id outside the vocabulary, or ``None``."""
        return next((k for k, i in enumerate(ids) if not 0 <= i < self.vocab_size), None)

    def _special_ends(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer's post-processor puts before and after one text's tokens
        (BERT: ``[CLS]`` / ``[SEP]``; RoBERTa: ``<s>`` / ``</s>``; T5: none / ``</s>``).

        Read from the post-processor itself, not from a list of special tokens: a probe text is encoded
        with special tokens, and ``sequence_ids`` (``None`` on tokens the post-processor added) says which
        of its ids come before and after the text's own.
        """
        encoding = self._tok.encode("a", add_special_tokens=True)
        own = [k for k, s in enumerate(encoding.sequence_ids) if s is not None]
        if not own:  # the probe gave no token of its own: every id the post-processor adds leads
            return list(encoding.ids), []
        return list(encoding.ids[:own[0]]), list(encoding.ids[own[-1] + 1:])

    def strip_specials(self, ids: Sequence[int]) -> list[int]:
        """``ids`` without the leading and trailing special tokens of :meth:`_special_ends`, each end
        removed only where it is there (clients send ids with or without them)."""
        body = list(ids)
        if self.head and body[:len(self.head)] == self.head:
            body = body[len(self.head):]
        if self.tail and len(body) >= len(self.tail) and body[len(body) - len(self.tail):] == self.tail:
            body = body[:len(body) - len(self.tail)]
        return body

    def with_specials(self, body: Sequence[int], prompt_ids: Sequence[int] = ()) -> list[int]:
        """The model input for a text's ids (no special tokens) after a prompt's: what encoding
        ``prompt + text`` gives when the two tokenize apart (see :meth:`joins_exactly`)."""
        return [*self.head, *prompt_ids, *body, *self.tail]

    def joins_exactly(self, prompt: str) -> bool:
        """Whether ``prompt``'s ids followed by a text's ids are the ids of ``prompt + text``: true when
        the tokenizer splits at the prompt's end (WordPiece after a space or punctuation), often false
        for SentencePiece / byte-level tokenizers, which fold the prompt's trailing space into the next
        word. Checked on a few probe texts; a prompt that fails on one is not joined."""
        prompt_ids = self.encode([prompt], add_special_tokens=False)[0].ids
        for probe in ("a", "hello world", "The 2 cats."):
            joined = self.encode([prompt + probe], add_special_tokens=False)[0].ids
            if joined != prompt_ids + self.encode([probe], add_special_tokens=False)[0].ids:
                return False
        return True

    def decode(self, batch: Sequence[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        """Text of each id sequence (ids must be in the vocabulary: see :meth:`check_ids`)."""
        return self._tok.decode_batch([list(ids) for ids in batch], skip_special_tokens=skip_special_tokens)
