"""The training pipeline's settings are checked before any data is read, all problems at once, with the steps' own messages."""

from __future__ import annotations

import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.train.settings_check import TrainingSettings, check_training_settings


def test_good_settings_pass_including_every_deploy_target():
    check_training_settings(TrainingSettings())
    for target in ("local", "kserve", "seldon", "seldon-v2"):
        check_training_settings(TrainingSettings(deploy_target=target))


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"split_fractions": "0.7,0.3"}, "split_fractions"),
        ({"split_fractions": "0.9,0.2,-0.1"}, "split_fractions"),
        ({"split": "by-date"}, "'by-date'"),
        ({"split_seed": -1}, "split_seed"),
        ({"hidden_layers": "64,x"}, "hidden_layers"),
        ({"hidden_layers": "0"}, "hidden_layers"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"batch_size": -1}, "batch_size"),
        ({"gpu": "yes"}, "gpu 'yes'"),
        ({"model_name": "kfp-mlops-lock.mine"}, "reserved"),
        ({"model_name": "x" * 300}, "invalid model name"),
        ({"gate_thresholds": '{"roc_auc": {"min": 0.7'}, "gate_thresholds"),
        ({"gate_thresholds": '{"auc": {"min": 0.7}}'}, "gate_thresholds"),
        ({"deploy_target": "k8s"}, "deployment: target 'k8s'"),
        ({"deploy_target": "local", "deploy_arms": "champion=90,challenger=20"}, "sum to 110"),
    ],
)
def test_each_bad_setting_is_named_with_its_fix(changes, named):
    with pytest.raises(DataError) as raised:
        check_training_settings(TrainingSettings(**changes))
    assert named in str(raised.value), str(raised.value)
    assert "What to do" in str(raised.value) and "nothing was read or trained" in str(raised.value)


def test_all_problems_are_listed_at_once_and_arms_are_not_checked_without_a_deployment():
    with pytest.raises(DataError) as raised:
        check_training_settings(TrainingSettings(split_fractions="1,0,0", gate_thresholds="[1]", deploy_target="none", deploy_arms="nonsense"))
    message = str(raised.value)
    assert message.startswith("2 training setting(s) cannot work") and "split_fractions" in message and "gate_thresholds" in message, message
