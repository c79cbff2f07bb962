"""A torch-free tokenizer for the ONNX backend: the Rust ``tokenizers`` library on a ``tokenizer.json``,
truncating like sentencekit's Transformer module (``longest_first`` at ``max_seq_length``) and padding
batches into NumPy arrays.

Texts are tokenized once, without padding; batches are then cut by token length and padded here, so
padding costs nothing to recompute.

>>> tok = FastTokenizer.from_folder(Path("my-model"), max_length=128)   # doctest: +SKIP
>>> enc = tok.encode(["Hello world", "How do I get a refund?"])       # doctest: +SKIP
>>> tok.pad(enc, [0, 1])["input_ids"].shape                            # doctest: +SKIP
(2, 9)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.engines.protocol import Tokenized
from sentencekit.files import ModelFormatError, read_json_if_exists


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


#: tokenizer classes whose transformers 5 tokenizer rebuilds its pipeline around the vocabulary of a Unigram
#: ``tokenizer.json`` (transformers' ``models/xlm_roberta/tokenization_xlm_roberta.py``) instead of using the file's
SENTENCEPIECE_CLASSES = frozenset({"XLMRobertaTokenizer", "XLMRobertaTokenizerFast"})


def rebuild_sentencepiece_pipeline(tok: Any, raw: dict[str, Any], *, add_prefix_space: bool = True) -> None:
    """Give ``tok`` (a ``tokenizers.Tokenizer`` read from ``raw``, an XLM-R-style Unigram ``tokenizer.json``) the
    pipeline transformers 5's ``XLMRobertaTokenizer`` builds from the same file, so the ONNX backend tokenizes a
    folder's ``tokenizer.json`` as the torch backend (and sentence-transformers 6.2 on transformers 5) does:

    * normalizer: only the file's sentencepiece ``Precompiled`` charsmap (others, e.g. a ``Replace`` of runs of
      spaces, are dropped, as transformers drops them);
    * pre-tokenizer: ``WhitespaceSplit`` then ``Metaspace("▁")``, so runs of spaces, tabs and newlines separate
      words without tokens of their own (sentencepiece's ``remove_extra_whitespaces``; the file's ``Metaspace``
      alone would give a ``▁`` token per extra space);
    * the file's post-processor (``<s> $A </s>``, pairs ``<s> $A </s> </s> $B </s>``) and added tokens are kept.
    Changes ``tok`` in place (it is the caller's fresh tokenizer)."""
    from tokenizers import decoders, normalizers, pre_tokenizers

    steps = raw.get("normalizer") or {}
    steps = steps.get("normalizers", []) if steps.get("type") == "Sequence" else [steps]
    charsmap = next((n["precompiled_charsmap"] for n in steps if n.get("type") == "Precompiled"
                     and n.get("precompiled_charsmap")), None)
    if charsmap is None:
        tok.normalizer = None
    else:
        import base64

        tok.normalizer = normalizers.Precompiled(base64.b64decode(charsmap))
    scheme = "always" if add_prefix_space else "never"
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)


class FastTokenizer:
    """``tokenizers.Tokenizer`` with fixed truncation and NumPy padding (thread-safe: its settings are
    never changed after construction). ``add_special_tokens=False``: texts without [CLS] / [SEP] (as
    ``SparseStaticEmbedding`` tokenizes them)."""

    def __init__(self, tokenizer: Any, *, max_length: int | None, do_lower_case: bool = False,
                 pad_id: int = 0, pad_type_id: int = 0, padding_side: str = "right",
                 add_special_tokens: bool = True) -> None:
        self._tok = tokenizer
        self._tok.no_padding()
        self.add_special_tokens = add_special_tokens
        self.do_lower_case = do_lower_case
        self.pad_id = int(pad_id)
        self.pad_type_id = int(pad_type_id)
        self.padding_side = padding_side
        self._lock = threading.Lock()
        self.max_length = None
        self.set_max_length(max_length)

    # pickling (pool workers, Ray actors): the tokenizer as its JSON, a fresh lock on the other side
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        state["_tok"] = self._tok.to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.__dict__.update({**state, "_tok": Tokenizer.from_str(state["_tok"])})
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, tokenizer_json: Path, config_folder: Path | None = None, *, max_length: int | None,
                  do_lower_case: bool = False, add_special_tokens: bool = True) -> FastTokenizer:
        """Load ``tokenizer_json``; the pad token and padding side come from ``tokenizer_config.json`` /
        ``special_tokens_map.json`` in ``config_folder`` (default: the json's folder)."""
        from tokenizers import Tokenizer

        tokenizer_json = Path(tokenizer_json)
        if not tokenizer_json.is_file():
            raise ModelFormatError(
                f"{tokenizer_json} not found: the ONNX backend needs a fast tokenizer (tokenizer.json). "
                "Load the model once with backend='onnx' while torch is installed to export one.")
        tok = Tokenizer.from_file(str(tokenizer_json))
        folder = Path(config_folder or tokenizer_json.parent)
        tconf = read_json_if_exists(folder / "tokenizer_config.json", what="tokenizer") or {}
        specials = read_json_if_exists(folder / "special_tokens_map.json", what="tokenizer") or {}
        raw = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        if tconf.get("tokenizer_class") in SENTENCEPIECE_CLASSES and raw.get("model", {}).get("type") == "Unigram":
            rebuild_sentencepiece_pipeline(tok, raw, add_prefix_space=bool(tconf.get("add_prefix_space", True)))
        padding = raw.get("padding") or {}
        pad_token = _token_content(tconf.get("pad_token")) or _token_content(specials.get("pad_token"))
        pad_id = tok.token_to_id(pad_token) if pad_token else None
        if pad_id is None:
            pad_id = padding.get("pad_id", 0)
        side = tconf.get("padding_side") or padding.get("direction", "Right")
        return cls(tok, max_length=max_length, do_lower_case=do_lower_case, pad_id=pad_id,
                   pad_type_id=padding.get("pad_type_id", 0), padding_side=str(side).lower(),
                   add_special_tokens=add_special_tokens)

    def set_max_length(self, max_length: int | None) -> None:
        with self._lock:
            self.max_length = int(max_length) if max_length else None
            if self.max_length:
                self._tok.enable_truncation(self.max_length, strategy="longest_first")
            else:
                self._tok.no_truncation()

    @property
    def backend(self) -> Any:
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._tok

    def encode_untruncated(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[Any]:
        """``tokenizers.Encoding`` of each text, whole (no length limit): offsets and word ids for
        chunking long documents into windows."""
        with self._lock:
            if getattr(self, "_whole", None) is None:
                from tokenizers import Tokenizer

                self._whole = Tokenizer.from_str(self._tok.to_str())
                self._whole.no_truncation()
                self._whole.no_padding()
            # the texts as given (no lower-casing): offsets must index the caller's strings, as on torch
            return self._whole.encode_batch([str(t) for t in texts], add_special_tokens=add_special_tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """Special tokens ([CLS], [SEP], ...) the tokenizer adds to one text (or a pair)."""
        return int(self._tok.num_special_tokens_to_add(pair))

    @property
    def all_special_ids(self) -> set[int]:
        added = self._tok.get_added_tokens_decoder()
        return {int(i) for i, t in added.items() if getattr(t, "special", False)}

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """The vocabulary strings of token ids (``"##s"`` for a WordPiece continuation), as a Hugging Face
        tokenizer's ``convert_ids_to_tokens`` gives them (``SparseEncoder.decode`` lists these)."""
        return [self._tok.id_to_token(int(i)) for i in ids]

    def _prepare(self, items: Sequence[Any]) -> list[Any]:
        out = []
        for item in items:
            if isinstance(item, dict):  # routed input ({"query": text})
                item = next(iter(item.values()))
            if isinstance(item, (tuple, list)):
                a, b = str(item[0]), str(item[1])
                out.append((a.lower(), b.lower()) if self.do_lower_case else (a, b))
            else:
                s = str(item)
                out.append(s.lower() if self.do_lower_case else s)
        return out

    def encode(self, items: Sequence[Any]) -> Tokenized:
        """Tokenize texts (or ``(a, b)`` pairs) once, without padding."""
        with self._lock:
            encodings = self._tok.encode_batch(self._prepare(items), add_special_tokens=self.add_special_tokens)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        type_ids = [np.asarray(e.type_ids, dtype=np.int64) for e in encodings]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(ids))
        return Tokenized(list(items), lengths, truncated, ids, type_ids)

    def __call__(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """Tokenize and pad, like a Hugging Face tokenizer with ``padding=True``."""
        enc = self.encode(list(items))
        return self.pad(enc, range(len(enc.ids)))

    def pad(self, enc: Tokenized, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` of ``indices``, padded to the longest with
        this tokenizer's pad token and side."""
        return enc.pad(indices, pad_id=self.pad_id, pad_type_id=self.pad_type_id, padding_side=self.padding_side)
