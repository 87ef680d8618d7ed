"""Deploy registered versions as arms of one endpoint: local processes, KServe or Seldon.

Order of work, so that a bad request changes nothing: parse the arms and settings
(pod placement included), resolve every alias to a pinned version (optionally merging
arms that name the same version), load every arm's model through the safe loader
(hashes checked, no code run), and only then start processes or apply manifests.
Applying waits for readiness and restores the previous state when an arm does not
become ready.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kfp_mlops.components.deploy.arms import (
    ArmRequest,
    DeployInputError,
    ResolvedArm,
    merge_same_version,
    parse_arms,
    resolve_arms,
)
from kfp_mlops.components.deploy.placement import Placement, parse_placement

log = logging.getLogger(__name__)

TARGETS = ("local", "kserve", "seldon", "seldon-v2")
DEPLOYMENT_NAME = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")  # an RFC 1035 label, short enough for every target
MODES = ("apply", "dry-run")
DEPLOYMENT_MODES = ("Serverless", "RawDeployment")


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy, where and how.

    Attributes:
        model_name: Registered model name.
        arms: alias=weight pairs, e.g. champion=50,challenger=50.
        target: local, kserve, seldon (Seldon Core v1) or seldon-v2.
        mode: apply, or dry-run (render and check only).
        tracking_uri: MLflow tracking URI (without credentials).
        deployment: Name of the endpoint; empty for the model name made DNS-safe.
        namespace: Kubernetes namespace (cluster targets).
        image: Model-server image (cluster targets).
        log_sink: Where predictions are logged; empty = off (cluster) or state_dir/prediction-logs (local).
        feature_repo: Feast repo folder for lookups by entity key; empty = requests carry features.
        canary_percent: kserve only: serve the challenger as a canary at this percent (Serverless mode).
        deployment_mode: KServe Serverless or RawDeployment.
        mlflow_secret: Secret with MLflow credentials for the server pods.
        state_dir: local only: where the processes' state and logs live.
        port: local only: the splitter's port; 0 picks a free one.
        timeout_s: How long arms get to become ready.
        node_selector: JSON object of node label -> value for every arm's server pod; empty = none.
        tolerations: JSON list of Kubernetes tolerations for every arm's server pod; empty = none.
        image_pull_secret: Secret for pulling the server image from a private registry; empty = none.
        gpu_count: nvidia.com/gpu per arm's server container; 0 = none.
        merge_same_version: Serve arms whose aliases resolve to the same version once, as the first named arm with their weights added.
    """

    model_name: str
    arms: str = "champion=100"
    target: str = "local"
    mode: str = "apply"
    tracking_uri: str = ""
    deployment: str = ""
    namespace: str = "default"
    image: str = ""
    log_sink: str = ""
    feature_repo: str = ""
    canary_percent: int = -1
    deployment_mode: str = "Serverless"
    mlflow_secret: str = ""
    state_dir: str = ""
    port: int = 0
    timeout_s: float = 600.0
    poll_s: float = 5.0
    cpu: str = "1"
    memory: str = "2Gi"
    service_account: str = ""
    node_selector: str = ""
    tolerations: str = ""
    image_pull_secret: str = ""
    gpu_count: int = 0
    merge_same_version: bool = False


@dataclass
class DeployResult:
    endpoint: str
    arms: list[ResolvedArm]
    manifests: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    applied: bool = False
    notes: list[str] = field(default_factory=list)  # what deploy decided for the user, e.g. arms merged


def check_request(request: DeployRequest) -> list[ArmRequest]:
    """Every setting checked before the registry is read; returns the parsed arms."""
    return _checked(request)[0]


def _checked(request: DeployRequest) -> tuple[list[ArmRequest], Placement]:
    if request.target not in TARGETS:
        raise DeployInputError(f"target {request.target!r} is not one of {', '.join(TARGETS)}", fix="pick local to try it on this machine, kserve or seldon for a cluster")
    if request.mode not in MODES:
        raise DeployInputError(f"mode {request.mode!r} is not apply or dry-run", fix="use dry-run to render and check without changing anything")
    if request.deployment_mode not in DEPLOYMENT_MODES:
        raise DeployInputError(f"deployment_mode {request.deployment_mode!r} is not Serverless or RawDeployment", fix="use the mode your KServe install runs in")
    if not request.model_name.strip():
        raise DeployInputError("model_name is empty", fix="pass the registered model name, as given to register")
    arms = parse_arms(request.arms)
    if request.canary_percent != -1:
        if request.target != "kserve":
            raise DeployInputError(f"canary_percent is a KServe setting; target {request.target!r} splits by the arm weights", fix="set the challenger's weight in arms instead")
        if not 0 < request.canary_percent < 100 or len(arms) != 2:
            raise DeployInputError(
                f"a canary needs two arms (champion and challenger) and a percent between 1 and 99, got {request.canary_percent} with {len(arms)} arm(s)",
                fix="e.g. arms=champion=90,challenger=10 and canary_percent=10",
            )
    if not 0 <= request.port <= 65535:
        raise DeployInputError(f"local port {request.port} is not a TCP port", fix="pass a port from 1024 to 65535, or 0 to pick a free one")
    if request.timeout_s <= 0:
        raise DeployInputError(f"timeout {request.timeout_s} is not positive", fix="give the arms minutes to load their models, e.g. 10")
    placement = parse_placement(node_selector=request.node_selector, tolerations=request.tolerations, image_pull_secret=request.image_pull_secret, gpu_count=request.gpu_count)
    if request.target == "seldon-v2":
        from kfp_mlops.components.deploy.seldon_manifests import refuse_placement_for_v2

        refuse_placement_for_v2(placement.fields_set())
    return arms, placement


def deployment_name(request: DeployRequest) -> str:
    """The endpoint's name: as given (checked, never rewritten), or the model name made DNS-safe (RFC 1035 label)."""
    if request.deployment:
        name = request.deployment
    else:
        name = re.sub(r"^[^a-z]+", "", re.sub(r"[^a-z0-9-]+", "-", request.model_name.lower()).strip("-"))
    if not DEPLOYMENT_NAME.fullmatch(name):
        raise DeployInputError(
            f"deployment name {name!r} (from {request.deployment or request.model_name!r}) is not a DNS label of at most 40 characters",
            fix="pass deployment_name: lower-case letters, digits and '-', starting with a letter",
        )
    return name


def preflight(registry: Any, arms: list[ResolvedArm]) -> None:
    """Load every arm's model exactly as the server will (hashes checked, nothing executed); arms must take the same request."""
    from kfp_mlops.components.serve.model_source import load_registered_version

    features = {}
    with tempfile.TemporaryDirectory(prefix="deploy-preflight-") as scratch:
        for arm in arms:
            transform = load_registered_version(registry, arm.model_name, arm.version, Path(scratch) / arm.name)
            features[arm.name] = sorted(transform.contract.feature_names)
    first = next(iter(features))
    for name, names in features.items():
        if names != features[first]:
            raise DeployInputError(
                f"arms {first!r} and {name!r} take different features ({sorted(set(names) ^ set(features[first]))[:10]} differ): one request cannot go to both",
                fix="deploy versions trained on the same feature set, or deploy them as separate endpoints",
            )


def server_args(arm: ResolvedArm, request: DeployRequest, log_sink: str) -> list[str]:
    """The model server's arguments for one arm (host and port are added by the target)."""
    args = ["--model-uri", arm.model_uri, "--model-name", arm.model_name, "--arm", arm.name]
    if log_sink:
        args += ["--log-sink", log_sink]
    if request.feature_repo:
        args += ["--feature-repo", request.feature_repo]
    return args


def deploy(request: DeployRequest, *, registry: Any, kube_api_client: Any = None) -> DeployResult:
    """Deploy ``request``'s arms; ``kube_api_client`` is the Kubernetes client for cluster targets in apply mode."""
    arm_requests, placement = _checked(request)
    name = deployment_name(request)
    arms = resolve_arms(registry, request.model_name, arm_requests)
    notes: list[str] = []
    if request.merge_same_version:
        arms, notes = merge_same_version(arms)
        if notes and len(arms) == 1 and request.canary_percent != -1:
            # Nothing left to roll out against: the one version is served as a plain single arm.
            notes.append(f"canary_percent={request.canary_percent} dropped: champion and challenger are the same version, served as one arm")
            request = dataclasses.replace(request, canary_percent=-1)
    for note in notes:
        log.info("%s", note)
    unblessed = unblessed_warnings(registry, arms)
    if request.target == "local":
        if placement.fields_set():
            log.info("target local runs the arms as processes on this machine: %s ignored (nothing to place)", ", ".join(placement.fields_set()))
        result = _deploy_local(request, name, arms, check=lambda: preflight(registry, arms))
    else:
        preflight(registry, arms)
        result = _deploy_cluster(request, name, arms, placement, kube_api_client)
    result.notes = notes
    result.warnings = unblessed + result.warnings
    for warning in unblessed:
        log.warning("%s", warning)
    return result


def unblessed_warnings(registry: Any, arms: list[ResolvedArm]) -> list[str]:
    """One warning per arm whose version register did not bless: deploying it is allowed (a shadow or a
    manual test), but it should never reach traffic unnoticed."""
    found = []
    for arm in arms:
        if arm.weight > 0 and registry.version_tags(arm.model_name, arm.version).get("blessed") == "false":
            found.append(
                f"arm {arm.name!r} serves models:/{arm.model_name}/{arm.version} at {arm.weight}%, which register did NOT bless "
                "(it failed the evaluation gate): its answers reach users. Give it weight 0 or deploy a blessed version unless that is intended."
            )
    return found


def local_state_dir(request: DeployRequest, name: str) -> Path:
    return Path(request.state_dir).expanduser() if request.state_dir else Path.home() / ".kfp-mlops" / "deployments" / name


def _deploy_local(request: DeployRequest, name: str, arms: list[ResolvedArm], check: Callable[[], None]) -> DeployResult:
    """``check`` (the preflight) runs while the new arm processes start: it fails a bad model with its own
    message and exit code, the processes are stopped and the previous deployment keeps serving."""
    from kfp_mlops.components.deploy.local_target import LocalArm, deploy_local

    state_dir = local_state_dir(request, name)
    log_sink = request.log_sink or str(state_dir / "prediction-logs")
    command = [sys.executable, "-m", "kfp_mlops.components.serve"]
    tracking = ["--tracking-uri", request.tracking_uri] if request.tracking_uri else []
    local_arms = [LocalArm(arm.name, command + server_args(arm, request, log_sink) + tracking, arm.weight) for arm in arms]
    plan = [{"arm": a.name, "weight": a.weight, "command": a.command} for a in local_arms]
    if request.mode == "dry-run":
        check()
        return DeployResult(endpoint="", arms=arms, manifests=[{"kind": "LocalDeployment", "name": name, "state_dir": str(state_dir), "arms": plan}])
    deployment = deploy_local(local_arms, state_dir=state_dir, port=request.port, ready_timeout_s=request.timeout_s, while_starting=check)
    return DeployResult(endpoint=deployment.url, arms=arms, manifests=[{"kind": "LocalDeployment", "name": name, "state_dir": str(state_dir), "arms": plan}], applied=True)


def _deploy_cluster(request: DeployRequest, name: str, arms: list[ResolvedArm], placement: Placement, kube_api_client: Any) -> DeployResult:
    from kfp_mlops.components._shared.images import image as default_image
    from kfp_mlops.components.deploy import manifests as render

    settings = render.ServeSettings(
        deployment=name,
        namespace=request.namespace,
        image=request.image or default_image("serve"),
        tracking_uri=request.tracking_uri,
        mlflow_secret=request.mlflow_secret,
        log_sink=request.log_sink,
        feature_repo=request.feature_repo,
        cpu=request.cpu,
        memory=request.memory,
        gpus=placement.gpu_count,
        node_selector=placement.node_selector,
        tolerations=placement.tolerations,
        image_pull_secret=placement.image_pull_secret,
        service_account=request.service_account,
        deployment_mode=request.deployment_mode,
    )
    rendered_arms = [render.Arm(a.name, a.model_uri, a.model_name, a.version, a.weight, storage_uri=a.source) for a in arms]
    warnings: list[str] = []
    if request.target == "seldon-v2":
        unreadable = [f"{a.name} ({a.source})" for a in arms if not a.source.startswith(("s3://", "gs://"))]
        if unreadable:
            warnings.append(f"Seldon v2 loads models from object storage; these arms' files are not in s3:// or gs:// storage: {', '.join(unreadable)}. Use an MLflow artifact store on S3 or GCS.")
    if request.target == "kserve":
        canary = request.canary_percent if request.canary_percent != -1 else None
        out = render.render_kserve(rendered_arms, settings, canary_percent=canary)
    elif request.target == "seldon":
        out = render.render_seldon_v1(rendered_arms, settings)
    else:
        out = render.render_seldon_v2(rendered_arms, settings)
    manifests, rendered_warnings = _unpack(out)
    warnings += rendered_warnings
    # The entry point is rendered last: the graph, the SeldonDeployment, the Experiment.
    entry = manifests[-1]["metadata"]
    endpoint = f"http://{entry['name']}.{entry['namespace']}.svc.cluster.local" if request.target == "kserve" else ""
    if request.mode == "dry-run":
        return DeployResult(endpoint=endpoint, arms=arms, manifests=manifests, warnings=warnings)
    from kfp_mlops.components._shared.k8s_adapter import KubeClient, ResourceRef

    kube = KubeClient(kube_api_client)
    kube.apply_all_or_rollback(manifests, timeout_s=request.timeout_s, poll_s=request.poll_s)
    status = (kube.get(ResourceRef.of(manifests[-1])) or {}).get("status", {})
    endpoint = status.get("url") or status.get("address", {}).get("url") or endpoint
    return DeployResult(endpoint=endpoint, arms=arms, manifests=manifests, warnings=warnings, applied=True)


def _unpack(out: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """A renderer's manifests (in apply order) and its warnings."""
    return list(out), list(getattr(out, "warnings", []))
