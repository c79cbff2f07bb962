"""Tiny random ``*ForRetrieval`` late-interaction retrievers of the real configs, saved as plain Hugging Face
folders (``config.json``, ``model.safetensors``, the processor's files; no ``modules.json``), for the ColPali
tests and ``benchmarks/st_compat.py colpali`` (which loads the same folders with sentence-transformers 6.2):

- ColPali: ``ColPaliForRetrieval`` over PaliGemma (a SigLIP vision tower + a Gemma decoder), with
  ``ColPaliProcessor`` (a ``SiglipImageProcessor`` at 28x28 pixels in 14-pixel patches: 4 image tokens);
- ColQwen2: ``ColQwen2ForRetrieval`` over Qwen2-VL (its vision transformer with 2x2 patch merging + a Qwen2
  decoder with multimodal RoPE), with ``ColQwen2Processor`` (a ``Qwen2VLImageProcessor`` capped at 56x56 pixels);
- ColModernVBert: ``ColModernVBertForRetrieval`` over ModernVBert (a SigLIP vision tower + a ModernBERT encoder,
  pixel shuffle 2), with ``ColModernVBertProcessor`` (an ``Idefics3ImageProcessor`` cutting a page into at most
  2x2 tiles of 28 pixels plus the global view, one ``<image>`` token per tile).

Each has 1-2 layers and 32-wide hidden states, and projects to 16-dimensional token vectors. The tokenizer is a
byte-level BPE without merges (one token per UTF-8 byte, so any text tokenizes) plus the special tokens each
processor needs, built locally with the ``tokenizers`` library: no Hub download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the queries the tests encode (the second longer than the others, so a batch is padded)
QUERIES = ["What is the revenue?", "Which chart shows the quarterly growth of the company in 2024?", "logo"]
#: the retriever kinds :func:`build_retrieval_folder` writes
RETRIEVAL_KINDS = ("colpali", "colqwen2", "colmodernvbert")
#: the kinds sentence-transformers 6.2 encodes as transformers' process_queries / process_images do (it calls the
#: processor itself; ColModernVBert's __call__ leaves out the query augmentation and the visual prompt)
ST_PARITY_KINDS = ("colpali", "colqwen2")
#: the width of the token vectors the tiny models output
EMBEDDING_DIM = 16


def byte_tokenizer(specials: list[str], *, bos: str | None, eos: str, pad: str) -> Any:
    """A ``PreTrainedTokenizerFast``: byte-level BPE over the 256 byte symbols (no merges) plus ``specials``
    (added as special tokens, in order, after the bytes), with the given BOS / EOS / pad tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   model_max_length=4096)


def _colpali(folder: Path, seed: int) -> None:
    import torch
    from transformers import ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor, PaliGemmaConfig
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tokenizer = byte_tokenizer(["<pad>", "<eos>", "<bos>"], bos="<bos>", eos="<eos>", pad="<pad>")
    image_processor = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    image_processor.image_seq_length = 4  # (28 / 14) ** 2 patches, what PaliGemma's processors record
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <image>, <loc...>
    hidden = 32
    vlm = PaliGemmaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": hidden, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
                       "projection_dim": hidden},
        text_config={"model_type": "gemma", "hidden_size": hidden, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                     "vocab_size": len(processor.tokenizer), "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
        image_token_index=processor.image_token_id, projection_dim=hidden)
    vlm.text_config.num_image_tokens = 4
    config = ColPaliConfig(vlm_config=vlm, embedding_dim=EMBEDDING_DIM)
    torch.manual_seed(seed)
    model = ColPaliForRetrieval(config).eval()
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))


def _colqwen2(folder: Path, seed: int) -> None:
    import torch
    from transformers import ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor, Qwen2VLConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tokenizer = byte_tokenizer(specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>")
    # 28x28-pixel merged patches (14-pixel patches, 2x2 merge): at most 2x2 of them per image
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 28 * 28, "longest_edge": 56 * 56})
    processor = ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer)
    hidden = 32
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    vlm = Qwen2VLConfig(
        text_config={"hidden_size": hidden, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": len(tokenizer),
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                     "pad_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "bos_token_id": None},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": hidden, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    config = ColQwen2Config(vlm_config=vlm, embedding_dim=EMBEDDING_DIM)
    torch.manual_seed(seed)
    model = ColQwen2ForRetrieval(config).eval()
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))


def _colmodernvbert(folder: Path, seed: int) -> None:
    import torch
    from transformers import ColModernVBertConfig, ColModernVBertForRetrieval, ColModernVBertProcessor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    grid = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<pad>", "<fake_token_around_image>", "<global-img>",
                *grid]
    tokenizer = byte_tokenizer(specials, bos="<|begin_of_text|>", eos="<|end_of_text|>", pad="<pad>")
    # 28-pixel tiles in 14-pixel patches, pixel-shuffled 2x2: one <image> token per tile; a page is cut into at
    # most 2x2 tiles plus the global view
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 56}, max_image_size={"longest_edge": 28})
    processor = ColModernVBertProcessor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=1)
    hidden = 32
    vlm = {"model_type": "modernvbert", "pixel_shuffle_factor": 2, "image_token_id": processor.image_token_id,
           "text_config": {"model_type": "modernbert", "hidden_size": hidden, "intermediate_size": 64,
                           "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": len(tokenizer),
                           "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
                           "eos_token_id": tokenizer.eos_token_id, "cls_token_id": tokenizer.bos_token_id,
                           "sep_token_id": tokenizer.eos_token_id},
           "vision_config": {"model_type": "siglip_vision_model", "hidden_size": hidden, "intermediate_size": 64,
                             "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 28, "patch_size": 14}}
    config = ColModernVBertConfig(vlm_config=vlm, embedding_dim=EMBEDDING_DIM)
    torch.manual_seed(seed)
    model = ColModernVBertForRetrieval(config).eval()
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))


def build_retrieval_folder(folder: Path, kind: str, *, seed: int = 0) -> Path:
    """A tiny random ``kind`` retriever (one of :data:`RETRIEVAL_KINDS`) saved to ``folder``; returns it."""
    builders = {"colpali": _colpali, "colqwen2": _colqwen2, "colmodernvbert": _colmodernvbert}
    if kind not in builders:
        raise ValueError(f"kind must be one of {RETRIEVAL_KINDS}, got {kind!r}")
    folder.mkdir(parents=True, exist_ok=True)
    builders[kind](folder, seed)
    return folder


def page_images(n: int = 3, seed: int = 0) -> list[Any]:
    """``n`` random RGB PIL images of different sizes (wider, taller, square), as document pages."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(60, 40), (30, 70), (50, 50), (90, 36)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
            for w, h in (sizes[i % len(sizes)] for i in range(n))]
