"""A gate acting on its decision against a real MLflow registry; traffic shifts on every target."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from kfp_mlops.components._shared.errors import DataError, DeployError
from kfp_mlops.components._shared.k8s_adapter import KubeClient, api_client
from kfp_mlops.components.abtest.apply import TrafficTarget
from kfp_mlops.components.abtest.core import GateRequest, run_gate
from kfp_mlops.components.abtest.settings import AnalysisInputError, AnalysisSettings
from kfp_mlops.components.deploy.arms import DeployInputError
from kfp_mlops.components.deploy.core import deploy
from kfp_mlops.components.deploy.weights import shift_cluster
from tests.unit.test_ab_logs import T0, write_log
from tests.unit.test_deploy import NS, _request, cluster, registered  # noqa: F401 - fixtures

assert cluster and registered


@dataclass(frozen=True)
class RecordingTraffic(TrafficTarget):
    """The traffic seam: records the weights it is asked to route by (fails when told to)."""

    shifts: list = field(default_factory=list)
    fail: bool = False

    def shift(self, weights: dict[str, int]) -> None:
        if self.fail:
            raise DeployError("the splitter did not answer", fix="retry")
        self.shifts.append(dict(weights))


def experiment(sink, *, n: int = 4000, rates=(0.70, 0.78), weights=(50, 50), start=T0, seed: int = 0, versions=("1", "2")) -> None:
    rng = np.random.default_rng(seed)
    challenger = rng.random(n) < weights[1] / 100
    arm = np.where(challenger, "challenger", "champion")
    label = rng.integers(0, 2, n)
    right = rng.random(n) < np.where(challenger, rates[1], rates[0])
    times = [start + timedelta(seconds=i) for i in range(n)]
    rows = pd.DataFrame({"request_id": [f"{start.isoformat()}-{i}" for i in range(n)], "time": times, "arm": arm, "version": np.where(challenger, versions[1], versions[0]),
                         "prediction": np.where(right, label, 1 - label).astype(str), "latency_ms": 5.0 + rng.random(n), "user": ""})  # fmt: skip
    write_log(str(sink), rows, pd.DataFrame({"request_id": rows.request_id, "outcome": label.astype(str), "time": rows.time}))


@pytest.fixture(autouse=True)
def blessed(request):
    """Version 2 passed register's gate (its tag), unless a test says otherwise."""
    if "registered" not in request.fixturenames:
        yield
        return
    registry = request.getfixturevalue("registered")[2]
    registry.client.set_model_version_tag("fraud", "2", "blessed", "true")
    yield
    registry.client.set_model_version_tag("fraud", "2", "blessed", "true")


def gate(sink, traffic, **changes) -> GateRequest:
    base = dict(model_name="fraud", log_sink=str(sink), arms="champion=50,challenger=50", settings=AnalysisSettings(), mode="apply", traffic=traffic)
    return GateRequest(**{**base, **changes})


def _aliases(registry) -> tuple[str, str]:
    champion, previous = registry.alias("fraud", "champion"), registry.alias("fraud", "previous")
    return champion.version if champion else "", previous.version if previous else ""


def test_promotion_moves_champion_under_the_lock_and_sends_all_traffic(registered, tmp_path):  # noqa: F811
    _, _, registry = registered
    experiment(tmp_path)
    traffic = RecordingTraffic("recording")
    try:
        outcome = run_gate(gate(tmp_path, traffic), registry=registry)
        assert outcome.result.decision.action == "promote"
        assert outcome.applied.action == "promoted" and outcome.applied.promoted_version == "2" and outcome.applied.replaced_version == "1"
        assert _aliases(registry) == ("2", "1") and traffic.shifts == [{"champion": 0, "challenger": 100}]
        assert outcome.next_arms == "" and outcome.next_history == "", "the experiment ended"
    finally:
        registry.promote("fraud", "1")


def test_a_stale_champion_or_a_failed_shift_changes_nothing(registered, tmp_path):  # noqa: F811
    _, _, registry = registered
    experiment(tmp_path, versions=("3", "2"))  # the control served a version that is not the champion
    traffic = RecordingTraffic("recording")
    with pytest.raises(AnalysisInputError, match="stale champion"):
        run_gate(gate(tmp_path, traffic), registry=registry)
    assert _aliases(registry)[0] == "1" and traffic.shifts == [{"champion": 100, "challenger": 0}], "a gate that fails sends all traffic back"
    fresh = tmp_path / "fresh"
    experiment(fresh)
    before = _aliases(registry)
    with pytest.raises(DeployError, match="did not answer") as caught:
        run_gate(gate(fresh, RecordingTraffic("recording", fail=True)), registry=registry)
    assert "could not be sent back" in str(caught.value), "the user learns traffic is not where it should be"
    assert _aliases(registry) == before, "the aliases are put back when traffic could not follow"
    assert registry.client.search_registered_models("name LIKE 'kfp-mlops-lock.%'") == [], "the lock is released"


def test_an_unblessed_winner_is_not_promoted_and_the_champion_gets_all_traffic_back(registered, tmp_path):  # noqa: F811
    _, _, registry = registered
    registry.client.set_model_version_tag("fraud", "2", "blessed", "false")
    experiment(tmp_path)
    traffic = RecordingTraffic("recording")
    with pytest.raises(AnalysisInputError, match="failed register's evaluation gate") as caught:
        run_gate(gate(tmp_path, traffic), registry=registry)
    assert "all traffic was sent back to 'champion'" in str(caught.value)
    assert traffic.shifts == [{"champion": 100, "challenger": 0}] and _aliases(registry)[0] == "1"


def test_rollback_sends_all_traffic_to_the_champion_and_leaves_the_registry(registered, tmp_path):  # noqa: F811
    _, _, registry = registered
    experiment(tmp_path, rates=(0.80, 0.70))
    traffic = RecordingTraffic("recording")
    outcome = run_gate(gate(tmp_path, traffic), registry=registry)
    assert outcome.result.decision.action == "rollback" and traffic.shifts == [{"champion": 100, "challenger": 0}]
    assert _aliases(registry)[0] == "1"


def test_continue_moves_to_the_next_weight_and_the_next_gate_sees_both_periods(registered, tmp_path):  # noqa: F811
    _, _, registry = registered
    experiment(tmp_path, n=600, rates=(0.7, 0.7), weights=(90, 10))
    traffic = RecordingTraffic("recording")
    first = run_gate(gate(tmp_path, traffic, arms="champion=90,challenger=10", next_weight=50), registry=registry)
    assert first.result.decision.action == "continue" and traffic.shifts == [{"champion": 50, "challenger": 50}]
    assert first.next_arms == "champion=50,challenger=50" and first.next_since
    history = json.loads(first.next_history)
    assert [p["arms"] for p in history] == ["champion=90,challenger=10"]
    # the second step's traffic, after the shift
    later = pd.Timestamp(first.next_since).to_pydatetime() + timedelta(seconds=1)
    experiment(tmp_path, n=600, rates=(0.7, 0.7), weights=(50, 50), start=later, seed=1)
    settings = AnalysisSettings(since=pd.Timestamp(first.next_since).to_pydatetime())
    second = run_gate(gate(tmp_path, traffic, arms=first.next_arms, history=first.next_history, settings=settings, on_inconclusive="rollback"), registry=registry)
    assert second.result.periods == 2 and second.result.srm.counts["challenger"] > 300
    assert second.result.decision.action == "rollback", "the last step, inconclusive: the champion keeps all traffic"
    assert "last step" in second.result.decision.reasons[-1] and traffic.shifts[-1] == {"champion": 100, "challenger": 0}


def test_report_mode_acts_on_nothing(registered, tmp_path):  # noqa: F811
    _, _, registry = registered
    experiment(tmp_path)
    traffic = RecordingTraffic("recording")
    outcome = run_gate(gate(tmp_path, traffic, mode="report"), registry=None)
    assert outcome.result.decision.action == "promote" and outcome.applied is None and traffic.shifts == [] and _aliases(registry)[0] == "1"


def test_a_gate_waits_for_traffic_then_gives_up_naming_the_problem(tmp_path):
    now = [0.0]
    slept = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with pytest.raises(DataError, match="no predictions"):
        run_gate(gate(tmp_path, RecordingTraffic("recording"), mode="report", wait_s=300, poll_s=60), clock=lambda: now[0], sleep=sleep)
    assert slept == [60] * 5, "looked every minute for the five minutes it was given"


@pytest.mark.parametrize(("history", "message"), [("{", "history is not"), ('[{"since": "2026-11-28T10:00:00Z", "until": "2026-11-28T09:00:00Z", "arms": "champion=50,challenger=50"}]', "ends"),
                                                  ('[{"since": "2026-11-28T10:00:00", "until": "2026-11-28T11:00:00Z", "arms": "champion=50,challenger=50"}]', "history is not"),
                                                  (json.dumps([{"since": "2026-11-28T08:00:00Z", "until": "2026-11-28T09:00:00Z", "arms": "champion=90,challenger=10"}] * 2), "may not overlap"),
                                                  ('[{"since": "2026-11-28T08:00:00Z", "until": "2026-11-28T11:00:00Z", "arms": "champion=90,challenger=10"}]', "after this window starts")])  # fmt: skip
def test_a_damaged_history_is_refused(tmp_path, history, message):
    with pytest.raises(AnalysisInputError, match=message):
        run_gate(gate(tmp_path, RecordingTraffic("recording"), mode="report", history=history, settings=AnalysisSettings(since=T0)))


@pytest.mark.parametrize("target", ["kserve", "seldon", "seldon-v2"])
def test_weights_shift_on_the_cluster_entry_resource(registered, cluster, target):  # noqa: F811
    _, _, registry = registered
    api, _ = cluster
    deploy(_request(target=target, arms="champion=90,challenger=10", image="registry.example.com/serve:1"), registry=registry, kube_api_client=api_client(api.url))
    kube = KubeClient(api_client(api.url))
    shift_cluster(kube, target, NS, "fraud", {"champion": 25, "challenger": 75})
    if target == "kserve":
        steps = api.get("inferencegraphs", NS, "fraud")["spec"]["nodes"]["root"]["steps"]
        assert [(s["name"], s["weight"]) for s in steps] == [("champion", 25), ("challenger", 75)]
    elif target == "seldon":
        assert [(p["name"], p["traffic"]) for p in api.get("seldondeployments", NS, "fraud")["spec"]["predictors"]] == [("champion", 25), ("challenger", 75)]
    else:
        assert [c["weight"] for c in api.get("experiments", NS, "fraud")["spec"]["candidates"]] == [25, 75]
    with pytest.raises(DeployInputError, match="unknown arm"):
        shift_cluster(kube, target, NS, "fraud", {"champion": 50, "canary": 50})
    with pytest.raises(DeployInputError, match="does not exist"):
        shift_cluster(kube, target, NS, "nothing-here", {"champion": 100})


ROLLOUT = dict(arms="champion=90,challenger=10", second_weight=25, third_weight=50, target="local", replay_uri="", label_column="label",
               requests_per_step=4000, users=0, wait_minutes=5.0, control="champion", metric="accuracy", unit="request", alpha=0.05, min_effect=0.0,
               latency_margin=0.2, latency_floor_ms=5.0, error_margin=0.005, max_p95_latency_ms=0.0, min_units=200)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 2.0}, "alpha 2.0"),
        ({"metric": "revenue"}, "metric 'revenue'"),
        ({"target": "bogus"}, "target 'bogus'"),
        ({"arms": "champion=100,challenger=0"}, "one challenger with a weight above 0"),
        ({"arms": "champion=60,challenger=60"}, "sum to 120"),
        ({"second_weight": 0}, "must grow"),
        ({"second_weight": 100}, "must grow"),
        ({"third_weight": 20}, "must grow"),
        ({"requests_per_step": -5}, "requests_per_step -5"),
        ({"wait_minutes": 0.0}, "no traffic will reach the gates"),
        ({"replay_uri": "/nonexistent/test.parquet"}, "does not exist"),
        ({"replay_uri": "TABLE", "label_column": "churned"}, "no label column 'churned'"),
        ({"replay_uri": "TABLE", "unit": "user", "users": 0}, "--users"),
    ],
)
def test_a_rollout_is_refused_before_any_traffic_moves(tmp_path, changes, message):
    from kfp_mlops.components.abtest.component_support import check_rollout

    table = tmp_path / "test.parquet"
    pd.DataFrame({"label": [0, 1], "x": [1.0, 2.0]}).to_parquet(table)
    params = {**ROLLOUT, **{k: (str(table) if v == "TABLE" else v) for k, v in changes.items()}}
    with pytest.raises(Exception, match=message) as caught:
        check_rollout(params)
    assert "What to do" in str(caught.value)
    check_rollout({**ROLLOUT, "replay_uri": str(table)})  # the same with good settings passes
