"""Sparse training: FLOPS and SpladeLoss by hand, each sparse loss against a hand computation on small
tensors, the standalone-use errors, the SparseAutoEncoder's training outputs and CSR losses, the
regulariser warm-up per step, and a short real SparseEncoderTrainer run on a tiny random SPLADE that
lowers the loss and saves / reloads in the sentence-transformers format."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from sentencekit import SparseEncoder
from sentencekit.losses.sparse import (
    CSRLoss,
    CSRReconstructionLoss,
    FlopsLoss,
    SparseAnglELoss,
    SparseCoSENTLoss,
    SparseCosineSimilarityLoss,
    SparseDistillKLDivLoss,
    SparseMarginMSELoss,
    SparseMSELoss,
    SparseMultipleNegativesRankingLoss,
    SparseTripletLoss,
    SpladeLoss,
    flops,
)
from sentencekit.modules import SparseAutoEncoder
from sentencekit.training import (
    SparseEncoderTrainer,
    SparseEncoderTrainingArguments,
    SpladeRegularizerWeightSchedulerCallback,
)

pytestmark = pytest.mark.unit

Q = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
P = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
N = torch.tensor([[0.0, 0.0, 1.0], [3.0, 0.0, 0.0]])


@pytest.fixture()
def splade(tiny_mlm_dir):
    return SparseEncoder(str(tiny_mlm_dir), device="cpu")


# -- FLOPS and SpladeLoss --------------------------------------------------------------------------------
def test_flops_by_hand():
    w = torch.tensor([[1.0, 0.0, 0.0], [3.0, 2.0, 0.0]])
    assert float(flops(w)) == pytest.approx(2.0**2 + 1.0**2)  # column means (2, 1, 0)
    # threshold 1: the first row (1 active dim) is not penalised -> column means (1.5, 1, 0)
    assert float(flops(w, threshold=1)) == pytest.approx(1.5**2 + 1.0**2)
    assert float(FlopsLoss(None, threshold=1).compute_loss_from_embeddings(w)) == pytest.approx(3.25)


def test_splade_loss_dict_by_hand():
    inner = SparseMultipleNegativesRankingLoss(None)
    loss = SpladeLoss(None, inner, document_regularizer_weight=0.5, query_regularizer_weight=2.0)
    out = loss.compute_loss_from_embeddings([Q, P, N], None)
    assert list(out) == ["base_loss", "document_regularizer_loss", "query_regularizer_loss"]
    assert float(out["base_loss"]) == pytest.approx(float(F.cross_entropy(Q @ torch.cat([P, N]).T, torch.arange(2))))
    assert float(out["document_regularizer_loss"]) == pytest.approx(0.5 * float(flops(torch.cat([P, N]))))
    assert float(out["query_regularizer_loss"]) == pytest.approx(2.0 * float(flops(Q)))
    no_query = SpladeLoss(None, inner, document_regularizer_weight=0.5).compute_loss_from_embeddings([Q, P], None)
    assert set(no_query) == {"base_loss", "document_regularizer_loss"}
    symmetric = SpladeLoss(None, inner, 0.5, use_document_regularizer_only=True).compute_loss_from_embeddings([Q, P])
    assert float(symmetric["document_regularizer_loss"]) == pytest.approx(0.5 * float(flops(torch.cat([Q, P]))))
    assert "query_regularizer_loss" not in symmetric
    assert SpladeLoss(None, inner, 3e-5, 5e-5, query_regularizer_threshold=4).get_config_dict() == {
        "loss": "SparseMultipleNegativesRankingLoss", "document_regularizer_weight": 3e-5,
        "query_regularizer_weight": 5e-5, "query_regularizer_threshold": 4}
    with pytest.raises(ValueError, match="compute_loss_from_embeddings"):
        SpladeLoss(None, torch.nn.MSELoss(), 1.0)


def test_regulariser_pushes_activity_down(splade):
    features = splade.tokenize(["how do i get a refund", "hello world", "reset my password please"])
    loss = SpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), document_regularizer_weight=1.0,
                      query_regularizer_weight=1.0, use_document_regularizer_only=False)
    texts = ["how do i get a refund", "hello world", "reset my password please"]
    before = splade.sparsity(splade.encode(texts))["active_dims"]
    optimizer = torch.optim.Adam(splade.parameters(), lr=1e-2)
    regularizer = []
    splade.train()
    for _ in range(8):
        out = loss([features, features], None)
        # train on the regulariser alone: it must shrink the vectors by itself
        total = out["document_regularizer_loss"] + out["query_regularizer_loss"]
        regularizer.append(float(total.detach()))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    splade.eval()
    after = splade.sparsity(splade.encode(texts))["active_dims"]
    assert regularizer[-1] < regularizer[0] * 0.5, regularizer
    assert after < before, (before, after)


# -- the inner losses by hand ----------------------------------------------------------------------------
def test_sparse_mnrl_by_hand():
    scores = Q @ P.T  # [[1, 2], [1, 2]]
    denominator = math.exp(1) + math.exp(2)  # both rows score their positive 1 and 2 (targets: 0 and 1)
    expected = (-math.log(math.exp(1) / denominator) - math.log(math.exp(2) / denominator)) / 2
    loss = SparseMultipleNegativesRankingLoss(None)
    assert scores.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert float(loss.compute_loss_from_embeddings([Q, P])) == pytest.approx(expected)
    assert loss.scale == 1.0 and loss.get_config_dict() == {"scale": 1.0, "similarity_fct": "dot_score"}


def test_sparse_margin_mse_by_hand():
    # dot(q, p) = (1, 2), dot(q, n) = (2, 0): margins (-1, 2) against teacher (0, 1)
    loss = SparseMarginMSELoss(None).compute_loss_from_embeddings([Q, P, N], torch.tensor([0.0, 1.0]))
    assert float(loss) == pytest.approx(((-1 - 0) ** 2 + (2 - 1) ** 2) / 2)


def test_sparse_distill_kl_div_by_hand():
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    student = [[1.0, 2.0], [2.0, 0.0]]  # dot(q, p), dot(q, n) per row
    loss = SparseDistillKLDivLoss(None)  # temperature 2
    expected = 0.0
    for s_row, t_row in zip(student, teacher.tolist()):
        s = [math.exp(v / 2) for v in s_row]
        t = [math.exp(v / 2) for v in t_row]
        s, t = [v / sum(s) for v in s], [v / sum(t) for v in t]
        expected += sum(ti * math.log(ti / si) for si, ti in zip(s, t))
    expected = expected / 2 * 2**2
    assert float(loss.compute_loss_from_embeddings([Q, P, N], teacher)) == pytest.approx(expected, rel=1e-5)
    # separate temperatures: student at 1, teacher at 4; the factor is student_temperature**2 = 1 (as
    # sentence-transformers 6.2), not temperature**2
    loss = SparseDistillKLDivLoss(None, student_temperature=1.0, teacher_temperature=4.0)
    s = torch.log_softmax(torch.tensor(student), dim=1)
    t = torch.softmax(teacher / 4.0, dim=1)
    expected = float((t * (t.log() - s)).sum() / 2)
    assert float(loss.compute_loss_from_embeddings([Q, P, N], teacher)) == pytest.approx(expected, rel=1e-5)


def test_sparse_cosent_angle_cosine_by_hand():
    cos = [float(F.cosine_similarity(Q[i], P[i], dim=0)) for i in range(2)]  # (1/sqrt(10), 2/sqrt(5))
    labels = torch.tensor([1.0, 0.0])  # pair 0 should score higher, but pair 1 does
    cosent = SparseCoSENTLoss(None).compute_loss_from_embeddings([Q, P], labels)
    assert float(cosent) == pytest.approx(math.log(1 + math.exp(20 * (cos[1] - cos[0]))), rel=1e-5)
    mse = SparseCosineSimilarityLoss(None).compute_loss_from_embeddings([Q, P], labels)
    assert float(mse) == pytest.approx(((cos[0] - 1) ** 2 + cos[1] ** 2) / 2, rel=1e-5)
    from sentencekit.similarity import pairwise_angle_sim

    angle = pairwise_angle_sim(Q, P).tolist()
    angle_loss = SparseAnglELoss(None).compute_loss_from_embeddings([Q, P], labels.flip(0))  # pair 1 above pair 0
    assert float(angle_loss) == pytest.approx(math.log(1 + math.exp(20 * (angle[0] - angle[1]))), rel=1e-5)


def test_sparse_triplet_and_mse_by_hand():
    d_ap = [math.dist(Q[i].tolist(), P[i].tolist()) for i in range(2)]
    d_an = [math.dist(Q[i].tolist(), N[i].tolist()) for i in range(2)]
    expected = sum(max(0.0, p - n + 5) for p, n in zip(d_ap, d_an)) / 2
    assert float(SparseTripletLoss(None).compute_loss_from_embeddings([Q, P, N])) == pytest.approx(expected, rel=1e-5)
    mse = SparseMSELoss(None).compute_loss_from_embeddings([Q], P)
    assert float(mse) == pytest.approx(float(((Q - P) ** 2).mean()))


def test_inner_losses_raise_when_used_alone(splade):
    features = [splade.tokenize(["refund"]), splade.tokenize(["refund policy"]), splade.tokenize(["cat"])]
    for loss in (SparseMultipleNegativesRankingLoss(splade), SparseMarginMSELoss(splade),
                 SparseDistillKLDivLoss(splade), SparseCoSENTLoss(splade), SparseAnglELoss(splade),
                 SparseCosineSimilarityLoss(splade), SparseTripletLoss(splade)):
        with pytest.raises(AttributeError, match="SpladeLoss|CSRLoss"):
            loss(features, torch.tensor([0.5]))
    # the regulariser and the reconstruction part raise NotImplementedError, as in sentence-transformers 6.2
    for loss in (FlopsLoss(splade), CSRReconstructionLoss(splade)):
        with pytest.raises(NotImplementedError, match="SpladeLoss|CSRLoss"):
            loss(features, torch.tensor([0.5]))
    # SparseMSELoss may be trained alone
    target = torch.zeros(1, splade.get_embedding_dimension())
    assert float(SparseMSELoss(splade)(features[:1], target)) > 0


# -- CSR ------------------------------------------------------------------------------------------------
def test_autoencoder_training_outputs_and_csr_losses_by_hand():
    torch.manual_seed(0)
    sae = SparseAutoEncoder(input_dim=4, hidden_dim=8, k=2, k_aux=3, dead_threshold=0)
    x = torch.randn(3, 4)
    with torch.inference_mode():  # encode(): the code only, no statistics
        assert "decoded_embedding_k" not in sae({"sentence_embedding": x})
    assert int(sae.stats_last_nonzero.sum()) == 0
    sae.train()
    out = sae({"sentence_embedding": x})
    z = (x - sae.pre_bias) @ sae.encoder.weight.T + sae.latent_bias
    top = torch.topk(z, 2, dim=1)
    code = torch.zeros_like(z).scatter(1, top.indices, top.values.relu())
    assert torch.allclose(out["sentence_embedding"], code)
    assert torch.allclose(out["decoded_embedding_k"], code @ sae.encoder.weight + sae.pre_bias)
    assert torch.allclose(out["decoded_embedding_k_pre_bias"], code @ sae.encoder.weight)
    assert (out["sentence_embedding_encoded_4k"] != 0).sum(dim=1).max() <= 8
    assert (out["auxiliary_embedding"] != 0).sum(dim=1).max() <= 3
    # steps since a latent last fired, counted per selection as sentence-transformers 6.2 does: the top-k
    # selection, then the top-4k one (each adds a step, firing resets to 1). After a second identical step:
    # 1 for the latents in the top-4k, 4 for the others
    sae({"sentence_embedding": x})
    top_4k = torch.topk(z, 8, dim=1)
    fired_4k = set(top_4k.indices[top_4k.values > 1e-5].tolist())
    assert {i for i in range(8) if sae.stats_last_nonzero[i] == 1} == fired_4k
    assert {i for i in range(8) if sae.stats_last_nonzero[i] == 4} == set(range(8)) - fired_4k
    sae.eval()
    with torch.no_grad():  # the trainer's evaluation loss: outputs for CSRLoss, statistics untouched
        stats = sae.stats_last_nonzero.clone()
        assert "decoded_embedding_k" in sae({"sentence_embedding": x})
        assert torch.equal(stats, sae.stats_last_nonzero)
    losses = CSRReconstructionLoss(None, beta=0.5).compute_loss_from_embeddings([out])
    assert float(losses["reconstruction_loss_k"]) == pytest.approx(float(F.mse_loss(x, out["decoded_embedding_k"])))
    loss_4k = float(F.mse_loss(x, out["decoded_embedding_4k"])) / 8
    assert float(losses["reconstruction_loss_4k"]) == pytest.approx(loss_4k)
    residual = x - out["decoded_embedding_k_pre_bias"]
    # normalised by the error of predicting the batch's mean residual (Gao et al. 2024; sentence-transformers 6.2)
    nmse = ((out["decoded_embedding_aux"] - residual) ** 2).mean() / ((residual - residual.mean(0)) ** 2).mean()
    assert float(losses["reconstruction_loss_aux"]) == pytest.approx(0.5 * float(nmse), rel=1e-5)


def test_csr_loss_keys_and_backward(tiny_st_dir):
    model = SparseEncoder(str(tiny_st_dir), device="cpu")  # dense model -> a new SparseAutoEncoder
    loss = CSRLoss(model, beta=0.1, gamma=2.0)
    features = [model.tokenize(["how do i get a refund", "hello world"]),
                model.tokenize(["refunds are paid", "hello there world"])]
    model.train()
    out = loss(features, None)
    assert list(out) == ["reconstruction_loss_k", "reconstruction_loss_4k", "reconstruction_loss_aux", "base_loss"]
    torch.stack(list(out.values())).sum().backward()
    assert model[-1].encoder.weight.grad is not None


# -- the warm-up schedule --------------------------------------------------------------------------------
def test_scheduler_weights_per_step():
    loss = SpladeLoss(None, SparseMultipleNegativesRankingLoss(None), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    callback = SpladeRegularizerWeightSchedulerCallback(loss)  # quadratic, warm-up 1/3
    state = SimpleNamespace(max_steps=30, global_step=0)
    callback.on_train_begin(None, state, None)
    seen = []
    for step in range(12):
        state.global_step = step
        callback.on_step_begin(None, state, None)
        seen.append((loss.document_regularizer_weight, loss.query_regularizer_weight))
    for step, (doc, query) in enumerate(seen):
        ratio = min(step / 10, 1.0)  # int(30 / 3) = 10 warm-up steps
        assert doc == pytest.approx(3e-5 * ratio**2) and query == pytest.approx(5e-5 * ratio**2)
    linear = SpladeRegularizerWeightSchedulerCallback(loss, scheduler_type="linear", warmup_ratio=0.5)
    linear.on_train_begin(None, SimpleNamespace(max_steps=4, global_step=0), None)
    assert [linear.weight(s, 1.0) for s in range(4)] == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(ValueError):
        SpladeRegularizerWeightSchedulerCallback(SparseMultipleNegativesRankingLoss(None))
    with pytest.raises(ValueError):
        SpladeRegularizerWeightSchedulerCallback(loss, warmup_ratio=0)


def test_trainer_defaults_and_scheduler_insertion(splade, tmp_path):
    data = Dataset.from_dict({"query": ["refund", "hello"], "answer": ["refund policy", "hello world"]})
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path), report_to="none")
    trainer = SparseEncoderTrainer(model=splade, args=args, train_dataset=data)
    assert isinstance(trainer.loss, SpladeLoss) and isinstance(trainer.loss.loss, SparseMultipleNegativesRankingLoss)
    assert (trainer.loss.document_regularizer_weight, trainer.loss.query_regularizer_weight) == (3e-5, 5e-5)
    callback = trainer.callback_handler.callbacks[1]
    assert isinstance(callback, SpladeRegularizerWeightSchedulerCallback) and callback.loss is trainer.loss
    assert callback.scheduler_type.value == "quadratic" and callback.warmup_ratio == pytest.approx(1 / 3)
    own = SpladeRegularizerWeightSchedulerCallback(trainer.loss, scheduler_type="linear")
    trainer = SparseEncoderTrainer(model=splade, args=args, train_dataset=data, loss=trainer.loss, callbacks=[own])
    callbacks = trainer.callback_handler.callbacks
    schedulers = [c for c in callbacks if isinstance(c, SpladeRegularizerWeightSchedulerCallback)]
    assert schedulers == [own]
    from sentencekit.training import SentenceTransformerTrainingArguments

    with pytest.raises(TypeError, match="SparseEncoderTrainingArguments"):
        SparseEncoderTrainer(model=splade, args=SentenceTransformerTrainingArguments(output_dir=str(tmp_path)),
                             train_dataset=data)


# -- a real run ------------------------------------------------------------------------------------------
def test_short_training_lowers_the_loss_and_saves_in_st_format(splade, tmp_path):
    queries = ["how do i get a refund", "reset my password", "cancel my subscription", "shipping is late",
               "the weather in paris", "my card payment", "login help please", "the cat sat on the mat"]
    answers = ["refund return policy", "password reset login", "cancel subscription account", "delivery late ship",
               "paris weather mild today", "card payment cost", "login account support", "cat dog mat"]
    data = Dataset.from_dict({"query": queries, "answer": answers})
    loss = SpladeLoss(splade, SparseMultipleNegativesRankingLoss(splade), document_regularizer_weight=3e-5,
                      query_regularizer_weight=5e-5)
    probe = [splade.tokenize(queries), splade.tokenize(answers)]
    with torch.no_grad():
        before = float(loss(probe, None)["base_loss"])
    args = SparseEncoderTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=6,
                                          per_device_train_batch_size=8, learning_rate=5e-3, logging_steps=2,
                                          save_strategy="no", report_to="none", use_cpu=True, seed=0)
    trainer = SparseEncoderTrainer(model=splade, args=args, train_dataset=data, loss=loss)
    trainer.train()
    with torch.no_grad():
        after = float(loss(probe, None)["base_loss"])
    assert after < before * 0.7, (before, after)
    scheduler = trainer.callback_handler.callbacks[1]
    logs = {"loss": 1.0}
    scheduler.on_log(args, trainer.state, None, logs=logs)  # what the printed training logs carry
    assert logs["document_regularizer_weight"] == 3e-5 and logs["query_regularizer_weight"] == 5e-5
    assert loss.document_regularizer_weight == 3e-5  # full weight after training
    folder = tmp_path / "saved"
    splade.save(str(folder))
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "SparseEncoder"
    modules = json.loads((folder / "modules.json").read_text())
    assert modules[-1]["type"] == "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"
    reloaded = SparseEncoder(str(folder), device="cpu")
    torch.testing.assert_close(reloaded.encode(queries).to_dense(), splade.encode(queries).to_dense())
