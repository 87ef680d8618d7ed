"""The deploy pipeline: put registered versions of a model in front of traffic (one step, run alone or from the CLI)."""

from kfp import dsl

from kfp_mlops.components.deploy.component import deploy as deploy_step
from kfp_mlops.pipelines.platform import serving_arguments, with_mlflow_credentials


@dsl.pipeline(name="deploy", description="Serve registered versions of a model (champion, challenger, ...) at traffic weights: local processes behind a splitter, KServe or Seldon.")
def deploy(
    model_name: str = "kfp-mlops-model",
    arms: str = "champion=100",
    target: str = "local",
    mode: str = "apply",
    mlflow_tracking_uri: str = "",
    deployment_name: str = "",
    namespace: str = "",
    log_sink: str = "",
    feature_repo: str = "",
    canary_percent: int = -1,
    deployment_mode: str = "Serverless",
    local_state_dir: str = "",
    local_port: int = 0,
    timeout_minutes: int = 10,
):
    """Deploys registered versions of a model as the arms of one endpoint.

    Args:
        model_name: Registered model name in the MLflow Model Registry.
        arms: alias=weight pairs summing to 100, e.g. champion=50,challenger=50.
        target: local, kserve, seldon (Seldon Core v1) or seldon-v2.
        mode: apply, or dry-run (render and check only).
        mlflow_tracking_uri: MLflow tracking URI; empty for the step's MLFLOW_TRACKING_URI.
        deployment_name: Endpoint name; empty for the model name made DNS-safe.
        namespace: Kubernetes namespace; empty for the step's namespace.
        log_sink: Prediction-log location (s3://, gs:// prefix or a folder); empty = off on a cluster, under local_state_dir locally.
        feature_repo: Feast feature repo for lookups by entity key; empty = requests carry features.
        canary_percent: kserve: the challenger as a canary at this percent (Serverless only); -1 = off.
        deployment_mode: KServe Serverless or RawDeployment.
        local_state_dir: local: folder of the deployment's state and logs.
        local_port: local: the splitter's port; 0 picks a free one.
        timeout_minutes: How long the arms get to become ready.
    """
    deployed = deploy_step(
        model_name=model_name,
        arms=arms,
        target=target,
        mode=mode,
        mlflow_tracking_uri=mlflow_tracking_uri,
        deployment_name=deployment_name,
        namespace=namespace,
        log_sink=log_sink,
        feature_repo=feature_repo,
        canary_percent=canary_percent,
        deployment_mode=deployment_mode,
        local_state_dir=local_state_dir,
        local_port=local_port,
        timeout_minutes=timeout_minutes,
        **serving_arguments(),
    ).set_caching_options(False)
    with_mlflow_credentials(deployed)
