"""The rollout pipeline: a challenger goes to traffic in canary steps, each gated by the A/B analysis.

check (every setting, before any traffic moves) -> deploy (champion and challenger at the first weight) -> [traffic] -> gate 1 -> on continue:
next weight -> [traffic] -> gate 2 -> on continue: next weight -> [traffic] -> gate 3 (the
last: inconclusive means rollback). Any gate promotes (moves @champion, all traffic to the
winner) or rolls back (all traffic to the champion) as soon as the evidence says so. Each
gate analyses everything since the rollout began (each step a period at its own weights,
combined stratified) with always-valid statistics, so looking at every step keeps the
chance of a false winner at alpha.
The traffic steps replay a labelled table on this machine and do nothing without one
(on a cluster, real users are the traffic and the gates wait for it: wait_minutes).
"""

from kfp import dsl

from kfp_mlops.components.abtest.component import analyze_experiment, check_rollout, simulate_traffic
from kfp_mlops.components.deploy.component import deploy as deploy_step
from kfp_mlops.pipelines.platform import serving_arguments, with_mlflow_credentials


@dsl.pipeline(
    name="rollout",
    description="Canary rollout of the @challenger: deploy at a first weight, then steps gated by the A/B analysis (SRM, primary metric, guardrails, always-valid statistics), promoting or rolling back automatically.",
)
def rollout(
    model_name: str = "kfp-mlops-model",
    arms: str = "champion=90,challenger=10",
    second_weight: int = 25,
    third_weight: int = 50,
    metric: str = "accuracy",
    unit: str = "request",
    alpha: float = 0.05,
    min_effect: float = 0.0,
    latency_margin: float = 0.2,
    latency_floor_ms: float = 5.0,
    error_margin: float = 0.005,
    max_p95_latency_ms: float = 0.0,
    min_units: int = 200,
    wait_minutes: float = 0.0,
    target: str = "local",
    namespace: str = "",
    deployment_name: str = "",
    log_sink: str = "",
    mlflow_tracking_uri: str = "",
    local_state_dir: str = "",
    local_port: int = 0,
    replay_uri: str = "",
    label_column: str = "label",
    requests_per_step: int = 4000,
    users: int = 0,
    seed: int = 0,
):
    """Rolls the @challenger out in canary steps with the A/B analysis as the gate between steps.

    Args:
        model_name: Registered model name (champion and challenger are its aliases).
        arms: The first step: champion and challenger weights, e.g. champion=90,challenger=10.
        second_weight: The challenger's percent in the second step.
        third_weight: The challenger's percent in the third (last) step.
        metric: accuracy, conversion, mean_outcome, absolute_error or squared_error.
        unit: request or user (sticky X-Kfp-Mlops-Key; delta method per user).
        alpha: False-claim rate of the whole rollout.
        min_effect: Smallest improvement worth promoting (metric units).
        latency_margin: Guardrail: relative mean-latency increase tolerated.
        latency_floor_ms: Guardrail: absolute mean-latency increase tolerated in any case (ms).
        error_margin: Guardrail: absolute 5xx-rate increase tolerated.
        max_p95_latency_ms: Guardrail: p95 latency ceiling for the challenger (0 = none).
        min_units: Fewest units per arm before a promotion (a proven harm rolls back at any time).
        wait_minutes: How long each gate waits for a decision (real traffic); 0 = decide on what is there.
        target: local, kserve, seldon or seldon-v2.
        namespace: Kubernetes namespace; empty for the step's.
        deployment_name: Endpoint name; empty for the model name made DNS-safe.
        log_sink: Prediction log (s3://, gs:// or a shared folder); empty: local only, under local_state_dir.
        mlflow_tracking_uri: MLflow tracking URI; empty for the steps' MLFLOW_TRACKING_URI.
        local_state_dir: local: the deployment's state folder.
        local_port: local: the splitter's port; 0 picks a free one.
        replay_uri: A labelled table (e.g. a training run's test split) replayed as traffic at each step; empty = real traffic only (the local CLI fills in the latest training run's test split when the flag is left out).
        label_column: The replay table's label (reported as outcomes).
        requests_per_step: Requests replayed per step.
        users: Distinct simulated users (0 = per-request assignment).
        seed: Seeds the replay.
    """
    checked = check_rollout(
        arms=arms,
        second_weight=second_weight,
        third_weight=third_weight,
        target=target,
        replay_uri=replay_uri,
        label_column=label_column,
        requests_per_step=requests_per_step,
        users=users,
        wait_minutes=wait_minutes,
        metric=metric,
        unit=unit,
        alpha=alpha,
        min_effect=min_effect,
        latency_margin=latency_margin,
        latency_floor_ms=latency_floor_ms,
        error_margin=error_margin,
        max_p95_latency_ms=max_p95_latency_ms,
        min_units=min_units,
    ).set_caching_options(False)
    deployed = (
        deploy_step(
            model_name=model_name,
            arms=arms,
            target=target,
            mlflow_tracking_uri=mlflow_tracking_uri,
            deployment_name=deployment_name,
            namespace=namespace,
            log_sink=log_sink,
            local_state_dir=local_state_dir,
            local_port=local_port,
            **serving_arguments(),
        )
        .after(checked)
        .set_caching_options(False)
    )
    with_mlflow_credentials(deployed)
    endpoint = deployed.outputs["endpoint"]
    common = dict(
        model_name=model_name,
        log_sink=log_sink,
        metric=metric,
        unit=unit,
        alpha=alpha,
        min_effect=min_effect,
        latency_margin=latency_margin,
        latency_floor_ms=latency_floor_ms,
        error_margin=error_margin,
        max_p95_latency_ms=max_p95_latency_ms,
        min_units=min_units,
        mode="apply",
        wait_minutes=wait_minutes,
        target=target,
        deployment_name=deployment_name,
        namespace=namespace,
        local_state_dir=local_state_dir,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    traffic = dict(endpoint=endpoint, model_name=model_name, replay_uri=replay_uri, label_column=label_column, requests=requests_per_step, users=users)

    first_traffic = simulate_traffic(**traffic, seed=seed, step=1).set_caching_options(False)
    first = with_mlflow_credentials(analyze_experiment(**common, arms=arms, since=deployed.outputs["deployed_at"], next_weight=second_weight).after(first_traffic).set_caching_options(False))
    with dsl.If(first.outputs["Output"] == "continue", name="second-step"):
        second_traffic = simulate_traffic(**traffic, seed=seed, step=2).after(first).set_caching_options(False)
        second = with_mlflow_credentials(
            analyze_experiment(**common, arms=first.outputs["next_arms"], since=first.outputs["next_since"], history=first.outputs["next_history"], next_weight=third_weight)
            .after(second_traffic)
            .set_caching_options(False)
        )
        with dsl.If(second.outputs["Output"] == "continue", name="third-step"):
            third_traffic = simulate_traffic(**traffic, seed=seed, step=3).after(second).set_caching_options(False)
            with_mlflow_credentials(
                analyze_experiment(**common, arms=second.outputs["next_arms"], since=second.outputs["next_since"], history=second.outputs["next_history"], next_weight=0, on_inconclusive="rollback")
                .after(third_traffic)
                .set_caching_options(False)
            )
