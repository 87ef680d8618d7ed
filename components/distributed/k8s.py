"""The training launcher's view of Kubernetes: create a job idempotently and wait for it to finish.

A thin layer over the shared adapter (components/_shared/k8s_adapter.py), raising JobError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components._shared.k8s_adapter import (
    JobOutcome,
    KubeClient,
    ResourceRef,
    api_client,
    kind_for,
)

__all__ = ["JobClient", "JobError", "JobOutcome", "api_client"]


class JobError(KfpMlopsError):
    """The distributed job failed, vanished, or did not finish in time."""

    exit_code = 3


class JobClient:
    """Create and watch one kind of job (TrainJob or PyTorchJob)."""

    def __init__(self, api_client: Any, group: str, version: str, plural: str, kind: str) -> None:
        self.kind = kind_for(f"{group}/{version}", kind)
        if self.kind.plural != plural:
            raise JobError(f"{kind} is served as {self.kind.plural}, not {plural}", fix="use the KINDS table of components/distributed/manifests.py")
        self.client = KubeClient(api_client, error=JobError)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the job; if a job of that name exists already (a retried step), reuse it when it is ours."""
        return self.client.create(manifest)

    def wait(self, namespace: str, name: str, *, timeout_s: float, poll_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> JobOutcome:
        """Poll until the job reports a terminal condition; transient API errors are retried."""
        return self.client.wait_done(ResourceRef(self.kind, namespace, name), timeout_s=timeout_s, poll_s=poll_s, sleep=sleep)
