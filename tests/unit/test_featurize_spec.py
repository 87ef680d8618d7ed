"""Feature specs: parsing and every refusal (leakage, collisions, reserved names, bad windows)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.spec import FeatureSpec, default_spec, parse_duration

BASE = {"entity": "user", "timestamp": "ts", "label": "y", "passthrough": ["amount"], "ttl": "7d", "name": "users"}


def _spec(**changes):
    return FeatureSpec.from_dict({**BASE, **changes})


def test_round_trip_and_names():
    spec = _spec(aggregates=[{"column": "amount", "functions": ["sum", "last"], "windows": ["1h", "7d"]}])
    assert spec.feature_names() == ["amount", "amount__sum_1h", "amount__last_1h", "amount__sum_7d", "amount__last_7d"]
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert spec.ttl_delta == dt.timedelta(days=7)
    assert parse_duration("4w", "x") == dt.timedelta(weeks=4)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"passthrough": ["amount", "y"]}, "leakage"),
        ({"aggregates": [{"column": "y", "functions": ["mean"], "windows": ["1d"]}]}, "leakage"),
        ({"passthrough": ["amount", "amount"]}, "collide"),
        ({"passthrough": ["event_timestamp"]}, "reserved"),
        ({"passthrough": ["created"]}, "reserved"),
        ({"passthrough": ["ts"]}, "entity or timestamp"),
        ({"aggregates": [{"column": "amount", "functions": ["median"], "windows": ["1d"]}]}, "unknown functions"),
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": ["1 day"]}]}, "not a duration"),
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": []}]}, "no windows"),
        ({"ttl": "forever"}, "not a duration"),
        ({"passthrough": [], "aggregates": []}, "declares no features"),
        ({"name": "my-features"}, "letters, digits"),
        ({"passthrough": ["total amount"]}, "identifiers"),
        ({"colour": "red"}, "unknown feature spec fields"),
        ({"label": ""}, "needs 'label'"),
    ],
)
def test_bad_specs_are_refused(changes, message):
    with pytest.raises(DataError, match=message):
        _spec(**changes)


def test_aggregate_name_colliding_with_a_column():
    with pytest.raises(DataError, match="collide"):
        _spec(passthrough=["amount", "amount__sum_1d"], aggregates=[{"column": "amount", "functions": ["sum"], "windows": ["1d"]}])


def test_invalid_json():
    with pytest.raises(DataError, match="not valid JSON"):
        FeatureSpec.from_json("{entity: user")


def test_default_spec_uses_every_column():
    columns = {"user": "int64", "ts": "timestamp[us, tz=UTC]", "y": "int64", "amount": "double", "country": "string"}
    spec = default_spec(columns, entity="user", timestamp="ts", label="y")
    assert spec.passthrough == ("amount", "country")
    assert "user__count_7d" in spec.feature_names() and "amount__mean_30d" in spec.feature_names()
    assert "y" not in json.dumps(spec.to_dict()["aggregates"])


def test_default_spec_windows_fit_the_data():
    columns = {"user": "int64", "ts": "timestamp[us, tz=UTC]", "y": "int64", "amount": "double"}
    short = default_spec(columns, entity="user", timestamp="ts", label="y", span=dt.timedelta(days=3))
    assert "user__count_1d" in short.feature_names() and not any(n.endswith(("_7d", "_30d")) for n in short.feature_names())
    tiny = default_spec(columns, entity="user", timestamp="ts", label="y", span=dt.timedelta(minutes=5))
    assert tiny.feature_names() == ["amount"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"passthrough": "amount"}, "'passthrough' must be a list, not a string ('amount') (write [\"amount\"] for one)"),
        ({"passthrough": {"amount": 1}}, "'passthrough' must be a list, not an object"),
        ({"passthrough": None}, "'passthrough' must be a list, not null"),
        ({"passthrough": True}, "'passthrough' must be a list, not a boolean (true)"),
        ({"passthrough": [1, 2]}, "passthrough[0] to be a column name (a non-empty string), not a number (1)"),
        ({"passthrough": [None]}, "passthrough[0] to be a column name (a non-empty string), not null"),
        ({"aggregates": {"column": "amount", "functions": ["sum"], "windows": ["1d"]}}, "'aggregates' must be a list, not an object"),
        ({"aggregates": [["amount", "sum", "1d"]]}, "aggregates[0] must be an object"),
        ({"aggregates": [{"column": 5, "functions": ["sum"], "windows": ["1d"]}]}, "aggregates[0].column to be a column name"),
        ({"aggregates": [{"column": "amount", "functions": "sum", "windows": ["1d"]}]}, "aggregates[0].functions must be a list, not a string ('sum')"),
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": "7d"}]}, "aggregates[0].windows must be a list, not a string ('7d')"),
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": [7]}]}, "aggregates[0].windows[0] must be a string, not a number (7)"),
        ({"aggregates": [{"column": "amount", "functions": [False], "windows": ["1d"]}]}, "aggregates[0].functions[0] must be a string, not a boolean (false)"),
        ({"entity": 42}, "needs 'entity' to be a column name (a non-empty string), not a number (42)"),
        ({"timestamp": ["ts"]}, "needs 'timestamp' to be a column name (a non-empty string), not a list"),
        ({"label": True}, "needs 'label' to be a column name (a non-empty string), not a boolean (true)"),
        ({"label": None}, "needs 'label' to be a column name (a non-empty string), not null"),
        ({"name": None}, "'name' must be a string, not null"),
        ({"name": 7}, "'name' must be a string, not a number (7)"),
        ({"ttl": 30}, "'ttl' must be a string, not a number (30)"),
        ({"ttl": "10000000000d"}, "ttl '10000000000d' is longer than the 36,500-day limit"),
        ({"ttl": "1" * 5000 + "d"}, "is longer than the 36,500-day limit"),
        ({"ttl": "36501d"}, "is longer than the 36,500-day limit"),
        ({"ttl": "0d"}, "not a duration"),
        ({"ttl": "٣d"}, "not a duration"),  # a non-ASCII digit
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": ["10000000000d"]}]}, "window of 'amount' '10000000000d' is longer than"),
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": ["99999999999999999999w"]}]}, "window of 'amount'"),
        ({"label": "user"}, "label column 'user' is also the entity key column"),
        ({"label": "ts"}, "label column 'ts' is also the event timestamp column"),
        ({"timestamp": "user"}, "the entity and the timestamp are the same column 'user'"),
        ({"passthrough": ["amount", "Amount"]}, "[['amount', 'Amount']] differ only in letter case"),
        ({"passthrough": ["USER"]}, "collide with Feast's reserved names or the key/label columns"),
        ({"label": "event_timestamp"}, "the label column is named 'event_timestamp', which Feast reads as the event time"),
        ({"entity": "event_timestamp"}, "the entity column is named 'event_timestamp'"),
    ],
)
def test_wrong_json_types_and_values_name_the_field(changes, message):
    with pytest.raises(DataError) as caught:
        FeatureSpec.from_json(json.dumps({**BASE, **changes}))
    assert message in str(caught.value)
    assert "What to do:" in str(caught.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000, '{"entity": ' + "[" * 100_000])
def test_deeply_nested_json_is_a_data_error(text):
    with pytest.raises(DataError, match="nested far too deeply|not valid JSON"):
        FeatureSpec.from_json(text)


@pytest.mark.parametrize("data", [[], "spec", 3, None, True])
def test_a_spec_that_is_not_an_object(data):
    with pytest.raises(DataError, match="must be a JSON object"):
        FeatureSpec.from_json(json.dumps(data))


def test_repeated_keys_are_refused_not_silently_dropped():
    text = '{"entity": "user", "timestamp": "ts", "label": "y", "passthrough": ["amount"], "passthrough": ["other"]}'
    with pytest.raises(DataError, match="repeats the key 'passthrough'"):
        FeatureSpec.from_json(text)


def test_specs_built_in_python_are_type_checked_too():
    with pytest.raises(DataError, match="'passthrough' must be a list of column names, not a string"):
        FeatureSpec(entity="user", timestamp="ts", label="y", passthrough="amount").check()  # type: ignore[arg-type]
    with pytest.raises(DataError, match="spec name 5"):
        FeatureSpec(entity="user", timestamp="ts", label="y", passthrough=("amount",), name=5).check()  # type: ignore[arg-type]
    with pytest.raises(DataError, match="ttl must be a duration string"):
        FeatureSpec(entity="user", timestamp="ts", label="y", passthrough=("amount",), ttl=None).check()  # type: ignore[arg-type]


def test_default_spec_refuses_a_label_that_is_the_key():
    columns = {"user": "int64", "ts": "timestamp[us, tz=UTC]", "amount": "double"}
    with pytest.raises(DataError, match="label column 'user' is also the entity key column"):
        default_spec(columns, entity="user", timestamp="ts", label="user")
