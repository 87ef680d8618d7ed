"""Pod placement of the served arms (node selector, tolerations, image pull Secret, GPUs) and
arms that resolve to the same registered version (merge_same_version).

Placement is checked before the registry is read (a registry that fails any use proves it),
rendered into every arm's pod and validated against the real CRDs; cluster applies go through
the real ``kubernetes`` client to the fake API server, which validates every object too.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.k8s_adapter import api_client
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components.deploy.arms import DeployInputError, ResolvedArm, merge_same_version
from kfp_mlops.components.deploy.core import DeployRequest, deploy
from kfp_mlops.components.deploy.local_target import status_local, stop_local
from kfp_mlops.components.deploy.manifests import ManifestError, render_kserve, render_seldon_v1, render_seldon_v2
from kfp_mlops.components.deploy.placement import Placement, parse_placement
from kfp_mlops.components.deploy.report import summary_markdown
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import Registry
from kfp_mlops.components.train.core import TrainInputs, train_model
from tests.k8s_fake import FakeKubeAPI
from tests.unit.test_deploy import NS, Controller
from tests.unit.test_deploy_manifests import SETTINGS, _arms, _errors
from tests.unit.test_local_target import call
from tests.unit.test_model_safety import FAST
from tests.unit.test_train import KEYS, _splits

GPU_NODES = {"nvidia.com/gpu.product": "NVIDIA-L4", "pool": "gpu"}
GPU_TAINT = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute", "tolerationSeconds": 300}]
PLACED = {"node_selector": json.dumps(GPU_NODES), "tolerations": json.dumps(GPU_TAINT), "image_pull_secret": "regcred", "gpu_count": 1}
PLACED_SETTINGS = dataclasses.replace(SETTINGS, gpus=1, node_selector=GPU_NODES, tolerations=tuple(GPU_TAINT), image_pull_secret="regcred")
V2_PLACED = {"node_selector": {"node_selector": GPU_NODES}, "tolerations": {"tolerations": tuple(GPU_TAINT)}, "image_pull_secret": {"image_pull_secret": "regcred"}, "gpu_count": {"gpus": 1}}


class NoRegistry:
    """Any use fails the test: a bad request must be refused before an alias is resolved."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the registry was used ({name}) before the request was checked")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One version after a first training run: it is both @champion and @challenger."""
    tmp = tmp_path_factory.mktemp("placement")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=3_000)
    registry = Registry(uri)
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), FAST, model_dir=tmp / "model", tracking=TrackingSettings(uri, experiment="placement"))
    register_model(tmp / "model", result.contract, paths["test"], registry=registry, name="fraud", thresholds=None, promote=True, tags={})
    assert registry.alias("fraud", "champion").version == "1" == registry.alias("fraud", "challenger").version
    row = pq.read_table(paths["test"]).slice(0, 1).select(result.contract.feature_names).to_pylist()[0]
    return tmp, uri, registry, row


def _request(**changes) -> DeployRequest:
    base = {"model_name": "fraud", "arms": "champion=90,challenger=10", "target": "kserve", "mode": "dry-run", "tracking_uri": "http://mlflow.ml:5000",
            "namespace": NS, "image": "registry.example.com/kfp-mlops-serve:0.1.0", "poll_s": 0.02, "timeout_s": 5.0}  # fmt: skip
    return DeployRequest(**{**base, **changes})


def test_placement_parameters_are_parsed():
    placement = parse_placement(**PLACED)
    assert placement == Placement(GPU_NODES, tuple(GPU_TAINT), "regcred", 1)
    assert placement.fields_set() == ["node_selector", "tolerations", "image_pull_secret", "gpu_count"]
    assert parse_placement(node_selector="  ", tolerations="[]", image_pull_secret="", gpu_count=0).fields_set() == []
    # A key without operator is Kubernetes' default Equal; no key with Exists tolerates every taint.
    assert parse_placement(tolerations='[{"key": "dedicated", "value": "ml"}, {"operator": "Exists"}]').tolerations == ({"key": "dedicated", "value": "ml"}, {"operator": "Exists"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"node_selector": "pool=gpu"}, r"node_selector is not JSON"),
        ({"node_selector": '["pool", "gpu"]'}, r"node_selector is a JSON list, not an object"),
        ({"node_selector": '{"nvidia.com/gpu.count": 4}'}, r"node_selector label 'nvidia.com/gpu.count' has the value 4; label values are strings"),
        ({"node_selector": '{"Nvidia_Com/gpu": "x"}'}, r"node_selector: the prefix of label key 'Nvidia_Com/gpu' is not a DNS subdomain"),
        ({"node_selector": '{"-pool": "gpu"}'}, r"node_selector: label key '-pool' is not a Kubernetes label name"),
        ({"node_selector": json.dumps({"p" * 64: "gpu"})}, r"node_selector: label key 'p{64}' is not"),
        ({"node_selector": '{"nvidia.com/gpu.product": "NVIDIA L4"}'}, r"node_selector label 'nvidia.com/gpu.product': 'NVIDIA L4' is not a Kubernetes label value"),
        ({"tolerations": '{"key": "gpu", "operator": "Exists"}'}, r"tolerations is one JSON object, not a list"),
        ({"tolerations": "[{key: gpu}]"}, r"tolerations is not JSON"),
        ({"tolerations": '["gpu"]'}, r"tolerations\[0\] is 'gpu', not an object"),
        ({"tolerations": '[{"key": "gpu", "opertor": "Exists"}]'}, r"tolerations\[0\] has unknown field\(s\) opertor"),
        ({"tolerations": '[{"key": "gpu", "operator": "exists"}]'}, r"tolerations\[0\]\.operator is 'exists'"),
        ({"tolerations": '[{"key": "gpu", "operator": "Exists", "effect": "NoScheduled"}]'}, r"tolerations\[0\]\.effect is 'NoScheduled'"),
        ({"tolerations": '[{"operator": "Equal", "value": "x"}]'}, r"tolerations\[0\] has no key"),
        ({"tolerations": '[{"key": "gpu", "operator": "Exists", "value": "yes"}]'}, r"operator Exists and value 'yes'"),
        ({"tolerations": '[{"key": "gpu", "value": 1}]'}, r"tolerations\[0\]\.value is 1, not a string"),
        ({"tolerations": '[{"key": "a b", "operator": "Exists"}]'}, r"tolerations\[0\]\.key: label key 'a b'"),
        ({"tolerations": '[{"operator": "Exists"}, {"key": "gpu", "effect": "NoSchedule", "tolerationSeconds": 60}]'}, r"tolerations\[1\] sets tolerationSeconds with effect NoSchedule"),
        ({"tolerations": '[{"key": "gpu", "effect": "NoExecute", "tolerationSeconds": "60"}]'}, r"tolerations\[0\]\.tolerationSeconds is '60'"),
        ({"tolerations": '[{"key": "gpu", "effect": "NoExecute", "tolerationSeconds": -1}]'}, r"tolerationSeconds is -1"),
        ({"image_pull_secret": "Reg_Cred"}, r"image_pull_secret 'Reg_Cred' is not a Secret name"),
        ({"image_pull_secret": "r" * 254}, r"is not a Secret name"),
        ({"gpu_count": -1}, r"gpu_count is -1"),
        ({"gpu_count": True}, r"gpu_count is True"),
    ],
)
@pytest.mark.parametrize("target", ["kserve", "seldon", "local"])
def test_bad_placement_is_refused_before_any_alias_is_resolved(changes, message, target):
    with pytest.raises(DeployInputError, match=message) as caught:
        deploy(_request(target=target, mode="apply", **changes), registry=NoRegistry())
    assert caught.value.fix and caught.value.exit_code == 2


@pytest.mark.parametrize("field", ["node_selector", "tolerations", "image_pull_secret", "gpu_count"])
def test_seldon_v2_refuses_placement_and_names_the_server_resource(field):
    with pytest.raises(ManifestError, match=f"{field} cannot be set for target seldon-v2") as caught:
        deploy(_request(target="seldon-v2", **{field: PLACED[field]}), registry=NoRegistry())
    assert "kind Server" in caught.value.fix and "spec.podSpec.nodeSelector" in caught.value.fix and "nvidia.com/gpu" in caught.value.fix
    with pytest.raises(ManifestError, match="cannot be set for target seldon-v2"):
        render_seldon_v2(_arms(), dataclasses.replace(SETTINGS, **{"gpus": 0, **V2_PLACED[field]}))


def _pods(manifests: list[dict]) -> list[tuple[dict, dict]]:
    """(pod spec, server container) of every arm."""
    pods = [m["spec"]["predictor"] for m in manifests if m["kind"] == "InferenceService"]
    pods += [c["spec"] for m in manifests if m["kind"] == "SeldonDeployment" for p in m["spec"]["predictors"] for c in p["componentSpecs"]]
    return [(pod, pod["containers"][0]) for pod in pods]


@pytest.mark.parametrize(
    ("render", "pods"),
    [
        (lambda s: render_kserve(_arms((50, 30, 20), ("champion", "challenger", "third")), s), 3),
        (lambda s: render_kserve(_arms(), dataclasses.replace(s, deployment_mode="RawDeployment")), 2),
        (lambda s: render_kserve(_arms(), s, canary_percent=10), 1),
        (lambda s: render_seldon_v1(_arms((50, 30, 20), ("champion", "challenger", "third")), s), 3),
    ],
    ids=["kserve-graph", "kserve-raw", "kserve-canary", "seldon-v1"],
)
def test_placement_lands_in_every_arms_pod_and_is_valid_against_the_crds(render, pods):
    rendered = render(PLACED_SETTINGS)
    assert all(_errors(m) == [] for m in rendered), [_errors(m) for m in rendered]
    placed = _pods(rendered)
    assert len(placed) == pods
    for pod, container in placed:
        assert pod["nodeSelector"] == GPU_NODES and pod["tolerations"] == GPU_TAINT and pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    unplaced = _pods(render(dataclasses.replace(PLACED_SETTINGS, gpus=0, node_selector={}, tolerations=(), image_pull_secret="")))
    assert all(not {"nodeSelector", "tolerations", "imagePullSecrets"} & set(pod) and "nvidia.com/gpu" not in c["resources"]["limits"] for pod, c in unplaced)


def test_the_crd_check_catches_a_misspelt_toleration_field():
    """The CRD validation the placement tests rely on does look inside tolerations."""
    service = render_kserve(_arms((100,)), PLACED_SETTINGS)[0]
    service["spec"]["predictor"]["tolerations"][0]["tolerationSecond"] = 5
    assert any("tolerations[0].tolerationSecond" in e for e in _errors(service))


def test_serverless_mode_warns_which_knative_features_placement_needs():
    both = render_kserve(_arms(), PLACED_SETTINGS).warnings
    assert len(both) == 1 and "kubernetes.podspec-nodeselector: enabled" in both[0] and "kubernetes.podspec-tolerations: enabled" in both[0] and "RawDeployment" in both[0]
    only_tolerations = render_kserve(_arms(), dataclasses.replace(PLACED_SETTINGS, node_selector={}), canary_percent=10).warnings
    assert len(only_tolerations) == 1 and "kubernetes.podspec-tolerations" in only_tolerations[0] and "nodeselector" not in only_tolerations[0]
    assert render_kserve(_arms(), dataclasses.replace(PLACED_SETTINGS, deployment_mode="RawDeployment")).warnings == []
    assert render_kserve(_arms(), dataclasses.replace(PLACED_SETTINGS, node_selector={}, tolerations=())).warnings == [], "pull Secrets and GPUs need no feature flag"


def test_merge_same_version_keeps_the_first_name_and_adds_weights():
    def arm(name: str, version: str, weight: int) -> ResolvedArm:
        return ResolvedArm(name, name, version, weight, "fraud")

    merged, notes = merge_same_version([arm("champion", "3", 50), arm("challenger", "4", 20), arm("shadow", "3", 20), arm("v3", "3", 10)])
    assert [(a.name, a.version, a.weight) for a in merged] == [("champion", "3", 80), ("challenger", "4", 20)]
    assert len(notes) == 2 and "'champion' and 'shadow' both resolve to models:/fraud/3" in notes[0] and "at 80%" in notes[1]
    distinct = [arm("champion", "3", 90), arm("challenger", "4", 10)]
    assert merge_same_version(distinct) == (distinct, [])


def test_cluster_deploy_renders_placement_from_the_step_parameters(first_run):
    _, _, registry, _ = first_run
    for target in ("kserve", "seldon"):
        result = deploy(_request(target=target, arms="champion=100", **PLACED), registry=registry)
        assert all(_errors(m) == [] for m in result.manifests)
        ((pod, container),) = _pods(result.manifests)
        assert pod["nodeSelector"] == GPU_NODES and pod["tolerations"] == GPU_TAINT and pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 == container["resources"]["requests"]["nvidia.com/gpu"]
        assert bool(result.warnings) == (target == "kserve"), "Serverless KServe names the Knative feature flags"


def test_placement_is_applied_to_the_cluster(first_run):
    _, _, registry, _ = first_run
    controller = Controller()
    api = FakeKubeAPI(on_apply=controller)
    controller.api = api
    try:
        result = deploy(_request(mode="apply", arms="champion=100", deployment_mode="RawDeployment", **PLACED), registry=registry, kube_api_client=api_client(api.url))
        predictor = api.get("inferenceservices", NS, "fraud-champion")["spec"]["predictor"]
    finally:
        api.close()
    assert result.applied and result.warnings == []
    assert predictor["nodeSelector"] == GPU_NODES and predictor["tolerations"] == GPU_TAINT and predictor["imagePullSecrets"] == [{"name": "regcred"}]


def test_local_target_ignores_placement_with_one_log_line(first_run, tmp_path, caplog):
    _, uri, registry, _ = first_run
    with caplog.at_level(logging.INFO, logger="kfp_mlops.components.deploy.core"):
        result = deploy(_request(target="local", tracking_uri=uri, state_dir=str(tmp_path), **PLACED), registry=registry)
    lines = [r.getMessage() for r in caplog.records if "nothing to place" in r.getMessage()]
    assert lines == ["target local runs the arms as processes on this machine: node_selector, tolerations, image_pull_secret, gpu_count ignored (nothing to place)"]
    assert "regcred" not in repr(result.manifests) and "NVIDIA-L4" not in repr(result.manifests)


def test_without_merge_same_version_both_arms_serve_the_one_version(first_run):
    _, _, registry, _ = first_run
    result = deploy(_request(), registry=registry)
    assert [(a.name, a.version, a.weight) for a in result.arms] == [("champion", "1", 90), ("challenger", "1", 10)] and result.notes == []
    assert [m["kind"] for m in result.manifests] == ["InferenceService", "InferenceService", "InferenceGraph"]


def test_kserve_serves_a_version_named_by_both_aliases_once(first_run, caplog):
    _, _, registry, _ = first_run
    with caplog.at_level(logging.INFO, logger="kfp_mlops.components.deploy.core"):
        request = _request(merge_same_version=True)
        result = deploy(request, registry=registry)
    assert [(a.name, a.version, a.weight) for a in result.arms] == [("champion", "1", 100)]
    (service,) = result.manifests
    assert service["kind"] == "InferenceService" and service["metadata"]["name"] == "fraud-champion" and _errors(service) == []
    assert "models:/fraud/1" in service["spec"]["predictor"]["containers"][0]["args"]
    assert any("'champion' and 'challenger' both resolve to models:/fraud/1" in r.getMessage() for r in caplog.records)
    assert "- note: arms 'champion' and 'challenger' both resolve" in summary_markdown(result, request)
    # The canary had nothing to roll out against: one plain InferenceService, the same object.
    canary = deploy(_request(merge_same_version=True, canary_percent=10), registry=registry)
    assert [m["metadata"]["name"] for m in canary.manifests] == ["fraud-champion"] and "canaryTrafficPercent" not in canary.manifests[0]["spec"]["predictor"]
    assert any("canary_percent=10 dropped" in n for n in canary.notes)


def test_kserve_apply_of_a_merged_deployment_creates_no_graph(first_run):
    _, _, registry, _ = first_run
    controller = Controller()
    api = FakeKubeAPI(on_apply=controller)
    controller.api = api
    try:
        result = deploy(_request(mode="apply", merge_same_version=True), registry=registry, kube_api_client=api_client(api.url))
        assert result.applied and api.get("inferenceservices", NS, "fraud-champion") is not None
        assert api.get("inferenceservices", NS, "fraud-challenger") is None and api.get("inferencegraphs", NS, "fraud") is None
    finally:
        api.close()


def test_local_serves_a_version_named_by_both_aliases_once(first_run, tmp_path):
    _, uri, registry, row = first_run
    plan = deploy(_request(target="local", tracking_uri=uri, state_dir=str(tmp_path), merge_same_version=True), registry=registry).manifests[0]
    assert [(a["arm"], a["weight"]) for a in plan["arms"]] == [("champion", 100)] and "models:/fraud/1" in plan["arms"][0]["command"]
    result = deploy(_request(target="local", mode="apply", tracking_uri=uri, state_dir=str(tmp_path), merge_same_version=True, timeout_s=120.0), registry=registry)
    try:
        running = status_local(tmp_path)
        assert {name: arm.weight for name, arm in running.arms.items()} == {"champion": 100}
        body = json.dumps({"instances": [row]}, default=str).encode()
        answered = set()
        for i in range(10):
            status, headers, answer = call(result.endpoint + "/v1/models/fraud:predict", method="POST", body=body, headers={"Content-Type": "application/json", "X-Kfp-Mlops-Key": f"user-{i}"})
            assert status == 200 and "predictions" in answer, answer
            answered.add(headers["X-Kfp-Mlops-Arm"])
        assert answered == {"champion"}
    finally:
        stop_local(tmp_path)
