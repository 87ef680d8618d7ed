"""Sweep trials and the choice of the best model."""

from __future__ import annotations

import json

import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.sweep.core import Candidate, expand, parse_trial, rank


def test_grid_and_random():
    space = json.dumps({"learning_rate": [0.001, 0.01, 0.1], "hidden_layers": ["64", "128,64"]})
    grid = expand(space)
    assert len(grid) == 6 and {t["learning_rate"] for t in grid} == {0.001, 0.01, 0.1}
    assert all(t["batch_size"] == 256 and isinstance(t["max_epochs"], int) for t in grid), "every trial carries every setting"
    random_a = expand(space, strategy="random", samples=3, seed=1)
    assert len(random_a) == 3 and random_a == expand(space, strategy="random", samples=3, seed=1)
    assert all(t in grid for t in random_a)


@pytest.mark.parametrize(
    ("space", "message"),
    [("{", "not valid JSON"), ("[]", "non-empty JSON object"), ('{"momentum": [0.9]}', "unknown hyperparameters"), ('{"learning_rate": []}', "non-empty list")],
)
def test_bad_search_spaces(space, message):
    with pytest.raises(DataError, match=message):
        expand(space)


def test_parse_trial_types_and_refusals():
    assert parse_trial('{"batch_size": 512.0, "learning_rate": "0.01"}') == {"batch_size": 512, "learning_rate": 0.01}
    with pytest.raises(DataError, match="unknown hyperparameters"):
        parse_trial('{"epochs": 3}')


def test_rank_by_validation_metric():
    models = [Candidate(0, {"val_roc_auc": 0.71, "val_log_loss": 0.6}), Candidate(1, {"val_roc_auc": 0.75, "val_log_loss": 0.62}), Candidate(2, {"val_roc_auc": float("nan")})]
    assert [c.index for c, _ in rank(models, "roc_auc")] == [1, 0, 2]
    assert [c.index for c, _ in rank(models, "log_loss")][:2] == [0, 1], "lower is better for log loss"
    with pytest.raises(DataError, match="no model reports val_rmse"):
        rank(models, "rmse")


@pytest.mark.parametrize(
    ("space", "kw", "message"),
    [
        ('{"learning_rate": [-1]}', {}, "out of range"),
        ('{"learning_rate": ["x"]}', {}, "is not a float"),
        ('{"batch_size": [0]}', {}, "out of range"),
        ('{"dropout": [true]}', {}, "is not a float"),
        ('{"learning_rate": [' + ", ".join(str(i / 1000 + 0.001) for i in range(300)) + "]}", {}, "more than 256 trials"),
        ('{"learning_rate": [0.1]}', {"strategy": "random", "samples": 0}, "between 1 and 256"),
    ],
)
def test_bad_search_spaces_are_refused_before_any_trial(space, kw, message):
    with pytest.raises(DataError, match=message):
        expand(space, **kw)
    assert [t["hidden_layers"] for t in expand('{"hidden_layers": [64, "32,16"]}')] == ["64", "32,16"], "one layer may be written as a number"
