"""Featurize under hostile or tired input, through the component body: passwords stay out of the
repo, the metadata and every log line; each bad input is a named error with the right exit code
(2 data, 3 infrastructure), no traceback and no output left behind."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp.dsl import Artifact, Dataset, Markdown, Metrics

from kfp_mlops.components._shared.errors import FeatureStoreError
from kfp_mlops.components.featurize.component import featurize as featurize_component
from kfp_mlops.components.featurize.repo import open_store
from tests.services import free_port, port_open, require, start_process

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# Unique per run: any hit in a scan can only be a leak.
PASSWORD = f"kfp-Secret_{uuid.uuid4().hex}"
DEFAULTS = {"entity_column": "entity_id", "timestamp_column": "event_timestamp", "label_column": "label"}


def events(path: Path, n: int = 60, **extra: pa.Array) -> Path:
    """n daily events of 5 entities: entity_id, event_timestamp, amount, label, plus ``extra`` columns."""
    columns = {
        "entity_id": pa.array([i % 5 for i in range(n)], pa.int64()),
        "event_timestamp": pa.array([T0 + dt.timedelta(days=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([float(i) for i in range(n)]),
        "label": pa.array([i % 2 for i in range(n)]),
        **extra,
    }
    pq.write_table(pa.table(columns), path)
    return path


def run_component(tmp_path: Path, dataset: Path, labels: Path | None = None, **params) -> dict:
    out = tmp_path / "out"
    artifacts = {
        "train": Dataset(uri=str(out / "train")),
        "validation": Dataset(uri=str(out / "validation")),
        "test": Dataset(uri=str(out / "test")),
        "feature_repo": Artifact(uri=str(out / "feature_repo")),
        "metrics": Metrics(uri=str(out / "metrics")),
        "summary": Markdown(uri=str(out / "summary")),
    }
    featurize_component.python_func(dataset=Dataset(uri=str(dataset)), labels=Dataset(uri=str(labels)) if labels else None, **artifacts, **{**DEFAULTS, **params})
    return artifacts


def component_fails(tmp_path: Path, capfd, dataset: Path, code: int, *fragments: str, **params) -> str:
    """Run the component body, expect exit ``code`` with ``fragments`` in the message and no outputs."""
    with pytest.raises(SystemExit) as caught:
        run_component(tmp_path, dataset, **params)
    err = capfd.readouterr().err
    assert caught.value.code == code, err[-2000:]
    message = err[err.index("kfp-mlops featurize failed:") :]
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "What to do:" in message and "Traceback" not in err
    out = tmp_path / "out"
    leftovers = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert leftovers == [], f"partial outputs: {leftovers}"
    return message


def assert_no_secret(secret: str, tmp_path: Path, artifacts: dict, *texts: str) -> None:
    for file in (tmp_path / "out").rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), f"password written into {file}"
    assert secret not in json.dumps({name: a.metadata for name, a in artifacts.items()}, default=str), "password in metadata"
    for text in texts:
        assert secret not in text, "password in the output or logs"


@pytest.fixture
def redis_with_password(tmp_path):
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(tmp_path)]
    proc = start_process(args, port)
    yield port
    proc.terminate()
    proc.wait(10)


READ_ONLINE = """
import sys
from kfp_mlops.components.featurize.repo import open_store
store = open_store(sys.argv[1])
print(store.get_online_features(features=store.get_feature_service("features_training"), entity_rows=[{"entity_id": 3}]).to_dict()["amount"][0])
"""


@pytest.mark.parametrize("password_from", ["env", "url"])
def test_redis_password_never_written_and_every_process_opens_the_repo(tmp_path, capfd, caplog, monkeypatch, redis_with_password, password_from):
    port = redis_with_password
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    if password_from == "env":
        monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
        online_store = f"redis://127.0.0.1:{port}/0"
    else:  # a tired user pastes the password into the parameter: used, moved out, never stored
        online_store = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    artifacts = run_component(tmp_path, events(tmp_path / "e.parquet"), online_store=online_store, split_fractions="0.5,0.25,0.25")
    captured = capfd.readouterr()
    repo = Path(artifacts["feature_repo"].path)
    assert_no_secret(PASSWORD, tmp_path, artifacts, captured.out, captured.err, caplog.text)
    assert 'password="${REDIS_PASSWORD}"' in (repo / "feature_store.yaml").read_text()
    assert artifacts["feature_repo"].metadata["online_store"] == f"redis://127.0.0.1:{port}/0"
    assert artifacts["feature_repo"].metadata["requires_env"] == ["REDIS_PASSWORD"]
    assert "online store redis://127.0.0.1" in captured.out
    # A later process (a model server) with the variable set reads the features from Redis.
    reader = subprocess.run([sys.executable, "-c", READ_ONLINE, str(repo)], env={**os.environ, "REDIS_PASSWORD": PASSWORD}, capture_output=True, text=True, timeout=300)
    assert reader.returncode == 0, reader.stderr[-2000:]
    assert float(reader.stdout.strip().splitlines()[-1]) == 58.0, "entity 3's latest amount (day 58)"
    assert PASSWORD not in reader.stdout + reader.stderr
    # Without it, the repo says which variable is missing instead of failing to log in.
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    with pytest.raises(FeatureStoreError, match="REDIS_PASSWORD"):
        open_store(repo)
    # A server may hand the password over in memory instead of through its environment.
    store = open_store(repo, environ={"REDIS_PASSWORD": PASSWORD})
    online = store.get_online_features(features=store.get_feature_service("features_training"), entity_rows=[{"entity_id": 4}]).to_dict()
    assert online["amount"] == [59.0]


def test_wrong_redis_password_is_an_infrastructure_error_without_the_password(tmp_path, capfd, monkeypatch, redis_with_password):
    wrong = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("REDIS_PASSWORD", wrong)
    message = component_fails(tmp_path, capfd, events(tmp_path / "e.parquet"), 3, "REDIS_PASSWORD", f"redis://127.0.0.1:{redis_with_password}/0", online_store=f"127.0.0.1:{redis_with_password}/0")
    assert wrong not in message and PASSWORD not in message


def test_unreachable_redis_names_the_redacted_address(tmp_path, capfd, monkeypatch):
    port = free_port()
    monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
    message = component_fails(tmp_path, capfd, events(tmp_path / "e.parquet"), 3, f"online store redis://127.0.0.1:{port}", online_store=f"redis://127.0.0.1:{port}")
    assert PASSWORD not in message


def test_sql_registry_password_from_the_url_is_referenced_not_written(tmp_path, capfd, caplog, monkeypatch):
    require(port_open(5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    project = f"kfp_mlops_safety_{uuid.uuid4().hex[:8]}"
    registry = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:5432/test"
    artifacts = run_component(tmp_path, events(tmp_path / "e.parquet"), registry=registry, project=project, split_fractions="0.5,0.25,0.25")
    captured = capfd.readouterr()
    repo = Path(artifacts["feature_repo"].path)
    assert_no_secret(PASSWORD, tmp_path, artifacts, captured.out, captured.err, caplog.text)
    assert "password: '${PGPASSWORD}'" in (repo / "feature_store.yaml").read_text()
    assert artifacts["feature_repo"].metadata["registry"] == "postgresql+psycopg://127.0.0.1:5432/test", "no user info in metadata"
    assert artifacts["feature_repo"].metadata["requires_env"] == ["PGPASSWORD"]
    with pytest.raises(FeatureStoreError, match="PGPASSWORD"):
        open_store(repo, environ={})
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    store = open_store(repo)
    try:
        assert [fv.name for fv in store.list_feature_views()] == ["features_features"]
    finally:
        store.teardown()


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({"registry": "http://feast.example.com/registry"}, ["registry 'http://feast.example.com/registry'", "postgresql+psycopg://"]),
        ({"registry": "registry.db"}, ["registry 'registry.db'"]),
        ({"registry": "s3://bucket"}, ["needs a bucket and an object path"]),
        ({"registry": "gs://bucket/${HOME}/registry.db"}, ["contains '$'"]),
        ({"registry": f"postgresql+psycopg://u@h/db?password={PASSWORD}"}, ["credentials in its query", "PGPASSWORD"]),
        ({"online_store": "redis://127.0.0.1:99999"}, ["ports are 1-65535"]),
        ({"online_store": "redis://127.0.0.1:abc"}, ["no valid host:port"]),
        ({"online_store": "postgresql://127.0.0.1:5432/db"}, ["is not a Redis address"]),
        ({"online_store": "redis://127.0.0.1:6379/zero"}, ["database 'zero' is not a number"]),
        ({"online_store": "redis://127.0.0.1:6379?ssl=true"}, ["has options"]),
        ({"online_store": f"redis://127.0.0.1:6379,password={PASSWORD}"}, ["no valid host:port", "password=***"]),
        ({"project": "my-project"}, ["project 'my-project'"]),
        ({"project": ""}, ["project ''"]),
    ],
)
def test_bad_store_parameters_are_data_errors_before_anything_runs(tmp_path, capfd, params, fragments):
    message = component_fails(tmp_path, capfd, tmp_path / "never-read.parquet", 2, *fragments, **params)
    assert PASSWORD not in message


def test_url_password_and_env_password_that_differ_are_refused(tmp_path, capfd, monkeypatch):
    other = f"other-{uuid.uuid4().hex}"
    monkeypatch.setenv("REDIS_PASSWORD", other)
    message = component_fails(
        tmp_path, capfd, tmp_path / "never-read.parquet", 2, "online_store URL carries one password and REDIS_PASSWORD another", online_store=f"redis://:{PASSWORD}@127.0.0.1:6379"
    )
    assert PASSWORD not in message and other not in message


@pytest.mark.parametrize("fractions", ["nan,nan,nan", "0.7,nan,0.15", "inf,0.1,0.1", "1e309,0.1,0.1", "0.8,-0.1,0.3", "0.5,0.3,0.1", "70,15,15", "0.7,0.3", "0.5,0.2,0.2,0.1", "a,b,c", ""])
def test_bad_split_fractions_are_refused_up_front(tmp_path, capfd, fractions):
    component_fails(tmp_path, capfd, tmp_path / "never-read.parquet", 2, "split_fractions", split_fractions=fractions)


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"passthrough": "amount"}, ["'passthrough' must be a list, not a string ('amount')", '["amount"]']),
        ({"aggregates": [{"column": "amount", "functions": ["sum"], "windows": ["10000000000d"]}]}, ["window of 'amount'", "36,500-day limit"]),
        ({"ttl": "10000000000d"}, ["ttl '10000000000d' is longer than"]),
        ({"label": "entity_id"}, ["label column 'entity_id' is also the entity key column"]),
    ],
)
def test_bad_feature_spec_through_the_component(tmp_path, capfd, spec, fragments):
    full = {"entity": "entity_id", "timestamp": "event_timestamp", "label": "label", "passthrough": ["amount"], **spec}
    params = {"feature_spec": json.dumps(full)}
    if "label" in spec:
        params["label_column"] = spec["label"]
    component_fails(tmp_path, capfd, tmp_path / "never-read.parquet", 2, *fragments, **params)


def test_deeply_nested_feature_spec_is_a_data_error(tmp_path, capfd):
    deep = '{"entity": ' + "[" * 100_000 + "]" * 100_000 + "}"
    component_fails(tmp_path, capfd, tmp_path / "never-read.parquet", 2, "nested far too deeply", feature_spec=deep)


@pytest.mark.parametrize("label_column", ["entity_id", "event_timestamp"])
def test_label_equal_to_a_key_column_is_refused_with_the_default_spec(tmp_path, capfd, label_column):
    component_fails(tmp_path, capfd, events(tmp_path / "e.parquet"), 2, f"label column {label_column!r} is also the", label_column=label_column)


def test_year_9999_is_a_data_error_before_the_registry_is_written(tmp_path, capfd):
    registry = tmp_path / "shared" / "registry.db"  # a file registry outside the repo, as on a cluster
    stamps = [T0 + dt.timedelta(days=i) for i in range(59)] + [dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)]
    dataset = events(tmp_path / "e.parquet")
    pq.write_table(pq.read_table(dataset).set_column(1, "event_timestamp", pa.array(stamps, pa.timestamp("us", tz="UTC"))), dataset)
    component_fails(tmp_path, capfd, dataset, 2, "timestamp column 'event_timestamp' holds 9999-12-31T23:59:59+00:00 at row 60", registry=f"file://{registry}")
    assert not registry.exists(), "nothing may reach the registry"
    pq.write_table(pq.read_table(dataset).slice(0, 59), dataset)
    run_component(tmp_path, dataset, registry=f"file://{registry}")
    assert registry.exists(), "the same settings do write the registry once the data is fixed"


def test_nested_columns_are_refused_by_name(tmp_path, capfd):
    n = 60
    dataset = events(
        tmp_path / "e.parquet",
        address=pa.array([{"city": "x", "zip": i} for i in range(n)]),
        tags=pa.array([["a", "b"]] * n),
        attrs=pa.array([[("k", i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
    )
    component_fails(tmp_path, capfd, dataset, 2, "columns ['address', 'tags', 'attrs'] hold nested values", "flatten")


def test_labels_file_with_the_wrong_columns_or_key_type(tmp_path, capfd):
    dataset = events(tmp_path / "e.parquet")
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"entity_id": ["1", "2", "3"], "event_timestamp": pa.array([T0, T0, T0], pa.timestamp("us", tz="UTC")), "label": [0, 1, 0]}), labels)
    with pytest.raises(SystemExit) as caught:
        run_component(tmp_path, dataset, labels=labels)
    assert caught.value.code == 2 and "the labels' entity column 'entity_id' is string, the dataset's is int64" in capfd.readouterr().err
    pq.write_table(pa.table({"entity_id": [1, 2, 3], "when": pa.array([T0, T0, T0], pa.timestamp("us", tz="UTC"))}), labels)
    with pytest.raises(SystemExit) as caught:
        run_component(tmp_path, dataset, labels=labels)
    assert caught.value.code == 2 and "the labels lack columns ['event_timestamp', 'label']" in capfd.readouterr().err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("password", ["1234", "true", "null", "p@ss/w:rd%20#x y", "ümlaut-☃", "a=b", "${HOME}"])
def test_passwords_reach_feast_unchanged(tmp_path, monkeypatch, password):
    """Feast's own loader, with the variables set, hands the clients exactly the passwords."""
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.repo_config import load_repo_config

    from kfp_mlops.components.featurize.settings import StoreSettings, config_text, runtime_config

    settings = StoreSettings(registry="postgresql+psycopg://u@db.example.com/feast", online_store="redis://cache:6379/2", redis_password=password, registry_password=password)
    runtime_config(settings)  # the step's own check passes
    (tmp_path / "feature_store.yaml").write_text(config_text(settings))
    monkeypatch.setenv("REDIS_PASSWORD", password)
    monkeypatch.setenv("PGPASSWORD", password)
    config = load_repo_config(tmp_path, tmp_path / "feature_store.yaml")
    assert RedisOnlineStore._parse_connection_string(config.online_store.connection_string)[1]["password"] == password
    assert config.registry.sqlalchemy_config_kwargs["connect_args"]["password"] == password


@pytest.mark.parametrize(
    ("variable", "password"), [("REDIS_PASSWORD", "a,b"), ("REDIS_PASSWORD", 'a"b'), ("REDIS_PASSWORD", "a\\b"), ("REDIS_PASSWORD", "it's"), ("PGPASSWORD", "it's"), ("PGPASSWORD", "two\nlines")]
)
def test_passwords_feast_cannot_carry_are_named_without_the_value(variable, password):
    from kfp_mlops.components.featurize.settings import StoreSettings, runtime_config

    key = "redis_password" if variable == "REDIS_PASSWORD" else "registry_password"
    settings = StoreSettings(registry="postgresql+psycopg://u@db.example.com/feast", online_store="redis://cache:6379", **{key: password})
    with pytest.raises(FeatureStoreError) as caught:
        runtime_config(settings)
    assert variable in str(caught.value) and password not in str(caught.value)
    assert password not in repr(settings)


def test_out_of_range_label_times_are_refused(tmp_path, capfd):
    labels = tmp_path / "labels.parquet"
    stamps = pa.array([T0, T0 + dt.timedelta(days=5), dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"entity_id": [1, 2, 3], "event_timestamp": stamps, "label": [0, 1, 0]}), labels)
    with pytest.raises(SystemExit) as caught:
        run_component(tmp_path, events(tmp_path / "e.parquet"), labels=labels)
    err = capfd.readouterr().err
    assert caught.value.code == 2 and "labels.parquet: timestamp column 'event_timestamp' holds 9999-01-01T00:00:00+00:00 at row 3" in err


@pytest.mark.parametrize(
    ("params", "normalized", "in_yaml", "needs"),
    [
        ({"online_store": "redis_cache:6379"}, ("", "redis://redis_cache:6379"), "connection_string: redis_cache:6379\n", []),
        (
            {"online_store": "rediss://feast:pw@Cache.example.com/2"},
            ("", "rediss://feast@cache.example.com:6379/2"),
            'connection_string: \'cache.example.com:6379,db=2,ssl=true,username="feast",password="${REDIS_PASSWORD}"\'',
            ["REDIS_PASSWORD"],
        ),
        ({"registry": "postgresql+psycopg://u:p%40ss@db:5432/feast"}, ("postgresql+psycopg://u@db:5432/feast", ""), "path: postgresql+psycopg://u@db:5432/feast\n", ["PGPASSWORD"]),
        ({"registry": "file:///srv/feast/registry.db"}, ("file:///srv/feast/registry.db", ""), "registry: /srv/feast/registry.db\n", []),
        ({"registry": "sqlite:////srv/feast/registry.db", "registry_password": "ignored"}, ("sqlite:////srv/feast/registry.db", ""), "registry_type: sql", []),
    ],
)
def test_store_settings_normalize_without_credentials(params, normalized, in_yaml, needs):
    from kfp_mlops.components.featurize.settings import StoreSettings, config_text

    settings = StoreSettings(**params)
    assert (settings.registry, settings.online_store) == normalized
    assert in_yaml in config_text(settings)
    assert settings.required_env() == needs
    assert "pw" not in repr(settings) and "p@ss" not in config_text(settings) + repr(settings)
