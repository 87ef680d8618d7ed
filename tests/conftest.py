"""Shared fixtures: demo data and the local storage services."""

from __future__ import annotations

import os
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
