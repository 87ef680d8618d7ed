"""Deploy manifests against the real CRDs (types, required, enums, no undeclared field), their input
checks, and the RBAC Role against the requests the adapter really makes."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from kfp_mlops.components._shared.errors import DeployError
from kfp_mlops.components._shared.k8s_adapter import KubeClient, api_client
from kfp_mlops.components.deploy.manifests import (
    Arm,
    ManifestError,
    ServeSettings,
    render_kserve,
    render_seldon_v1,
    render_seldon_v2,
)
from kfp_mlops.components.deploy.rbac import render_rbac
from tests.k8s_fake import FakeKubeAPI, crd_schema, validate_manifest
from tests.unit.test_k8s_adapter import Clock

SCHEMAS = {
    "InferenceService": ("kserve.serving.kserve.io_inferenceservices.yaml", "v1beta1"),
    "InferenceGraph": ("kserve.serving.kserve.io_inferencegraphs.yaml", "v1alpha1"),
    "SeldonDeployment": ("seldon-v1.machinelearning.seldon.io_seldondeployments.yaml", "v1"),
    "Model": ("seldon-v2.mlops.seldon.io_models.yaml", "v1alpha1"),
    "Experiment": ("seldon-v2.mlops.seldon.io_experiments.yaml", "v1alpha1"),
}
SETTINGS = ServeSettings(
    deployment="fraud",
    namespace="ml",
    image="ghcr.io/kfp-mlops/kfp-mlops-serve:0.1.0",
    tracking_uri="https://mlflow.example.com",
    mlflow_secret="mlflow-credentials",
    log_sink="s3://logs/fraud",
    feature_repo="/feature_repo",
    gpus=1,
    service_account="fraud-serving",
)
V2_SETTINGS = dataclasses.replace(SETTINGS, gpus=0)  # a Seldon v2 Model has no pod: GPUs are set on the user's MLServer Server


def _arms(weights=(90, 10), names=("champion", "challenger")) -> list[Arm]:
    return [Arm(name, f"models:/fraud/{3 + i}", "fraud", str(3 + i), w, storage_uri=f"s3://mlflow/1/models/m-{i}/artifacts") for i, (name, w) in enumerate(zip(names, weights))]


RENDERERS = {
    "kserve": lambda arms, s: render_kserve(arms, s),
    "kserve-raw": lambda arms, s: render_kserve(arms, dataclasses.replace(s, deployment_mode="RawDeployment")),
    "kserve-canary": lambda arms, s: render_kserve(arms, s, canary_percent=arms[1].weight if len(arms) > 1 else None),
    "seldon-v1": render_seldon_v1,
    "seldon-v2": lambda arms, s: render_seldon_v2(arms, dataclasses.replace(s, gpus=0)),
}


def _errors(manifest: dict) -> list[str]:
    return validate_manifest(manifest, crd_schema(*SCHEMAS[manifest["kind"]]))


@pytest.mark.parametrize(
    ("target", "weights"),
    [(t, w) for t in sorted(RENDERERS) for w in [(100,), (90, 10), (50, 30, 20)] if t != "kserve-canary" or len(w) == 2],  # a canary has two arms
)
def test_every_rendering_is_valid_against_the_real_crds(target, weights):
    rendered = RENDERERS[target](_arms(weights, ("champion", "challenger", "third")[: len(weights)]), SETTINGS)
    assert rendered and rendered.warnings == []
    for manifest in rendered:
        assert _errors(manifest) == [], manifest["kind"]
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "kfp-mlops" and labels["app.kubernetes.io/part-of"] == "fraud"


def test_kserve_services_run_our_server_behind_a_splitter():
    services, graph = render_kserve(_arms((75, 25)), SETTINGS)[:2], render_kserve(_arms((75, 25)), SETTINGS)[2]
    assert [s["metadata"]["name"] for s in services] == ["fraud-champion", "fraud-challenger"]
    container = services[1]["spec"]["predictor"]["containers"][0]
    assert container["command"] == ["python", "-m", "kfp_mlops.components.serve"]
    assert container["args"] == [
        "--model-uri",
        "models:/fraud/4",
        "--model_name",
        "fraud",
        "--host",
        "0.0.0.0",
        "--http-port",
        "8080",
        "--arm",
        "challenger",
        "--log-sink",
        "s3://logs/fraud",
        "--feature-repo",
        "/feature_repo",
        "--max-payload-bytes",
        "1048576",
    ]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready" and container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": 1} == container["resources"]["requests"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.example.com" and env["PROTOCOL"]["value"] == "v2"
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"name": "MLFLOW_TRACKING_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "mlflow-credentials", "key": "MLFLOW_TRACKING_PASSWORD", "optional": True}}}
    assert all("value" not in e for name, e in env.items() if name not in ("MLFLOW_TRACKING_URI", "PROTOCOL")), "credentials only from the Secret"
    assert services[1]["metadata"]["labels"]["kfp-mlops/arm"] == "challenger" and services[1]["metadata"]["labels"]["kfp-mlops/model-version"] == "4"
    assert services[0]["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Serverless"}
    root = graph["spec"]["nodes"]["root"]
    assert root["routerType"] == "Splitter" and root["steps"] == [
        {"name": "champion", "serviceName": "fraud-champion", "weight": 75},
        {"name": "challenger", "serviceName": "fraud-challenger", "weight": 25},
    ]


def test_kserve_canary_and_its_raw_mode_warning():
    (service,) = rendered = render_kserve(_arms((80, 20)), SETTINGS, canary_percent=20)
    assert rendered.warnings == []
    assert service["metadata"]["name"] == "fraud-champion", "the champion's service rolls out the challenger"
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 20 and "models:/fraud/4" in service["spec"]["predictor"]["containers"][0]["args"]
    raw = render_kserve(_arms((80, 20)), dataclasses.replace(SETTINGS, deployment_mode="RawDeployment"), canary_percent=20)
    assert len(raw) == 1 and len(raw.warnings) == 1 and "RawDeployment" in raw.warnings[0] and "InferenceGraph" in raw.warnings[0]
    with pytest.raises(ManifestError, match="disagrees with the challenger's weight 20"):
        render_kserve(_arms((80, 20)), SETTINGS, canary_percent=30)
    with pytest.raises(ManifestError, match="exactly two arms"):
        render_kserve(_arms((50, 30, 20), ("champion", "challenger", "third")), SETTINGS, canary_percent=30)


def test_seldon_renderings():
    (deployment,) = render_seldon_v1(_arms((60, 40)), SETTINGS)
    assert deployment["spec"]["protocol"] == "v2"
    predictors = deployment["spec"]["predictors"]
    assert [(p["name"], p["traffic"]) for p in predictors] == [("champion", 60), ("challenger", 40)]
    node, pod = predictors[0]["graph"], predictors[0]["componentSpecs"][0]["spec"]
    assert "implementation" not in node and node["name"] == pod["containers"][0]["name"] and pod["serviceAccountName"] == "fraud-serving"
    *models, experiment = render_seldon_v2(_arms((60, 40)), V2_SETTINGS)
    assert [m["spec"]["requirements"] for m in models] == [["kfp-mlops"], ["kfp-mlops"]] and models[1]["spec"]["storageUri"].endswith("m-1/artifacts")
    assert experiment["spec"]["default"] == "fraud-champion"
    assert experiment["spec"]["candidates"] == [{"name": "fraud-champion", "weight": 60}, {"name": "fraud-challenger", "weight": 40}]
    with pytest.raises(ManifestError, match="no storage_uri"):
        render_seldon_v2([dataclasses.replace(a, storage_uri="") for a in _arms()], V2_SETTINGS)
    with pytest.raises(ManifestError, match="runtime"):
        render_seldon_v2(_arms(), V2_SETTINGS, runtime_requirements=())


@pytest.mark.parametrize(
    ("kind", "mistake", "field"),
    [
        ("InferenceService", lambda m: m["spec"]["predictor"]["containers"][0]["readinessProbe"].update(httpGett={}), "readinessProbe.httpGett"),
        ("InferenceService", lambda m: m["spec"]["predictor"].update(minReplicas="1"), "minReplicas"),
        ("InferenceGraph", lambda m: m["spec"]["nodes"]["root"].update(routerType="Random"), "routerType"),
        ("InferenceGraph", lambda m: m["spec"]["nodes"]["root"]["steps"][0].update(weigth=5), "steps[0].weigth"),
        ("SeldonDeployment", lambda m: m["spec"]["predictors"][0].update(traffik=5), "predictors[0].traffik"),
        ("Model", lambda m: m["spec"].pop("storageUri"), "storageUri"),
        ("Experiment", lambda m: m["spec"]["candidates"][0].update(modelName="x"), "candidates[0].modelName"),
    ],
)
def test_the_validator_catches_a_field_added_by_mistake(kind, mistake, field):
    everything = [*render_kserve(_arms(), SETTINGS), *render_seldon_v1(_arms(), SETTINGS), *render_seldon_v2(_arms(), V2_SETTINGS)]
    manifest = copy.deepcopy(next(m for m in everything if m["kind"] == kind))
    mistake(manifest)
    assert any(field in e for e in _errors(manifest)), _errors(manifest)


@pytest.mark.parametrize(
    ("arms", "settings", "message"),
    [
        ([], SETTINGS, "no arms"),
        (_arms((90, 20)), SETTINGS, "sum to 110, not 100"),
        (_arms((110, -10)), SETTINGS, "weight 110"),
        (_arms((50, 50), ("champion", "champion")), SETTINGS, "duplicate arm names: champion"),
        ([dataclasses.replace(_arms((100,))[0], weight=True)], SETTINGS, "weight True"),
        ([dataclasses.replace(_arms((100,))[0], model_uri="models:/fraud@champion")], SETTINGS, "not a pinned version"),
        ([dataclasses.replace(_arms((100,))[0], version="9")], SETTINGS, "does not name version '9'"),
        (_arms((50, 50), ("champion", "Challenger")), SETTINGS, "not a DNS label"),
        (_arms((100,)), dataclasses.replace(SETTINGS, deployment="Fraud_Model"), "not a DNS-1035 label"),
        (_arms((100,)), dataclasses.replace(SETTINGS, deployment_mode="ModelMesh"), "deployment mode"),
        (_arms((100,)), dataclasses.replace(SETTINGS, tracking_uri="https://bob:secret@mlflow.example.com"), "carries credentials"),
    ],
)
def test_every_renderer_refuses_bad_inputs(arms, settings, message):
    for render in (render_kserve, render_seldon_v1, render_seldon_v2):
        with pytest.raises(ManifestError, match=message):
            render(arms, settings)


def test_names_are_length_checked_against_the_limit_that_applies():
    long = dataclasses.replace(SETTINGS, deployment="d" * 40, namespace="team-fraud-detection")
    with pytest.raises(ManifestError, match=r"at most 32 fit \(Knative's host label") as caught:
        render_kserve(_arms(), long)
    assert "'" + "d" * 40 + "-champion' has 49 characters" in str(caught.value) and "shorten" in caught.value.fix
    assert render_kserve(_arms((100,)), dataclasses.replace(long, deployment_mode="RawDeployment"))[0]["metadata"]["name"] == "d" * 40 + "-champion"
    with pytest.raises(ManifestError, match="at most 54 fit"):
        render_seldon_v1(_arms(), dataclasses.replace(SETTINGS, deployment="d" * 45))


def test_rbac_grants_exactly_what_apply_wait_and_rollback_use():
    """Deploy every target against the fake twice (once rolled back, once to Ready): the verbs seen are the Role's."""
    fake = FakeKubeAPI()
    try:
        client = KubeClient(api_client(fake.url), sleep=lambda _: None)
        for rendered in (render_kserve(_arms(), SETTINGS), render_seldon_v1(_arms(), SETTINGS), render_seldon_v2(_arms(), V2_SETTINGS)):
            never = Clock()
            with pytest.raises(DeployError, match="did not become Ready"):
                client.apply_all_or_rollback(rendered, timeout_s=30, poll_s=5, sleep=never.sleep, clock=never)
            ready = Clock(on_tick=lambda: [fake.mark_ready(*key) for key in list(fake.objects)])
            client.apply_all_or_rollback(rendered, timeout_s=30, poll_s=5, sleep=ready.sleep, clock=ready)
        seen = fake.verbs_used()
    finally:
        fake.close()
    service_account, role, binding = render_rbac("ml", "pipeline-runner")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert seen == granted
    assert binding["roleRef"]["name"] == role["metadata"]["name"] and binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "ml"}]
    assert service_account["metadata"]["name"] == "pipeline-runner"
    only_kserve = render_rbac("ml", "pipeline-runner", targets=("kserve",), create_service_account=False)
    assert [m["kind"] for m in only_kserve] == ["Role", "RoleBinding"] and only_kserve[0]["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferencegraphs", "inferenceservices"], "verbs": ["create", "delete", "get", "patch"]}
    ]
    with pytest.raises(ManifestError, match="unknown deploy target"):
        render_rbac("ml", "pipeline-runner", targets=("kserve", "sagemaker"))


def test_rbac_manifests_apply_through_the_adapter():
    fake = FakeKubeAPI()
    try:
        client = KubeClient(api_client(fake.url), sleep=lambda _: None)
        outcome = client.apply_all_or_rollback(render_rbac("ml", "pipeline-runner"), timeout_s=5, sleep=Clock().sleep, clock=Clock())
    finally:
        fake.close()
    assert outcome.created == ["ServiceAccount ml/pipeline-runner", "Role ml/kfp-mlops-deploy", "RoleBinding ml/kfp-mlops-deploy-pipeline-runner"]
    assert {r.group for r in fake.requests} == {"", "rbac.authorization.k8s.io"}


def test_model_name_flag_in_both_spellings_parses_to_one_option():
    # KServe reads the name an InferenceGraph calls from "--model_name" only; people type --model-name.
    from kfp_mlops.components.serve.__main__ import parser

    dashed = parser().parse_args(["--model-uri", "models:/fraud/4", "--model-name", "fraud"])
    underscored = parser().parse_args(["--model-uri", "models:/fraud/4", "--model_name", "fraud"])
    assert dashed.model_name == underscored.model_name == "fraud" and vars(dashed) == vars(underscored)
    assert parser().parse_args(["--model-uri", "models:/fraud/4"]).model_name == ""
    container = render_kserve(_arms(), SETTINGS)[0]["spec"]["predictor"]["containers"][0]
    assert any(arg.startswith("--model_name") for arg in container["args"]), "KServe matches the arg by this prefix"
    assert parser().parse_args(container["args"]).model_name == "fraud", "the server takes every arg the manifest gives it"
