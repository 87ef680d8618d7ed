"""Plain tables (no id, no time column) and temporal columns: key choice, split strategy, pass-through spec, date/year parsing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.compute import one_row_per_entity
from kfp_mlops.components.featurize.core import FeaturizeOptions, featurize
from kfp_mlops.components.featurize.spec import default_spec
from kfp_mlops.components.featurize.splitting import choose_split, split_at_random, stratifies
from kfp_mlops.components.featurize.training_set import SPLITS, split_by_time
from kfp_mlops.components.ingest.core import IngestOptions, ingest
from kfp_mlops.components.ingest.formats import CsvOptions

FRACTIONS = (0.7, 0.15, 0.15)


def _penguins() -> pa.Table:
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna()
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def _weather() -> pa.Table:
    from vega_datasets import local_data

    return pa.Table.from_pandas(local_data.seattle_weather(), preserve_index=False)


@pytest.mark.parametrize("load, label", [(_penguins, "species"), (_weather, "weather"), (_penguins, "island")])
def test_random_split_is_stratified_within_one_row(load, label):
    table = load()
    split = split_at_random(table, label, FRACTIONS, seed=0, stratify=True)
    assert sum(t.num_rows for t in split.tables.values()) == table.num_rows
    whole = _shares(table.column(label))
    for name in SPLITS:
        part = split.tables[name]
        assert abs(part.num_rows - FRACTIONS[SPLITS.index(name)] * table.num_rows) <= 1
        shares = _shares(part.column(label))
        for cls, share in whole.items():
            assert abs(shares.get(cls, 0.0) - share) <= 1 / part.num_rows + 1e-12, (name, cls, shares.get(cls), share)
    assert (split.strategy, split.seed, split.stratified_by) == ("random", 0, label)


def test_unstratified_shares_drift_more_than_one_row():
    # The check above can fail: plain shuffling misses the class shares by more than one row.
    table = _weather()
    misses = 0
    for seed in range(5):
        split = split_at_random(table, "weather", FRACTIONS, seed=seed, stratify=False)
        part, whole = split.tables["test"], _shares(table.column("weather"))
        shares = _shares(part.column("weather"))
        misses += any(abs(shares.get(c, 0.0) - s) > 1 / part.num_rows for c, s in whole.items())
    assert misses >= 3


def test_random_split_is_seeded():
    table = _penguins().append_column("row", pa.array(np.arange(333)))
    rows = lambda seed: {name: t.column("row").to_pylist() for name, t in split_at_random(table, "species", FRACTIONS, seed=seed, stratify=True).tables.items()}  # noqa: E731
    assert rows(7) == rows(7)
    assert rows(7)["test"] != rows(8)["test"]
    every = sorted(r for part in rows(8).values() for r in part)
    assert every == list(range(333)), "each row in exactly one split"


def test_stratification_follows_the_task():
    many = pa.array(np.arange(200) % 120)  # a count label: regression under auto, as train infers it
    assert not stratifies(many, "auto") and stratifies(many, "multiclass")
    assert stratifies(pa.array(["a", "b"] * 50), "auto") and stratifies(pa.array([0, 1] * 50), "auto")
    assert not stratifies(pa.array([0, 1] * 50), "regression")


def test_split_choice_and_time_split_unchanged():
    times = pa.array([dt.datetime(2026, 1, 1) + dt.timedelta(days=i) for i in range(20)], type=pa.timestamp("us", tz="UTC"))
    assert choose_split("auto", times, time_generated=False, where="d")[0] == "time"
    assert choose_split("auto", times, time_generated=True, where="d")[0] == "random"
    assert choose_split("random", times, time_generated=False, where="d")[0] == "random"
    with pytest.raises(DataError, match=r"split=time, but the rows have no event time(.|\n)*split=random \(kfp-mlops run training --split random\)"):
        choose_split("time", times, time_generated=True, where="d")
    table = pa.table({"t": times, "y": pa.array(range(20))})
    split = split_by_time(table, "t", FRACTIONS)
    assert [split.tables[n].num_rows for n in SPLITS] == [14, 3, 3]
    assert split.boundaries == ("2026-01-15T00:00:00+00:00", "2026-01-18T00:00:00+00:00") and split.strategy == "time"
    assert max(split.tables["train"].column("t").to_pylist()) < min(split.tables["validation"].column("t").to_pylist())


def test_one_row_per_entity_spec_passes_columns_through(tmp_path):
    columns = {"row_id": "int64", "ingested_at": "timestamp[us, tz=UTC]", "a": "double", "b": "int64", "c": "string", "y": "int64"}
    span = dt.timedelta(days=400)
    plain = default_spec(columns, entity="row_id", timestamp="ingested_at", label="y", span=span, one_row_per_entity=True)
    assert plain.feature_names() == ["a", "b", "c"] and plain.aggregates == ()
    events = default_spec(columns, entity="row_id", timestamp="ingested_at", label="y", span=span)
    assert any("__mean_" in n for n in events.feature_names()), "event data keeps its window aggregates"
    pq.write_table(pa.table({"k": [1, 2, 3], "v": [1, 2, 3]}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"k": [1, 1, 3], "v": [1, 2, 3]}), tmp_path / "two.parquet")
    assert one_row_per_entity(tmp_path / "one.parquet", "k") and not one_row_per_entity(tmp_path / "two.parquet", "k")


def _csv(tmp_path: Path, text: str) -> str:
    (tmp_path / "t.csv").write_text(text)
    return str(tmp_path / "t.csv")


def test_plain_table_keys_are_generated_and_said(tmp_path):
    source = _csv(tmp_path, "a,b,y\n1,2.5,0\n3,4.5,1\n5,6.5,0\n")
    result = ingest(source, tmp_path / "o.parquet", options=IngestOptions(entity_column="auto", timestamp_column="auto"))
    assert (result.entity_column, result.timestamp_column) == ("row_id", "ingested_at")
    meta = result.metadata()
    assert meta["entity_generated"] and meta["timestamp_generated"]
    assert any("no 'event_timestamp' column" in note and "at random" in note for note in meta["notes"])
    assert "the data has no 'entity\\_id' column" in result.summary_markdown(), "the choice is shown in the dashboard too"
    found = ingest(_csv(tmp_path, "entity_id,event_timestamp,y\n1,2026-01-01T00:00:00Z,0\n"), tmp_path / "f.parquet", options=IngestOptions(entity_column="auto", timestamp_column="auto"))
    assert (found.entity_column, found.timestamp_column, found.entity_generated, found.timestamp_generated) == ("entity_id", "event_timestamp", False, False)


def test_missing_named_columns_are_named_at_once(tmp_path):
    source = _csv(tmp_path, "a,y\n1,0\n")
    with pytest.raises(DataError, match=r"entity column 'id' and timestamp column 'when' not found(.|\n)*--entity-column / --timestamp-column"):
        ingest(source, tmp_path / "o.parquet", options=IngestOptions(entity_column="id", timestamp_column="when"))
    assert not (tmp_path / "o.parquet").exists()


def test_dates_and_years_become_utc_event_times(tmp_path):
    dates = ingest(_csv(tmp_path, "day,y\n2026-01-02,0\n2026-01-03,1\n"), tmp_path / "d.parquet", options=IngestOptions(timestamp_column="day"))
    assert dates.columns["day"] == "timestamp[us, tz=UTC]"
    assert pq.read_table(tmp_path / "d.parquet").column("day")[0].as_py() == dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    years = ingest(_csv(tmp_path, "Year,y\n1990,0\n2020,1\n,1\n"), tmp_path / "y.parquet", options=IngestOptions(timestamp_column="Year"))
    assert pq.read_table(tmp_path / "y.parquet").column("Year").to_pylist()[:2] == [dt.datetime(y, 1, 1, tzinfo=dt.timezone.utc) for y in (1990, 2020)]
    assert any("1 January" in note for note in years.notes)
    with pytest.raises(DataError, match=r"1700000000 at row 2 is not a year(.|\n)*--timestamp-column"):
        ingest(_csv(tmp_path, "ts,y\n1990,0\n1700000000,1\n"), tmp_path / "n.parquet", options=IngestOptions(timestamp_column="ts"))


@pytest.mark.parametrize("kind", ["timestamp", "date"])
def test_column_types_date_and_timestamp_name_the_bad_row(tmp_path, kind):
    good = ingest(_csv(tmp_path, "Year,when,y\n1990,2026-01-31,0\n1991,2026-02-01,1\n"), tmp_path / "g.parquet", options=IngestOptions(csv=CsvOptions(column_types={"Year": kind, "when": kind})))
    assert good.columns["Year"] == ("timestamp[us, tz=UTC]" if kind == "timestamp" else "date32[day]")
    assert pq.read_table(tmp_path / "g.parquet").column("Year")[0].as_py().year == 1990
    source = _csv(tmp_path, "Year,y\n1990,0\n1991,1\nabout 1992,0\n")
    with pytest.raises(DataError, match=rf"line 4: column 'Year' holds 'about 1992' at row 3, which is not a {kind}(.|\n)*column_types {{\"Year\": \"string\"}} \(--column-types\)"):
        ingest(source, tmp_path / "o.parquet", options=IngestOptions(csv=CsvOptions(column_types={"Year": kind})))
    assert not (tmp_path / "o.parquet").exists()


def test_zoned_timestamps_become_utc(tmp_path):
    ingest(_csv(tmp_path, "at,y\n2026-01-31T12:00:00+02:00,0\n2026-01-31T12:00:00,1\n"), tmp_path / "z.parquet", options=IngestOptions(csv=CsvOptions(column_types={"at": "timestamp"})))
    hours = [v.hour for v in pq.read_table(tmp_path / "z.parquet").column("at").to_pylist()]
    assert hours == [10, 12], "an offset is converted to UTC; no offset is taken as UTC"


def test_plain_table_featurizes_at_random_without_materializing(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "bc.csv")
    ingested = ingest(str(tmp_path / "bc.csv"), tmp_path / "bc.parquet", options=IngestOptions(entity_column="auto", timestamp_column="auto"))
    columns = ingested.columns
    spec = default_spec(columns, entity="row_id", timestamp="ingested_at", label="target", span=dt.timedelta(0), one_row_per_entity=True)
    paths = {name: tmp_path / f"{name}.parquet" for name in SPLITS}
    options = FeaturizeOptions(time_generated=True, entity_generated=True, split_seed=3)
    result = featurize(tmp_path / "bc.parquet", spec, repo_dir=tmp_path / "repo", split_paths=paths, options=options)
    assert result.split_metadata()["split_strategy"] == "random" and result.split_seed == 3 and result.stratified_by == "target"
    assert len(result.features) == 30 and not any("__" in f for f in result.features)
    assert result.online_checked == 0 and "not materialized" in result.online_note
    online = tmp_path / "repo" / "online.db"
    assert not online.exists() or online.stat().st_size < 100_000, "no feature values in the online store"
    assert sum(pq.read_metadata(p).num_rows for p in paths.values()) == 569
    assert "at random, seed 3" in result.summary_markdown()


def _shares(column) -> dict[str, float]:
    values = [str(v) for v in column.to_pylist()]
    return {v: values.count(v) / len(values) for v in set(values)}


def test_a_test_split_without_two_rows_of_each_class_is_refused_before_training(tmp_path):
    """Breast cancer with a 1% test share: 5 rows, too few of one class for register's ROC AUC interval; featurize says so and writes no split."""
    from sklearn.datasets import load_breast_cancer

    from kfp_mlops.components._shared.errors import DataError
    from kfp_mlops.components.featurize.splitting import check_binary_test_split

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "bc.csv")
    ingested = ingest(str(tmp_path / "bc.csv"), tmp_path / "bc.parquet", options=IngestOptions(entity_column="auto", timestamp_column="auto"))
    spec = default_spec(ingested.columns, entity="row_id", timestamp="ingested_at", label="target", span=dt.timedelta(0), one_row_per_entity=True)
    paths = {name: tmp_path / f"{name}.parquet" for name in SPLITS}
    options = FeaturizeOptions(time_generated=True, entity_generated=True, split_seed=3, split_fractions=(0.895, 0.1, 0.005), task="binary")
    with pytest.raises(DataError) as raised:
        featurize(tmp_path / "bc.parquet", spec, repo_dir=tmp_path / "repo", split_paths=paths, options=options)
    assert "the test split has" in str(raised.value) and "split_fractions" in str(raised.value), str(raised.value)
    assert not any(p.exists() for p in paths.values()), "no split written"

    two_each = pa.table({"y": [0, 1, 0, 1]})
    check_binary_test_split(two_each, "y", "binary", where="t")
    check_binary_test_split(pa.table({"y": [0, 0, 0]}), "y", "multiclass", where="t")  # only binary needs both classes
    with pytest.raises(DataError, match="'0': 3"):
        check_binary_test_split(pa.table({"y": [0, 0, 0]}), "y", "binary", where="t")
