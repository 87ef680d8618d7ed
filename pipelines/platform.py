"""Cluster settings applied at compile time: where steps get storage credentials.

Credentials never appear in the YAML or as parameters. ``kfp-mlops compile
--s3-secret NAME`` / ``--gcs-secret NAME`` make the compiled pipeline mount a
Kubernetes Secret of that name into the steps that read storage, and
``--feature-store-secret NAME`` one into featurize (kfp-kubernetes, second YAML
document). Read when the pipeline module is imported, because
``@dsl.pipeline`` builds the graph at definition time.
"""

from __future__ import annotations

import os

from kfp import dsl

S3_SECRET_ENV = "KFP_MLOPS_S3_SECRET"
GCS_SECRET_ENV = "KFP_MLOPS_GCS_SECRET"
FEATURE_STORE_SECRET_ENV = "KFP_MLOPS_FEATURE_STORE_SECRET"
FEATURE_STORE_KEYS = {"PGPASSWORD": "PGPASSWORD", "REDIS_PASSWORD": "REDIS_PASSWORD"}
MLFLOW_SECRET_ENV = "KFP_MLOPS_MLFLOW_SECRET"
MLFLOW_KEYS = {"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
}
GCS_MOUNT = "/var/secrets/google"
GCS_KEY_FILE = "key.json"


def with_storage_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the configured storage Secrets into ``task`` (no-op when none is configured)."""
    s3_secret = os.environ.get(S3_SECRET_ENV, "").strip()
    gcs_secret = os.environ.get(GCS_SECRET_ENV, "").strip()
    if not (s3_secret or gcs_secret):
        return task
    from kfp import kubernetes

    if s3_secret:
        # Secret keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (MinIO: set AWS_ENDPOINT_URL on the task).
        kubernetes.use_secret_as_env(task, secret_name=s3_secret, secret_key_to_env=dict(S3_KEYS))
    if gcs_secret:
        # Secret key: key.json, a service-account key file.
        kubernetes.use_secret_as_volume(task, secret_name=gcs_secret, mount_path=GCS_MOUNT)
        task.set_env_variable("GOOGLE_APPLICATION_CREDENTIALS", f"{GCS_MOUNT}/{GCS_KEY_FILE}")
    return task


def with_feature_store_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the feature store Secret (keys PGPASSWORD, REDIS_PASSWORD) when one is configured."""
    secret = os.environ.get(FEATURE_STORE_SECRET_ENV, "").strip()
    if secret:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=dict(FEATURE_STORE_KEYS))
    return task


def with_mlflow_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the MLflow Secret (keys MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD) when one is configured."""
    secret = os.environ.get(MLFLOW_SECRET_ENV, "").strip()
    if secret:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=dict(MLFLOW_KEYS))
    return task
