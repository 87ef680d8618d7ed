"""Launch the trainer as a multi-node job, wait for it, and bring its model back.

The launcher pod and the job's pods share a ReadWriteMany volume: the splits are
copied to ``<mount>/<job>/``, the job trains from there and writes the model beside
them, and the launcher copies the model into its output artifact. The job name comes
from the KFP run id, so a retried launcher finds and waits for the job it created.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from kfp_mlops.components._shared.atomic import atomic_path
from kfp_mlops.components.distributed.k8s import JobClient, JobError, JobOutcome
from kfp_mlops.components.distributed.manifests import KINDS, JobSpec, render

SPLITS = ("train", "validation", "test")


def stage_inputs(splits: dict[str, Path], job_dir: Path) -> None:
    """Copy the splits to the shared volume (skipped for files already there from a previous try)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        target = job_dir / f"{name}.parquet"
        if not target.exists() or target.stat().st_size != splits[name].stat().st_size:
            with atomic_path(target) as tmp:
                shutil.copyfile(splits[name], tmp)


def trainer_args(job_dir_in_pod: str, *, label: str, exclude: str, extra: list[str]) -> list[str]:
    return [
        "--train", f"{job_dir_in_pod}/train.parquet",
        "--validation", f"{job_dir_in_pod}/validation.parquet",
        "--test", f"{job_dir_in_pod}/test.parquet",
        "--label", label,
        "--exclude", exclude,
        "--model-dir", f"{job_dir_in_pod}/model",
        "--checkpoint-dir", f"{job_dir_in_pod}/checkpoints",
        *extra,
    ]  # fmt: skip


def launch(
    splits: dict[str, Path],
    *,
    kind: str,
    spec: JobSpec,
    label: str,
    exclude: str,
    extra_args: list[str],
    shared_dir: Path,
    model_dir: Path,
    api_client: Any,
    timeout_s: float,
    poll_s: float = 10.0,
) -> tuple[JobOutcome, dict[str, Any], dict[str, Any]]:
    """Stage, create, wait, collect. Returns the outcome, the manifest sent, and rank 0's result record."""
    group, version, plural, kind_name = KINDS[kind]
    job_dir = shared_dir / spec.name
    stage_inputs(splits, job_dir)
    spec = dataclasses.replace(spec, trainer_args=trainer_args(f"{spec.mount_path}/{spec.name}", label=label, exclude=exclude, extra=extra_args))
    manifest = render(kind, spec)
    client = JobClient(api_client, group, version, plural, kind_name)
    client.create(manifest)
    outcome = client.wait(spec.namespace, spec.name, timeout_s=timeout_s, poll_s=poll_s)
    if not outcome.succeeded:
        raise JobError(
            f"{kind_name} {spec.namespace}/{spec.name} failed: {outcome.reason} {outcome.message}".strip(), fix="read the job's pod logs (kubectl logs -l training.kubeflow.org/job-name=...)"
        )
    trained = job_dir / "model"
    if not trained.is_dir():
        raise JobError(f"{kind_name} {spec.name} reported success but wrote no model to {trained}", fix="check that every pod mounts the shared volume at the same path")
    with atomic_path(model_dir) as tmp:
        shutil.copytree(trained, tmp)
    record_path = job_dir / "result-rank0.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    return outcome, manifest, record
