"""The same suites through Great Expectations itself (pandas data source, ephemeral context) and through
validate: the same pass/fail per expectation, on real public tables (Palmer penguins, scikit-learn's iris)
and on crafted failing variants of them, for hand-written suites and for our schema exported as a suite."""

from __future__ import annotations

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


def _gx_verdicts(gx_batches, path: Path, suite: dict[str, Any]) -> list[bool]:
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
        for result in whole.get_batch(batch_parameters={"dataframe": frame}).validate(added).results:
            verdicts[result.expectation_config.meta["kfp_position"]] = bool(result.success)
    assert sorted(verdicts) == list(range(len(suite["expectations"])))
    return [verdicts[i] for i in range(len(suite["expectations"]))]


def _our_verdicts(path: Path, suite: dict[str, Any]) -> list[bool]:
    return [o.success for o in validate(path, options=NEVER, expectation_suite=parse_suite(suite)).expectations]


def _compare(gx_batches, path: Path, suite: dict[str, Any]) -> list[bool]:
    ours, theirs = _our_verdicts(path, suite), _gx_verdicts(gx_batches, path, suite)
    differ = [f"#{i + 1} {e['type']} {e['kwargs']}: ours {a}, GX {b}" for i, (e, a, b) in enumerate(zip(suite["expectations"], ours, theirs)) if a != b]
    assert not differ, "\n".join(differ)
    return ours


def _e(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


@pytest.fixture(scope="module")
def penguins(tmp_path_factory) -> Path:
    from palmerpenguins import load_penguins

    path = tmp_path_factory.mktemp("penguins") / "penguins.parquet"
    pq.write_table(pa.Table.from_pandas(load_penguins(), preserve_index=False), path)
    return path


def _variant(source: Path, out: Path, edit) -> Path:
    frame = pq.read_table(source).to_pandas()
    edit(frame)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
    return out


PENGUIN_COLUMNS = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
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
    ],
}


def _broken(frame) -> None:
    frame.loc[0, "species"] = "Dodo"
    frame.loc[1, "body_mass_g"] = -5.0
    frame.loc[2:60, "sex"] = None
    frame.loc[3, "bill_length_mm"] = 75.0
    frame.loc[4, "year"] = 2031
    frame.drop(columns=["island"], inplace=True)


def test_penguins_suite_same_verdicts_as_gx(gx_batches, penguins, tmp_path):
    verdicts = _compare(gx_batches, penguins, PENGUIN_SUITE)
    assert 10 < sum(verdicts) < len(verdicts) - 10, "both outcomes are compared, many times each"
    broken = _compare(gx_batches, _variant(penguins, tmp_path / "broken.parquet", _broken), PENGUIN_SUITE)
    flipped = [i for i, (a, b) in enumerate(zip(verdicts, broken)) if a and not b]
    assert len(flipped) >= 8, f"the broken variant fails more expectations: {flipped}"
    duplicated = _compare(gx_batches, _variant(penguins, tmp_path / "dup.parquet", lambda f: f.loc.__setitem__((slice(5, 9), PENGUIN_COLUMNS), f.loc[0:4, PENGUIN_COLUMNS].to_numpy())), PENGUIN_SUITE)
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
