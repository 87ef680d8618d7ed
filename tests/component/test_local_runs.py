"""The components and the training pipeline run through kfp.local (SubprocessRunner) as users run them."""
# No "from __future__ import annotations": KFP reads the pipeline signature at definition time.

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from kfp import dsl, local

from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.components.ingest.component import ingest
from kfp_mlops.components.validate.component import validate
from kfp_mlops.demo import DemoSpec, write_demo_dataset

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("kfp-mlops"))


@pytest.fixture
def runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    return tmp_path


def test_ingest_component_outputs(runner, demo_csv):
    task = ingest(source_uri=str(demo_csv), entity_column="entity_id", timestamp_column="event_timestamp")
    dataset = task.outputs["dataset"]
    assert pq.read_metadata(dataset.path).num_rows == 20_000
    assert dataset.metadata["rows"] == 20_000 and len(dataset.metadata["fingerprint"]) == 64
    assert task.outputs["entity_column"] == "entity_id"
    assert task.outputs["fingerprint"] == dataset.metadata["fingerprint"]
    assert "20,000" in Path(task.outputs["summary"].path).read_text()


def test_skew_check_pipeline_with_reference_schema(runner, tmp_path):
    train = write_demo_dataset(tmp_path / "train.parquet", DemoSpec(rows=5_000, seed=1))
    serving = write_demo_dataset(tmp_path / "serving.parquet", DemoSpec(rows=2_000, seed=2, drift=1.0))

    @dsl.pipeline(name="skew-check")
    def skew_check(train_uri: str, serving_uri: str) -> dsl.Artifact:
        train_data = ingest(source_uri=train_uri, entity_column="entity_id", timestamp_column="event_timestamp")
        inferred = validate(dataset=train_data.outputs["dataset"], label_column="label", entity_column="entity_id", timestamp_column="event_timestamp")
        serving_data = ingest(source_uri=serving_uri, entity_column="entity_id", timestamp_column="event_timestamp")
        checked = validate(
            dataset=serving_data.outputs["dataset"],
            reference_schema=inferred.outputs["schema"],
            label_column="label",
            fail_on_severity="never",
        )
        return checked.outputs["anomalies"]

    result = skew_check(train_uri=str(train), serving_uri=str(serving))
    anomalies = json.loads(Path(result.output.path).read_text())
    assert {"new_category", "out_of_range"} <= {a["code"] for a in anomalies}


def test_component_fails_clearly_on_bad_input(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a;b;c\n1;2;3\n")
    with pytest.raises(RuntimeError, match="ingest"):
        ingest(source_uri=str(bad))
    produced = [p for p in (tmp_path / "root").rglob("*") if p.is_file() and p.name == "dataset"]
    assert produced == [], "a failed ingest left a dataset behind"


def test_compiled_component_yaml_runs_locally(runner, demo_parquet):
    from kfp import components

    loaded = components.load_component_from_file(str(REPO / "compiled" / "components" / "ingest.yaml"))
    task = loaded(source_uri=str(demo_parquet))
    # entity_column defaults to auto: the demo data's entity_id column is found by its usual name.
    assert task.outputs["rows"] == 20_000 and task.outputs["entity_column"] == "entity_id"


def _cli(*args, cwd):
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_cli_runs_training_on_demo_data(tmp_path):
    proc = _cli("run", "training", "--workdir", str(tmp_path / "wd"), "--demo-rows", "5000", "--deploy-target", "none", "--verbose", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "writing 5,000 rows of demo data" in out
    for listed in (
        "ingest/dataset",
        "validate/report",
        "validate/schema",
        "validate/anomalies",
        "featurize/train",
        "featurize/test",
        "featurize/feature_repo/feature_store.yaml",
        "train/model/model.pt2",
        "train/report",
    ):
        assert listed in out, listed
    train_output = json.loads(next((tmp_path / "wd" / "runs").glob("*/train/executor_output.json")).read_text())["artifacts"]
    charts = train_output["classification_metrics"]["artifacts"][0]["metadata"]
    assert "confusionMatrix" in charts and len(charts["confidenceMetrics"]) > 10, "the UI's confusion matrix and ROC curve"
    model = train_output["model"]["artifacts"][0]["metadata"]
    assert model["test_roc_auc"] > 0.7, "clearly above chance on the demo data"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'wd' / 'mlflow' / 'mlflow.db'}")
    run = client.get_run(ModelArtifact.from_metadata(model).mlflow_run_id)
    assert run.data.tags["kfp.run_id"] and len(run.data.tags["dataset.fingerprint"]) == 64
    assert "BLESSED: kfp-mlops-model version 1" in out and "Compared against: no champion" in out

    again = _cli("run", "training", "--workdir", str(tmp_path / "wd"), "--demo-rows", "5000", "--deploy-target", "none", "--verbose", cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Compared against: champion (version 1)" in again.stdout, "the second model is gated against the first"
    assert "NOT blessed: kfp-mlops-model version 2" in again.stdout, "an identical retrain is not promoted"
    aliases = {a: str(client.get_model_version_by_alias("kfp-mlops-model", a).version) for a in ("champion", "challenger")}
    assert aliases == {"champion": "1", "challenger": "2"}


def test_cli_runs_on_users_data_and_fails_on_bad_data(tmp_path):
    (tmp_path / "mine.csv").write_text("customer,when,spend,churned\n" + "".join(f"c{i},2026-01-{i % 28 + 1:02d}T00:00:00Z,{i * 3.5},{i % 2}\n" for i in range(200)))
    ok = _cli(
        "run",
        "training",
        "--source-uri",
        str(tmp_path / "mine.csv"),
        "--label-column",
        "churned",
        "--entity-column",
        "customer",
        "--timestamp-column",
        "when",
        "--workdir",
        str(tmp_path / "wd"),
        "--deploy-target",
        "none",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    bad = _cli(
        "run",
        "training",
        "--source-uri",
        str(tmp_path / "mine.csv"),
        "--label-column",
        "target",
        "--entity-column",
        "customer",
        "--timestamp-column",
        "when",
        "--workdir",
        str(tmp_path / "wd"),
        cwd=tmp_path,
    )
    assert bad.returncode == 2, "bad data: the failed step's own exit code, not kfp.local's 1"
    assert "missing_label" in bad.stdout + bad.stderr and "label column not found" in bad.stdout + bad.stderr


def test_a_source_that_does_not_exist_is_bad_input(tmp_path):
    proc = _cli("run", "training", "--source-uri", str(tmp_path / "typo.csv"), "--workdir", str(tmp_path / "wd"), cwd=tmp_path)
    assert proc.returncode == 2, "a retry cannot fix a wrong path: exit 2, not the infrastructure's 3"
    assert "typo.csv: file does not exist" in proc.stdout and "(exit code 2: bad input" in proc.stdout


FAST_TRAINING = ("--demo-rows", "3000", "--max-epochs", "2", "--deploy-target", "none")


def test_two_runs_at_once_in_one_workdir_each_report_their_own_folder(tmp_path):
    runs = [subprocess.Popen([CLI, "run", "training", "--workdir", str(tmp_path / "wd"), *FAST_TRAINING], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    folders = [next(line.split("outputs under ")[1] for line in out.splitlines() if "outputs under " in line) for out, _ in outputs]
    assert len(set(folders)) == 2, folders
    for (out, _), folder in zip(outputs, folders):
        assert (Path(folder) / "run.log").is_file() and "roc_auc" in out and "model: kfp-mlops-model version" in out, out[-2000:]
    versions = sorted(next(line for line in out.splitlines() if line.startswith("model: ")).split()[3] for out, _ in outputs)
    assert versions == ["1", "2"], "each run names the version it registered"


def test_ctrl_c_stops_the_run_with_its_log_kept_and_no_traceback(tmp_path):
    import signal
    import time

    # A terminal's shell starts the command with SIGINT at its default; a test worker may ignore it (and a
    # child would inherit that), so the child gets the default back.
    run = subprocess.Popen(
        [CLI, "run", "training", "--workdir", str(tmp_path / "wd"), *FAST_TRAINING],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    runs = tmp_path / "wd" / "runs"
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/featurize")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, out[-2000:] + err[-3000:]
    assert "Traceback" not in err and "interrupted during step" in err, err[-3000:]
    (log,) = runs.glob("*/run.log")
    assert f"its log: {log}" in err


def test_cli_help_lists_parameters_from_the_spec(tmp_path):
    proc = _cli("run", "training", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for flag in ("--source-uri", "--label-column", "--task", "--entity-column", "--timestamp-column", "--csv-delimiter", "--fail-on-severity", "--feature-spec", "--online-store"):
        assert flag in proc.stdout, flag
    assert "Stop the run when a data anomaly" in proc.stdout
    listing = _cli("run", "--help", cwd=tmp_path)
    assert "training" in listing.stdout


def test_cli_runs_a_sweep_and_keeps_the_best_model(tmp_path):
    space = '{"learning_rate": [0.001, 0.01], "max_epochs": [2]}'
    proc = _cli("run", "sweep", "--workdir", str(tmp_path / "wd"), "--demo-rows", "8000", "--search-space", space, "--verbose", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "best trial" in proc.stdout and "select-best/best/model.pt2" in proc.stdout


def test_bad_training_settings_stop_the_run_before_any_data_is_read(tmp_path):
    """A typo in the gate thresholds (used by register, after training) or the arms (deploy, last) fails the first step."""
    bad = _cli("run", "training", "--demo-rows", "500", "--gate-thresholds", '{"roc_auc": {"min": 0.7', "--deploy-arms", "champion=90,challenger=20", "--workdir", str(tmp_path / "wd"), cwd=tmp_path)
    assert bad.returncode == 2, bad.stdout[-2000:] + bad.stderr[-2000:]
    steps = [line.split()[0] for line in bad.stdout.splitlines() if line.startswith("  ") and ("SUCCEEDED" in line or "FAILED" in line)]
    assert steps == ["check-training"], bad.stdout
    assert "gate_thresholds" in bad.stdout and "sum to 110" in bad.stdout, bad.stdout
