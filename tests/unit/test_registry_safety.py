"""The registry cannot be tricked, the tracking server's absence is named fast, killed attempts are cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from kfp_mlops.components._shared import mlflow_adapter
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import TrackingError, TrackingSettings, resolve_tracking_uri
from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.gate import parse_thresholds
from kfp_mlops.components.register.registry import CHAMPION, LOCK_PREFIX, Registry, lock_name
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.loop import TrainConfig
from tests.services import free_port
from tests.unit.test_train import KEYS, _splits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A good model and one trained on shuffled labels (chance level), in one tracking database."""
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=8_000)
    shuffled = _splits(tmp / "shuffled", rows=8_000, transform=lambda t: t.set_column(t.schema.get_field_index("label"), "label", pa.array(t.column("label").to_numpy()[::-1].copy())))
    out = {}
    for key, data in (("good", paths), ("bad", shuffled)):
        result = train_model(
            TrainInputs(data["train"], data["validation"], data["test"], "label", KEYS),
            TrainConfig(hidden=(32,), max_epochs=4),
            model_dir=tmp / key,
            tracking=TrackingSettings(uri, experiment="registry"),
        )
        out[key] = (tmp / key, result.contract)
    return uri, paths, out


def _register(models, key, name, **kw):
    uri, paths, out = models
    model_dir, contract = out[key]
    return register_model(model_dir, contract, paths["test"], registry=Registry(uri), name=name, thresholds=kw.get("thresholds"), promote=True, tags={})


def test_a_users_model_with_the_lock_name_is_never_deleted(models):
    uri, _, _ = models
    registry = Registry(uri)
    registry.client.create_registered_model("victim.promotion-lock")  # the old lock name: now just a user's model
    registry.client.create_registered_model(lock_name("victim"), description="a user's model that happens to have the reserved name")
    with pytest.raises(TrackingError, match="is not a kfp-mlops lock") as raised:
        _register(models, "good", "victim")
    assert raised.value.exit_code == 3
    names = {m.name for m in registry.client.search_registered_models()}
    assert {"victim.promotion-lock", lock_name("victim")} <= names, "nothing of the user's was deleted"
    assert not registry.client.search_model_versions("name='victim'"), "no version registered while the lock could not be taken"
    with pytest.raises(DataError, match="reserved"):
        _register(models, "good", LOCK_PREFIX + "mine")


def test_a_name_too_long_for_the_registry_is_refused_before_anything_is_written(models):
    uri, _, _ = models
    with pytest.raises(DataError, match="at most 256"):
        _register(models, "good", "m" * 257)
    at_limit = _register(models, "good", "m" * 256)  # the lock name has a fixed length, so the longest valid name works
    assert at_limit.promoted
    assert not [m for m in Registry(uri).client.search_registered_models() if m.name.startswith("m" * 257)]


RACE = """
import sys, time
from pathlib import Path
from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.gate import parse_thresholds
from kfp_mlops.components.register.registry import Registry
uri, name, model_dir, test, start = sys.argv[1:6]
original = Registry.register
def delayed(self, *args, **kwargs):  # the injected delay around registration
    time.sleep(2.0)
    version = original(self, *args, **kwargs)
    time.sleep(1.0)
    return version
Registry.register = delayed
registry = Registry(uri)
time.sleep(max(0.0, float(start) - time.time()))
out = register_model(Path(model_dir), ModelArtifact.read(model_dir), test, registry=registry, name=name,
                     thresholds=parse_thresholds('{"roc_auc": {"delta": 0.0}}'), promote=True, tags={})
print(out.version.version, out.gate.blessed, out.promoted, out.champion_version)
"""


def test_two_concurrent_registers_leave_the_better_model_champion(models):
    """Without a champion both would pass; the worse one, promoting last, would win if the gate were outside the lock."""
    uri, paths, out = models
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.time() + 10  # both processes past their imports
    procs = []
    for key, delay in (("good", 0.0), ("bad", 0.5)):
        procs.append(
            subprocess.Popen([sys.executable, "-c", RACE, uri, "raced", str(out[key][0]), str(paths["test"]), str(start + delay)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    good_version, bad_line = results[0][0].split()[0], results[1][0].split()
    assert bad_line[1:3] == ["False", "False"] and bad_line[3] == good_version, "the worse model was gated against the better champion"
    champion = Registry(uri).alias("raced", CHAMPION)
    assert champion.run_id == out["good"][1].mlflow_run_id


def test_tracking_uri_must_be_set_and_absolute():
    with pytest.raises(TrackingError, match="no MLflow tracking URI") as raised:
        resolve_tracking_uri("", {})
    assert raised.value.exit_code == 3
    assert resolve_tracking_uri("", {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}) == "http://mlflow:5000"
    with pytest.raises(DataError, match="relative"):
        resolve_tracking_uri("sqlite:///mlflow.db", {})
    with pytest.raises(DataError, match="unsupported"):
        resolve_tracking_uri("ftp://user:pw@host/x", {})


def test_an_unreachable_server_is_an_infrastructure_error_naming_the_uri(monkeypatch):
    monkeypatch.setattr(mlflow_adapter, "REACHABLE_WITHIN_S", 3.0)
    uri = f"http://user:hunter2@127.0.0.1:{free_port()}"
    for open_client in (lambda: Registry(uri), lambda: mlflow_adapter.MlflowRun(TrackingSettings(uri))):
        with pytest.raises(TrackingError) as raised:
            open_client()
        assert raised.value.exit_code == 3 and "127.0.0.1" in str(raised.value) and "hunter2" not in str(raised.value)


TRAIN_FOREVER = """
import sys
from pathlib import Path
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.loop import TrainConfig
data, uri, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
train_model(TrainInputs(data / "train.parquet", data / "validation.parquet", data / "test.parquet", "label", frozenset({"entity_id", "event_timestamp"})),
            TrainConfig(hidden=(64, 64), max_epochs=10_000, patience=10_000), model_dir=out,
            tracking=TrackingSettings(uri, experiment="killed", attempt_key="task-7"))
"""


def test_a_retry_marks_the_killed_attempts_run_killed(models, tmp_path):
    uri, paths, _ = models
    data = Path(paths["train"]).parent
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_FOREVER, str(data), uri, str(tmp_path / "model")], env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    client = mlflow_adapter.client(uri)
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(1.0)
        experiment = client.get_experiment_by_name("killed")
        running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'") if experiment else []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert len(running) == 1, "the first attempt was mid-run when it was killed"
    (tmp_path / ".model.killed1.tmp").mkdir()  # what an attempt killed while writing its output leaves
    (tmp_path / ".model.killed1.tmp" / "model.pt2").write_bytes(b"half")
    retry = train_model(
        TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS),
        TrainConfig(hidden=(8,), max_epochs=1),
        model_dir=tmp_path / "model",
        tracking=TrackingSettings(uri, experiment="killed", attempt_key="task-7"),
    )
    assert client.get_run(running[0].info.run_id).info.status == "KILLED"
    assert client.get_run(retry.mlflow_run_id).info.status == "FINISHED"
    assert ModelArtifact.read(tmp_path / "model").mlflow_run_id == retry.mlflow_run_id
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no temporary output left beside the model"


def test_thresholds_are_parsed_before_the_registry_is_touched(models):
    uri, _, _ = models
    with pytest.raises(DataError):
        _register(models, "good", "strict", thresholds=parse_thresholds('{"rmse": {"max": 1.0}}'))
    assert not Registry(uri).client.search_registered_models(filter_string="name='strict'")


def test_register_refuses_a_sqlite_store_that_is_not_in_its_step(tmp_path):
    """The store of another pod: MLflow would create an empty database and report the run as missing."""
    missing = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    with pytest.raises(DataError, match="does not exist in this step") as raised:
        mlflow_adapter.require_existing_store(missing)
    assert "tracking server" in str(raised.value) and not (tmp_path / "elsewhere").exists()


def test_steps_opening_the_store_while_the_run_creates_it_wait_for_the_schema(tmp_path):
    """`kfp-mlops run` creates a fresh store's schema in the background while the first steps run."""
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    created = mlflow_adapter.initialize_store_in_background(uri)
    code = f"from kfp_mlops.components._shared import mlflow_adapter; mlflow_adapter.client({uri!r}).create_experiment('e' + __import__('os').urandom(4).hex()); print('ready')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    created()
    assert all(p.returncode == 0 and out.strip() == "ready" for p, (out, _) in zip(procs, outputs)), [err[-500:] for _, err in outputs]
    assert len(mlflow_adapter.client(uri).search_experiments()) == 3, "Default and the two steps' experiments, in one schema"


def test_runs_started_at_once_on_a_fresh_folder_share_one_store(tmp_path):
    """Two `kfp-mlops run` at once used to race in MLflow's schema migration ("table ... already exists")."""
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    code = f"from kfp_mlops.components._shared.mlflow_adapter import initialize_store; initialize_store({uri!r}); print('ready')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 and out.strip() == "ready" for p, (out, _) in zip(procs, outputs)), [err[-500:] for _, err in outputs]
