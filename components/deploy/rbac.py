"""RBAC for the deploy step: exactly the verbs and resources apply + wait + rollback use.

The adapter (components/_shared/k8s_adapter.py) reads each object before changing it (get),
server-side applies it (patch, and create when the object is new), polls it until Ready (get),
and on a rollback re-applies the previous object (patch) or deletes a new one (delete). Nothing
lists, watches or touches status subresources, so the Role grants nothing else.
"""

from __future__ import annotations

import re
from typing import Any

from kfp_mlops.components._shared.k8s_adapter import KINDS, MANAGED_BY, OURS
from kfp_mlops.components.deploy.manifests import ManifestError

VERBS = ("create", "delete", "get", "patch")
ROLE_NAME = "kfp-mlops-deploy"
TARGET_KINDS = {
    "kserve": (("serving.kserve.io/v1beta1", "InferenceService"), ("serving.kserve.io/v1alpha1", "InferenceGraph")),
    "seldon-v1": (("machinelearning.seldon.io/v1", "SeldonDeployment"),),
    "seldon-v2": (("mlops.seldon.io/v1alpha1", "Model"), ("mlops.seldon.io/v1alpha1", "Experiment")),
}
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def rules(targets: tuple[str, ...] = tuple(TARGET_KINDS)) -> list[dict[str, Any]]:
    """One rule per API group, resources sorted, for the given targets."""
    unknown = sorted(set(targets) - set(TARGET_KINDS))
    if unknown:
        raise ManifestError(f"unknown deploy target(s) {', '.join(unknown)}", fix=f"use some of {', '.join(TARGET_KINDS)}")
    by_group: dict[str, set[str]] = {}
    for target in targets:
        for key in TARGET_KINDS[target]:
            kind = KINDS[key]
            by_group.setdefault(kind.group, set()).add(kind.plural)
    return [{"apiGroups": [group], "resources": sorted(plurals), "verbs": list(VERBS)} for group, plurals in sorted(by_group.items())]


def render_rbac(namespace: str, service_account: str, *, targets: tuple[str, ...] = tuple(TARGET_KINDS), create_service_account: bool = True) -> list[dict[str, Any]]:
    """ServiceAccount (unless it exists already: ``create_service_account=False``), Role, RoleBinding.

    ``service_account`` is the account the deploy step's pod runs as (in Kubeflow, often
    ``default-editor`` or ``pipeline-runner``), not the serving pods' account.
    """
    for what, value in (("namespace", namespace), ("service account", service_account)):
        if not DNS_1123_SUBDOMAIN.match(value):
            raise ManifestError(f"{what} {value!r} is not a valid Kubernetes name", fix="use lowercase letters, digits, '-' and '.'")
    labels = {MANAGED_BY: OURS}
    manifests: list[dict[str, Any]] = []
    if create_service_account:
        manifests.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": service_account, "namespace": namespace, "labels": labels}})
    manifests.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": ROLE_NAME, "namespace": namespace, "labels": labels}, "rules": rules(targets)})
    manifests.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{ROLE_NAME}-{service_account}"[:253], "namespace": namespace, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        }
    )
    return manifests
