"""Upload, submit and follow compiled pipelines through kfp.Client, against the fake KFP v2beta1 API."""

from __future__ import annotations

import datetime as dt
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp_server_api import ApiException

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.pipelines import kfp_progress, kfp_remote
from kfp_mlops.pipelines.cli import main
from kfp_mlops.pipelines.kfp_progress import RunTimeoutError, failure_summary, wait
from kfp_mlops.pipelines.kfp_remote import KfpApiError, check_params, connect, default_version_name, describe_submission, submit, upload
from tests.kfp_fake import FakeKfpApi

COMPILED = Path(__file__).resolve().parents[2] / "compiled"
TRAINING = COMPILED / "training.yaml"
TOKEN = "s3cret"
STEPS = ["check-training", "ingest", "validate", "featurize", "train", "register"]  # the training DAG, in dependency order


@pytest.fixture
def api(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads a context file from the home folder
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    monkeypatch.delenv("KFP_HOST", raising=False)
    monkeypatch.setattr("kfp.client.client.time.sleep", lambda seconds: None)  # kfp retries healthz 5 times, 5 s apart
    fake = FakeKfpApi(token=TOKEN)
    yield fake
    fake.close()


@pytest.fixture
def client(api):
    return connect(api.url, token=TOKEN)


def cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as ended:
        main(list(argv))
    code = ended.value.code
    assert isinstance(code, int)
    return code


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- upload ----------------------------------------------------------------------------------


def test_upload_creates_the_pipeline_then_adds_versions(api, client):
    pipeline_id, first = upload(client, TRAINING)
    (pipeline,) = api.pipelines.values()
    assert (pipeline["pipeline_id"], pipeline["display_name"], pipeline["namespace"]) == (pipeline_id, "training", "")
    assert pipeline["description"].startswith("Ingest a dataset")  # the spec's own description
    assert api.versions[first]["name"] == "training"  # the API names a new pipeline's first version after it
    again_id, second = upload(client, TRAINING)
    third_id, third = upload(client, TRAINING)  # the same file twice more: no name collision
    assert again_id == third_id == pipeline_id and len({first, second, third}) == 3
    for version in (second, third):
        assert re.fullmatch(r"0\.\d+\.\d+-[0-9a-f]{8}-\d{8}T\d{6}\.\d{3}Z", api.versions[version]["name"])
    assert api.versions[second]["pipeline_spec"]["pipelineInfo"]["name"] == "training"
    uploads = [(path, query.get("name")) for method, path, query in api.requests if "/upload" in path]
    assert uploads == [("/apis/v2beta1/pipelines/upload", "training")] + [("/apis/v2beta1/pipelines/upload_version", api.versions[v]["name"]) for v in (second, third)]


def test_a_taken_version_name_is_refused_naming_it(api, client):
    upload(client, TRAINING)
    upload(client, TRAINING, version_name="v1")
    with pytest.raises(KfpApiError, match="pipeline 'training' already has a version named 'v1'") as refused:
        upload(client, TRAINING, version_name="v1")
    assert refused.value.exit_code == 2 and refused.value.status == 409
    assert sorted(v["name"] for v in api.versions.values()) == ["training", "v1"]


def test_default_version_names_tell_content_and_time_apart(tmp_path):
    copy = tmp_path / "training.yaml"
    copy.write_text(TRAINING.read_text() + "\n# edited\n")
    at = dt.datetime(2026, 11, 28, 10, 15, 0, 123456, tzinfo=dt.timezone.utc)
    name = default_version_name(TRAINING, at)
    assert name.endswith("-20261128T101500.123Z") and name != default_version_name(copy, at)
    assert name != default_version_name(TRAINING, at + dt.timedelta(milliseconds=1))


# -- submit ----------------------------------------------------------------------------------


def test_submit_sends_typed_parameters_in_an_experiment(api, client):
    run_id = submit(client, TRAINING, params=["source_uri=gs://bucket/data.csv", "max_epochs=5", "learning_rate=0.01", "promote=false"], experiment="churn")
    body = api.runs.records[run_id]["body"]
    assert body["runtime_config"]["parameters"] == {"source_uri": "gs://bucket/data.csv", "max_epochs": 5, "learning_rate": 0.01, "promote": False}
    assert type(body["runtime_config"]["parameters"]["max_epochs"]) is int
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "training" and body["display_name"].startswith("training ")
    (experiment,) = api.experiments.values()
    assert experiment["display_name"] == "churn" and body["experiment_id"] == experiment["experiment_id"]
    again = submit(client, TRAINING, params={"source_uri": "s3://b/k", "learning_rate": 1, "max_epochs": "7"}, experiment="churn", run_name="nightly")
    assert api.runs.records[again]["body"]["runtime_config"]["parameters"] == {"source_uri": "s3://b/k", "learning_rate": 1.0, "max_epochs": 7}
    assert api.runs.records[again]["body"]["display_name"] == "nightly" and len(api.experiments) == 1  # the experiment is reused


@pytest.mark.parametrize(
    "params, message",
    [
        (["source_uri=x", "nope=1"], "unknown pipeline parameter 'nope'"),
        (["source_uri=x", "max_epochs=five"], "max_epochs must be a whole number, not 'five'"),
        (["source_uri=x", "promote=yes"], "promote must be true or false"),
        (["source_uri"], "parameter 'source_uri' has no value"),
        ({"source_uri": "x", "max_epochs": 2.5}, "max_epochs must be a whole number, not 2.5"),
        ({"source_uri": "x", "learning_rate": True}, "learning_rate must be a number"),
        (["max_epochs=3"], "missing required pipeline parameters ['source_uri']"),
        ("source_uri=x", "not one string"),
    ],
)
def test_wrong_parameters_are_refused_before_any_request(api, client, params, message):
    api.requests.clear()
    with pytest.raises(DataError, match=re.escape(message)):
        submit(client, TRAINING, params=params)
    assert api.requests == [] and not api.runs.records


def test_the_fake_refuses_what_the_real_server_refuses(api, client):
    # Sent past our own checks, straight through kfp.Client: the API server itself says no.
    with pytest.raises(ApiException, match="parameter 'max_epochs' must be NUMBER_INTEGER") as wrong_type:
        client.create_run_from_pipeline_package(str(TRAINING), arguments={"source_uri": "x", "max_epochs": "five"}, experiment_name="e")
    with pytest.raises(ApiException, match=re.escape("unknown pipeline parameters ['nope']")):
        client.create_run_from_pipeline_package(str(TRAINING), arguments={"source_uri": "x", "nope": 1}, experiment_name="e")
    assert wrong_type.value.status == 400 and not api.runs.records
    client.upload_pipeline(str(TRAINING), pipeline_name="twice")
    with pytest.raises(ApiException, match="Failed to create a pipeline and a pipeline version") as taken:
        client.upload_pipeline(str(TRAINING), pipeline_name="twice")
    with pytest.raises(ApiException, match="Pipeline nope not found") as missing:
        client.list_pipeline_versions("nope")
    assert (taken.value.status, missing.value.status) == (409, 404)
    with pytest.raises(KfpApiError, match="Not found: Run nope not found") as unknown:
        wait(client, "nope", timeout=5, poll_seconds=0)
    assert unknown.value.exit_code == 2


# -- credentials and namespaces ------------------------------------------------------------------


def test_the_token_goes_as_a_bearer_header_and_a_wrong_one_is_refused(api, client):
    submit(client, TRAINING, params=["source_uri=x"])
    assert api.authorizations and set(api.authorizations) == {f"Bearer {TOKEN}"}
    for token in ("hunter2", None):
        with pytest.raises(KfpApiError, match=r"Unauthenticated: missing or wrong bearer token \(HTTP 401\)") as refused:
            connect(api.url, token=token)
        assert refused.value.exit_code == 3 and "hunter2" not in str(refused.value)


def test_multi_user_namespaces_are_sent_and_required(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr("kfp.client.client.time.sleep", lambda seconds: None)
    api = FakeKfpApi(multi_user=True)
    try:
        team = connect(api.url, namespace="team-a")
        run_id = submit(team, TRAINING, params=["source_uri=x"], experiment="exp", namespace="team-a")
        created = [body for method, path, body in api.requests if path == "/apis/v2beta1/experiments" and method == "POST"]
        assert [e.namespace for e in created] == ["team-a"] and api.runs.records[run_id]["namespace"] == "team-a"
        pipeline_id, _ = upload(team, TRAINING, namespace="team-a")
        assert api.pipelines[pipeline_id]["namespace"] == "team-a"
        assert upload(team, TRAINING, namespace="team-a")[0] == pipeline_id  # found in its namespace: a new version
        shared_id, _ = upload(team, TRAINING)  # no namespace: a shared pipeline, another one of that name
        assert shared_id != pipeline_id and api.pipelines[shared_id]["namespace"] == ""
        with pytest.raises(KfpApiError, match="namespace is required in multi-user mode") as refused:
            submit(connect(api.url), TRAINING, params=["source_uri=x"])
        assert refused.value.exit_code == 2 and "--namespace" in str(refused.value)
    finally:
        api.close()


# -- wait --------------------------------------------------------------------------------------


def test_wait_reports_each_step_in_order_and_the_final_state(api, client):
    run_id = submit(client, TRAINING, params=["source_uri=x"])
    lines: list[str] = []
    assert wait(client, run_id, timeout=600, poll_seconds=0, on_progress=lines.append) == "SUCCEEDED"
    expected = [part for step in STEPS for part in ([step, "RUNNING"], [step, "SUCCEEDED", "20s"])]
    assert [line.split() for line in lines] == expected  # no root, *-driver or executor entries
    assert all(line.startswith("  ") for line in lines) and len({line.index("RUNNING") for line in lines if "RUNNING" in line}) == 1


def test_wait_follows_a_run_of_an_uploaded_version(api, client):
    pipeline_id, version_id = upload(client, TRAINING)
    experiment = client.create_experiment("versions")
    run = client.run_pipeline(experiment.experiment_id, "from the dashboard", pipeline_id=pipeline_id, version_id=version_id, params={"source_uri": "x"})
    assert run.pipeline_spec is None and run.pipeline_version_reference.pipeline_version_id == version_id
    lines: list[str] = []
    assert wait(client, run.run_id, timeout=600, poll_seconds=0, on_progress=lines.append) == "SUCCEEDED"
    assert [line.split()[0] for line in lines] == [step for step in STEPS for _ in range(2)]  # the version's spec names the steps


def test_a_failed_step_ends_the_wait_and_is_named(api, client):
    api.runs.fail_at["train"] = "CUDA out of memory"
    run_id = submit(client, TRAINING, params=["source_uri=x"])
    lines: list[str] = []
    assert wait(client, run_id, timeout=600, poll_seconds=0, on_progress=lines.append) == "FAILED"
    assert lines[-1].split() == ["train", "FAILED", "20s"] and not any("register" in line for line in lines)
    assert failure_summary(client, run_id) == f"run {run_id} FAILED at step train: task 'train' failed: CUDA out of memory"


def test_wait_gives_up_after_its_timeout_and_says_the_run_goes_on(api, client):
    api.runs.hang_at.add("validate")
    run_id = submit(client, TRAINING, params=["source_uri=x"])
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    lines: list[str] = []
    with pytest.raises(RunTimeoutError, match=f"run {run_id} is still RUNNING after 2m00s; it goes on running") as timed_out:
        wait(client, run_id, timeout=120, poll_seconds=30, on_progress=lines.append, sleep=sleep, clock=lambda: now[0])
    assert timed_out.value.exit_code == 3 and f"run id {run_id}" in str(timed_out.value)
    assert sleeps == [30.0, 30.0, 30.0, 30.0] and [line.split()[:2] for line in lines] == [
        ["check-training", "RUNNING"],
        ["check-training", "SUCCEEDED"],
        ["ingest", "RUNNING"],
        ["ingest", "SUCCEEDED"],
        ["validate", "RUNNING"],
    ]


def test_steps_are_told_from_kfp_machinery_without_a_spec():
    steps = kfp_progress.user_steps(
        {
            "root": {"dag": {"tasks": {"loop": {"componentRef": {"name": "comp-loop"}}, "a": {"componentRef": {"name": "comp-a"}}}}},
            "components": {"comp-loop": {"dag": {"tasks": {"b": {"componentRef": {"name": "comp-b"}}}}}, "comp-a": {}, "comp-b": {}},
        }
    )
    assert steps == {"a", "b"}  # the loop is a DAG, not a step
    names = ["root", "root-driver", "ingest-driver", "ingest", "executor", "train"]
    assert [n for n in names if kfp_progress.is_user_step(n, None)] == ["ingest", "train"]


# -- describe ------------------------------------------------------------------------------------


def test_describe_submission_shows_values_defaults_missing_and_images():
    text = describe_submission(TRAINING, ["max_epochs=3", "mlflow_tracking_uri=https://alice:pw@mlflow.example.com"])
    assert text.startswith("pipeline 'training' (")
    assert re.search(r"^  max_epochs +=  ?3$", text, re.M) and re.search(r"^  batch_size += 256  \(default\)$", text, re.M)
    assert re.search(r"^  source_uri += MISSING \(required\)$", text, re.M) and "pw" not in text
    assert "mlflow_tracking_uri  = 'https://mlflow.example.com'" in text
    executors = yaml.safe_load(TRAINING.read_text())["deploymentSpec"]["executors"].values()
    images = sorted({e["container"]["image"] for e in executors})
    assert len(images) >= 2 and text.endswith("images:\n" + "\n".join(f"  {image}" for image in images))
    with pytest.raises(DataError, match="unknown pipeline parameter 'nope'"):
        describe_submission(TRAINING, ["nope=1"])
    assert check_params(TRAINING, {"source_uri": "x", "promote": "TRUE"}) == {"source_uri": "x", "promote": True}


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_submit_waits_and_exits_by_the_run_state(api, capsys):
    assert cli("submit", "training", "--host", api.url, "--param", "source_uri=gs://b/x.csv", "--compiled-dir", str(COMPILED), "--wait", "--poll-seconds", "0") == 0
    out = capsys.readouterr().out
    assert "submitting 'training'" in out and "Run details" not in out  # kfp's own print stays out
    run_id = re.search(r"^run (\S+): ", out, re.M).group(1)
    assert f"{api.url}/#/runs/details/{run_id}" in out and out.rstrip().endswith(f"run {run_id} SUCCEEDED")
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("  ") and line.split()[0] in STEPS][-1] == ["register", "SUCCEEDED"]
    api.runs.fail_at["validate"] = "2 anomalies at severity error: label_leak (column churn_flag)"
    assert cli("submit", str(TRAINING), "--host", api.url, "--param", "source_uri=x", "--wait", "--poll-seconds", "0") == 1
    err = capsys.readouterr().err
    assert "FAILED at step validate: task 'validate' failed: 2 anomalies" in err and "Traceback" not in err


def test_cli_submit_times_out_with_exit_3_and_the_run_link(api, capsys):
    api.runs.hang_at.add("ingest")
    assert cli("submit", "training", "--host", api.url, "--param", "source_uri=x", "--compiled-dir", str(COMPILED), "--wait", "--timeout-minutes", "0") == 3
    captured = capsys.readouterr()
    assert "is still RUNNING" in captured.err and "goes on running on the cluster" in captured.err and "/#/runs/details/" in captured.out


def test_cli_refuses_bad_parameters_without_contacting_the_cluster(api, capsys):
    assert cli("submit", "training", "--host", api.url, "--param", "source_uri=x", "--param", "max_epochs=lots", "--compiled-dir", str(COMPILED)) == 2
    assert "max_epochs must be a whole number" in capsys.readouterr().err
    assert api.requests == [] and api.authorizations == []
    assert cli("submit", "nothing", "--host", api.url, "--compiled-dir", str(COMPILED)) == 2
    assert "kfp-mlops compile" in capsys.readouterr().err


def test_cli_upload_then_a_taken_version_name(api, capsys, monkeypatch):
    monkeypatch.setenv("KFP_HOST", api.url)  # --host may come from the environment
    assert cli("upload", "training", "--compiled-dir", str(COMPILED)) == 0
    assert "version 'training'" in capsys.readouterr().out
    assert cli("upload", str(TRAINING), "--version-name", "2026-11-28") == 0
    assert "version '2026-11-28'" in capsys.readouterr().out
    assert cli("upload", str(TRAINING), "--version-name", "2026-11-28") == 2
    err = capsys.readouterr().err
    assert "already has a version named '2026-11-28'" in err and "Traceback" not in err


def test_cli_errors_of_the_api_are_one_message_with_exit_3(api, capsys, monkeypatch):
    host = api.url.replace("http://", "http://alice:pw@")
    monkeypatch.setenv("KFP_TOKEN", "hunter2")
    assert cli("upload", "training", "--host", host, "--compiled-dir", str(COMPILED)) == 3
    err = capsys.readouterr().err
    assert "Unauthenticated: missing or wrong bearer token (HTTP 401)" in err and "hunter2" not in err and "alice" not in err
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    api.unavailable = True
    for namespace in ([], ["--namespace", "team-a"]):  # with no namespace kfp.Client first retries its health check
        assert cli("upload", "training", "--host", api.url, *namespace, "--compiled-dir", str(COMPILED)) == 3
        err = capsys.readouterr().err
        assert "upstream connect error or disconnect/reset before headers (HTTP 503)" in err and "Traceback" not in err
    assert cli("submit", "training", "--host", f"http://127.0.0.1:{closed_port()}", "--param", "source_uri=x", "--compiled-dir", str(COMPILED)) == 3
    err = capsys.readouterr().err
    assert "the KFP API did not answer" in err and "Connection refused" in err and "Traceback" not in err


def test_the_installed_command_fails_in_one_message_without_a_traceback(tmp_path):
    command = Path(sys.executable).with_name("kfp-mlops")
    done = subprocess.run(
        [str(command), "submit", "training", "--host", f"http://127.0.0.1:{closed_port()}", "--param", "source_uri=x", "--compiled-dir", str(COMPILED)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(tmp_path), "PATH": str(command.parent)},
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("kfp-mlops submit: cannot connect to") and "Traceback" not in done.stderr and "WARNING" not in done.stderr


# -- what a hostile review found -------------------------------------------------------------


def test_a_host_that_accepts_but_never_answers_fails_in_bounded_time(api, monkeypatch, capsys):
    monkeypatch.setattr(kfp_remote, "ANSWER_TIMEOUT_S", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never reads or answers
        host = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(KfpApiError, match="did not answer within") as refused:
            connect(host, token=TOKEN)
        assert refused.value.exit_code == 3
        assert cli("upload", "training", "--host", host) == 3
    assert "did not answer" in capsys.readouterr().err


def test_a_token_is_never_taken_for_a_flag_and_an_unset_token_variable_is_named(api, monkeypatch, capsys):
    with pytest.raises(SystemExit) as ended:
        main(["submit", "training", "--host", api.url, "--token", "abc", "--param", "source_uri=gs://b/d"])
    assert ended.value.code == 2 and "unrecognized arguments: --token" in capsys.readouterr().err
    monkeypatch.delenv("MY_KFP_TOKEN", raising=False)
    assert cli("submit", "training", "--host", api.url, "--token-env", "MY_KFP_TOKEN", "--param", "source_uri=gs://b/d") == 2
    assert "'MY_KFP_TOKEN', which is not set" in capsys.readouterr().err
    assert not any(method == "POST" for method, _, _ in api.requests), "nothing was submitted"
