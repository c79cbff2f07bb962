"""Cross-encoder losses (sentencekit.losses.cross_encoder): each learns a toy task and matches a hand
computation on the model's own logits."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit import CrossEncoder
from sentencekit.losses import cross_encoder as CL

QUERIES = ["how do i get a refund", "what is the weather in paris today", "reset my password please",
           "cancel my subscription"]
RELEVANT = ["refund policy for a return", "paris weather is mild today", "password reset for my login",
            "cancel subscription and payment"]
IRRELEVANT = ["the dog is good", "phone number for support", "price of the card", "hello world test"]
SCHEMES = [CL.NoWeightingScheme, CL.NDCGLoss1Scheme, CL.NDCGLoss2Scheme, CL.LambdaRankScheme, CL.NDCGLoss2PPScheme]


@pytest.fixture()
def model(tiny_ce_dir) -> CrossEncoder:
    torch.manual_seed(0)
    return CrossEncoder(str(tiny_ce_dir), device="cpu")


@pytest.fixture()
def fresh_model(tiny_bert_dir) -> CrossEncoder:
    """A cross-encoder with a fresh (small) head: its sigmoid scores are far from saturation."""
    torch.manual_seed(5)
    return CrossEncoder(str(tiny_bert_dir), num_labels=1, device="cpu")


@pytest.fixture(scope="module")
def nli_dir(tmp_path_factory, tiny_bert_dir):
    """A 3-label cross-encoder (random head), for CrossEntropyLoss."""
    torch.manual_seed(2)
    model = CrossEncoder(str(tiny_bert_dir), num_labels=3, max_length=48, device="cpu")
    model.untrained_head = None  # a stand-in for a trained 3-label model: save it unmarked
    out = tmp_path_factory.mktemp("tiny-nli") / "model"
    model.save(out)
    return out


def logits(model: CrossEncoder, pairs: list[tuple[str, str]]) -> Tensor:
    """The model's raw scores of pairs, computed directly (eval mode, no graph)."""
    model.eval()
    features = model.tokenize(pairs)
    features.pop("truncated")
    with torch.no_grad():
        return model(features)["scores"]


def value(loss: nn.Module, inputs, labels) -> float:
    """Deterministic loss value: no dropout, no graph, fixed draw of sampled negatives."""
    was_training = loss.training
    loss.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        result = float(loss(inputs, labels))
    loss.train(was_training)
    return result


def assert_learns(loss: nn.Module, inputs, labels, steps: int = 15, lr: float = 5e-3, ratio: float = 0.8) -> None:
    before = value(loss, inputs, labels)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(loss.parameters(), lr=lr)
    loss.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss(inputs, labels).backward()
        optimizer.step()
    after = value(loss, inputs, labels)
    assert after < ratio * before, f"{type(loss).__name__}: loss {before:.4f} -> {after:.4f}"


def pair_batch() -> tuple[list[list[str]], Tensor]:
    inputs = [QUERIES * 2, RELEVANT + IRRELEVANT]
    return inputs, torch.tensor([1.0] * 4 + [0.0] * 4)


def listwise_batch() -> tuple[list, list[Tensor]]:
    # ragged lists: 3, 2 and 4 documents
    inputs = [QUERIES[:3], [[RELEVANT[0], IRRELEVANT[0], IRRELEVANT[1]], [IRRELEVANT[2], RELEVANT[1]],
                            [IRRELEVANT[3], RELEVANT[2], RELEVANT[3], IRRELEVANT[0]]]]
    labels = [torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 3.0, 1.0, 0.0])]
    return inputs, labels


# -- every loss learns its toy task ---------------------------------------------------------------------
def test_bce_learns(model):
    assert_learns(CL.BinaryCrossEntropyLoss(model), *pair_batch())


def test_bce_pos_weight_learns(model):
    inputs, labels = pair_batch()
    assert_learns(CL.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(2.0)), inputs, labels)


def test_cross_entropy_learns(nli_dir):
    model = CrossEncoder(str(nli_dir), device="cpu")
    inputs = [QUERIES + QUERIES[:2], RELEVANT + IRRELEVANT[:2]]
    assert_learns(CL.CrossEntropyLoss(model), inputs, torch.tensor([0, 1, 2, 0, 1, 2]))


def test_mse_learns(model):
    inputs, labels = pair_batch()
    assert_learns(CL.MSELoss(model), inputs, labels * 4 - 2)


def test_margin_mse_learns(model):
    assert_learns(CL.MarginMSELoss(model), [QUERIES, RELEVANT, IRRELEVANT], torch.full((4,), 3.0))


def test_mnrl_learns(fresh_model):
    assert_learns(CL.MultipleNegativesRankingLoss(fresh_model), [QUERIES, RELEVANT, IRRELEVANT], None)


def test_mnrl_all_in_batch_negatives_learns(fresh_model):
    inputs = [QUERIES, RELEVANT, IRRELEVANT]
    assert_learns(CL.MultipleNegativesRankingLoss(fresh_model, num_negatives=None), inputs, None)


def test_listnet_learns(model):
    assert_learns(CL.ListNetLoss(model), *listwise_batch())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_lambda_loss_learns(model, scheme):
    assert_learns(CL.LambdaLoss(model, weighting_scheme=scheme()), *listwise_batch())


# -- values against hand computations --------------------------------------------------------------------
def test_bce_value(model):
    inputs, labels = pair_batch()
    raw = logits(model, list(zip(*inputs))).view(-1)
    assert value(CL.BinaryCrossEntropyLoss(model), inputs, labels) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(raw, labels)), rel=1e-5)
    weighted = F.binary_cross_entropy_with_logits(raw, labels, pos_weight=torch.tensor(3.0))
    assert value(CL.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(3.0)), inputs, labels) == pytest.approx(
        float(weighted), rel=1e-5)
    sigmoid = F.binary_cross_entropy_with_logits(torch.sigmoid(raw), labels)
    assert value(CL.BinaryCrossEntropyLoss(model, activation_fn=nn.Sigmoid()), inputs, labels) == pytest.approx(
        float(sigmoid), rel=1e-5)


def test_cross_entropy_value(nli_dir):
    model = CrossEncoder(str(nli_dir), device="cpu")
    inputs, labels = [QUERIES, RELEVANT], torch.tensor([0, 1, 2, 1])
    raw = logits(model, list(zip(*inputs)))
    assert raw.shape == (4, 3)
    assert value(CL.CrossEntropyLoss(model), inputs, labels) == pytest.approx(
        float(F.cross_entropy(raw, labels)), rel=1e-5)


def test_mse_value(model):
    inputs, labels = pair_batch()
    raw = logits(model, list(zip(*inputs))).view(-1)
    assert value(CL.MSELoss(model), inputs, labels) == pytest.approx(float(((raw - labels) ** 2).mean()), rel=1e-5)
    sig = CL.MSELoss(model, activation_fn=nn.Sigmoid())
    assert value(sig, inputs, labels) == pytest.approx(float(((raw.sigmoid() - labels) ** 2).mean()), rel=1e-5)


def test_margin_mse_value(model):
    margins = torch.tensor([1.0, -2.0, 0.5, 3.0])
    pos = logits(model, list(zip(QUERIES, RELEVANT))).view(-1)
    neg = logits(model, list(zip(QUERIES, IRRELEVANT))).view(-1)
    assert value(CL.MarginMSELoss(model), [QUERIES, RELEVANT, IRRELEVANT], margins) == pytest.approx(
        float(((pos - neg - margins) ** 2).mean()), rel=1e-5)
    # several negatives: one margin per negative
    neg2 = logits(model, list(zip(QUERIES, IRRELEVANT[::-1]))).view(-1)
    two = torch.stack([margins, -margins], dim=1)
    expected = ((torch.stack([pos - neg, pos - neg2], dim=1) - two) ** 2).mean()
    assert value(CL.MarginMSELoss(model), [QUERIES, RELEVANT, IRRELEVANT, IRRELEVANT[::-1]], two) == pytest.approx(
        float(expected), rel=1e-5)


def test_mnrl_value_with_all_in_batch_negatives(model):
    # With num_negatives=None every other row's positive is a negative: the loss is the cross-entropy over
    # the full (query, positive) score matrix, whatever the order of the negatives.
    raw = logits(model, [(q, d) for q in QUERIES for d in RELEVANT]).view(4, 4)
    scores = 10.0 * torch.sigmoid(raw)
    expected = F.cross_entropy(scores, torch.arange(4))
    loss = CL.MultipleNegativesRankingLoss(model, num_negatives=None)
    assert value(loss, [QUERIES, RELEVANT], None) == pytest.approx(float(expected), rel=1e-5)


def test_mnrl_negatives_never_come_from_the_own_row(model):
    loss = CL.MultipleNegativesRankingLoss(model, num_negatives=3)
    torch.manual_seed(0)
    for _ in range(10):
        columns = loss.in_batch_negatives([RELEVANT, IRRELEVANT])
        assert len(columns) == 3
        for row in range(4):
            drawn = [column[row] for column in columns]
            assert RELEVANT[row] not in drawn and IRRELEVANT[row] not in drawn
            assert len(set(drawn)) == 3  # without replacement
    everything = CL.MultipleNegativesRankingLoss(model, num_negatives=None).in_batch_negatives([RELEVANT, IRRELEVANT])
    assert len(everything) == 6  # (4 - 1) rows x 2 columns
    assert CL.MultipleNegativesRankingLoss(model).in_batch_negatives([RELEVANT[:1]]) == []  # batch of one


def test_listnet_value(model):
    inputs, labels = listwise_batch()
    expected = []
    for query, docs, rel in zip(inputs[0], inputs[1], labels):
        scores = logits(model, [(query, d) for d in docs]).view(-1)
        expected.append(-(torch.softmax(rel, 0) * torch.log_softmax(scores, 0)).sum())
    assert value(CL.ListNetLoss(model), inputs, labels) == pytest.approx(float(torch.stack(expected).mean()),
                                                                         rel=1e-5)


def test_lambda_loss_no_weighting_value(model):
    # No weighting: -mean over pairs with label_i > label_j of log2(sigmoid(s_i - s_j)).
    inputs, labels = listwise_batch()
    terms = []
    for query, docs, rel in zip(inputs[0], inputs[1], labels):
        s = logits(model, [(query, d) for d in docs]).view(-1)
        terms += [torch.log2(torch.sigmoid(s[i] - s[j])) for i in range(len(docs)) for j in range(len(docs))
                  if rel[i] > rel[j]]
    expected = -torch.stack(terms).mean()
    loss = CL.LambdaLoss(model, weighting_scheme=CL.NoWeightingScheme())
    assert value(loss, inputs, labels) == pytest.approx(float(expected), rel=1e-5)
    natural = CL.LambdaLoss(model, weighting_scheme=None, reduction_log="natural")
    assert value(natural, inputs, labels) == pytest.approx(float(expected) * torch.log(torch.tensor(2.0)).item(),
                                                           rel=1e-5)


def test_listwise_mini_batches_and_padding(model):
    inputs, labels = listwise_batch()
    for make in (CL.ListNetLoss, CL.LambdaLoss):
        reference = value(make(model), inputs, labels)
        assert value(make(model, mini_batch_size=2), inputs, labels) == pytest.approx(reference, rel=1e-5)
        assert value(make(model, mini_batch_size=0), inputs, labels) == pytest.approx(reference, rel=1e-5)
        # lists padded with None (and padded labels) give the same loss
        padded_docs = [docs + [None] * (4 - len(docs)) for docs in inputs[1]]
        padded_labels = [torch.cat([row, torch.full((4 - len(row),), -1.0)]) for row in labels]
        assert value(make(model), [inputs[0], padded_docs], padded_labels) == pytest.approx(reference, rel=1e-5)
        # labels as plain lists work too
        assert value(make(model), inputs, [row.tolist() for row in labels]) == pytest.approx(reference, rel=1e-5)


def test_listwise_edge_cases(model):
    inputs, labels = listwise_batch()
    for make in (CL.ListNetLoss, CL.LambdaLoss):
        reference = value(make(model), inputs, labels)
        # a query without documents is left out
        with_empty = [[*inputs[0], QUERIES[3]], [*inputs[1], []]]
        assert value(make(model), with_empty, [*labels, torch.tensor([])]) == pytest.approx(reference, rel=1e-5)
        # no documents at all: a zero loss that still backpropagates
        empty = make(model)([QUERIES[:1], [[]]], [torch.tensor([])])
        assert float(empty.detach()) == 0.0 and empty.requires_grad
    # equal labels: no pair to order, zero loss (not NaN)
    tied = CL.LambdaLoss(model)([QUERIES[:1], [RELEVANT[:3]]], [torch.ones(3)])
    assert float(tied.detach()) == 0.0
    tied.backward()


def test_lambda_loss_top_k(model):
    inputs, labels = listwise_batch()
    full = value(CL.LambdaLoss(model), inputs, labels)
    top2 = value(CL.LambdaLoss(model, k=2), inputs, labels)
    assert top2 > 0 and top2 != pytest.approx(full)


# -- contract details ---------------------------------------------------------------------------------------
def test_config_dicts_are_json(model, nli_dir):
    losses = [CL.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(2.0)), CL.MSELoss(model),
              CL.CrossEntropyLoss(CrossEncoder(str(nli_dir), device="cpu")), CL.MarginMSELoss(model),
              CL.MultipleNegativesRankingLoss(model), CL.ListNetLoss(model), CL.LambdaLoss(model)]
    assert {type(x).__name__ for x in losses} == {n for n in CL.__all__ if n.endswith("Loss")}
    for loss in losses:
        json.dumps(loss.get_config_dict())
        assert loss.citation is None or isinstance(loss.citation, str)
    assert CL.MultipleNegativesRankingLoss(model).get_config_dict() == {
        "scale": 10.0, "num_negatives": 4, "activation_fn": "torch.nn.modules.activation.Sigmoid"}
    assert CL.LambdaLoss(model).get_config_dict()["weighting_scheme"].endswith("NDCGLoss2PPScheme")
    assert CL.BinaryCrossEntropyLoss(model).get_config_dict() == {
        "activation_fn": "torch.nn.modules.linear.Identity", "pos_weight": None}


def test_defaults_match_sentence_transformers(model):
    lambda_loss = CL.LambdaLoss(model)
    assert isinstance(lambda_loss.weighting_scheme, CL.NDCGLoss2PPScheme) and lambda_loss.weighting_scheme.mu == 10.0
    assert (lambda_loss.k, lambda_loss.sigma, lambda_loss.eps, lambda_loss.reduction_log,
            lambda_loss.mini_batch_size) == (None, 1.0, 1e-10, "binary", None)
    mnrl = CL.MultipleNegativesRankingLoss(model)
    assert (mnrl.num_negatives, mnrl.scale, type(mnrl.activation_fn)) == (4, 10.0, nn.Sigmoid)
    for make in (CL.BinaryCrossEntropyLoss, CL.MSELoss, CL.MarginMSELoss, CL.ListNetLoss):
        assert isinstance(make(model).activation_fn, nn.Identity)


@pytest.mark.parametrize("name", [n for n in CL.__all__ if n.endswith("Loss")])
def test_docstring_examples_run(name, tiny_ce_dir, nli_dir):
    from tests.test_losses_bi_encoder import run_examples

    run_examples(getattr(CL, name), {"cross-encoder/nli-deberta-v3-xsmall": nli_dir}, tiny_ce_dir)


def test_clear_errors(model, tiny_bert_dir):
    with pytest.raises(ValueError, match="BinaryCrossEntropyLoss expects 2 input columns, got 3"):
        CL.BinaryCrossEntropyLoss(model)([QUERIES, RELEVANT, IRRELEVANT], torch.ones(4))
    with pytest.raises(ValueError, match="needs labels"):
        CL.MSELoss(model)([QUERIES, RELEVANT], None)
    with pytest.raises(ValueError, match="does not match"):
        CL.ListNetLoss(model)([QUERIES[:1], [RELEVANT[:2]]], [torch.tensor([1.0, 0.0, 0.0])])
    three = CrossEncoder(str(tiny_bert_dir), num_labels=3, device="cpu")
    with pytest.raises(ValueError, match="1 output label"):
        CL.LambdaLoss(three)
