"""The deploy core on real registered models: aliases pinned, models loaded before anything changes, apply/wait/rollback.

Cluster targets go through the real ``kubernetes`` client to the fake API server, which
validates every object against the real CRDs; the test plays the controller.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kfp_mlops.components._shared.errors import DataError, DeployError
from kfp_mlops.components._shared.k8s_adapter import api_client
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components._shared.model_artifact import MODEL_FILE
from kfp_mlops.components.deploy.arms import DeployInputError
from kfp_mlops.components.deploy.core import DeployRequest, deploy
from kfp_mlops.components.deploy.local_target import status_local, stop_local
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import Registry
from kfp_mlops.components.train.core import TrainInputs, train_model
from tests.k8s_fake import SCHEMAS, FakeKubeAPI, crd_schema, validate_manifest
from tests.unit.test_model_safety import FAST
from tests.unit.test_train import KEYS, _splits

NS = "ml"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """Version 1 is the champion, version 2 the challenger (registered without promotion)."""
    tmp = tmp_path_factory.mktemp("deploy")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=3_000)
    registry = Registry(uri)
    for i, promote in ((1, True), (2, False)):
        result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), FAST, model_dir=tmp / f"model{i}", tracking=TrackingSettings(uri, experiment="deploy"))
        register_model(tmp / f"model{i}", result.contract, paths["test"], registry=registry, name="fraud", thresholds=None, promote=promote, tags={})
    assert registry.alias("fraud", "champion").version == "1" and registry.alias("fraud", "challenger").version == "2"
    return tmp, uri, registry


def _request(**changes) -> DeployRequest:
    """A KServe deployment as the cluster's deploy step would send it (the server pods reach MLflow by its service name)."""
    base = {
        "model_name": "fraud",
        "arms": "champion=90,challenger=10",
        "target": "kserve",
        "tracking_uri": "http://mlflow.ml:5000",
        "namespace": NS,
        "image": "registry.example.com/kfp-mlops-serve:0.1.0",
        "poll_s": 0.02,
        "timeout_s": 5.0,
    }
    return DeployRequest(**{**base, **changes})


def _schema_errors(manifest: dict) -> list[str]:
    group, _, version = manifest["apiVersion"].rpartition("/")
    plural = {"InferenceService": "inferenceservices", "InferenceGraph": "inferencegraphs", "SeldonDeployment": "seldondeployments", "Model": "models", "Experiment": "experiments"}[manifest["kind"]]
    return validate_manifest(manifest, crd_schema(*SCHEMAS[(group, version, plural)]))


@pytest.mark.parametrize("target", ["kserve", "seldon", "seldon-v2"])
def test_dry_run_pins_aliases_and_renders_valid_manifests(registered, target):
    _, _, registry = registered
    result = deploy(_request(target=target, mode="dry-run"), registry=registry)
    assert not result.applied and [(a.name, a.version, a.weight) for a in result.arms] == [("champion", "1", 90), ("challenger", "2", 10)]
    assert all(not _schema_errors(m) for m in result.manifests), [_schema_errors(m) for m in result.manifests]
    text = repr(result.manifests)
    assert "models:/fraud/1" in text or target == "seldon-v2" and "fraud-champion" in text
    assert "@champion" not in text, "deployments pin versions, never aliases"
    if target == "seldon-v2":
        assert any("s3:// or gs://" in w for w in result.warnings), "a local artifact store is not readable by Seldon"


class Controller:
    """Marks applied objects Ready, except those named in ``never``; gives the graph a URL."""

    def __init__(self, never: set[str] = frozenset()) -> None:
        self.never = never
        self.api: FakeKubeAPI | None = None

    def __call__(self, obj: dict, created: bool) -> None:
        name, plural = obj["metadata"]["name"], obj["kind"].lower() + "s"
        if name in self.never:
            return
        self.api.mark_ready(plural, NS, name)
        if obj["kind"] == "InferenceGraph":
            self.api.set_status(plural, NS, name, url=f"http://{name}.{NS}.example.com")


@pytest.fixture
def cluster():
    controller = Controller()
    api = FakeKubeAPI(on_apply=controller)
    controller.api = api
    yield api, controller
    api.close()


def test_apply_waits_for_every_arm_and_returns_the_graph_url(registered, cluster):
    _, _, registry = registered
    api, _ = cluster
    result = deploy(_request(), registry=registry, kube_api_client=api_client(api.url))
    assert result.applied and result.endpoint == f"http://fraud.{NS}.example.com"
    graph = api.get("inferencegraphs", NS, "fraud")
    steps = graph["spec"]["nodes"]["root"]["steps"]
    assert [(s["serviceName"], s["weight"]) for s in steps] == [("fraud-champion", 90), ("fraud-challenger", 10)]
    assert api.get("inferenceservices", NS, "fraud-challenger")["metadata"]["labels"]["kfp-mlops/model-version"] == "2"


def test_an_arm_that_never_becomes_ready_restores_the_previous_deployment(registered, cluster):
    _, _, registry = registered
    api, controller = cluster
    deploy(_request(arms="champion=100"), registry=registry, kube_api_client=api_client(api.url))
    before = api.get("inferenceservices", NS, "fraud-champion")["spec"]
    controller.never = {"fraud-challenger"}
    with pytest.raises(DeployError, match="fraud-challenger") as caught:
        deploy(_request(), registry=registry, kube_api_client=api_client(api.url))
    assert "What to do:" in str(caught.value)
    assert api.get("inferenceservices", NS, "fraud-challenger") is None, "the arm that did not exist before is removed"
    assert api.get("inferencegraphs", NS, "fraud") is None, "no traffic was shifted"
    assert api.get("inferenceservices", NS, "fraud-champion")["spec"] == before


def test_a_model_that_fails_to_load_changes_nothing(registered, tmp_path):
    tmp, uri, registry = registered
    stored = Path(registry.client.get_model_version_download_uri("fraud", "2").removeprefix("file://"))
    model_file = next(stored.rglob(MODEL_FILE))
    original = model_file.read_bytes()
    api = FakeKubeAPI()
    try:
        model_file.write_bytes(original + b"\0")
        with pytest.raises(DataError, match="hash|differ|sha256"):
            deploy(_request(), registry=registry, kube_api_client=api_client(api.url))
        assert not api.requests, "nothing was sent to the cluster"
    finally:
        model_file.write_bytes(original)
        api.close()


def test_a_local_arm_whose_model_fails_to_load_keeps_the_previous_deployment(registered, tmp_path):
    """Locally the check runs while the new server processes start: they are stopped again, nothing else changes."""
    import psutil

    tmp, uri, registry = registered
    state_dir = tmp_path / "local"
    local = {"model_name": "fraud", "tracking_uri": uri, "state_dir": str(state_dir), "timeout_s": 120.0}
    serving = deploy(DeployRequest(arms="champion=100", **local), registry=registry)
    stored = Path(registry.client.get_model_version_download_uri("fraud", "2").removeprefix("file://"))
    model_file = next(stored.rglob(MODEL_FILE))
    original = model_file.read_bytes()
    try:
        before = status_local(state_dir)
        model_file.write_bytes(original + b"\0")
        with pytest.raises(DataError, match="hash|differ|sha256"):
            deploy(DeployRequest(arms="champion=50,challenger=50", **local), registry=registry)
        after = status_local(state_dir)
        assert after is not None and after.healthy and after.url == serving.endpoint
        assert {n: (a.pid, a.weight) for n, a in after.arms.items()} == {n: (a.pid, a.weight) for n, a in before.arms.items()} == {"champion": (before.arms["champion"].pid, 100)}
        servers = [p for p in psutil.process_iter(["cmdline"]) if "kfp_mlops.components.serve" in (p.info["cmdline"] or []) and str(state_dir) in " ".join(p.info["cmdline"])]
        assert [p.pid for p in servers] == [before.arms["champion"].pid], "the challenger's server was stopped again"
    finally:
        model_file.write_bytes(original)
        stop_local(state_dir)


def test_missing_aliases_and_versions_are_named(registered):
    _, _, registry = registered
    with pytest.raises(DeployInputError, match="models:/fraud@canary does not exist"):
        deploy(_request(arms="champion=50,canary=50", mode="dry-run"), registry=registry)
    with pytest.raises(DeployInputError, match="models:/fraud/9 does not exist"):
        deploy(_request(arms="1=50,9=50", mode="dry-run"), registry=registry)
    with pytest.raises(DeployInputError, match="models:/nobody@champion does not exist"):
        deploy(_request(model_name="nobody", arms="champion=100", mode="dry-run"), registry=registry)


def test_concurrent_dry_runs_do_not_interfere(registered):
    """The preflight loads into private scratch folders: two deploys at once both succeed."""
    _, _, registry = registered
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deploy(_request(mode="dry-run"), registry=registry)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
