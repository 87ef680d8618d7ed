"""The harness of tests/component/test_airflow_examples.py: Airflow 3.2 beside kfp in an environment of its own.

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
