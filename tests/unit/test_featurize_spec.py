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
