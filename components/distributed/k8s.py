"""Kubernetes adapter: create a custom resource idempotently and wait for it to finish.

Uses the official ``kubernetes`` client (in-cluster service account, or a kubeconfig);
the tests point it at a fake API server over HTTP.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from kfp_mlops.components._shared.errors import KfpMlopsError

log = logging.getLogger(__name__)
DONE = {"TrainJob": ("Complete", "Failed"), "PyTorchJob": ("Succeeded", "Failed")}


class JobError(KfpMlopsError):
    """The distributed job failed, vanished, or did not finish in time."""

    exit_code = 3


@dataclass(frozen=True)
class JobOutcome:
    name: str
    succeeded: bool
    reason: str
    message: str
    seconds: float


class JobClient:
    """Create, watch and describe one kind of custom resource."""

    def __init__(self, api_client: Any, group: str, version: str, plural: str, kind: str) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client)
        self.group, self.version, self.plural, self.kind = group, version, plural, kind

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the job; if a job of that name exists already (a retried step), reuse it when it is ours."""
        from kubernetes.client.exceptions import ApiException

        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return self.api.create_namespaced_custom_object(self.group, self.version, namespace, self.plural, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise JobError(f"creating {self.kind} {namespace}/{name} failed: HTTP {exc.status} {exc.reason}", fix=_fix(exc.status)) from exc
        existing = self.api.get_namespaced_custom_object(self.group, self.version, namespace, self.plural, name)
        if existing.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by") != "kfp-mlops":
            raise JobError(f"{self.kind} {namespace}/{name} exists and was not created by kfp-mlops", fix="delete it, or run under another KFP run")
        log.info("%s %s/%s exists already (a retried step): waiting for it", self.kind, namespace, name)
        return existing

    def wait(self, namespace: str, name: str, *, timeout_s: float, poll_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> JobOutcome:
        """Poll until the job reports a terminal condition; transient API errors are retried."""
        from kubernetes.client.exceptions import ApiException

        started = time.monotonic()
        success, failure = DONE[self.kind]
        errors = 0
        while True:
            try:
                job = self.api.get_namespaced_custom_object(self.group, self.version, namespace, self.plural, name)
                errors = 0
            except ApiException as exc:
                if exc.status == 404:
                    raise JobError(f"{self.kind} {namespace}/{name} disappeared while running", fix="check who deleted it; rerun the step") from exc
                errors += 1
                if exc.status < 500 or errors > 5:
                    raise JobError(f"reading {self.kind} {namespace}/{name} failed: HTTP {exc.status} {exc.reason}", fix=_fix(exc.status)) from exc
                log.warning("reading %s/%s failed with HTTP %s; retrying", namespace, name, exc.status)
                job = {}
            for condition in job.get("status", {}).get("conditions", []):
                if condition.get("status") == "True" and condition.get("type") in (success, failure):
                    return JobOutcome(name, condition["type"] == success, condition.get("reason", ""), condition.get("message", ""), time.monotonic() - started)
            if time.monotonic() - started > timeout_s:
                raise JobError(f"{self.kind} {namespace}/{name} did not finish within {timeout_s:.0f}s", fix="raise the timeout, or check the job's pods (kubectl describe)")
            sleep(poll_s)


def _fix(status: int) -> str:
    if status in (401, 403):
        return "grant the pipeline's service account create/get on the job resource (RBAC)"
    if status == 404:
        return "install the Kubeflow Trainer (TrainJob) or training-operator (PyTorchJob) in the cluster"
    if status == 422:
        return "the API server rejected the manifest; check the sizes and the runtime name"
    return "check the Kubernetes API server"


def api_client(host: str = "") -> Any:
    """In-cluster credentials, or the kubeconfig; ``host`` overrides the server (tests)."""
    from kubernetes import client, config

    if host:
        configuration = client.Configuration()
        configuration.host = host
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()
