"""A fake Kubeflow Pipelines v2beta1 API at the HTTP boundary, for what kfp.Client sends.

Every request body is parsed with the ``kfp-server-api`` models (the generated client
kfp itself uses) and checked as the real API server would; answers are what the
v2beta1 API returns, errors included (``{"error", "code", "message"}`` with gRPC codes).
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kfp_server_api


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data


def parse(body: bytes, model: str) -> Any:
    """The request body as the generated client's model (unknown fields are dropped, as the server's JSON decoder would refuse them)."""
    return kfp_server_api.ApiClient().deserialize(_Body(body), model)


class FakeKfpApi:
    """Experiments and recurring runs in memory; ``requests`` records (method, path, parsed body)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.experiments: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _error(self, status: int, code: int, message: str) -> None:
                self._answer(status, {"error": message, "code": code, "message": message, "details": []})

            def _authorized(self) -> bool:
                if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._error(401, 16, "Unauthenticated: missing or wrong bearer token")
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if not self._authorized():
                    return
                url = urlparse(self.path)
                api.requests.append(("GET", url.path, parse_qs(url.query)))
                if url.path == "/apis/v2beta1/healthz":
                    self._answer(200, {"multi_user": False})
                    return
                if url.path == "/apis/v2beta1/experiments":
                    wanted = json.loads(parse_qs(url.query).get("filter", ["{}"])[0]).get("predicates", [])
                    names = [p["stringValue"] for p in wanted if p.get("key") == "display_name"]
                    found = [e for e in api.experiments.values() if not names or e["display_name"] in names]
                    self._answer(200, {"experiments": found, "total_size": len(found)} if found else {})
                    return
                self._error(404, 5, f"Not found: {url.path}")

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlparse(self.path).path
                try:
                    payload = json.loads(body)
                except ValueError:
                    self._error(400, 3, "Invalid input error: the body is not JSON")
                    return
                if path == "/apis/v2beta1/experiments":
                    experiment = parse(body, "V2beta1Experiment")
                    api.requests.append(("POST", path, experiment))
                    if not experiment.display_name:
                        self._error(400, 3, "Invalid input error: Experiment name is empty")
                        return
                    created = {**payload, "experiment_id": str(uuid.uuid4()), "storage_state": "AVAILABLE"}
                    api.experiments[created["experiment_id"]] = created
                    self._answer(200, created)
                    return
                if path == "/apis/v2beta1/recurringruns":
                    run = parse(body, "V2beta1RecurringRun")
                    api.requests.append(("POST", path, run))
                    problem = api.recurring_run_problem(run)
                    if problem:
                        self._error(400, 3, f"Invalid input error: {problem}")
                        return
                    created = {**payload, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
                    api.recurring_runs[created["recurring_run_id"]] = created
                    self._answer(200, created)
                    return
                self._error(404, 5, f"Not found: {path}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def recurring_run_problem(self, run: Any) -> str:
        if run.experiment_id not in self.experiments:
            return f"experiment {run.experiment_id!r} does not exist"
        if not run.display_name:
            return "recurring run name is empty"
        if not run.pipeline_spec and not run.pipeline_version_reference:
            return "neither a pipeline spec nor a pipeline version"
        cron = run.trigger.cron_schedule.cron if run.trigger and run.trigger.cron_schedule else ""
        if run.trigger is None or (not cron and not run.trigger.periodic_schedule):
            return "a trigger (cron or periodic schedule) is required"
        if cron and len(cron.split()) != 6:
            return f"cron {cron!r} must have 6 fields (seconds first)"
        declared = run.pipeline_spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) if run.pipeline_spec else {}
        given = (run.runtime_config.parameters or {}) if run.runtime_config else {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            return f"unknown pipeline parameters {unknown}"
        missing = sorted(n for n, d in declared.items() if not d.get("isOptional") and n not in given)
        return f"missing pipeline parameters {missing}" if missing else ""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
