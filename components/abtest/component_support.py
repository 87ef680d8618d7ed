"""What the A/B components do between their parameters and the core: parse, resolve, open."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.abtest.apply import TrafficTarget
from kfp_mlops.components.abtest.core import GateRequest
from kfp_mlops.components.abtest.settings import AnalysisInputError, AnalysisSettings

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SETTINGS = ("control", "metric", "unit", "alpha", "method", "tuning", "min_effect", "correction", "missing_outcome", "cuped_days",
            "latency_margin", "latency_floor_ms", "error_margin", "max_p95_latency_ms", "min_units")  # fmt: skip


def parse_time(text: str, name: str) -> datetime | None:
    """An ISO time with a zone ('Z' works), or None for empty text."""
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AnalysisInputError(f"{name} {text!r} is not an ISO time", fix="e.g. 2026-11-28T10:00:00Z") from None
    if value.tzinfo is None:
        raise AnalysisInputError(f"{name} {text!r} has no timezone", fix="append Z for UTC, e.g. 2026-11-28T10:00:00Z")
    return value.astimezone(timezone.utc)


def build_request(params: dict[str, Any], environ: Mapping[str, str]) -> GateRequest:
    """The gate request from the component's parameters (every one checked by the core)."""
    settings = AnalysisSettings(**{k: params[k] for k in SETTINGS}, since=parse_time(params["since"], "since"), until=parse_time(params["until"], "until"))
    kube = None
    namespace = params["namespace"] or (NAMESPACE_FILE.read_text().strip() if NAMESPACE_FILE.exists() else "default")
    if params["mode"] == "apply" and params["target"] != "local":
        from kfp_mlops.components._shared.k8s_adapter import api_client

        kube = api_client()
    deployment = params["deployment_name"]
    if not deployment and params["target"] != "local":
        from kfp_mlops.components.deploy.core import DeployRequest, deployment_name

        deployment = deployment_name(DeployRequest(model_name=params["model_name"]))
    state_dir, log_sink = params["local_state_dir"], params["log_sink"]
    if params["target"] == "local":
        from kfp_mlops.components.deploy.core import DeployRequest, deployment_name, local_state_dir

        named = DeployRequest(model_name=params["model_name"], deployment=params["deployment_name"], state_dir=state_dir)
        state_dir = str(local_state_dir(named, deployment_name(named)))
        log_sink = log_sink or str(Path(state_dir) / "prediction-logs")  # where the local deploy logs by default
    if not log_sink:
        raise AnalysisInputError("no log_sink given", fix="pass the deployment's prediction log (the deploy step's log_sink: an s3:// or gs:// prefix or a shared folder)")
    traffic = TrafficTarget(params["target"], deployment, namespace, state_dir, kube)
    return GateRequest(
        model_name=params["model_name"],
        log_sink=log_sink,
        arms=params["arms"],
        settings=settings,
        mode=params["mode"],
        traffic=traffic,
        history=params["history"],
        next_weight=params["next_weight"],
        on_inconclusive=params["on_inconclusive"],
        wait_s=float(params["wait_minutes"]) * 60.0,
        poll_s=float(params["poll_seconds"]),
    )


def open_registry(tracking_uri: str, environ: Mapping[str, str]) -> Any:
    from kfp_mlops.components._shared.mlflow_adapter import require_existing_store, resolve_tracking_uri
    from kfp_mlops.components.register.registry import Registry

    uri = resolve_tracking_uri(tracking_uri, environ)
    require_existing_store(uri)
    return Registry(uri)


def read_table(uri: str) -> Any:
    """A Parquet or CSV file or folder (a KFP Dataset's path) as an Arrow table."""
    import pyarrow.dataset as ds

    path = Path(uri.removeprefix("file://"))
    if not path.exists():
        raise DataError(f"{uri} does not exist", fix="pass the test split of a training run (a Parquet or CSV file or folder)")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        raise DataError(f"{uri} holds no files", fix="pass the test split of a training run")
    fmt = "csv" if files[0].suffix.lower() in (".csv", ".gz") else "parquet"
    try:
        return ds.dataset([str(f) for f in files], format=fmt).to_table()
    except Exception as exc:  # noqa: BLE001 - any unreadable file, named for the user
        raise DataError(f"{uri} is not readable as {fmt} ({exc})", fix="pass a Parquet or CSV file or folder") from exc


def check_rollout(params: dict[str, Any]) -> None:
    """Every rollout setting, checked before the deploy step changes any traffic."""
    from kfp_mlops.components.abtest.core import design_of
    from kfp_mlops.components.abtest.settings import check_settings
    from kfp_mlops.components.deploy.core import TARGETS

    check_settings(AnalysisSettings(**{k: params[k] for k in SETTINGS if k in params}))
    if params["target"] not in TARGETS:
        raise AnalysisInputError(f"target {params['target']!r} is not one of {', '.join(TARGETS)}", fix="local to try it on this machine, kserve or seldon on a cluster")
    design = design_of(params["arms"])
    control = params["control"]
    challengers = [n for n in design if n != control]
    if control not in design or len(challengers) != 1 or design[challengers[0]] <= 0:
        raise AnalysisInputError(f"a canary needs the control {control!r} and one challenger with a weight above 0, got {design}", fix="e.g. --arms champion=90,challenger=10")
    steps = [design[challengers[0]], params["second_weight"], params["third_weight"]]
    if not all(0 < w < 100 for w in steps[1:]) or steps != sorted(set(steps)):
        raise AnalysisInputError(f"the challenger's weights per step {steps} must grow and stay between 1 and 99", fix="e.g. --arms champion=90,challenger=10 --second-weight 25 --third-weight 50")
    if not 1 <= params["requests_per_step"] <= 10_000_000 or params["users"] < 0:
        raise AnalysisInputError(
            f"requests_per_step {params['requests_per_step']} / users {params['users']} out of range", fix="requests_per_step from 1 to 10,000,000; users 0 (per-request assignment) or more"
        )
    replay = params["replay_uri"].strip()
    if replay:
        if params["unit"] == "user" and params["users"] < 2:
            raise AnalysisInputError("unit=user needs simulated users, and users is below 2", fix="pass --users 1000 (or more) with --unit user")
        table = read_table(replay)
        if params["label_column"] not in table.column_names:
            raise AnalysisInputError(f"the replay table has no label column {params['label_column']!r} (it has {table.column_names[:12]})", fix="pass --label-column with the table's label")
    elif params["target"] == "local" and params["wait_minutes"] <= 0:
        raise AnalysisInputError(
            "no traffic will reach the gates: no replay table and no time to wait for real requests", fix="pass --replay-uri (a labelled table, e.g. a test split) or --wait-minutes"
        )
