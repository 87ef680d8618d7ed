"""Build the component image from the Dockerfile, then run each component's own compiled
command inside it with podman and no network: what an air-gapped cluster would run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.services import require

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".oci"
TAG = "localhost/kfp-mlops-data:test"
FEATURES_TAG = "localhost/kfp-mlops-features:test"
TRAIN_TAG = "localhost/kfp-mlops-train:test"
TOOLS = ("buildah", "podman", "runc", "debootstrap")


def _podman(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(WORK / "containers.conf")}
    storage = ["--root", str(WORK / "storage"), "--runroot", str(WORK / "run"), "--storage-driver", "overlay"]
    return subprocess.run(["podman", *storage, *args], capture_output=True, text=True, env=env, check=check)


def _build(target: str, tag: str) -> str:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    require(not missing, f"container tools missing: {missing} (apt-get install buildah podman runc debootstrap)")
    require(os.geteuid() == 0, "building images here needs root (buildah chroot isolation)")
    proc = subprocess.run(["bash", str(REPO / "tests/container/base_image.sh"), str(WORK), target, tag], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return tag


@pytest.fixture(scope="module")
def image() -> str:
    return _build("data", TAG)


@pytest.fixture(scope="module")
def features_image() -> str:
    return _build("features", FEATURES_TAG)


@pytest.fixture(scope="module")
def train_image() -> str:
    return _build("train", TRAIN_TAG)


def _executor(component: str) -> tuple[list[str], dict]:
    spec = yaml.safe_load((REPO / "compiled" / "components" / f"{component}.yaml").read_text().split("\n---\n")[0])
    container = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]
    return container["command"] + container["args"], spec["root"]


def _executor_input(root: dict, params: dict, inputs: dict[str, tuple[str, dict]], out_dir: str) -> str:
    """The JSON the KFP launcher hands a step: input values and artifacts, output URIs and files."""
    outputs = root.get("outputDefinitions", {})
    return json.dumps(
        {
            "inputs": {
                "parameterValues": params,
                "artifacts": {
                    name: {"artifacts": [{"name": name, "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}, "uri": uri, "metadata": meta}]}
                    for name, (uri, meta) in inputs.items()
                },
            },
            "outputs": {
                "artifacts": {
                    name: {"artifacts": [{"name": name, "type": {"schemaTitle": d["artifactType"]["schemaTitle"], "schemaVersion": d["artifactType"]["schemaVersion"]}, "uri": f"{out_dir}/{name}", "metadata": {}}]}
                    for name, d in outputs.get("artifacts", {}).items()
                },
                "parameters": {name: {"outputFile": f"{out_dir}/params/{name}"} for name in outputs.get("parameters", {})},
                "outputFile": f"{out_dir}/executor_output.json",
            },
        }
    )


def _imports(image: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
    proc = _podman("run", "--rm", "--network", "none", image, "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip())  # noqa: S307 - our own print of a list of names


def _run_component(image: str, io: Path, component: str, params: dict, inputs: dict | None = None) -> subprocess.CompletedProcess:
    argv, root = _executor(component)
    payload = _executor_input(root, params, inputs or {}, f"/io/out/{component}")
    argv = [a.replace("{{$}}", payload) for a in argv]
    return _podman("run", "--rm", "--network", "none", "-v", f"{io}:/io", image, *argv)


def _run_on_ingested(image: str, io: Path, component: str, params: dict) -> subprocess.CompletedProcess:
    """Run ``component`` with the dataset a previous ingest run wrote under io/out/ingest as its input."""
    meta = json.loads((io / "out" / "ingest" / "executor_output.json").read_text())["artifacts"]["dataset"]["artifacts"][0]["metadata"]
    return _run_component(image, io, component, params, {"dataset": ("/io/out/ingest/dataset", meta)})


@pytest.fixture
def io_dir(tmp_path) -> Path:
    io = tmp_path / "io"
    (io / "in").mkdir(parents=True)
    (io / "out").mkdir()
    write_demo_dataset(io / "in" / "demo.csv", DemoSpec(rows=3_000, seed=4))
    (io / "in" / "bad.csv").write_text("a;b;c\n1;2;3\n")
    for path in [io, *io.rglob("*")]:
        path.chmod(0o777)  # the image runs as uid 1000
    return io


def test_images_carry_only_what_their_steps_import(image, features_image):
    assert _imports(image, ("torch", "feast", "mlflow", "evidently", "pandas", "duckdb")) == []
    assert _imports(features_image, ("torch", "feast", "mlflow", "evidently", "duckdb", "redis", "psycopg")) == ["feast", "duckdb", "redis", "psycopg"]


def test_ingest_then_validate_in_the_image_without_network(image, io_dir):
    ingest = _run_component(image, io_dir, "ingest", {"source_uri": "/io/in/demo.csv", "entity_column": "entity_id", "timestamp_column": "event_timestamp"})
    assert ingest.returncode == 0, ingest.stdout[-2000:] + ingest.stderr[-4000:]
    out = io_dir / "out" / "ingest"
    assert pq.read_metadata(out / "dataset").num_rows == 3_000
    executor_output = json.loads((out / "executor_output.json").read_text())
    assert executor_output["artifacts"]["dataset"]["artifacts"][0]["metadata"]["rows"] == 3_000
    assert executor_output["parameterValues"]["entity_column"] == "entity_id"

    validate = _run_on_ingested(image, io_dir, "validate", {"label_column": "label", "entity_column": "entity_id", "timestamp_column": "event_timestamp"})
    assert validate.returncode == 0, validate.stdout[-2000:] + validate.stderr[-4000:]
    vout = io_dir / "out" / "validate"
    schema = json.loads((vout / "schema").read_text())
    assert schema["label_column"] == "label" and len(schema["columns"]) == 12
    assert "<html" in (vout / "report").read_text()


def test_bad_input_exits_non_zero_with_the_message(image, io_dir):
    proc = _run_component(image, io_dir, "ingest", {"source_uri": "/io/in/bad.csv"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "delimiter is probably ';'" in proc.stderr
    assert not (io_dir / "out" / "ingest" / "dataset").exists()


def test_featurize_in_its_image_without_network(image, features_image, io_dir):
    ingest = _run_component(image, io_dir, "ingest", {"source_uri": "/io/in/demo.csv", "entity_column": "entity_id", "timestamp_column": "event_timestamp"})
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    proc = _run_on_ingested(features_image, io_dir, "featurize", {"entity_column": "entity_id", "timestamp_column": "event_timestamp", "label_column": "label"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = io_dir / "out" / "featurize"
    rows = {name: pq.read_metadata(out / name).num_rows for name in ("train", "validation", "test")}
    assert sum(rows.values()) == 3_000 and rows["train"] > rows["test"] > 0
    assert (out / "feature_repo" / "feature_store.yaml").exists() and (out / "feature_repo" / "online.db").exists()


def test_train_in_its_image_without_network(train_image, io_dir):
    import pyarrow as pa

    from kfp_mlops.demo import iter_demo_batches

    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=4_000, seed=8))))
    inputs = {}
    for name, lo, hi in (("train", 0, 2_800), ("validation", 2_800, 3_400), ("test", 3_400, 4_000)):
        path = io_dir / "in" / f"{name}.parquet"
        pq.write_table(table.slice(lo, hi - lo), path)
        path.chmod(0o777)
        inputs[name] = (f"/io/in/{name}.parquet", {})
    assert _imports(train_image, ("torch", "mlflow", "feast", "evidently")) == ["torch", "mlflow"]
    proc = _run_component(train_image, io_dir, "train", {"label_column": "label", "exclude_columns": "entity_id", "max_epochs": 2, "hidden_layers": "16"}, inputs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = io_dir / "out" / "train"
    assert (out / "model" / "model.pt2").exists() and (out / "model" / "preprocessing.json").exists()
    metadata = json.loads((out / "executor_output.json").read_text())["artifacts"]["model"]["artifacts"][0]["metadata"]
    assert metadata["test_roc_auc"] > 0.6 and metadata["mlflow_run_id"]


def test_register_in_the_train_image_without_network(train_image, io_dir):
    """After the train step above wrote its model and sqlite MLflow store under io/out/train."""
    test_train_in_its_image_without_network(train_image, io_dir)
    executor = json.loads((io_dir / "out" / "train" / "executor_output.json").read_text())
    model_meta = executor["artifacts"]["model"]["artifacts"][0]["metadata"]
    argv, root = _executor("register")
    payload = json.loads(_executor_input(root, {"label_column": "label"}, {"test": ("/io/in/test.parquet", {})}, "/io/out/register"))
    payload["inputs"]["artifacts"]["model"] = {"artifacts": [{"name": "model", "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}, "uri": "/io/out/train/model", "metadata": model_meta}]}
    argv = [a.replace("{{$}}", json.dumps(payload)) for a in argv]
    proc = _podman("run", "--rm", "--network", "none", "-v", f"{io_dir}:/io", train_image, *argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    outputs = json.loads((io_dir / "out" / "register" / "executor_output.json").read_text())
    assert outputs["parameterValues"]["blessed"] is True and outputs["parameterValues"]["version"] == "1"
