"""KServe manifests: InferenceServices running our model server, split by an InferenceGraph.

Public entry: ``manifests.render_kserve``. Names and limits:
- ``<deployment>-<arm>`` InferenceServices; KServe names the predictor's Service
  ``<isvc>-predictor`` (a 63-character DNS label), and in Serverless mode Knative's default
  domain template makes the host label ``<isvc>-predictor-<namespace>``, also at most 63.
- ``<deployment>`` InferenceGraph, root node a ``Splitter`` with the arms' weights.
"""

from __future__ import annotations

from typing import Any

from kfp_mlops.components.deploy.manifests import (
    Arm,
    ManifestError,
    Rendered,
    ServeSettings,
    check,
    metadata,
    object_name,
    pod_placement,
    server_container,
)

API_VERSION = "serving.kserve.io/v1beta1"
GRAPH_API_VERSION = "serving.kserve.io/v1alpha1"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe finds a custom predictor's container by this name (CustomPredictor.GetContainer).
CONTAINER = "kserve-container"
# KServe reads the protocol of a custom container from this env; an InferenceGraph then calls V2 paths.
PROTOCOL_ENV = {"PROTOCOL": "v2"}
# An InferenceGraph step calls <isvc url>/v2/models/<model>/infer, where KServe takes <model> from a
# container arg starting with "--model_name" (underscore), else the InferenceService's name; so
# manifests.server_args spells the flag --model_name (the server accepts it beside --model-name),
# and the graph asks for the arm's model name, the name the server publishes.
# Knative accepts only "http1" or "h2c" as a port name (and any name works in RawDeployment).
PORT_NAME = "http1"
LABEL_LIMIT = 63
# Knative refuses a Service whose pod spec sets these unless config-features enables them (off by
# default): "must not set the field(s): spec.template.spec.nodeSelector". RawDeployment takes them as they are.
KNATIVE_FEATURE_FLAGS = {"nodeSelector": "kubernetes.podspec-nodeselector", "tolerations": "kubernetes.podspec-tolerations"}


def render(arms: list[Arm], settings: ServeSettings, *, canary_percent: int | None = None) -> Rendered:
    check(arms, settings)
    annotations = {MODE_ANNOTATION: settings.deployment_mode}
    if canary_percent is not None:
        rendered = _canary(arms, settings, canary_percent, annotations)
        rendered.warnings += _knative_warnings(settings)
        return rendered
    services = [_inference_service(arm, settings, _isvc_name(settings, arm), annotations) for arm in arms]
    if len(arms) == 1:
        return Rendered(services, _knative_warnings(settings))
    graph_name = settings.deployment
    if settings.deployment_mode == "Serverless" and len(f"{graph_name}-{settings.namespace}") > LABEL_LIMIT:
        raise ManifestError(
            f"InferenceGraph host label {graph_name}-{settings.namespace!s} is longer than {LABEL_LIMIT} characters (Knative's domain template)", fix="shorten the deployment name or the namespace"
        )
    graph = {
        "apiVersion": GRAPH_API_VERSION,
        "kind": "InferenceGraph",
        "metadata": metadata(graph_name, settings, annotations=annotations),
        "spec": {"nodes": {"root": {"routerType": "Splitter", "steps": [{"name": arm.name, "serviceName": s["metadata"]["name"], "weight": arm.weight} for arm, s in zip(arms, services)]}}},
    }
    # The graph last: its controller resolves the services' URLs, so they must exist (and be Ready) first.
    return Rendered([*services, graph], _knative_warnings(settings))


def _knative_warnings(settings: ServeSettings) -> list[str]:
    if settings.deployment_mode != "Serverless":
        return []
    fields = [name for name in KNATIVE_FEATURE_FLAGS if name in pod_placement(settings)]
    if not fields:
        return []
    flags = ", ".join(f"{KNATIVE_FEATURE_FLAGS[name]}: enabled" for name in fields)
    warning = (
        f"Serverless (Knative) mode accepts {' and '.join(fields)} in a pod spec only when the cluster enables them in ConfigMap config-features "
        f"(namespace knative-serving): {flags}. Without that the InferenceServices never become Ready ('must not set the field(s)') and the deploy rolls back; "
        "ask the cluster admin to enable them, or deploy with deployment_mode=RawDeployment."
    )
    return [warning]


def _isvc_name(settings: ServeSettings, arm: Arm) -> str:
    if settings.deployment_mode == "Serverless":
        limit = LABEL_LIMIT - len("-predictor-") - len(settings.namespace)
        return object_name(settings, arm, limit=limit, why=f"Knative's host label <name>-predictor-{settings.namespace} is at most {LABEL_LIMIT}")
    return object_name(settings, arm, limit=LABEL_LIMIT - len("-predictor"), why="KServe's Service <name>-predictor is at most 63")


def _inference_service(arm: Arm, settings: ServeSettings, name: str, annotations: dict[str, str], canary_percent: int | None = None) -> dict[str, Any]:
    predictor: dict[str, Any] = {"minReplicas": 1, "containers": [server_container(arm, settings, name=CONTAINER, port_name=PORT_NAME, env=PROTOCOL_ENV)], **pod_placement(settings)}
    if settings.service_account:
        predictor["serviceAccountName"] = settings.service_account
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": metadata(name, settings, arm, annotations), "spec": {"predictor": predictor}}


def _canary(arms: list[Arm], settings: ServeSettings, canary_percent: int, annotations: dict[str, str]) -> Rendered:
    if len(arms) != 2:
        raise ManifestError(f"a canary needs exactly two arms (champion, challenger), got {len(arms)}", fix="pass [champion, challenger], or omit canary_percent to split with an InferenceGraph")
    champion, challenger = arms
    if isinstance(canary_percent, bool) or not 0 <= canary_percent <= 100 or canary_percent != challenger.weight:
        raise ManifestError(f"canary_percent {canary_percent!r} disagrees with the challenger's weight {challenger.weight}", fix="pass the challenger's weight as canary_percent")
    # The champion's service rolls out the challenger: KServe keeps the revision it serves now for the rest.
    service = _inference_service(challenger, settings, _isvc_name(settings, champion), annotations, canary_percent)
    warnings = []
    if settings.deployment_mode == "RawDeployment":
        warnings.append(
            f"canaryTrafficPercent={canary_percent} is honoured only in Serverless (Knative) mode: in RawDeployment KServe ignores it and "
            f"InferenceService {service['metadata']['name']} would send all traffic to the challenger. Deploy without canary_percent to split with an InferenceGraph."
        )
    return Rendered([service], warnings)
