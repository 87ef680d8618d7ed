"""Build the component images from the Dockerfile, then run each component's own compiled
command inside them with podman and no network, through the launcher emulation: each step
sees only its declared inputs (read-only) and leaves only its declared outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.container.launcher import REPO, Component, Launcher, podman

COMPONENTS = REPO / "compiled" / "components"


def component(name: str) -> Component:
    return Component.from_yaml(COMPONENTS / f"{name}.yaml")


def _imports(image: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
    proc = podman("run", "--rm", "--network", "none", image, "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip())  # noqa: S307 - our own print of a list of names


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """Source files, mounted read-only at /data (a volume the cluster would mount)."""
    data = tmp_path / "data"
    data.mkdir()
    write_demo_dataset(data / "demo.csv", DemoSpec(rows=3_000, seed=4))
    (data / "bad.csv").write_text("a;b;c\n1;2;3\n")
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the images run as uid 1000
    return data


@pytest.fixture
def launcher(tmp_path) -> Launcher:
    return Launcher(tmp_path / "run", pipeline="container-test")


INGEST = {"source_uri": "/data/demo.csv", "entity_column": "entity_id", "timestamp_column": "event_timestamp"}


def test_images_carry_only_what_their_steps_import(image, features_image):
    assert _imports(image, ("torch", "feast", "mlflow", "evidently", "pandas", "duckdb")) == []
    assert _imports(features_image, ("torch", "feast", "mlflow", "evidently", "duckdb", "redis", "psycopg")) == ["feast", "duckdb", "redis", "psycopg"]


def test_ingest_then_validate_in_the_image_without_network(image, launcher, data_dir):
    ingest = launcher.run(component("ingest"), parameters=INGEST, volumes={data_dir: "/data:ro"})
    assert ingest.returncode == 0, ingest.log
    assert pq.read_metadata(ingest.artifacts["dataset"].path).num_rows == 3_000
    assert ingest.artifacts["dataset"].metadata["rows"] == 3_000
    assert ingest.parameters["entity_column"] == "entity_id" and ingest.parameters["rows"] == 3_000
    assert ingest.discarded == [], "ingest wrote beside its declared outputs"

    params = {"label_column": "label", "entity_column": ingest.parameters["entity_column"], "timestamp_column": ingest.parameters["timestamp_column"]}
    validate = launcher.run(component("validate"), parameters=params, inputs={"dataset": ingest.artifacts["dataset"]})
    assert validate.returncode == 0, validate.log
    schema = json.loads(validate.artifacts["schema"].path.read_text())
    assert schema["label_column"] == "label" and len(schema["columns"]) == 12
    assert "<html" in validate.artifacts["report"].path.read_text()
    assert validate.discarded == []
    assert sorted(p.name for p in validate.kept_dir.iterdir()) == ["anomalies", "executor_output.json", "report", "schema", "statistics"], "Metrics live in the executor output"


def test_bad_input_exits_non_zero_with_the_message(image, launcher, data_dir):
    proc = launcher.run(component("ingest"), parameters={"source_uri": "/data/bad.csv"}, volumes={data_dir: "/data:ro"})
    assert proc.returncode == 2, proc.log
    assert "delimiter is probably ';'" in proc.stderr
    assert proc.written == [] and proc.discarded == [], "a failed step leaves no half-written output"
    assert not proc.kept_dir.exists(), "the launcher keeps nothing of a failed step"


def test_featurize_in_its_image_without_network(image, features_image, launcher, data_dir):
    """The embedded default: registry and sqlite online store inside the feature_repo artifact."""
    ingest = launcher.run(component("ingest"), parameters=INGEST, volumes={data_dir: "/data:ro"})
    assert ingest.returncode == 0, ingest.log
    params = {"entity_column": "entity_id", "timestamp_column": "event_timestamp", "label_column": "label"}
    proc = launcher.run(component("featurize"), parameters=params, inputs={"dataset": ingest.artifacts["dataset"]})
    assert proc.returncode == 0, proc.log
    rows = {name: pq.read_metadata(proc.artifacts[name].path).num_rows for name in ("train", "validation", "test")}
    assert sum(rows.values()) == 3_000 and rows["train"] > rows["test"] > 0
    repo = proc.artifacts["feature_repo"].path
    assert (repo / "feature_store.yaml").exists() and (repo / "online.db").exists()
    assert proc.discarded == []


def test_train_register_and_deploy_without_network_on_a_volume(train_image, serve_image, launcher, tmp_path):
    """An air-gapped cluster: the MLflow store is sqlite on a mounted volume (a PVC) named by
    the parameter, not a file beside the model; the model reaches register as an artifact."""
    import pyarrow as pa

    from kfp_mlops.demo import iter_demo_batches

    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=4_000, seed=8))))
    inputs = {}
    for name, lo, hi in (("train", 0, 2_800), ("validation", 2_800, 3_400), ("test", 3_400, 4_000)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table.slice(lo, hi - lo), path)
        inputs[name] = launcher.imported(path, name)
    volume = tmp_path / "pvc"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)
    uri = "sqlite:////mnt/mlflow/mlflow.db"
    assert _imports(train_image, ("torch", "mlflow", "feast", "evidently")) == ["torch", "mlflow"]
    params = {"label_column": "label", "exclude_columns": "entity_id", "max_epochs": 2, "hidden_layers": "16", "mlflow_tracking_uri": uri}
    train = launcher.run(component("train"), parameters=params, inputs=inputs, volumes={volume: "/mnt/mlflow"})
    assert train.returncode == 0, train.log
    model = train.artifacts["model"]
    assert (model.path / "model.pt2").exists() and (model.path / "preprocessing.json").exists()
    assert ModelArtifact.from_metadata(model.metadata, where=model.uri).mlflow_run_id
    assert model.metadata == json.loads((train.kept_dir / "executor_output.json").read_text())["artifacts"]["model"]["artifacts"][0]["metadata"]
    assert train.discarded == [] and not list(model.path.rglob("*.db")), "the store is on the volume, not in the model"
    assert (volume / "mlflow.db").exists()

    register = launcher.run(component("register"), parameters={"label_column": "label"}, inputs={"model": model, "test": inputs["test"]}, volumes={volume: "/mnt/mlflow"})
    assert register.returncode == 0, register.log
    assert register.parameters == {"Output": True, "blessed": True, "version": "1", "aliases": "challenger,champion"}
    assert "Compared against: no champion" in register.stdout

    # deploy in its own image: the champion pinned, loaded (hashes checked) and rendered for KServe.
    params = {"model_name": "kfp-mlops-model", "target": "kserve", "mode": "dry-run", "namespace": "ml", "mlflow_tracking_uri": uri}
    deploy = launcher.run(component("deploy"), parameters=params, inputs={}, volumes={volume: "/mnt/mlflow"})
    assert deploy.returncode == 0, deploy.log
    rendered = list(yaml.safe_load_all((deploy.artifacts["manifests"].path / "manifests.yaml").read_text()))
    assert [m["kind"] for m in rendered] == ["InferenceService"]
    assert "models:/kfp-mlops-model/1" in rendered[0]["spec"]["predictor"]["containers"][0]["args"]
    assert deploy.parameters["endpoint"] == "http://kfp-mlops-model-champion.ml.svc.cluster.local"

    # The A/B gate in the serve image, air-gapped: it sees only its parameters and the log on the volume.
    from tests.unit.test_ab_gate import experiment

    experiment(volume / "logs")
    for path in (volume / "logs").rglob("*"):
        path.chmod(0o777)
    params = {"model_name": "kfp-mlops-model", "log_sink": "/mnt/mlflow/logs", "arms": "champion=50,challenger=50", "target": "kserve", "mode": "report"}
    gate = launcher.run(component("analyze_experiment"), parameters=params, inputs={}, volumes={volume: "/mnt/mlflow"})
    assert gate.returncode == 0, gate.log
    assert gate.parameters["Output"] == "promote" and gate.parameters["next_arms"] == ""
    assert "<svg" in gate.artifacts["report"].path.read_text() and gate.artifacts["metrics"].metadata["srm_mismatch"] == 0.0

    # The monitor in the serve image, air-gapped: the profile register stored in the run on the
    # volume, the registered model (hash-checked) scoring a drifted Dataset, Evidently on a sample.
    drifted = tmp_path / "drifted.parquet"
    pq.write_table(pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=3_000, seed=9, drift=0.8)))), drifted)
    params = {"model_names": "kfp-mlops-model", "mlflow_tracking_uri": uri, "evidently_sample_rows": 500}
    watched = launcher.run(component("monitor_models"), parameters=params, inputs={"current": launcher.imported(drifted, "current")}, volumes={volume: "/mnt/mlflow"})
    assert watched.returncode == 0, watched.log
    assert watched.parameters["Output"] is True and watched.parameters["drift_detected"] is True
    assert "<svg" in watched.artifacts["report"].path.read_text() and watched.artifacts["metrics"].metadata["dataset_drift"] == 1.0
    assert watched.artifacts["evidently_report"].path.stat().st_size > 10_000


# Each dependency's own switch, asked inside the image as a step would run (its ENV, no network).
TELEMETRY_PROBE = """
import importlib.util as u, json, os
state = {}
if u.find_spec("mlflow"):
    from mlflow.telemetry.utils import is_telemetry_disabled
    state["mlflow"] = is_telemetry_disabled()
if u.find_spec("dvc"):
    from dvc.analytics import is_enabled
    state["dvc"] = not is_enabled()
if u.find_spec("great_expectations"):
    state["great_expectations"] = os.environ.get("GX_ANALYTICS_ENABLED") == "false"
state["do_not_track"] = os.environ.get("DO_NOT_TRACK") == "true"
print(json.dumps(state))
"""


def test_usage_reporting_is_off_in_every_image(image, features_image, train_image, serve_image):
    """MLflow and DVC report usage unless told not to; the images tell them (and the pipeline's steps run with --network none)."""
    found = {}
    for name, tag in (("data", image), ("features", features_image), ("train", train_image), ("serve", serve_image)):
        proc = podman("run", "--rm", "--network", "none", tag, "python", "-c", TELEMETRY_PROBE)
        assert proc.returncode == 0, proc.stderr
        found[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(all(state.values()) for state in found.values()), found
    assert "dvc" in found["data"] and "mlflow" in found["train"], f"the probe reached the libraries it checks: {found}"
