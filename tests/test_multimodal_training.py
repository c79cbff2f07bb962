"""Training a CLIP-style model on (image, caption) pairs with the trainer and MNRL: the collator processes an image
column as encode does (PIL images or paths), both towers get gradients, the loss falls on a tiny separable set,
and the saved model encodes as the trained one. The tiny CLIP is tests/clip_folders.py's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from sentencekit import SentenceTransformer  # noqa: E402
from sentencekit.losses import MultipleNegativesRankingLoss  # noqa: E402
from sentencekit.training import SentenceTransformerTrainer, SentenceTransformerTrainingArguments  # noqa: E402

#: eight captions, each with its own colour: a set an in-batch ranking loss can separate
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "black": (5, 5, 5), "white": (250, 250, 250), "purple": (140, 30, 160), "orange": (250, 140, 10)}


def colour_images(seed: int = 0) -> list[Image.Image]:
    """One 32x32 image per colour, with a little noise (so no two pixels agree exactly)."""
    rng = np.random.default_rng(seed)
    images = []
    for rgb in COLOURS.values():
        pixels = np.clip(np.array(rgb)[None, None, :] + rng.integers(-15, 16, (32, 32, 3)), 0, 255)
        images.append(Image.fromarray(pixels.astype(np.uint8)))
    return images


def pairs(tmp_path, as_paths: bool):
    from datasets import Dataset

    images = colour_images()
    if as_paths:
        paths = []
        for i, image in enumerate(images):
            path = tmp_path / f"img{i}.png"
            image.save(path)
            paths.append(str(path))
        images = paths
    return Dataset.from_dict({"image": images, "caption": [f"a {name} square" for name in COLOURS]})


def trainer_for(model, data, tmp_path, steps: int) -> SentenceTransformerTrainer:
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=len(COLOURS),
        learning_rate=5e-3, warmup_steps=0, report_to="none", disable_tqdm=True, save_strategy="no", seed=0)
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                      loss=MultipleNegativesRankingLoss(model))


def batch_loss(trainer) -> float:
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        return float(trainer.loss(batch["features"], batch["label"]))


def test_collator_processes_the_image_column_as_encode_does(clip_dir, tmp_path):
    model = SentenceTransformer(str(clip_dir), device="cpu")
    trainer = trainer_for(model, pairs(tmp_path, as_paths=True), tmp_path, steps=1)
    batch = next(iter(trainer.get_train_dataloader()))
    image_features, text_features = batch["features"]
    assert image_features["modality"] == "image" and image_features["pixel_values"].shape == (8, 3, 224, 224)
    assert "input_ids" in text_features
    # the network's embeddings of the processed column are encode's
    with torch.no_grad():
        rows = model.network(dict(image_features))["sentence_embedding"]
    expected = model.encode(colour_images())  # the batch is in the sampler's order: match rows to images
    got = rows.numpy()
    distances = np.abs(got[:, None, :] - expected[None, :, :]).max(-1)
    assert (distances.min(1) < 1e-5).all()


def test_one_step_changes_both_towers_and_the_loss_is_finite(clip_dir, tmp_path):
    model = SentenceTransformer(str(clip_dir), device="cpu")
    before = {n: p.detach().clone() for n, p in model.network.named_parameters()}
    trainer = trainer_for(model, pairs(tmp_path, as_paths=False), tmp_path, steps=1)
    out = trainer.train()
    assert np.isfinite(out.training_loss)
    changed = {n for n, p in model.network.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any("vision_model" in n for n in changed) and any("text_model" in n for n in changed)
    assert any("visual_projection" in n for n in changed) and any("text_projection" in n for n in changed)


def test_loss_falls_and_the_saved_model_encodes_as_trained(clip_dir, tmp_path):
    model = SentenceTransformer(str(clip_dir), device="cpu")
    data = pairs(tmp_path, as_paths=True)
    trainer = trainer_for(model, data, tmp_path, steps=20)
    first = batch_loss(trainer)
    trainer.train()
    last = batch_loss(trainer)
    assert last < first * 0.5, (first, last)
    # the trained model ranks each image's own caption first
    captions = list(data["caption"])
    scores = model.similarity(model.encode(list(data["image"])), model.encode(captions))
    assert (scores.argmax(1) == torch.arange(len(captions))).float().mean() >= 0.75
    trainer.save_model(str(tmp_path / "trained"))
    reloaded = SentenceTransformer(str(tmp_path / "trained"), device="cpu")
    inputs = captions[:3] + colour_images()[:3]
    np.testing.assert_allclose(reloaded.encode(inputs), model.encode(inputs), atol=1e-5)
    assert not np.allclose(SentenceTransformer(str(clip_dir), device="cpu").encode(inputs), model.encode(inputs),
                           atol=1e-3)


def test_a_column_mixing_images_and_texts_is_refused(clip_dir):
    model = SentenceTransformer(str(clip_dir), device="cpu")
    with pytest.raises(ValueError, match="mixes image and text"):
        model.tokenize([colour_images()[0], "a red square"])
