"""Validate on real Parquet data: inference, checking against a schema, anomalies, report, streaming."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError, SchemaError, ValidationFailedError
from kfp_mlops.components.ingest.core import IngestOptions, ingest
from kfp_mlops.components.validate import statistics
from kfp_mlops.components.validate.core import ValidateOptions, validate, write_outputs
from kfp_mlops.components.validate.schema import DatasetSchema
from kfp_mlops.demo import DemoSpec, write_demo_dataset

KEYS = ("entity_id", "event_timestamp")
OPTS = ValidateOptions(label_column="label", key_columns=KEYS)


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory):
    return write_demo_dataset(tmp_path_factory.mktemp("v") / "train.parquet", DemoSpec(rows=30_000, seed=5))


def _table(tmp_path, name, **columns):
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return path


def test_infers_schema_from_clean_data(train_parquet):
    result = validate(train_parquet, options=OPTS)
    assert [a for a in result.anomalies if a.severity != "info"] == []
    schema = result.schema
    assert schema.label_column == "label" and schema.label_classes == ["0", "1"]
    assert schema.key_columns == list(KEYS)
    country = schema.column("country")
    assert country.kind == "categorical" and "US" in country.domain and len(country.domain) == 8
    assert schema.column("tenure_days").nullable and not schema.column("age").nullable
    assert schema.column("age").min == 18 and schema.column("age").max == 90


def test_statistics_match_a_direct_computation(train_parquet):
    result = validate(train_parquet, options=OPTS)
    table = pq.read_table(train_parquet)
    amount = table.column("amount").to_numpy()
    st = result.stats.column("amount")
    assert st.mean == pytest.approx(amount.mean(), rel=1e-12)
    assert st.std == pytest.approx(amount.std(ddof=1), rel=1e-9)
    assert st.min == amount.min() and st.max == amount.max()
    assert result.stats.column("tenure_days").nulls == table.column("tenure_days").null_count
    labels = table.column("label").to_numpy()
    assert result.stats.column("label").value_counts == {"0": int((labels == 0).sum()), "1": int((labels == 1).sum())}


def test_streams_in_batches(train_parquet, monkeypatch):
    """Many small batches give the same statistics as one big one (merge formulas are exact)."""
    whole = validate(train_parquet, options=OPTS).stats
    monkeypatch.setattr(statistics, "BATCH_ROWS", 1_000)
    batched = validate(train_parquet, options=OPTS).stats
    for a, b in zip(whole.columns, batched.columns):
        assert a.mean == pytest.approx(b.mean, rel=1e-12) if a.mean is not None else b.mean is None
        assert (a.min, a.max, a.nulls, a.value_counts) == (b.min, b.max, b.nulls, b.value_counts)


def test_drifted_data_checked_against_training_schema(train_parquet, tmp_path):
    schema = validate(train_parquet, options=OPTS).schema
    schema.save(tmp_path / "schema.json")
    drifted = write_demo_dataset(tmp_path / "serving.parquet", DemoSpec(rows=10_000, seed=9, drift=1.0))
    reference = DatasetSchema.load(tmp_path / "schema.json")
    result = validate(drifted, options=ValidateOptions(label_column="label", key_columns=KEYS, fail_on_severity="never"), reference_schema=reference)
    codes = {(a.code, a.column) for a in result.anomalies}
    assert ("new_category", "country") in codes
    assert ("out_of_range", "score_b") in codes
    new_cat = next(a for a in result.anomalies if a.code == "new_category")
    assert "'NG'" in new_cat.message and new_cat.severity == "warning"
    with pytest.raises(ValidationFailedError, match="new_category"):
        validate(drifted, options=ValidateOptions(label_column="label", fail_on_severity="warning"), reference_schema=reference)


def test_missing_and_retyped_columns_against_schema(train_parquet, tmp_path):
    schema = validate(train_parquet, options=OPTS).schema
    path = _table(tmp_path, "s.parquet", entity_id=[1, 2], age=["old", "young"], label=[0, 1])
    with pytest.raises(ValidationFailedError) as caught:
        validate(path, options=ValidateOptions(label_column="label"), reference_schema=schema)
    message = str(caught.value)
    assert "missing_column" in message and "'amount'" in message
    assert "type_mismatch" in message and "'age'" in message


def test_every_anomaly_listed_when_failing(tmp_path):
    path = _table(
        tmp_path,
        "bad.parquet",
        id=[1, 1, 2, 3],
        empty=pa.array([None] * 4, type=pa.float64()),
        x=[1.0, float("nan"), 2.0, float("inf")],
        label=[1, 1, 1, 1],
    )
    with pytest.raises(ValidationFailedError) as caught:
        validate(path, options=ValidateOptions(label_column="label", key_columns=("id",)))
    message = str(caught.value)
    for expected in ("all_null", "'empty'", "duplicate_keys", "rows 2", "single_class", "non_finite", "3 anomalies at or above severity 'error'"):
        assert expected in message, expected


def test_missing_label_column(tmp_path):
    path = _table(tmp_path, "nolabel.parquet", a=[1, 2], b=[3, 4])
    with pytest.raises(ValidationFailedError, match="label column not found"):
        validate(path, options=ValidateOptions(label_column="target"))


def test_class_imbalance_is_a_warning(tmp_path):
    path = _table(tmp_path, "imb.parquet", x=list(range(1000)), label=[1] * 5 + [0] * 995)
    result = validate(path, options=ValidateOptions(label_column="label"))
    assert [a.code for a in result.anomalies] == ["class_imbalance"]
    with pytest.raises(ValidationFailedError, match="class_imbalance"):
        validate(path, options=ValidateOptions(label_column="label", fail_on_severity="warning"))


def test_html_report_escapes_user_data(tmp_path):
    path = _table(tmp_path, "x.parquet", **{"<script>alert(1)</script>": ["<b>bold</b>", "<img src=x onerror=alert(2)>"], "label": [0, 1]})
    # Two rows cannot be split for training (too_few_rows_in_class); escaping is what is tested here.
    result = validate(path, options=ValidateOptions(label_column="label", fail_on_severity="never"))
    out = tmp_path / "out"
    write_outputs(result, schema_path=out / "schema.json", statistics_path=out / "stats.json", anomalies_path=out / "a.json", report_path=out / "r.html", source="<script>x</script>")
    page = (out / "r.html").read_text()
    assert "<script>" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert json.loads((out / "schema.json").read_text())["columns"][0]["name"] == "<script>alert(1)</script>"


def test_failed_validation_writes_nothing(tmp_path):
    path = _table(tmp_path, "bad.parquet", a=pa.array([None, None], type=pa.int64()))
    with pytest.raises(ValidationFailedError):
        validate(path)
    assert not (tmp_path / "out").exists()


def test_schema_round_trip_and_bad_schemas(train_parquet, tmp_path):
    schema = validate(train_parquet, options=OPTS).schema
    schema.save(tmp_path / "s.json")
    assert DatasetSchema.load(tmp_path / "s.json") == schema
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SchemaError, match="cannot read the schema"):
        DatasetSchema.load(tmp_path / "bad.json")
    (tmp_path / "v.json").write_text(json.dumps({"version": 99, "columns": []}))
    with pytest.raises(SchemaError, match="unknown schema version 99"):
        DatasetSchema.load(tmp_path / "v.json")
    (tmp_path / "f.json").write_text(json.dumps({"version": 1, "columns": [{"name": "a", "type": "int64", "colour": "red"}]}))
    with pytest.raises(SchemaError, match="unknown fields"):
        DatasetSchema.load(tmp_path / "f.json")


def test_not_parquet(tmp_path):
    (tmp_path / "x.parquet").write_text("hello")
    with pytest.raises(DataError, match="cannot read the dataset as Parquet"):
        validate(tmp_path / "x.parquet")


def test_string_keys_and_generated_ids(tmp_path):
    (tmp_path / "k.csv").write_text("user,day,v\nu1,1,0\nu2,1,1\nu1,1,1\n")
    ingested = ingest(str(tmp_path / "k.csv"), tmp_path / "k.parquet", options=IngestOptions(entity_column="user"))
    result = validate(ingested.path, options=ValidateOptions(key_columns=("user",), fail_on_severity="never"))
    dup = next(a for a in result.anomalies if a.code == "duplicate_keys")
    assert "rows 3" in dup.message
    unique = validate(ingested.path, options=ValidateOptions(key_columns=("user", "day", "v")))
    assert not [a for a in unique.anomalies if a.code == "duplicate_keys"]


def test_a_half_float_column_gets_statistics_instead_of_a_crash(tmp_path):
    """Arrow has no min/max or mean kernels for float16; validate computes them in float32."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfp_mlops.components.validate.core import validate as validate_dataset

    pq.write_table(pa.table({"h": pa.array([1.0, 2.0, None, 4.0], pa.float16()), "y": [0, 1, 0, 1]}), tmp_path / "h.parquet")
    result = validate_dataset(tmp_path / "h.parquet")
    column = next(c for c in result.stats.columns if c.name == "h")
    assert (column.min, column.max, column.nulls) == (1.0, 4.0, 1)
