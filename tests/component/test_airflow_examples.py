"""The example Airflow DAGs (examples/airflow) in Airflow 3.2 beside kfp, in an environment of their own.

The DAG files are parsed as Airflow's DAG processor parses them (a bundle DagBag, the DAG folder
on sys.path), and their task runs through ``dag.test()`` on a sqlite metadata DB against the fake
KFP API (tests/kfp_fake.py), which answers over real HTTP from this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kfp_fake import ApiRefusal, FakeKfpApi
from tests.services import require

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "examples" / "airflow"
VENV = REPO / ".venv-airflow"  # git-ignored; reused while its marker matches what it would be built with
MARKER = VENV / "kfp-mlops-requirements.txt"
AIRFLOW_CONSTRAINTS = DAGS / "constraints-airflow-3.2.2.txt"
TOKEN = "airflow-example-token-4821"  # long enough for Airflow to mask it in task logs
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "SCARF_ANALYTICS": "false",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "AIRFLOW__METRICS__STATSD_ON": "False",
    "AIRFLOW__METRICS__OTEL_ON": "False",
    "AIRFLOW__TRACES__OTEL_ON": "False",
}
TRAINING_STEPS = ["ingest", "validate", "featurize", "train", "register"]
# A signed object-store URL, as users paste them: the cluster needs it whole, the task log must not show it.
SIGNED_SOURCE = "https://storage.googleapis.com/bucket/churn.csv?X-Goog-Algorithm=GOOG4&X-Goog-Credential=svc%40proj&X-Goog-Signature=0a1b2c3d4e5f6071&v=1"
# The component tier by its folder; slow as conftest's SLOW_FIXTURES marks the other fixtures that pip-install
# (a fresh environment takes ~70 s here, the twelve DAG runs ~90 s).
pytestmark = pytest.mark.slow

# Runs inside the Airflow environment: airflow and kfp only, no kfp-mlops, no pytest.
DRIVER = r"""
import datetime as dt
import json
import os
import sys
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag


def dagbag(folder):
    # What the DAG processor builds for the dags-folder bundle: it puts the folder on sys.path.
    return BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name="dags-folder")


def state(value):
    return getattr(value, "value", value)


def inspect(folder):
    bag = dagbag(folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "file": Path(dag.fileloc).name,
            "schedule": dag.schedule if isinstance(dag.schedule, (str, type(None))) else repr(dag.schedule),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "tasks": {t.task_id: {"operator": type(t).__name__, "downstream": sorted(t.downstream_task_ids), "retries": t.retries} for t in dag.tasks},
            "params": {name: {"default": dag.params.get_param(name).dump()["value"], "schema": dag.params.get_param(name).schema} for name in dag.params},
        }
    return {"import_errors": {Path(k).name: v for k, v in bag.import_errors.items()}, "dags": dags}


def run(folder, scenarios):
    results = {}
    for scenario in scenarios:
        print(f"=== scenario {scenario['name']}", flush=True)
        os.environ.update(scenario["env"])
        # Parsed anew for each run, as a worker does: resolving a run's params writes into the DAG's Param objects.
        dag = dagbag(folder).get_dag(scenario["dag_id"])
        for task in dag.tasks:
            task.retry_delay = dt.timedelta(0)  # the DAG's retries, without the wait between them
        try:
            dag_run = dag.test(run_conf=scenario["conf"])
            results[scenario["name"]] = {
                "state": state(dag_run.state),
                "tasks": {ti.task_id: {"state": state(ti.state), "tries": ti.try_number} for ti in dag_run.get_task_instances()},
            }
        except Exception as exc:
            results[scenario["name"]] = {"error": repr(exc)}
        for name in scenario["env"]:
            os.environ.pop(name, None)
    print("=== end", flush=True)
    return results


def call(folder, cases):
    # The module's functions on their own, as a DAG file imports them.
    sys.path.insert(0, folder)
    import kfp_submit
    import yaml

    package = Path(cases["package"])
    spec = next(yaml.safe_load_all(package.read_text()))
    answer = {"redacted": [kfp_submit.redact(text) for text in cases["texts"]], "arguments": []}
    for given in cases["arguments"]:
        try:
            answer["arguments"].append({"typed": kfp_submit.pipeline_arguments(spec, given)})
        except Exception as exc:
            answer["arguments"].append({"error": f"{type(exc).__name__}: {exc}"})
    # The tries of one task in one DAG run, against the fake API: retried, cleared, cleared again.
    client = kfp_submit.connect(kfp_submit.KfpEndpoint(host=cases["host"], token=cases["token"]))
    log = []

    def attach(dag_run_id, first_try):
        name = kfp_submit.run_name("kfp_mlops_training", dag_run_id, first_try=first_try)
        return kfp_submit.submit_or_attach(client, package, {"source_uri": "gs://b/c.csv"}, experiment="kfp-mlops", run_name=name, namespace=None, log=log.append)

    first = attach("manual__x", 1)
    for _ in range(100):  # the fake moves a run one step per look
        if client.get_run(first).state in ("SUCCEEDED", "FAILED"):
            break
    answer["attach"] = {
        "first": first,
        "retry": attach("manual__x", 1),
        "cleared": attach("manual__x", 3),
        "cleared_again": attach("manual__x", 5),
        "other_dag_run": attach("manual__x2", 1),
        "cleared_once_more": attach("manual__x", 7),
    }
    answer["names"] = [kfp_submit.run_name("d", "manual__x", first_try=n) for n in (1, 3)]
    answer["attach_log"] = log
    return answer


def telemetry():
    from airflow.configuration import conf

    return {
        "statsd_on": conf.getboolean("metrics", "statsd_on"),
        "metrics_otel_on": conf.getboolean("metrics", "otel_on"),
        "traces_otel_on": conf.getboolean("traces", "otel_on"),
        "usage_data_collection": conf.getboolean("usage_data_collection", "enabled", fallback=False),
        "do_not_track": os.environ.get("DO_NOT_TRACK"),
    }


mode = sys.argv[1]
if mode == "inspect":
    answer = inspect(sys.argv[2])
elif mode == "run":
    answer = run(sys.argv[2], json.loads(Path(sys.argv[3]).read_text()))
elif mode == "call":
    answer = call(sys.argv[2], json.loads(Path(sys.argv[3]).read_text()))
else:
    answer = telemetry()
print("RESULT " + json.dumps(answer, default=str), flush=True)
"""


# -- the isolated Airflow environment ------------------------------------------------------------


def kfp_version() -> str:
    found = re.search(r"^kfp==(\S+)$", (REPO / "constraints.txt").read_text(encoding="utf-8"), re.M)
    assert found, "constraints.txt pins no kfp"
    return found.group(1)


def requirements() -> list[str]:
    # The provider's newer releases need kubernetes >= 32, and kfp caps it below 31.
    return ["apache-airflow==3.2.2", "apache-airflow-providers-cncf-kubernetes==10.5.0", f"kfp=={kfp_version()}"]


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    """The Airflow environment's interpreter: built with pip's own configuration, or reused when its marker matches."""
    digest = hashlib.sha256(AIRFLOW_CONSTRAINTS.read_bytes()).hexdigest()
    wanted = "\n".join([*requirements(), f"-c {AIRFLOW_CONSTRAINTS.name} sha256:{digest}", f"python {sys.version.split()[0]}"]) + "\n"
    python = VENV / "bin" / "python"
    if python.exists() and MARKER.is_file() and MARKER.read_text(encoding="utf-8").split("# installed in")[0] == wanted:
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    started = time.monotonic()
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(AIRFLOW_CONSTRAINTS), *requirements()], capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - started
    require(done.returncode == 0, f"cannot install {' '.join(requirements())} into {VENV}: {done.stderr.strip()[-1500:]}")
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, f"the Airflow environment has broken requirements:\n{check.stdout}"
    MARKER.write_text(f"{wanted}# installed in {took:.0f} s\n", encoding="utf-8")  # the install time, for whoever plans CI
    return python


def airflow_env(home: Path) -> dict[str, str]:
    """A clean Airflow environment: its own home, a sqlite DB, the example DAGs, telemetry off."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KFP_", "KF_PIPELINES"))}
    return {
        **kept,
        **TELEMETRY_OFF,
        "PATH": f"{VENV / 'bin'}{os.pathsep}{kept.get('PATH', '')}",
        "HOME": str(home),  # kfp.Client keeps a context file under the home folder
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ left beside the example DAGs
    }


@pytest.fixture(scope="module")
def airflow_home(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "driver.py").write_text(DRIVER, encoding="utf-8")
    done = subprocess.run([str(VENV / "bin" / "airflow"), "db", "migrate"], env=airflow_env(home), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


def drive(home: Path, *args: str) -> tuple[Any, str]:
    """Run the driver in the Airflow environment; (its RESULT, everything it printed)."""
    # One stream, so that each scenario's log lines stay between its markers.
    done = subprocess.run([str(VENV / "bin" / "python"), str(home / "driver.py"), *args], env=airflow_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    output = done.stdout
    results = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, output[-6000:]
    return json.loads(results[-1][len("RESULT ") :]), output


# -- the fake KFP API and the runs --------------------------------------------------------------


class FakeKfpWithRunList(FakeKfpApi):
    """The fake KFP API plus ``GET /apis/v2beta1/runs`` (by experiment, filtered by display name with EQUALS or
    IS_SUBSTRING, newest first), which the operator asks before submitting so that a retry follows its run.

    ``end_runs_when_listed``: every run ends (as scripted by ``fail_at``, hangs released) when runs are listed,
    as a run does that ends while Airflow waits to retry the task.
    """

    def __init__(self, *args: Any, end_runs_when_listed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.end_runs_when_listed = end_runs_when_listed

    def get(self, path: str, query: dict[str, str]) -> dict:
        if path != "/apis/v2beta1/runs":
            return super().get(path, query)
        if self.end_runs_when_listed and self.runs.records:
            self.runs.hang_at.clear()
            for record in self.runs.records.values():
                record["polls"] = 1000
        tests = []
        for predicate in json.loads(query.get("filter") or "{}").get("predicates", []):
            value, operation = predicate.get("stringValue", predicate.get("string_value")), predicate.get("operation")
            if predicate.get("key") != "display_name" or operation not in ("EQUALS", "IS_SUBSTRING") or not isinstance(value, str):
                raise ApiRefusal(400, 3, f"Invalid input error: this fake lists runs by display_name only, got {predicate}")
            tests.append((lambda name, v=value: name == v) if operation == "EQUALS" else (lambda name, v=value: v in name))
        records = sorted(self.runs.records.items(), key=lambda item: item[1]["created"], reverse=True)
        found = [
            self.runs.render(run_id)
            for run_id, record in records
            if record["body"].get("experiment_id") == query.get("experiment_id", record["body"].get("experiment_id")) and all(test(record["body"].get("display_name", "")) for test in tests)
        ]
        return {"runs": found, "total_size": len(found)} if found else {}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection(host: str, token: str = TOKEN, **extra: str) -> dict[str, str]:
    """The Airflow Connection kfp_default, as a deployment would set it through the environment."""
    return {"AIRFLOW_CONN_KFP_DEFAULT": json.dumps({"conn_type": "generic", "host": host, "password": token, "extra": extra})}


def runs_sent(api: FakeKfpApi) -> list[Any]:
    return [body for method, path, body in api.requests if method == "POST" and path == "/apis/v2beta1/runs"]


@pytest.fixture(scope="module")
def scenarios(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every DAG run of these tests in one Airflow process (each costs ~3 s there, ~15 s in a process of its own).

    Yields (results by scenario, the log of each scenario, the fake API of each scenario).
    """
    apis = {name: FakeKfpWithRunList(token=TOKEN) for name in ("succeeds", "fails", "bad_params", "hangs", "compiles", "no_compiler", "from_env", "wrong_token", "no_source")}
    apis["monitoring"] = FakeKfpWithRunList(token=TOKEN, multi_user=True)
    apis["fails"].runs.fail_at["train"] = "CUDA out of memory"
    apis["hangs"].runs.hang_at.add("validate")
    # The first try times out; the run ends before the retry, which takes its outcome instead of starting another.
    apis |= {name: FakeKfpWithRunList(token=TOKEN, end_runs_when_listed=True) for name in ("ended_ok", "ended_failed")}
    for name in ("ended_ok", "ended_failed"):
        apis[name].runs.hang_at.add("validate")
    apis["ended_failed"].runs.fail_at["validate"] = "3 anomalies at or above severity 'error'"
    fast = {"poll_seconds": 0}
    main_bin = Path(sys.executable).parent
    plan = [
        ("succeeds", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "model_name": "churn", "pipeline_parameters": {"max_epochs": "50", "learning_rate": 0.01}, **fast}, {}),
        ("fails", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", **fast}, {}),
        ("unreachable", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", **fast}, connection(f"http://127.0.0.1:{closed_port()}")),
        ("bad_params", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "pipeline_parameters": {"max_epoch": 5}, **fast}, {}),
        ("hangs", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "timeout_minutes": 0.01, "poll_seconds": 0.05}, {}),
        ("monitoring", "kfp_mlops_monitoring", {"source_uri": "gs://bucket/today.parquet", "model_version": "3", "pipeline_parameters": {"drift_share": 0.3}, **fast}, {}),
        ("compiles", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "compile_pipeline": True, **fast}, {"KFP_MLOPS_COMPILE_COMMAND": f"{main_bin / 'kfp-mlops'} compile"}),
        ("no_compiler", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "compile_pipeline": True, **fast}, {"KFP_MLOPS_COMPILE_COMMAND": "/nonexistent/kfp-mlops compile"}),
        ("from_env", "kfp_mlops_training", {"source_uri": SIGNED_SOURCE, **fast}, {"KFP_HOST": apis["from_env"].url, "KFP_TOKEN": TOKEN}),
        ("no_endpoint", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", **fast}, {}),
        ("wrong_token", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", **fast}, connection(apis["wrong_token"].url, token="an-expired-token-0000")),
        ("no_source", "kfp_mlops_monitoring", {**fast}, {}),  # the daily run as shipped: no KFP_MLOPS_MONITORING_SOURCE_URI
        ("ended_ok", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "timeout_minutes": 0.01, "poll_seconds": 0.05}, {}),
        ("ended_failed", "kfp_mlops_training", {"source_uri": "gs://bucket/churn.csv", "timeout_minutes": 0.01, "poll_seconds": 0.05}, {}),
    ]
    planned = []
    for name, dag_id, conf, env in plan:
        # A scenario gives its own endpoint settings, or gets the Connection to its fake API (none: no endpoint at all).
        own_endpoint = any(k.startswith(("AIRFLOW_CONN_", "KFP_HOST")) for k in env)
        api = apis.get(name) if not own_endpoint else None
        namespace = {"namespace": "team-a"} if name == "monitoring" else {}
        planned.append({"name": name, "dag_id": dag_id, "conf": conf, "env": {**(connection(api.url, **namespace) if api else {}), **env}})
    plan_file = tmp_path_factory.mktemp("scenarios") / "scenarios.json"
    plan_file.write_text(json.dumps(planned), encoding="utf-8")
    try:
        results, output = drive(airflow_home, "run", str(DAGS), str(plan_file))
        (plan_file.parent / "scenarios.log").write_text(output, encoding="utf-8")  # kept for reading when a test fails
        logs = dict(re.findall(r"^=== scenario (\S+)\n(.*?)(?=^=== )", output, re.M | re.S))
        yield results, logs, apis
    finally:
        for api in apis.values():
            api.close()


def outcome(scenarios: tuple[dict, dict, dict], name: str) -> tuple[str, dict, str]:
    """(the DAG run's state, each task's state and tries, the scenario's log) of a scenario that ran."""
    results, logs, _ = scenarios
    assert "error" not in results[name], results[name]
    return results[name]["state"], results[name]["tasks"], logs.get(name, "")


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
