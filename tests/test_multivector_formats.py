"""MultiVectorEncoder folders: the sentence-transformers 6.2 save format (files, type strings, configs, the lazy
similarity), save -> load round trips (token pooling included), the layouts it loads (PyLate <= 3, Stanford
ColBERT, a SentenceTransformer save, a bare Hugging Face encoder) and the folders of other families it refuses
(and that the other families refuse)."""

from __future__ import annotations

import json
import shutil
import string

import pytest
import torch

from sentencekit import CrossEncoder, MultiVectorEncoder, SentenceTransformer, SparseEncoder
from sentencekit.files import ModelFormatError
from sentencekit.modules import (
    Dense,
    HierarchicalTokenPooling,
    LambdaTokenPooling,
    MultiVectorMask,
    Normalize,
    Pooling,
    Transformer,
)
from tests.multivector_folders import PYLATE_SKIPLIST, TEXTS, build_pylate_folder, build_stanford_folder

pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")


def rows_equal(a, b, atol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=atol, rtol=atol)


def read(path):
    return json.loads(path.read_text())


# -- the saved format -------------------------------------------------------------------------------------------
def test_save_writes_the_6_2_layout_and_loads_back_identical(tiny_mv_dir, tmp_path):
    modules = read(tiny_mv_dir / "modules.json")
    assert [m["type"] for m in modules] == [
        "sentence_transformers.base.modules.transformer.Transformer", "sentence_transformers.base.modules.dense.Dense",
        "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask",
        "sentence_transformers.base.modules.normalize.Normalize"]
    assert [m["path"] for m in modules] == ["", "1_Dense", "2_MultiVectorMask", "3_Normalize"]
    assert read(tiny_mv_dir / "1_Dense" / "config.json") == {
        "in_features": 32, "out_features": 16, "bias": False, "activation_function": "torch.nn.modules.linear.Identity",
        "module_input_name": "token_embeddings", "module_output_name": "token_embeddings"}
    from safetensors import safe_open

    with safe_open(str(tiny_mv_dir / "1_Dense" / "model.safetensors"), "pt") as f:
        assert list(f.keys()) == ["linear.weight"] and f.get_tensor("linear.weight").shape == (16, 32)
    assert read(tiny_mv_dir / "2_MultiVectorMask" / "config.json") == {
        "skiplist_words": list(string.punctuation), "skiplist_tasks": ["document"], "keep_only_token_ids": None}
    assert read(tiny_mv_dir / "3_Normalize" / "config.json") == {"module_input_name": "token_embeddings",
                                                                 "module_output_name": "token_embeddings"}
    transformer = read(tiny_mv_dir / "sentence_bert_config.json")
    assert transformer["query_expansion"] == {"strategy": "fixed", "attend": False, "token": None, "length": 12}
    assert transformer["document_length"] == 24 and "query_length" not in transformer
    assert transformer["transformer_task"] == "feature-extraction" and transformer["module_output_name"] == \
        "token_embeddings"
    config = read(tiny_mv_dir / "config_sentence_transformers.json")
    assert config["model_type"] == "MultiVectorEncoder" and config["similarity_fn_name"] is None  # never read
    assert "MultiVectorEncoder" in (tiny_mv_dir / "README.md").read_text()

    model = MultiVectorEncoder(str(tiny_mv_dir), device="cpu")
    assert model.similarity_fn_name == "maxsim"  # read: recorded, and saved
    model.save(tmp_path / "again")
    assert read(tmp_path / "again" / "config_sentence_transformers.json")["similarity_fn_name"] == "maxsim"
    again = MultiVectorEncoder(str(tmp_path / "again"), device="cpu")
    rows_equal(again.encode_query(TEXTS), model.encode_query(TEXTS))
    rows_equal(again.encode_document(TEXTS), model.encode_document(TEXTS))
    model.save_pretrained(tmp_path / "pretrained")
    assert (tmp_path / "pretrained" / "modules.json").is_file()


def test_token_pooling_module_round_trip(tiny_mv_dir, tmp_path):
    model = MultiVectorEncoder(str(tiny_mv_dir), device="cpu")
    pooled = MultiVectorEncoder(modules=[*model.network, HierarchicalTokenPooling(pool_factor=2)], device="cpu")
    pooled.save(tmp_path / "pooled")
    assert read(tmp_path / "pooled" / "4_HierarchicalTokenPooling" / "config.json") == {
        "pool_factor": 2, "num_protected_tokens": 1, "normalize_embeddings": True, "tasks": ["document"]}
    loaded = MultiVectorEncoder(str(tmp_path / "pooled"), device="cpu")
    docs = loaded.encode_document(TEXTS)
    rows_equal(docs, HierarchicalTokenPooling(pool_factor=2).pool(model.encode_document(TEXTS)), atol=1e-5)
    rows_equal(loaded.encode_query(TEXTS), model.encode_query(TEXTS))
    # a config written before normalize_embeddings existed loads as False, as in sentence-transformers
    config = tmp_path / "pooled" / "4_HierarchicalTokenPooling" / "config.json"
    config.write_text(json.dumps({"pool_factor": 2, "num_protected_tokens": 1, "tasks": ["document"]}))
    assert MultiVectorEncoder(str(tmp_path / "pooled"), device="cpu")[4].normalize_embeddings is False


def test_lambda_pooling_cannot_be_saved_and_the_folder_is_untouched(tiny_mv_dir, tmp_path):
    target = tmp_path / "kept"
    shutil.copytree(tiny_mv_dir, target)
    model = MultiVectorEncoder(str(tiny_mv_dir), device="cpu")
    lam = MultiVectorEncoder(modules=[*model.network, LambdaTokenPooling(lambda e: e[:2])], device="cpu")
    assert all(len(r) == 2 for r in lam.encode_document(TEXTS))
    before = sorted(p.name for p in target.iterdir())
    with pytest.raises(NotImplementedError, match="cannot be saved"):
        lam.save(target)
    assert sorted(p.name for p in target.iterdir()) == before


def test_sentence_level_dense_and_normalize_keep_the_v5_format(tmp_path):
    dense = Dense(4, 2)
    dense.save(tmp_path / "d")
    assert set(read(tmp_path / "d" / "config.json")) == {"in_features", "out_features", "bias", "activation_function"}
    assert dense.st_type == "sentence_transformers.models.Dense" and Normalize().st_type.endswith("models.Normalize")
    Normalize().save(tmp_path / "n")
    assert list((tmp_path / "n").iterdir()) == []
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(json.dumps({"in_features": 4, "out_features": 4, "use_residual": True}))
    with pytest.raises(ModelFormatError, match="use_residual"):
        Dense.load(tmp_path / "r")


# -- layouts of other tools --------------------------------------------------------------------------------------
def test_pylate_checkpoint(tmp_path):
    folder = build_pylate_folder(tmp_path / "pylate")
    model = MultiVectorEncoder(str(folder), device="cpu")
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Transformer", "Dense", "MultiVectorMask", "Normalize"]
    assert model[1].module_input_name == "token_embeddings" and model[3].module_input_name == "token_embeddings"
    assert model[2].skiplist_words == PYLATE_SKIPLIST
    assert model.prompts["query"] == "[Q] " and model.prompts["document"] == "[D] "
    assert model.tokenizer.tokenize("[Q] refund") == ["[Q] ", "refund"]  # registered: one token, as trained
    assert model[0].query_expansion == {"strategy": "fixed", "attend": False, "token": None, "length": 12}
    assert model[0].document_length == 40 and model[0].query_length is None
    assert model._similarity_fn_name is None  # PyLate's "MaxSim" is not a name sentence-transformers takes
    queries = model.encode_query(TEXTS)
    assert {len(q) for q in queries} == {12}
    doc = model.encode_document(["the cat sat on the mat, today!"])[0]
    assert len(doc) == len(model.tokenizer("[D] the cat sat on the mat, today!")["input_ids"]) - 2
    no_expansion = MultiVectorEncoder(str(build_pylate_folder(tmp_path / "p2", do_query_expansion=False)),
                                      device="cpu")
    assert no_expansion[0].query_expansion is None and no_expansion[0].query_length == 12
    # saved again in sentence-transformers 6.2's layout, it loads as a native save with the same outputs
    model.save(tmp_path / "native")
    assert read(tmp_path / "native" / "config_sentence_transformers.json")["prompts"]["query"] == "[Q] "
    native = MultiVectorEncoder(str(tmp_path / "native"), device="cpu")
    rows_equal(native.encode_query(TEXTS), queries)


def test_stanford_checkpoint(tmp_path):
    folder = build_stanford_folder(tmp_path / "stanford")
    model = MultiVectorEncoder(str(folder), device="cpu")
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        torch.testing.assert_close(model[1].linear.weight.detach(), f.get_tensor("linear.weight"))
    assert model[1].bias is False and model[1].out_features == 16
    assert model.prompts == {"query": "[unused0] ", "document": "[unused1] "}
    assert model.tokenizer.tokenize("[unused0] refund") == ["[unused0]", "refund"]
    assert model[0].query_expansion == {"strategy": "fixed", "attend": False, "token": None, "length": 10}
    assert model[0].document_length == 30
    assert set(model[2].skiplist_words) == set(string.punctuation)
    assert {len(q) for q in model.encode_query(TEXTS)} == {10}
    # the projection is the root weight: rows equal the encoder's hidden states times linear.weight, normalised
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(folder)).eval()
    ids = model.tokenizer("[unused1] hello world", return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**ids).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden @ model[1].linear.weight.detach().T, dim=-1)
    torch.testing.assert_close(model.encode_document("hello world"), expected, atol=1e-5, rtol=1e-5)


def test_stanford_checkpoint_without_metadata_uses_the_defaults(tmp_path, caplog):
    folder = build_stanford_folder(tmp_path / "bare", write_metadata=False)
    with caplog.at_level("WARNING"):
        model = MultiVectorEncoder(str(folder), device="cpu")
    assert caplog.text.count("without artifact.metadata") == 1
    assert model[0].query_expansion["length"] == 32 and model[0].document_length is None


def test_sentence_transformer_save_becomes_multivector(tiny_st_dir, tiny_bert_dir, tmp_path):
    with pytest.warns(UserWarning, match=r"random projection \(32 -> 128, seeded"):
        model = MultiVectorEncoder(str(tiny_st_dir), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Dense", "MultiVectorMask", "Normalize"]
    assert model[2].skiplist_words == [] and model.similarity_fn_name == "maxsim"
    assert model.encode_document("hello world").shape == (4, 128)
    # a sentence-level Dense is kept, working on tokens
    torch.manual_seed(0)
    head = Dense(32, 8, activation_function=torch.nn.Tanh())
    st = SentenceTransformer(modules=[Transformer(str(tiny_bert_dir)), Pooling(32, "mean"), head, Normalize()],
                             device="cpu")
    st.save(tmp_path / "st")
    converted = MultiVectorEncoder(str(tmp_path / "st"), device="cpu")
    assert [type(m).__name__ for m in converted] == ["Transformer", "Dense", "MultiVectorMask", "Normalize"]
    torch.testing.assert_close(converted[1].linear.weight, head.linear.weight)
    assert converted[1].module_input_name == "token_embeddings" and converted.encode("hello").shape == (3, 8)


def test_bare_encoder_gets_a_random_projection(tiny_bert_dir):
    with pytest.warns(UserWarning, match="train it before use"):
        model = MultiVectorEncoder(str(tiny_bert_dir), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Dense", "MultiVectorMask", "Normalize"]
    assert model[1].out_features == 128 and model[1].bias is False and model[2].skiplist_words == []
    assert model.encode_query("hello").shape == (3, 128)


# -- other families ---------------------------------------------------------------------------------------------
def test_other_families_are_refused(tiny_splade_dir, tiny_ce_dir, tmp_path):
    with pytest.raises(ModelFormatError, match="SparseEncoder"):
        MultiVectorEncoder(str(tiny_splade_dir), device="cpu")
    with pytest.raises(ModelFormatError, match="CrossEncoder"):
        MultiVectorEncoder(str(tiny_ce_dir), device="cpu")


@pytest.mark.parametrize("cls", [SentenceTransformer, SparseEncoder, CrossEncoder])
def test_a_multivector_save_is_refused_by_the_other_families(cls, tiny_mv_dir, tmp_path):
    with pytest.raises(ModelFormatError, match="multi-vector .* load it with MultiVectorEncoder"):
        cls(str(tiny_mv_dir), device="cpu")
    with pytest.raises(ModelFormatError, match="MultiVectorEncoder"):
        cls(str(build_stanford_folder(tmp_path / "stanford")), device="cpu")
    with pytest.raises(ModelFormatError, match="MultiVectorEncoder"):
        cls(str(build_pylate_folder(tmp_path / "pylate")), device="cpu")


def test_module_paths_of_sentence_transformers():
    from sentencekit.multi_vector_encoder import MultiVectorEncoder as Alias
    from sentencekit.multi_vector_encoder.modules import HierarchicalTokenPooling as Pool
    from sentencekit.multi_vector_encoder.modules import MultiVectorMask as Mask

    from sentencekit.util import maxsim, mean_maxsim_pairwise

    assert Alias is MultiVectorEncoder and Pool is HierarchicalTokenPooling and Mask is MultiVectorMask
    assert callable(maxsim) and callable(mean_maxsim_pairwise)
