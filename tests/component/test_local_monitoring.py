"""The monitoring pipeline as a user runs it: train on demo data, then monitor drifted demo data, retrain and gate.

The drifted demo data moves the inputs and the label's relation to them, so the champion's
realized performance falls, the monitor advises retraining, and the nested training
pipeline's gate promotes the retrained model because it beats the champion on the same rows.
"""

import subprocess

from kfp_mlops.components.register.registry import Registry
from tests.component.test_local_runs import CLI

SMALL = ["--demo-rows", "8000", "--max-epochs", "4", "--hidden-layers", "32"]


def test_drifted_demo_data_is_flagged_then_a_retrained_model_is_promoted(tmp_path):
    workdir = tmp_path / "wd"
    trained = subprocess.run([CLI, "run", "training", "--workdir", str(workdir), "--deploy-target", "none", *SMALL], capture_output=True, text=True, timeout=900)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    watched = subprocess.run([CLI, "run", "monitoring", "--workdir", str(workdir), "--demo-drift", "0.6", *SMALL, "--evidently-sample-rows", "300"], capture_output=True, text=True, timeout=1200)
    out = watched.stdout
    assert watched.returncode == 0, out[-3000:] + watched.stderr[-3000:]
    assert "monitor: retrain yes, drift yes" in out and "retrained: version 2 blessed" in out, out[-2000:]
    registry = Registry(f"sqlite:///{(workdir / 'mlflow' / 'mlflow.db').resolve()}")
    assert registry.alias("kfp-mlops-model", "champion").version == "2" and registry.alias("kfp-mlops-model", "previous").version == "1"
    report = next(workdir.glob("runs/monitoring-*/monitor-models/report.html")).read_text()
    assert "Retrain" in report and "performance alert" in report

    # The same data against the new champion, which was trained on it: nothing to retrain, the branch does not run.
    calm = subprocess.run([CLI, "run", "monitoring", "--workdir", str(workdir), "--demo-drift", "0.6", *SMALL, "--evidently-sample-rows", "0"], capture_output=True, text=True, timeout=900)
    assert calm.returncode == 0, calm.stdout[-3000:] + calm.stderr[-3000:]
    assert "monitor: retrain no" in calm.stdout and "retrained:" not in calm.stdout, calm.stdout[-2000:]
