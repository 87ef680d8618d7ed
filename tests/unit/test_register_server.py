"""Register against a real ``mlflow server`` backed by PostgreSQL, as MLflow runs beside Kubeflow."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.gate import Threshold
from kfp_mlops.components.register.registry import CHALLENGER, CHAMPION, LOCK_PREFIX, PREVIOUS, Registry
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.loop import TrainConfig
from tests.services import MlflowServer, port_open, require
from tests.unit.test_train import KEYS, _splits

# These tests are about the registry over HTTP, not the gate: a bound every model passes.
MECHANICS = [Threshold("roc_auc", min=0.0)]

PROMOTE = """
import sys, time
from kfp_mlops.components.register.registry import Registry
uri, name, version, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
registry = Registry(uri)
time.sleep(max(0.0, start - time.time()))
print(registry.promote(name, version))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require(port_open(5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def model(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    paths = _splits(tmp / "data", rows=4_000)
    result = train_model(
        TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS),
        TrainConfig(hidden=(8,), max_epochs=1),
        model_dir=tmp / "m",
        tracking=TrackingSettings(server.url, experiment="server"),
    )
    return tmp / "m", result, paths


def test_register_and_gate_over_http(server, model):
    model_dir, result, paths = model
    registry = Registry(server.url)
    first = register_model(model_dir, result.contract, paths["test"], registry=registry, name="over-http", thresholds=MECHANICS, promote=True, tags={})
    again = register_model(model_dir, result.contract, paths["test"], registry=registry, name="over-http", thresholds=MECHANICS, promote=True, tags={})
    assert first.version.version == again.version.version == "1" and not again.version.created
    assert registry.alias("over-http", CHAMPION).version == "1" and registry.alias("over-http", CHALLENGER).version == "1"


def test_concurrent_promotions_leave_one_champion_and_lose_no_alias(server, model):
    _, result, _ = model
    registry = Registry(server.url)
    name = "contested"
    source = registry.client.get_run(result.mlflow_run_id).info.artifact_uri + "/model"
    registry.client.create_registered_model(name)
    versions = [str(registry.client.create_model_version(name, source, run_id=result.mlflow_run_id).version) for _ in range(5)]
    registry.promote(name, versions[0])
    for pair in (versions[1:3], versions[3:5]):
        before = registry.alias(name, CHAMPION).version
        start = time.time() + 8  # both processes past their imports, then promote at once
        procs = [subprocess.Popen([sys.executable, "-c", PROMOTE, server.url, name, v, str(start)], stdout=subprocess.PIPE, text=True) for v in pair]
        replaced = [p.communicate(timeout=180)[0].strip() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        champion, previous = registry.alias(name, CHAMPION).version, registry.alias(name, PREVIOUS).version
        assert {champion, previous} == set(pair), f"champion {champion}, previous {previous}: one promotion's replaced champion lost its alias"
        assert sorted(replaced) == sorted([before, previous]), "each promotion replaced a different champion"
    assert not [m for m in registry.client.search_registered_models() if m.name.startswith(LOCK_PREFIX)], "locks released"


def test_register_survives_a_server_restart(server, model):
    """The server goes down mid-step and comes back: MLflow's client retries with backoff; one version results."""
    import threading

    model_dir, result, paths = model
    registry = Registry(server.url)
    server.stop()
    restart = threading.Timer(3.0, server.start)
    restart.start()
    out = register_model(model_dir, result.contract, paths["test"], registry=registry, name="restarted", thresholds=MECHANICS, promote=True, tags={})
    restart.join()
    assert out.version.version == "1" and out.promoted
    assert len(registry.client.search_model_versions("name='restarted'")) == 1, "no half-registered or duplicate version"
