"""``*ForRetrieval`` late-interaction retrievers (ColPali, ColQwen2, ColModernVBert) in ``MultiVectorEncoder``
on the torch backend: loading a plain Hugging Face folder and a sentence-transformers 6.2 save into 6.2's module
list, queries through the processor's query path, page images through its image path, the scoring masks, MaxSim
against transformers' own ``score_retrieval``, batch independence, the text-as-document warning, ColPali's
image-patch mode, saving what 6.2 writes, and the ONNX / OpenVINO refusals. The tiny models are
tests/retrieval_folders.py's; sentence-transformers parity is ``benchmarks/st_compat.py colpali``'s."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from tests.retrieval_folders import EMBEDDING_DIM, QUERIES, RETRIEVAL_KINDS, build_retrieval_folder, page_images

pytest.importorskip("PIL")
torch = pytest.importorskip("torch")

#: what sentence-transformers 6.2 writes as the retrieval Transformer's sentence_bert_config.json
ST_TRANSFORMER_CONFIG = {
    "transformer_task": "retrieval",
    "modality_config": {"text": {"method": "forward", "method_output_name": "embeddings"},
                        "image": {"method": "forward", "method_output_name": "embeddings"}},
    "module_output_name": "token_embeddings",
}
ST_MASK_CONFIG = {"skiplist_words": [], "skiplist_tasks": ["document"], "keep_only_token_ids": None}


@pytest.fixture(scope="module", params=RETRIEVAL_KINDS)
def folder(request, tmp_path_factory):
    return build_retrieval_folder(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def model(folder):
    from sentencekit import MultiVectorEncoder

    return MultiVectorEncoder(str(folder), device="cpu")


@pytest.fixture(scope="module")
def reference(folder):
    """transformers' own processor and model of the folder: the ground truth of the embeddings and scores."""
    import transformers
    from transformers import AutoConfig, AutoProcessor

    config = AutoConfig.from_pretrained(folder)
    model = getattr(transformers, config.architectures[0]).from_pretrained(folder).eval()
    return AutoProcessor.from_pretrained(folder), model


def _reference_rows(reference, *, text=None, images=None):
    """transformers' rows: ``process_queries`` / ``process_images`` (its retrieval API), then the model."""
    processor, model = reference
    features = processor.process_queries(text, return_tensors="pt") if text is not None else \
        processor.process_images(images, return_tensors="pt")
    features.pop("labels", None)
    with torch.inference_mode():
        embeddings = model(**features).embeddings
    return [e[m.bool()] for e, m in zip(embeddings, features["attention_mask"])]


def test_a_fresh_folder_loads_as_st_builds_it(model):
    from sentencekit.modules import MultiVectorMask, Transformer

    modules = list(model.network)
    assert [type(m) for m in modules] == [Transformer, MultiVectorMask]
    transformer = modules[0]
    assert transformer.get_config_dict() == ST_TRANSFORMER_CONFIG
    assert modules[1].get_config_dict() == ST_MASK_CONFIG
    assert model.get_embedding_dimension() == EMBEDDING_DIM and model.similarity_fn_name == "maxsim"
    assert transformer.tokenizer is transformer.processor.tokenizer  # the one the processor configured


def test_queries_and_pages_equal_transformers_and_score_as_score_retrieval(model, reference):
    images = page_images()
    queries = model.encode_query(QUERIES)
    pages = model.encode_document(images)
    expected_q = _reference_rows(reference, text=QUERIES)
    expected_d = _reference_rows(reference, images=images)
    for got, want in zip(queries + pages, expected_q + expected_d):
        assert got.shape == want.shape and got.shape[1] == EMBEDDING_DIM and got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    scores = model.similarity(queries, pages)
    torch.testing.assert_close(scores, reference[0].score_retrieval(expected_q, expected_d), atol=1e-4, rtol=1e-5)
    # the head L2-normalizes: every kept token vector has unit length
    torch.testing.assert_close(torch.cat(pages).norm(dim=-1), torch.ones(sum(len(p) for p in pages)))


def test_scoring_masks_and_feature_dicts(model):
    feats = model.encode_query(QUERIES, output_value=None)
    rows = model.encode_query(QUERIES)
    for f, r in zip(feats, rows):
        assert int(f["attention_mask"].sum()) == len(r)  # padding is out of the scoring mask
        assert f["token_embeddings"].shape[-1] == EMBEDDING_DIM
    pages = model.encode_document(page_images(2), output_value=None)
    assert all("input_ids" in p and p["attention_mask"].dtype == torch.bool for p in pages)


def test_batches_equal_one_by_one_and_paths_equal_images(model, tmp_path):
    images = page_images(3)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"page{i}.png"))
        image.save(paths[-1])
    batch_q, batch_d = model.encode_query(QUERIES), model.encode_document(images)
    for i, text in enumerate(QUERIES):
        torch.testing.assert_close(model.encode_query(text), batch_q[i], atol=1e-5, rtol=1e-5)
    for i, image in enumerate(images):
        torch.testing.assert_close(model.encode_document(image), batch_d[i], atol=1e-5, rtol=1e-5)
    for got, want in zip(model.encode_document(paths, batch_size=2), batch_d):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_text_passed_as_a_document_warns_as_st_does(folder, caplog):
    from sentencekit import MultiVectorEncoder

    model = MultiVectorEncoder(str(folder), device="cpu")
    with caplog.at_level(logging.WARNING, logger="sentencekit.modules.transformer"):
        as_document = model.encode_document(QUERIES[:1])
    assert "always renders text as a query" in caplog.text
    torch.testing.assert_close(as_document[0], model.encode_query(QUERIES[0]))  # rendered as a query all the same


def test_keep_only_token_ids_keeps_the_image_patches(folder):
    from sentencekit import MultiVectorEncoder
    from sentencekit.modules import MultiVectorMask, Transformer

    plain = MultiVectorEncoder(str(folder), device="cpu")
    transformer = plain.network[0]
    image_id = transformer.processor.image_token_id
    patched = MultiVectorEncoder(modules=[transformer, MultiVectorMask(keep_only_token_ids=[image_id])],
                                 device="cpu")
    assert isinstance(patched.network[0], Transformer)
    images = page_images(2)
    full = plain.encode_document(images, output_value=None)
    kept = patched.encode_document(images)
    for f, k in zip(full, kept):
        is_image = (f["input_ids"] == image_id) & f["attention_mask"]
        assert len(k) == int(is_image.sum()) > 0
        torch.testing.assert_close(k, f["token_embeddings"][is_image])
    # queries keep every real token (the allowlist is for documents)
    assert [len(q) for q in patched.encode_query(QUERIES)] == [len(q) for q in plain.encode_query(QUERIES)]


def test_save_writes_st_layout_and_reloads_equal(model, tmp_path):
    from sentencekit import MultiVectorEncoder

    model.save(str(tmp_path / "saved"))
    saved = tmp_path / "saved"
    modules = json.loads((saved / "modules.json").read_text())
    assert [m["type"] for m in modules] == [
        "sentence_transformers.base.modules.transformer.Transformer",
        "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"]
    assert modules[0]["path"] == "" and modules[1]["path"] == "1_MultiVectorMask"
    assert json.loads((saved / "sentence_bert_config.json").read_text()) == ST_TRANSFORMER_CONFIG
    assert json.loads((saved / "1_MultiVectorMask" / "config.json").read_text()) == ST_MASK_CONFIG
    assert (saved / "processor_config.json").is_file() and (saved / "tokenizer.json").is_file()
    config = json.loads((saved / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "MultiVectorEncoder" and config["similarity_fn_name"] == "maxsim"
    again = MultiVectorEncoder(str(saved), device="cpu")
    images = page_images(2)
    for a, b in zip(model.encode_query(QUERIES) + model.encode_document(images),
                    again.encode_query(QUERIES) + again.encode_document(images)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_an_st_saved_folder_loads_the_same_model(model, folder, tmp_path):
    """A folder laid out as sentence-transformers 6.2 saves it (its modules.json, module configs and model config,
    as 6.2.0 wrote them for these tiny models) over the same weights and processor files."""
    from sentencekit import MultiVectorEncoder

    st_folder = tmp_path / "st"
    shutil.copytree(folder, st_folder)
    (st_folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_MultiVectorMask",
         "type": "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"}]))
    (st_folder / "sentence_bert_config.json").write_text(json.dumps(ST_TRANSFORMER_CONFIG))
    (st_folder / "1_MultiVectorMask").mkdir()
    (st_folder / "1_MultiVectorMask" / "config.json").write_text(json.dumps(ST_MASK_CONFIG))
    (st_folder / "config_sentence_transformers.json").write_text(json.dumps({
        "__version__": {"sentence_transformers": "6.2.0"}, "default_prompt_name": None,
        "model_type": "MultiVectorEncoder", "prompts": {"document": "", "query": ""}, "similarity_fn_name": "maxsim"}))
    loaded = MultiVectorEncoder(str(st_folder), device="cpu")
    assert [type(m).__name__ for m in loaded.network] == ["Transformer", "MultiVectorMask"]
    assert loaded.network[0].transformer_task == "retrieval"
    images = page_images(2)
    for a, b in zip(model.encode_query(QUERIES) + model.encode_document(images),
                    loaded.encode_query(QUERIES) + loaded.encode_document(images)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_torch_free_backends_refuse_with_backend_torch(folder, backend):
    from sentencekit import MultiVectorEncoder

    with pytest.raises(ValueError, match="backend='torch'"):
        MultiVectorEncoder(str(folder), backend=backend)


def test_query_expansion_is_refused_on_a_retriever(folder):
    from sentencekit.modules import Transformer

    with pytest.raises(ValueError, match="augmentation tokens itself"):
        Transformer(str(folder), transformer_task="retrieval",
                    query_expansion={"strategy": "fixed", "attend": False, "length": 32})


def test_a_retriever_transformers_has_no_class_for_is_refused_clearly(tmp_path):
    """A remote-code retriever (ColQwen3-style: its class lives in the repository) is not supported."""
    from sentencekit import MultiVectorEncoder
    from sentencekit.files import ModelFormatError

    folder = build_retrieval_folder(tmp_path / "colqwen3", "colqwen2")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["ColQwen3ForRetrieval"]}))
    with pytest.raises(ModelFormatError, match="No transformers \\*ForRetrieval class.*not supported"):
        MultiVectorEncoder(str(folder), device="cpu")


@pytest.mark.parametrize("family", ["SentenceTransformer", "CrossEncoder", "SparseEncoder"])
def test_other_families_refuse_a_retriever_folder(folder, family):
    import sentencekit
    from sentencekit.files import ModelFormatError

    with pytest.raises(ModelFormatError, match="ForRetrieval.*load it with MultiVectorEncoder"):
        getattr(sentencekit, family)(str(folder), device="cpu")


def test_mixed_text_and_pages_keep_input_order(model):
    images = page_images(2)
    rows = model.encode_document([images[0], QUERIES[0], images[1]])
    torch.testing.assert_close(rows[0], model.encode_document(images[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rows[1], model.encode_query(QUERIES[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rows[2], model.encode_document(images[1]), atol=1e-5, rtol=1e-5)


@pytest.mark.pool
def test_a_pool_encodes_pages_and_queries_as_one_process(tmp_path):
    from sentencekit import MultiVectorEncoder

    model = MultiVectorEncoder(str(build_retrieval_folder(tmp_path / "colqwen2", "colqwen2")), device="cpu")
    images = page_images(4)
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        pages = model.encode_document(images, pool=pool, batch_size=2)
        queries = model.encode_query(QUERIES, pool=pool, batch_size=2)
    for got, want in zip(pages + queries, model.encode_document(images) + model.encode_query(QUERIES)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_a_training_step_on_query_and_page_columns(tmp_path):
    """A text query column and a page image column train the retriever (the collator runs each through the
    processor path encode uses)."""
    datasets = pytest.importorskip("datasets")
    from sentencekit import MultiVectorEncoder
    from sentencekit.losses.multivector.multivector_ranking import MultiVectorMultipleNegativesRankingLoss
    from sentencekit.training import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

    model = MultiVectorEncoder(str(build_retrieval_folder(tmp_path / "colpali", "colpali")), device="cpu")
    features = datasets.Features({"query": datasets.Value("string"), "page": datasets.Image()})
    data = datasets.Dataset.from_dict({"query": QUERIES, "page": page_images(3)}, features=features)
    args = MultiVectorEncoderTrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=3,
                                               num_train_epochs=1, report_to=[], save_strategy="no")
    before = model.encode_query(QUERIES)
    MultiVectorEncoderTrainer(model=model, args=args, train_dataset=data,
                              loss=MultiVectorMultipleNegativesRankingLoss(model)).train()
    after = model.encode_query(QUERIES)
    assert [a.shape for a in after] == [b.shape for b in before]
    assert max(float((a - b).abs().max()) for a, b in zip(after, before)) > 0


def test_predict_and_rank_refuse_text_documents(model):
    assert model.is_page_retriever
    with pytest.raises(ValueError, match="page images"):
        model.predict([(QUERIES[0], "a text document")])
    with pytest.raises(ValueError, match="page images"):
        model.rank(QUERIES[0], ["a text document"])


def test_an_index_refuses_a_page_retriever(model):
    from sentencekit.search.late_interaction_side import check_multivector_encoder

    with pytest.raises(ValueError, match="page images"):
        check_multivector_encoder(model)
