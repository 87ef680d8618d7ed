"""Following a run on Kubeflow Pipelines: one line per step as its state changes, and why a run failed."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Mapping

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.pipelines.kfp_remote import api_errors

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
# KFP's own machinery in a run's task details, never a user's step.
_INTERNAL_STEPS = ("root", "executor")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class RunTimeoutError(KfpMlopsError):
    """The run did not finish within the time the caller was willing to wait (it goes on on the cluster)."""

    exit_code = 3


def user_steps(spec: Mapping[str, Any] | None) -> set[str] | None:
    """Names of the container steps of a pipeline spec (DAG tasks such as conditions and loops left out)."""
    if not spec or "root" not in spec:
        return None
    components = spec.get("components", {})
    dags = [spec["root"].get("dag", {})] + [c["dag"] for c in components.values() if "dag" in c]
    return {name for dag in dags for name, task in dag.get("tasks", {}).items() if "dag" not in components.get(task.get("componentRef", {}).get("name", ""), {})}


def is_user_step(display_name: str, steps: set[str] | None) -> bool:
    """Whether a task detail is a user step, not KFP machinery (``root``, ``*-driver``, ``executor``)."""
    if steps is not None:
        return display_name in steps
    return bool(display_name) and display_name not in _INTERNAL_STEPS and not display_name.endswith("-driver")


def _time(value: Any) -> dt.datetime | None:
    # The API reports a time not reached yet as the epoch (a zero protobuf Timestamp).
    return value if isinstance(value, dt.datetime) and value > _EPOCH else None


def duration_text(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_lines(run: Any, seen: dict[str, str], steps: set[str] | None) -> list[str]:
    """One line per user step whose state changed since ``seen`` (updated in place), in start order."""
    tasks = [t for t in ((run.run_details.task_details if run.run_details else None) or []) if is_user_step(t.display_name or "", steps)]
    # Aligned on every step of the pipeline, so that the columns stay put from one poll to the next.
    width = max((len(n) for n in (steps or {t.display_name for t in tasks})), default=0)
    changed = []
    for task in tasks:
        key, state = task.task_id or task.display_name, task.state or "PENDING"
        if seen.get(key) == state:
            continue
        seen[key] = state
        start, end = _time(task.start_time) or _time(task.create_time), _time(task.end_time)
        took = f"  {duration_text((end - start).total_seconds())}" if state in TERMINAL_STATES and start and end else ""
        changed.append((start or _EPOCH, task.display_name, f"  {task.display_name:<{width}}  {state}{took}"))
    return [line for _, _, line in sorted(changed, key=lambda c: (c[0], c[1]))]


def wait(
    client: Any,
    run_id: str,
    *,
    timeout: float,
    poll_seconds: float = 10.0,
    on_progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> str:
    """Poll the run until it ends; ``on_progress`` gets a line each time a step changes state. Returns the final state.

    Raises ``RunTimeoutError`` after ``timeout`` seconds: the run itself goes on on the cluster.
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = clock() + timeout
    seen: dict[str, str] = {}
    steps: set[str] | None = None
    polls = 0
    while True:
        with api_errors(f"follow run {run_id}"):
            run = client.get_run(run_id)
            if not polls:
                steps = user_steps(run_spec(client, run))
        polls += 1
        for line in progress_lines(run, seen, steps):
            on_progress(line)
        state = run.state or "PENDING"
        if state in TERMINAL_STATES:
            return state
        if clock() >= deadline:
            raise RunTimeoutError(
                f"run {run_id} is still {state} after {duration_text(timeout)}; it goes on running on the cluster",
                fix=f"follow it in the Kubeflow Pipelines dashboard (Runs, run id {run_id}), or wait longer (--timeout-minutes)",
            )
        sleep(max(0.0, min(poll_seconds, deadline - clock())))


def run_spec(client: Any, run: Any) -> dict[str, Any] | None:
    """The pipeline spec a run runs: its own, or its pipeline version's (a run started from an upload)."""
    if run.pipeline_spec:
        return dict(run.pipeline_spec)
    reference = run.pipeline_version_reference
    if reference and reference.pipeline_id and reference.pipeline_version_id:
        return client.get_pipeline_version(reference.pipeline_id, reference.pipeline_version_id).pipeline_spec
    return None


def failure_summary(client: Any, run_id: str) -> str:
    """Which steps of an ended run failed, and the run's error message."""
    with api_errors(f"read run {run_id}"):
        run = client.get_run(run_id)
        steps = user_steps(run_spec(client, run))
    failed = sorted({t.display_name for t in ((run.run_details.task_details if run.run_details else None) or []) if t.state == "FAILED" and is_user_step(t.display_name or "", steps)})
    where = f" at step {', '.join(failed)}" if failed else ""
    message = redact_text(run.error.message) if run.error and run.error.message else ""
    return f"run {run_id} {run.state}{where}" + (f": {message}" if message else "")
