"""The model-quality gate's comparison, baseline file and arguments, without a training run."""

from __future__ import annotations

import json
import math

import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.pipelines import quality_gate as gate
from kfp_mlops.pipelines.quality_gate import Baseline, MetricBaseline, compare, failure_lines, load_baseline, table

BASELINE = Baseline(
    rows=5000,
    seed=7,
    arguments={},
    metrics={
        "test_roc_auc": MetricBaseline(value=0.80, tolerance=0.02, higher_is_better=True),
        "test_log_loss": MetricBaseline(value=0.45, tolerance=0.03, higher_is_better=False),
    },
)


def _regressed(measured: dict[str, float]) -> set[str]:
    return {c.metric for c in compare(measured, BASELINE) if c.regressed}


@pytest.mark.parametrize(
    ("measured", "regressed"),
    [
        ({"test_roc_auc": 0.80, "test_log_loss": 0.45}, set()),
        ({"test_roc_auc": 0.85, "test_log_loss": 0.30}, set()),  # better both ways
        ({"test_roc_auc": 0.78, "test_log_loss": 0.48}, set()),  # worse by exactly the tolerance
        ({"test_roc_auc": 0.7799, "test_log_loss": 0.45}, {"test_roc_auc"}),
        ({"test_roc_auc": 0.80, "test_log_loss": 0.4801}, {"test_log_loss"}),  # a loss that grows is a drop
        ({"test_roc_auc": 0.80, "test_log_loss": 0.40 - 1.0}, set()),
        ({"test_log_loss": 0.45}, {"test_roc_auc"}),  # not reported
        ({"test_roc_auc": math.nan, "test_log_loss": 0.45}, {"test_roc_auc"}),
    ],
)
def test_a_metric_regresses_when_it_drops_by_more_than_its_tolerance(measured, regressed):
    assert _regressed(measured) == regressed


def test_failure_lines_name_value_baseline_and_allowed_drop():
    lines = failure_lines(compare({"test_roc_auc": 0.7, "test_log_loss": 0.6}, BASELINE))
    assert lines == [
        "test_roc_auc: 0.7000, baseline 0.8000, allowed drop 0.0200 (higher is better)",
        "test_log_loss: 0.6000, baseline 0.4500, allowed drop 0.0300 (lower is better)",
    ]
    assert failure_lines(compare({"test_log_loss": 0.45}, BASELINE)) == ["test_roc_auc: not reported, baseline 0.8000, allowed drop 0.0200 (higher is better)"]


def test_table_shows_every_metric_its_change_and_the_ungated_ones():
    text = table(compare({"test_roc_auc": 0.81, "test_log_loss": 0.50}, BASELINE), {"test_f1": 0.6})
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    assert rows["test_roc_auc"] == ["test_roc_auc", "0.8100", "0.8000", "0.0200", "+0.0100", "ok"]
    assert rows["test_log_loss"] == ["test_log_loss", "0.5000", "0.4500", "0.0300", "-0.0500", "REGRESSED"]
    assert rows["test_f1"][-2:] == ["not", "gated"]


def test_direction_comes_from_the_train_steps_metrics():
    assert gate.higher_is_better("test_accuracy") and gate.higher_is_better("test_r2")
    assert not gate.higher_is_better("test_rmse") and not gate.higher_is_better("test_log_loss")
    with pytest.raises(DataError, match="'test_speed' has no known direction"):
        gate.higher_is_better("test_speed")


def test_baseline_round_trip_keeps_chosen_tolerances(tmp_path):
    path = tmp_path / "baseline.json"
    gate.write_baseline(path, BASELINE)
    assert load_baseline(path) == BASELINE
    renewed = gate.baseline_from_run({"test_roc_auc": 0.83, "test_accuracy": 0.77}, rows=5000, seed=7, arguments={}, previous=BASELINE, tolerance=0.05)
    assert renewed.metrics["test_roc_auc"] == MetricBaseline(0.83, 0.02, True), "a tolerance chosen before is kept"
    assert renewed.metrics["test_accuracy"] == MetricBaseline(0.77, 0.05, True), "a new metric gets the default"
    assert "test_log_loss" not in renewed.metrics, "a baseline holds what the run reports"
    with pytest.raises(DataError, match="reported test_roc_auc = nan"):
        gate.baseline_from_run({"test_roc_auc": math.nan}, rows=5000, seed=7, arguments={}, previous=None, tolerance=0.02)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no baseline file"),
        ("{not json", "is not JSON"),
        ('{"version": 2, "rows": 1, "seed": 1, "metrics": {}}', "not a version 1 quality baseline"),
        ('{"version": 1, "seed": 1, "metrics": {"test_f1": {"value": 0.5, "tolerance": 0.1}}}', "missing or mistyped entry \\('rows'\\)"),
        ('{"version": 1, "rows": 1, "seed": 1, "metrics": {"test_f1": {"value": 0.5}}}', "missing or mistyped entry \\('tolerance'\\)"),
        ('{"version": 1, "rows": 1, "seed": 1, "metrics": {}}', "gates no metric"),
        ('{"version": 1, "rows": 1, "seed": 1, "metrics": {"test_f1": {"value": 0.5, "tolerance": -0.1}}}', "test_f1 need a finite value and a tolerance of 0 or more"),
        ('{"version": 1, "rows": 1, "seed": 1, "metrics": {"test_speed": {"value": 0.5, "tolerance": 0.1}}}', "'test_speed' has no known direction"),
        ('{"version": 1, "rows": 1, "seed": 1, "metrics": {"test_rmse": {"value": 0.5, "tolerance": 0.1, "higher_is_better": true}}}', "higher_is_better of test_rmse contradicts"),
    ],
)
def test_a_bad_baseline_is_refused_with_what_to_do(tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        load_baseline(path)
    assert caught.value.exit_code == 2 and caught.value.fix


def test_a_run_that_would_not_compare_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "baseline.json"
    gate.write_baseline(path, BASELINE)
    for extra in (["--rows", "6000"], ["--seed", "8"], ["--max-epochs", "3"]):
        assert gate.main(["--baseline", str(path), *extra]) == 2
        err = capsys.readouterr().err
        assert "would not be comparable with the baseline (5000 rows, seed 7" in err and "--record a new baseline" in err
    assert gate.main(["--baseline", str(tmp_path / "missing.json")]) == 2
    assert "no baseline file" in capsys.readouterr().err
    assert gate.main(["--baseline", str(path), "--record", "--rows", "50"]) == 2
    assert "too few" in capsys.readouterr().err
    assert gate.main(["--baseline", str(path), "--record", "--tolerance", "-0.1"]) == 2
    assert "--tolerance -0.1 is negative" in capsys.readouterr().err
    assert json.loads(path.read_text())["rows"] == 5000, "a refused run writes nothing"


def test_train_step_metrics_are_read_from_the_metrics_artifact(tmp_path):
    step = tmp_path / "train"
    step.mkdir()
    output = {"artifacts": {"metrics": {"artifacts": [{"name": "metrics", "metadata": {"test_roc_auc": 0.8, "test_f1": 0.5, "display_name": "x"}}]}}}
    (step / "executor_output.json").write_text(json.dumps(output))
    assert gate.train_step_metrics(tmp_path) == {"test_roc_auc": 0.8, "test_f1": 0.5}
    (step / "executor_output.json").write_text(json.dumps({"artifacts": {}}))
    with pytest.raises(gate.TrainingFailed, match="reported no test metrics") as caught:
        gate.train_step_metrics(tmp_path)
    assert caught.value.exit_code == 1
