"""An :class:`EmbeddingIndex` of images (issue 16): image files stored as documents, searched by text and by image
queries exactly as brute-force cosine over ``model.encode``; refusals (text-only model, paths that are no
images, the lexical / sparse sides); `sentencekit index build DIR_OF_IMAGES` and `sentencekit search --index`.
The tiny CLIP of tests/clip_folders.py; images drawn with Pillow in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from sentencekit.search.index import EmbeddingIndex  # noqa: E402

COLORS = {"red.png": (220, 20, 30), "green.jpg": (20, 200, 40), "sub/blue.bmp": (10, 30, 230),
          "sub/deep/stripes.webp": None, "yellow.gif": (240, 230, 20)}
QUERIES = ["a red dress", "a photo of green grass", "blue sky"]


def draw(path, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is None:  # stripes: not a flat color
        pixels = np.zeros((40, 32, 3), dtype=np.uint8)
        pixels[::4] = 255
        image = Image.fromarray(pixels)
    else:
        image = Image.new("RGB", (36, 28), color)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def clip(clip_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(clip_dir), device="cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, color in COLORS.items():
        draw(folder / name, color)
    (folder / "notes.csv").write_text("not,an,image\n")  # ignored: no image suffix
    return folder


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def brute_force(clip, paths, queries, top_k):
    """(ids, scores) per query: cosine of ``model.encode(query)`` against ``model.encode(image)``."""
    docs = unit(clip.encode([Image.open(p) for p in paths]))
    out = []
    for row in unit(clip.encode(queries)) @ docs.T:
        order = np.argsort(-row, kind="stable")[:top_k]
        out.append(([str(i) for i in order], row[order]))
    return out


def test_images_are_found_by_text_and_by_image_as_brute_force_cosine(clip, photos, tmp_path):
    paths = sorted(photos / name for name in COLORS)
    index = EmbeddingIndex.create(tmp_path / "idx", clip)
    assert index.add_images(paths) == [str(i) for i in range(len(paths))]
    assert index.manifest["image_documents"] is True and len(index) == len(paths)
    stored = index.get("0")
    assert stored == {"id": "0", "text": str(paths[0].resolve()), "metadata": None, "modality": "image"}
    image_queries = [Image.open(photos / "red.png"), str(photos / "sub" / "blue.bmp")]
    for queries in (QUERIES, image_queries):
        results = index.search(queries, top_k=3)
        for hits, (ids, scores) in zip(results, brute_force(clip, paths, queries, 3)):
            assert [h["id"] for h in hits] == ids
            np.testing.assert_allclose([h["score"] for h in hits], scores, atol=1e-5)
            assert all(h["modality"] == "image" and h["text"] == str(paths[int(h["id"])].resolve()) for h in hits)
    one = index.search(Image.open(photos / "green.jpg"), top_k=1)  # one image: one list of hits
    assert one[0]["text"].endswith("green.jpg") and one[0]["score"] == pytest.approx(1.0, abs=1e-5)
    reopened = EmbeddingIndex.open(tmp_path / "idx", clip)
    assert [h["id"] for h in reopened.search(QUERIES[0], top_k=5)] == [h["id"] for h in index.search(QUERIES[0])][:5]


def test_text_and_image_documents_share_one_index(clip, photos, tmp_path):
    index = EmbeddingIndex.create(tmp_path / "mixed", clip)
    index.add(["a red dress"], ids=["caption"])
    index.add_images([photos / "red.png"], ids=["photo"], metadata=[{"label": "red"}])
    hits = index.search(Image.open(photos / "red.png"), top_k=2)
    expected = unit(clip.encode([Image.open(photos / "red.png")])) @ unit(clip.encode(["a red dress"])).T
    assert hits[0]["id"] == "photo" and hits[0]["metadata"] == {"label": "red"}
    assert hits[1]["id"] == "caption" and "modality" not in hits[1]
    assert hits[1]["score"] == pytest.approx(float(expected[0, 0]), abs=1e-5)


def test_refusals_say_what_was_wrong(clip, tiny_model, tiny_ce_dir, photos, tmp_path):
    from sentencekit import CrossEncoder

    text_only = EmbeddingIndex.create(tmp_path / "text", tiny_model)
    with pytest.raises(TypeError, match=r"encodes \['text'\] only, not images.*CLIP"):
        text_only.add_images([photos / "red.png"])
    index = EmbeddingIndex.create(tmp_path / "img", clip)
    with pytest.raises(FileNotFoundError, match=r"images\[1\]: .*missing.png is not a file"):
        index.add_images([photos / "red.png", photos / "missing.png"])
    with pytest.raises(ValueError, match=r"images\[0\]: .*notes.csv does not end in an image suffix"):
        index.add_images([photos / "notes.csv"])
    assert len(index) == 0  # nothing of a refused call was stored
    index.add_images([photos / "red.png"])
    with pytest.raises(ValueError, match="stores image documents.*retrieval='dense'"):
        index.search("red", retrieval="lexical")
    with pytest.raises(ValueError, match="stores image documents"):
        index.enable_lexical()
    reranker = CrossEncoder(str(tiny_ce_dir), device="cpu")
    index.add(["a red dress"], ids=["t"])  # text documents too: the index still holds images
    with pytest.raises(ValueError, match="no reranker"):  # an image query cannot be paired with any text
        index.search(Image.open(photos / "red.png"), reranker=reranker)
    with pytest.raises(ValueError, match="stores image documents, and a reranker reads texts"):
        index.search("red", reranker=reranker)  # it would score the images' file paths
    pytest.importorskip("bm25s")
    with_bm25 = EmbeddingIndex.create(tmp_path / "bm25", clip, lexical=True)
    with pytest.raises(ValueError, match="keeps a lexical side, which reads texts"):
        with_bm25.add_images([photos / "red.png"])


def run_cli(argv, capsys):
    from sentencekit.cli import main

    code = main(argv)
    return code, capsys.readouterr()


def test_cli_builds_an_image_folder_and_searches_it(clip, clip_dir, photos, tmp_path, capsys):
    out = tmp_path / "cli-idx"
    code, printed = run_cli(["index", "build", str(photos), "--out", str(out), "--model", str(clip_dir)], capsys)
    assert code == 0, printed.err
    assert f"{len(COLORS)} images" in printed.out
    index = EmbeddingIndex.open(out, clip)
    assert sorted(index.ids()) == sorted(COLORS)  # ids: paths relative to the folder, recursive
    assert "lexical" not in index.manifest
    code, printed = run_cli(["search", "--index", str(out), "--model", str(clip_dir), "--json", "--top-k", "3",
                             QUERIES[0]], capsys)
    assert code == 0, printed.err
    hits = json.loads(printed.out)[0]["results"]
    paths = [photos / name for name in index.ids()]
    ids, scores = brute_force(clip, paths, QUERIES[:1], 3)[0]
    assert [h["id"] for h in hits] == [index.ids()[int(i)] for i in ids]
    np.testing.assert_allclose([h["score"] for h in hits], scores, atol=1e-5)
    code, printed = run_cli(["search", "--index", str(out), "--model", str(clip_dir), "--top-k", "2", QUERIES[0]],
                            capsys)
    assert code == 0, printed.err
    assert str((photos / hits[0]["id"]).resolve()) in printed.out and f"{hits[0]['score']:.4f}" in printed.out
