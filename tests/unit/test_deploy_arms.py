"""Deploy requests are checked before anything is read or started: arms, weights, targets, names."""

from __future__ import annotations

import re

import pytest

from kfp_mlops.components.deploy.arms import ArmRequest, DeployInputError, parse_arms
from kfp_mlops.components.deploy.core import DeployRequest, check_request, deployment_name


def test_arms_parse_aliases_and_versions():
    assert parse_arms("champion=90, challenger=10") == [ArmRequest("champion", 90), ArmRequest("challenger", 10)]
    arms = parse_arms("7=50,8=50")
    assert [a.name for a in arms] == ["v7", "v8"] and all(a.is_version for a in arms)
    assert parse_arms("champion=100") == [ArmRequest("champion", 100)]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("champion=60,challenger=30", "sum to 90, not 100"),
        ("champion=60,challenger=60", "sum to 120"),
        ("champion=50,champion=50", "given twice"),
        ("champion=-10,challenger=110", "percents from 0 to 100"),
        ("champion=fifty,challenger=50", "not a whole percent"),
        ("champion=50.5,challenger=49.5", "not a whole percent"),
        ("champion", "not alias=weight"),
        ("=100", "not alias=weight"),
        ("", "no arms given"),
        (" , ,", "no arms given"),
        ("Champion=100", "not a usable alias"),
        ("champ/../x=100", "not a usable alias"),
        ("7=50,v7=50", "given twice"),
    ],
)
def test_bad_arms_are_named(text, problem):
    with pytest.raises(DeployInputError, match=problem) as caught:
        parse_arms(text)
    assert "What to do:" in str(caught.value)


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"target": "docker"}, "target 'docker'"),
        ({"mode": "yolo"}, "mode 'yolo'"),
        ({"deployment_mode": "Raw"}, "deployment_mode 'Raw'"),
        ({"model_name": " "}, "model_name is empty"),
        ({"canary_percent": 10}, "canary_percent is a KServe setting"),
        ({"target": "kserve", "canary_percent": 100}, "between 1 and 99"),
        ({"target": "kserve", "canary_percent": 10, "arms": "champion=100"}, "needs two arms"),
        ({"timeout_s": 0}, "not positive"),
        ({"port": 99999}, "not a TCP port"),
        ({"port": -5}, "not a TCP port"),
    ],
)
def test_bad_settings_are_named_before_the_registry_is_read(changes, problem):
    request = DeployRequest(**{"model_name": "m", "arms": "champion=90,challenger=10", **changes})
    with pytest.raises(DeployInputError, match=problem):
        check_request(request)


def test_deployment_names_are_dns_labels():
    assert deployment_name(DeployRequest(model_name="Churn_Model v2")) == "churn-model-v2"
    assert deployment_name(DeployRequest(model_name="x", deployment="fraud")) == "fraud"
    assert deployment_name(DeployRequest(model_name="2024-model")) == "model"
    with pytest.raises(DeployInputError, match="DNS label"):
        deployment_name(DeployRequest(model_name="m", deployment="a" * 41))
    with pytest.raises(DeployInputError, match="DNS label"):
        deployment_name(DeployRequest(model_name="___"))
    for given in ("../../evil", "Bad Name!", "Fraud"):  # a given name is checked, never rewritten into another
        with pytest.raises(DeployInputError, match=re.escape(repr(given))):
            deployment_name(DeployRequest(model_name="m", deployment=given))


def test_stopping_takes_a_name_never_a_path(tmp_path, capsys):
    from kfp_mlops.pipelines.cli import cmd_deployments

    (tmp_path / "wd" / "deployments").mkdir(parents=True)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "deployment.json").write_text("{}")
    assert cmd_deployments(["stop", "../../evil", "--workdir", str(tmp_path / "wd")]) == 2
    assert "no local deployment '../../evil'" in capsys.readouterr().err
    assert (evil / "deployment.json").exists()
