"""The model server as a real process on loopback: V1 and V2 score like ServingTransform, bad requests get 400/413
and the server keeps serving, the registry reference and hash checks hold, feature lookup, the prediction log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared import prediction_log
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components._shared.model_artifact import MODEL_FILE
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import Registry
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.serving import ServingTransform
from tests.services import free_port, wait_for_port
from tests.unit.test_model_safety import FAST, _with_nulls
from tests.unit.test_train import KEYS, _splits

SERVE = [sys.executable, "-m", "kfp_mlops.components.serve", "--host", "127.0.0.1"]


class Server:
    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(SERVE + args + ["--http-port", str(self.port)], stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=120)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"server did not start: {log.read_text()[-3000:]}") from None
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=4_000)
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), FAST, model_dir=tmp / "model", tracking=TrackingSettings(uri, experiment="serve"))
    registered = register_model(tmp / "model", result.contract, paths["test"], registry=Registry(uri), name="served", thresholds=None, promote=True, tags={})
    assert registered.promoted
    return tmp, uri, paths


@pytest.fixture(scope="module")
def server(model):
    tmp, uri, _ = model
    sink = tmp / "predictions"
    server = Server(
        ["--model-uri", "models:/served@champion", "--tracking-uri", uri, "--log-sink", str(sink), "--log-flush-seconds", "0.2", "--max-payload-bytes", "200000", "--arm", "blue"], tmp / "server.log"
    )
    server.sink = sink
    yield server
    server.stop()


def _rows(model, n: int = 60):
    tmp, _, paths = model
    table = _with_nulls(paths["test"]).slice(0, n)
    transform = ServingTransform.load(tmp / "model")
    return table, transform, transform.prep.feature_names


def test_v1_and_v2_score_like_the_serving_transform(model, server):
    table, transform, names = _rows(model)
    expected = transform.predict_table(table)
    frame = transform.predict_frame(table.select(names).to_pandas())
    rows = table.select(names).to_pylist()
    assert any(r["age"] is None for r in rows) and any(r["country"] == "atlantis" for r in rows)
    v1 = server.client.post("/v1/models/served:predict", json={"instances": rows}, headers={"X-Request-Id": "batch-1"})
    assert v1.status_code == 200, v1.text
    body = v1.json()
    assert v1.headers["x-request-id"] == "batch-1" and body["request_id"] == "batch-1"
    assert body["predictions"] == frame["prediction"].tolist()
    np.testing.assert_allclose([p["1"] for p in body["probabilities"]], expected, rtol=0, atol=1e-7)
    as_lists = server.client.post("/v1/models/served:predict", json={"inputs": [[r[n] for n in names] for r in rows]}).json()
    assert as_lists["predictions"] == body["predictions"] and as_lists["probabilities"] == body["probabilities"]
    dtypes = {f.name: f.dtype for f in transform.contract.features}
    v2_type = {"double": "FP64", "int64": "INT64", "string": "BYTES"}
    inputs = [{"name": n, "shape": [len(rows)], "datatype": v2_type[dtypes[n]], "data": [r[n] for r in rows]} for n in names]
    v2 = server.client.post("/v2/models/served/infer", json={"id": "v2-req", "inputs": inputs})
    assert v2.status_code == 200, v2.text
    out = {o["name"]: o for o in v2.json()["outputs"]}
    assert v2.json()["id"] == "v2-req" and v2.headers["x-request-id"] == "v2-req"
    assert out["prediction"]["datatype"] == "BYTES" and out["prediction"]["data"] == body["predictions"]
    probs = np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"])
    assert out["probabilities"]["parameters"]["classes"] == ["0", "1"]
    np.testing.assert_allclose(probs[:, 1], expected, rtol=0, atol=1e-7)


def test_health_ready_and_metadata(server):
    c = server.client
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}
    assert c.get("/v2/models/served/ready").json() == {"name": "served", "ready": True}
    assert c.get("/v1/models/served").json() == {"name": "served", "ready": True}
    meta = c.get("/v2/models/served").json()
    assert meta["versions"] == ["1"] and meta["parameters"]["classes"] == ["0", "1"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["age"] == "INT64" and {i["name"]: i["datatype"] for i in meta["inputs"]}["country"] == "BYTES"
    assert c.get("/v2/models/unknown").status_code == 404
    for action in ("unload", "load"):  # KServe's repository extension: no client may unload the model
        assert c.post(f"/v2/repository/models/served/{action}").status_code in (404, 405)
    assert c.get("/v2/models/served/ready").json() == {"name": "served", "ready": True}


def test_bad_requests_get_400_naming_the_field_and_the_server_keeps_serving(model, server):
    table, _, names = _rows(model, 2)
    good = table.select(names).to_pylist()
    c = server.client
    cases = [
        ({"instances": [{**good[0], "bogus": 1}]}, "unknown feature 'bogus'"),
        ({"instances": [{k: v for k, v in good[0].items() if k != "amount"}]}, "feature 'amount' is missing"),
        ({"instances": [{**good[0], "amount": "lots"}]}, "'amount' got text 'lots'"),
        ({"instances": [[1.0, 2.0]]}, "instances[0]: the row has 2 values"),
        ({"instances": [good[0], {**good[1], "age": [3]}]}, "instances[1]: numeric feature 'age' got a list"),
        ({"instances": []}, "non-empty list"),
    ]
    for body, named in cases:
        response = c.post("/v1/models/served:predict", json=body)
        assert response.status_code == 400 and named in response.json()["error"], (named, response.text)
    bad_json = c.post("/v1/models/served:predict", content=b'{"instances": [', headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    v2_bad = c.post("/v2/models/served/infer", json={"inputs": [{"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.0]}]})
    assert v2_bad.status_code == 400 and "'data' holds 1 values but shape says 2" in v2_bad.json()["error"]
    v2_type = c.post("/v2/models/served/infer", json={"inputs": [{"name": "country", "shape": [1], "datatype": "FP64", "data": ["fr"]}]})
    assert v2_type.status_code == 400 and "country" in v2_type.json()["error"]
    too_big = c.post("/v1/models/served:predict", json={"instances": [good[0]] * 2000})
    assert too_big.status_code == 413 and "--max-payload-bytes" in too_big.json()["error"]

    def chunks():
        yield b'{"instances": ['
        for _ in range(20_000):  # 320 kB, over the 200 kB limit
            yield b'{"amount": 1.0},'
        yield b"{}]}"

    streamed = c.post("/v1/models/served:predict", content=chunks())  # no Content-Length: counted as it streams
    assert streamed.status_code == 413
    after = c.post("/v1/models/served:predict", json={"instances": good})
    assert after.status_code == 200 and len(after.json()["predictions"]) == 2


def test_predictions_are_logged_per_row_and_feedback_is_written(model, server):
    table, _, names = _rows(model, 3)
    rows = table.select(names).to_pylist()
    request_id = uuid.uuid4().hex
    answer = server.client.post("/v1/models/served:predict", json={"instances": rows}, headers={"X-Request-Id": request_id, "X-Kfp-Mlops-Key": "user-7"}).json()
    single = server.client.post("/v1/models/served:predict", json={"instances": rows[:1]}).json()
    ids = {f"{request_id}/{i}" for i in range(3)} | {single["request_id"]}
    logged = None
    for _ in range(100):  # the writer flushes every 0.2 s; poll for the rows, no timing asserted
        found = prediction_log.read_predictions(str(server.sink))
        if found.num_rows and ids <= set(found.column("request_id").to_pylist()):
            logged = found
            break
        time.sleep(0.2)
    assert logged is not None, server.log.read_text()[-2000:]
    mine = {r["request_id"]: r for r in logged.to_pylist() if r["request_id"] in ids}
    first = mine[f"{request_id}/0"]
    assert first["arm"] == "blue" and first["model_name"] == "served" and first["model_version"] == "1" and first["routing_key"] == "user-7"
    assert first["prediction"] == answer["predictions"][0] and abs(first["score"] - answer["probabilities"][0]["1"]) < 1e-6
    assert '"country"' in first["features"]
    written = server.client.post("/v1/feedback", json={"outcomes": [{"request_id": f"{request_id}/0", "outcome": "1"}, {"request_id": single["request_id"], "outcome": 0}]})
    assert written.status_code == 200 and written.json() == {"written": 2}
    assert server.client.post("/v1/feedback", json={"outcomes": [{"outcome": "1"}]}).status_code == 400


def test_a_missing_alias_fails_before_binding_with_exit_code_2(model):
    tmp, uri, _ = model
    port = free_port()
    proc = subprocess.run(SERVE + ["--model-uri", "models:/served@nonexistent", "--tracking-uri", uri, "--http-port", str(port)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "models:/served@nonexistent" in proc.stderr and "no alias 'nonexistent'" in proc.stderr and "What to do:" in proc.stderr
    missing_version = subprocess.run(SERVE + ["--model-uri", "models:/served/99", "--tracking-uri", uri], capture_output=True, text=True, timeout=180)
    assert missing_version.returncode == 2 and "no version 99" in missing_version.stderr


def test_a_tampered_model_file_is_refused(model, tmp_path):
    tmp, uri, _ = model
    stored = Path(Registry(uri).client.get_model_version_download_uri("served", "1").removeprefix("file://"))
    target = next(stored.rglob(MODEL_FILE))
    original = target.read_bytes()
    try:
        target.write_bytes(original + b"\0")
        proc = subprocess.run(SERVE + ["--model-uri", "models:/served/1", "--tracking-uri", uri], capture_output=True, text=True, timeout=180)
    finally:
        target.write_bytes(original)
    assert proc.returncode == 2 and "does not match the hash" in proc.stderr, proc.stderr[-2000:]
    local = tmp_path / "local"
    shutil.copytree(tmp / "model", local)
    (local / MODEL_FILE).write_bytes((local / MODEL_FILE).read_bytes() + b"\0")
    proc = subprocess.run(SERVE + ["--model-uri", str(local)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and "does not match the hash" in proc.stderr


# -- feature lookup --------------------------------------------------------------------
@pytest.fixture(scope="module")
def featurized(tmp_path_factory):
    from kfp_mlops.components.featurize.core import featurize
    from kfp_mlops.components.featurize.training_set import SPLITS
    from kfp_mlops.demo import DemoSpec, write_demo_dataset
    from tests.unit.test_featurize import SPEC

    tmp = tmp_path_factory.mktemp("lookup")
    dataset = write_demo_dataset(tmp / "events.parquet", DemoSpec(rows=3_000, seed=5))
    paths = {name: tmp / "out" / f"{name}.parquet" for name in SPLITS}
    featurize(dataset, SPEC, repo_dir=tmp / "out" / "repo", split_paths=paths)
    train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), FAST, model_dir=tmp / "model")
    server = Server(
        ["--model-uri", str(tmp / "model"), "--model-name", "m", "--feature-repo", str(tmp / "out" / "repo"), "--log-sink", str(tmp / "logs"), "--log-flush-seconds", "0.2"], tmp / "server.log"
    )
    yield tmp, paths, server
    server.stop()


def test_entity_keys_get_their_features_from_the_online_store(featurized):
    from kfp_mlops.components.featurize.repo import open_store

    tmp, _, server = featurized
    transform = ServingTransform.load(tmp / "model")
    store = open_store(tmp / "out" / "repo")
    keys = sorted(set(pq.read_table(tmp / "out" / "repo" / "data" / "features.parquet", columns=["entity_id"]).column("entity_id").to_pylist()))[:20]
    online = store.get_online_features(features=store.get_feature_service("demo_training"), entity_rows=[{"entity_id": k} for k in keys]).to_dict()
    sent = [{n: online[n][i] for n in transform.prep.feature_names} for i in range(len(keys))]
    by_features = server.client.post("/v1/models/m:predict", json={"instances": sent}).json()
    by_keys = server.client.post("/v1/models/m:predict", json={"instances": [{"entity_id": k} for k in keys]})
    assert by_keys.status_code == 200, by_keys.text
    assert by_keys.json()["predictions"] == by_features["predictions"] and by_keys.json()["probabilities"] == by_features["probabilities"]
    assert by_keys.json()["rows_without_stored_features"] == 0
    overridden = server.client.post("/v1/models/m:predict", json={"instances": [{"entity_id": keys[0], "country": "atlantis"}]}).json()
    explicit = server.client.post("/v1/models/m:predict", json={"instances": [{**sent[0], "country": "atlantis"}]}).json()
    assert overridden["probabilities"] == explicit["probabilities"], "a value sent in the row wins over the stored one"
    unknown = server.client.post("/v1/models/m:predict", json={"instances": [{"entity_id": 10**12}, {"entity_id": keys[1]}]}).json()
    assert unknown["rows_without_stored_features"] == 1


def test_a_feature_store_outage_is_503_and_the_server_recovers(featurized):
    tmp, _, server = featurized
    online_db = next((tmp / "out" / "repo").rglob("online.db"))
    original = online_db.read_bytes()
    request = {"instances": [{"entity_id": 1}]}
    assert server.client.post("/v1/models/m:predict", json=request).status_code == 200
    try:
        with open(online_db, "r+b") as handle:  # the same file made unreadable in place, as a broken disk would
            handle.write(b"\0" * min(len(original), 4096) + b"not a database" * 64)
        broken = server.client.post("/v1/models/m:predict", json=request)
    finally:
        online_db.write_bytes(original)
    assert broken.status_code == 503 and "online store" in broken.json()["error"], broken.text
    recovered = server.client.post("/v1/models/m:predict", json=request)
    assert recovered.status_code == 200, recovered.text
    assert os.path.getsize(online_db) == len(original)
    # The failure counts against the arm: the A/B error-rate guardrail reads it from the log.
    from kfp_mlops.components._shared.prediction_log import read_errors

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and read_errors(str(tmp / "logs")).num_rows == 0:
        time.sleep(0.2)
    errors = read_errors(str(tmp / "logs")).to_pylist()
    assert [(e["status"], e["request_id"]) for e in errors] == [(503, broken.headers["x-request-id"])]


def test_two_workers_each_load_the_model_from_its_files(model, tmp_path):
    """kserve pickles the model for workers > 1 and a torch.export program cannot be pickled:
    each worker loads the files itself (checked against the same hashes) and answers alike."""
    import time

    import psutil

    tmp, _, _ = model
    server = Server(["--model-uri", str(tmp / "model"), "--workers", "2"], tmp_path / "workers.log")
    try:
        table, transform, names = _rows(model, 8)
        expected = transform.predict_table(table)
        rows = table.select(names).to_pylist()
        deadline = time.monotonic() + 180
        answered = 0
        while time.monotonic() < deadline and answered < 40:
            try:
                reply = server.client.post("/v1/models/model:predict", json={"instances": rows})
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if reply.status_code != 200:
                time.sleep(0.5)
                continue
            np.testing.assert_allclose([p["1"] for p in reply.json()["probabilities"]], expected, rtol=0, atol=1e-7)
            answered += 1
        assert answered == 40, server.log.read_text()[-3000:]
        workers = [p for p in psutil.Process(server.proc.pid).children(recursive=True) if "python" in p.name()]
        assert len(workers) >= 2, [p.cmdline()[:3] for p in workers]
    finally:
        server.stop()
