"""Images and texts in one space through the same ``encode`` (CLIP, on the torch backend): inputs of every kind,
modality detection and refusals, mixed batches, prompts, the truncation report, loading the three CLIP layouts
and saving what sentence-transformers 6.2 writes. The tiny CLIP has CLIP's real tokenizer and image processor
(tests/clip_folders.py); sentence-transformers parity is benchmarks/st_compat.py's."""

from __future__ import annotations

import base64
import http.server
import json
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.clip_folders import CLIP_TEXTS, sample_images

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def clip(clip_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(clip_dir), device="cpu")


@pytest.fixture(scope="module")
def portrait(clip_data):
    return sample_images(clip_data)[1]  # an RGB JPEG: a path and its PIL image give the same pixels


def test_modalities_dimension_and_similarity(clip, tiny_model):
    assert clip.modalities == ["text", "image"] and tiny_model.modalities == ["text"]
    assert clip.supports("image") and clip.supports("text") and not clip.supports("audio")
    assert not clip.supports(("image", "text"))  # combining needs chat-message support
    assert clip.get_sentence_embedding_dimension() == 16 and clip.max_seq_length == 77
    assert clip.similarity_fn_name == "cosine"


def test_every_image_kind_gives_the_same_embedding(clip, portrait):
    import torch

    image = Image.open(portrait)
    pixels = np.asarray(image)
    uri = "data:image/jpeg;base64," + base64.b64encode(portrait.read_bytes()).decode()
    inputs = [image, str(portrait), pixels, torch.from_numpy(pixels.copy()), {"image": image}, uri,
              {"image": str(portrait)}]
    rows = clip.encode(inputs)
    assert rows.shape == (len(inputs), 16) and rows.dtype == np.float32
    np.testing.assert_allclose(rows, np.repeat(rows[:1], len(inputs), axis=0), atol=1e-5)
    np.testing.assert_allclose(clip.encode(image), rows[0], atol=1e-5)  # one image: one row
    assert clip.encode(pixels).shape == (16,)  # a 3-D array is one image, not a batch


def test_texts_and_images_in_one_call_keep_input_order(clip, clip_data):
    images = [Image.open(p) for p in sample_images(clip_data)]
    texts = CLIP_TEXTS[:3]
    mixed = [texts[0], images[0], texts[1], {"text": texts[2]}, images[1]]
    alone = np.concatenate([clip.encode(texts), clip.encode(images)])
    expected = alone[[0, 3, 1, 2, 4]]
    for batch_size in (1, 2, 32):  # ST raises or not depending on where batches split; grouping never does
        np.testing.assert_allclose(clip.encode(mixed, batch_size=batch_size), expected, atol=1e-5)
    scores = clip.similarity(clip.encode(texts), clip.encode(images))
    assert tuple(scores.shape) == (3, 2)
    a, b = alone[:3], alone[3:]
    cosine = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(np.asarray(scores), cosine, atol=1e-5)


def test_outputs_options_on_a_mixed_call(clip, portrait):
    import torch

    image = Image.open(portrait)
    rows = clip.encode(["a cat", image], normalize_embeddings=True, convert_to_tensor=True)
    assert isinstance(rows, torch.Tensor) and rows.shape == (2, 16)
    np.testing.assert_allclose(rows.norm(dim=1).numpy(), [1.0, 1.0], atol=1e-5)
    assert clip.encode(["a cat", image], truncate_dim=8).shape == (2, 8)
    every = clip.encode(["a cat", image], output_value=None)
    assert set(every[0]) >= {"sentence_embedding", "input_ids"} and "pixel_values" in every[1]
    np.testing.assert_allclose(every[1]["sentence_embedding"].numpy(), clip.encode(image), atol=1e-5)
    with pytest.raises(ValueError, match="no token embeddings"):
        clip.encode(["a cat"], output_value="token_embeddings")


def test_prompts_apply_to_text_only(clip, portrait):
    image = Image.open(portrait)
    with_prompt = clip.encode(["a cat", image], prompt="a photo of ")
    np.testing.assert_allclose(with_prompt[0], clip.encode("a photo of a cat"), atol=1e-5)
    np.testing.assert_allclose(with_prompt[1], clip.encode(image), atol=1e-5)


def test_encode_info_counts_modalities_and_reports_cut_texts_by_input_index(clip, portrait):
    from sentencekit.pipeline.batching import TruncationWarning

    image = Image.open(portrait)
    with pytest.warns(TruncationWarning, match="indices 2"):
        clip.encode([image, "a cat", CLIP_TEXTS[-1], image])
    info = clip.last_encode_info
    assert info.num_inputs == 4 and info.truncated_indices == (2,) and info.max_seq_length == 77
    assert dict(info.modality_counts) == {"image": 2, "text": 2}
    clip.encode(["a cat"])
    assert clip.last_encode_info.modality_counts == ()


def test_media_looking_strings(clip, tiny_model, portrait, tmp_path, monkeypatch):
    # a file that does not exist is text, even with an image suffix; so is any such string to a text model
    np.testing.assert_allclose(clip.encode("cat.png"), clip.encode(["cat.png"])[0])
    monkeypatch.chdir(tmp_path)
    Image.open(portrait).save("cat.png")
    assert tiny_model.encode(["cat.png", "https://example.com/cat.jpg"]).shape == (2, 32)
    np.testing.assert_allclose(clip.encode("cat.png"), clip.encode(Image.open(portrait).convert("RGB")), atol=1e-5)
    np.testing.assert_allclose(clip.encode(str(portrait)), clip.encode(Image.open(portrait)), atol=1e-5)
    with pytest.raises(ValueError, match=r"sentences\[0\] is given as an image .* no existing file"):
        clip.encode([{"image": str(tmp_path / "missing.png")}])


def test_inputs_of_modalities_a_model_lacks_are_refused_by_index(clip, tiny_model, portrait):
    image = Image.open(portrait)
    for inputs, index in [(image, 0), (["a", image], 1), (["a", {"image": str(portrait)}], 1),
                          (np.zeros((8, 8, 3), dtype=np.uint8), 0)]:
        with pytest.raises(ValueError, match=rf"sentences\[{index}\] is an image.*modalities are text \(model"):
            tiny_model.encode(inputs)
    with pytest.raises(ValueError, match=r"sentences\[1\] is an audio.*modalities are text, image"):
        clip.encode(["a", np.zeros(16000, dtype=np.float32)])
    with pytest.raises(ValueError, match=r"is an audio.*image array is \[height, width, channels\]"):
        clip.encode([np.zeros((10, 10), dtype=np.uint8)])  # a grayscale image without its channel axis
    with pytest.raises(ValueError, match=r"sentences\[0\] is a combined image\+text input.*separate inputs"):
        clip.encode([{"text": "a cat", "image": image}])
    with pytest.raises(ValueError, match=r"sentences\[0\] is a chat message"):
        clip.encode([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match=r"sentences\[0\]: A multimodal dict input has keys \['caption'\]"):
        clip.encode([{"image": image, "caption": "x"}])
    with pytest.raises(TypeError, match=r"sentences\[1\] is int"):
        clip.encode(["a", 3])
    with pytest.raises(TypeError, match=r"sentences\[1\] is int"):  # text models: unchanged TypeErrors
        tiny_model.encode(["a", 3])


def _serve_once(payload: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_urls_are_fetched_only_when_allowed(clip, portrait, monkeypatch):
    server = _serve_once(portrait.read_bytes())  # loopback only: tests never reach the network
    url = f"http://127.0.0.1:{server.server_address[1]}/portrait.jpg"
    try:
        with pytest.raises(ValueError, match=r"sentences\[1\] is an image URL .*allow_url_inputs = True"):
            clip.encode(["a cat", url])
        clip.allow_url_inputs = True
        np.testing.assert_allclose(clip.encode(url), clip.encode(str(portrait)), atol=1e-5)

        def offline(*args, **kwargs):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

        monkeypatch.setattr(urllib.request, "urlopen", offline)
        with pytest.raises(ValueError, match="Fetching the image input https://example.com/cat.jpg failed .*path"):
            clip.encode("https://example.com/cat.jpg")
    finally:
        clip.allow_url_inputs = False
        server.shutdown()


def test_pillow_missing_names_the_extra(monkeypatch):
    from sentencekit.pipeline.modality import require_pillow

    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "sentencekit\[image\]"'):
        require_pillow()


def test_spec_reads_modalities_without_torch(clip_dir, clip_legacy_dir, tiny_st_dir, tiny_bert_dir):
    from sentencekit.spec.model_spec import DUAL_ENCODER_MODALITY_CONFIG, infer_modality_config, read_spec

    for folder in (clip_dir, clip_legacy_dir):
        spec = read_spec(folder)
        assert spec.modality_config == DUAL_ENCODER_MODALITY_CONFIG and spec.modalities == ("text", "image")
    for folder in (tiny_st_dir, tiny_bert_dir):
        assert read_spec(folder).modality_config is None and read_spec(folder).modalities == ("text",)
    clip = json.loads((clip_dir / "config.json").read_text())
    assert infer_modality_config(clip, has_image_processor=False) is None
    llava_like = {"model_type": "llava", "text_config": {}, "vision_config": {}}  # a VLM, not a dual encoder
    assert infer_modality_config(llava_like, has_image_processor=True) is None


def _config(folder, name):
    return json.loads((folder / name).read_text())


def test_three_layouts_load_alike_and_save_what_sentence_transformers_writes(clip_dir, clip_legacy_dir, clip_data,
                                                                              tmp_path):
    from sentencekit import SentenceTransformer
    from sentencekit.modules import CLIPModel, Transformer

    inputs = [*CLIP_TEXTS[:2], *[Image.open(p) for p in sample_images(clip_data)]]
    raw = SentenceTransformer(str(clip_dir), device="cpu")
    legacy = SentenceTransformer(str(clip_legacy_dir), device="cpu")
    assert type(raw[0]) is Transformer and type(legacy[0]) is CLIPModel and len(raw) == len(legacy) == 1
    expected = raw.encode(inputs)
    np.testing.assert_allclose(legacy.encode(inputs), expected, atol=1e-6)
    st6_config = {"transformer_task": "feature-extraction",
                  "modality_config": {"text": {"method": "get_text_features", "method_output_name": "pooler_output"},
                                      "image": {"method": "get_image_features",
                                                "method_output_name": "pooler_output"}},
                  "module_output_name": "sentence_embedding"}
    for model, type_string, name in [(raw, "sentence_transformers.base.modules.transformer.Transformer", "raw"),
                                     (legacy, "sentence_transformers.sentence_transformer.modules.clip_model.CLIPModel",
                                      "legacy")]:
        out = tmp_path / name
        model.save(out)
        assert _config(out, "modules.json") == [{"idx": 0, "name": "0", "path": "", "type": type_string}]
        assert _config(out, "sentence_bert_config.json") == st6_config
        assert _config(out, "processor_config.json")["image_processor"]["crop_size"] == {"height": 224, "width": 224}
        assert _config(out, "config_sentence_transformers.json")["similarity_fn_name"] == "cosine"
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
        again = SentenceTransformer(str(out), device="cpu")
        assert again.modalities == ["text", "image"] and type(again[0]) is type(model[0])
        np.testing.assert_allclose(again.encode(inputs), expected, atol=1e-6)


def test_clip_module_built_by_hand(clip_dir, portrait):
    from sentencekit.models import CLIPModel

    from sentencekit import SentenceTransformer

    model = SentenceTransformer(modules=[CLIPModel(str(clip_dir))], device="cpu")
    reference = SentenceTransformer(str(clip_dir), device="cpu")
    np.testing.assert_allclose(model.encode(["a cat", str(portrait)]), reference.encode(["a cat", str(portrait)]),
                               atol=1e-6)


@pytest.mark.pool
def test_pool_encodes_texts_and_images_as_one_process(clip, clip_data):
    images = [Image.open(p) for p in sample_images(clip_data)]
    inputs = [CLIP_TEXTS[0], images[0], str(sample_images(clip_data)[1]), CLIP_TEXTS[1], {"image": images[1]}]
    expected = clip.encode(inputs)
    with clip.start_multi_process_pool(["cpu", "cpu"]) as pool:
        got = clip.encode(inputs, pool=pool, chunk_size=2)
        with pytest.raises(ValueError, match=r"sentences\[1\] is an audio"):  # checked before any worker runs
            clip.encode(["a", np.zeros(8, dtype=np.float32)], pool=pool)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert dict(clip.last_encode_info.modality_counts) == {"text": 2, "image": 3}


def test_bfloat16_weights_take_images_too(clip_dir, portrait):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(clip_dir), device="cpu", compute_dtype="bfloat16")
    assert str(model.dtype) == "torch.bfloat16"  # CLIP casts float32 pixels to its weights' dtype itself
    reference = SentenceTransformer(str(clip_dir), device="cpu")
    rows = model.encode(["a photo of a cat", str(portrait)])
    assert rows.dtype == np.float32  # bf16 arithmetic, float32 results
    np.testing.assert_allclose(rows, reference.encode(["a photo of a cat", str(portrait)]), atol=0.1)
