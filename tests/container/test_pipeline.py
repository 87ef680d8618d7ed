"""The training pipeline as a cluster runs it: compiled/training.yaml step by step, each step
in its own container with only its declared inputs (read-only), keeping only its declared
outputs; MLflow as a tracking server on PostgreSQL (artifacts proxied over HTTP), the Feast
registry on PostgreSQL and the online store in Redis. Whatever a step leaves beside its
outputs is lost, as in a pod; a later step that depended on it fails here too."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.container.launcher import REPO, Component, Launcher, StepResult, podman, run_pipeline
from tests.services import MlflowServer, port_open, require

PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DB = 9  # a database of its own; the project's keys are removed afterwards
MODEL = "kfp-mlops-model"
SERVER_STEPS = ("featurize", "train", "register")  # reach PostgreSQL/Redis or the MLflow server


def _stray(name: str) -> bool:
    """What a step must not ship inside a declared output: stores, scratch, staging, temporaries."""
    return name.endswith((".db", ".sqlite", ".tmp")) or name.startswith(".") or name in ("mlruns", "mlartifacts", "__pycache__") or any(w in name for w in ("checkpoint", "staging", "result-rank"))


def assert_only_declared_outputs(result: StepResult, component: Component) -> None:
    declared = set(component.spec.get("outputDefinitions", {}).get("artifacts", {}))
    assert result.discarded == [], f"{result.task} wrote beside its declared outputs (lost on a cluster): {result.discarded}"
    kept = sorted(p.name for p in result.kept_dir.iterdir())
    assert kept == sorted(result.written + ["executor_output.json"]) and set(result.written) <= declared, (result.task, kept)
    stray = [str(p.relative_to(result.kept_dir)) for p in result.kept_dir.rglob("*") if _stray(p.name)]
    assert stray == [], f"{result.task} ships scratch state inside its outputs: {stray}"


@pytest.fixture
def stores(tmp_path):
    """A fresh PostgreSQL database for the Feast registry, Redis, and an MLflow server on PostgreSQL."""
    require(port_open(5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    require(port_open(6379), "Redis is not reachable on 127.0.0.1:6379")
    import psycopg
    import redis

    database = f"feast_ct_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    server = MlflowServer(tmp_path / "mlflow-server")
    try:
        yield {"registry": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}", "online": f"redis://127.0.0.1:6379/{REDIS_DB}", "mlflow": server.url}
    finally:
        server.close()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        online = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        for key in list(online.scan_iter(match=b"*kfp_mlops")):  # Feast keys end with the project name
            online.delete(key)


@pytest.fixture
def source(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    write_demo_dataset(data / "demo.csv", DemoSpec(rows=3_000, seed=4))
    (data / "demo.csv").chmod(0o644)  # the images run as uid 1000
    return data


def run_training(root: Path, stores: dict, source: Path) -> dict[str, StepResult]:
    ir = yaml.safe_load((REPO / "compiled" / "training.yaml").read_text().split("\n---\n")[0])
    arguments = {
        "source_uri": "/data/demo.csv",
        "max_epochs": 2,
        "hidden_layers": "16",
        "feature_registry": stores["registry"],
        "online_store": stores["online"],
        "mlflow_tracking_uri": stores["mlflow"],
    }
    options = {"ingest": {"volumes": {source: "/data:ro"}}, **{step: {"network": "host"} for step in SERVER_STEPS}}
    results = run_pipeline(Launcher(root, pipeline="training"), ir, arguments, options=options)
    for name, result in results.items():
        assert result.returncode == 0, result.log
        assert_only_declared_outputs(result, Component.from_pipeline(ir, name))
    assert sorted(results) == ["check-training", "featurize", "ingest", "register", "train", "validate"]
    return results


def test_training_pipeline_step_by_step_as_on_a_cluster(train_image, features_image, image, stores, source, tmp_path):
    from mlflow.tracking import MlflowClient

    first = run_training(tmp_path / "run1", stores, source)
    assert first["register"].parameters == {"Output": True, "blessed": True, "version": "1", "aliases": "challenger,champion"}, first["register"].log
    assert "Compared against: no champion" in first["register"].stdout
    client = MlflowClient(tracking_uri=stores["mlflow"], registry_uri=stores["mlflow"])
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    experiment = client.get_experiment_by_name("kfp-mlops")
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), "clients upload artifacts over HTTP, not to a server path"
    contract = ModelArtifact.from_metadata(first["train"].artifacts["model"].metadata)
    assert client.get_run(contract.mlflow_run_id).info.status == "FINISHED"
    repo = first["featurize"].artifacts["feature_repo"]
    assert not (repo.path / "registry.db").exists() and not (repo.path / "online.db").exists(), "registry in PostgreSQL, online store in Redis"
    assert pq.read_metadata(first["featurize"].artifacts["test"].path).num_rows > 0

    second = run_training(tmp_path / "run2", stores, source)  # fresh workspaces, a new run id
    register = second["register"]
    assert "Compared against: champion (version 1)" in register.stdout, register.log
    assert register.parameters == {"Output": False, "blessed": False, "version": "2", "aliases": "challenger"}, "same data and seed: an equal model is registered, not promoted"
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    assert client.get_model_version_by_alias(MODEL, "challenger").version == "2"
    assert second["train"].artifacts["model"].uri != first["train"].artifacts["model"].uri


def _component(name: str) -> Component:
    return Component.from_yaml(REPO / "compiled" / "components" / f"{name}.yaml")


def _splits(launcher: Launcher, folder: Path) -> dict:
    """Train, validation and test splits of demo data, given to a step as imported artifacts."""
    import pyarrow as pa

    from kfp_mlops.demo import iter_demo_batches

    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=2_000, seed=8))))
    inputs = {}
    for name, lo, hi in (("train", 0, 1_400), ("validation", 1_400, 1_700), ("test", 1_700, 2_000)):
        pq.write_table(table.slice(lo, hi - lo), folder / f"{name}.parquet")
        inputs[name] = launcher.imported(folder / f"{name}.parquet", name)
    return inputs


def test_train_without_a_tracking_uri_stops_at_once(train_image, tmp_path):
    """The old failure mode: no tracking URI used to mean a sqlite store in the pod, lost with it."""
    probe = "import os; print(sorted(k for k in os.environ if k.startswith('MLFLOW_TRACKING')), os.environ.get('MLFLOW_DISABLE_TELEMETRY'))"
    env = podman("run", "--rm", "--network", "none", train_image, "python", "-c", probe)
    assert env.returncode == 0 and env.stdout.strip() == "[] true", env.stdout + env.stderr  # no tracking settings; telemetry off
    launcher = Launcher(tmp_path / "run", pipeline="training")
    inputs = _splits(launcher, tmp_path)
    train = _component("train")
    result = launcher.run(train, parameters={"label_column": "label", "mlflow_tracking_uri": ""}, inputs=inputs)
    assert result.returncode == 3, result.log
    problem, action, code = result.stderr.strip().splitlines()[-3:]
    assert problem.startswith("kfp-mlops train failed: no MLflow tracking URI is set"), result.log
    assert code.startswith("(exit code 3: infrastructure"), code
    assert action.startswith("What to do:") and "mlflow_tracking_uri" in action and "MLFLOW_TRACKING_URI" in action, action
    assert "Traceback" not in result.stderr and "trained on" not in result.stdout
    assert result.written == [] and result.discarded == [] and not result.kept_dir.exists(), "no model output, nothing kept"
    assert result.parameters == {} and result.artifacts == {}


def test_state_beside_the_outputs_does_not_reach_the_next_step(train_image, tmp_path):
    """The harness itself: train tracks to a sqlite file in its own pod (it succeeds), register
    is pointed at that store by the model contract and must not find it."""
    launcher = Launcher(tmp_path / "run", pipeline="training")
    inputs = _splits(launcher, tmp_path)
    params = {"label_column": "label", "exclude_columns": "entity_id", "max_epochs": 1, "hidden_layers": "8", "mlflow_tracking_uri": "sqlite:////minio/mlflow.db"}
    train = launcher.run(_component("train"), parameters=params, inputs=inputs)
    assert train.returncode == 0, train.log
    assert sorted(train.discarded) == ["minio/mlartifacts", "minio/mlflow.db", "minio/mlflow.db.init-lock"], "written beside the declared outputs, then lost"
    run_id = ModelArtifact.from_metadata(train.artifacts["model"].metadata).mlflow_run_id
    register = launcher.run(_component("register"), parameters={"label_column": "label"}, inputs={"model": train.artifacts["model"], "test": inputs["test"]})
    assert register.returncode == 2 and register.parameters == {}, register.log
    assert "sqlite:////minio/mlflow.db does not exist in this step" in register.stderr and "tracking server" in register.stderr, register.log
    assert run_id not in register.stderr, "it stops before looking for the run"
