"""`kfp-mlops schedule` against a fake KFP v2beta1 API that parses bodies with kfp-server-api's models."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfp_mlops.pipelines.cli_kfp import cmd_schedule
from tests.kfp_fake import FakeKfpApi

COMPILED = Path(__file__).resolve().parents[2] / "compiled"


@pytest.fixture
def api(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads a context file from the home folder
    fake = FakeKfpApi(token="s3cret")
    monkeypatch.setenv("KFP_TOKEN", "s3cret")
    yield fake
    fake.close()


def test_the_monitoring_pipeline_is_scheduled_hourly_in_a_new_experiment(api, capsys):
    code = cmd_schedule(
        [
            "monitoring",
            "--host",
            api.url,
            "--cron",
            "0 * * * *",
            "--param",
            "source_uri=gs://bucket/current/",
            "--param",
            "drift_share=0.3",
            "--param",
            "retrain=false",
            "--compiled-dir",
            str(COMPILED),
        ]
    )
    assert code == 0, capsys.readouterr().err
    (run,) = api.recurring_runs.values()
    assert run["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *" and run["max_concurrency"] == "1" or run["max_concurrency"] == 1
    assert run["runtime_config"]["parameters"] == {"source_uri": "gs://bucket/current/", "drift_share": 0.3, "retrain": False}
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "monitoring" and run["display_name"] == "monitoring"
    assert [e["display_name"] for e in api.experiments.values()] == ["kfp-mlops"]
    assert "scheduled 'monitoring'" in capsys.readouterr().out
    assert cmd_schedule(["monitoring", "--host", api.url, "--cron", "30 6 * * *", "--param", "source_uri=x", "--compiled-dir", str(COMPILED)]) == 0
    assert len(api.experiments) == 1 and len(api.recurring_runs) == 2  # the experiment is reused


@pytest.mark.parametrize(
    "args, message",
    [
        (["--param", "nope=1"], "unknown pipeline parameter 'nope'"),
        (["--param", "source_uri=x", "--param", "drift_share=half"], "drift_share must be a number"),
        (["--param", "source_uri=x", "--param", "retrain=yes"], "retrain must be true or false"),
        (["--param", "source_uri=x", "--cron", "* *"], "has 2 fields"),
        ([], "missing pipeline parameters ['source_uri']"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(api, capsys, args, message):
    cron = [] if "--cron" in args else ["--cron", "0 * * * *"]
    assert cmd_schedule(["monitoring", "--host", api.url, *cron, "--compiled-dir", str(COMPILED), *args]) != 0
    assert message in capsys.readouterr().err and not api.recurring_runs


def test_a_wrong_token_or_a_missing_package_fails_cleanly(api, capsys, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "hunter2")
    monkeypatch.setattr("kfp.client.client.time.sleep", lambda seconds: None)  # kfp retries healthz 5 times
    assert cmd_schedule(["monitoring", "--host", api.url, "--cron", "0 * * * *", "--param", "source_uri=x", "--compiled-dir", str(COMPILED)]) == 3
    err = capsys.readouterr().err
    assert "refused" in err and "hunter2" not in err
    assert cmd_schedule(["nothing", "--host", api.url, "--cron", "0 * * * *", "--compiled-dir", str(COMPILED)]) == 2
    assert "kfp-mlops compile" in capsys.readouterr().err
