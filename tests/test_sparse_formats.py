"""Sparse-encoder folders: SpladePooling's math and config, the fill-mask Transformer, reading folders saved
by sentence-transformers 6.2 and 5.x (written by hand per the reference) and plain BertForMaskedLM
folders, saving in the 6.2 layout and loading back identically, and folders that are no sparse encoder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer, SparseEncoder
from sentencekit.files import ModelFormatError
from sentencekit.modules import SpladePooling, Transformer
from sentencekit.pipeline.sparse_output import gather_sparse_rows, select_max_active_dims, sparse_batch_step
from tests.test_sparse_encoder import TEXTS, splade_reference

ST6_TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
ST6_SPLADE = "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"
HF_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")


def copy_hf_files(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for name in HF_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


# -- SpladePooling ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["max", "sum"])
@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_splade_pooling_math_masks_padding_and_chunks_alike(strategy, activation):
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11) * 3
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    out = SpladePooling(strategy, activation)({"token_embeddings": logits, "attention_mask": mask})
    expected = []
    for row, n in zip(logits, mask.sum(1).tolist()):
        act = torch.log1p(torch.relu(row[:n]))
        if activation == "log1p_relu":
            act = torch.log1p(act)
        expected.append(act.max(0).values if strategy == "max" else act.sum(0))
    torch.testing.assert_close(out["sentence_embedding"], torch.stack(expected))
    chunked = SpladePooling(strategy, activation, chunk_size=3)({"token_embeddings": logits, "attention_mask": mask})
    torch.testing.assert_close(chunked["sentence_embedding"], out["sentence_embedding"])


def test_splade_pooling_config_is_sentence_transformers_and_reads_the_legacy_key(tmp_path):
    pool = SpladePooling("sum", "log1p_relu", chunk_size=4)
    assert pool.get_sentence_embedding_dimension() is None
    pool({"token_embeddings": torch.zeros(1, 2, 9), "attention_mask": torch.ones(1, 2)})
    assert pool.get_sentence_embedding_dimension() == 9  # filled in at the first forward
    pool.save(tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved == {"pooling_strategy": "sum", "activation_function": "log1p_relu", "embedding_dimension": 9}
    write(tmp_path / "v5" / "config.json", {"pooling_strategy": "max", "activation_function": "relu",
                                            "word_embedding_dimension": 30522})
    legacy = SpladePooling.load(tmp_path / "v5")
    assert legacy.embedding_dimension == 30522 == legacy.word_embedding_dimension
    for bad in ({"pooling_strategy": "mean"}, {"activation_function": "gelu"}, {"chunk_size": 0}):
        with pytest.raises(ValueError):
            SpladePooling(**bad)


def test_fill_mask_transformer_outputs_mlm_logits(tiny_mlm_dir):
    t = Transformer(str(tiny_mlm_dir), transformer_task="fill-mask")
    features = t.tokenize(["hello world", "a"])
    out = t(features)
    vocab = t.tokenizer.vocab_size
    assert out["token_embeddings"].shape == (*features["input_ids"].shape, vocab)
    assert t.get_word_embedding_dimension() == vocab
    config = t.get_config_dict()
    assert config["transformer_task"] == "fill-mask" and config["module_output_name"] == "token_embeddings"
    assert config["modality_config"] == {"text": {"method": "forward", "method_output_name": "logits"}}


# -- reading folders ------------------------------------------------------------------------------------------
def test_plain_masked_lm_folder_loads_as_splade_max(tiny_mlm_dir):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "SpladePooling"]
    assert model[0].transformer_task == "fill-mask" and model[1].pooling_strategy == "max"
    assert model[1].activation_function == "relu" and model.max_active_dims is None


def test_folder_written_as_sentence_transformers_6_2_saves_it(tiny_mlm_dir, tmp_path):
    folder = tmp_path / "st62"
    copy_hf_files(tiny_mlm_dir, folder)
    vocab = json.loads((tiny_mlm_dir / "config.json").read_text())["vocab_size"]
    write(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": ST6_TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": ST6_SPLADE}])
    write(folder / "sentence_bert_config.json", {
        "transformer_task": "fill-mask",
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
        "module_output_name": "token_embeddings"})
    write(folder / "1_SpladePooling" / "config.json",
          {"pooling_strategy": "max", "activation_function": "log1p_relu", "embedding_dimension": vocab})
    write(folder / "config_sentence_transformers.json", {
        "model_type": "SparseEncoder", "__version__": {"sentence_transformers": "6.2.0"},
        "prompts": {"query": "query: ", "document": ""}, "default_prompt_name": None,
        "similarity_fn_name": "cosine", "max_active_dims": 8})
    model = SparseEncoder(str(folder), device="cpu")
    assert model.max_active_dims == 8 and model.similarity_fn_name == "cosine"
    assert model.prompts["query"] == "query: " and model.get_embedding_dimension() == vocab
    assert model.max_seq_length == 64  # no saved limit: the tokenizer's / position embeddings'
    emb = model.encode(TEXTS).to_dense()
    ref = splade_reference(tiny_mlm_dir, TEXTS, activation="log1p_relu")
    for row, full in zip(emb, ref):
        top = torch.topk(full, 8).indices
        assert int((row != 0).sum()) == 8
        torch.testing.assert_close(row[top], full[top], atol=1e-5, rtol=1e-5)
    with pytest.raises(ModelFormatError, match="SparseEncoder"):
        SentenceTransformer(str(folder), device="cpu")


def test_folder_written_as_sentence_transformers_5_mlm_transformer(tiny_mlm_dir, tmp_path):
    folder = tmp_path / "st5"
    copy_hf_files(tiny_mlm_dir, folder)
    write(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling",
         "type": "sentence_transformers.sparse_encoder.models.SpladePooling"}])
    write(folder / "sentence_bert_config.json", {"max_seq_length": 16, "do_lower_case": False})
    write(folder / "1_SpladePooling" / "config.json",
          {"pooling_strategy": "max", "activation_function": "relu", "word_embedding_dimension": None})
    write(folder / "config_sentence_transformers.json", {"model_type": "SparseEncoder", "prompts": {},
                                                         "default_prompt_name": None, "similarity_fn_name": "dot"})
    model = SparseEncoder(str(folder), device="cpu")
    assert model[0].transformer_task == "fill-mask" and model.max_seq_length == 16
    torch.testing.assert_close(model.encode(TEXTS).to_dense(), splade_reference(tiny_mlm_dir, TEXTS, max_length=16),
                               atol=1e-5, rtol=1e-5)
    model.save(tmp_path / "resaved")
    entries = json.loads((tmp_path / "resaved" / "modules.json").read_text())
    assert [e["type"] for e in entries] == [ST6_TRANSFORMER, ST6_SPLADE]


def test_save_then_load_is_identical_in_the_6_2_layout(tiny_mlm_dir, tmp_path):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu", prompts={"query": "q: "})
    out = tmp_path / "saved"
    model.save(out)
    config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "SparseEncoder" and config["similarity_fn_name"] is None
    assert "max_active_dims" not in config and config["prompts"] == {"query": "q: ", "document": ""}
    assert json.loads((out / "modules.json").read_text()) == [
        {"idx": 0, "name": "0", "path": "", "type": ST6_TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": ST6_SPLADE}]
    bert = json.loads((out / "sentence_bert_config.json").read_text())
    assert bert["transformer_task"] == "fill-mask" and bert["module_output_name"] == "token_embeddings"
    pool = json.loads((out / "1_SpladePooling" / "config.json").read_text())
    assert pool == {"pooling_strategy": "max", "activation_function": "relu",
                    "embedding_dimension": model.get_embedding_dimension()}
    assert "SparseEncoder" in (out / "README.md").read_text()
    loaded = SparseEncoder(str(out), device="cpu")
    assert torch.equal(loaded.encode_query(TEXTS).to_dense(), model.encode_query(TEXTS).to_dense())
    assert loaded.similarity_fn_name == "dot"

    model.max_active_dims = 4
    model.similarity_fn_name = "cosine"
    model.save_pretrained(out)
    config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert config["max_active_dims"] == 4 and config["similarity_fn_name"] == "cosine"
    again = SparseEncoder(str(out), device="cpu")
    assert again.max_active_dims == 4
    assert torch.equal(again.encode(TEXTS).to_dense(), model.encode(TEXTS).to_dense())


def test_modules_built_by_hand(tiny_mlm_dir):
    model = SparseEncoder(modules=[Transformer(str(tiny_mlm_dir), transformer_task="fill-mask"), SpladePooling()],
                          device="cpu")
    torch.testing.assert_close(model.encode(TEXTS).to_dense(), splade_reference(tiny_mlm_dir, TEXTS),
                               atol=1e-5, rtol=1e-5)


def test_a_reranker_is_no_sparse_encoder(tiny_ce_dir):
    with pytest.raises(ModelFormatError, match="CrossEncoder"):
        SparseEncoder(str(tiny_ce_dir))


def test_a_sentence_transformer_becomes_csr_with_an_untrained_autoencoder(tiny_st_dir, tmp_path):
    with pytest.warns(UserWarning, match="untrained SparseAutoEncoder"):
        model = SparseEncoder(str(tiny_st_dir), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize", "SparseAutoEncoder"]
    sae = model[3]
    assert (sae.input_dim, sae.hidden_dim, sae.k, sae.k_aux) == (32, 128, 8, 16)
    assert model.max_active_dims == 8 and model.get_embedding_dimension() == 128
    emb = model.encode(TEXTS).to_dense()
    assert emb.shape == (len(TEXTS), 128) and ((emb != 0).sum(dim=1) <= 8).all() and (emb >= 0).all()
    dense = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS, convert_to_tensor=True)
    with torch.no_grad():
        z = sae.encoder(dense - sae.pre_bias) + sae.latent_bias
    top = torch.topk(z, 8, dim=1)
    expected = torch.zeros_like(z).scatter(1, top.indices, torch.relu(top.values))
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    assert int((model.encode(TEXTS[:1], max_active_dims=3).to_dense() != 0).sum()) <= 3  # forwarded as k too

    model.save(tmp_path / "csr")
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "csr" / "3_SparseAutoEncoder" / "model.safetensors")))
    assert keys == {"pre_bias", "latent_bias", "stats_last_nonzero", "decoder.linear.weight"}
    assert json.loads((tmp_path / "csr" / "3_SparseAutoEncoder" / "config.json").read_text()) == {
        "input_dim": 32, "hidden_dim": 128, "k": 8, "k_aux": 16, "normalize": False, "dead_threshold": 30}
    loaded = SparseEncoder(str(tmp_path / "csr"), device="cpu")
    assert loaded.max_active_dims == 8
    assert torch.equal(loaded.encode(TEXTS).to_dense(), emb)


def test_a_plain_transformer_becomes_csr_with_mean_pooling(tiny_bert_dir):
    with pytest.warns(UserWarning, match="untrained SparseAutoEncoder"):
        model = SparseEncoder(str(tiny_bert_dir), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "SparseAutoEncoder"]
    assert model[0].transformer_task == "feature-extraction" and model[2].k == 256
    assert model.encode(TEXTS[:2]).shape == (2, 128)


# -- the post-step without torch (what a torch-free engine will use) -----------------------------------------
def test_sparse_post_step_on_numpy_rows_matches_torch():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(5, 12)).astype(np.float32)
    np_top = select_max_active_dims(rows, 3)
    torch_top = select_max_active_dims(torch.from_numpy(rows), 3).numpy()
    np.testing.assert_array_equal(np_top, torch_top)
    assert ((np_top != 0).sum(1) == 3).all() and np.shares_memory(select_max_active_dims(rows, 12), rows)
    step = sparse_batch_step(max_active_dims=3, convert_to_sparse_tensor=True, save_to_cpu=False)
    parts = [step({"sentence_embedding": rows[:2]})["sentence_embedding"],
             step({"sentence_embedding": rows[2:]})["sentence_embedding"]]
    assert all(scipy_sparse.issparse(p) for p in parts)
    inverse = np.array([4, 0, 3, 1, 2])
    stacked = gather_sparse_rows(parts, inverse, convert_to_tensor=True, convert_to_sparse_tensor=True, device=None)
    np.testing.assert_array_equal(stacked.toarray(), np_top[inverse])
    listed = gather_sparse_rows(parts, inverse, convert_to_tensor=False, convert_to_sparse_tensor=True, device=None)
    assert len(listed) == 5 and np.array_equal(listed[0].toarray()[0], np_top[4])
    dense_step = sparse_batch_step(max_active_dims=None, convert_to_sparse_tensor=False, save_to_cpu=True)
    dense_parts = [dense_step({"sentence_embedding": rows[:3]})["sentence_embedding"], rows[3:]]
    dense = gather_sparse_rows(dense_parts, inverse, convert_to_tensor=True, convert_to_sparse_tensor=False,
                               device=None, torch_output=False)
    np.testing.assert_array_equal(dense, rows[inverse])
    empty = gather_sparse_rows([], inverse[:0], convert_to_tensor=True, convert_to_sparse_tensor=True, device=None,
                               torch_output=False)
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
