"""Multi-node training: manifests against the real CRDs, and the launcher against a fake API server."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.components.distributed.core import launch
from kfp_mlops.components.distributed.k8s import JobClient, JobError, api_client
from kfp_mlops.components.distributed.manifests import JobSpec, JobSpecError, job_name, pytorchjob, render, trainjob
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import Registry
from tests.k8s_fake import FakeKubeAPI, crd_schema, validate_manifest

TRAINJOB_SCHEMA = ("trainer.trainer.kubeflow.org_trainjobs.yaml", "v1alpha1")
PYTORCHJOB_SCHEMA = ("training-operator-v1.kubeflow.org_pytorchjobs.yaml", "v1")


def _spec(**kw) -> JobSpec:
    base = dict(name="kfp-mlops-train-run-1", namespace="ml", image="ghcr.io/kfp-mlops/kfp-mlops-train:0.1.0", trainer_args=["--label", "label"], shared_pvc="training-data")
    return JobSpec(**{**base, **kw})


@pytest.mark.parametrize("gpus", [0, 4])
def test_manifests_are_valid_against_the_crds(gpus):
    spec = _spec(num_nodes=3, procs_per_node=max(gpus, 1), gpus_per_node=gpus)
    tj, pj = trainjob(spec), pytorchjob(spec)
    assert validate_manifest(tj, crd_schema(*TRAINJOB_SCHEMA)) == []
    assert validate_manifest(pj, crd_schema(*PYTORCHJOB_SCHEMA)) == []
    assert tj["spec"]["trainer"]["numNodes"] == 3 and pj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    limits = tj["spec"]["trainer"]["resourcesPerNode"]["limits"]
    assert (limits.get("nvidia.com/gpu") == 4) if gpus else "nvidia.com/gpu" not in limits
    pod = pj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "training-data"


def test_the_validator_catches_mistakes():
    bad = trainjob(_spec())
    bad["spec"]["trainer"]["numNodez"] = 2
    bad["spec"]["trainer"]["numProcPerNode"] = "two"
    errors = validate_manifest(bad, crd_schema(*TRAINJOB_SCHEMA))
    assert any("numNodez" in e for e in errors) and any("numProcPerNode" in e for e in errors)
    missing = copy.deepcopy(pytorchjob(_spec()))
    del missing["spec"]["pytorchReplicaSpecs"]
    assert any("pytorchReplicaSpecs" in e for e in validate_manifest(missing, crd_schema(*PYTORCHJOB_SCHEMA)))


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"name": "Bad_Name"}, "DNS-1123"), ({"shared_pvc": ""}, "no shared volume"), ({"procs_per_node": 4, "gpus_per_node": 2}, "one process per GPU"), ({"num_nodes": 0}, "positive")],
)
def test_bad_job_specs(kw, message):
    with pytest.raises(JobSpecError, match=message):
        render("trainjob", _spec(**kw))


def test_job_name_is_stable_and_valid():
    name = job_name("3F2504E0-4F89-11D3-9A0C-0305E82C3301" * 2)
    assert name == job_name("3F2504E0-4F89-11D3-9A0C-0305E82C3301" * 2) and len(name) <= 63 and name.islower()


@pytest.fixture
def fake():
    api = FakeKubeAPI()
    yield api
    api.close()


def _client(fake: FakeKubeAPI, kind: str = "trainjob") -> JobClient:
    from kfp_mlops.components.distributed.manifests import KINDS

    return JobClient(api_client(fake.url), *KINDS[kind])


def test_wait_until_complete_with_transient_errors(fake):
    client = _client(fake)
    manifest = trainjob(_spec())
    client.create(manifest)
    fake.fail_gets = 2
    polls = []

    def sleep(_):
        polls.append(1)
        if len(polls) == 3:
            fake.set_condition("trainjobs", "ml", manifest["metadata"]["name"], "Complete", "JobComplete")

    outcome = client.wait("ml", manifest["metadata"]["name"], timeout_s=60, poll_s=0, sleep=sleep)
    assert outcome.succeeded and outcome.reason == "JobComplete" and len(polls) == 3


def test_failed_job_vanished_job_and_timeout(fake):
    client = _client(fake, "pytorchjob")
    manifest = pytorchjob(_spec())
    client.create(manifest)
    fake.set_condition("pytorchjobs", "ml", manifest["metadata"]["name"], "Failed", "BackoffLimitExceeded", "pod OOMKilled")
    outcome = client.wait("ml", manifest["metadata"]["name"], timeout_s=60, poll_s=0)
    assert not outcome.succeeded and "OOMKilled" in outcome.message
    other = pytorchjob(_spec(name="other"))
    client.create(other)
    with pytest.raises(JobError, match="did not finish within"):
        client.wait("ml", "other", timeout_s=0.05, poll_s=0.01)
    fake.delete("pytorchjobs", "ml", "other")
    with pytest.raises(JobError, match="disappeared"):
        client.wait("ml", "other", timeout_s=5, poll_s=0.01)


def test_create_is_idempotent_for_our_jobs_only(fake):
    client = _client(fake)
    manifest = trainjob(_spec())
    client.create(manifest)
    assert client.create(manifest)["metadata"]["name"] == manifest["metadata"]["name"], "a retried step reuses its job"
    foreign = copy.deepcopy(manifest)
    foreign["metadata"]["name"] = "someone-elses"
    foreign["metadata"]["labels"] = {}
    fake.objects[("trainjobs", "ml", "someone-elses")] = foreign
    with pytest.raises(JobError, match="not created by kfp-mlops"):
        client.create(foreign)
    fake.fail_create_status = 403
    with pytest.raises(JobError, match="RBAC"):
        client.create(trainjob(_spec(name="denied")))


def test_launch_end_to_end_with_a_fake_controller(tmp_path):
    """The fake controller runs the pods' command for real (one process), then marks the job Complete."""
    from tests.unit.test_train import _splits

    splits = _splits(tmp_path / "in", rows=6_000)
    shared = tmp_path / "shared"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    holder = {}

    def controller(obj):
        trainer = obj["spec"]["trainer"]
        cmd = [sys.executable, *trainer["command"][1:], *trainer["args"]]  # the pod would run torchrun; one process here
        proc = subprocess.run(cmd, capture_output=True, text=True)
        condition = "Complete" if proc.returncode == 0 else "Failed"
        holder["api"].set_condition("trainjobs", obj["metadata"]["namespace"], obj["metadata"]["name"], condition, message=proc.stderr[-500:])

    api = FakeKubeAPI(on_create=controller)
    holder["api"] = api
    try:
        outcome, manifest, record = launch(
            splits,
            kind="trainjob",
            spec=_spec(mount_path=str(shared)),
            label="label",
            exclude="entity_id,event_timestamp",
            extra_args=[
                "--epochs",
                "2",
                "--hidden",
                "16",
                "--gpu",
                "forbid",
                "--weight-decay",
                "0.001",
                "--non-finite",
                "error",
                "--early-stopping-metric",
                "log_loss",
                "--tracking-uri",
                uri,
                "--experiment",
                "distributed",
                "--tags",
                '{"kfp.run_id": "run-1"}',
                "--attempt-key",
                "job-1",
            ],
            shared_dir=shared,
            model_dir=tmp_path / "out" / "model",
            api_client=api_client(api.url),
            timeout_s=300,
            poll_s=0.2,
        )
    finally:
        api.close()
    assert outcome.succeeded, outcome.message
    assert (tmp_path / "out" / "model" / "model.pt2").exists() and record["test_metrics"]["roc_auc"] > 0.6
    assert validate_manifest(api.posted[0], crd_schema(*TRAINJOB_SCHEMA)) == []
    assert manifest["spec"]["trainer"]["args"][1] == f"{shared}/kfp-mlops-train-run-1/train.parquet"
    # The job's model is the train component's: its contract names the MLflow run, and it registers.
    contract = ModelArtifact.read(tmp_path / "out" / "model")
    run = Registry(uri).client.get_run(contract.mlflow_run_id)
    assert run.data.params["weight_decay"] == "0.001" and run.data.params["early_stopping_metric"] == "log_loss" and run.data.tags["kfp.run_id"] == "run-1"
    registered = register_model(tmp_path / "out" / "model", contract, splits["test"], registry=Registry(uri), name="distributed", thresholds=None, promote=True, tags={})
    assert registered.version.created and registered.promoted
