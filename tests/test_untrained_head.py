"""Issue 12 item 3: a CrossEncoder over a folder without a trained classification head (an embedding model,
a plain transformer) refuses to score until the head is trained (CrossEncoderTrainer) or the user opts in."""

from __future__ import annotations

import numpy as np
import pytest

from sentencekit import CrossEncoder
from sentencekit.pipeline.predict import UntrainedHeadError

PAIRS = [("how do i reset my password", "password reset help"), ("weather paris", "the cat sat")]


@pytest.mark.parametrize("folder, kind", [("tiny_st_dir", "an embedding model"), ("tiny_bert_dir", "a transformer")])
def test_inference_on_a_new_head_is_refused(request, folder, kind):
    path = request.getfixturevalue(folder)
    model = CrossEncoder(str(path), device="cpu")
    assert model.untrained_head and kind in model.untrained_head
    for call in (lambda: model.predict(PAIRS), lambda: model.predict(PAIRS[0]),
                 lambda: model.rank("how do i reset my password", ["password reset help", "the cat sat"])):
        with pytest.raises(UntrainedHeadError, match="CrossEncoderTrainer") as info:
            call()
        assert str(path) in str(info.value) and kind in str(info.value)


def test_a_trained_reranker_scores(tiny_ce_dir):
    model = CrossEncoder(str(tiny_ce_dir), device="cpu")
    assert model.untrained_head is None
    assert model.predict(PAIRS).shape == (2,)


def test_explicit_opt_in_scores_with_the_random_head(tiny_bert_dir):
    model = CrossEncoder(str(tiny_bert_dir), num_labels=2, device="cpu")
    model.untrained_head = None
    assert model.predict(PAIRS).shape == (2, 2)


def test_the_mark_travels_with_a_pickled_model(tiny_bert_dir):
    import pickle

    model = pickle.loads(pickle.dumps(CrossEncoder(str(tiny_bert_dir), device="cpu")))
    with pytest.raises(UntrainedHeadError):
        model.predict(PAIRS)


@pytest.mark.slow
def test_training_from_a_base_model_lifts_the_check(tiny_bert_dir, tmp_path):
    pytest.importorskip("datasets")
    from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss
    from sentencekit.training import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from tests.training_script import toy_dataset

    model = CrossEncoder(str(tiny_bert_dir), num_labels=1, device="cpu")
    data = toy_dataset(16)
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1,
                                         per_device_train_batch_size=8, report_to="none", disable_tqdm=True)
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model)).train()
    assert model.untrained_head is None
    scores = model.predict(PAIRS)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    model.save(tmp_path / "trained")
    assert CrossEncoder(str(tmp_path / "trained"), device="cpu").untrained_head is None


def test_saving_does_not_make_a_new_head_a_reranker(tiny_st_dir, tmp_path):
    model = CrossEncoder(str(tiny_st_dir), device="cpu")
    model.save(tmp_path / "saved")
    reloaded = CrossEncoder(str(tmp_path / "saved"), device="cpu")
    with pytest.raises(UntrainedHeadError, match="saved before it was trained") as info:
        reloaded.predict(PAIRS)
    assert str(tmp_path / "saved") in str(info.value) and "CrossEncoderTrainer" in str(info.value)
    reloaded.untrained_head = None  # opted in, a new save is unmarked
    reloaded.save(tmp_path / "opted-in")
    assert CrossEncoder(str(tmp_path / "opted-in"), device="cpu").untrained_head is None


@pytest.mark.parametrize("saved", [False, True])
def test_the_onnx_backend_refuses_too(tiny_bert_dir, tmp_path, saved):
    pytest.importorskip("onnxruntime")
    folder = tiny_bert_dir
    if saved:  # a random head saved without training is still refused after the export
        CrossEncoder(str(tiny_bert_dir), device="cpu").save(tmp_path / "saved")
        folder = tmp_path / "saved"
    model = CrossEncoder(str(folder), backend="onnx")
    assert model.untrained_head
    with pytest.raises(UntrainedHeadError, match="CrossEncoderTrainer"):
        model.predict(PAIRS)
    model.untrained_head = None
    assert model.predict(PAIRS).shape == (2,)


def test_the_server_refuses_an_untrained_reranker_at_start_up(tiny_st_dir):
    from sentencekit.serve.models import load_models
    from sentencekit.serve.server_config import ServeConfig

    with pytest.raises(ValueError, match="--reranker .*untrained"):
        load_models(ServeConfig(model=str(tiny_st_dir), reranker=str(tiny_st_dir), backend="torch"))
