"""validate's schema exported as a Great Expectations suite: the round trip, the type names GX matches, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kfp_mlops.components.validate.core import ValidateOptions, validate
from kfp_mlops.components.validate.gx_export import main as export_main
from kfp_mlops.components.validate.gx_export import schema_to_suite
from kfp_mlops.components.validate.gx_suite import load_reference, parse_suite
from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.unit.test_gx_suite import KEYS, NEVER, TABLE, _e, _outcomes


def test_schema_round_trip_through_a_suite(tmp_path):
    """schema -> suite -> our checks: nothing on good data, the same columns flagged on bad data."""
    options = ValidateOptions(label_column="label", key_columns=KEYS, fail_on_severity="never")
    train = write_demo_dataset(tmp_path / "train.parquet", DemoSpec(rows=20_000, seed=5))
    schema = validate(train, options=options).schema
    schema.save(tmp_path / "schema.json")
    assert export_main([str(tmp_path / "schema.json"), "-o", str(tmp_path / "suite.json")]) == 0
    suite = load_reference(tmp_path / "suite.json")
    assert export_main([str(tmp_path / "suite.json")]) == 2, "a suite is not a schema"
    good = train  # the data the schema was inferred from
    fresh = write_demo_dataset(tmp_path / "fresh.parquet", DemoSpec(rows=5_000, seed=8))  # a few values past the ranges
    drifted = write_demo_dataset(tmp_path / "drifted.parquet", DemoSpec(rows=5_000, seed=9, drift=1.0))
    broken = pq.read_table(fresh).drop_columns(["age"])
    broken = broken.set_column(broken.schema.get_field_index("tenure_days"), "tenure_days", pa.array(["x"] * broken.num_rows))
    broken = broken.append_column("extra", pa.array(range(broken.num_rows)))
    entity = broken.column("entity_id").to_pylist()
    broken = broken.set_column(broken.schema.get_field_index("entity_id"), "entity_id", pa.array([None, *entity[1:]], type=broken.schema.field("entity_id").type))
    pq.write_table(pa.concat_tables([broken, broken.slice(0, 3)]), tmp_path / "broken.parquet")
    ignored = {"distribution_skew", "type_width"}  # histograms have no expectation counterpart; widths are info

    def flagged(path: Path, **reference) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for a in validate(path, options=options, **reference).anomalies:
            if a.code not in ignored and a.severity != "info":
                for column in a.column.split(","):
                    found.setdefault(column, set()).add(a.severity)
        return found

    assert flagged(good, expectation_suite=suite) == flagged(good, reference_schema=schema) == {}
    for bad in (fresh, drifted, tmp_path / "broken.parquet"):
        by_schema, by_suite = flagged(bad, reference_schema=schema), flagged(bad, expectation_suite=suite)
        assert by_schema and set(by_suite) == set(by_schema), (bad.name, by_schema, by_suite)
        assert {c for c, s in by_suite.items() if "error" in s} == {c for c, s in by_schema.items() if "error" in s}


def test_export_keeps_types_and_compound_keys(tmp_path):
    pq.write_table(pa.table({"k1": [1, 2], "k2": ["a", "b"], "flag": [True, False], "n": [1, 2]}), tmp_path / "t.parquet")
    schema = validate(tmp_path / "t.parquet", options=ValidateOptions(key_columns=("k1", "k2"))).schema
    schema.label_column, schema.label_classes = "n", ["1", "2"]
    suite = schema_to_suite(schema, name="t")
    kinds = [(e["type"], e["kwargs"].get("column") or e["kwargs"].get("column_list")) for e in suite["expectations"]]
    assert ("expect_compound_columns_to_be_unique", ["k1", "k2"]) in kinds
    label_set = [e for e in suite["expectations"] if e["kwargs"].get("column") == "n" and e["type"] == "expect_column_values_to_be_in_set"]
    assert label_set[0]["kwargs"]["value_set"] == [1, 2] and label_set[0]["severity"] == "critical", "classes as the column's own values"
    assert parse_suite(suite).name == "t"
    assert validate(tmp_path / "t.parquet", expectation_suite=parse_suite(suite)).anomalies == []


def test_schema_to_suite_refuses_to_write_over_its_input(tmp_path, capsys, monkeypatch):
    pq.write_table(TABLE, tmp_path / "d.parquet")
    validate(tmp_path / "d.parquet", options=NEVER).schema.save(tmp_path / "schema.json")
    before = (tmp_path / "schema.json").read_bytes()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.json").symlink_to(tmp_path / "schema.json")
    for output in (str(tmp_path / "schema.json"), "./schema.json", "link.json"):
        assert export_main([str(tmp_path / "schema.json"), "-o", output]) == 2
        assert "writing the suite would replace the schema" in capsys.readouterr().err
    assert (tmp_path / "schema.json").read_bytes() == before
    assert export_main(["schema.json", "-o", "suite.json"]) == 0 and load_reference(tmp_path / "suite.json").expectations


def test_bounds_are_floats_and_types_follow_pandas_dtypes(tmp_path):
    """What GX's pandas backend does, without GX (test_gx_comparison runs the same through GX)."""
    table = pa.table(
        {
            "big": pa.array([2**53 + 1, 5], pa.int64()),
            "small": pa.array([1, 2], pa.int32()),
            "gaps": pa.array([1, None], pa.int64()),  # float64 in pandas
            "when": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
        }
    )
    outcomes = _outcomes(
        tmp_path,
        table,
        _e("expect_column_values_to_be_between", column="big", max_value=2**53),  # 2**53 + 1 rounds to 2**53 as a float
        _e("expect_column_values_to_be_of_type", column="small", type_="int"),
        _e("expect_column_values_to_be_of_type", column="small", type_="int32"),
        _e("expect_column_values_to_be_of_type", column="gaps", type_="float64"),
        _e("expect_column_values_to_be_of_type", column="gaps", type_="int64"),
        _e("expect_column_values_to_be_of_type", column="when", type_="Timestamp"),
        _e("expect_column_values_to_be_of_type", column="when", type_="datetime64"),
        _e("expect_column_values_to_be_in_type_list", column="when", type_list=["Timestamp", "datetime64[us]"]),
    )
    assert [ok for ok, _ in outcomes] == [True, False, True, True, False, True, False, False]
    assert "in pandas float64" in outcomes[4][1] and "in pandas datetime64[us, UTC]" in outcomes[6][1]


def test_exported_type_checks_name_what_gx_matches(tmp_path):
    import datetime as dt

    table = pa.table(
        {
            "n": pa.array([1, None], pa.int32()),
            "when": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
            "naive": pa.array([0, 1], pa.timestamp("ns")),
            "day": pa.array([dt.date(2024, 1, 1)] * 2),
            "cat": pa.array(["a", "b"]).dictionary_encode(),
            "blob": pa.array([b"a", b"b"]),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    suite = schema_to_suite(validate(tmp_path / "t.parquet", options=NEVER).schema)
    types = {e["kwargs"]["column"]: (e["type"][len("expect_column_values_to_be_") :], e["kwargs"].get("type_") or e["kwargs"]["type_list"]) for e in suite["expectations"] if "type" in e["type"]}
    assert types["when"] == ("of_type", "Timestamp") and types["naive"] == ("of_type", "datetime64") and types["day"] == ("of_type", "date")
    assert types["n"][0] == "in_type_list" and {"int32", "float64", "int64"} <= set(types["n"][1])
    assert "cat" not in types and "blob" not in types, "no type name matches a category or binary column in GX's pandas backend"
    assert all(o.success for o in validate(tmp_path / "t.parquet", options=NEVER, expectation_suite=parse_suite(suite)).expectations)
