"""KFP component: put registered versions in front of traffic (thin wrapper over ``core.deploy``)."""

from kfp import dsl
from kfp.dsl import Artifact, Markdown, Output, OutputPath

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def deploy(
    model_name: str,
    manifests: Output[Artifact],
    summary: Output[Markdown],
    endpoint: OutputPath(str),
    deployed_at: OutputPath(str),
    arms: str = "champion=100",
    target: str = "local",
    mode: str = "apply",
    mlflow_tracking_uri: str = "",
    deployment_name: str = "",
    namespace: str = "",
    server_image: str = "",
    log_sink: str = "",
    feature_repo: str = "",
    canary_percent: int = -1,
    deployment_mode: str = "Serverless",
    mlflow_secret: str = "",
    service_account: str = "",
    cpu: str = "1",
    memory: str = "2Gi",
    gpu_count: int = 0,
    node_selector: str = "",
    tolerations: str = "",
    image_pull_secret: str = "",
    merge_same_version: bool = False,
    local_state_dir: str = "",
    local_port: int = 0,
    timeout_minutes: int = 10,
):
    """Deploys registered versions of a model as the arms of one endpoint, with traffic weights, and waits until they are ready.

    Aliases are pinned to the versions they name at deploy time. Every arm's model is
    loaded (file hashes checked, no code run) before anything changes; on a cluster,
    an arm that does not become ready restores the previous state.

    Args:
        model_name: Registered model name (as given to register).
        manifests: What was deployed: Kubernetes manifests (manifests.yaml) or the local plan (local.yaml).
        summary: Arms, versions, weights and the endpoint.
        endpoint: The endpoint URL (local splitter or cluster service); empty in dry-run.
        deployed_at: When the arms started serving at these weights (ISO time, UTC): where an experiment's window starts.
        arms: alias=weight pairs summing to 100, e.g. champion=90,challenger=10; a version number also works (7=50,8=50).
        target: local (server processes behind a local splitter), kserve, seldon (Seldon Core v1) or seldon-v2 (Model + Experiment, MLServer runtime).
        mode: apply, or dry-run (render and check only).
        mlflow_tracking_uri: MLflow tracking URI; empty for this step's MLFLOW_TRACKING_URI.
        deployment_name: Endpoint name; empty for the model name made DNS-safe.
        namespace: Kubernetes namespace; empty for this pod's namespace.
        server_image: Model-server image; empty for the kfp-mlops serve image of this version.
        log_sink: Prediction-log location (s3://, gs:// prefix or a folder); empty = off on a cluster, a folder under local_state_dir locally.
        feature_repo: Feast feature repo the server reads features from when a request carries only entity keys; empty = requests carry features.
        canary_percent: kserve: serve the challenger as a canary at this percent (Serverless mode only); -1 = off.
        deployment_mode: KServe deployment mode: Serverless or RawDeployment.
        mlflow_secret: Secret with MLFLOW_TRACKING_USERNAME/PASSWORD (or _TOKEN) for the server pods.
        service_account: Service account of the server pods; empty for the namespace default.
        cpu: CPU per server pod.
        memory: Memory per server pod.
        gpu_count: GPUs (nvidia.com/gpu limit) for each arm's server container; 0 = none. Not for seldon-v2 (set it on your MLServer Server); ignored locally.
        node_selector: JSON object of node label -> value for each arm's server pod, e.g. {"nvidia.com/gpu.product": "NVIDIA-L4"}; empty = none. Not for seldon-v2; ignored locally.
        tolerations: JSON list of Kubernetes tolerations (key, operator Exists|Equal, value, effect NoSchedule|PreferNoSchedule|NoExecute, tolerationSeconds) for each arm's server pod; empty = none. Not for seldon-v2; ignored locally.
        image_pull_secret: Secret in the namespace for pulling server_image from a private registry; empty = none. Not for seldon-v2; ignored locally.
        merge_same_version: Serve arms whose aliases resolve to the same registered version once, as the first named arm with their weights added (e.g. right after the first training run, when one version is both champion and challenger).
        local_state_dir: local: folder of the deployment's state and logs; empty for ~/.kfp-mlops/deployments/NAME.
        local_port: local: the splitter's port; 0 picks a free one (the endpoint output says which).
        timeout_minutes: How long the arms get to become ready.
    """
    import os
    from datetime import datetime, timezone
    from pathlib import Path

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.mlflow_adapter import resolve_tracking_uri
    from kfp_mlops.components._shared.redact import redact_uri
    from kfp_mlops.components.deploy.core import DeployRequest
    from kfp_mlops.components.deploy.core import deploy as run_deploy
    from kfp_mlops.components.deploy.report import write_outputs
    from kfp_mlops.components.register.registry import Registry

    with exit_on_error("deploy"):
        tracking_uri = resolve_tracking_uri(mlflow_tracking_uri, os.environ)
        ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        request = DeployRequest(
            model_name=model_name,
            arms=arms,
            target=target,
            mode=mode,
            tracking_uri=redact_uri(tracking_uri),
            deployment=deployment_name,
            namespace=namespace or (ns_file.read_text().strip() if ns_file.exists() else "default"),
            image=server_image,
            log_sink=log_sink,
            feature_repo=feature_repo,
            canary_percent=canary_percent,
            deployment_mode=deployment_mode,
            mlflow_secret=mlflow_secret,
            service_account=service_account,
            cpu=cpu,
            memory=memory,
            gpu_count=gpu_count,
            node_selector=node_selector,
            tolerations=tolerations,
            image_pull_secret=image_pull_secret,
            merge_same_version=merge_same_version,
            state_dir=local_state_dir,
            port=local_port,
            timeout_s=timeout_minutes * 60.0,
        )
        kube = None
        if target != "local" and mode == "apply":
            from kfp_mlops.components._shared.k8s_adapter import api_client

            kube = api_client()
        result = run_deploy(request, registry=Registry(tracking_uri), kube_api_client=kube)
        write_outputs(result, request, manifests_dir=Path(manifests.path), summary_path=Path(summary.path), endpoint_path=Path(endpoint))
        Path(deployed_at).write_text(datetime.now(timezone.utc).isoformat() if result.applied else "")
        manifests.metadata.update({"target": target, "mode": mode, "endpoint": result.endpoint, "arms": {a.name: {"version": a.version, "weight": a.weight} for a in result.arms}})
