"""The Kubernetes adapter through the real ``kubernetes`` client against the fake API server.

The fake validates every write against the real CRDs; a test plays the controller by marking
objects Ready or failed from the ``sleep`` callback of the wait loop, and a fake clock makes
timeouts deterministic (no timed assertions).
"""

from __future__ import annotations

import copy

import pytest

from kfp_mlops.components._shared.errors import DeployError
from kfp_mlops.components._shared.k8s_adapter import (
    APPLY_PATCH,
    KubeClient,
    ResourceRef,
    api_client,
    readiness,
)
from kfp_mlops.components.deploy.manifests import (
    Arm,
    ServeSettings,
    render_kserve,
    render_seldon_v1,
)
from tests.k8s_fake import FakeKubeAPI

NS = "ml"
ISVCS = "inferenceservices"


class Clock:
    """A monotonic clock that only moves when the wait loop sleeps; each tick may play the controller."""

    def __init__(self, on_tick=None) -> None:
        self.now = 0.0
        self.ticks = 0
        self.on_tick = on_tick

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)
        self.ticks += 1
        if self.on_tick is not None:
            self.on_tick()


def _arms(champion: str = "3", challenger: str | None = "4") -> list[Arm]:
    arms = [Arm("champion", f"models:/fraud/{champion}", "fraud", champion, 100 if challenger is None else 90)]
    if challenger is not None:
        arms.append(Arm("challenger", f"models:/fraud/{challenger}", "fraud", challenger, 10))
    return arms


SETTINGS = ServeSettings(deployment="fraud", namespace=NS, image="ghcr.io/kfp-mlops/kfp-mlops-serve:0.1.0", tracking_uri="http://mlflow.ml:5000", mlflow_secret="mlflow")


@pytest.fixture
def fake():
    api = FakeKubeAPI()
    yield api
    api.close()


@pytest.fixture
def client(fake):
    return KubeClient(api_client(fake.url), sleep=lambda _: None)


def _isvc(version: str = "3") -> dict:
    return render_kserve(_arms(version, None), SETTINGS)[0]


def test_server_side_apply_creates_updates_gets_and_deletes(fake, client):
    first = _isvc("3")
    ref = ResourceRef.of(first)
    assert client.get(ref) is None
    client.apply(first)
    patch = next(r for r in fake.requests if r.method == "PATCH")
    assert patch.content_type == APPLY_PATCH and patch.query == {"fieldManager": "kfp-mlops", "fieldValidation": "Strict", "force": "true"}
    stored = client.get(ref)
    assert stored["metadata"]["generation"] == 1 and stored["metadata"]["labels"]["kfp-mlops/model-version"] == "3"

    client.apply(_isvc("4"))
    updated = client.get(ref)
    assert updated["metadata"]["generation"] == 2, "a changed spec is a new generation"
    assert "models:/fraud/4" in updated["spec"]["predictor"]["containers"][0]["args"] and updated["metadata"]["labels"]["kfp-mlops/model-version"] == "4"
    client.apply(_isvc("4"))
    assert client.get(ref)["metadata"]["generation"] == 2, "re-applying the same manifest changes nothing"

    assert client.delete(ref) is True and client.get(ref) is None
    assert client.delete(ref) is False


def test_apply_conflict_names_the_other_field_manager(fake, client):
    theirs = _isvc("3")
    fake.put(theirs, ISVCS, manager="kubectl-edit")
    with pytest.raises(DeployError, match="kubectl-edit") as caught:
        client.apply(_isvc("4"), force=False)
    assert "HTTP 409" in str(caught.value) and "force" in caught.value.fix
    client.apply(_isvc("4"), force=True)
    assert fake.managers[(ISVCS, NS, "fraud-champion")] == "kfp-mlops"


def test_create_reuses_our_object_and_refuses_a_foreign_one(fake, client):
    manifest = _isvc()
    client.create(manifest)
    assert client.create(manifest)["metadata"]["name"] == "fraud-champion", "a retried step reuses what it created"
    foreign = copy.deepcopy(manifest)
    foreign["metadata"].update(name="someone-elses", labels={})
    fake.put(foreign, ISVCS)
    with pytest.raises(DeployError, match="not created by kfp-mlops"):
        client.create(foreign)


def test_api_errors_say_what_to_do(fake, client):
    ref = ResourceRef.of(_isvc())
    fake.fail_next("GET", 403)
    with pytest.raises(DeployError, match="HTTP 403") as forbidden:
        client.get(ref)
    assert "RBAC" in forbidden.value.fix and "render_rbac" in forbidden.value.fix and "inferenceservices.serving.kserve.io" in forbidden.value.fix

    bad = _isvc()
    bad["spec"]["predictor"]["replicaz"] = 2
    bad["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(DeployError, match="HTTP 422") as invalid:
        client.apply(bad)
    assert "predictor.replicaz" in str(invalid.value) and "minReplicas" in str(invalid.value)
    assert ref not in [ResourceRef.of(o) for o in fake.objects.values()], "nothing was stored"

    fake.uninstall(ISVCS)
    with pytest.raises(DeployError, match="HTTP 404") as missing:
        client.get(ref)
    assert "install KServe" in missing.value.fix


def test_transient_errors_are_retried_a_bounded_number_of_times(fake, client):
    fake.fail_next("PATCH", 503, times=2)
    client.apply(_isvc())
    assert [r.status for r in fake.requests if r.method == "PATCH"] == [503, 503, 201]
    fake.fail_next("GET", 503, times=50)
    with pytest.raises(DeployError, match="HTTP 503"):
        client.get(ResourceRef.of(_isvc()))
    assert len([r for r in fake.requests if r.method == "GET"]) == 6, "one call and five retries"
    fake.failures.clear()

    # Waiting outlives a longer outage: a poll whose retries all fail is followed by the next poll.
    fake.mark_ready(ISVCS, NS, "fraud-champion")
    fake.fail_next("GET", 503, times=8)
    client.wait_ready(ResourceRef.of(_isvc()), timeout_s=60, poll_s=1, **_idle())
    assert not fake.failures["GET"]
    fake.fail_next("GET", 503, times=100)
    with pytest.raises(DeployError, match="HTTP 503"):
        client.wait_ready(ResourceRef.of(_isvc()), timeout_s=600, poll_s=1, **_idle())
    assert len(fake.failures["GET"]) == 100 - 6 * 6, "six polls of six attempts, then it gives up"
    fake.failures.clear()


def test_wait_ready_follows_the_generation_and_surfaces_failures(fake, client):
    manifest = _isvc("3")
    ref = ResourceRef.of(manifest)
    client.apply(manifest)
    clock = Clock(on_tick=lambda: fake.mark_ready(ISVCS, NS, "fraud-champion") if clock.ticks == 3 else None)
    client.wait_ready(ref, timeout_s=60, poll_s=1, sleep=clock.sleep, clock=clock)
    assert clock.ticks == 3

    client.apply(_isvc("4"))  # the old Ready condition belongs to generation 1
    assert readiness(ref.kind, fake.get(ISVCS, NS, "fraud-champion"))[0] == "pending"
    with pytest.raises(DeployError, match=r"did not become Ready within 5s \(last status: NotObserved"):
        client.wait_ready(ref, timeout_s=5, poll_s=1, **_idle())

    fake.mark_failed(ISVCS, NS, "fraud-champion", "ModelLoadFailed", "hash mismatch for model.pt2")
    with pytest.raises(DeployError, match="ModelLoadFailed: hash mismatch for model.pt2"):
        client.wait_ready(ref, timeout_s=60, poll_s=1, **_idle())

    fake.delete(ISVCS, NS, "fraud-champion")
    with pytest.raises(DeployError, match="disappeared while waiting"):
        client.wait_ready(ref, timeout_s=60, poll_s=1, **_idle())


def test_seldon_v1_state_failure_is_surfaced(fake, client):
    manifest = render_seldon_v1(_arms(), SETTINGS)[0]
    client.apply(manifest)
    fake.mark_failed("seldondeployments", NS, "fraud", "Failed", "Deployment fraud-challenger-0-server: ImagePullBackOff")
    with pytest.raises(DeployError, match="ImagePullBackOff"):
        client.wait_ready(ResourceRef.of(manifest), timeout_s=60, poll_s=1, **_idle())


def test_readiness_reads_each_controllers_status():
    from kfp_mlops.components._shared.k8s_adapter import KINDS

    model = KINDS[("mlops.seldon.io/v1alpha1", "Model")]
    loading = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [{"type": "ModelReady", "status": "False", "reason": "ModelProgressing"}]}}
    assert readiness(model, loading)[0] == "pending"
    failed = copy.deepcopy(loading)
    failed["status"]["conditions"][0].update(reason="ScheduleFailed", message="no server satisfies requirements [kfp-mlops]")
    assert readiness(model, failed) == ("failed", "ScheduleFailed", "no server satisfies requirements [kfp-mlops]")
    ready = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}}
    assert readiness(model, ready)[0] == "ready"
    stale = copy.deepcopy(ready)
    stale["status"]["observedGeneration"] = 1
    assert readiness(model, stale)[0] == "pending", "a Ready of an older generation does not count"
    sdep = KINDS[("machinelearning.seldon.io/v1", "SeldonDeployment")]
    assert readiness(sdep, {"status": {"state": "Creating", "description": "waiting"}}) == ("pending", "Creating", "waiting")
    assert readiness(KINDS[("rbac.authorization.k8s.io/v1", "Role")], {})[0] == "ready"


def _idle() -> dict:
    """Wait-loop arguments for a clock that only moves when the loop sleeps, with no controller."""
    clock = Clock()
    return {"sleep": clock.sleep, "clock": clock}


def _ready_all(fake: FakeKubeAPI, *, except_names: tuple[str, ...] = ()):
    def tick() -> None:
        for plural, namespace, name in list(fake.objects):
            if name not in except_names:
                fake.mark_ready(plural, namespace, name)

    return tick


def test_apply_all_creates_everything_and_waits_for_ready(fake, client):
    manifests = render_kserve(_arms(), SETTINGS)
    clock = Clock(on_tick=_ready_all(fake))
    outcome = client.apply_all_or_rollback(manifests, timeout_s=300, poll_s=2, sleep=clock.sleep, clock=clock)
    assert outcome.created == ["InferenceService ml/fraud-champion", "InferenceService ml/fraud-challenger", "InferenceGraph ml/fraud"] and outcome.updated == []
    assert {k[2] for k in fake.objects} == {"fraud-champion", "fraud-challenger", "fraud"}
    again = client.apply_all_or_rollback(manifests, timeout_s=300, poll_s=2, sleep=clock.sleep, clock=clock)
    assert again.created == [] and len(again.updated) == 3, "re-running the same deployment creates nothing twice"


def test_timeout_restores_previous_spec_and_deletes_new_objects(fake, client):
    clock = Clock(on_tick=_ready_all(fake))
    client.apply_all_or_rollback(render_kserve(_arms("3", None), SETTINGS), timeout_s=300, poll_s=2, sleep=clock.sleep, clock=clock)
    before = fake.get(ISVCS, NS, "fraud-champion")

    stuck = Clock(on_tick=_ready_all(fake, except_names=("fraud-challenger",)))
    with pytest.raises(DeployError) as caught:
        client.apply_all_or_rollback(render_kserve(_arms("5", "6"), SETTINGS), timeout_s=120, poll_s=5, sleep=stuck.sleep, clock=stuck)
    message = str(caught.value)
    assert "InferenceService ml/fraud-challenger did not become Ready within" in message and "rolled back 3 object(s)" in message
    assert "kubectl describe inferenceservices" in caught.value.fix
    after = fake.get(ISVCS, NS, "fraud-champion")
    assert after["spec"] == before["spec"] and after["metadata"]["labels"] == before["metadata"]["labels"], "the champion's previous spec is back"
    assert fake.get(ISVCS, NS, "fraud-challenger") is None and fake.get("inferencegraphs", NS, "fraud") is None, "objects that did not exist are deleted"


def test_a_failure_condition_rolls_back_with_its_message(fake, client):
    def tick() -> None:
        for plural, namespace, name in list(fake.objects):
            if name == "fraud-challenger":
                fake.mark_failed(plural, namespace, name, "ModelLoadFailed", "models:/fraud/4 not found")
            else:
                fake.mark_ready(plural, namespace, name)

    clock = Clock(on_tick=tick)
    with pytest.raises(DeployError, match="ModelLoadFailed: models:/fraud/4 not found"):
        client.apply_all_or_rollback(render_kserve(_arms(), SETTINGS), timeout_s=300, poll_s=2, sleep=clock.sleep, clock=clock)
    assert fake.objects == {}


def test_a_rejected_manifest_rolls_back_the_ones_applied_before(fake, client):
    manifests = render_kserve(_arms(), SETTINGS)
    manifests[1]["spec"]["predictor"]["containers"][0]["portz"] = []
    with pytest.raises(DeployError, match="HTTP 422") as caught:
        client.apply_all_or_rollback(manifests, timeout_s=300, poll_s=2, **_idle())
    assert "containers[0].portz" in str(caught.value) and "rolled back 1 object(s)" in str(caught.value)
    assert fake.objects == {}


def test_nothing_changes_when_reading_is_forbidden_or_an_object_is_foreign(fake, client):
    fake.fail_next("GET", 403)
    with pytest.raises(DeployError, match="HTTP 403"):
        client.apply_all_or_rollback(render_kserve(_arms(), SETTINGS), timeout_s=300, **_idle())
    foreign = _isvc()
    foreign["metadata"]["labels"] = {}
    fake.put(foreign, ISVCS)
    with pytest.raises(DeployError, match="not managed by kfp-mlops; nothing was changed"):
        client.apply_all_or_rollback(render_kserve(_arms(), SETTINGS), timeout_s=300, **_idle())
    assert not [r for r in fake.requests if r.method in ("PATCH", "DELETE", "POST")]
