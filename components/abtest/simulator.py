"""A traffic simulator: replay a labelled table against an endpoint and report each outcome.

Stands in for users on a laptop: each row is one V1 request through the splitter (with a
user key when ``users`` > 0, so assignment is sticky per user), and the row's label is
reported as the request's outcome on ``/v1/feedback``, as a real application would once
it learns what happened. Only the columns the served model takes are sent (read from its
V2 metadata), so a featurize split with keys and label columns replays as it is.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError, DeployError

FEEDBACK_BATCH = 500
TIMEOUT_S = 30.0
# The servers write their prediction logs in batches, at least every 5 s by default
# (--log-flush-seconds): wait that long before the analysis reads them.
SETTLE_S = 6.0


@dataclass(frozen=True)
class TrafficPlan:
    """What to send.

    Attributes:
        endpoint: The deployment's URL (the local splitter, or a cluster endpoint reachable from here).
        model_name: The served model name (the registered name).
        label_column: The table's label: reported as each request's outcome.
        requests: How many requests (rows are replayed in a seeded random order, cycling).
        users: Distinct user keys (X-Kfp-Mlops-Key) drawn per request; 0 sends no key.
        outcome_share: Share of requests whose outcome is reported (the rest never learn it).
        concurrency: Requests in flight.
        seed: Seeds the row order, the users and which outcomes are reported.
        stream: Another independent draw under the same seed (each rollout step has its own).
    """

    endpoint: str
    model_name: str
    label_column: str
    requests: int = 2000
    users: int = 0
    outcome_share: float = 1.0
    concurrency: int = 4
    seed: int = 0
    stream: int = 0  # another independent draw for the same seed (a rollout step)


@dataclass
class TrafficResult:
    sent: int = 0
    answered: int = 0
    failed: int = 0
    outcomes: int = 0
    per_arm: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)


def check_plan(plan: TrafficPlan) -> None:
    if not plan.endpoint.startswith(("http://", "https://")):
        raise DataError(f"endpoint {plan.endpoint!r} is not an http(s) URL", fix="pass the URL the deploy step printed (its endpoint output)")
    if not 1 <= plan.requests <= 10_000_000 or plan.users < 0 or not 1 <= plan.concurrency <= 64:
        raise DataError(f"requests {plan.requests}, users {plan.users}, concurrency {plan.concurrency} out of range", fix="requests 1..10,000,000, users >= 0, concurrency 1..64")
    if not (0.0 <= plan.outcome_share <= 1.0 and math.isfinite(plan.outcome_share)):
        raise DataError(f"outcome_share {plan.outcome_share!r} is not a share", fix="pass a number from 0 to 1")


def replay(plan: TrafficPlan, table: pa.Table, *, session: Any = None, settle_s: float = SETTLE_S) -> TrafficResult:
    """Send ``plan.requests`` rows of ``table`` and report their labels as outcomes.

    Raises:
        DataError: the plan is wrong, the table lacks the label or a model input, or has no rows.
        DeployError: the endpoint does not answer or does not serve ``model_name``.
    """
    import requests

    check_plan(plan)
    http = session or requests.Session()
    base = plan.endpoint.rstrip("/")
    inputs = _model_inputs(http, base, plan.model_name)
    missing = [c for c in [plan.label_column, *inputs] if c not in table.column_names]
    if missing:
        raise DataError(f"the replay table lacks {missing[:10]} (the label and the model's inputs)", fix="replay the test split of the training run that produced these models")
    if table.num_rows == 0:
        raise DataError("the replay table has no rows", fix="replay the test split of a training run")
    rows = [{k: _json_value(v) for k, v in row.items()} for row in table.select(inputs).to_pylist()]
    labels = [_json_value(v) for v in table.column(plan.label_column).to_pylist()]
    rng = np.random.default_rng([plan.seed, plan.stream])
    order = rng.integers(0, len(rows), plan.requests)
    users = rng.integers(0, plan.users, plan.requests) if plan.users else None
    report = rng.random(plan.requests) < plan.outcome_share
    result, lock = TrafficResult(), threading.Lock()
    outcomes: list[dict[str, Any]] = []
    url = f"{base}/v1/models/{plan.model_name}:predict"

    def send(i: int) -> None:
        headers = {"X-Kfp-Mlops-Key": f"user-{users[i]}"} if users is not None else {}
        try:
            answer = http.post(url, json={"instances": [rows[order[i]]]}, headers=headers, timeout=TIMEOUT_S)
            status, arm, request_id = answer.status_code, answer.headers.get("x-kfp-mlops-arm", ""), answer.headers.get("x-request-id", "")
        except requests.RequestException:
            status, arm, request_id = 0, "", ""
        with lock:
            result.sent += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.answered += 1
                result.per_arm[arm] = result.per_arm.get(arm, 0) + 1
                label = labels[order[i]]
                if report[i] and request_id and label is not None:
                    outcomes.append({"request_id": request_id, "outcome": label})
            else:
                result.failed += 1

    with ThreadPoolExecutor(plan.concurrency) as pool:
        list(pool.map(send, range(plan.requests)))
    if result.answered == 0:
        raise DeployError(f"none of {result.sent} requests to {url} was answered (statuses {dict(Counter(result.statuses))})", fix="check the deployment: `kfp-mlops deployments` lists the local ones")
    for start in range(0, len(outcomes), FEEDBACK_BATCH):
        answer = http.post(f"{base}/v1/feedback", json={"outcomes": outcomes[start : start + FEEDBACK_BATCH]}, timeout=TIMEOUT_S)
        if answer.status_code != 200:
            raise DeployError(f"the endpoint refused outcomes: {answer.status_code} {answer.text[:300]}", fix="deploy with a prediction log (log_sink): outcomes are written beside it")
        result.outcomes += int(answer.json().get("written", 0))
    time.sleep(settle_s)
    return result


def _model_inputs(http: Any, base: str, model_name: str) -> list[str]:
    import requests

    try:
        answer = http.get(f"{base}/v2/models/{model_name}", timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise DeployError(f"the endpoint {base} does not answer ({type(exc).__name__})", fix="check the URL and that the deployment runs (`kfp-mlops deployments`)") from exc
    if answer.status_code != 200:
        raise DeployError(f"{base} does not serve model {model_name!r} ({answer.status_code})", fix="pass the registered model name the deployment serves")
    return [item["name"] for item in answer.json().get("inputs", [])]


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
