"""Shared fixtures: demo data and the local storage services."""

from __future__ import annotations

import inspect
import os
from functools import lru_cache
from pathlib import Path

import pytest

from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.services import free_port, python_bin, start_http_server, start_process


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo.csv", DemoSpec(rows=20_000, seed=11))


@pytest.fixture(scope="session")
def demo_parquet(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo.parquet", DemoSpec(rows=20_000, seed=11))


@pytest.fixture(scope="session")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    server = start_http_server(root)
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def gcs_emulator():
    port = free_port()
    proc = start_process([python_bin("gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"], port)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    from google.cloud import storage

    yield storage.Client(project="test")
    proc.terminate()
    proc.wait(10)
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


def _moto(auth_free_actions: int | None = None):
    port = free_port()
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(auth_free_actions)} if auth_free_actions is not None else {}
    proc = start_process([python_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, env)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def s3_env(monkeypatch):
    """Point boto3 at a function-scoped moto server via the environment, as in a cluster."""
    proc, endpoint = _moto()
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    yield boto3.client("s3")
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_locked(monkeypatch):
    """An S3 server enforcing IAM, a bucket with data, and credentials of a user with no permissions."""
    proc, endpoint = _moto(auth_free_actions=4)
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "admin", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    import boto3

    s3, iam = boto3.client("s3"), boto3.client("iam")
    s3.create_bucket(Bucket="locked")
    s3.put_object(Bucket="locked", Key="data.csv", Body=b"a,b\n1,2\n")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    yield "s3://locked/data.csv"
    proc.terminate()
    proc.wait(10)


# Test tiers: CI runs each as its own job (.github/workflows/ci.yml) and `pytest -m` selects them here.
TIER_MARKERS = {
    "unit": "core logic and compiled specs; no pipeline run, no container (tests/unit, tests/compiled)",
    "service": "needs a local service: PostgreSQL, Redis, an mlflow server, the GCS emulator or moto S3",
    "component": "whole pipelines through kfp.local and the CLI (tests/component)",
    "container": "image builds and the pipeline step by step in containers; needs root, buildah and podman (tests/container)",
    "slow": "too slow for the fast lane (`-m 'unit and not service and not slow'`, under 3 minutes on 2 cores)",
}
TIER_BY_FOLDER = {"unit": "unit", "compiled": "unit", "component": "component", "container": "container"}
# How a test or one of its fixtures starts or reaches a service (tests/services.py and the fixtures above).
# Matching the code, not a list of test names, keeps a new test that needs one out of the fast lane.
SERVICE_SIGNS = ("port_open(5432)", "port_open(6379)", "MlflowServer(", '"redis-server"', "gcp-storage-emulator", "_moto(")
# backend_venvs pip-installs four spec environments on first use.
SLOW_FIXTURES = frozenset({"backend_venvs"})
# Measured once (--durations, 2 shared cores): these alone took most of the fast lane's time.
SLOW_TESTS = frozenset()


def pytest_configure(config: pytest.Config) -> None:
    for name, description in TIER_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).resolve().parent
    for item in items:
        tier = _tier_of(Path(item.path).resolve(), tests_root)
        if tier:
            item.add_marker(tier)
        functions = [getattr(item, "function", None), *_fixture_functions(item)]
        if any(_uses_a_service(function) for function in functions if function is not None):
            item.add_marker("service")
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker("slow")


def _tier_of(path: Path, tests_root: Path) -> str | None:
    if not path.is_relative_to(tests_root):
        return None
    parts = path.relative_to(tests_root).parts
    return TIER_BY_FOLDER.get(parts[0]) if len(parts) > 1 else None


def _fixture_functions(item: pytest.Item) -> list:
    # pytest keeps the fixture closure of a test here (no public accessor); every plugin that inspects fixtures reads it.
    info = getattr(item, "_fixtureinfo", None)
    return [definition.func for definitions in (info.name2fixturedefs.values() if info else ()) for definition in definitions]


@lru_cache(maxsize=None)
def _uses_a_service(function) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # built-in fixtures (tmp_path, capfd, ...) may have no source
        return False
    return any(sign in source for sign in SERVICE_SIGNS)
