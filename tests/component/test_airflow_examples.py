"""The example Airflow DAGs (examples/airflow) in Airflow 3.2 beside kfp, in an environment of their own.

The DAG files are parsed as Airflow's DAG processor parses them (a bundle DagBag, the DAG folder
on sys.path), and their task runs through ``dag.test()`` on a sqlite metadata DB against the fake
KFP API (tests/kfp_fake.py), which answers over real HTTP from this process (harness: airflow_harness.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.component.airflow_harness import DAGS, REPO, SIGNED_SOURCE, TOKEN, TRAINING_STEPS, FakeKfpWithRunList, drive, outcome, runs_sent

# The component tier by its folder; slow as conftest's SLOW_FIXTURES marks the other fixtures that pip-install
# (a fresh environment takes ~70 s here, the DAG runs ~110 s).
pytestmark = pytest.mark.slow


# -- the DAG files ------------------------------------------------------------------------------


def test_the_dag_processor_imports_both_dags_with_their_graph_schedule_and_params(airflow_home):
    found, output = drive(airflow_home, "inspect", str(DAGS))
    assert found["import_errors"] == {}, found["import_errors"]
    dags = found["dags"]
    assert sorted(dags) == ["kfp_mlops_monitoring", "kfp_mlops_training"]  # kfp_submit.py holds no DAG (.airflowignore)
    training, monitoring = dags["kfp_mlops_training"], dags["kfp_mlops_monitoring"]
    assert training["tasks"] == {"run_training_pipeline": {"operator": "KfpPipelineRunOperator", "downstream": [], "retries": 1}}
    assert monitoring["tasks"] == {"run_monitoring_pipeline": {"operator": "KfpPipelineRunOperator", "downstream": [], "retries": 1}}
    assert (training["schedule"], monitoring["schedule"]) == (None, "@daily")
    assert training["catchup"] is monitoring["catchup"] is False and training["max_active_runs"] == monitoring["max_active_runs"] == 1
    common = {"pipeline_parameters", "pipeline_package", "compile_pipeline", "experiment", "timeout_minutes", "poll_seconds"}
    assert set(training["params"]) == common | {"source_uri", "model_name", "mlflow_tracking_uri"}
    assert set(monitoring["params"]) == common | {"source_uri", "model_name", "model_version", "mlflow_tracking_uri"}
    # Training needs its data given at trigger time; the daily monitoring run has a default to start from.
    assert training["params"]["source_uri"] == {"default": None, "schema": {"type": "string", "minLength": 1}}
    assert monitoring["params"]["source_uri"]["default"] == "" and monitoring["params"]["source_uri"]["schema"]["type"] == "string"
    assert training["params"]["pipeline_package"]["default"] == "compiled/training.yaml"
    assert monitoring["params"]["pipeline_package"]["default"] == "compiled/monitoring.yaml"
    assert training["params"]["compile_pipeline"]["default"] is False and training["params"]["pipeline_parameters"]["default"] == {}
    # Every forwarded param is a parameter of the compiled pipeline it goes to.
    for dag_id, pipeline in (("kfp_mlops_training", "training"), ("kfp_mlops_monitoring", "monitoring")):
        spec = next(yaml.safe_load_all((REPO / "compiled" / f"{pipeline}.yaml").read_text(encoding="utf-8")))
        declared = set(spec["root"]["inputDefinitions"]["parameters"])
        assert set(dags[dag_id]["params"]) - common <= declared
    assert "Traceback" not in output


def test_telemetry_is_off_in_the_airflow_environment(airflow_home):
    found, _ = drive(airflow_home, "telemetry")
    assert found == {"statsd_on": False, "metrics_otel_on": False, "traces_otel_on": False, "usage_data_collection": False, "do_not_track": "true"}


# -- the task, run --------------------------------------------------------------------------------


def test_a_run_that_succeeds_succeeds_the_task_with_the_dag_params_as_pipeline_parameters(scenarios):
    state, tasks, log = outcome(scenarios, "succeeds")
    api = scenarios[2]["succeeds"]
    assert state == "success" and tasks == {"run_training_pipeline": {"state": "success", "tries": 1}}, log[-4000:]
    (sent,) = runs_sent(api)
    # Text from a form is typed as the spec declares; unset params (mlflow_tracking_uri) keep the pipeline's default.
    assert sent.runtime_config.parameters == {"source_uri": "gs://bucket/churn.csv", "model_name": "churn", "max_epochs": 50, "learning_rate": 0.01}
    assert re.fullmatch(r"kfp_mlops_training manual__\S+", sent.display_name)
    assert set(api.authorizations) == {f"Bearer {TOKEN}"}
    (run_id,) = api.runs.records
    assert f"/#/runs/details/{run_id}" in log and f"run {run_id} SUCCEEDED" in log
    assert [step for step in TRAINING_STEPS if f"{step}: SUCCEEDED" in log] == TRAINING_STEPS
    assert TOKEN not in log


def test_a_run_that_fails_fails_the_task_naming_the_step_without_a_retry(scenarios):
    state, tasks, log = outcome(scenarios, "fails")
    api = scenarios[2]["fails"]
    assert state == "failed" and tasks["run_training_pipeline"] == {"state": "failed", "tries": 1}, log[-4000:]  # a failed run is not started again
    (run_id,) = api.runs.records
    assert f"PipelineRunFailed: run {run_id} FAILED at step train: task 'train' failed: CUDA out of memory" in log
    assert f"What to do: read the failed step's logs at {api.url}/#/runs/details/{run_id}" in log
    assert "register: " not in log


def test_an_unreachable_api_fails_the_task_clearly_after_its_retry(scenarios):
    state, tasks, log = outcome(scenarios, "unreachable")
    assert state == "failed" and tasks["run_training_pipeline"] == {"state": "failed", "tries": 2}, log[-4000:]
    reasons = re.findall(r"KfpApiError: the KFP API at http://127\.0\.0\.1:\d+ did not answer: (.*)", log)
    assert len(reasons) == 2 and all(reason.endswith("Failed to establish a new connection: [Errno 111] Connection refused") for reason in reasons), reasons
    assert "What to do: check the Connection's host" in log


def test_unknown_parameters_fail_the_task_before_anything_is_sent(scenarios):
    state, tasks, log = outcome(scenarios, "bad_params")
    api = scenarios[2]["bad_params"]
    assert state == "failed" and tasks["run_training_pipeline"] == {"state": "failed", "tries": 1}, log[-4000:]
    assert "PipelineInputError: 'training' has no parameter 'max_epoch'" in log and "max_epochs" in log
    assert api.requests == [] and api.authorizations == []


def test_a_retry_follows_the_run_still_going_on_instead_of_starting_another(scenarios):
    state, tasks, log = outcome(scenarios, "hangs")
    api = scenarios[2]["hangs"]
    assert state == "failed" and tasks["run_training_pipeline"] == {"state": "failed", "tries": 2}, log[-4000:]
    (run_id,) = api.runs.records  # one run on the cluster for two tries of the task
    assert log.count(f"PipelineRunTimeout: run {run_id} is still RUNNING after 0.01 minutes; it goes on running on the cluster") == 2
    assert f"following run {run_id} (RUNNING), started by an earlier try of this task" in log


def test_monitoring_runs_in_the_connections_namespace_with_its_own_params(scenarios):
    state, _, log = outcome(scenarios, "monitoring")
    api = scenarios[2]["monitoring"]
    assert state == "success", log[-4000:]
    (sent,) = runs_sent(api)
    assert sent.runtime_config.parameters == {"source_uri": "gs://bucket/today.parquet", "model_version": "3", "drift_share": 0.3}
    assert re.fullmatch(r"kfp_mlops_monitoring manual__\S+", sent.display_name)
    (experiment,) = api.experiments.values()
    assert experiment["display_name"] == "kfp-mlops" and experiment["namespace"] == "team-a"


def test_the_compile_flag_compiles_with_kfp_mlops_and_says_what_to_do_without_it(scenarios):
    state, _, log = outcome(scenarios, "compiles")
    api = scenarios[2]["compiles"]
    assert state == "success", log[-4000:]
    assert re.search(r"submitting \S*kfp-mlops-compiled-\S+/training\.yaml to ", log)
    (record,) = api.runs.records.values()
    assert record["spec"]["pipelineInfo"]["name"] == "training"
    state, tasks, log = outcome(scenarios, "no_compiler")
    assert state == "failed" and tasks["run_training_pipeline"]["tries"] == 1, log[-4000:]
    assert "PipelineInputError: cannot run /nonexistent/kfp-mlops compile --output-dir" in log
    assert "What to do: install kfp-mlops where the workers can run it" in log
    assert scenarios[2]["no_compiler"].requests == []


def test_the_endpoint_comes_from_the_environment_without_a_connection_and_is_asked_for_without_either(scenarios):
    state, _, log = outcome(scenarios, "from_env")
    api = scenarios[2]["from_env"]
    assert state == "success", log[-4000:]
    (sent,) = runs_sent(api)
    assert set(api.authorizations) == {f"Bearer {TOKEN}"}
    assert sent.runtime_config.parameters["source_uri"] == SIGNED_SOURCE, "the cluster gets the signed URL whole"
    assert "X-Goog-Signature=***" in log and "0a1b2c3d4e5f6071" not in log and "svc%40proj" not in log, "the task log does not show it"
    state, tasks, log = outcome(scenarios, "no_endpoint")
    assert state == "failed" and tasks["run_training_pipeline"]["tries"] == 1, log[-4000:]
    assert "PipelineInputError: no Kubeflow Pipelines endpoint: there is no Airflow Connection 'kfp_default' with a host, and KFP_HOST is not set" in log
    assert "What to do: create the Connection 'kfp_default'" in log


def test_a_refused_token_fails_the_task_at_once_without_sending_a_run(scenarios):
    state, tasks, log = outcome(scenarios, "wrong_token")
    api = scenarios[2]["wrong_token"]
    assert state == "failed" and tasks["run_training_pipeline"]["tries"] == 1, log[-4000:]
    assert "refused the credentials (HTTP 401): Unauthenticated: missing or wrong bearer token" in log
    assert api.requests == [] and "an-expired-token-0000" not in log


def test_the_daily_monitoring_run_without_a_source_says_where_to_set_one(scenarios):
    state, tasks, log = outcome(scenarios, "no_source")
    assert state == "failed" and tasks["run_monitoring_pipeline"]["tries"] == 1, log[-4000:]
    assert "PipelineInputError: source_uri is empty" in log and "KFP_MLOPS_MONITORING_SOURCE_URI" in log
    assert scenarios[2]["no_source"].requests == []


def test_a_retry_takes_the_outcome_of_a_run_that_ended_while_it_waited(scenarios):
    """Try 1 times out; the run ends before the retry: the retry follows that run, whatever its end, and starts none."""
    state, tasks, log = outcome(scenarios, "ended_ok")
    api = scenarios[2]["ended_ok"]
    assert state == "success" and tasks["run_training_pipeline"] == {"state": "success", "tries": 2}, log[-4000:]
    (run_id,) = api.runs.records
    assert len(runs_sent(api)) == 1
    assert f"run {run_id}, started by an earlier try of this task, already ended SUCCEEDED: taking its outcome, starting no other" in log
    assert f"run {run_id} SUCCEEDED" in log
    state, tasks, log = outcome(scenarios, "ended_failed")
    api = scenarios[2]["ended_failed"]
    assert state == "failed" and tasks["run_training_pipeline"] == {"state": "failed", "tries": 2}, log[-4000:]
    (run_id,) = api.runs.records
    assert len(runs_sent(api)) == 1
    assert "already ended FAILED: taking its outcome, starting no other (clear the task to start a new run)" in log
    assert f"PipelineRunFailed: run {run_id} FAILED at step validate: task 'validate' failed: 3 anomalies at or above severity 'error'" in log


@pytest.fixture(scope="module")
def called(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """kfp_submit's functions called on their own in the Airflow environment (redact, pipeline_arguments,
    run names, submit_or_attach against the fake API). Yields (their answers, the texts redacted, the fake API)."""
    from kfp_mlops.components._shared.redact import redact_text

    texts = [
        "https://alice:s3cret@bucket.s3.amazonaws.com/x.csv?X-Amz-Signature=abc123&X-Amz-Credential=AKIAEXAMPLE%2F2026&v=1",
        "download of https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4&X-Goog-Signature=deadbeef failed",
        "https://acct.blob.core.windows.net/c/b.parquet?sv=2022-11-02&sig=zzSAS%3D&se=2030-01-01",
        "https://api.example.com/v1/data?token=t0k-1&access_token=at0k-2;id_token=idt-3",
        "postgresql://u:pw-4@db:5432/x password=hunter2",
        "https://example.com/export?api_key=k-5&apikey=k-6&key=k-7&q=churn",
        "no secrets here: https://example.com/a?b=c and gs://bucket/churn.csv",
    ]
    arguments = [
        {"source_uri": "gs://b/c.csv", "max_epochs": 50.0, "learning_rate": "1e-3", "split_seed": "7.0"},
        {"source_uri": "gs://b/c.csv", "max_epochs": 50.5},
        {"source_uri": "gs://b/c.csv", "max_epochs": float("nan")},
        {"source_uri": "gs://b/c.csv", "learning_rate": float("inf")},
        {"source_uri": "gs://b/c.csv", "learning_rate": "nan"},
        {"source_uri": "gs://b/c.csv", "max_epochs": "-inf"},
        {"source_uri": "gs://b/c.csv", "max_epochs": -5, "learning_rate": 1},
    ]
    api = FakeKfpWithRunList(token=TOKEN)
    cases = {"texts": texts, "arguments": arguments, "package": str(REPO / "compiled" / "training.yaml"), "host": api.url, "token": TOKEN}
    plan = tmp_path_factory.mktemp("calls") / "cases.json"
    plan.write_text(json.dumps(cases), encoding="utf-8")
    try:
        answer, _ = drive(airflow_home, "call", str(DAGS), str(plan))
        yield answer, [redact_text(t) for t in texts], api
    finally:
        api.close()


def test_task_logs_are_redacted_as_kfp_mlops_redacts(called):
    answer, expected, _ = called
    assert answer["redacted"] == expected, "kfp_submit's copy of the redaction masks what components/_shared/redact.py masks"
    shown = "\n".join(answer["redacted"])
    for secret in ("s3cret", "abc123", "AKIAEXAMPLE", "deadbeef", "zzSAS", "t0k-1", "at0k-2", "idt-3", "pw-4", "hunter2", "k-5", "k-6", "k-7"):
        assert secret not in shown, secret
    assert answer["redacted"][-1].startswith("no secrets here: https://example.com/a?b=c") and "X-Goog-Algorithm=GOOG4" in shown


def test_numbers_are_checked_finite_and_whole_floats_are_integers(called):
    answer, _, _ = called
    ok, half, nan, inf, nan_text, inf_text, negative = answer["arguments"]
    assert ok == {"typed": {"source_uri": "gs://b/c.csv", "max_epochs": 50, "learning_rate": 0.001, "split_seed": 7}}
    assert isinstance(ok["typed"]["max_epochs"], int) and isinstance(ok["typed"]["split_seed"], int)
    assert half["error"] == "PipelineInputError: parameter max_epochs must be number integer, not 50.5\nWhat to do: give a value of that type"
    for refused, name in ((nan, "max_epochs"), (inf, "learning_rate"), (nan_text, "learning_rate"), (inf_text, "max_epochs")):
        assert refused["error"].startswith(f"PipelineInputError: parameter {name} must be a finite number"), refused
    assert negative == {"typed": {"source_uri": "gs://b/c.csv", "max_epochs": -5, "learning_rate": 1.0}}, "the pipeline's own check step judges -5"


def test_retries_follow_one_run_and_a_cleared_task_starts_a_new_one_unless_one_is_going(called):
    answer, _, api = called
    attach = answer["attach"]
    assert answer["names"] == ["d manual__x", "d manual__x (cleared, try 3)"]
    assert attach["retry"] == attach["first"], "a retry takes the ended run of its try"
    assert attach["cleared"] != attach["first"], "a cleared task starts a new run"
    assert attach["cleared_again"] == attach["cleared"], "... but follows one of this task that is still going"
    assert attach["other_dag_run"] not in (attach["first"], attach["cleared"])
    assert attach["cleared_once_more"] == attach["cleared"], "a run of another DAG run whose name contains this one's is not this task's"
    names = sorted(record["body"]["display_name"] for record in api.runs.records.values())
    assert names == ["kfp_mlops_training manual__x", "kfp_mlops_training manual__x (cleared, try 3)", "kfp_mlops_training manual__x2"]
    assert any("already ended SUCCEEDED" in line for line in answer["attach_log"])
