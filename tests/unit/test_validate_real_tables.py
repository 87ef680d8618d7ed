"""Validate on real public tables: label leakage, label and task problems before training, dates.

The tables ship in PyPI packages (scikit-learn, statsmodels, palmerpenguins,
vega_datasets), so the honest cases are data nobody tuned the checks on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError, ValidationFailedError
from kfp_mlops.components._shared.task import infer_task
from kfp_mlops.components.ingest.core import IngestOptions, ingest
from kfp_mlops.components.validate.core import ValidateOptions, validate
from kfp_mlops.components.validate.schema import DatasetSchema

NEVER = dict(fail_on_severity="never")


def _parquet(tmp_path, name: str, frame: pd.DataFrame):
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def _sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(as_frame=True).frame


def _penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


def _fair() -> pd.DataFrame:
    import statsmodels.api as sm

    return sm.datasets.fair.load_pandas().data


def _vega(name: str) -> pd.DataFrame:
    from vega_datasets import local_data

    return getattr(local_data, name.replace("-", "_"))()


def _codes(result, severity: str | None = None) -> list[str]:
    return [a.code for a in result.anomalies if severity is None or a.severity == severity]


def _leaks(result) -> dict[str, str]:
    return {a.column: a.message for a in result.anomalies if a.code == "label_leak"}


HONEST = {
    "breast_cancer": (lambda: _sklearn("breast_cancer"), "target", "binary"),
    "wine": (lambda: _sklearn("wine"), "target", "multiclass"),
    "diabetes": (lambda: _sklearn("diabetes"), "target", "regression"),
    "penguins_species": (_penguins, "species", "multiclass"),
    "penguins_sex": (lambda: _penguins().dropna(subset=["sex"]), "sex", "binary"),
    "penguins_mass": (lambda: _penguins().dropna(subset=["body_mass_g"]), "body_mass_g", "regression"),
    "fair": (_fair, "affairs", "regression"),
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_real_tables_pass_without_leaks(name, tmp_path):
    load, label, task = HONEST[name]
    frame = load()
    result = validate(_parquet(tmp_path, name, frame), options=ValidateOptions(label_column=label))
    assert result.task == task == infer_task(pa.array(frame[label]), "auto")[0], "validate and train decide the task by one rule"
    assert _codes(result, "error") == [] and not _leaks(result)


def test_copied_label_is_a_leak_with_both_ways_out(tmp_path):
    frame = _penguins()
    frame["species_code"] = frame["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    path = _parquet(tmp_path, "copied", frame)
    with pytest.raises(ValidationFailedError) as caught:
        validate(path, options=ValidateOptions(label_column="species"))
    leak = next(a for a in validate(path, options=ValidateOptions(label_column="species", **NEVER)).anomalies if a.code == "label_leak")
    assert leak.severity == "error" and leak.column == "species_code" and "ROC AUC 1.0000" in leak.message
    assert "exclude_columns" in leak.fix and "accept_leaks='species_code'" in leak.fix
    assert "label_leak" in str(caught.value) and "'species_code'" in str(caught.value)
    accepted = validate(path, options=ValidateOptions(label_column="species", accept_leaks=("species_code",)))
    assert "accepted_leak" in _codes(accepted, "info") and not _leaks(accepted)
    assert "--exclude-columns species_code" in leak.fix and "--accept-leaks species_code" in leak.fix
    excluded = validate(path, options=ValidateOptions(label_column="species", exclude_columns=("species_code",)))
    assert not _leaks(excluded), "a column training leaves out cannot leak"


def test_row_number_of_a_file_sorted_by_the_label_is_a_leak_and_a_shuffled_one_is_not(tmp_path):
    # pandas' reset_index() on penguins, which ship sorted by species: the row number
    # alone tells the classes apart, the middle class included.
    frame = _penguins().reset_index()
    leaks = _leaks(validate(_parquet(tmp_path, "sorted", frame), options=ValidateOptions(label_column="species", **NEVER)))
    assert list(leaks) == ["index"]
    shuffled = frame.sample(frac=1.0, random_state=0).drop(columns="index").reset_index(drop=True).reset_index()
    assert not _leaks(validate(_parquet(tmp_path, "shuffled", shuffled), options=ValidateOptions(label_column="species", **NEVER)))


def test_binary_feature_equal_to_the_label_in_995_of_1000_rows(tmp_path):
    frame = _sklearn("breast_cancer")
    flipped = np.random.default_rng(3).choice(len(frame), size=round(0.005 * len(frame)), replace=False)
    frame["review_flag"] = frame["target"]
    frame.loc[flipped, "review_flag"] = 1 - frame.loc[flipped, "target"]
    assert (frame["review_flag"] == frame["target"]).mean() == pytest.approx(0.995, abs=0.001)
    result = validate(_parquet(tmp_path, "bc", frame), options=ValidateOptions(label_column="target", **NEVER))
    assert list(_leaks(result)) == ["review_flag"], "the honest features (AUC up to about 0.97) are not flagged"


def test_regression_label_plus_small_noise(tmp_path):
    frame = _sklearn("diabetes")
    frame["progression_estimate"] = frame["target"] + np.random.default_rng(4).normal(0, 0.05 * frame["target"].std(), len(frame))
    result = validate(_parquet(tmp_path, "diabetes", frame), options=ValidateOptions(label_column="target", **NEVER))
    assert list(_leaks(result)) == ["progression_estimate"] and "Pearson correlation +0.99" in _leaks(result)["progression_estimate"]


def test_same_day_return_behind_an_up_down_label(tmp_path):
    stocks = _vega("stocks").sort_values(["symbol", "date"])
    stocks["return"] = stocks.groupby("symbol")["price"].pct_change()
    stocks = stocks.dropna(subset=["return"])
    stocks["up"] = (stocks["return"] > 0).astype("int64")
    result = validate(_parquet(tmp_path, "stocks", stocks), options=ValidateOptions(label_column="up", key_columns=("symbol", "date"), **NEVER))
    assert list(_leaks(result)) == ["return"], "symbol and price do not give the label away"


def test_columns_summing_to_the_label(tmp_path):
    """us-employment: nonfarm = goods_producing + service_providing, as bike rentals' cnt = casual + registered."""
    frame = _vega("us-employment")[["month", "goods_producing", "service_providing", "government", "information", "utilities", "leisure_and_hospitality", "nonfarm"]]
    path = _parquet(tmp_path, "employment", frame)
    result = validate(path, options=ValidateOptions(label_column="nonfarm", key_columns=("month",), **NEVER))
    leaks = _leaks(result)
    assert list(leaks) == ["service_providing,goods_producing"] or list(leaks) == ["goods_producing,service_providing"]
    assert "'nonfarm' ≈" in next(iter(leaks.values())) and "R² 1.00000" in next(iter(leaks.values()))
    accepted = validate(path, options=ValidateOptions(label_column="nonfarm", key_columns=("month",), accept_leaks=("goods_producing", "service_providing")))
    assert _codes(accepted, "error") == []
    honest = validate(_parquet(tmp_path, "honest", frame.drop(columns=["service_providing"])), options=ValidateOptions(label_column="nonfarm", key_columns=("month",), **NEVER))
    assert not _leaks(honest)


def test_leak_check_samples_a_large_table(tmp_path):
    """Past the sample size the check works on a uniform sample of about 20,000 rows, not on every row."""
    rng = np.random.default_rng(7)
    rows = 300_000
    x = rng.normal(size=rows)
    label = (x + rng.normal(scale=1.0, size=rows) > 0).astype(np.int64)
    copy = np.where(rng.random(rows) < 0.003, 1 - label, label)
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": x, "copy": copy, "label": label}), path, row_group_size=50_000)
    result = validate(path, options=ValidateOptions(label_column="label", **NEVER))
    assert list(_leaks(result)) == ["copy"]
    sampled = int(_leaks(result)["copy"].split(" on ")[-1].split(" sampled")[0].replace(",", ""))
    assert 18_000 < sampled < 22_000


def test_all_missing_columns_in_one_error(tmp_path):
    path = _parquet(tmp_path, "penguins", _penguins())
    with pytest.raises(ValidationFailedError) as caught:
        validate(path, options=ValidateOptions(label_column="Species", key_columns=("penguin_id", "observed_at")))
    message = str(caught.value)
    assert message.count("missing_label") == 1 and "1 anomaly at or above" in message
    assert "label column not found: 'Species'" in message and "['penguin_id', 'observed_at']" in message and "'species'" in message


@pytest.mark.parametrize(
    "edit,task,code,fix",
    [
        (lambda f: f.assign(species=None), "auto", "no_labels", "label column name"),
        (lambda f: f.assign(species="Adelie"), "auto", "single_class", "at least two classes"),
        (lambda f: f.assign(bill_length_mm=40.0), "regression", "constant_label", "check the label"),
        (lambda f: f, "regression", "label_not_numeric", "column_types"),
        (lambda f: f, "binary", "task_mismatch", "--task multiclass"),
        (lambda f: f[(f.species != "Chinstrap") | (f.index % 40 == 0)], "auto", "too_few_rows_in_class", "collect more rows"),
    ],
    ids=["all_null", "constant_class", "constant_number", "text_for_regression", "task_mismatch", "rare_class"],
)
def test_label_problems_found_before_training(edit, task, code, fix, tmp_path):
    frame = edit(_penguins())
    label = "bill_length_mm" if code == "constant_label" else "species"
    with pytest.raises(ValidationFailedError) as caught:
        validate(_parquet(tmp_path, code, frame), options=ValidateOptions(label_column=label, task=task))
    found = [a for a in validate(_parquet(tmp_path, code, frame), options=ValidateOptions(label_column=label, task=task, **NEVER)).anomalies if a.code == code]
    assert len(found) == 1 and found[0].severity == "error" and fix in found[0].fix
    assert code in str(caught.value)


def test_integer_count_label_is_regression_or_too_many_classes(tmp_path):
    """us-employment's nonfarm payroll count: auto picks regression; a classifier is refused in validate, not in train."""
    path = _parquet(tmp_path, "counts", _vega("us-employment")[["month", "construction", "information", "nonfarm"]])
    assert validate(path, options=ValidateOptions(label_column="nonfarm", key_columns=("month",))).task == "regression"
    with pytest.raises(ValidationFailedError, match="too_many_classes") as caught:
        validate(path, options=ValidateOptions(label_column="nonfarm", task="multiclass"))
    assert "task=regression" in str(caught.value) and "--task regression" in str(caught.value)
    text = _penguins().assign(island=lambda f: f.index.astype(str))
    with pytest.raises(ValidationFailedError, match="too many classes for a classifier"):
        validate(_parquet(tmp_path, "text", text), options=ValidateOptions(label_column="island"))


def test_unknown_task_refused_before_reading():
    with pytest.raises(DataError, match="unknown task 'classification'"):
        ValidateOptions(task="classification")
    assert ValidateOptions(task=" Regression ").task == "regression"


def test_date_only_column_from_csv(tmp_path):
    """seattle-weather's YYYY-MM-DD dates ingest as date32: statistics, schema, leakage and skew all handle them."""
    weather = _vega("seattle-weather")
    (tmp_path / "w.csv").write_text(weather.assign(date=weather["date"].dt.strftime("%Y-%m-%d")).to_csv(index=False))
    ingested = ingest(str(tmp_path / "w.csv"), tmp_path / "w.parquet")
    assert pq.read_schema(ingested.path).field("date").type == pa.date32()
    result = validate(ingested.path, options=ValidateOptions(label_column="weather", key_columns=("row_id",)))
    date = result.stats.column("date")
    assert (date.kind, date.min, date.max, date.nulls) == ("timestamp", "2012-01-01", "2015-12-31", 0)
    assert result.task == "multiclass" and _codes(result, "error") == []
    later = weather[weather["date"].dt.year == 2015].assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%d"))
    (tmp_path / "later.csv").write_text(later.to_csv(index=False))
    checked = validate(ingest(str(tmp_path / "later.csv"), tmp_path / "later.parquet").path, options=ValidateOptions(label_column="weather", **NEVER), reference_schema=result.schema)
    assert not [a for a in checked.anomalies if a.column in ("date", "row_id")], "later dates and new row ids are no skew"


@pytest.mark.parametrize(
    "column",
    [
        pa.array(pd.date_range("2020-01-01", periods=600, freq="D").date, type=pa.date32()),
        pa.array(pd.date_range("2020-01-01", periods=600, freq="D").date, type=pa.date64()),
        pa.array(pd.date_range("2020-01-01", periods=600, freq="h")).cast(pa.timestamp("ns")),
        pa.array(pd.date_range("2020-01-01", periods=600, freq="h", tz="Europe/Berlin")),
        pa.array([(i % 86_400) * 1_000_000 for i in range(600)], type=pa.time64("us")),
        pa.array([i % 86_400 for i in range(600)], type=pa.time32("s")),
        pa.array(list(range(600)), type=pa.duration("s")),
    ],
    ids=["date32", "date64", "timestamp_ns", "timestamp_tz", "time64", "time32", "duration"],
)
@pytest.mark.parametrize("role", ["feature", "key", "label"])
def test_every_temporal_type_in_every_role(column, role, tmp_path):
    nulled = pa.array(column.to_pylist()[:-1] + [None], type=column.type) if role == "feature" else column
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"when": nulled, "x": np.arange(600, dtype=float), "y": np.arange(600) % 2}), path)
    label = "when" if role == "label" else "y"
    options = ValidateOptions(label_column=label, key_columns=("when",) if role == "key" else (), **NEVER)
    result = validate(path, options=options)
    when = result.stats.column("when")
    assert when.count == 600 and when.nulls == (1 if role == "feature" else 0)
    if role == "label":
        assert {a.code for a in result.anomalies} >= {"too_many_classes"}
    else:
        assert _codes(result, "error") == [] and result.task == "binary"
    again = validate(path, options=options, reference_schema=DatasetSchema.from_dict(result.schema.to_dict()))
    assert not [a for a in again.anomalies if a.column == "when" and a.code in ("out_of_range", "distribution_skew", "type_mismatch")]


# Skew against a reference schema: distributions, not only ranges.


def _split_fair(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    fair = _fair().sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = len(fair) // 2
    return fair.iloc[:half], fair.iloc[half:]


def _skews(result) -> dict[str, str]:
    return {a.column: a.message for a in result.anomalies if a.code == "distribution_skew"}


def test_mean_shift_within_the_range_is_skew_a_resample_is_not(tmp_path):
    training, later = _split_fair()
    reference = validate(_parquet(tmp_path, "training", training), options=ValidateOptions(label_column="affairs")).schema
    assert reference.version == 2 and reference.column("yrs_married").histogram is not None
    same = validate(_parquet(tmp_path, "same", later), options=ValidateOptions(label_column="affairs", **NEVER), reference_schema=reference)
    assert _skews(same) == {}
    married_long = later[later["yrs_married"] >= 13]  # a population change: mean from about 9 to about 18 years
    column = reference.column("yrs_married")
    assert column.min <= married_long["yrs_married"].min() and married_long["yrs_married"].max() <= column.max
    shifted = validate(_parquet(tmp_path, "shifted", married_long), options=ValidateOptions(label_column="affairs", **NEVER), reference_schema=reference)
    assert "yrs_married" in _skews(shifted) and "L-infinity distance" in _skews(shifted)["yrs_married"]
    assert not [a for a in shifted.anomalies if a.code == "out_of_range"], "a range check alone misses this"
    assert {a.severity for a in shifted.anomalies if a.code == "distribution_skew"} == {"warning"}


def test_category_shares_compared_by_jensen_shannon(tmp_path):
    penguins = _penguins()
    reference = validate(_parquet(tmp_path, "penguins", penguins), options=ValidateOptions(label_column="species")).schema
    resampled = penguins.sample(n=3_000, replace=True, random_state=1)
    same = validate(_parquet(tmp_path, "same", resampled), options=ValidateOptions(label_column="species", **NEVER), reference_schema=reference)
    assert _skews(same) == {}
    no_dream = penguins[penguins["island"] != "Dream"].sample(n=3_000, replace=True, random_state=1)  # one site's feed stopped
    shifted = validate(_parquet(tmp_path, "shifted", no_dream), options=ValidateOptions(label_column="species", **NEVER), reference_schema=reference)
    skews = _skews(shifted)
    assert "island" in skews and "Jensen-Shannon divergence" in skews["island"] and "'Dream' went from 36.0% to 0.0%" in skews["island"]
    assert not [a for a in shifted.anomalies if a.code in ("new_category", "out_of_range") and a.column == "island"], "no range or domain check sees it"


def test_generated_row_id_and_event_time_are_not_skew(tmp_path):
    stocks = _vega("stocks").assign(date=lambda f: f["date"].dt.strftime("%Y-%m-%dT00:00:00Z"))
    (tmp_path / "train.csv").write_text(stocks[stocks["date"] < "2006"].to_csv(index=False))
    (tmp_path / "serve.csv").write_text(stocks[stocks["date"] >= "2006"].to_csv(index=False))
    options = IngestOptions(timestamp_column="date")
    train = ingest(str(tmp_path / "train.csv"), tmp_path / "train.parquet", options=options)
    serve = ingest(str(tmp_path / "serve.csv"), tmp_path / "serve.parquet", options=options)
    assert train.entity_column == serve.entity_column == "row_id"
    reference = validate(train.path, options=ValidateOptions(key_columns=("row_id", "date"))).schema
    assert reference.column("row_id").min is None and reference.column("row_id").histogram is None
    for keys in ((), ("row_id", "date")):
        checked = validate(serve.path, options=ValidateOptions(key_columns=keys, **NEVER), reference_schema=reference)
        assert not [a for a in checked.anomalies if a.column in ("row_id", "date")]
        assert "price" in _skews(checked), "prices from 2006 on differ from before: the real skew is still found"


def test_schema_without_histograms_falls_back_to_ranges(tmp_path):
    training, later = _split_fair()
    data = validate(_parquet(tmp_path, "training", training), options=ValidateOptions(label_column="affairs")).schema.to_dict()
    data["version"] = 1
    for column in data["columns"]:
        del column["histogram"], column["skew_threshold"]
    old = DatasetSchema.from_dict(data)
    assert old.version == 1 and all(c.histogram is None for c in old.columns)
    shifted = later[later["yrs_married"] >= 13].assign(age=lambda f: f["age"] * 3)
    result = validate(_parquet(tmp_path, "shifted", shifted), options=ValidateOptions(label_column="affairs", **NEVER), reference_schema=old)
    assert _skews(result) == {} and "out_of_range" in {a.code for a in result.anomalies if a.column == "age"}


def test_skew_thresholds_per_column_and_per_run(tmp_path):
    training, later = _split_fair()
    schema = validate(_parquet(tmp_path, "training", training), options=ValidateOptions(label_column="affairs")).schema
    path = _parquet(tmp_path, "shifted", later[later["yrs_married"] >= 13])
    flagged = set(_skews(validate(path, options=ValidateOptions(label_column="affairs", **NEVER), reference_schema=schema)))
    assert {"yrs_married", "age"} <= flagged
    schema.column("yrs_married").skew_threshold = 1.0
    relaxed = DatasetSchema.from_dict(schema.to_dict())
    assert set(_skews(validate(path, options=ValidateOptions(label_column="affairs", **NEVER), reference_schema=relaxed))) == flagged - {"yrs_married"}
    assert _skews(validate(path, options=ValidateOptions(label_column="affairs", skew_threshold=1.0, **NEVER), reference_schema=relaxed)) == {}
    with pytest.raises(DataError, match="skew_threshold"):
        ValidateOptions(skew_threshold=0)


@pytest.mark.parametrize(
    "histogram,fragment",
    [
        ({"edges": [2.0, 1.0], "shares": [0.3, 0.3, 0.4]}, "'edges' must increase"),
        ({"edges": [1.0], "shares": [1.0]}, "needs 2 shares for 1 edges"),
        ({"values": ["a", 1], "shares": [0.5, 0.5]}, "'values' must be a list of strings"),
        ({"shares": [1.0]}, "one of 'edges' or 'values'"),
    ],
)
def test_hand_edited_histogram_refused(histogram, fragment):
    from kfp_mlops.components._shared.errors import SchemaError

    data = {"version": 2, "columns": [{"name": "age", "type": "int64", "kind": "integer", "histogram": histogram}]}
    with pytest.raises(SchemaError, match=fragment):
        DatasetSchema.from_dict(data)
