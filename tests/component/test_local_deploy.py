"""A/B on one machine, as a new user runs it: train twice, deploy champion and challenger 50/50, send traffic, give feedback;
then canary rollouts with the simulator replaying the test split, the gates promoting a better challenger and rolling back a worse one."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import requests

from kfp_mlops.components._shared.prediction_log import join_outcomes, read_feedback, read_predictions
from kfp_mlops.components.deploy.local_target import status_local, stop_local
from kfp_mlops.components.register.registry import Registry
from kfp_mlops.components.serve.model_source import load_registered_version

CLI = str(Path(sys.executable).with_name("kfp-mlops"))
MODEL = "kfp-mlops-model"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Version 1 is the champion; version 2, trained on another split and not promoted, the challenger."""
    tmp = tmp_path_factory.mktemp("ab")
    wd = tmp / "wd"
    common = ("--workdir", str(wd), "--demo-rows", "4000", "--max-epochs", "8", "--hidden-layers", "32")
    try:
        first = _cli("run", "training", *common, cwd=tmp)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        # Each run deploys what it blessed (the CLI's deploy_target is local): version 1 alone
        # (champion and challenger at once), then version 2 as the challenger at the first canary weight.
        assert "model: kfp-mlops-model version 1 (blessed; @challenger, @champion)" in first.stdout, first.stdout[-2000:]
        # A fixed bar instead of the statistical gate, so the second version is blessed (and deployed) for sure.
        second = _cli("run", "training", *common, "--split-seed", "1", "--promote", "false", "--gate-thresholds", '{"roc_auc": {"min": 0.6}}', cwd=tmp)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        canary = status_local(wd / "deployments" / MODEL)
        assert canary is not None and canary.healthy and {arm: running.weight for arm, running in canary.arms.items()} == {"champion": 90, "challenger": 10}, second.stdout[-2000:]
        assert "serving at http://" in second.stdout
        yield tmp, wd
    finally:
        stop_local(wd / "deployments" / MODEL)  # what the training runs deployed, whatever the tests did


def test_deploy_champion_and_challenger_locally_send_traffic_and_feedback(two_versions):
    tmp, wd = two_versions
    state_dir = wd / "deployments" / MODEL
    try:
        deployed = _cli("run", "deploy", "--workdir", str(wd), "--arms", "champion=50,challenger=50", cwd=tmp)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        listed = _cli("deployments", "--workdir", str(wd), cwd=tmp)
        deployment = status_local(state_dir)
        assert deployment is not None and deployment.healthy
        assert deployment.url in listed.stdout and "challenger" in listed.stdout

        registry = Registry(f"sqlite:///{wd / 'mlflow' / 'mlflow.db'}")
        versions = {alias: registry.alias(MODEL, alias).version for alias in ("champion", "challenger")}
        assert versions == {"champion": "1", "challenger": "2"}
        assert f"models:/{MODEL}/1" in listed.stdout and f"models:/{MODEL}/2" in listed.stdout, "each arm's pinned version is listed"
        registry.client.set_registered_model_alias(MODEL, "champion", "2")  # as a rollout or a retraining would
        try:
            moved = _cli("deployments", "--workdir", str(wd), cwd=tmp)
        finally:
            registry.client.set_registered_model_alias(MODEL, "champion", "1")
        assert "@champion is version 2 now" in moved.stdout and "still serves version 1" in moved.stdout, moved.stdout
        with tempfile.TemporaryDirectory() as scratch:
            transforms = {alias: load_registered_version(registry, MODEL, v, Path(scratch) / alias) for alias, v in versions.items()}
        features = transforms["champion"].contract.feature_names
        table = pq.read_table(sorted(wd.glob("runs/training-*/featurize/test"))[0]).slice(0, 200)
        rows = table.select(features).to_pylist()

        answers: dict[str, list[tuple[int, str, float]]] = {"champion": [], "challenger": []}
        session = requests.Session()
        for i, row in enumerate(rows):
            reply = session.post(f"{deployment.url}/v1/models/{MODEL}:predict", json={"instances": [row]}, headers={"X-Kfp-Mlops-Key": f"user-{i}"}, timeout=30)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            answers[reply.headers["X-Kfp-Mlops-Arm"]].append((i, body["request_id"], body["probabilities"][0][transforms["champion"].contract.classes[-1]]))
        assert all(len(a) > 50 for a in answers.values()), {k: len(v) for k, v in answers.items()}

        # Each arm answered with its own version's model: the training path's scores for the same rows.
        for arm, got in answers.items():
            expected = transforms[arm].predict_table(table.take([i for i, _, _ in got]))
            np.testing.assert_allclose([p for _, _, p in got], expected, rtol=1e-5, atol=1e-6)
        again = session.post(f"{deployment.url}/v1/models/{MODEL}:predict", json={"instances": [rows[3]]}, headers={"X-Kfp-Mlops-Key": "user-3"}, timeout=30)
        assert again.headers["X-Kfp-Mlops-Arm"] == next(arm for arm, got in answers.items() if any(i == 3 for i, _, _ in got)), "sticky by key"

        outcomes = [{"request_id": rid, "outcome": str(table.column("label")[i].as_py())} for got in answers.values() for i, rid, _ in got[:40]]
        fed = session.post(f"{deployment.url}/v1/feedback", json={"outcomes": outcomes}, timeout=30)
        assert fed.status_code == 200, fed.text

        sink = str(state_dir / "prediction-logs")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and read_predictions(sink).num_rows < len(rows) + 1:
            time.sleep(1)
        logged = read_predictions(sink)
        assert logged.num_rows == len(rows) + 1
        by_arm = {arm: set(logged.filter(pa_equal(logged, "arm", arm)).column("model_version").to_pylist()) for arm in answers}
        assert by_arm == {"champion": {"1"}, "challenger": {"2"}}
        joined = join_outcomes(logged, read_feedback(sink))
        labelled = [o for o in joined.column("outcome").to_pylist() if o is not None]
        assert len(labelled) == len(outcomes)
    finally:
        stop_local(state_dir)
    stopped = _cli("deployments", "--workdir", str(wd), cwd=tmp)
    assert "no local deployments" in stopped.stdout
    for running in deployment.arms.values():
        assert not Path(f"/proc/{running.pid}").exists() or _zombie(running.pid), "no server process left behind"


def pa_equal(table, column: str, value: str):
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_deploy_refuses_a_missing_alias_and_bad_weights_before_starting_anything(two_versions):
    tmp, wd = two_versions
    state_dir = wd / "deployments" / "bad"
    missing = _cli("run", "deploy", "--workdir", str(wd), "--deployment-name", "bad", "--arms", "champion=50,canary=50", cwd=tmp)
    assert missing.returncode != 0
    assert f"models:/{MODEL}@canary does not exist" in missing.stdout + missing.stderr
    weights = _cli("run", "deploy", "--workdir", str(wd), "--deployment-name", "bad", "--arms", "champion=60,challenger=60", cwd=tmp)
    assert weights.returncode != 0 and "sum to 120, not 100" in weights.stdout + weights.stderr
    assert status_local(state_dir) is None, "nothing was started"


def _gates(out: str) -> list[str]:
    return [line.split("decision: ", 1)[1].split()[0] for line in out.splitlines() if line.strip().startswith("decision: ")]


def _reports(wd) -> list:
    run = max(wd.glob("runs/rollout-*"), key=lambda p: p.stat().st_mtime)
    return sorted(run.glob("analyze-experiment*/report.html"))


def test_a_worse_challenger_is_rolled_back_and_a_better_one_promoted(two_versions):  # noqa: F811
    tmp, wd = two_versions
    state_dir = wd / "deployments" / MODEL
    registry = Registry(f"sqlite:///{wd / 'mlflow' / 'mlflow.db'}")
    worse = _cli("run", "training", "--workdir", str(wd), "--demo-rows", "4000", "--max-epochs", "1", "--hidden-layers", "2", "--promote", "false", cwd=tmp)
    assert worse.returncode == 0, worse.stdout[-3000:] + worse.stderr[-3000:]
    weak = registry.alias(MODEL, "challenger").version
    champion = registry.alias(MODEL, "champion").version
    try:
        rolled = _cli("run", "rollout", "--workdir", str(wd), "--requests-per-step", "1500", "--verbose", cwd=tmp)
        out = rolled.stdout + rolled.stderr
        assert rolled.returncode == 0, out[-4000:]
        assert "replaying the test split of the latest training run" in out
        assert _gates(out)[-1] == "rollback" and set(_gates(out)[:-1]) <= {"continue"}, _gates(out)
        assert registry.alias(MODEL, "champion").version == champion, "a rollback leaves the registry"
        weights = {name: arm.weight for name, arm in status_local(state_dir).arms.items()}
        assert weights == {"champion": 100, "challenger": 0}
        page = _reports(wd)[-1].read_text()
        assert "ROLLBACK" in page.upper() and "<svg" in page

        # The other way round: the weak model as champion, the trained one as challenger.
        registry.set_alias(MODEL, "champion", weak)
        registry.set_alias(MODEL, "challenger", champion)
        promoted = _cli("run", "rollout", "--workdir", str(wd), "--requests-per-step", "1500", "--verbose", cwd=tmp)
        out = promoted.stdout + promoted.stderr
        assert promoted.returncode == 0, out[-4000:]
        assert _gates(out)[-1] == "promote", _gates(out)
        last = [line for line in out.splitlines() if line.startswith("gate ")][-1]
        assert last.startswith(f"gate {len(_gates(out))}: promote  (report: ") and Path(last.split("(report: ")[1].rstrip(")")).is_file(), last
        assert registry.alias(MODEL, "champion").version == champion and registry.alias(MODEL, "previous").version == weak
        weights = {name: arm.weight for name, arm in status_local(state_dir).arms.items()}
        assert weights == {"champion": 0, "challenger": 100}
        metrics = json.loads((_reports(wd)[-1].parent / "executor_output.json").read_text())
        assert metrics["parameterValues"]["Output"] == "promote"
    finally:
        stop_local(state_dir)
