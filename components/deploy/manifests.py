"""Serving manifests for an A/B deployment: the typed inputs, their checks, and our model-server container.

The renderers per target live beside this module (kserve_manifests.py, seldon_manifests.py) and are
re-exported here, so callers import everything from ``kfp_mlops.components.deploy.manifests``.
Every renderer returns a ``Rendered``: the list of manifests in apply order, plus ``warnings``
the deploy step prints (e.g. a canary that RawDeployment mode will ignore).

``arms[0]`` is the champion: the rest of the traffic in a KServe canary, Seldon v2's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components._shared.k8s_adapter import MANAGED_BY, OURS
from kfp_mlops.components.deploy.placement import Placement, check_node_selector, check_secret_name, check_tolerations
from kfp_mlops.components.serve.feedback import FEEDBACK_TOKEN_ENV

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PINNED_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")
SERVER_MODULE = "kfp_mlops.components.serve"
GPU_RESOURCE = "nvidia.com/gpu"
DEPLOYMENT_MODES = ("Serverless", "RawDeployment")
# Keys the model server may need from the Secret: MLflow credentials, and object-store keys for the
# artifact store behind it. Optional, so a Secret holding only some of them works.
# From the deployment's Secret when present there (each key optional); the feedback token restricts who reports outcomes.
SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", FEEDBACK_TOKEN_ENV)
ARM_LABEL = "kfp-mlops/arm"
VERSION_LABEL = "kfp-mlops/model-version"
PART_OF = "app.kubernetes.io/part-of"


class ManifestError(KfpMlopsError):
    """The deployment cannot be described as asked (names, weights, model references)."""


@dataclass(frozen=True)
class Arm:
    """One model version that receives a share of the traffic.

    Attributes:
        name: Arm name ("champion", "challenger", ...): a DNS-1123 label, part of object names.
        model_uri: A pinned registry reference, ``models:/NAME/VERSION`` (never an alias: a
            deployment must not change when an alias moves).
        model_name: Name the server publishes the model under (URL path ``/v2/models/<name>``).
        version: The registry version, also in the ``kfp-mlops/model-version`` label.
        weight: Percent of the traffic, 0..100; the arms' weights sum to 100.
        storage_uri: Where the version's files are (Seldon v2 only: its Model loads from storage).
    """

    name: str
    model_uri: str
    model_name: str
    version: str
    weight: int
    storage_uri: str = ""


@dataclass(frozen=True)
class ServeSettings:
    """Where and how the arms are served.

    Attributes:
        deployment: Deployment name (DNS-1035 label); objects are ``<deployment>-<arm>``.
        namespace: Namespace of every object.
        image: The kfp-mlops serving image (holds ``python -m kfp_mlops.components.serve``).
        tracking_uri: MLflow tracking server the server resolves ``models:/`` from (no credentials in it).
        mlflow_secret: Secret whose keys (SECRET_KEYS, each optional) become the server's env.
        log_sink: Prediction-log sink (folder, s3:// or gs:// prefix); "" = off.
        feature_repo: Feast repository path inside the pod for entity-key lookup; "" = off.
        cpu: CPU request and limit per server pod.
        memory: Memory request and limit per server pod.
        gpus: GPUs per pod (resource nvidia.com/gpu).
        node_selector: Node label -> value every server pod's node must carry.
        tolerations: Kubernetes tolerations of every server pod.
        image_pull_secret: Secret for pulling ``image`` from a private registry ("" = none).
        service_account: Service account of the server pods ("" = the namespace default).
        deployment_mode: KServe "Serverless" (Knative) or "RawDeployment".
        max_payload_bytes: Largest request body the server accepts.
        port: HTTP port the server listens on.
    """

    deployment: str
    namespace: str
    image: str
    tracking_uri: str = ""
    mlflow_secret: str = ""
    log_sink: str = ""
    feature_repo: str = ""
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    image_pull_secret: str = ""
    service_account: str = ""
    deployment_mode: str = "Serverless"
    max_payload_bytes: int = 1048576
    port: int = 8080


class Rendered(list):  # list[dict[str, Any]]
    """Manifests in apply order, plus warnings for the user (the deploy step prints them)."""

    def __init__(self, manifests: Iterable[dict[str, Any]] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(manifests)
        self.warnings: list[str] = list(warnings)


def check(arms: list[Arm] | tuple[Arm, ...], settings: ServeSettings) -> None:
    """Refuse what no target can deploy; each renderer adds its own name-length limits."""
    if not arms:
        raise ManifestError("no arms to deploy", fix="pass at least one Arm (the champion)")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ManifestError(f"duplicate arm names: {', '.join(duplicates)}", fix="give every arm its own name")
    for arm in arms:
        if not isinstance(arm.weight, int) or isinstance(arm.weight, bool) or not 0 <= arm.weight <= 100:
            raise ManifestError(f"arm {arm.name!r} has weight {arm.weight!r}", fix="use whole percents from 0 to 100")
        if not DNS_1035.match(arm.name):
            raise ManifestError(f"arm name {arm.name!r} is not a DNS label", fix="use lowercase letters, digits and '-', starting with a letter")
        match = PINNED_MODEL_URI.match(arm.model_uri)
        if match is None:
            raise ManifestError(f"arm {arm.name!r}: model URI {arm.model_uri!r} is not a pinned version", fix="use models:/NAME/VERSION (resolve an alias to its version before deploying)")
        if match["version"] != arm.version:
            raise ManifestError(f"arm {arm.name!r}: model URI {arm.model_uri!r} does not name version {arm.version!r}", fix="pass the same version in model_uri and version")
        label_value(arm.version, VERSION_LABEL)
    total = sum(a.weight for a in arms)
    if total != 100:
        raise ManifestError(f"arm weights sum to {total}, not 100 ({', '.join(f'{a.name}={a.weight}' for a in arms)})", fix="give weights that sum to 100")
    if not DNS_1035.match(settings.deployment) or len(settings.deployment) > 63:
        raise ManifestError(f"deployment name {settings.deployment!r} is not a DNS-1035 label", fix="use at most 63 lowercase letters, digits and '-', starting with a letter")
    if settings.deployment_mode not in DEPLOYMENT_MODES:
        raise ManifestError(f"deployment mode {settings.deployment_mode!r} is unknown", fix=f"use one of {', '.join(DEPLOYMENT_MODES)}")
    if "@" in settings.tracking_uri.split("//", 1)[-1].split("/", 1)[0]:
        raise ManifestError("the tracking URI carries credentials, which would be written into the manifest", fix="put them in a Secret and pass its name as mlflow_secret")
    if settings.gpus < 0 or settings.max_payload_bytes <= 0 or not 0 < settings.port < 65536:
        raise ManifestError(f"gpus {settings.gpus}, max_payload_bytes {settings.max_payload_bytes}, port {settings.port}: out of range", fix="use gpus >= 0, a positive payload limit and a TCP port")
    # The same checks as the deploy step's parameters, for callers that build settings themselves.
    check_node_selector(settings.node_selector)
    check_tolerations(list(settings.tolerations))
    check_secret_name(settings.image_pull_secret, "image_pull_secret")


def placement_set(settings: ServeSettings) -> list[str]:
    """Which pod-placement settings are given (a target without a pod spec must refuse them)."""
    return Placement(settings.node_selector, settings.tolerations, settings.image_pull_secret, settings.gpus).fields_set()


def pod_placement(settings: ServeSettings) -> dict[str, Any]:
    """The pod-spec fields that place a server pod (its GPUs go into the container's resources)."""
    fields: dict[str, Any] = {}
    if settings.node_selector:
        fields["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        fields["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.image_pull_secret:
        fields["imagePullSecrets"] = [{"name": settings.image_pull_secret}]
    return fields


def object_name(settings: ServeSettings, arm: Arm, *, limit: int, why: str) -> str:
    """``<deployment>-<arm>``, refused (not truncated: names must stay predictable) above ``limit``."""
    name = f"{settings.deployment}-{arm.name}"
    if len(name) > limit:
        raise ManifestError(f"name {name!r} has {len(name)} characters; at most {limit} fit ({why})", fix="shorten the deployment or arm name")
    return name


def label_value(value: str, key: str) -> str:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise ManifestError(f"{value!r} cannot be the value of label {key}", fix="use at most 63 letters, digits, '-', '_' or '.'")
    return value


def labels(settings: ServeSettings, arm: Arm | None = None) -> dict[str, str]:
    found = {MANAGED_BY: OURS, PART_OF: settings.deployment}
    if arm is not None:
        found |= {ARM_LABEL: arm.name, VERSION_LABEL: arm.version}
    return found


def metadata(name: str, settings: ServeSettings, arm: Arm | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": settings.namespace, "labels": labels(settings, arm)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def server_args(arm: Arm, settings: ServeSettings) -> list[str]:
    # Spelled --model_name: KServe takes the model name an InferenceGraph calls from that argument only.
    args = ["--model-uri", arm.model_uri, "--model_name", arm.model_name, "--host", "0.0.0.0", "--http-port", str(settings.port), "--arm", arm.name]
    if settings.log_sink:
        args += ["--log-sink", settings.log_sink]
    if settings.feature_repo:
        args += ["--feature-repo", settings.feature_repo]
    return args + ["--max-payload-bytes", str(settings.max_payload_bytes)]


def server_env(settings: ServeSettings, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The tracking URI as a value (it has no credentials: checked), credentials only from the Secret."""
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (extra or {}).items()]
    if settings.tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": settings.tracking_uri})
    if settings.mlflow_secret:
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": settings.mlflow_secret, "key": key, "optional": True}}} for key in SECRET_KEYS]
    return env


def resources(settings: ServeSettings) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus:
        amounts[GPU_RESOURCE] = settings.gpus
    return {"requests": dict(amounts), "limits": dict(amounts)}


def server_container(arm: Arm, settings: ServeSettings, *, name: str, port_name: str = "http", env: dict[str, str] | None = None) -> dict[str, Any]:
    """Our model server for one arm, with health probes on the V2 endpoints."""

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": settings.port}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 2}

    container: dict[str, Any] = {
        "name": name,
        "image": settings.image,
        "command": ["python", "-m", SERVER_MODULE],
        "args": server_args(arm, settings),
        "ports": [{"name": port_name, "containerPort": settings.port, "protocol": "TCP"}],
        # Loading a model (download, hash check) takes a while: 5 s x 60 before readiness gives up.
        "readinessProbe": {**probe("/v2/health/ready", 5, 60), "initialDelaySeconds": 5},
        "livenessProbe": {**probe("/v2/health/live", 10, 3), "initialDelaySeconds": 30},
        "resources": resources(settings),
    }
    environment = server_env(settings, env)
    if environment:
        container["env"] = environment
    return container


# The public renderers. The target modules build on the names above, so they are imported when
# called: importing either module first then works too.
def render_kserve(arms: list[Arm], settings: ServeSettings, *, canary_percent: int | None = None) -> Rendered:
    """KServe: one InferenceService per arm and, with two or more arms, an InferenceGraph Splitter.

    With ``canary_percent``: one InferenceService ``<deployment>`` whose predictor is the
    challenger (``arms[1]``) at that percent, KServe keeping its previous revision (the champion,
    which must be what it serves now) for the rest. Knative only: in RawDeployment mode the
    manifest comes with a warning, as KServe ignores the canary there.
    """
    from kfp_mlops.components.deploy import kserve_manifests

    return kserve_manifests.render(list(arms), settings, canary_percent=canary_percent)


def render_seldon_v1(arms: list[Arm], settings: ServeSettings) -> Rendered:
    """Seldon Core v1: one SeldonDeployment, one predictor per arm with its traffic weight."""
    from kfp_mlops.components.deploy import seldon_manifests

    return seldon_manifests.render_v1(list(arms), settings)


def render_seldon_v2(arms: list[Arm], settings: ServeSettings, *, runtime_requirements: tuple[str, ...] = ("kfp-mlops",)) -> Rendered:
    """Seldon Core v2: one Model per arm (MLServer runtime named by ``runtime_requirements``) and an Experiment."""
    from kfp_mlops.components.deploy import seldon_manifests

    return seldon_manifests.render_v2(list(arms), settings, runtime_requirements=runtime_requirements)
