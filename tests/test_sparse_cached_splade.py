"""CachedSpladeLoss = SpladeLoss: the same loss dict and the same parameter gradients (1e-5) on a tiny random
SPLADE, for several inner losses, mini-batch sizes, token budgets and the FLOPS regularisers; dropout replayed;
and a short SparseEncoderTrainer run in which the regulariser warm-up callback schedules it."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from sentencekit import SparseEncoder
from sentencekit.losses._gradcache import mini_batch_ranges, slice_rows
from sentencekit.losses.sparse import (
    CachedSpladeLoss,
    SparseDistillKLDivLoss,
    SparseMarginMSELoss,
    SparseMultipleNegativesRankingLoss,
    SpladeLoss,
)
from sentencekit.training import (
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
    SpladeRegularizerWeightSchedulerCallback,
)

pytestmark = pytest.mark.unit

QUERIES = ["how do i get a refund", "reset my password", "cancel my subscription now please", "late parcel",
           "weather in paris today", "card payment failed twice"]
POSITIVES = ["refund return policy money back", "password reset login", "cancel subscription account",
             "delivery is late ship", "paris weather mild", "card payment cost failed"]
NEGATIVES = ["the cat sat on the mat", "hello world", "stock prices fell", "tea or coffee", "a red car",
             "music and dance tonight"]


@pytest.fixture()
def splade(tiny_mlm_dir):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu")
    model.eval()  # no dropout: both losses see identical embeddings
    return model


def _columns(model, *columns):
    return [model.tokenize(list(texts)) for texts in columns]


def _dict_and_grads(model, loss, features, labels=None):
    model.zero_grad()
    out = loss(features, labels)
    torch.stack(list(out.values())).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return {key: float(value.detach()) for key, value in out.items()}, grads


def _assert_same(cached, plain):
    (cached_values, cached_grads), (plain_values, plain_grads) = cached, plain
    assert list(cached_values) == list(plain_values)
    for key in plain_values:
        assert cached_values[key] == pytest.approx(plain_values[key], rel=1e-5, abs=1e-7), key
    assert cached_grads.keys() == plain_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("mini_batch_size", [1, 4, 32])
def test_same_dict_and_gradients_as_splade_loss_mnrl(splade, mini_batch_size):
    features = _columns(splade, QUERIES, POSITIVES, NEGATIVES)
    kwargs = {"document_regularizer_weight": 0.3, "query_regularizer_weight": 0.5}  # large: the FLOPS grads count
    plain = SpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), **kwargs)
    cached = CachedSpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), mini_batch_size=mini_batch_size,
                              **kwargs)
    _assert_same(_dict_and_grads(splade, cached, features), _dict_and_grads(splade, plain, features))


def test_regularisers_alone_carry_their_gradients(splade):
    # large regulariser weights make FLOPS dominate the gradients compared; thresholds and
    # use_document_regularizer_only included
    features = _columns(splade, QUERIES, POSITIVES, NEGATIVES)
    labels = torch.linspace(-1, 1, len(QUERIES))
    kwargs = {"document_regularizer_weight": 2.0, "query_regularizer_weight": 3.0,
              "document_regularizer_threshold": 5, "query_regularizer_threshold": 3}
    plain = SpladeLoss(splade, SparseMarginMSELoss(splade), **kwargs)
    cached = CachedSpladeLoss(splade, SparseMarginMSELoss(splade), mini_batch_size=2, **kwargs)
    _assert_same(_dict_and_grads(splade, cached, features, labels), _dict_and_grads(splade, plain, features, labels))
    symmetric = {"document_regularizer_weight": 1.5, "use_document_regularizer_only": True}
    plain = SpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), **symmetric)
    cached = CachedSpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), mini_batch_size=3, **symmetric)
    features = features[:2]
    result = _dict_and_grads(splade, cached, features)
    assert "query_regularizer_loss" not in result[0]
    _assert_same(result, _dict_and_grads(splade, plain, features))


def test_token_budget_and_distillation_labels(splade):
    features = _columns(splade, QUERIES, POSITIVES, NEGATIVES)
    teacher = torch.tensor([[3.0, 1.0], [2.0, 0.5], [1.0, 1.5], [4.0, 0.0], [0.2, 0.1], [2.5, 2.0]])
    kwargs = {"document_regularizer_weight": 0.2, "query_regularizer_weight": 0.1}
    plain = SpladeLoss(splade, SparseDistillKLDivLoss(splade), **kwargs)
    cached = CachedSpladeLoss(splade, SparseDistillKLDivLoss(splade), mini_batch_num_tokens=14, **kwargs)
    _assert_same(_dict_and_grads(splade, cached, features, teacher),
                 _dict_and_grads(splade, plain, features, teacher))


def test_token_budget_ranges_and_trimmed_slices(splade):
    features = splade.tokenize(["a", "a b c d e f g h", "a b", "a b c"])
    tokens = features["attention_mask"].sum(dim=1).tolist()  # [CLS] ... [SEP]
    assert tokens == [3, 10, 4, 5]
    assert mini_batch_ranges(features, 32, mini_batch_num_tokens=9) == [(0, 1), (1, 2), (2, 4)]
    assert mini_batch_ranges(features, 3) == [(0, 3), (3, 4)]
    short = slice_rows(features, 2, 4)
    assert short["input_ids"].shape == (2, 5)  # trailing padding of the whole batch dropped
    assert torch.equal(short["input_ids"], features["input_ids"][2:4, :5])
    assert features["input_ids"].shape == (4, 10)  # the input is not changed
    with pytest.raises(ValueError, match="attention_mask"):
        mini_batch_ranges({"input_ids": features["input_ids"]}, 2, mini_batch_num_tokens=4)


def test_no_grad_value_dropout_replay_and_grad_scaling(splade):
    features = _columns(splade, QUERIES, POSITIVES)
    kwargs = {"document_regularizer_weight": 0.3, "query_regularizer_weight": 0.5}
    plain = SpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), **kwargs)
    cached = CachedSpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), mini_batch_size=2, **kwargs)
    with torch.no_grad():
        values = cached(features, None)
        reference = plain(features, None)
    assert not any(v.requires_grad for v in values.values())
    assert {k: float(v) for k, v in values.items()} == pytest.approx({k: float(v) for k, v in reference.items()})

    splade.zero_grad()
    (torch.stack(list(cached(features, None).values())).sum() * 3).backward()
    tripled = {n: p.grad.clone() for n, p in splade.named_parameters() if p.grad is not None}
    _, single = _dict_and_grads(splade, plain, features)
    for name, grad in single.items():
        torch.testing.assert_close(tripled[name], 3 * grad, rtol=1e-5, atol=1e-5)

    # train mode: one mini-batch per column consumes the RNG as SpladeLoss does, so dropout masks match
    splade.train()
    whole = CachedSpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), mini_batch_size=len(QUERIES),
                             **kwargs)
    torch.manual_seed(7)
    expected = _dict_and_grads(splade, plain, features)
    torch.manual_seed(7)
    _assert_same(_dict_and_grads(splade, whole, features), expected)


def test_arguments_config_and_errors(splade):
    inner = SparseMultipleNegativesRankingLoss(splade)
    loss = CachedSpladeLoss(splade, inner, document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)
    assert isinstance(loss, SpladeLoss)
    assert (loss.mini_batch_size, loss.mini_batch_num_tokens, loss.show_progress_bar) == (32, None, False)
    assert loss.get_config_dict() == {"loss": "SparseMultipleNegativesRankingLoss", "document_regularizer_weight": 3e-5,
                                      "query_regularizer_weight": 5e-5, "mini_batch_size": 32,
                                      "mini_batch_num_tokens": None}
    assert "gao2021scaling" in loss.citation and "formal2022" in loss.citation
    with pytest.raises(ValueError, match="mini_batch_size"):
        CachedSpladeLoss(splade, inner, 3e-5, mini_batch_size=0)
    with pytest.raises(ValueError, match="mini_batch_num_tokens"):
        CachedSpladeLoss(splade, inner, 3e-5, mini_batch_num_tokens=-5)
    with pytest.raises(ValueError, match="compute_loss_from_embeddings"):
        CachedSpladeLoss(splade, torch.nn.MSELoss(), 3e-5)


def test_trainer_schedules_and_trains_with_it(splade, tmp_path):
    splade.train()
    data = Dataset.from_dict({"query": QUERIES, "answer": POSITIVES})
    loss = CachedSpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), document_regularizer_weight=3e-5,
                            query_regularizer_weight=5e-5, mini_batch_size=2)
    probe = _columns(splade, QUERIES, POSITIVES)
    with torch.no_grad():
        before = float(loss(probe, None)["base_loss"])
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path), num_train_epochs=6, per_device_train_batch_size=6,
                                          learning_rate=5e-3, save_strategy="no", report_to="none", use_cpu=True,
                                          seed=0, logging_steps=2)
    trainer = SparseEncoderTrainer(model=splade, args=args, train_dataset=data, loss=loss)
    callback = trainer.callback_handler.callbacks[1]
    assert isinstance(callback, SpladeRegularizerWeightSchedulerCallback) and callback.loss is loss
    seen = []
    original = loss.calculate_loss

    def spy(embeddings, labels, with_backward=False):
        seen.append(loss.document_regularizer_weight)
        return original(embeddings, labels, with_backward)

    loss.calculate_loss = spy
    trainer.train()
    del loss.calculate_loss
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(3e-5) and seen == sorted(seen)  # warmed up, step by step
    with torch.no_grad():
        after = float(loss(probe, None)["base_loss"])
    assert after < before * 0.7, (before, after)


def test_inference_free_router_model(tiny_mlm_dir):
    # queries through a trainable SparseStaticEmbedding, documents through the MLM: both sides' weights get
    # SpladeLoss's gradients (the mini-batches keep the features' route)
    from transformers import AutoTokenizer

    from sentencekit.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_mlm_dir))
    router = Router.for_query_document([SparseStaticEmbedding(tokenizer, frozen=False)],
                                       [Transformer(str(tiny_mlm_dir), transformer_task="fill-mask"),
                                        SpladePooling("max")])
    model = SparseEncoder(modules=[router], device="cpu")
    model.eval()
    features = [router.tokenize(QUERIES, task="query"), router.tokenize(POSITIVES, task="document")]
    plain = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=0.3)
    cached = CachedSpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=0.3,
                              mini_batch_size=4)
    result = _dict_and_grads(model, cached, features)
    assert any("weight" in name and name.startswith("0.sub_modules.query") for name in result[1]), list(result[1])
    _assert_same(result, _dict_and_grads(model, plain, features))
