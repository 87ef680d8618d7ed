"""The server's request codec: its fast path builds exactly what Preprocessing.encode_features builds, and bad requests name the field."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from kfp_mlops.components.serve.codec import FeatureCodec, RequestError, score_output
from kfp_mlops.components.train.preprocessing import CategoricalColumn, NumericColumn, Preprocessing


def _prep(non_finite: str = "impute") -> Preprocessing:
    return Preprocessing(
        task="multiclass",
        label="y",
        classes=["a", "b", "c"],
        numeric=[NumericColumn("amount", 1.0, 2.0), NumericColumn("age", 40.0, 10.0), NumericColumn("flag", 0.5, 0.5), NumericColumn("as_text", 0.0, 1.0)],
        categorical=[
            CategoricalColumn("country", ["de", "fr", "us"]),
            CategoricalColumn("hour", [str(h) for h in range(0, 24, 2)], "integer"),
            CategoricalColumn("hour_float", ["3", "5", "7", "2.5", "1e-7", "1e+16"], "integer"),
            CategoricalColumn("active", ["true"]),
        ],
        non_finite=non_finite,
    )


def _random_columns(rng: random.Random, n: int) -> dict[str, list]:
    """One JSON-typed column per feature, with nulls, unseen categories and ints sent as floats."""

    def maybe(value):
        return None if rng.random() < 0.15 else value

    texts = ["1e3", "+3", ".5", "3.", "-2.25", "nan", "inf", "-Infinity", "17"]
    return {
        "amount": [maybe(rng.uniform(-1e6, 1e6)) for _ in range(n)],
        "age": [maybe(rng.randint(-(2**53), 2**53) if rng.random() < 0.05 else rng.randint(0, 99)) for _ in range(n)],
        "flag": [maybe(rng.random() < 0.5) for _ in range(n)],
        "as_text": [maybe(rng.choice(texts)) for _ in range(n)],
        "country": [maybe(rng.choice(["de", "fr", "us", "atlantis", ""])) for _ in range(n)],
        "hour": [maybe(rng.randint(-2, 26)) for _ in range(n)],
        "hour_float": [maybe(rng.choice([3.0, 5.0, 7.0, 2.5, 1e-7, 1e16, 4.0, 0.1])) for _ in range(n)],
        "active": [maybe(rng.random() < 0.5) for _ in range(n)],
    }


@pytest.mark.parametrize("seed", range(6))
def test_fast_path_equals_encode_features_over_random_rows(seed):
    prep = _prep()
    codec = FeatureCodec(prep)
    rng = random.Random(seed)
    n = rng.choice([1, 2, 7, 500, 3000])
    columns = _random_columns(rng, n)
    table = pa.table(columns)  # Arrow infers each column's type from the same JSON values
    want_numeric, want_categorical = prep.encode_features(table)
    got = codec.encode({k: list(v) for k, v in columns.items()}, n, "instances")
    assert got.numeric.dtype == np.float32 and got.categorical.dtype == np.int64
    np.testing.assert_array_equal(got.numeric, want_numeric)  # NaN positions included
    np.testing.assert_array_equal(got.categorical, want_categorical)
    if n >= 500:
        assert (got.categorical[:, 0] == 0).sum() > 0 and (got.categorical[:, 2] > 0).sum() > 0, "unseen categories, and ints sent as floats, both seen"


def test_rows_and_v2_tensors_decode_to_the_same_columns():
    codec = FeatureCodec(_prep())
    rows = [{"amount": 1.5, "age": None, "flag": True, "as_text": "2", "country": "fr", "hour": 4, "hour_float": 3.0, "active": False}, [2.0, 3, False, None, "zz", None, 5.0, True]]
    columns, n, field = codec.v1_columns({"instances": rows})
    v2 = {
        "inputs": [
            {"name": name, "datatype": dtype, "shape": [2], "data": columns[name]} for name, dtype in zip(codec.feature_names, ["FP64", "INT64", "BOOL", "BYTES", "BYTES", "INT32", "FP32", "BOOL"])
        ]
    }
    v2_columns, v2_n, _ = codec.v2_columns(v2)
    assert (n, field, v2_n) == (2, "instances", 2) and v2_columns == columns
    alias, _, alias_field = codec.v1_columns({"inputs": rows})
    assert alias == columns and alias_field == "inputs"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"instances": []}, "'instances' must be a non-empty list"),
        ({"rows": [{}]}, "no 'instances'"),
        ([1, 2], "not a JSON object"),
        ({"instances": [{"amount": 1, "bogus": 2}]}, "instances[0]: unknown feature 'bogus'"),
        ({"instances": [{"amount": 1}]}, "instances[0]: feature 'age' is missing"),
        ({"instances": [[1, 2, 3]]}, "instances[0]: the row has 3 values, the model takes 8"),
        ({"instances": [[1.0, 2, True, "1", "de", 2, 3.0, True], [1.0, 2, True, "1", "de", 2, 3.0]]}, "instances[1]: the row has 7 values"),
        ({"instances": [[1.0, [2], True, "1", "de", 2, 3.0, True]]}, "instances[0]: numeric feature 'age' got a list"),
        ({"instances": [[1.0, 2, True, "abc", "de", 2, 3.0, True]]}, "instances[0]: numeric feature 'as_text' got text 'abc'"),
        ({"instances": [[1.0, 2**60, True, "1", "de", 2, 3.0, True]]}, "feature 'age' is 1152921504606846976, beyond"),
        ({"instances": [[1.0, 2, True, "1", {"x": 1}, 2, 3.0, True]]}, "instances[0]: categorical feature 'country' got an object"),
        ({"instances": ["row"]}, "instances[0]: the row is text"),
    ],
)
def test_bad_v1_requests_name_the_field_and_row(body, named):
    codec = FeatureCodec(_prep())
    with pytest.raises(RequestError) as raised:
        columns, n, field = codec.v1_columns(body)
        codec.encode(columns, n, field)
    assert named in str(raised.value) and raised.value.status == 400


def _tensor(name, data, datatype="FP64", shape=None):
    return {"name": name, "datatype": datatype, "shape": shape if shape is not None else [len(data)], "data": data}


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        ([_tensor("amount", [1.0]), _tensor("nope", [1.0])], "inputs[1]: unknown input 'nope'"),
        ([_tensor("amount", [1.0], "FP128")], "datatype 'FP128' is not one of"),
        ([_tensor("amount", [1.0, 2.0], shape=[3])], "'data' holds 2 values but shape says 3"),
        ([_tensor("amount", [1.0], shape=[1, 2])], "shape [1, 2] is not [n] or [n, 1]"),
        ([_tensor("amount", [1.0]), _tensor("age", [1, 2], "INT64")], "the input has 2 rows, earlier inputs have 1"),
        ([_tensor("age", [1.5], "INT64")], "datatype INT64 needs whole numbers (or null), row 0 is a number"),
        ([_tensor("country", [3], "BYTES")], "datatype BYTES needs text (or null), row 0 is a number"),
        ([_tensor("flag", ["yes"], "BOOL")], "datatype BOOL needs true/false"),
        ([_tensor("amount", [1.0]), _tensor("amount", [1.0])], "input 'amount' is sent twice"),
        ([_tensor("amount", [1.0])], "[0]: feature 'age' is missing"),
    ],
)
def test_bad_v2_requests_name_the_input(inputs, named):
    codec = FeatureCodec(_prep())
    with pytest.raises(RequestError) as raised:
        columns, n, field = codec.v2_columns({"inputs": inputs})
        codec.encode(columns, n, field)
    assert named in str(raised.value)


def test_non_finite_text_follows_the_models_policy():
    row = [1.0, 2, True, "inf", "de", 2, 3.0, True]
    imputing = FeatureCodec(_prep("impute"))
    columns, n, field = imputing.v1_columns({"instances": [row]})
    assert np.isnan(imputing.encode(columns, n, field).numeric[0, 3])
    refusing = FeatureCodec(_prep("error"))
    columns, n, field = refusing.v1_columns({"instances": [row]})
    with pytest.raises(RequestError, match="'as_text' is 'inf', not a finite number"):
        refusing.encode(columns, n, field)


def test_labels_and_scores_follow_predict_frame_rules():
    binary = Preprocessing(task="binary", label="y", classes=["no", "yes"], numeric=[NumericColumn("x", 0.0, 1.0)])
    scored = score_output(np.array([0.2, 0.5, 0.9], dtype=np.float32), binary)
    assert scored.predictions == ["no", "no", "yes"] and scored.scores == pytest.approx([0.2, 0.5, 0.9])
    assert scored.probabilities.shape == (3, 2)
    multi = score_output(np.array([[0.1, 0.7, 0.2]], dtype=np.float32), _prep())
    assert multi.predictions == ["b"] and multi.scores == pytest.approx([0.7])
    regression = Preprocessing(task="regression", label="y", numeric=[NumericColumn("x", 0.0, 1.0)])
    values = score_output(np.array([1.25, -3.0], dtype=np.float32), regression)
    assert values.predictions == [1.25, -3.0] and values.probabilities is None
