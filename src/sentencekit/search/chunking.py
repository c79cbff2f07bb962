"""Splitting long texts into overlapping token windows, so that every part of a long document is
embedded (a model only reads its first ``max_seq_length`` tokens).

Windows are counted in the model's own tokens; the tokenizer's offset mapping turns each window back
into an exact substring of the text, and window edges avoid splitting a word when possible.

>>> from transformers import AutoTokenizer                       # doctest: +SKIP
>>> tok = AutoTokenizer.from_pretrained("bert-base-uncased")      # doctest: +SKIP
>>> [c.text for c in chunk_text("one two three four five", tok, chunk_size=3, chunk_overlap=1)]  # doctest: +SKIP
['one two three', 'three four five']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Chunk:
    """A window of a text: ``text == source[start:end]``; ``index`` counts windows from 0.

    >>> Chunk(0, 0, 5, "hello").text
    'hello'
    """

    index: int
    start: int
    end: int
    text: str


def token_windows(word_ids: Sequence[int | None], chunk_size: int, chunk_overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` token windows of at most ``chunk_size`` tokens covering all tokens, consecutive
    windows sharing about ``chunk_overlap`` tokens. ``word_ids`` (one per token, as a fast tokenizer
    gives them) let edges move back to a word start instead of cutting a word, as long as a window keeps
    at least half its size.

    >>> token_windows([0, 1, 2, 3, 4], chunk_size=3, chunk_overlap=1)
    [(0, 3), (2, 5)]
    >>> token_windows([0, 1, 1, 2], chunk_size=2, chunk_overlap=0)  # word 1 is not split
    [(0, 1), (1, 3), (3, 4)]
    """
    if chunk_size <= 0 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"Need chunk_size > 0 and 0 <= chunk_overlap < chunk_size, got chunk_size={chunk_size}, "
                         f"chunk_overlap={chunk_overlap}.")
    n = len(word_ids)
    if n <= chunk_size:
        return [(0, n)]

    def starts_word(i: int) -> bool:
        return i == 0 or i >= n or word_ids[i] is None or word_ids[i] != word_ids[i - 1]

    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + chunk_size, n)
        edge = end
        while edge > start + max(1, chunk_size // 2) and not starts_word(edge):
            edge -= 1
        end = edge if starts_word(edge) else end
        windows.append((start, end))
        if end >= n:
            return windows
        nxt = max(end - chunk_overlap, start + 1)
        edge = nxt
        while edge > start + 1 and not starts_word(edge):
            edge -= 1
        start = edge if starts_word(edge) else nxt


def chunk_texts(texts: Sequence[str], tokenizer: Any, chunk_size: int, chunk_overlap: int = 32) -> list[list[Chunk]]:
    """Split each text into :class:`Chunk` windows of at most ``chunk_size`` tokens (no special tokens).
    Needs a fast (Rust) tokenizer, for offset mappings. An empty text gives one empty chunk.

    >>> chunk_texts(["a b c"], tokenizer, chunk_size=2, chunk_overlap=0)  # doctest: +SKIP
    [[Chunk(index=0, start=0, end=3, text='a b'), Chunk(index=1, start=4, end=5, text='c')]]
    """
    if not texts:
        return []
    spans = _token_spans(tokenizer, list(texts))
    result = []
    for text, (offsets, word_ids) in zip(texts, spans):
        chunks = []
        for index, (a, b) in enumerate(token_windows(word_ids, chunk_size, chunk_overlap)):
            start, end = (offsets[a][0], offsets[b - 1][1]) if b > a else (0, len(text))
            chunks.append(Chunk(index, start, end, text[start:end]))
        result.append(chunks)
    return result


def _token_spans(tokenizer: Any, texts: list[str]) -> list[tuple[Any, list[int | None]]]:
    """(character offsets, word ids) of every token of each text, without special tokens or a length limit:
    from a Hugging Face fast tokenizer, or the ONNX backend's tokenizer."""
    whole = getattr(tokenizer, "encode_untruncated", None)
    if whole is not None:
        return [(e.offsets, e.word_ids) for e in whole(texts)]
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("Chunking needs a fast tokenizer (with offset mappings); this model's tokenizer is "
                         f"{type(tokenizer).__name__}.")
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                        verbose=False)
    return [(encoded["offset_mapping"][i], encoded.word_ids(i)) for i in range(len(texts))]


def chunk_text(text: str, tokenizer: Any, chunk_size: int, chunk_overlap: int = 32) -> list[Chunk]:
    """:func:`chunk_texts` for one text.

    >>> [c.text for c in chunk_text("one two three four five", tokenizer, 3, 1)]  # doctest: +SKIP
    ['one two three', 'three four five']
    """
    return chunk_texts([text], tokenizer, chunk_size, chunk_overlap)[0]


def default_chunk_size(model: Any, prompt: str = "") -> int:
    """The longest window the model reads whole: ``max_seq_length`` minus its special tokens and the
    tokens of ``prompt`` (prepended to every chunk when it is embedded).

    >>> default_chunk_size(model)  # doctest: +SKIP
    254
    """
    tokenizer, max_len = getattr(model, "tokenizer", None), getattr(model, "max_seq_length", None)
    if tokenizer is None or not max_len:
        raise ValueError("chunk=True needs a model with a tokenizer and a max_seq_length; pass chunk_size=...")
    special = tokenizer.num_special_tokens_to_add(pair=False)
    prompt_tokens = len(_token_spans(tokenizer, [prompt])[0][0]) if prompt else 0
    size = int(max_len) - special - prompt_tokens
    if size <= 0:
        raise ValueError(f"The prompt {prompt!r} leaves no room for text in max_seq_length={max_len} tokens.")
    return size
