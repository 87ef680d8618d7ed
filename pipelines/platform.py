"""Cluster settings applied to tasks while a pipeline is built: Secrets, GPUs, placement, volumes.

Pipeline bodies call these on the tasks that need them; what they apply comes from the
:class:`~kfp_mlops.pipelines.options.ClusterOptions` the pipeline is being built with
(``options.active()``), never from the environment. Credentials never appear in the
YAML or as parameters: a Secret's name does, and the pod reads its keys (kfp-kubernetes,
the compiled file's second YAML document).
"""

from __future__ import annotations

from typing import Any

from kfp import dsl

from kfp_mlops.pipelines.options import CHECKPOINT_MOUNT, GPU_PRODUCT_LABEL, Placement, active

FEATURE_STORE_KEYS = {"PGPASSWORD": "PGPASSWORD", "REDIS_PASSWORD": "REDIS_PASSWORD"}
MLFLOW_KEYS = {"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}
S3_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
GCS_MOUNT = "/var/secrets/google"
GCS_KEY_FILE = "key.json"
GPU_RESOURCE = "nvidia.com/gpu"


def with_storage_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the configured storage Secrets into ``task`` (no-op when none is configured)."""
    options = active()
    if not (options.s3_secret or options.gcs_secret):
        return task
    from kfp import kubernetes

    if options.s3_secret:
        # Secret keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (MinIO: set AWS_ENDPOINT_URL on the task).
        kubernetes.use_secret_as_env(task, secret_name=options.s3_secret, secret_key_to_env=dict(S3_KEYS))
    if options.gcs_secret:
        # Secret key: key.json, a service-account key file.
        kubernetes.use_secret_as_volume(task, secret_name=options.gcs_secret, mount_path=GCS_MOUNT)
        task.set_env_variable("GOOGLE_APPLICATION_CREDENTIALS", f"{GCS_MOUNT}/{GCS_KEY_FILE}")
    return task


def with_feature_store_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the feature store Secret (keys PGPASSWORD, REDIS_PASSWORD) when one is configured."""
    secret = active().feature_store_secret
    if secret:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=dict(FEATURE_STORE_KEYS))
    return task


def with_mlflow_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the MLflow Secret (keys MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD) when one is configured."""
    secret = active().mlflow_secret
    if secret:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=dict(MLFLOW_KEYS))
    return task


def _place(task: dsl.PipelineTask, placement: Placement) -> None:
    from kfp import kubernetes

    for key, value in placement.node_selector:
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in placement.tolerations:
        kubernetes.add_toleration(
            task, key=toleration.key or None, operator=toleration.operator, value=toleration.value or None, effect=toleration.effect or None, toleration_seconds=toleration.toleration_seconds
        )


def on_training_nodes(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """GPUs, the training placement and the checkpoint volume for a training task."""
    options = active()
    if options.gpu_count:
        task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(options.gpu_count)
    if options.gpu_type or options.training != Placement() or options.checkpoint_pvc:
        from kfp import kubernetes

        if options.gpu_type:
            kubernetes.add_node_selector(task, label_key=GPU_PRODUCT_LABEL, label_value=options.gpu_type)
        _place(task, options.training)
        if options.checkpoint_pvc:
            kubernetes.mount_pvc(task, pvc_name=options.checkpoint_pvc, mount_path=CHECKPOINT_MOUNT)
    return task


def checkpoint_dir() -> str:
    """Where training checkpoints go: the mounted PVC when one is configured, else scratch space (empty)."""
    return CHECKPOINT_MOUNT if active().checkpoint_pvc else ""


def serving_arguments() -> dict[str, Any]:
    """The deploy step's placement arguments for the model-server pods it creates."""
    options = active()
    return {
        "node_selector": options.serving.node_selector_json(),
        "tolerations": options.serving.tolerations_json(),
        "image_pull_secret": options.image_pull_secret,
        "mlflow_secret": options.mlflow_secret,  # the model servers read the registry too
        "server_image": options.image("serve") if options.image_registry else "",
    }
