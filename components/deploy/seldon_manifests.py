"""Seldon Core manifests.

- v1 (machinelearning.seldon.io/v1): one SeldonDeployment ``<deployment>``, one predictor per arm
  with its ``traffic`` weight; each predictor runs our model server as a custom container node
  speaking the V2 protocol. Seldon names each predictor's Deployment
  ``<deployment>-<arm>-0-<container>``, a DNS label of at most 63 characters.
- v2 (mlops.seldon.io/v1alpha1): one ``Model`` ``<deployment>-<arm>`` per arm, loaded by the
  MLServer runtime the ``requirements`` name (our kfp-mlops runtime), and with two or more arms an
  ``Experiment`` ``<deployment>`` splitting by weight, the champion (``arms[0]``) its default.

Public entries: ``manifests.render_seldon_v1`` and ``manifests.render_seldon_v2``.
"""

from __future__ import annotations

from typing import Any

from kfp_mlops.components.deploy.manifests import (
    Arm,
    ManifestError,
    Rendered,
    ServeSettings,
    check,
    labels,
    metadata,
    object_name,
    placement_set,
    pod_placement,
    server_container,
)

V1_API_VERSION = "machinelearning.seldon.io/v1"
V2_API_VERSION = "mlops.seldon.io/v1alpha1"
CONTAINER = "server"  # the graph node's name: Seldon v1 binds a node to the container of that name
DNS_LIMIT = 63


def render_v1(arms: list[Arm], settings: ServeSettings) -> Rendered:
    check(arms, settings)
    predictors = []
    for arm in arms:
        object_name(settings, arm, limit=DNS_LIMIT - len(f"-0-{CONTAINER}"), why=f"Seldon's Deployment <deployment>-<arm>-0-{CONTAINER} is at most {DNS_LIMIT}")
        pod: dict[str, Any] = {"containers": [server_container(arm, settings, name=CONTAINER)], **pod_placement(settings)}
        if settings.service_account:
            pod["serviceAccountName"] = settings.service_account
        predictors.append(
            {
                "name": arm.name,
                "replicas": 1,
                "traffic": arm.weight,
                "labels": labels(settings, arm),
                "componentSpecs": [{"metadata": {"labels": labels(settings, arm)}, "spec": pod}],
                # No implementation: Seldon runs the container as it is and calls it over REST on our port.
                "graph": {"name": CONTAINER, "type": "MODEL", "endpoint": {"type": "REST", "httpPort": settings.port}, "children": []},
            }
        )
    deployment = {
        "apiVersion": V1_API_VERSION,
        "kind": "SeldonDeployment",
        "metadata": metadata(settings.deployment, settings),
        "spec": {"protocol": "v2", "predictors": predictors},
    }
    return Rendered([deployment])


def render_v2(arms: list[Arm], settings: ServeSettings, *, runtime_requirements: tuple[str, ...] = ("kfp-mlops",)) -> Rendered:
    check(arms, settings)
    refuse_placement_for_v2(placement_set(settings))
    if not runtime_requirements or not all(runtime_requirements):
        raise ManifestError("no runtime requirements: Seldon would schedule the model on any server", fix="name the MLServer runtime that serves kfp-mlops models, e.g. ('kfp-mlops',)")
    missing = [arm.name for arm in arms if not arm.storage_uri]
    if missing:
        raise ManifestError(
            f"arm(s) {', '.join(missing)} have no storage_uri: a Seldon v2 Model loads its files from storage", fix="set Arm.storage_uri to the model version's artifact location (MLflow download URI)"
        )
    models = []
    for arm in arms:
        name = object_name(settings, arm, limit=DNS_LIMIT, why="a Model name is a DNS label")
        spec: dict[str, Any] = {"storageUri": arm.storage_uri, "requirements": list(runtime_requirements), "memory": settings.memory, "replicas": 1}
        models.append({"apiVersion": V2_API_VERSION, "kind": "Model", "metadata": metadata(name, settings, arm), "spec": spec})
    if len(arms) == 1:
        return Rendered(models)
    experiment = {
        "apiVersion": V2_API_VERSION,
        "kind": "Experiment",
        "metadata": metadata(settings.deployment, settings),
        "spec": {
            "default": models[0]["metadata"]["name"],
            "resourceType": "model",
            "candidates": [{"name": m["metadata"]["name"], "weight": arm.weight} for arm, m in zip(arms, models)],
        },
    }
    return Rendered([*models, experiment])


def refuse_placement_for_v2(fields: list[str]) -> None:
    """A v2 Model has no pod: the MLServer Server that loads it does, and the user manages that Server."""
    if fields:
        raise ManifestError(
            f"{', '.join(fields)} cannot be set for target seldon-v2: a Seldon v2 Model has no pod spec; the MLServer Server that loads it does",
            fix="leave them empty here and set them on the Server resource (mlops.seldon.io/v1alpha1, kind Server, with the kfp-mlops capability): "
            "spec.podSpec.nodeSelector, spec.podSpec.tolerations, spec.podSpec.imagePullSecrets, and the mlserver container's resources.limits[nvidia.com/gpu]",
        )
