"""Great Expectations suites as validate's reference, enforced without GX: parsing, refusal of what we do
not enforce (before any data is read), each expectation's verdict on real Parquet files, exact quantiles
and uniqueness across batches, the schema exported as a suite, and hostile suites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from kfp_mlops.components._shared.errors import DataError, SchemaError, ValidationFailedError
from kfp_mlops.components.validate import gx_spill, statistics
from kfp_mlops.components.validate.component import validate as validate_component
from kfp_mlops.components.validate.core import ValidateOptions, validate
from kfp_mlops.components.validate.gx_rules import quantile_rank
from kfp_mlops.components.validate.gx_suite import MAX_EXPECTATIONS, load_reference, parse_suite

NEVER = ValidateOptions(fail_on_severity="never")
KEYS = ("entity_id", "event_timestamp")


def _suite(*expectations: dict) -> dict:
    return {"name": "contract", "expectations": [{"kwargs": {}, **e} for e in expectations], "meta": {}}


def _e(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs}


def _outcomes(tmp_path: Path, table: pa.Table, *expectations: dict) -> list[tuple[bool, str]]:
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    result = validate(path, options=NEVER, expectation_suite=parse_suite(_suite(*expectations)))
    return [(o.success, o.observed) for o in result.expectations]


def _passes(tmp_path: Path, table: pa.Table, *expectations: dict) -> list[bool]:
    return [ok for ok, _ in _outcomes(tmp_path, table, *expectations)]


def _run_component(tmp_path: Path, dataset_path: Path, reference: Path | None, **params) -> Path:
    out = tmp_path / "out"
    kinds = {"schema": Artifact, "statistics": Artifact, "anomalies": Artifact, "report": HTML, "metrics": Metrics}
    artifacts = {n: kind(name=n, uri=str(out / n)) for n, kind in kinds.items()}
    ref = Artifact(name="reference_schema", uri=str(reference)) if reference is not None else None
    validate_component.python_func(dataset=Dataset(name="dataset", uri=str(dataset_path)), **artifacts, resolved_task=str(out / "resolved_task"), reference_schema=ref, **params)
    return out


TABLE = pa.table(
    {
        "id": [1, 2, 3, 4, 4],
        "x": [1.0, 2.0, 3.0, None, float("nan")],
        "s": pa.array(["a", "b", None, "z", "a"]).dictionary_encode(),
        "flag": [True, False, True, None, True],
    }
)


@pytest.mark.parametrize(
    "expectation,ok",
    [
        (_e("expect_column_to_exist", column="s"), True),
        (_e("expect_column_to_exist", column="s", column_index=2), True),
        (_e("expect_column_to_exist", column="id", column_index=1), False),
        (_e("expect_column_to_exist", column="S"), False),
        (_e("expect_table_columns_to_match_set", column_set=["id", "x", "s", "flag"]), True),
        (_e("expect_table_columns_to_match_set", column_set=["id", "x"]), False),
        (_e("expect_table_columns_to_match_set", column_set=["id", "x"], exact_match=False), True),
        (_e("expect_table_columns_to_match_set", column_set=["id", "x", "y"], exact_match=False), False),
        (_e("expect_table_columns_to_match_ordered_list", column_list=["id", "x", "s", "flag"]), True),
        (_e("expect_table_columns_to_match_ordered_list", column_list=["x", "id", "s", "flag"]), False),
        (_e("expect_column_values_to_be_of_type", column="id", type_="int64"), True),
        (_e("expect_column_values_to_be_of_type", column="id", type_="int"), True),
        (_e("expect_column_values_to_be_of_type", column="id", type_="INT"), False),  # GX: Python's int is not numpy's int64
        (_e("expect_column_values_to_be_in_type_list", column="id", type_list=["INT"]), True),  # ... but a list compares dtypes
        (_e("expect_column_values_to_be_of_type", column="id", type_="int32"), False),
        (_e("expect_column_values_to_be_of_type", column="x", type_="float"), True),
        (_e("expect_column_values_to_be_of_type", column="s", type_="str"), False),  # dictionary-encoded: a pandas category, no name matches
        (_e("expect_column_values_to_be_of_type", column="flag", type_="bool"), True),  # with a null: Python bools in pandas, checked one by one
        (_e("expect_column_values_to_be_of_type", column="flag", type_="int"), True),  # True is an int in Python
        (_e("expect_column_values_to_be_of_type", column="flag", type_="object"), True),
        (_e("expect_column_values_to_be_in_type_list", column="flag", type_list=["object"]), False),
        (_e("expect_column_values_to_be_in_type_list", column="x", type_list=["int", "str"]), False),
        (_e("expect_column_values_to_be_in_type_list", column="x", type_list=["int", "float64"]), True),
        (_e("expect_column_values_to_not_be_null", column="id"), True),
        (_e("expect_column_values_to_not_be_null", column="x"), False),  # NaN is missing, as in pandas
        (_e("expect_column_values_to_not_be_null", column="x", mostly=0.6), True),  # 3 of 5 present: exactly 0.6
        (_e("expect_column_values_to_not_be_null", column="x", mostly=0.61), False),
        (_e("expect_column_values_to_be_between", column="x", min_value=1, max_value=3), True),
        (_e("expect_column_values_to_be_between", column="x", min_value=1, max_value=3, strict_max=True), False),
        (_e("expect_column_values_to_be_between", column="x", min_value=1, max_value=3, strict_max=True, mostly=2 / 3), True),
        (_e("expect_column_values_to_be_between", column="id", max_value=3.5), False),
        (_e("expect_column_values_to_be_between", column="id", min_value=0.5), True),
        (_e("expect_column_values_to_be_between", column="s", min_value=0), False),  # text: nothing to compare
        (_e("expect_column_values_to_be_in_set", column="s", value_set=["a", "b", "z"]), True),
        (_e("expect_column_values_to_be_in_set", column="s", value_set=["a", "b"], mostly=0.75), True),
        (_e("expect_column_values_to_be_in_set", column="s", value_set=["a", "b"], mostly=0.76), False),
        (_e("expect_column_values_to_be_in_set", column="id", value_set=[1, 2.0, 3, 4]), True),
        (_e("expect_column_values_to_be_in_set", column="id", value_set=["1", "2", "3", "4"]), False),  # text never equals a number
        (_e("expect_column_values_to_be_in_set", column="flag", value_set=[True]), False),
        (_e("expect_column_values_to_be_unique", column="s"), False),
        (_e("expect_column_values_to_be_unique", column="x"), True),  # missing values are not repeats
        (_e("expect_column_values_to_be_unique", column="id", mostly=0.6), True),  # 2 of 5 repeat
        (_e("expect_compound_columns_to_be_unique", column_list=["id", "s"]), True),
        (_e("expect_compound_columns_to_be_unique", column_list=["s", "flag"]), False),  # ("a", true) twice
        (_e("expect_table_row_count_to_be_between", min_value=5, max_value=5), True),
        (_e("expect_table_row_count_to_be_between", min_value=5, strict_min=True), False),
        (_e("expect_table_row_count_to_equal", value=5), True),
        (_e("expect_table_row_count_to_equal", value=6), False),
        (_e("expect_column_mean_to_be_between", column="x", min_value=2, max_value=2), True),
        (_e("expect_column_mean_to_be_between", column="x", min_value=2, strict_min=True), False),
        (_e("expect_column_mean_to_be_between", column="flag", min_value=0.74, max_value=0.76), True),
        (_e("expect_column_values_to_be_between", column="flag", min_value=0, max_value=1), True),  # true/false are 1/0 in pandas
        (_e("expect_column_values_to_be_between", column="flag", min_value=0.5), False),
        (_e("expect_column_values_to_be_in_set", column="flag", value_set=[1, 0]), True),
        (_e("expect_column_values_to_be_in_set", column="flag", value_set=[1.0]), False),
        (_e("expect_column_values_to_be_in_set", column="id", value_set=[True, 2, 3, 4]), True),
        (_e("expect_column_quantile_values_to_be_between", column="flag", quantile_ranges={"quantiles": [0.5], "value_ranges": [[1, 1]]}), True),
        (_e("expect_column_quantile_values_to_be_between", column="id", quantile_ranges={"quantiles": [0, 0.5, 1], "value_ranges": [[1, 1], [3, 3], [4, None]]}), True),
        (_e("expect_column_quantile_values_to_be_between", column="id", quantile_ranges={"quantiles": [0.5], "value_ranges": [[3.01, None]]}), False),
        (_e("expect_column_quantile_values_to_be_between", column="id", quantile_ranges={"quantiles": [0.5], "value_ranges": [[3.0003, None]]}), True),  # GX's 1e-4 tolerance
        (_e("expect_column_values_to_not_be_null", column="nope"), False),
    ],
)
def test_each_expectation_on_a_small_table(tmp_path, expectation, ok):
    [(success, observed)] = _outcomes(tmp_path, TABLE, expectation)
    assert success is ok, observed


def test_failures_are_anomalies_naming_type_column_value_and_fix(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(TABLE, path)
    suite = _suite(
        _e("expect_column_values_to_be_between", column="x", min_value=0, max_value=2),
        {**_e("expect_column_values_to_be_in_set", column="s", value_set=["a", "b"]), "severity": "warning"},
        {**_e("expect_column_values_to_be_unique", column="id"), "meta": {"severity": "info"}, "severity": "critical"},
    )
    with pytest.raises(ValidationFailedError) as caught:
        validate(path, expectation_suite=parse_suite(suite))
    assert "1 anomaly at or above severity 'error'" in str(caught.value)
    result = validate(path, options=NEVER, expectation_suite=parse_suite(suite))
    found = {a.code: a for a in result.anomalies if a.code.startswith("expect_")}
    between = found["expect_column_values_to_be_between"]
    assert (between.severity, between.column) == ("error", "x")
    assert "1 of 3 non-missing values (33.33%) outside [0, 2], e.g. 3" in between.message and "widen the bounds" in between.fix
    assert found["expect_column_values_to_be_in_set"].severity == "warning" and "'z'" in found["expect_column_values_to_be_in_set"].message
    assert found["expect_column_values_to_be_unique"].severity == "info", "meta.severity wins over GX's default critical"
    assert "2 of 5 values" in found["expect_column_values_to_be_unique"].message
    assert result.metrics()["expectations_failed"] == 3 and result.schema.column("x") is not None, "the schema is inferred beside the suite"


def test_unsupported_types_and_kwargs_refused_by_name_before_reading(tmp_path, capsys):
    suite = _suite(
        _e("expect_column_values_to_match_regex", column="s", regex="^a"),
        _e("expect_column_values_to_match_regex", column="t", regex="^b"),
        _e("expect_column_values_to_be_between", column="x", min_value=0, row_condition='s=="a"', condition_parser="pandas"),
        _e("expect_column_values_to_be_in_set", column="s", value_set=["a"], parse_strings_as_datetimes=True),
        _e("expect_column_values_to_not_be_null", column="x", mostly={"$PARAMETER": "m"}),
        _e("expect_column_to_exist", column="x", result_format="COMPLETE", catch_exceptions=True, row_condition=None),
    )
    with pytest.raises(SchemaError) as caught:
        parse_suite(suite)
    message = str(caught.value)
    for expected in (
        "'expect_column_values_to_match_regex' (#1, #2)",
        "'row_condition'",
        "'condition_parser'",
        "'parse_strings_as_datetimes'",
        "$PARAMETER",
        "4 problems",
        "What to do:",
        "Supported types:",
    ):
        assert expected in message, expected
    assert "#6" not in message, "presentation kwargs and an empty row_condition are accepted"
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    with pytest.raises(SystemExit) as exited:  # the dataset does not even exist: the suite fails first
        _run_component(tmp_path, tmp_path / "no-such.parquet", tmp_path / "suite.json")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "expect_column_values_to_match_regex" in err and "Parquet" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "data,fragment",
    [
        ([1, 2], "neither a kfp-mlops schema nor a Great Expectations suite (it is a JSON list)"),
        ({"name": "s", "expectations": "all"}, "'expectations' must be a list"),
        ({"expectation_suite_name": "old", "expectations": []}, "Great Expectations 0.x suite"),
        ({"rows": 3}, "neither a kfp-mlops schema nor a Great Expectations suite"),
        ({"name": "s", "expectations": [{"type": "expect_table_row_count_to_equal"}] * (MAX_EXPECTATIONS * 10)}, "100,000 expectations"),
        (_suite(_e("expect_column_values_to_be_between", column="x", min_value=float("nan"), max_value=1)), "finite number"),
        (_suite(_e("expect_column_values_to_be_between", column="x", min_value=5, max_value=1)), "min_value 5 is above max_value 1"),
        (_suite(_e("expect_column_values_to_be_between", column="x")), "both null"),
        (_suite(_e("expect_column_values_to_be_between", column="x", min_value="5")), "must be a number"),
        (_suite(_e("expect_column_values_to_not_be_null", column="x", mostly=1.5)), "between 0 and 1"),
        (_suite(_e("expect_column_values_to_not_be_null", column=3)), "column name"),
        (_suite(_e("expect_column_values_to_be_in_set", column="s", value_set=[[["a"]]])), "text, numbers or true/false"),
        (_suite(_e("expect_column_values_to_be_of_type", column="s", type_="varchar2000")), "type name 'varchar2000', which kfp-mlops does not check"),
        (_suite(_e("expect_column_values_to_be_of_type", column="s", type_="INTEGER")), "matches no column with it: write int64"),
        (_suite(_e("expect_column_values_to_be_in_type_list", column="s", type_list=["str", "string"])), "type name 'string'"),
        (_suite(_e("expect_column_values_to_be_of_type", column="s", type_="category")), "drop the type expectation"),
        (_suite(_e("expect_column_values_to_be_of_type", column="s", type_="BooleanType")), "write bool"),
        (_suite(_e("expect_column_to_exist", column="s", column_index=0)), "is 0, which Great Expectations ignores"),
        (_suite(_e("expect_column_values_to_be_between", column="x", max_value=10**400)), "too large for a float"),
        ({"name": "s", "expectations": []}, "the suite has no expectations"),
        (_suite(_e("expect_table_row_count_to_equal", value=-1)), "whole number"),
        (_suite(_e("expect_column_quantile_values_to_be_between", column="x", quantile_ranges={"quantiles": [0.5], "value_ranges": [[2, 1]]})), "low above high"),
        (_suite(_e("expect_column_quantile_values_to_be_between", column="x", quantile_ranges={"quantiles": [0.5]}, allow_relative_error="linear")), "value_ranges"),
        (_suite({"type": "expect_column_to_exist", "kwargs": {"column": "x"}, "severity": "fatal"}), "severity 'fatal'"),
        (_suite({"type": "expect_column_to_exist", "kwargs": ["x"]}), "'kwargs' must be an object"),
        ({"name": "s", "expectations": ["expect_column_to_exist"]}, "must be an object with a 'type'"),
        ({"name": "s", "expectations": [{"expectation_type": "expect_column_to_exist", "kwargs": {"column": "x"}}]}, "a Great Expectations 0.x field"),
    ],
)
def test_hostile_suites_are_clear_errors(tmp_path, capsys, data, fragment):
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaError) as caught:
        load_reference(path)
    assert fragment in str(caught.value) and "What to do:" in str(caught.value), str(caught.value)[:500]
    # Through the component, on a real dataset: exit 2 with the message, no output at all.
    dataset = tmp_path / "d.parquet"
    pq.write_table(TABLE, dataset)
    with pytest.raises(SystemExit) as exited:
        _run_component(tmp_path, dataset, path)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_deep_nesting_huge_files_and_exit_codes(tmp_path, capsys, monkeypatch):
    data = tmp_path / "d.parquet"
    pq.write_table(TABLE, data)
    (tmp_path / "deep.json").write_text('{"name": "s", "expectations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SchemaError, match="nested too deeply"):
        load_reference(tmp_path / "deep.json")
    from kfp_mlops.components.validate import gx_suite

    monkeypatch.setattr(gx_suite, "MAX_FILE_BYTES", 1000)
    (tmp_path / "huge.json").write_text(json.dumps(_suite(*[_e("expect_column_to_exist", column=f"c{i}") for i in range(100)])))
    with pytest.raises(SchemaError, match="a schema or suite is at most that"):
        load_reference(tmp_path / "huge.json")
    monkeypatch.undo()
    # A failing expectation through the component: exit 2, the anomaly on stderr, no output written.
    (tmp_path / "s.json").write_text(json.dumps(_suite(_e("expect_column_values_to_be_between", column="nope", min_value=0))))
    with pytest.raises(SystemExit) as exited:
        _run_component(tmp_path, data, tmp_path / "s.json")
    assert exited.value.code == 2 and "column 'nope' not in the dataset" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["nearest", "lower", "higher"])
def test_quantile_ranks_are_pandas(method):
    """The rank taken for each quantile is the one pandas' quantile takes (GX's pandas backend calls it);
    pandas passes q to numpy as a percent, which moves some ranks (n=11, q=0.7) from numpy's own."""
    quantiles = [float(q) for q in np.linspace(0, 1, 41)]
    for n in range(1, 80):
        ranks = pd.Series(np.arange(n, dtype=float)).quantile(quantiles, interpolation=method).astype(int).tolist()
        assert [quantile_rank(n, q, method) for q in quantiles] == ranks, n


@pytest.mark.parametrize("integer", [False, True])
def test_exact_order_statistics_through_radix_selection(tmp_path, monkeypatch, integer):
    rng = np.random.default_rng(3)
    if integer:
        values = rng.integers(-(2**62), 2**62, 40_000) // rng.integers(1, 10**9, 40_000)
        values[:5_000] = 42  # a heavy tie: one radix bucket holds an eighth of the keys
    else:
        values = np.concatenate([rng.normal(0, 1e6, 30_000), np.repeat([-0.0, 0.0, 7.25], 3_000), [np.inf, -np.inf, 5e-324, -5e-324]])
    values = rng.permutation(values)
    monkeypatch.setattr(gx_spill, "IN_MEMORY_KEYS", 500)  # forces up to four radix passes
    spill = gx_spill.QuantileSpill(tmp_path, "q", pa.int64() if integer else pa.float64())
    for part in np.array_split(values, 7):
        spill.add(pa.array(part))
    ranks = [0, 1, 17, len(values) // 3, len(values) // 2, len(values) - 2, len(values) - 1]
    assert spill.order_statistics(ranks) == [v.item() for v in np.sort(values)[ranks]]


def test_quantiles_through_validate_in_small_batches(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    table = pa.table({"f": pa.array(rng.normal(50, 10, 20_000), mask=rng.random(20_000) < 0.1)})
    monkeypatch.setattr(statistics, "BATCH_ROWS", 3_000)
    monkeypatch.setattr(gx_spill, "IN_MEMORY_KEYS", 1_000)
    present = table.column("f").drop_null().to_numpy()
    quantiles = [0.05, 0.5, 0.95]
    expected = np.quantile(present, quantiles, method="nearest")
    ranges = [[float(v), float(v)] for v in expected]
    wrong = [[float(v) * 1.001, None] for v in expected]
    kind = "expect_column_quantile_values_to_be_between"
    outcomes = _outcomes(
        tmp_path, table, _e(kind, column="f", quantile_ranges={"quantiles": quantiles, "value_ranges": ranges}), _e(kind, column="f", quantile_ranges={"quantiles": quantiles, "value_ranges": wrong})
    )
    assert [ok for ok, _ in outcomes] == [True, False]
    assert "quantile 0.05 is" in outcomes[1][1] and "outside [" in outcomes[1][1]


def test_exact_uniqueness_across_batches_matches_pandas(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    n = 30_000
    a = pa.array(rng.integers(0, 25_000, n).astype(float), mask=rng.random(n) < 0.05)
    b = pa.array([f"k{v}" for v in rng.integers(0, 400, n)], mask=rng.random(n) < 0.2)
    table = pa.table({"a": a, "b": b})
    frame = table.to_pandas()
    monkeypatch.setattr(statistics, "BATCH_ROWS", 4_096)
    expectations = [_e("expect_column_values_to_be_unique", column="a", mostly=0.0)]
    for rule in ("all_values_are_missing", "any_value_is_missing", "never"):
        expectations.append(_e("expect_compound_columns_to_be_unique", column_list=["a", "b"], ignore_row_if=rule, mostly=0.0))
    observed = [o for _, o in _outcomes(tmp_path, table, *expectations)]
    present = frame["a"].dropna()
    assert observed[0].startswith(f"{int(present.duplicated(keep=False).sum()):,} of {len(present):,} values")
    missing = frame[["a", "b"]].isna()
    for text, keep in zip(observed[1:], (~missing.all(axis=1), ~missing.any(axis=1), pd.Series(True, index=frame.index))):
        rows = frame[keep][["a", "b"]]
        assert text.startswith(f"{int(rows.duplicated(keep=False).sum()):,} of {len(rows):,} rows"), text


def test_spills_removed_and_no_great_expectations_at_runtime(tmp_path):
    """The data image has no great_expectations: validate with a suite runs with it made unimportable."""
    table = pa.table({"u": list(range(1000)), "q": np.linspace(0, 1, 1000)})
    pq.write_table(table, tmp_path / "t.parquet")
    suite = _suite(
        _e("expect_column_values_to_be_unique", column="u"), _e("expect_column_quantile_values_to_be_between", column="q", quantile_ranges={"quantiles": [0.5], "value_ranges": [[0.4, 0.6]]})
    )
    (tmp_path / "s.json").write_text(json.dumps(suite))
    code = (
        "import sys; sys.modules['great_expectations'] = None\n"
        "from kfp_mlops.components.validate.gx_suite import load_reference\n"
        "from kfp_mlops.components.validate.core import validate\n"
        f"r = validate({str(tmp_path / 't.parquet')!r}, expectation_suite=load_reference({str(tmp_path / 's.json')!r}))\n"
        "assert [o.success for o in r.expectations] == [True, True], r.expectations\n"
        "assert not any(m.startswith('great_expectations') for m in sys.modules if sys.modules[m] is not None)\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "GX_ANALYTICS_ENABLED": "false"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(tmp_path.glob("kfp-mlops-gx-*")), "spill folders are removed"
    # And after a pass that fails half-way: a page of the third row group is corrupt.
    before = set(Path(tempfile.gettempdir()).glob("kfp-mlops-gx-*"))
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"u": np.arange(40_000), "q": np.linspace(0, 1, 40_000)}), bad, row_group_size=10_000)
    data = bytearray(bad.read_bytes())
    start = pq.read_metadata(bad).row_group(2).column(0).data_page_offset
    data[start + 20 : start + 2000] = bytes((b * 7 + 13) % 256 for b in data[start + 20 : start + 2000])
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt after"):
        validate(bad, expectation_suite=load_reference(tmp_path / "s.json"))
    assert set(Path(tempfile.gettempdir()).glob("kfp-mlops-gx-*")) == before


def test_value_sets_on_dates_times_nested_and_wide_integers(tmp_path):
    import datetime as dt

    table = pa.table(
        {
            "d": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None],
            "t": pa.array([dt.datetime(2024, 1, 1, 12)] * 3, pa.timestamp("us")),
            "l": [[1], [2], [3]],
            "u": pa.array([1, 2, 2**64 - 1], pa.uint64()),
        }
    )
    kind = "expect_column_values_to_be_in_set"
    outcomes = _outcomes(
        tmp_path,
        table,
        _e(kind, column="d", value_set=["2024-01-01", "2024-01-02"]),
        _e(kind, column="d", value_set=["2024-01-01", "not a date"]),
        _e(kind, column="t", value_set=["2024-01-01T12:00:00"]),
        _e(kind, column="l", value_set=[1, 2, 3]),
        _e(kind, column="u", value_set=[1, 2, -1, 2**64 - 1]),
        _e("expect_column_values_to_be_between", column="u", max_value=2**64 - 1),
        _e("expect_column_values_to_be_between", column="u", max_value=2),
        _e("expect_column_values_to_be_between", column="u", min_value=1.5, max_value=2**64 - 1, strict_max=True),
        _e("expect_column_values_to_be_between", column="u", min_value=-(2**70), max_value=2**70),
        _e("expect_column_values_to_be_between", column="u", min_value=1e300),
        _e("expect_column_quantile_values_to_be_between", column="u", quantile_ranges={"quantiles": [1.0], "value_ranges": [[2**64 - 1, None]]}),
    )
    # Dates are Python dates in pandas: no JSON value equals one, as in GX.
    assert [ok for ok, _ in outcomes] == [False, False, True, False, True, True, False, False, True, False, True]
    assert "2 of 3 non-missing values" in outcomes[7][1], "1 is below 1.5 and 2**64 - 1 (as a float) is not below itself"
    assert "2 set value(s) are not of the column's type and can never match; a date column holds Python dates" in outcomes[1][1]
    assert "cannot be looked up in a value set" in outcomes[3][1]


def test_component_with_a_passing_suite_writes_the_inferred_schema(tmp_path):
    data = tmp_path / "d.parquet"
    pq.write_table(TABLE, data)
    (tmp_path / "s.json").write_text(json.dumps(_suite(_e("expect_table_row_count_to_equal", value=5), {**_e("expect_column_values_to_be_unique", column="id"), "severity": "warning"})))
    out = _run_component(tmp_path, data, tmp_path / "s.json")
    schema = json.loads((out / "schema").read_text())
    assert [c["name"] for c in schema["columns"]] == ["id", "x", "s", "flag"] and schema["version"] == 2
    anomalies = json.loads((out / "anomalies").read_text())
    assert [(a["code"], a["severity"]) for a in anomalies if a["code"].startswith("expect_")] == [("expect_column_values_to_be_unique", "warning")]


def test_repeated_keys_and_validate_outputs_passed_as_the_reference_are_named(tmp_path, capsys):
    # A repeated key: Python's reader would keep the last, another reader the first.
    (tmp_path / "twice.json").write_text('{"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "id", "column": "nope"}}]}')
    with pytest.raises(SchemaError) as caught:
        load_reference(tmp_path / "twice.json")
    assert "repeats the key 'column' in one JSON object" in str(caught.value) and "What to do: keep one 'column'" in str(caught.value)
    # validate's own statistics and anomalies outputs, as a user might pick the wrong artifact.
    data = tmp_path / "d.parquet"
    pq.write_table(TABLE, data)
    out = _run_component(tmp_path, data, None)
    for artifact, fragment in (("statistics", "this is validate's statistics output"), ("anomalies", "this is validate's anomalies output")):
        if artifact == "anomalies" and not json.loads((out / artifact).read_text()):
            (out / artifact).write_text(json.dumps([{"severity": "warning", "code": "nulls", "column": "x", "message": "m", "fix": "f"}]))
        with pytest.raises(SchemaError) as caught:
            load_reference(out / artifact)
        assert fragment in str(caught.value) and "the 'schema' artifact" in str(caught.value), str(caught.value)
    assert isinstance(load_reference(out / "schema"), type(validate(data, options=NEVER).schema)), "the schema itself still loads"
