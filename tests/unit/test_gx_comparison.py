"""The same suites through Great Expectations itself (pandas data source, ephemeral context) and through
validate: the same pass/fail per expectation, on real public tables (Palmer penguins with a zoned timestamp
and a date column, scikit-learn's iris) and on crafted failing variants of them, for hand-written suites, for
every type name we accept on every kind of column, and for our schema exported as a suite (also of a table
ingest wrote)."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components.validate.core import ValidateOptions, validate
from kfp_mlops.components.validate.gx_export import schema_to_suite
from kfp_mlops.components.validate.gx_suite import parse_suite
from kfp_mlops.components.validate.gx_types import NUMERIC_DTYPES, NUMPY_NAMES, PANDAS_NAMES, PYTHON_NAMES
from tests.services import require

NEVER = ValidateOptions(fail_on_severity="never")


@pytest.fixture(scope="module")
def gx_batches():
    require(importlib.util.find_spec("great_expectations") is not None, "great_expectations is not installed (pip install -e '.[test]')")
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # before the import: GX reads it then
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    whole = context.data_sources.add_pandas("frames").add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")
    return gx, context, whole


def _gx_verdicts(gx_batches, path: Path, suite: dict[str, Any], result_format: str = "SUMMARY") -> list[bool]:
    gx, context, whole = gx_batches
    frame = pq.read_table(path).to_pandas()
    # GX 1.24.1 caches column.quantile_values per column, not per quantile list: a second quantile
    # expectation on a column in the same run is judged on the first one's values. Each runs apart.
    rounds: dict[int, list[dict[str, Any]]] = {}
    quantile_columns: list[str] = []
    for i, e in enumerate(suite["expectations"]):
        if e["type"] == "expect_column_quantile_values_to_be_between":
            quantile_columns.append(e["kwargs"]["column"])
        round_number = quantile_columns.count(e["kwargs"].get("column")) if e["type"] == "expect_column_quantile_values_to_be_between" else 0
        # GX returns results in its own order: each expectation carries its position in meta.
        rounds.setdefault(round_number, []).append({**e, "meta": {**e.get("meta", {}), "kfp_position": i}})
    verdicts: dict[int, bool] = {}
    for tagged in rounds.values():
        added = context.suites.add(gx.ExpectationSuite(name=f"{suite['name']}-{len(context.suites.all())}", expectations=tagged))
        for result in whole.get_batch(batch_parameters={"dataframe": frame}).validate(added, result_format=result_format).results:
            verdicts[result.expectation_config.meta["kfp_position"]] = bool(result.success)
    assert sorted(verdicts) == list(range(len(suite["expectations"])))
    return [verdicts[i] for i in range(len(suite["expectations"]))]


def _our_verdicts(path: Path, suite: dict[str, Any]) -> list[bool]:
    return [o.success for o in validate(path, options=NEVER, expectation_suite=parse_suite(suite)).expectations]


def _compare(gx_batches, path: Path, suite: dict[str, Any], result_format: str = "SUMMARY") -> list[bool]:
    ours, theirs = _our_verdicts(path, suite), _gx_verdicts(gx_batches, path, suite, result_format)
    differ = [f"#{i + 1} {e['type']} {e['kwargs']}: ours {a}, GX {b}" for i, (e, a, b) in enumerate(zip(suite["expectations"], ours, theirs)) if a != b]
    assert not differ, "\n".join(differ)
    return ours


def _e(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


@pytest.fixture(scope="module")
def penguins(tmp_path_factory) -> Path:
    from palmerpenguins import load_penguins

    path = tmp_path_factory.mktemp("penguins") / "penguins.parquet"
    table = pa.Table.from_pandas(load_penguins(), preserve_index=False)
    # A zoned timestamp as ingest writes it, and a date, each with a gap.
    hours = np.datetime64("2007-11-01T00:00", "us") + np.arange(table.num_rows) * np.timedelta64(3600 * 10**6 + 1, "us")
    gaps = np.arange(table.num_rows) % 97 == 5
    table = table.append_column("observed_at", pa.array(hours, mask=gaps).cast(pa.timestamp("us", tz="UTC")))
    table = table.append_column("observed_on", pa.array(hours.astype("datetime64[D]"), mask=gaps).cast(pa.date32()))
    pq.write_table(table, path)
    return path


def _variant(source: Path, out: Path, edit) -> Path:
    frame = pq.read_table(source).to_pandas()
    edit(frame)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
    return out


PENGUIN_COLUMNS = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year", "observed_at", "observed_on"]
PENGUIN_SUITE = {
    "name": "penguins",
    "expectations": [
        _e("expect_column_to_exist", column="species"),
        _e("expect_column_to_exist", column="wing_span_mm"),
        _e("expect_column_to_exist", column="island", column_index=1),
        _e("expect_column_to_exist", column="island", column_index=2),
        _e("expect_table_columns_to_match_set", column_set=PENGUIN_COLUMNS),
        _e("expect_table_columns_to_match_set", column_set=PENGUIN_COLUMNS[:-1]),
        _e("expect_table_columns_to_match_set", column_set=PENGUIN_COLUMNS[:3], exact_match=False),
        _e("expect_table_columns_to_match_ordered_list", column_list=PENGUIN_COLUMNS),
        _e("expect_table_columns_to_match_ordered_list", column_list=PENGUIN_COLUMNS[::-1]),
        _e("expect_column_values_to_be_of_type", column="year", type_="int64"),
        _e("expect_column_values_to_be_of_type", column="year", type_="int"),
        _e("expect_column_values_to_be_of_type", column="bill_length_mm", type_="float64"),
        _e("expect_column_values_to_be_of_type", column="bill_length_mm", type_="float"),
        _e("expect_column_values_to_be_of_type", column="species", type_="str"),
        _e("expect_column_values_to_be_of_type", column="year", type_="str"),
        _e("expect_column_values_to_be_of_type", column="body_mass_g", type_="int64"),
        _e("expect_column_values_to_be_in_type_list", column="body_mass_g", type_list=["int64", "float64"]),
        _e("expect_column_values_to_be_in_type_list", column="species", type_list=["int64", "float64"]),
        _e("expect_column_values_to_not_be_null", column="species"),
        _e("expect_column_values_to_not_be_null", column="sex"),
        _e("expect_column_values_to_not_be_null", column="sex", mostly=0.9),
        _e("expect_column_values_to_not_be_null", column="bill_length_mm", mostly=342 / 344),  # exactly the share present
        _e("expect_column_values_to_not_be_null", column="bill_length_mm", mostly=0.995),
        _e("expect_column_values_to_be_between", column="bill_length_mm", min_value=30, max_value=60),
        _e("expect_column_values_to_be_between", column="bill_length_mm", min_value=40, max_value=50),
        _e("expect_column_values_to_be_between", column="bill_length_mm", min_value=40, max_value=50, mostly=0.5),
        _e("expect_column_values_to_be_between", column="body_mass_g", max_value=6300, strict_max=True),
        _e("expect_column_values_to_be_between", column="body_mass_g", max_value=6300),
        _e("expect_column_values_to_be_between", column="flipper_length_mm", min_value=172, strict_min=True),
        _e("expect_column_values_to_be_between", column="year", min_value=2007, max_value=2009),
        _e("expect_column_values_to_be_in_set", column="species", value_set=["Adelie", "Chinstrap", "Gentoo"]),
        _e("expect_column_values_to_be_in_set", column="species", value_set=["Adelie", "Gentoo"]),
        _e("expect_column_values_to_be_in_set", column="species", value_set=["Adelie", "Gentoo"], mostly=0.8),
        _e("expect_column_values_to_be_in_set", column="sex", value_set=["male", "female"]),
        _e("expect_column_values_to_be_in_set", column="year", value_set=[2007, 2008, 2009.0]),
        _e("expect_column_values_to_be_in_set", column="year", value_set=["2007", "2008", "2009"]),
        _e("expect_column_values_to_be_unique", column="year"),
        _e("expect_column_values_to_be_unique", column="bill_length_mm", mostly=0.3),
        _e("expect_compound_columns_to_be_unique", column_list=["species", "island", "bill_length_mm", "bill_depth_mm", "body_mass_g"]),
        _e("expect_compound_columns_to_be_unique", column_list=["species", "year"]),
        _e("expect_compound_columns_to_be_unique", column_list=["sex", "bill_length_mm"], ignore_row_if="any_value_is_missing"),
        _e("expect_table_row_count_to_be_between", min_value=300, max_value=400),
        _e("expect_table_row_count_to_be_between", max_value=344, strict_max=True),
        _e("expect_table_row_count_to_equal", value=344),
        _e("expect_column_mean_to_be_between", column="body_mass_g", min_value=4000, max_value=4400),
        _e("expect_column_mean_to_be_between", column="body_mass_g", min_value=4300),
        _e("expect_column_mean_to_be_between", column="bill_depth_mm", max_value=17.2, strict_max=True),
        _e("expect_column_quantile_values_to_be_between", column="body_mass_g", quantile_ranges={"quantiles": [0.25, 0.5, 0.75], "value_ranges": [[3500, 3600], [4000, 4100], [4700, 4800]]}),
        _e("expect_column_quantile_values_to_be_between", column="body_mass_g", quantile_ranges={"quantiles": [0.5], "value_ranges": [[4050, 4050]]}),
        _e("expect_column_quantile_values_to_be_between", column="body_mass_g", quantile_ranges={"quantiles": [0.5], "value_ranges": [[4100, None]]}),
        _e(
            "expect_column_quantile_values_to_be_between",
            column="flipper_length_mm",
            quantile_ranges={"quantiles": [0.1, 0.9], "value_ranges": [[None, 187], [220, None]]},
            allow_relative_error="lower",
        ),
        _e("expect_column_values_to_be_of_type", column="observed_at", type_="Timestamp"),
        _e("expect_column_values_to_be_of_type", column="observed_at", type_="datetime64"),
        _e("expect_column_values_to_be_in_type_list", column="observed_at", type_list=["datetime64[us]", "Timestamp", "date"]),
        _e("expect_column_values_to_be_of_type", column="observed_on", type_="date"),
        _e("expect_column_values_to_be_of_type", column="observed_on", type_="object"),
        _e("expect_column_values_to_be_in_type_list", column="observed_on", type_list=["date"]),
        _e("expect_column_values_to_be_in_type_list", column="observed_on", type_list=["object", "Timestamp"]),
        _e("expect_column_values_to_not_be_null", column="observed_at"),
        _e("expect_column_values_to_not_be_null", column="observed_on", mostly=0.98),
        _e("expect_column_values_to_be_unique", column="observed_at"),
        _e("expect_column_values_to_be_unique", column="observed_on"),
        _e("expect_column_values_to_be_in_set", column="observed_at", value_set=["2007-11-01T00:00:00Z", "2007-11-01T01:00:00.000001+00:00"], mostly=0.001),
        _e("expect_column_values_to_be_in_set", column="observed_on", value_set=["2007-11-01"], mostly=0.001),
        _e("expect_column_values_to_be_between", column="observed_at", min_value=0),
        _e("expect_compound_columns_to_be_unique", column_list=["observed_on", "species"]),
    ],
}


def _broken(frame) -> None:
    frame.loc[0, "species"] = "Dodo"
    frame.loc[1, "body_mass_g"] = -5.0
    frame.loc[2:60, "sex"] = None
    frame.loc[3, "bill_length_mm"] = 75.0
    frame.loc[4, "year"] = 2031
    frame.drop(columns=["island"], inplace=True)
    frame.loc[7, "observed_at"] = frame.loc[8, "observed_at"]
    frame.loc[9, "observed_on"] = None


def test_penguins_suite_same_verdicts_as_gx(gx_batches, penguins, tmp_path):
    verdicts = _compare(gx_batches, penguins, PENGUIN_SUITE)
    assert 10 < sum(verdicts) < len(verdicts) - 10, "both outcomes are compared, many times each"
    broken = _compare(gx_batches, _variant(penguins, tmp_path / "broken.parquet", _broken), PENGUIN_SUITE)
    flipped = [i for i, (a, b) in enumerate(zip(verdicts, broken)) if a and not b]
    assert len(flipped) >= 8, f"the broken variant fails more expectations: {flipped}"
    duplicated = _compare(
        gx_batches, _variant(penguins, tmp_path / "dup.parquet", lambda f: f.loc.__setitem__((slice(5, 9), PENGUIN_COLUMNS[:8]), f.loc[0:4, PENGUIN_COLUMNS[:8]].to_numpy())), PENGUIN_SUITE
    )
    assert duplicated != verdicts


def test_iris_suite_same_verdicts_as_gx(gx_batches, tmp_path):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "target"]
    path = tmp_path / "iris.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    suite = {
        "name": "iris",
        "expectations": [
            _e("expect_column_values_to_be_of_type", column="target", type_="int64"),
            _e("expect_column_values_to_be_in_set", column="target", value_set=[0, 1, 2]),
            _e("expect_column_values_to_be_in_set", column="target", value_set=[0, 1], mostly=0.66),
            _e("expect_column_values_to_be_in_set", column="target", value_set=[0, 1], mostly=0.67),
            _e("expect_column_values_to_be_between", column="sepal_length", min_value=4.3, max_value=7.9),
            _e("expect_column_values_to_be_between", column="sepal_length", min_value=4.3, max_value=7.9, strict_min=True),
            _e("expect_column_values_to_be_between", column="petal_width", min_value=0.2, max_value=2.4, mostly=0.97),
            _e("expect_column_values_to_be_unique", column="sepal_length"),
            _e("expect_compound_columns_to_be_unique", column_list=["sepal_length", "sepal_width", "petal_length", "petal_width"]),
            _e("expect_column_mean_to_be_between", column="petal_length", min_value=3.75, max_value=3.76),
            _e("expect_column_mean_to_be_between", column="target", min_value=1, max_value=1),
            _e("expect_column_quantile_values_to_be_between", column="petal_length", quantile_ranges={"quantiles": [0.0, 0.5, 1.0], "value_ranges": [[1, 1], [4.35, 4.35], [6.9, 6.9]]}),
            _e("expect_column_quantile_values_to_be_between", column="petal_length", quantile_ranges={"quantiles": [0.5], "value_ranges": [[4.35, 4.35]]}, allow_relative_error="higher"),
            _e("expect_table_row_count_to_equal", value=150),
        ],
    }
    verdicts = _compare(gx_batches, path, suite)
    assert 3 < sum(verdicts) < len(verdicts) - 3
    shifted = frame.assign(sepal_length=frame.sepal_length * 1.1, target=np.where(frame.index % 50 == 0, 7, frame.target))
    pq.write_table(pa.Table.from_pandas(shifted, preserve_index=False), tmp_path / "shifted.parquet")
    assert _compare(gx_batches, tmp_path / "shifted.parquet", suite) != verdicts


def test_exported_schema_suite_same_verdicts_as_gx(gx_batches, penguins, tmp_path):
    """Our inferred schema as a suite: GX passes it on the data it came from, and agrees with us on a broken variant."""
    schema = validate(penguins, options=NEVER).schema
    suite = schema_to_suite(schema, name="penguins-schema")
    assert all(_compare(gx_batches, penguins, suite))
    broken = _variant(penguins, tmp_path / "broken.parquet", _broken)
    verdicts = _compare(gx_batches, broken, suite)
    assert not all(verdicts)


def _every_kind_of_column() -> pa.Table:
    """One column per way pandas holds an Arrow column (dtype, and for objects the values' class)."""
    when = [dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 2, 12), dt.datetime(2024, 1, 3, 12)]
    columns: dict[str, pa.Array] = {f"{t}": pa.array([1, 2, 3], pa.type_for_alias(t)) for t in ("int8", "int32", "int64", "uint8", "uint64", "float32", "float64")}
    columns |= {
        "int32_gaps": pa.array([1, None, 3], pa.int32()),
        "int64_gaps": pa.array([1, None, 3], pa.int64()),
        "float64_nan": pa.array([1.0, float("nan"), None]),
        "bool": pa.array([True, False, True]),
        "bool_gaps": pa.array([True, None, False]),
        "string": pa.array(["a", None, "c"]),
        "large_string": pa.array(["a", "b", "c"], pa.large_string()),
        "dictionary": pa.array(["a", "b", "a"]).dictionary_encode(),
        **{f"ts_{unit}": pa.array(when, pa.timestamp(unit)) for unit in ("s", "ms", "us", "ns")},
        "ts_us_utc": pa.array(when, pa.timestamp("us", tz="UTC")),
        "ts_ns_berlin": pa.array(when, pa.timestamp("ns", tz="Europe/Berlin")),
        "date32": pa.array([w.date() for w in when], pa.date32()),
        "date64_gaps": pa.array([when[0].date(), None, when[2].date()], pa.date64()),
        "decimal": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("3")], pa.decimal128(6, 2)),
        "binary": pa.array([b"a", b"b", None]),
        "struct": pa.array([{"a": 1}, {"a": 2}, None]),
        "list": pa.array([[1], [2, 3], None]),
        "time": pa.array([dt.time(1), dt.time(2), None]),
        "duration": pa.array([1, 2, None], pa.duration("us")),
        "all_null": pa.array([None, None, None], pa.null()),
    }
    return pa.table(columns)


# Every name we accept, and the spellings GX lowercases into Python's classes.
TYPE_NAMES = sorted({*NUMPY_NAMES, *PANDAS_NAMES, *PYTHON_NAMES, "INT", "Float", "BOOL", "Str", "LONG", "Bytes", "DICT", "String_Types"})


def test_every_type_name_on_every_kind_of_column_same_verdict_as_gx(gx_batches, tmp_path):
    """The type name model (gx_types) against GX 1.24.1 itself: each name alone, in both expectations, on
    each kind of column (with and without nulls, naive and zoned times, dates, decimals, nested values),
    plus the lists an exported suite writes."""
    table = _every_kind_of_column()
    path = tmp_path / "kinds.parquet"
    pq.write_table(table, path)
    lists = [[*NUMERIC_DTYPES, "Decimal"], ["bool"], ["str"], ["int", "float"], ["object", "str"], ["INT", "date"]]
    expectations = []
    for column in table.column_names:
        for name in TYPE_NAMES:
            expectations.append(_e("expect_column_values_to_be_of_type", column=column, type_=name))
            expectations.append(_e("expect_column_values_to_be_in_type_list", column=column, type_list=[name]))
        expectations += [_e("expect_column_values_to_be_in_type_list", column=column, type_list=names) for names in lists]
    verdicts = _compare(gx_batches, path, {"name": "types", "expectations": expectations}, result_format="BOOLEAN_ONLY")
    assert len(verdicts) > 2500 and 200 < sum(verdicts) < len(verdicts) - 1000, "both outcomes, many times each"


def test_numbers_booleans_and_times_compare_as_in_gx(gx_batches, tmp_path):
    """Bounds are floats there (2**53 + 1 passes a bound of 2**53), true/false are 1/0, value sets match by
    Python equality, dates equal no JSON value, and timestamp columns read ISO 8601 text with or without an offset."""
    noon = dt.datetime(2024, 1, 1, 12)
    table = pa.table(
        {
            "big": pa.array([2**53 + 1, 1], pa.int64()),
            "i32": pa.array([1, 3], pa.int32()),
            "u": pa.array([1, 2**64 - 1], pa.uint64()),
            "b": pa.array([True, False]),
            "bn": pa.array([True, None]),
            "i": pa.array([1, 0]),
            "f": pa.array([1.0, 0.0]),
            "d": pa.array([noon.date(), None], pa.date32()),
            "tn": pa.array([noon, None], pa.timestamp("us")),
            "tz": pa.array([noon, None], pa.timestamp("us", tz="UTC")),
            "tzb": pa.array([noon, None], pa.timestamp("ns", tz="Europe/Berlin")),
        }
    )
    path = tmp_path / "semantics.parquet"
    pq.write_table(table, path)
    between, in_set = "expect_column_values_to_be_between", "expect_column_values_to_be_in_set"
    expectations = [
        _e(between, column="big", max_value=2**53),
        _e(between, column="big", max_value=2**53 - 2),
        _e(between, column="i32", max_value=2.5),
        _e(between, column="u", max_value=2**64 - 2),
        _e(between, column="u", min_value=1.5, max_value=2**64 - 1, strict_max=True),
        *[_e(between, column=c, min_value=low, max_value=1) for c in ("b", "bn") for low in (0, 0.5, 1)],
        *[_e(in_set, column=c, value_set=values) for c in ("b", "bn", "i", "f") for values in ([1, 0], [1], [1.0, 0.0], [True, False], [True], ["True", "False"], [0])],
        _e(in_set, column="d", value_set=["2024-01-01"]),
        _e(in_set, column="d", value_set=[19723]),
        _e(in_set, column="i", value_set=[1.0, 0.0]),
        *[
            _e(in_set, column=c, value_set=[text])
            for c in ("tn", "tz", "tzb")
            for text in ("2024-01-01T12:00:00", "2024-01-01T12:00:00Z", "2024-01-01T13:00:00+01:00", "2024-01-01 12:00:00", "2024-01-01", "x")
        ],
        _e(in_set, column="tn", value_set=[1704110400000000]),
        *[_e("expect_column_quantile_values_to_be_between", column=c, quantile_ranges={"quantiles": [q], "value_ranges": [[0.5, 1]]}) for c in ("b", "bn") for q in (0.0, 0.5, 1.0)],
        *[_e("expect_column_mean_to_be_between", column=c, min_value=0.5, max_value=0.5) for c in ("b", "bn")],
        _e("expect_column_values_to_be_unique", column="bn"),
    ]
    verdicts = _compare(gx_batches, path, {"name": "semantics", "expectations": expectations})
    assert 15 < sum(verdicts) < len(verdicts) - 15


def test_known_differences_with_gx_are_the_documented_ones(gx_batches, tmp_path):
    """Text pandas reads as a time beyond ISO 8601 matches in GX, never here (the README lists this)."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"tn": pa.array([dt.datetime(2024, 1, 1, 12)], pa.timestamp("us"))}), path)
    suite = {"name": "formats", "expectations": [_e("expect_column_values_to_be_in_set", column="tn", value_set=[text]) for text in ("Jan 1 2024 12:00", "20240101T120000")]}
    assert _our_verdicts(path, suite) == [False, False]
    assert _gx_verdicts(gx_batches, path, suite) == [True, True]


def test_exported_schema_of_an_ingested_table_passes_in_gx(gx_batches, tmp_path):
    """A CSV through ingest (integers with gaps, a date column, the zoned ingested_at it adds), its inferred
    schema exported as a suite: GX and validate pass it on that table and agree on a broken one."""
    from palmerpenguins import load_penguins

    from kfp_mlops.components.ingest.core import ingest

    frame = load_penguins()
    frame["flipper_length_mm"] = frame["flipper_length_mm"].astype("Int64")  # whole numbers with gaps, as a CSV has them
    frame["observed_on"] = (np.datetime64("2007-11-01") + np.arange(len(frame))).astype("datetime64[D]").astype(object)
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    result = ingest(str(tmp_path / "penguins.csv"), tmp_path / "ingested.parquet")
    assert result.columns["ingested_at"] == "timestamp[us, tz=UTC]" and result.columns["observed_on"] == "date32[day]"
    assert result.columns["flipper_length_mm"] == "int64", "an integer column with nulls (float64 in pandas)"
    schema = validate(result.path, options=ValidateOptions(key_columns=(result.entity_column,), fail_on_severity="never")).schema
    suite = schema_to_suite(schema, name="ingested")
    typed = {e["kwargs"]["column"]: e["kwargs"].get("type_") for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_of_type"}
    assert typed == {"ingested_at": "Timestamp", "observed_on": "date"}
    assert all(_compare(gx_batches, result.path, suite))
    broken = _variant(result.path, tmp_path / "broken.parquet", lambda f: f.__setitem__("ingested_at", f["ingested_at"].dt.tz_localize(None)) or f.__setitem__("year", f["year"].astype(str)))
    verdicts = _compare(gx_batches, broken, suite)
    assert not all(verdicts)
