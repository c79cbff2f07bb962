"""CLIP without torch: images preprocessed in NumPy / Pillow exactly as transformers' CLIP image processor does,
both towers exported to ONNX (one graph per modality) and run on ONNX Runtime with the torch engine's results,
and, once exported, neither torch nor transformers imported."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.clip_folders import CLIP_TEXTS, sample_images
from tests.test_runtime_torch_free import run_fresh

pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def _images(clip_data) -> dict[str, object]:
    """Images of every kind transformers' processor takes, and the corner cases of its steps."""
    png, jpeg = (Image.open(p) for p in sample_images(clip_data))
    rng = np.random.default_rng(0)
    return {
        "RGB JPEG": jpeg, "RGBA PNG (composited on white)": png, "L": jpeg.convert("L"), "P": png.convert("P"),
        "LA": png.convert("LA"), "smaller than the crop": jpeg.resize((50, 30)),
        "5x300 (padded crop)": Image.fromarray(rng.integers(0, 255, (5, 300, 3), dtype=np.uint8)),
        "[H, W, C] uint8": np.asarray(jpeg), "[C, H, W] uint8": np.moveaxis(np.asarray(jpeg), -1, 0).copy(),
        "[H, W, C] float in [0, 1]": np.asarray(jpeg).astype(np.float32) / 255,
        "[H, W, 4] uint8": np.asarray(png), "[H, W, 1] uint8": np.asarray(jpeg.convert("L"))[..., None],
        "whole-number floats": np.asarray(jpeg).astype(np.float64),
        "28x28 grey (Fashion-MNIST size)": rng.integers(0, 255, (28, 28, 1), dtype=np.uint8),
    }


def test_numpy_preprocessing_equals_transformers_clip_processor(clip_dir, clip_data):
    from transformers import AutoImageProcessor

    from sentencekit.engines.image_processor import ImageProcessor
    from sentencekit.spec.model_spec import read_image_processor_config

    reference = AutoImageProcessor.from_pretrained(str(clip_dir))
    ours = ImageProcessor.from_config(read_image_processor_config(clip_dir))
    assert ours == ImageProcessor.from_config(reference.to_dict())
    for name, image in _images(clip_data).items():
        expected = reference(images=[image], return_tensors="np")["pixel_values"]
        got = ours([image])
        assert got.shape == expected.shape == (1, 3, 224, 224) and got.dtype == np.float32, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_preprocessing_settings_old_and_new_files_and_refusals(clip_dir, clip_legacy_dir):
    from sentencekit.engines.image_processor import ImageProcessor
    from sentencekit.spec.model_spec import read_image_processor_config

    new = read_image_processor_config(clip_dir)  # processor_config.json (transformers 5)
    old = read_image_processor_config(clip_legacy_dir / "0_CLIPModel")  # flat preprocessor_config.json
    assert ImageProcessor.from_config(new) == ImageProcessor.from_config(old)
    hub_style = {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True, "size": 224,
                 "feature_extractor_type": "CLIPFeatureExtractor", "resample": 3}  # openai/clip-vit-base-patch32's
    assert ImageProcessor.from_config(hub_style) == ImageProcessor.from_config(new)
    with pytest.raises(ValueError, match="SiglipImageProcessor. Use backend='torch'"):
        ImageProcessor.from_config({**new, "image_processor_type": "SiglipImageProcessor"})
    with pytest.raises(ValueError, match="do_pad=True"):
        ImageProcessor.from_config({**new, "do_pad": True})
    with pytest.raises(ValueError, match="must be 3-D"):
        ImageProcessor.from_config(new)([np.zeros((4, 4))])


@pytest.fixture(scope="module")
def clip_copies(clip_dir, clip_legacy_dir, tmp_path_factory):
    """Private copies (the export writes an onnx/ folder beside the model)."""
    root = tmp_path_factory.mktemp("clip-onnx")
    return {name: shutil.copytree(src, root / name) for name, src in (("raw", clip_dir), ("v5", clip_legacy_dir))}


@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")  # the long text, on purpose
@pytest.mark.parametrize("layout", ["raw", "v5"])
def test_both_towers_on_onnx_runtime_equal_torch(layout, clip_copies, clip_data):
    from sentencekit import SentenceTransformer

    folder = clip_copies[layout]
    torch_model = SentenceTransformer(str(folder), device="cpu")
    onnx_model = SentenceTransformer(str(folder), backend="onnx")
    assert onnx_model.modalities == ["text", "image"] and onnx_model.get_sentence_embedding_dimension() == 16
    assert sorted(onnx_model.engine.graphs) == ["image", "text"]
    paths = sample_images(clip_data)
    inputs = [CLIP_TEXTS[0], Image.open(paths[0]), CLIP_TEXTS[3], str(paths[1]), np.asarray(Image.open(paths[1])),
              {"text": CLIP_TEXTS[1]}, {"image": Image.open(paths[1])}]
    expected = torch_model.encode(inputs)
    got = onnx_model.encode(inputs, batch_size=2)
    assert isinstance(got, np.ndarray) and got.shape == (7, 16)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert onnx_model.last_encode_info == torch_model.last_encode_info  # the cut text and the modality counts
    assert onnx_model.fingerprint() == torch_model.fingerprint()  # an index opens on either backend
    scores = onnx_model.similarity(got[:1], got[1:2])
    np.testing.assert_allclose(scores, np.asarray(torch_model.similarity(expected[:1], expected[1:2])), atol=1e-5)
    every = onnx_model.encode([CLIP_TEXTS[0], Image.open(paths[1])], output_value=None)
    assert every[1]["pixel_values"].shape == (3, 224, 224) and "input_ids" in every[0]
    with pytest.raises(ValueError, match="no token embeddings"):
        onnx_model.encode(["a cat"], output_value="token_embeddings")


def test_onnx_refusals(clip_copies):
    from sentencekit import SentenceTransformer

    with pytest.raises(ValueError, match="float32 on the ONNX backend"):
        SentenceTransformer(str(clip_copies["raw"]), backend="onnx", compute_dtype="int8")
    with pytest.raises(ValueError, match="one graph per modality"):
        SentenceTransformer(str(clip_copies["raw"]), backend="onnx", model_kwargs={"file_name": "model.onnx"})


@pytest.mark.slow  # fresh interpreters
def test_clip_on_onnx_never_imports_torch_or_transformers(clip_dir, clip_data, tmp_path):
    folder = shutil.copytree(clip_dir, tmp_path / "model")
    image = str(sample_images(clip_data)[1])
    code = f"""
import json, sys
from PIL import Image
from sentencekit import SentenceTransformer
model = SentenceTransformer({str(folder)!r}, backend="onnx")
out = model.encode(["a photo of a cat", Image.open({image!r}), {image!r}])
print(json.dumps({{"shape": list(out.shape), "rows": out.tolist(),
                  "loaded": sorted(m for m in ("torch", "transformers") if m in sys.modules)}}))
"""
    first = run_fresh(code, tmp_path / "home")  # exports both towers: torch is allowed here
    second = run_fresh(code, tmp_path / "home")
    assert second["shape"] == [3, 16] and second["loaded"] == []
    np.testing.assert_allclose(second["rows"], first["rows"], atol=1e-6)
    assert len(list((folder / "onnx").glob("sentencekit_*.onnx"))) == 2  # one graph per tower, cached
