"""Runs of the fake KFP v2beta1 API: what ``POST /apis/v2beta1/runs`` accepts, and how a run progresses.

A run moves one step per ``GET /apis/v2beta1/runs/{id}``: PENDING when created, then its root DAG's
tasks start and finish level by level in dependency order (``TICK_SECONDS`` of synthetic time each),
and the run ends SUCCEEDED. ``fail_at[step] = message`` makes that step fail (the run FAILED, later
steps never start); a step in ``hang_at`` keeps running forever.

``run_details.task_details`` looks like the real API's, which reports one entry per Argo node: the
workflow itself, ``root-driver`` and ``root``, then per step ``<step>-driver``, ``<step>`` and its
``executor`` pod. Times not reached yet are the epoch, as a zero protobuf Timestamp renders.
"""

from __future__ import annotations

import datetime as dt
import random
import string
import uuid
from typing import Any

TICK_SECONDS = 20
EPOCH = "1970-01-01T00:00:00Z"
JSON_TYPES: dict[str, tuple[type, ...]] = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,), "LIST": (list,), "STRUCT": (dict,)}


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_problem(spec: Any) -> str:
    """Why a pipeline spec would be refused, or ''."""
    if not isinstance(spec, dict) or not isinstance(spec.get("pipelineInfo"), dict) or not isinstance(spec.get("root"), dict):
        return "the pipeline spec must be an object with pipelineInfo and root"
    if spec.get("schemaVersion") != "2.1.0":
        return f"unsupported schemaVersion {spec.get('schemaVersion')!r} (this backend runs 2.1.0)"
    return "" if spec["pipelineInfo"].get("name") else "the pipeline spec has no pipelineInfo.name"


def parameters_problem(spec: dict, given: dict[str, Any]) -> str:
    """Unknown, mistyped or missing root parameters, as the API server refuses them."""
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        return f"unknown pipeline parameters {unknown}"
    for name, value in given.items():
        kind = declared[name].get("parameterType", "STRING")
        if (isinstance(value, bool) and kind != "BOOLEAN") or not isinstance(value, JSON_TYPES.get(kind, (object,))):
            return f"parameter {name!r} must be {kind}, got {type(value).__name__} {value!r}"
    missing = sorted(n for n, d in declared.items() if not d.get("isOptional") and "defaultValue" not in d and n not in given)
    return f"missing pipeline parameters {missing}" if missing else ""


def dag_levels(spec: dict) -> list[list[str]]:
    """The root DAG's tasks grouped by dependency depth (each level runs after the one before)."""
    tasks = spec["root"].get("dag", {}).get("tasks", {})
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((level(d) for d in tasks[name].get("dependentTasks", [])), default=-1)
        return depth[name]

    for name in tasks:
        level(name)
    return [sorted(n for n, d in depth.items() if d == k) for k in range(max(depth.values(), default=-1) + 1)]


class FakeRuns:
    """Runs by id; ``fail_at`` and ``hang_at`` script what happens to named steps."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.fail_at: dict[str, str] = {}
        self.hang_at: set[str] = set()

    def create(self, payload: dict[str, Any], spec: dict, namespace: str) -> dict[str, Any]:
        run_id = str(uuid.uuid4())
        created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        self.records[run_id] = {
            "body": payload,
            "spec": spec,
            "namespace": namespace,
            "created": created,
            "polls": 0,
            "workflow": f"{spec['pipelineInfo']['name']}-{suffix}",
            "levels": dag_levels(spec),
            "task_ids": {},
        }
        return self.render(run_id)

    def poll(self, run_id: str) -> dict[str, Any] | None:
        record = self.records.get(run_id)
        if record is None:
            return None
        if self._state(record)[0] not in ("SUCCEEDED", "FAILED"):
            record["polls"] += 1
        return self.render(run_id)

    def _timeline(self, record: dict) -> tuple[dict[str, tuple[int, int | None, str]], str | None]:
        """Per started step (start tick, end tick or None while running, final state); the failed step."""
        steps: dict[str, tuple[int, int | None, str]] = {}
        tick = record["polls"]
        for number, level in enumerate(record["levels"]):
            start, end = 2 * number + 1, 2 * number + 2
            if tick < start:
                break
            for name in level:
                done = tick >= end and name not in self.hang_at
                steps[name] = (start, end if done else None, "FAILED" if done and name in self.fail_at else "SUCCEEDED")
            failed = [n for n in level if steps[n][1] is not None and steps[n][2] == "FAILED"]
            if failed:
                return steps, failed[0]
            if any(steps[n][1] is None for n in level):
                break
        return steps, None

    def _state(self, record: dict) -> tuple[str, int | None]:
        steps, failed = self._timeline(record)
        if failed:
            return "FAILED", steps[failed][1]
        if record["polls"] == 0:
            return "PENDING", None
        finished = len(steps) == sum(len(level) for level in record["levels"]) and all(end is not None for _, end, _ in steps.values())
        return ("SUCCEEDED", max((end or 0 for _, end, _ in steps.values()), default=0)) if finished else ("RUNNING", None)

    def render(self, run_id: str) -> dict[str, Any]:
        """The run as ``GET /apis/v2beta1/runs/{id}`` answers it."""
        record = self.records[run_id]
        created: dt.datetime = record["created"]

        def at(tick: int | None) -> str:
            return stamp(created + dt.timedelta(seconds=TICK_SECONDS * tick)) if tick is not None else EPOCH

        steps, failed = self._timeline(record)
        state, ended = self._state(record)
        body = record["body"]
        run: dict[str, Any] = {
            "run_id": run_id,
            "experiment_id": body.get("experiment_id", ""),
            "display_name": body.get("display_name", ""),
            "storage_state": "AVAILABLE",
            "runtime_config": body.get("runtime_config", {}),
            "service_account": body.get("service_account") or "pipeline-runner",
            "created_at": stamp(created),
            "scheduled_at": stamp(created),
            "finished_at": at(ended),
            "state": state,
            "state_history": [{"update_time": stamp(created), "state": "PENDING"}] + ([{"update_time": at(1), "state": "RUNNING"}] if record["polls"] else []),
        }
        # A run started from an uploaded version names it; one started from a spec carries the spec.
        if body.get("pipeline_version_reference"):
            run["pipeline_version_reference"] = body["pipeline_version_reference"]
        else:
            run["pipeline_spec"] = record["spec"]
        if failed:
            run["error"] = {"code": 2, "message": f"task '{failed}' failed: {self.fail_at[failed]}", "details": []}
        if not record["polls"]:
            return run
        nodes: dict[str, dict[str, Any]] = {}
        workflow = record["workflow"]
        run_state = state if state != "PENDING" else "RUNNING"
        nodes[workflow] = self._task(record, run_id, workflow, workflow, run_state, at(0), at(ended))
        nodes[f"{workflow}.root-driver"] = self._task(record, run_id, f"{workflow}.root-driver", "root-driver", "SUCCEEDED", at(0), at(0))
        nodes[f"{workflow}.root"] = self._task(record, run_id, f"{workflow}.root", "root", run_state, at(0), at(ended))
        for name, (start, end, final) in steps.items():
            step_state = final if end is not None else "RUNNING"
            node = f"{workflow}.root.{name}"
            nodes[f"{node}-driver"] = self._task(record, run_id, f"{node}-driver", f"{name}-driver", "SUCCEEDED", at(start), at(start))
            nodes[node] = self._task(record, run_id, node, name, step_state, at(start), at(end))
            nodes[f"{node}.executor"] = self._task(record, run_id, f"{node}.executor", "executor", step_state, at(start), at(end))
            if final == "FAILED" and end is not None:
                nodes[node]["error"] = {"code": 2, "message": self.fail_at[name], "details": []}
        # The API lists task details by Argo node name, not in execution order.
        run["run_details"] = {"pipeline_context_id": "1", "pipeline_run_context_id": "2", "task_details": [nodes[key] for key in sorted(nodes)]}
        return run

    def _task(self, record: dict, run_id: str, node: str, display_name: str, state: str, start: str, end: str) -> dict[str, Any]:
        task_id = record["task_ids"].setdefault(node, str(uuid.uuid4()))
        return {
            "run_id": run_id,
            "task_id": task_id,
            "display_name": display_name,
            "create_time": stamp(record["created"]),
            "start_time": start,
            "end_time": end if state not in ("RUNNING", "PENDING") else EPOCH,
            "state": state,
            "child_tasks": [{"pod_name": f"{node.split('.')[0]}-{abs(hash(node)) % 10**10}"}] if display_name == "executor" else [],
        }
