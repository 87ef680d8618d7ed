"""Shift traffic between the arms of a running deployment, without restarting anything.

Local: the splitter's admin route. Cluster: the entry resource the deploy step rendered
(KServe InferenceGraph steps, Seldon v1 predictor traffic, Seldon v2 Experiment
candidates) is read, its weights changed, and applied back. Every weight is checked
against the arms the resource really has before anything is sent.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kfp_mlops.components.deploy.arms import DeployInputError
from kfp_mlops.components.deploy.kserve_manifests import GRAPH_API_VERSION
from kfp_mlops.components.deploy.manifests import ARM_LABEL
from kfp_mlops.components.deploy.seldon_manifests import V1_API_VERSION, V2_API_VERSION
from kfp_mlops.components.deploy.splitting import SplitterConfigError, check_weights

ENTRY = {
    "kserve": (GRAPH_API_VERSION, "InferenceGraph"),
    "seldon": (V1_API_VERSION, "SeldonDeployment"),
    "seldon-v2": (V2_API_VERSION, "Experiment"),
}


def shift_local(state_dir: Path, weights: dict[str, int]) -> dict[str, int]:
    """Set the local splitter's weights; returns the weights it routes by now."""
    from kfp_mlops.components.deploy.local_target import set_weights_local

    deployment = set_weights_local(state_dir, weights)
    return {name: arm.weight for name, arm in deployment.arms.items()}


def current_local(state_dir: Path) -> dict[str, int]:
    """The weights the local splitter routes by now (empty when nothing is deployed there)."""
    from kfp_mlops.components.deploy.local_target import status_local

    deployment = status_local(Path(state_dir))
    return {name: arm.weight for name, arm in deployment.arms.items()} if deployment else {}


def shift_cluster(kube: Any, target: str, namespace: str, deployment: str, weights: dict[str, int]) -> dict[str, Any]:
    """Apply ``weights`` to the entry resource of ``deployment``; returns the manifest applied.

    Raises:
        DeployInputError: an unknown target, a missing resource, weights that do not fit its arms.
        DeployError: the API server refused (from ``kube``).
    """
    from kfp_mlops.components._shared.k8s_adapter import ResourceRef

    if target not in ENTRY:
        raise DeployInputError(f"target {target!r} has no traffic weights to shift", fix=f"use one of {', '.join(ENTRY)} (or local)")
    api_version, kind = ENTRY[target]
    ref = ResourceRef.of({"apiVersion": api_version, "kind": kind, "metadata": {"name": deployment, "namespace": namespace}})
    found = kube.get(ref)
    if found is None:
        raise DeployInputError(f"{kind} {namespace}/{deployment} does not exist", fix="deploy the arms first (the deploy step), with this deployment name and namespace")
    spec = copy.deepcopy(found.get("spec") or {})
    if target == "kserve":
        entries, key, name_of = spec.get("nodes", {}).get("root", {}).get("steps", []), "weight", lambda e: e.get("name")
    elif target == "seldon":
        entries, key, name_of = spec.get("predictors", []), "traffic", lambda e: e.get("name")
    else:
        arm_of = _seldon_v2_arms(kube, namespace, [c.get("name", "") for c in spec.get("candidates", [])])
        entries, key, name_of = spec.get("candidates", []), "weight", lambda e: arm_of.get(e.get("name", ""))
    names = [name_of(e) for e in entries]
    try:
        checked = check_weights(weights, [n for n in names if n])
    except SplitterConfigError as error:
        raise DeployInputError(f"{kind} {namespace}/{deployment}: {error.problem}", fix=error.fix) from None
    for entry, name in zip(entries, names):
        if name:
            entry[key] = checked[name]
    manifest = {"apiVersion": api_version, "kind": kind, "metadata": {"name": deployment, "namespace": namespace}, "spec": spec}
    kube.apply(manifest)
    return manifest


def _seldon_v2_arms(kube: Any, namespace: str, models: list[str]) -> dict[str, str]:
    """Experiment candidates are Model names; the arm is the label the deploy step put on each Model."""
    from kfp_mlops.components._shared.k8s_adapter import ResourceRef

    found = {}
    for name in models:
        model = kube.get(ResourceRef.of({"apiVersion": V2_API_VERSION, "kind": "Model", "metadata": {"name": name, "namespace": namespace}}))
        arm = ((model or {}).get("metadata", {}).get("labels") or {}).get(ARM_LABEL)
        if arm:
            found[name] = arm
    return found
