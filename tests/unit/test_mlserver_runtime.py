"""The Seldon Core v2 runtime: MLServer 1.7.1 loads a logged kfp-mlops model folder as is and scores like training.

MLServer needs fastapi below 0.116, which this environment's Feast and KServe refuse,
so the test builds the layered environment the mlserver image has: a venv holding
only MLServer's own pins (components/serve/mlserver-constraints.txt) in front of this
environment's packages.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import requests

from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.loop import TrainConfig
from kfp_mlops.components.train.mlflow_model import MLSERVER_SETTINGS, MLSERVER_SETTINGS_FILE
from kfp_mlops.components.train.serving import ServingTransform
from tests.services import free_port, require, wait_for_port
from tests.unit.test_train import KEYS, _splits

REPO = Path(__file__).resolve().parents[2]
MLSERVER_PINS = REPO / "components" / "serve" / "mlserver-constraints.txt"


@pytest.fixture(scope="module")
def mlserver_env(tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("mlserver-env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    layer = next(Path(p) for p in (env / "lib").glob("python3*/site-packages"))
    base = [p for p in site.getsitepackages() if p.startswith(sys.prefix)][0]
    # addsitedir, not a plain path: the base's .pth files (the editable kfp-mlops) must run too.
    (layer / "zz_kfp_mlops_base.pth").write_text(f"import site; site.addsitedir({base!r})\n")
    constraints = env / "constraints.txt"
    lines = [line for line in (REPO / "constraints.txt").read_text().splitlines() if not line.startswith(("fastapi==", "starlette=="))]
    constraints.write_text("\n".join(lines + MLSERVER_PINS.read_text().splitlines()) + "\n")
    proc = subprocess.run([str(env / "bin" / "pip"), "install", "-q", "-c", str(constraints), "mlserver"], capture_output=True, text=True)
    require(proc.returncode == 0, f"MLServer could not be installed from the package index: {proc.stderr[-500:]}")
    return env


@pytest.fixture(scope="module")
def logged_model(tmp_path_factory):
    from mlflow.artifacts import download_artifacts

    tmp = tmp_path_factory.mktemp("mlserver-model")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=3_000)
    result = train_model(
        TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS),
        TrainConfig(hidden=(16,), max_epochs=2),
        model_dir=tmp / "model",
        tracking=TrackingSettings(uri, experiment="mlserver"),
    )
    stored = Path(download_artifacts(artifact_uri=result.contract.mlflow_model_uri, dst_path=str(tmp / "stored"), tracking_uri=uri))
    return tmp, stored, paths


def test_the_logged_model_folder_carries_the_runtime_settings(logged_model):
    _, stored, _ = logged_model
    assert json.loads((stored / MLSERVER_SETTINGS_FILE).read_text()) == MLSERVER_SETTINGS


def test_mlserver_serves_the_logged_folder_and_scores_like_training(mlserver_env, logged_model, tmp_path):
    tmp, stored, paths = logged_model
    repo = tmp_path / "models"
    shutil.copytree(stored, repo / "churn")
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (repo / "settings.json").write_text(json.dumps({"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port, "parallel_workers": 0}))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = (tmp_path / "mlserver.log").open("w")
    proc = subprocess.Popen([str(mlserver_env / "bin" / "mlserver"), "start", str(repo)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        wait_for_port(http_port, timeout=90)
        base = f"http://127.0.0.1:{http_port}"
        for _ in range(300):
            if requests.get(f"{base}/v2/models/churn/ready", timeout=5).status_code == 200:
                break
            assert proc.poll() is None, (tmp_path / "mlserver.log").read_text()[-3000:]
            import time

            time.sleep(0.2)
        transform = ServingTransform.load(next(p.parent for p in stored.rglob("kfp_mlops_model.json")))
        table = pq.read_table(paths["test"]).slice(0, 64)
        inputs = []
        for feature in transform.contract.features:
            values = table.column(feature.name).to_pylist()
            datatype = "BYTES" if feature.kind == "categorical" and isinstance(values[0], str) else ("INT64" if "int" in feature.dtype else "FP64")
            inputs.append({"name": feature.name, "shape": [len(values)], "datatype": datatype, "data": values})
        answer = requests.post(f"{base}/v2/models/churn/infer", json={"id": "r1", "inputs": inputs}, timeout=30)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        expected = transform.predict_frame(table.to_pandas())
        assert outputs["prediction"]["data"] == expected["prediction"].tolist()
        probabilities = np.array(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
        np.testing.assert_allclose(probabilities[:, 1], expected[f"probability_{transform.contract.classes[1]}"], rtol=1e-5, atol=1e-6)

        bad = requests.post(f"{base}/v2/models/churn/infer", json={"inputs": [{"name": "no_such_feature", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, timeout=30)
        assert bad.status_code == 400 and "no_such_feature" in bad.text, bad.text
        again = requests.post(f"{base}/v2/models/churn/infer", json={"id": "r2", "inputs": inputs}, timeout=30)
        assert again.status_code == 200, "the runtime keeps serving after a bad request"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
