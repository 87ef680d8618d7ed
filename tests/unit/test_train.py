"""The trainer on real data: preprocessing, metrics, determinism, export, MLflow, resume after a kill, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components._shared.model_artifact import MODEL_FILE, PREPROCESSING_FILE
from kfp_mlops.components.train import metrics as M
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.entry import weights_digest
from kfp_mlops.components.train.loop import CHECKPOINT, TrainConfig, TrainError
from kfp_mlops.components.train.preprocessing import Preprocessing, fit
from kfp_mlops.components.train.serving import load_program
from kfp_mlops.demo import DemoSpec, iter_demo_batches

KEYS = frozenset({"entity_id", "event_timestamp"})
FAST = TrainConfig(hidden=(32, 16), max_epochs=4, batch_size=256, patience=2)


def _splits(folder: Path, rows: int = 20_000, seed: int = 3, transform=None) -> dict[str, Path]:
    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=rows, seed=seed))))
    if transform is not None:
        table = transform(table)
    folder.mkdir(parents=True, exist_ok=True)
    cuts = [0, int(rows * 0.7), int(rows * 0.85), rows]
    paths = {}
    for name, lo, hi in zip(("train", "validation", "test"), cuts, cuts[1:]):
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table.slice(lo, hi - lo), paths[name])
    return paths


def _inputs(paths: dict[str, Path], **kw) -> TrainInputs:
    return TrainInputs(paths["train"], paths["validation"], paths["test"], kw.pop("label", "label"), kw.pop("exclude", KEYS), **kw)


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, Path]:
    return _splits(tmp_path_factory.mktemp("splits"))


def test_preprocessing_is_fitted_on_train_and_maps_unseen_categories(splits):
    train = pq.read_table(splits["train"])
    prep = fit(train, label="label", exclude=set(KEYS))
    amount = next(c for c in prep.numeric if c.name == "amount")
    assert amount.mean == pytest.approx(float(np.mean(train.column("amount").to_numpy())))
    assert prep.task == "binary" and prep.classes == ["0", "1"]
    probe = pa.table({**{c.name: [1.0, None] for c in prep.numeric}, **{c.name: ["never-seen", None] for c in prep.categorical}})
    numeric, categorical = prep.encode_features(probe)
    assert (categorical == 0).all(), "unseen and null categories go to the unknown bucket 0"
    assert np.isnan(numeric[1]).all()


def test_non_finite_policy(tmp_path):
    bad = lambda t: t.set_column(t.schema.get_field_index("score_a"), "score_a", pa.array(np.where(np.arange(len(t)) % 100 == 0, np.inf, t.column("score_a").to_numpy())))  # noqa: E731
    paths = _splits(tmp_path, rows=3_000, transform=bad)
    with pytest.raises(DataError, match="'score_a' has 21 NaN or infinite values"):
        train_model(_inputs(paths, non_finite="error"), FAST, model_dir=tmp_path / "m1")
    result = train_model(_inputs(paths), FAST, model_dir=tmp_path / "m2")
    assert np.isfinite(result.test_metrics["log_loss"])


@pytest.mark.parametrize(
    ("transform", "kwargs", "message"),
    [
        (lambda t: t.set_column(t.schema.get_field_index("label"), "label", pa.array(np.zeros(len(t), dtype=np.int64))), {}, "single class"),
        (None, {"label": "churned"}, "label column 'churned' is missing"),
        (lambda t: t.slice(0, 3), {}, "rows"),
    ],
)
def test_bad_training_data(tmp_path, transform, kwargs, message):
    paths = _splits(tmp_path, rows=3_000, transform=transform)
    with pytest.raises((DataError, TrainError), match=message):
        train_model(_inputs(paths, **kwargs), FAST, model_dir=tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_required_gpu_that_is_absent(splits, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(TrainError, match="a GPU is required but none is visible"):
        train_model(_inputs(splits), TrainConfig(gpu="require", max_epochs=1), model_dir=tmp_path / "model")


def test_metrics_match_scikit_learn():
    from sklearn import metrics as sk

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2_000)
    p = np.clip(y * 0.3 + rng.random(2_000) * 0.7, 0, 1).round(2)  # ties on purpose
    ours = M.classification(y, p)
    assert ours["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
    assert ours["f1"] == pytest.approx(sk.f1_score(y, p >= 0.5))
    assert ours["log_loss"] == pytest.approx(sk.log_loss(y, p), rel=1e-9)
    probs = rng.dirichlet([1, 1, 1], 500)
    y3 = rng.integers(0, 3, 500)
    multi = M.classification(y3, probs)
    assert multi["roc_auc"] == pytest.approx(sk.roc_auc_score(y3, probs, multi_class="ovr"), abs=1e-12)
    assert multi["f1"] == pytest.approx(sk.f1_score(y3, probs.argmax(1), average="macro"))
    target, pred = rng.normal(size=300), rng.normal(size=300)
    reg = M.regression(target, pred)
    assert reg["r2"] == pytest.approx(sk.r2_score(target, pred)) and reg["mae"] == pytest.approx(sk.mean_absolute_error(target, pred))


def test_deterministic_on_cpu_and_better_than_chance(splits, tmp_path):
    first = train_model(_inputs(splits), FAST, model_dir=tmp_path / "a")
    second = train_model(_inputs(splits), FAST, model_dir=tmp_path / "b")
    assert weights_digest(first.fit.net) == weights_digest(second.fit.net)
    assert first.test_metrics == second.test_metrics
    assert first.test_metrics["roc_auc"] > 0.7


def test_early_stopping_and_learning_rate_schedule(splits, tmp_path):
    result = train_model(_inputs(splits), TrainConfig(hidden=(32,), max_epochs=40, patience=3, learning_rate=0.05, ensemble_size=2), model_dir=tmp_path / "m")
    assert result.fit.stopped_early and len(result.fit.history) < 40
    assert result.fit.history[result.fit.best_epoch]["val_roc_auc"] == max(h["val_roc_auc"] for h in result.fit.history)
    rates = [h["learning_rate"] for h in result.fit.history]
    assert rates[0] == pytest.approx(0.05) and all(a > b for a, b in zip(rates, rates[1:])), "full rate after the warm-up epoch, then a cosine decay over max_epochs"


def test_exported_model_loads_without_pickle_and_predicts_like_training(splits, tmp_path):
    result = train_model(_inputs(splits), FAST, model_dir=tmp_path / "model")
    program = load_program(tmp_path / "model" / MODEL_FILE)
    prep = Preprocessing.load(tmp_path / "model" / PREPROCESSING_FILE)
    test = pq.read_table(splits["test"])
    numeric, categorical = prep.encode_features(test)
    with torch.no_grad():
        probs = program(torch.from_numpy(numeric), torch.from_numpy(categorical)).numpy()
    assert M.classification(prep.encode_label(test), probs)["roc_auc"] == pytest.approx(result.test_metrics["roc_auc"], abs=1e-9)


def test_multiclass_and_regression(tmp_path):
    to_plan = lambda t: t.drop_columns(["label"]).append_column("label", t.column("plan"))  # noqa: E731
    paths = _splits(tmp_path / "multi", rows=6_000, transform=lambda t: to_plan(t).drop_columns(["plan"]))
    multi = train_model(_inputs(paths), FAST, model_dir=tmp_path / "m")
    assert multi.preprocessing.task == "multiclass" and len(multi.confusion) == 4
    as_amount = lambda t: t.drop_columns(["label"]).append_column("label", t.column("amount")).drop_columns(["amount"])  # noqa: E731
    paths = _splits(tmp_path / "reg", rows=6_000, transform=as_amount)
    reg = train_model(_inputs(paths), FAST, model_dir=tmp_path / "r")
    assert reg.preprocessing.task == "regression" and set(reg.test_metrics) == {"rmse", "mae", "r2"}


def test_mlflow_run_records_params_epochs_tags_and_model(splits, tmp_path):
    import mlflow
    import pandas as pd

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = TrackingSettings(uri, experiment="tests", tags=(("kfp.run_id", "run-123"), ("dataset.fingerprint", "abc")))
    result = train_model(_inputs(splits), FAST, model_dir=tmp_path / "model", tracking=tracking)
    client = mlflow.tracking.MlflowClient(uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["kfp.run_id"] == "run-123" and run.data.tags["dataset.fingerprint"] == "abc"
    assert run.data.params["hidden"] == "32,16" and run.info.status == "FINISHED"
    assert len(client.get_metric_history(result.mlflow_run_id, "val_roc_auc")) == len(result.fit.history)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(result.test_metrics["roc_auc"])
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(result.model_uri)
    frame = pq.read_table(splits["test"]).to_pandas().head(3)
    frame.loc[0, "country"] = "never-seen"
    out = model.predict(frame)
    assert list(out.columns) == ["prediction", "probability_0", "probability_1"] and len(out) == 3
    assert model.metadata.signature is not None and isinstance(out, pd.DataFrame)


def _entry(paths: dict[str, Path], model_dir: Path, *extra: str) -> list[str]:
    return [
        "-m", "kfp_mlops.components.train.entry",
        "--train", str(paths["train"]), "--validation", str(paths["validation"]), "--test", str(paths["test"]),
        "--label", "label", "--exclude", "entity_id,event_timestamp", "--model-dir", str(model_dir),
        "--hidden", "32,16", "--patience", "50", *extra,
    ]  # fmt: skip


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    paths = _splits(tmp_path / "data", rows=60_000)
    args = ["--epochs", "6", "--batch-size", "64"]
    subprocess.run([sys.executable, *_entry(paths, tmp_path / "full" / "model", *args)], check=True, capture_output=True)
    reference = json.loads((tmp_path / "full" / "result-rank0.json").read_text())

    ckpt = tmp_path / "ckpt"
    cmd = [sys.executable, *_entry(paths, tmp_path / "resumed" / "model", *args, "--checkpoint-dir", str(ckpt))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (ckpt / CHECKPOINT).exists() and torch.load(ckpt / CHECKPOINT, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "resumed" / "model").exists(), "a killed run leaves no model"
    subprocess.run(cmd, check=True, capture_output=True)  # the retry
    resumed = json.loads((tmp_path / "resumed" / "result-rank0.json").read_text())
    assert resumed["resumed_from"] >= 2
    assert resumed["weights_sha256"] == reference["weights_sha256"], "resuming continues exactly where the run stopped"
    assert resumed["test_metrics"] == reference["test_metrics"]


def test_ddp_two_ranks_on_cpu(splits, tmp_path):
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    single = subprocess.run([sys.executable, *_entry(splits, tmp_path / "one" / "model", "--epochs", "4")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run(
        [torchrun, "--nproc_per_node=2", "--master_port", str(29_500 + os.getpid() % 1000), *_entry(splits, tmp_path / "two" / "model", "--epochs", "4")],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert ddp.returncode == 0, ddp.stderr[-5000:]
    ranks = [json.loads((tmp_path / "two" / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2 and ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"], "identical weights on every rank"
    one = json.loads((tmp_path / "one" / "result-rank0.json").read_text())
    assert abs(ranks[0]["test_metrics"]["roc_auc"] - one["test_metrics"]["roc_auc"]) < 0.02, "same quality as one process"
    assert (tmp_path / "two" / "model" / MODEL_FILE).exists()


def test_failed_mlflow_logging_leaves_no_model_and_marks_the_run_failed(splits, tmp_path, monkeypatch):
    import mlflow

    from kfp_mlops.components._shared.mlflow_adapter import MlflowRun, TrackingError

    def broken(*args, **kwargs):
        raise TrackingError("artifact store unreachable")

    monkeypatch.setattr(MlflowRun, "log_model_folder", broken)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(TrackingError):
        train_model(_inputs(splits), FAST, model_dir=tmp_path / "model", tracking=TrackingSettings(uri, experiment="broken"))
    assert not (tmp_path / "model").exists(), "no model artifact without its MLflow run"
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("broken").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_an_integer_count_label_is_regression_and_the_fix_names_a_real_flag():
    from kfp_mlops.components._shared.task import infer_task

    counts = pa.chunked_array([np.arange(400) % 97])
    assert infer_task(counts, "auto") == ("regression", [])
    assert infer_task(pa.chunked_array([np.arange(400) % 7]), "auto")[0] == "multiclass", "a few integer codes stay classes"
    with pytest.raises(DataError, match="--task regression"):
        infer_task(pa.chunked_array([[f"c{i}" for i in range(97)]]), "auto")
    with pytest.raises(DataError, match="--task binary"):
        infer_task(pa.chunked_array([[0, 1, 1]]), "multiclass")
