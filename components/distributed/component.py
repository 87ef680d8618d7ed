"""KFP component: train on several nodes as a TrainJob or PyTorchJob (thin wrapper over ``core.launch``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train_distributed(
    train: Input[Dataset],
    validation: Input[Dataset],
    test: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    label_column: str,
    shared_pvc: str,
    exclude_columns: str = "",
    job_kind: str = "trainjob",
    num_nodes: int = 2,
    procs_per_node: int = 1,
    gpus_per_node: int = 0,
    cpu: str = "2",
    memory: str = "4Gi",
    namespace: str = "",
    trainer_image: str = "",
    runtime: str = "torch-distributed",
    mount_path: str = "/mnt/shared",
    max_epochs: int = 20,
    batch_size: int = 256,
    learning_rate: float = 0.001,
    hidden_layers: str = "64,64",
    timeout_minutes: int = 240,
    kfp_run_id: str = "",
):
    """Runs the trainer on several nodes as a Kubeflow Trainer TrainJob (or a PyTorchJob on training-operator v1), waits for it, and returns its model.

    This step's pod must mount shared_pvc at mount_path (kfp.kubernetes.mount_pvc on
    the task), and its service account needs create/get on the job resource.

    Args:
        train: Training split.
        validation: Validation split.
        test: Test split.
        model: The job's model (model.pt2 and preprocessing.json), as the train component writes it.
        metrics: Test metrics of the distributed run.
        label_column: Column to predict.
        shared_pvc: ReadWriteMany PersistentVolumeClaim shared by this step and the job's pods.
        exclude_columns: Comma-separated columns that are not features.
        job_kind: trainjob (Kubeflow Trainer v2) or pytorchjob (training-operator v1).
        num_nodes: Pods of the job.
        procs_per_node: Training processes per pod (one per GPU).
        gpus_per_node: GPUs per pod, requested as nvidia.com/gpu; 0 for CPU.
        cpu: CPU per pod.
        memory: Memory per pod.
        namespace: Namespace of the job; empty for this pod's namespace.
        trainer_image: Image of the job's pods; empty for the kfp-mlops train image.
        runtime: ClusterTrainingRuntime of a TrainJob.
        mount_path: Where shared_pvc is mounted, in this pod and in the job's pods.
        max_epochs: Upper bound on epochs.
        batch_size: Rows per optimizer step per process.
        learning_rate: AdamW learning rate.
        hidden_layers: Hidden layer sizes, comma-separated.
        timeout_minutes: How long to wait for the job.
        kfp_run_id: KFP run id: names the job, so a retried step finds it.
    """
    from pathlib import Path

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.images import image as default_image
    from kfp_mlops.components.distributed.core import launch
    from kfp_mlops.components.distributed.k8s import api_client
    from kfp_mlops.components.distributed.manifests import JobSpec, job_name

    with exit_on_error("train_distributed"):
        ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        spec = JobSpec(
            name=job_name(kfp_run_id or Path(model.path).parent.name),
            namespace=namespace or (ns_file.read_text().strip() if ns_file.exists() else "default"),
            image=trainer_image or default_image("train"),
            trainer_args=[],
            num_nodes=num_nodes,
            procs_per_node=procs_per_node,
            gpus_per_node=gpus_per_node,
            cpu=cpu,
            memory=memory,
            shared_pvc=shared_pvc,
            mount_path=mount_path,
            runtime=runtime,
            labels={"pipelines.kubeflow.org/run-id": kfp_run_id[:63]} if kfp_run_id else {},
        )
        extra = ["--epochs", str(max_epochs), "--batch-size", str(batch_size), "--learning-rate", str(learning_rate), "--hidden", hidden_layers, "--gpu", "require" if gpus_per_node else "forbid"]
        outcome, _, record = launch(
            {"train": Path(train.path), "validation": Path(validation.path), "test": Path(test.path)},
            kind=job_kind,
            spec=spec,
            label=label_column,
            exclude=exclude_columns,
            extra_args=extra,
            shared_dir=Path(mount_path),
            model_dir=Path(model.path),
            api_client=api_client(),
            timeout_s=timeout_minutes * 60,
        )
        for name, value in record.get("test_metrics", {}).items():
            metrics.log_metric(f"test_{name}", value)
        model.metadata.update({"framework": "pytorch", "format": "torch.export", "job": outcome.name, "job_kind": job_kind, "world_size": num_nodes * procs_per_node, **{f"test_{k}": v for k, v in record.get("test_metrics", {}).items()}})
        print(f"{job_kind} {outcome.name} finished in {outcome.seconds:.0f}s: {record.get('test_metrics')}")
