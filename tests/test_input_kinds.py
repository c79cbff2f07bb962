"""Issue 12 item 4: every container a sentence-transformers user passes (str, list, tuple, NumPy string
arrays of each shape, pandas Series) follows one single/batch rule, for encode and for predict."""

from __future__ import annotations

import numpy as np
import pytest

from sentencekit.pipeline.batching import as_input_list

Q, D = "how do i reset my password", "password reset help"
PAIRS = [(Q, D), ("weather paris", "the cat sat on the mat")]


@pytest.mark.parametrize("inputs, expected", [
    ("a text", (["a text"], True)),
    (np.array("a text"), (["a text"], True)),                      # 0-d array: one text
    (["a", "b"], (["a", "b"], False)),
    (("a", "b"), (["a", "b"], False)),                             # a tuple of texts is a batch for encode
    (np.array(["a", "b"]), (["a", "b"], False)),
    (np.array(["a", "b"], dtype=object), (["a", "b"], False)),
    (np.array([], dtype=str), ([], False)),
])
def test_encode_inputs(inputs, expected):
    items, single = as_input_list(inputs)
    assert (items, single) == expected
    assert all(type(x) is str for x in items)  # np.str_ became str


@pytest.mark.parametrize("inputs, expected", [
    ((Q, D), ([(Q, D)], True)),
    ([Q, D], ([(Q, D)], True)),                                    # ST: a list of two strings is one pair
    (np.array([Q, D]), ([(Q, D)], True)),                          # the issue: a 1-D array of two strings
    (np.array([Q, D], dtype=object), ([(Q, D)], True)),
    (np.array(PAIRS), ([[Q, D], list(PAIRS[1])], False)),          # 2-D [n, 2]: n pairs
    (np.array(PAIRS[:1]), ([[Q, D]], False)),                      # [1, 2] stays a batch of one
    (tuple(PAIRS), (list(PAIRS), False)),
    (PAIRS, (list(PAIRS), False)),
])
def test_predict_inputs(inputs, expected):
    items, single = as_input_list(inputs, allow_pairs=True)
    assert ([tuple(x) for x in items], single) == ([tuple(x) for x in expected[0]], expected[1])


def test_pandas_series_follow_the_list_rule():
    pd = pytest.importorskip("pandas")
    assert as_input_list(pd.Series(["a", "b", "c"])) == (["a", "b", "c"], False)
    assert as_input_list(pd.Series([Q, D]), allow_pairs=True) == ([(Q, D)], True)
    items, single = as_input_list(pd.Series(PAIRS), allow_pairs=True)
    assert (items, single) == (PAIRS, False)


@pytest.mark.parametrize("inputs, allow_pairs, message", [
    (np.array([["a", "b"], ["c", "d"]]), False, r"shape \(2, 2\); expected a 1-D array"),
    (np.array([["a", "b", "c"]]), True, r"shape \(1, 3\); expected a 1-D array of two strings"),
    (np.zeros((1, 2, 2), dtype=str), True, r"shape \(1, 2, 2\)"),
    (np.array([b"a", b"b"]), False, "bytes array"),
    (np.array([Q, D, "third"]), True, r"sentences\[0\] is a string; expected a pair"),
    (np.array(["a", None], dtype=object), False, r"sentences\[1\] is None"),
    (np.array([1, 2]), False, r"sentences\[0\] is int"),
])
def test_wrong_arrays_name_the_problem(inputs, allow_pairs, message):
    with pytest.raises(TypeError, match=message):
        as_input_list(inputs, allow_pairs=allow_pairs)


def test_predict_scores_a_numpy_pair_like_a_tuple(tiny_ce_dir):
    from sentencekit import CrossEncoder

    ce = CrossEncoder(str(tiny_ce_dir), device="cpu")
    one = ce.predict((Q, D))
    assert np.ndim(one) == 0
    np.testing.assert_allclose(ce.predict(np.array([Q, D])), one, atol=1e-6)
    batch = ce.predict(PAIRS)
    np.testing.assert_allclose(ce.predict(np.array(PAIRS)), batch, atol=1e-6)
    assert ce.predict(np.array(PAIRS)).shape == (2,)


def test_encode_takes_numpy_and_series(tiny_st_dir):
    from sentencekit import SentenceTransformer

    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    texts = ["the cat sat", "hello world"]
    expected = model.encode(texts)
    np.testing.assert_allclose(model.encode(np.array(texts)), expected, atol=1e-6)
    np.testing.assert_allclose(model.encode(np.array(texts[0])), expected[0], atol=1e-6)
    assert model.encode(np.array(texts[0])).shape == expected[0].shape
    pd = pytest.importorskip("pandas")
    np.testing.assert_allclose(model.encode(pd.Series(texts)), expected, atol=1e-6)
