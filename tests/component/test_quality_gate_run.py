"""The model-quality gate on a real training pipeline run (kfp.local), on small demo data."""

from __future__ import annotations

import json

from kfp_mlops.pipelines import quality_gate as gate


def test_a_real_run_is_read_and_a_metric_below_its_baseline_fails_alone(tmp_path, capsys):
    # Small and short, to keep this near a minute. Baselines no trained model can miss (accuracy 0,
    # log loss 10) and one no model of 4 epochs reaches (ROC AUC 1 with no allowed drop).
    baseline = {
        "version": 1,
        "rows": 2000,
        "seed": 3,
        "arguments": {"max_epochs": 4},
        "metrics": {
            "test_accuracy": {"value": 0.0, "tolerance": 0.0},
            "test_log_loss": {"value": 10.0, "tolerance": 0.0},
            "test_roc_auc": {"value": 1.0, "tolerance": 0.0},
        },
    }
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))

    assert gate.main(["--baseline", str(path), "--workdir", str(tmp_path / "work")]) == 1
    out, err = capsys.readouterr()
    assert "training pipeline on 2,000 demo rows (seed 3), arguments {'max_epochs': 4}" in out
    failed = [line.strip() for line in err.splitlines() if line.strip().startswith("test_")]
    assert len(failed) == 1 and failed[0].startswith("test_roc_auc: 0.") and failed[0].endswith("baseline 1.0000, allowed drop 0.0000 (higher is better)")
    table = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("test_")}
    assert table["test_accuracy"][-1] == "ok" and table["test_log_loss"][-1] == "ok" and table["test_roc_auc"][-1] == "REGRESSED"
    assert table["test_f1"][-2:] == ["not", "gated"], "every metric the train step reported is shown"
    # What the table showed is what the train step recorded in its Metrics artifact.
    run_dir = next((tmp_path / "work" / "runs").glob("*/train")).parent
    recorded = gate.train_step_metrics(run_dir)
    assert float(table["test_roc_auc"][1]) == round(recorded["test_roc_auc"], 4) and 0.5 < recorded["test_roc_auc"] < 1
