"""Validate under hostile or tired input: a mistyped severity, odd Parquet types, a hand-edited
schema with wrong field types, a corrupt file, and user data in the HTML report."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from kfp_mlops.components._shared.errors import DataError, SchemaError
from kfp_mlops.components.validate.component import validate as validate_component
from kfp_mlops.components.validate.core import ValidateOptions, validate, write_outputs
from kfp_mlops.components.validate.schema import DatasetSchema

HOSTILE = ["<img src=x onerror=alert(1)>", "| **bold** |"]


def _run_component(tmp_path, dataset_path, **params):
    out = tmp_path / "out"
    kinds = {"schema": Artifact, "statistics": Artifact, "anomalies": Artifact, "report": HTML, "metrics": Metrics}
    artifacts = {n: kind(name=n, uri=str(out / n)) for n, kind in kinds.items()}
    validate_component.python_func(dataset=Dataset(name="dataset", uri=str(dataset_path)), **artifacts, resolved_task=str(out / "resolved_task"), **params)
    return out


def test_unknown_severity_refused_before_reading_data(tmp_path, capsys):
    with pytest.raises(DataError) as caught:
        ValidateOptions(fail_on_severity="fatal")
    message = str(caught.value)
    assert "'fatal'" in message and "fail_on_severity" in message and "info, warning, error, never" in message
    # Through the component, on a dataset that does not even exist: the option fails first, with exit 2.
    with pytest.raises(SystemExit) as exited:
        _run_component(tmp_path, tmp_path / "no-such-dataset", fail_on_severity="fatal")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unknown failing severity 'fatal'" in err and "Traceback" not in err and "Parquet" not in err
    assert not (tmp_path / "out").exists()
    assert ValidateOptions(fail_on_severity=" Warning ").fail_on_severity == "warning", "case and spaces are forgiven"


@pytest.mark.parametrize("options,fragment", [({"max_domain_size": 0}, "max_domain_size"), ({"min_class_share": 1.5}, "min_class_share"), ({"min_class_share": "1%"}, "min_class_share")])
def test_out_of_range_options_refused(options, fragment):
    with pytest.raises(DataError, match=fragment):
        ValidateOptions(**options)


def test_dictionary_encoded_columns(tmp_path):
    """pandas writes categoricals dictionary-encoded; they are categorical columns like any text."""
    path = tmp_path / "cat.parquet"
    pq.write_table(pa.table({"country": pa.array(["DE", "US", "DE", "FR"]).dictionary_encode(), "code": pa.array([1, 2, 1, 3]).dictionary_encode(), "label": [0, 1, 0, 1]}), path)
    result = validate(path, options=ValidateOptions(label_column="label", key_columns=("country",), fail_on_severity="never"))
    assert result.schema.column("country").kind == "categorical" and result.schema.column("country").domain == ["DE", "FR", "US"]
    assert result.schema.column("code").kind == "integer"
    # The label's own finding (two rows per class are too few to split) is not what this test is about.
    key_findings = [a for a in result.anomalies if a.column != "label"]
    assert [a.code for a in key_findings] == ["duplicate_keys"] and "rows 3" in key_findings[0].message


@pytest.mark.parametrize(
    "column",
    [
        pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 1)]),
        pa.array([dt.time(1, 0), dt.time(2, 0), dt.time(1, 0)]),
        pa.array([decimal.Decimal("1.50"), decimal.Decimal("2.00"), decimal.Decimal("1.50")]),
        pa.array([{"a": 1}, {"a": 2}, {"a": 1}]),
        pa.array([[1], [2, 3], [1]]),
    ],
    ids=["date", "time", "decimal", "struct", "list"],
)
def test_keys_of_any_type_find_duplicates(column, tmp_path):
    path = tmp_path / "k.parquet"
    pq.write_table(pa.table({"k": column, "v": [1, 2, 3]}), path)
    result = validate(path, options=ValidateOptions(key_columns=("k",), fail_on_severity="never"))
    assert result.stats.duplicate_keys == 1 and result.stats.duplicate_key_examples == [3]


def test_all_null_key_column(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"k": pa.array([None, None], type=pa.null()), "v": [1, 2]}), path)
    result = validate(path, options=ValidateOptions(key_columns=("k",), fail_on_severity="never"))
    assert {"all_null", "null_key"} <= {a.code for a in result.anomalies}


@pytest.mark.parametrize(
    "edit,fragment",
    [
        ({"min": "18"}, "'min' must be a number"),
        ({"max": True}, "'max' must be a number"),
        ({"domain": [1, 2]}, "'domain' must be a list of strings"),
        ({"domain": "US"}, "'domain' must be a list of strings"),
        ({"nullable": "no"}, "'nullable' must be true or false"),
        ({"name": 5}, "'name' and 'type' must be strings"),
    ],
)
def test_hand_edited_schema_with_wrong_field_types(edit, fragment, tmp_path):
    schema = {"version": 1, "columns": [{"name": "age", "type": "int64", "kind": "integer", "nullable": False, "min": 18, "max": 90, "domain": None}]}
    schema["columns"][0].update(edit)
    (tmp_path / "s.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match=fragment) as caught:
        DatasetSchema.load(tmp_path / "s.json")
    assert "s.json" in str(caught.value) and "What to do:" in str(caught.value)


@pytest.mark.parametrize(
    "edit,fragment",
    [({"key_columns": "age"}, "'key_columns' must be a list"), ({"label_classes": [0, 1]}, "'label_classes' must be a list of strings"), ({"label_column": 3}, "'label_column' must be a string")],
)
def test_hand_edited_schema_with_wrong_top_level_types(edit, fragment, tmp_path):
    schema = {"version": 1, "columns": [{"name": "age", "type": "int64", "kind": "integer"}], **edit}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match=fragment):
        DatasetSchema.load(tmp_path / "s.json")


def test_corrupt_page_after_the_first_row_groups(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"x": np.arange(400_000), "s": [f"v{i % 1000}" for i in range(400_000)]}), path, row_group_size=100_000)
    data = bytearray(path.read_bytes())
    start = pq.read_metadata(path).row_group(2).column(0).data_page_offset
    for i in range(start + 20, start + 2000):
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="the dataset is corrupt after") as caught:
        validate(path, options=ValidateOptions(key_columns=("x",)))
    assert "c.parquet" in str(caught.value)


def test_report_escapes_hostile_column_names_and_values(tmp_path):
    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({HOSTILE[0]: HOSTILE, HOSTILE[1]: ["<script>x</script>", "**y**"], "label": [0, 1]}), path)
    result = validate(path, options=ValidateOptions(label_column="label", fail_on_severity="never"))
    out = tmp_path / "out"
    write_outputs(result, schema_path=out / "s", statistics_path=out / "st", anomalies_path=out / "a", report_path=out / "r.html", source=f"/data/{HOSTILE[0]}.csv")
    page = (out / "r.html").read_text()
    assert "<img" not in page and "<script>x" not in page
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") >= 3, "column name, value and source all shown as text"
    assert "| **bold** |" in page, "HTML needs no Markdown escaping: the name shows as written"
