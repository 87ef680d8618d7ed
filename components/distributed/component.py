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
    max_epochs: int = 200,
    batch_size: int = 256,
    learning_rate: float = 0.001,
    hidden_layers: str = "128,128",
    dropout: float = 0.1,
    weight_decay: float = 0.0001,
    patience: int = 0,
    seed: int = 7,
    task: str = "auto",
    non_finite: str = "impute",
    early_stopping_metric: str = "",
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = "kfp-mlops",
    mlflow_secret: str = "",
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
        model: The job's model folder and contract, exactly as the train component writes them (register takes it as is).
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
        dropout: Dropout after each hidden layer.
        weight_decay: AdamW weight decay.
        patience: Epochs without validation improvement before stopping; 0 (auto): 16, or fewer on a large training split.
        seed: Seed of initialization, shuffling and dropout.
        task: auto, binary, multiclass or regression.
        non_finite: impute (to the training mean) or error on NaN and infinite feature values.
        early_stopping_metric: Validation metric to stop on; empty for roc_auc, log_loss or rmse by task.
        mlflow_tracking_uri: MLflow tracking server the job's rank 0 logs to; empty for this step's MLFLOW_TRACKING_URI (required: the model must be registrable).
        mlflow_experiment: MLflow experiment name.
        mlflow_secret: Secret with MLFLOW_TRACKING_USERNAME/PASSWORD (or _TOKEN) for the job's pods; empty when the server needs none.
        timeout_minutes: How long to wait for the job.
        kfp_run_id: KFP run id: names the job, so a retried step finds it.
    """
    import json
    import os
    from pathlib import Path

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.images import image as default_image
    from kfp_mlops.components._shared.mlflow_adapter import resolve_tracking_uri, wait_until_reachable
    from kfp_mlops.components._shared.model_artifact import ModelArtifact
    from kfp_mlops.components._shared.redact import redact_uri
    from kfp_mlops.components._shared.split_artifact import SplitInfo
    from kfp_mlops.components.distributed.core import launch
    from kfp_mlops.components.distributed.k8s import api_client
    from kfp_mlops.components.distributed.manifests import JobSpec, job_name

    with exit_on_error("train_distributed"):
        # Credentials never go into the job's arguments: the pods read them from mlflow_secret.
        tracking_uri = redact_uri(resolve_tracking_uri(mlflow_tracking_uri, os.environ))
        wait_until_reachable(tracking_uri)
        ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        name = job_name(kfp_run_id or Path(model.path).parent.name)
        spec = JobSpec(
            name=name,
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
            mlflow_secret=mlflow_secret,
        )
        split = SplitInfo.from_metadata(train.metadata)
        fingerprint = split.fingerprint
        tags = {"kfp.run_id": kfp_run_id, "kfp.job": name, **split.lineage_tags()}
        extra = [
            "--epochs", str(max_epochs), "--batch-size", str(batch_size), "--learning-rate", str(learning_rate), "--hidden", hidden_layers,
            "--dropout", str(dropout), "--weight-decay", str(weight_decay), "--patience", str(patience), "--seed", str(seed),
            "--task", task, "--non-finite", non_finite, "--early-stopping-metric", early_stopping_metric,
            "--gpu", "require" if gpus_per_node else "forbid",
            "--tracking-uri", tracking_uri, "--experiment", mlflow_experiment, "--tags", json.dumps({k: v for k, v in tags.items() if v}),
            "--attempt-key", name, "--fingerprint", fingerprint,
        ]  # fmt: skip
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
        contract = ModelArtifact.read(model.path)
        for metric, value in contract.metrics.items():
            if metric.startswith("test_"):
                metrics.log_metric(metric, value)
        model.metadata.update({**contract.to_metadata(), "job": outcome.name, "job_kind": job_kind, "world_size": num_nodes * procs_per_node})
        print(f"{job_kind} {outcome.name} finished in {outcome.seconds:.0f}s: {record.get('test_metrics')}")
