"""KFP components: the A/B analysis gate and the traffic simulator (thin wrappers over ``core`` and ``simulator``)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def analyze_experiment(
    model_name: str,
    log_sink: str,
    arms: str,
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    control: str = "champion",
    metric: str = "accuracy",
    unit: str = "request",
    alpha: float = 0.05,
    method: str = "always-valid",
    tuning: float = 5000.0,
    min_effect: float = 0.0,
    correction: str = "holm",
    missing_outcome: str = "exclude",
    cuped_days: float = 0.0,
    latency_margin: float = 0.2,
    latency_floor_ms: float = 5.0,
    error_margin: float = 0.005,
    max_p95_latency_ms: float = 0.0,
    min_units: int = 200,
    since: str = "",
    until: str = "",
    mode: str = "report",
    history: str = "",
    next_weight: int = 0,
    on_inconclusive: str = "hold",
    wait_minutes: float = 0.0,
    poll_seconds: float = 60.0,
    target: str = "local",
    deployment_name: str = "",
    namespace: str = "",
    local_state_dir: str = "",
    mlflow_tracking_uri: str = "",
) -> NamedTuple("ExperimentOutputs", [("Output", str), ("next_arms", str), ("next_since", str), ("next_history", str)]):
    """Analyses an A/B experiment from the deployment's prediction log (SRM, primary metric, guardrails, always-valid intervals) and decides: promote, rollback, continue or blocked.

    In apply mode a promotion moves @champion to the winner under the registry lock and sends it all traffic;
    a rollback (or a sample-ratio mismatch) sends all traffic back to the control. Branch on the decision with
    dsl.If(task.outputs["Output"] == "promote").

    Args:
        model_name: Registered model name (promotion moves its @champion).
        log_sink: The deployment's prediction log (folder, s3:// or gs:// prefix).
        arms: The design: deployed arms and weights, e.g. champion=90,challenger=10 (the SRM test expects these shares).
        report: HTML report: decision and why, per arm, SRM, guardrails, intervals over time, power.
        summary: The same in Markdown.
        metrics: Per-arm values, effects, intervals, p-values.
        control: The arm the challengers are compared with.
        metric: accuracy, conversion, mean_outcome, absolute_error or squared_error.
        unit: request (random per request) or user (sticky X-Kfp-Mlops-Key: delta method per user).
        alpha: False-claim rate of the whole experiment (all looks, challengers and metrics).
        method: always-valid (confidence sequences: look any time) or fixed-horizon (one planned look).
        tuning: The confidence sequence's N*: the total sample where it is narrowest.
        min_effect: Smallest improvement worth promoting (metric units).
        correction: holm, bh (Benjamini-Hochberg) or none, across challengers and metrics.
        missing_outcome: exclude requests without an outcome, or zero (no outcome means 0).
        cuped_days: user units: days before `since` whose outcomes are the CUPED covariate (0 = off).
        latency_margin: Guardrail: relative mean-latency increase tolerated (0.2 = 20%).
        latency_floor_ms: Guardrail: absolute mean-latency increase tolerated in any case (ms).
        error_margin: Guardrail: absolute 5xx-rate increase tolerated.
        max_p95_latency_ms: Guardrail: ceiling on the challenger's p95 latency (0 = none).
        min_units: Fewest units per arm before a promotion (a proven harm rolls back at any time).
        since: Window start, ISO time with zone (e.g. the deploy step's deployed_at); empty = the log's start.
        until: Window end; empty = now.
        mode: report (decide only) or apply (act on the decision).
        history: Earlier periods of this experiment at other weights (the previous gate's next_history); empty for the first.
        next_weight: apply: on continue, move the challenger to this percent (0 = stay).
        on_inconclusive: hold, or rollback (the last gate of a rollout).
        wait_minutes: Re-analyse until a decision or this long has passed.
        poll_seconds: Pause between looks while waiting.
        target: Where the arms run: local, kserve, seldon or seldon-v2 (apply mode).
        deployment_name: The deployment's name (cluster targets).
        namespace: Kubernetes namespace; empty for this pod's.
        local_state_dir: local: the deployment's state folder (the deploy step's local_state_dir).
        mlflow_tracking_uri: MLflow tracking URI; empty for this step's MLFLOW_TRACKING_URI.

    Returns:
        Output: The decision: promote, rollback, continue or blocked (named Output: kfp.local evaluates dsl.If only on an output of that name).
        next_arms: The next gate's design (empty when the experiment ended).
        next_since: The next gate's window start (empty when it ended).
        next_history: The next gate's history (this gate's periods included).
    """
    import os
    from collections import namedtuple
    from pathlib import Path

    from kfp_mlops.components._shared.entry import exit_on_error

    with exit_on_error("analyze_experiment"):
        from kfp_mlops.components.abtest.component_support import build_request, open_registry
        from kfp_mlops.components.abtest.core import run_gate
        from kfp_mlops.components.abtest.report import write_report

        request = build_request(
            dict(
                model_name=model_name,
                log_sink=log_sink,
                arms=arms,
                control=control,
                metric=metric,
                unit=unit,
                alpha=alpha,
                method=method,
                tuning=tuning,
                min_effect=min_effect,
                correction=correction,
                missing_outcome=missing_outcome,
                cuped_days=cuped_days,
                latency_margin=latency_margin,
                latency_floor_ms=latency_floor_ms,
                error_margin=error_margin,
                max_p95_latency_ms=max_p95_latency_ms,
                min_units=min_units,
                since=since,
                until=until,
                mode=mode,
                history=history,
                next_weight=next_weight,
                on_inconclusive=on_inconclusive,
                wait_minutes=wait_minutes,
                poll_seconds=poll_seconds,
                target=target,
                deployment_name=deployment_name,
                namespace=namespace,
                local_state_dir=local_state_dir,
            ),
            environ=os.environ,
        )
        registry = open_registry(mlflow_tracking_uri, os.environ) if mode == "apply" else None
        outcome = run_gate(request, registry=registry)
        values = write_report(outcome.result, outcome.applied, html_path=Path(report.path), markdown_path=Path(summary.path))
        for name, value in values.items():
            metrics.log_metric(name, value)
        decision = outcome.result.decision
        print(f"decision: {decision.action}" + (f" ({decision.challenger})" if decision.challenger else ""))
        for reason in decision.reasons:
            print(f"  {reason}")
        if outcome.applied is not None:
            for note in outcome.applied.notes:
                print(f"  applied: {note}")
    outputs = namedtuple("ExperimentOutputs", ["Output", "next_arms", "next_since", "next_history"])
    return outputs(decision.action, outcome.next_arms, outcome.next_since, outcome.next_history)


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def simulate_traffic(
    endpoint: str,
    model_name: str,
    replay_uri: str,
    label_column: str = "label",
    requests: int = 2000,
    users: int = 0,
    outcome_share: float = 1.0,
    concurrency: int = 4,
    seed: int = 0,
    step: int = 0,
) -> NamedTuple("TrafficOutputs", [("answered", int), ("outcomes", int)]):
    """Replays a labelled table (e.g. the test split) against an endpoint as users would, and reports each row's label as the request's outcome.

    For trying a rollout on one machine; on a cluster real traffic takes its place (skip this step).

    Args:
        endpoint: The deployment's URL (the deploy step's endpoint output).
        model_name: The served (registered) model name.
        replay_uri: Parquet or CSV file or folder with the model's input columns and the label; empty: send nothing (real traffic).
        label_column: The label column, reported as outcomes.
        requests: Requests to send (rows cycle in a seeded random order).
        users: Distinct user keys (X-Kfp-Mlops-Key); 0 sends none.
        outcome_share: Share of requests whose outcome is reported.
        concurrency: Requests in flight.
        seed: Seeds the order, the users and the reported outcomes.
        step: The rollout step: each step replays another seeded draw.

    Returns:
        answered: Requests answered 200.
        outcomes: Outcomes written.
    """
    from collections import namedtuple

    from kfp_mlops.components._shared.entry import exit_on_error

    outputs = namedtuple("TrafficOutputs", ["answered", "outcomes"])
    if not replay_uri.strip():
        print("no replay_uri: no simulated traffic (the gates read real traffic)")
        return outputs(0, 0)
    with exit_on_error("simulate_traffic"):
        from kfp_mlops.components.abtest.component_support import read_table
        from kfp_mlops.components.abtest.simulator import TrafficPlan, replay

        plan = TrafficPlan(endpoint, model_name, label_column, requests, users, outcome_share, concurrency, seed, step)
        result = replay(plan, read_table(replay_uri))
        print(f"sent {result.sent}, answered {result.answered}, failed {result.failed}, outcomes {result.outcomes}; per arm {result.per_arm}")
    return outputs(result.answered, result.outcomes)


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def check_rollout(
    arms: str,
    second_weight: int,
    third_weight: int,
    target: str,
    replay_uri: str,
    label_column: str,
    requests_per_step: int,
    users: int,
    wait_minutes: float,
    control: str = "champion",
    metric: str = "accuracy",
    unit: str = "request",
    alpha: float = 0.05,
    min_effect: float = 0.0,
    latency_margin: float = 0.2,
    latency_floor_ms: float = 5.0,
    error_margin: float = 0.005,
    max_p95_latency_ms: float = 0.0,
    min_units: int = 200,
):
    """Checks every rollout setting before the deploy step changes any traffic: the analysis settings, growing canary weights, the target, the replay table and its label.

    Args:
        arms: The first step: champion and challenger weights.
        second_weight: The challenger's percent in the second step.
        third_weight: The challenger's percent in the third step.
        target: local, kserve, seldon or seldon-v2.
        replay_uri: The labelled table replayed as traffic (empty: real traffic).
        label_column: The replay table's label.
        requests_per_step: Requests replayed per step.
        users: Distinct simulated users.
        wait_minutes: How long each gate waits for real traffic.
        control: The control arm.
        metric: The primary metric.
        unit: request or user.
        alpha: False-claim rate of the rollout.
        min_effect: Smallest improvement worth promoting.
        latency_margin: Guardrail: relative mean-latency increase tolerated.
        latency_floor_ms: Guardrail: absolute mean-latency increase tolerated (ms).
        error_margin: Guardrail: absolute 5xx-rate increase tolerated.
        max_p95_latency_ms: Guardrail: p95 ceiling (0 = none).
        min_units: Fewest units per arm before a promotion (a proven harm rolls back at any time).
    """
    from kfp_mlops.components._shared.entry import exit_on_error

    with exit_on_error("check_rollout"):
        from kfp_mlops.components.abtest.component_support import check_rollout as check

        check(dict(locals()))
        print("rollout settings checked: nothing is wrong before deploying")
