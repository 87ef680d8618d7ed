"""Featurize on real data with a real Feast store: point-in-time correctness, splits, online round trip, bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.core import FeaturizeOptions, featurize, offline_latest
from kfp_mlops.components.featurize.repo import open_store
from kfp_mlops.components.featurize.spec import FeatureSpec
from kfp_mlops.components.featurize.training_set import SPLITS
from kfp_mlops.demo import DemoSpec, write_demo_dataset

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
SPEC = FeatureSpec.from_dict(
    {
        "name": "demo",
        "entity": "entity_id",
        "timestamp": "event_timestamp",
        "label": "label",
        "passthrough": ["amount", "country"],
        "aggregates": [
            {"column": "amount", "functions": ["count", "sum", "mean", "max", "last"], "windows": ["1d", "7d"]},
            {"column": "country", "functions": ["last"], "windows": ["7d"]},
        ],
        "ttl": "30d",
    }
)


def _run(tmp_path: Path, dataset: Path, spec: FeatureSpec = SPEC, labels: Path | None = None, **options):
    out = tmp_path / "out"
    paths = {name: out / f"{name}.parquet" for name in SPLITS}
    result = featurize(dataset, spec, repo_dir=out / "repo", split_paths=paths, options=FeaturizeOptions(**options), labels=labels)
    return result, out, paths


def _events(tmp_path: Path, name: str, rows: list[tuple], columns=("entity_id", "event_timestamp", "amount", "country", "label")) -> Path:
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    if "event_timestamp" in columns and pa.types.is_timestamp(table.schema.field("event_timestamp").type):
        table = table.set_column(1, "event_timestamp", table.column(1).cast(pa.timestamp("us", tz="UTC")))
    path = tmp_path / name
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("featurize")
    dataset = write_demo_dataset(tmp / "events.parquet", DemoSpec(rows=20_000, seed=3))
    result, out, paths = _run(tmp, dataset)
    return dataset, result, out, paths


def test_splits_are_disjoint_in_time_and_complete(demo_run):
    dataset, result, out, paths = demo_run
    tables = {name: pq.read_table(paths[name]) for name in SPLITS}
    assert sum(t.num_rows for t in tables.values()) == 20_000
    ts = {name: tables[name].column("event_timestamp").to_pandas() for name in SPLITS}
    b1, b2 = (pd.Timestamp(b) for b in result.boundaries)
    assert ts["train"].max() < b1 <= ts["validation"].min()
    assert ts["validation"].max() < b2 <= ts["test"].min()
    assert abs(tables["train"].num_rows / 20_000 - 0.7) < 0.01
    assert set(SPEC.feature_names()) <= set(tables["train"].schema.names)
    assert (out / "repo" / "feature_store.yaml").exists() and (out / "repo" / "data" / "features.parquet").exists()


def test_joined_values_equal_merge_asof(demo_run, tmp_path):
    """Independent reference: pandas merge_asof(direction='backward', by=entity) on the feature table."""
    dataset, result, out, paths = demo_run
    features = pq.read_table(out / "repo" / "data" / "features.parquet").to_pandas()
    labels = pq.read_table(dataset, columns=["entity_id", "event_timestamp", "label"]).to_pandas()
    expected = pd.merge_asof(labels.sort_values("event_timestamp"), features.sort_values("event_timestamp"), on="event_timestamp", by="entity_id", direction="backward")
    got = pd.concat([pq.read_table(paths[name]).to_pandas() for name in SPLITS])
    key = ["entity_id", "event_timestamp"]
    merged = expected.merge(got, on=key, suffixes=("_want", "_got"), validate="one_to_one")
    assert len(merged) == len(labels)
    for name in SPEC.feature_names():
        want, have = merged[f"{name}_want"], merged[f"{name}_got"]
        assert (want.isna() == have.isna()).all(), name
        if want.dtype == object:
            assert (want[want.notna()] == have[have.notna()]).all(), name
        else:
            np.testing.assert_allclose(want[want.notna()].astype(float), have[have.notna()].astype(float), rtol=1e-12, err_msg=name)


def test_window_aggregates_are_right(tmp_path):
    rows = [
        (1, T0, 10.0, "DE", 0),
        (1, T0 + dt.timedelta(hours=12), 20.0, "FR", 1),
        (1, T0 + dt.timedelta(days=2), 40.0, None, 0),
        (1, T0 + dt.timedelta(days=10), 5.0, "US", 1),
        (2, T0 + dt.timedelta(days=1), 7.0, "GB", 0),
        (2, T0 + dt.timedelta(days=11), 9.0, "GB", 1),
    ]
    result, out, _ = _run(tmp_path, _events(tmp_path, "e.parquet", rows), split_fractions=(0.34, 0.33, 0.33))
    table = pq.read_table(out / "repo" / "data" / "features.parquet").to_pandas().set_index(["entity_id", "event_timestamp"])
    at = lambda e, t: table.loc[(e, pd.Timestamp(t))]  # noqa: E731
    row = at(1, T0 + dt.timedelta(days=2))
    assert row["amount__count_1d"] == 1 and row["amount__sum_7d"] == 70.0 and row["amount__mean_7d"] == pytest.approx(70 / 3)
    assert row["amount__max_7d"] == 40.0 and row["country__last_7d"] == "FR"  # last non-null value
    row = at(1, T0 + dt.timedelta(days=10))
    assert row["amount__count_7d"] == 1 and row["amount__sum_7d"] == 5.0  # older events left the window


def test_leakage_a_feature_one_second_after_the_label_is_never_joined(tmp_path):
    label_time = T0 + dt.timedelta(days=5)
    events = _events(
        tmp_path,
        "events.parquet",
        [(1, T0, 1.0, "DE", 0), (1, label_time + dt.timedelta(seconds=1), 999.0, "XX", 1), (2, T0 + dt.timedelta(days=9), 3.0, "FR", 0)],
    )
    labels = _events(
        tmp_path,
        "labels.parquet",
        [(1, label_time, 1), (1, label_time + dt.timedelta(seconds=1), 0), (2, T0 + dt.timedelta(days=1), 1), (3, T0 + dt.timedelta(days=6), 0)],
        columns=("entity_id", "event_timestamp", "label"),
    )
    result, out, paths = _run(tmp_path, events, labels=labels, split_fractions=(0.5, 0.25, 0.25))
    joined = pd.concat([pq.read_table(paths[n]).to_pandas() for n in SPLITS]).set_index(["entity_id", "event_timestamp"])
    assert len(joined) == 4, "label rows without an earlier feature row are kept"
    assert joined.loc[(1, pd.Timestamp(label_time)), "amount"] == 1.0, "the later 999.0 must not leak in"
    assert joined.loc[(1, pd.Timestamp(label_time + dt.timedelta(seconds=1))), "amount"] == 999.0
    assert pd.isna(joined.loc[(2, pd.Timestamp(T0 + dt.timedelta(days=1))), "amount"]), "entity 2's only event is later"
    assert pd.isna(joined.loc[(3, pd.Timestamp(T0 + dt.timedelta(days=6))), "amount"]), "unknown entity keeps its row"


def test_ttl_expires_old_features(tmp_path):
    spec = FeatureSpec.from_dict({**SPEC.to_dict(), "ttl": "2d", "aggregates": []})
    events = _events(tmp_path, "e.parquet", [(1, T0, 1.0, "DE", 0), (2, T0 + dt.timedelta(days=9), 2.0, "FR", 1)])
    labels = _events(
        tmp_path, "l.parquet", [(1, T0 + dt.timedelta(days=1), 1), (1, T0 + dt.timedelta(days=3), 0), (2, T0 + dt.timedelta(days=10), 1)], columns=("entity_id", "event_timestamp", "label")
    )
    _, _, paths = _run(tmp_path, events, spec=spec, labels=labels, split_fractions=(0.34, 0.33, 0.33))
    joined = pd.concat([pq.read_table(paths[n]).to_pandas() for n in SPLITS]).sort_values("event_timestamp")
    assert joined["amount"].tolist()[:1] == [1.0] and pd.isna(joined["amount"].tolist()[1]) and joined["amount"].tolist()[2] == 2.0


def test_online_equals_offline_latest(demo_run):
    dataset, result, out, paths = demo_run
    assert result.online_checked == 20
    store = open_store(out / "repo")
    entities = [0, 5, 17, 123, 999]
    online = store.get_online_features(features=store.get_feature_service("demo_training"), entity_rows=[{"entity_id": e} for e in entities]).to_dict()
    offline = offline_latest(result.table, SPEC, entities)
    for i, entity in enumerate(entities):
        for name in SPEC.feature_names():
            want, got = offline[entity][name], online[name][i]
            assert (want == pytest.approx(got)) if isinstance(want, float) else want == got, (entity, name)


def test_duplicates_rule(tmp_path):
    rows = [(1, T0, 1.0, "DE", 0), (1, T0, 2.0, "FR", 1), (2, T0 + dt.timedelta(days=8), 3.0, "GB", 0), (3, T0 + dt.timedelta(days=9), 4.0, "US", 1)]
    events = _events(tmp_path, "dup.parquet", rows)
    with pytest.raises(DataError, match="repeat an \\(entity, timestamp\\) pair .* row 1"):
        _run(tmp_path, events)
    assert not (tmp_path / "out" / "repo").exists() and not (tmp_path / "out" / "train.parquet").exists()
    result, out, paths = _run(tmp_path, events, duplicates="last", split_fractions=(0.34, 0.33, 0.33))
    assert result.table.dropped_duplicates == 1
    features = pq.read_table(out / "repo" / "data" / "features.parquet").to_pandas()
    assert features.loc[features.entity_id == 1, "amount"].tolist() == [2.0], "the last row in input order wins"


@pytest.mark.parametrize(
    ("rows", "columns", "message"),
    [
        ([(1, 1.0, 0)], ("entity_id", "amount", "label"), "columns \\['event_timestamp', 'country'\\] are missing"),
        ([(1, "2026-01-01T00:00:00Z", 1.0, "DE", 0), (1, "2026-01-02T00:00:00", 2.0, "DE", 1)], None, "mixes values with and without a time zone \\(row 2"),
        ([(1, "2026-01-01T00:00:00Z", 1.0, "DE", 0), (1, "yesterday", 2.0, "DE", 1)], None, "'yesterday' at row 2"),
        ([(1, T0, 1.0, "DE", 0), (1, T0 + dt.timedelta(days=3), 2.0, "DE", 1)], None, "window 7d of 'amount' is longer than the data's time span \\(3.0 days\\)"),
        ([(None, T0, 1.0, "DE", 0), (1, T0 + dt.timedelta(days=30), 2.0, "DE", 1)], None, "entity column 'entity_id' has 1 nulls"),
        ([(1, None, 1.0, "DE", 0), (1, T0 + dt.timedelta(days=30), 2.0, "DE", 1)], None, "timestamp column 'event_timestamp' has nulls"),
    ],
)
def test_bad_input_fails_cleanly(tmp_path, rows, columns, message):
    events = _events(tmp_path, "bad.parquet", rows, **({"columns": columns} if columns else {}))
    with pytest.raises(DataError, match=message):
        _run(tmp_path, events)
    leftovers = sorted(p.name for p in (tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert leftovers == [], f"partial outputs: {leftovers}"


def test_sum_of_text_column_is_refused(tmp_path):
    spec = FeatureSpec.from_dict({**SPEC.to_dict(), "aggregates": [{"column": "country", "functions": ["sum"], "windows": ["1d"]}]})
    events = _events(tmp_path, "e.parquet", [(1, T0, 1.0, "DE", 0), (1, T0 + dt.timedelta(days=3), 2.0, "DE", 1)])
    with pytest.raises(DataError, match="need a numeric column"):
        _run(tmp_path, events, spec=spec)


def test_cluster_configuration_redis_online_and_postgres_registry(tmp_path, demo_parquet):
    """The Kubeflow setup for real: SQL registry on PostgreSQL, Redis online store."""
    import uuid

    from kfp_mlops.components.featurize.repo import StoreSettings
    from tests.services import port_open, require

    require(port_open(5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    require(port_open(6379), "Redis is not reachable on 127.0.0.1:6379")
    import psycopg
    import redis

    project = f"kfp_mlops_test_{uuid.uuid4().hex[:8]}"
    settings = StoreSettings(registry="postgresql+psycopg://postgres@127.0.0.1:5432/test", online_store="redis://127.0.0.1:6379/3", project=project)
    result, out, paths = _run(tmp_path, demo_parquet, settings=settings)
    assert result.online_checked == 20
    store = open_store(out / "repo")
    try:
        assert [fv.name for fv in store.list_feature_views()] == ["demo_features"]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as conn:
            names = conn.execute("SELECT feature_view_name FROM feature_views WHERE project_id = %s", (project,)).fetchall()
        assert names == [("demo_features",)], "the registry lives in PostgreSQL"
        assert redis.Redis(host="127.0.0.1", port=6379, db=3).dbsize() > 0, "online values live in Redis"
        assert not (out / "repo" / "registry.db").exists() and not (out / "repo" / "online.db").exists()
    finally:
        store.teardown()  # drops the project's online keys and registry entries


def test_separate_labels_equal_merge_asof_including_null_rows(tmp_path):
    """Labels at random times, some before any event of their entity and some of unknown entities."""
    events = write_demo_dataset(tmp_path / "events.parquet", DemoSpec(rows=8_000, seed=21))
    rng = np.random.default_rng(5)
    span = pd.Timedelta(days=90).value // 1000
    labels = pa.table(
        {
            "entity_id": pa.array(rng.integers(0, 500, 3_000)),  # the demo has 400 entities: ids 400-499 are unknown
            "event_timestamp": pa.array(rng.integers(0, span, 3_000) + pd.Timestamp(T0).value // 1000).cast(pa.timestamp("us", tz="UTC")),
            "label": pa.array(rng.integers(0, 2, 3_000)),
        }
    )
    pq.write_table(labels, tmp_path / "labels.parquet")
    _, out, paths = _run(tmp_path, events, labels=tmp_path / "labels.parquet")
    features = pq.read_table(out / "repo" / "data" / "features.parquet").to_pandas()
    expected = pd.merge_asof(
        labels.to_pandas().sort_values("event_timestamp"), features.sort_values("event_timestamp"), on="event_timestamp", by="entity_id", direction="backward", tolerance=pd.Timedelta(days=30)
    )
    got = pd.concat([pq.read_table(paths[n]).to_pandas() for n in SPLITS])
    assert len(got) == 3_000, "no label row is dropped"
    assert expected["amount"].isna().sum() > 100, "the case under test: many label rows have no earlier feature row"
    want = expected.sort_values(["entity_id", "event_timestamp", "label"]).reset_index(drop=True)
    have = got.sort_values(["entity_id", "event_timestamp", "label"]).reset_index(drop=True)
    for name in SPEC.feature_names():
        assert (want[name].isna() == have[name].isna()).all(), name
        mask = want[name].notna()
        if want[name].dtype == object:
            assert (want.loc[mask, name] == have.loc[mask, name]).all(), name
        else:
            np.testing.assert_allclose(want.loc[mask, name].astype(float), have.loc[mask, name].astype(float), rtol=1e-12, err_msg=name)


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []


def _table(n: int = 60, **extra) -> pa.Table:
    """n daily events of 5 entities (entity_id, event_timestamp, amount, label) plus ``extra`` columns."""
    columns = {
        "entity_id": pa.array([i % 5 for i in range(n)], pa.int64()),
        "event_timestamp": pa.array([T0 + dt.timedelta(days=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([float(i) for i in range(n)]),
        "label": pa.array([i % 2 for i in range(n)]),
    }
    columns.update(extra)
    return pa.table(columns)


def _spec(passthrough=("amount",), aggregates=()) -> FeatureSpec:
    return FeatureSpec.from_dict({"entity": "entity_id", "timestamp": "event_timestamp", "label": "label", "passthrough": list(passthrough), "aggregates": list(aggregates)})


N = 60
OUT_OF_RANGE = pa.array([T0 + dt.timedelta(days=i) for i in range(N - 1)] + [dt.datetime(1000, 1, 1, tzinfo=dt.timezone.utc)], pa.timestamp("us", tz="UTC"))


@pytest.mark.parametrize(
    ("table", "spec", "message"),
    [
        (_table(Amount=pa.array([1.0] * N)), _spec(), "columns [['amount', 'Amount']] differ only in letter case"),
        (_table(entity_id=pa.array([i % 5 + 0.5 for i in range(N)])), _spec(), "entity column 'entity_id' is double; Feast entity keys are integers or strings"),
        (_table(entity_id=pa.array([i % 2 == 0 for i in range(N)])), _spec(), "entity column 'entity_id' is bool"),
        (_table().slice(0, 0), _spec(), "the dataset has no rows"),
        (_table(big=pa.array([2**63 + i for i in range(N)], pa.uint64())), _spec(["big"]), "column 'big' holds 60 values above 9,223,372,036,854,775,807 (first at row 1)"),
        (_table(raw=pa.array([b"x"] * N)), _spec(["raw"]), "columns ['raw'] have types Feast does not serve back unchanged (binary)"),
        (_table(day=pa.array([dt.date(2026, 1, 1)] * N)), _spec(["day"]), "columns ['day'] have types Feast does not serve back unchanged (date32[day])"),
        (_table(at=pa.array([dt.time(1)] * N)), _spec(["at"]), "(time64[us])"),
        (_table(tags=pa.array([["a"]] * N)), _spec(["tags"]), "columns ['tags'] hold nested values (list<element: string>)"),
        (_table(tags=pa.array([["a"]] * N)), _spec([], [{"column": "tags", "functions": ["last"], "windows": ["7d"]}]), "columns ['tags'] hold nested values"),
        (_table(event_timestamp=OUT_OF_RANGE), _spec(), "timestamp column 'event_timestamp' holds 1000-01-01T00:00:00+00:00 at row 60, outside the range"),
        (_table(event_timestamp=pa.array([10**13] * N, pa.timestamp("s"))), _spec(), "holds 10000000000000000 ms from 1970-01-01 at row 1"),
        (_table(event_timestamp=pa.array([1.5] * N)), _spec(), "timestamp column 'event_timestamp' is double, not a timestamp"),
    ],
)
def test_inputs_feast_cannot_store_are_refused_before_anything_is_written(tmp_path, table, spec, message):
    pq.write_table(table, tmp_path / "e.parquet")
    registry = tmp_path / "registry.db"
    from kfp_mlops.components.featurize.repo import StoreSettings

    with pytest.raises(DataError) as caught:
        _run(tmp_path, tmp_path / "e.parquet", spec=spec, settings=StoreSettings(registry=f"file://{registry}"))
    assert message in str(caught.value) and "What to do:" in str(caught.value)
    assert not registry.exists() and _leftovers(tmp_path) == []


def test_not_parquet_is_a_data_error(tmp_path):
    (tmp_path / "e.parquet").write_text("entity_id,event_timestamp\n1,2026-01-01\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        _run(tmp_path, tmp_path / "e.parquet", spec=_spec())


def test_nested_columns_the_spec_does_not_use_are_ignored(tmp_path):
    pq.write_table(_table(tags=pa.array([["a"]] * N)), tmp_path / "e.parquet")
    result, _, _ = _run(tmp_path, tmp_path / "e.parquet", spec=_spec(["amount"], [{"column": "tags", "functions": ["count"], "windows": ["7d"]}]), split_fractions=(0.5, 0.25, 0.25))
    assert result.features == ["amount", "tags__count_7d"]


def test_bool_decimal_nan_and_inf_features_round_trip_online(tmp_path):
    """Sum/mean of a bool column and decimal columns compute; NaN and inf are not 'disagreements'."""
    import decimal

    values = [float("nan") if i % 7 == 0 else float("inf") if i % 11 == 0 else float(i) for i in range(N)]
    table = _table(
        flag=pa.array([i % 3 == 0 for i in range(N)]),
        price=pa.array([decimal.Decimal(f"{i}.25") for i in range(N)], pa.decimal128(10, 2)),
        score=pa.array(values),
    )
    pq.write_table(table, tmp_path / "e.parquet")
    aggregates = [{"column": c, "functions": ["sum", "mean", "max", "last"], "windows": ["7d"]} for c in ("flag", "price", "score")]
    result, out, _ = _run(tmp_path, tmp_path / "e.parquet", spec=_spec(["amount", "flag", "price", "score"], aggregates), split_fractions=(0.5, 0.25, 0.25))
    assert result.online_checked == 5
    features = pq.read_table(out / "repo" / "data" / "features.parquet")
    assert features.schema.field("price").type == pa.float64() and features.schema.field("flag__mean_7d").type == pa.float64()


def test_too_few_label_times_fail_before_the_registry_is_written(tmp_path):
    from kfp_mlops.components.featurize.repo import StoreSettings

    events = _events(tmp_path, "e.parquet", [(1, T0, 1.0, "DE", 0), (2, T0 + dt.timedelta(days=9), 2.0, "FR", 1)])
    registry = tmp_path / "registry.db"
    spec = FeatureSpec.from_dict({**SPEC.to_dict(), "aggregates": []})
    with pytest.raises(DataError, match=r"split=time, but the rows have 2 distinct label time\(s\)(.|\n)*--split random"):
        _run(tmp_path, events, spec=spec, settings=StoreSettings(registry=f"file://{registry}"), split="time")
    with pytest.raises(DataError, match=r"2 labelled row\(s\) cannot be split three ways"):  # split=auto falls back to random
        _run(tmp_path, events, spec=spec, settings=StoreSettings(registry=f"file://{registry}"))
    assert not registry.exists()


@pytest.mark.parametrize("fractions", [(float("nan"),) * 3, (0.7, float("nan"), 0.15), (float("inf"), 0.1, 0.1), (0.8, -0.1, 0.3), (0.5, 0.3, 0.1), (0.7, 0.3)])
def test_bad_split_fractions_fail_before_anything_is_read(tmp_path, fractions):
    with pytest.raises(DataError, match="split_fractions"):
        _run(tmp_path, tmp_path / "does-not-exist.parquet", split_fractions=fractions)
    assert _leftovers(tmp_path) == []


def test_date_typed_timestamps_are_event_times(tmp_path):
    table = _table(event_timestamp=pa.array([dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(N)]))
    pq.write_table(table, tmp_path / "e.parquet")
    result, _, _ = _run(tmp_path, tmp_path / "e.parquet", spec=_spec(), split_fractions=(0.5, 0.25, 0.25))
    assert sum(result.rows.values()) == N
