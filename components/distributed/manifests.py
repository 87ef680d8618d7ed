"""Manifests of the distributed training job: Kubeflow Trainer v2 TrainJob, or PyTorchJob for
clusters still on training-operator v1. Both run the same trainer entry point, reading
and writing a shared ReadWriteMany volume."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops.components._shared.errors import KfpMlopsError

TRAINJOB = ("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
PYTORCHJOB = ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
KINDS = {"trainjob": TRAINJOB, "pytorchjob": PYTORCHJOB}
GPU_RESOURCE = "nvidia.com/gpu"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
VOLUME = "shared"
ENTRY = ["-m", "kfp_mlops.components.train.entry"]
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


class JobSpecError(KfpMlopsError):
    """The distributed job cannot be described as asked."""


@dataclass(frozen=True)
class JobSpec:
    """What to run where.

    Attributes:
        name: Job name (DNS-1123 label; derived from the KFP run so a retry finds its job).
        namespace: Namespace of the job.
        image: Training image (the kfp-mlops train image).
        trainer_args: Arguments of the trainer entry (paths on the shared volume).
        num_nodes: Pods.
        procs_per_node: Processes per pod (GPUs per node when training on GPUs).
        gpus_per_node: GPUs requested per pod (resource nvidia.com/gpu); 0 for CPU.
        cpu: CPU request and limit per pod, e.g. "4".
        memory: Memory request and limit per pod, e.g. "16Gi".
        shared_pvc: ReadWriteMany PersistentVolumeClaim holding inputs and outputs.
        mount_path: Where the claim is mounted in every pod.
        runtime: ClusterTrainingRuntime of a TrainJob.
        labels: Extra labels (KFP run id, ...).
        mlflow_secret: Secret with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD for the pods (optional keys).
    """

    name: str
    namespace: str
    image: str
    trainer_args: list[str]
    num_nodes: int = 2
    procs_per_node: int = 1
    gpus_per_node: int = 0
    cpu: str = "2"
    memory: str = "4Gi"
    shared_pvc: str = ""
    mount_path: str = "/mnt/shared"
    runtime: str = "torch-distributed"
    labels: dict[str, str] = field(default_factory=dict)
    mlflow_secret: str = ""

    def env(self) -> list[dict[str, Any]]:
        """Environment of the trainer pods: MLflow credentials from the Secret, never literal values."""
        if not self.mlflow_secret:
            return []
        return [{"name": key, "valueFrom": {"secretKeyRef": {"name": self.mlflow_secret, "key": key, "optional": True}}} for key in MLFLOW_SECRET_KEYS]

    def check(self) -> None:
        if not DNS_1123.match(self.name):
            raise JobSpecError(f"job name {self.name!r} is not a DNS-1123 label", fix="use lowercase letters, digits and '-', at most 63 characters")
        if self.num_nodes < 1 or self.procs_per_node < 1 or self.gpus_per_node < 0:
            raise JobSpecError(f"nodes {self.num_nodes}, processes per node {self.procs_per_node}, GPUs per node {self.gpus_per_node}: all must be positive", fix="fix the sizes")
        if self.gpus_per_node and self.procs_per_node > self.gpus_per_node:
            raise JobSpecError(f"{self.procs_per_node} processes per node share {self.gpus_per_node} GPUs", fix="run one process per GPU")
        if not self.shared_pvc:
            raise JobSpecError("no shared volume: the job's pods cannot see the data or return the model", fix="pass a ReadWriteMany PersistentVolumeClaim as shared_pvc")


def _resources(spec: JobSpec) -> dict[str, Any]:
    amounts: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus_per_node:
        amounts[GPU_RESOURCE] = spec.gpus_per_node
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _metadata(spec: JobSpec) -> dict[str, Any]:
    return {"name": spec.name, "namespace": spec.namespace, "labels": {"app.kubernetes.io/managed-by": "kfp-mlops", **spec.labels}}


def trainjob(spec: JobSpec) -> dict[str, Any]:
    """A TrainJob on the torch runtime: torchrun (configured by the runtime's PET_* variables) runs the entry."""
    spec.check()
    volumes = [{"name": VOLUME, "persistentVolumeClaim": {"claimName": spec.shared_pvc}}]
    mounts = [{"name": VOLUME, "mountPath": spec.mount_path}]
    pod_patch = {"spec": {"template": {"spec": {"containers": [{"name": "node", "volumeMounts": mounts}], "volumes": volumes}}}}
    return {
        "apiVersion": f"{TRAINJOB[0]}/{TRAINJOB[1]}",
        "kind": TRAINJOB[3],
        "metadata": _metadata(spec),
        "spec": {
            "runtimeRef": {"name": spec.runtime, "kind": "ClusterTrainingRuntime", "apiGroup": TRAINJOB[0]},
            "trainer": {
                "image": spec.image,
                "command": ["torchrun", *ENTRY],
                "args": list(spec.trainer_args),
                **({"env": spec.env()} if spec.env() else {}),
                "numNodes": spec.num_nodes,
                "numProcPerNode": spec.procs_per_node,
                "resourcesPerNode": _resources(spec),
            },
            "runtimePatches": [{"manager": "kfp-mlops", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{"name": "node", "template": pod_patch}]}}}}],
        },
    }


def pytorchjob(spec: JobSpec) -> dict[str, Any]:
    """A PyTorchJob (training-operator v1): one Master and num_nodes - 1 Workers, torchrun in each."""
    spec.check()

    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": "OnFailure",
            "template": {
                "metadata": {"labels": _metadata(spec)["labels"]},
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": spec.image,
                            "command": ["torchrun", *ENTRY],
                            "args": list(spec.trainer_args),
                            **({"env": spec.env()} if spec.env() else {}),
                            "resources": _resources(spec),
                            "volumeMounts": [{"name": VOLUME, "mountPath": spec.mount_path}],
                        }
                    ],
                    "volumes": [{"name": VOLUME, "persistentVolumeClaim": {"claimName": spec.shared_pvc}}],
                },
            },
        }

    replicas = {"Master": replica(1)}
    if spec.num_nodes > 1:
        replicas["Worker"] = replica(spec.num_nodes - 1)
    return {
        "apiVersion": f"{PYTORCHJOB[0]}/{PYTORCHJOB[1]}",
        "kind": PYTORCHJOB[3],
        "metadata": _metadata(spec),
        # nprocPerNode makes the operator set PET_NNODES/PET_NODE_RANK/PET_MASTER_ADDR..., which torchrun reads.
        "spec": {"nprocPerNode": str(spec.procs_per_node), "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3}, "pytorchReplicaSpecs": replicas},
    }


def render(kind: str, spec: JobSpec) -> dict[str, Any]:
    if kind not in KINDS:
        raise JobSpecError(f"unknown job kind {kind!r}", fix=f"use one of {sorted(KINDS)}")
    return trainjob(spec) if kind == "trainjob" else pytorchjob(spec)


def job_name(run_id: str, task: str = "train") -> str:
    """A stable DNS-1123 name from the KFP run id: a retried launcher finds the job it created."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", f"kfp-mlops-{task}-{run_id}".lower()).strip("-")
    return cleaned[:63].rstrip("-")
