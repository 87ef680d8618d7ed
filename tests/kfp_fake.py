"""A fake Kubeflow Pipelines v2beta1 API at the HTTP boundary, for what kfp.Client sends.

Every JSON request body is parsed with the ``kfp-server-api`` models (the generated client kfp
itself uses) and checked as the real API server would; answers are what the v2beta1 API returns,
errors included: ``{"error", "code", "message", "details"}`` with gRPC codes from the gRPC gateway,
``{"error_message", "error_details"}`` from the multipart upload endpoints (which answer a taken
name with a bare 409, as the real server does).

``multi_user=True`` behaves like multi-user Kubeflow: healthz says so, experiments must name a
namespace, runs belong to their experiment's namespace, pipelines to the namespace they were
uploaded to (none: shared). ``unavailable=True`` answers everything 503, like a down API server.
Runs and their progress are in ``kfp_fake_runs``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kfp_server_api
import yaml

from tests.kfp_fake_runs import FakeRuns, parameters_problem, spec_problem, stamp

_VERSIONS = re.compile(r"^/apis/v2beta1/pipelines/([^/]+)/versions(?:/([^/]+))?$")
_RUN = re.compile(r"^/apis/v2beta1/runs/([^/:]+)$")


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data


def parse(body: bytes, model: str) -> Any:
    """The request body as the generated client's model (unknown fields are dropped, as the server's JSON decoder would refuse them)."""
    return kfp_server_api.ApiClient().deserialize(_Body(body), model)


class ApiRefusal(Exception):
    """An error answer: HTTP status, gRPC code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeKfpApi:
    """Experiments, pipelines, runs and recurring runs in memory.

    ``requests`` records (method, path, parsed body or query) of every request that passed
    authentication; ``authorizations`` the Authorization header of every request.
    """

    def __init__(self, token: str | None = None, *, multi_user: bool = False) -> None:
        self.token = token
        self.multi_user = multi_user
        self.unavailable = False
        self.experiments: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.runs = FakeRuns()
        self.requests: list[tuple[str, str, Any]] = []
        self.platform_specs: list[dict] = []  # the kfp-kubernetes documents runs were submitted with
        self.authorizations: list[str | None] = []
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

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.authorizations.append(self.headers.get("Authorization"))
                upload = url.path.startswith("/apis/v2beta1/pipelines/upload")
                try:
                    if api.unavailable:
                        raise ApiRefusal(503, 14, "upstream connect error or disconnect/reset before headers")
                    if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                        raise ApiRefusal(401, 16, "Unauthenticated: missing or wrong bearer token")
                    if method == "GET":
                        api.requests.append(("GET", url.path, query))
                        self._answer(200, api.get(url.path, query))
                    elif upload:
                        self._answer(200, api.upload(url.path, query, self.headers.get("Content-Type", ""), body))
                    else:
                        self._answer(200, api.post(url.path, body))
                except ApiRefusal as refusal:
                    if upload:
                        self._answer(refusal.status, {"error_message": refusal.message, "error_details": refusal.message})
                    else:
                        self._answer(refusal.status, {"error": refusal.message, "code": refusal.code, "message": refusal.message, "details": []})

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # -- GET ---------------------------------------------------------------------------------

    def get(self, path: str, query: dict[str, str]) -> dict:
        if path == "/apis/v2beta1/healthz":
            return {"multi_user": self.multi_user}
        if path == "/apis/v2beta1/experiments":
            namespace = self._namespace(query.get("namespace", ""))
            names = self._filter_names(query)
            found = [e for e in self.experiments.values() if (not self.multi_user or e.get("namespace") == namespace) and (not names or e["display_name"] in names)]
            return {"experiments": found, "total_size": len(found)} if found else {}
        if path == "/apis/v2beta1/pipelines":
            names = self._filter_names(query)
            namespace = query.get("namespace", "")
            found = [p for p in self.pipelines.values() if p.get("namespace", "") == namespace and (not names or p["display_name"] in names)]
            return {"pipelines": found, "total_size": len(found)} if found else {}
        versions = _VERSIONS.match(path)
        if versions:
            pipeline_id, version_id = versions.groups()
            if pipeline_id not in self.pipelines:
                raise ApiRefusal(404, 5, f"Not found: Pipeline {pipeline_id} not found")
            if version_id:
                version = self.versions.get(version_id)
                if version is None or version["pipeline_id"] != pipeline_id:
                    raise ApiRefusal(404, 5, f"Not found: PipelineVersion {version_id} not found")
                return version
            found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
            return {"pipeline_versions": found, "total_size": len(found)} if found else {}
        run = _RUN.match(path)
        if run:
            answer = self.runs.poll(run.group(1))
            if answer is None:
                raise ApiRefusal(404, 5, f"Not found: Run {run.group(1)} not found")
            return answer
        raise ApiRefusal(404, 5, f"Not found: {path}")

    def _filter_names(self, query: dict[str, str]) -> list[str]:
        try:
            predicates = json.loads(query.get("filter") or "{}").get("predicates", [])
        except ValueError as exc:
            raise ApiRefusal(400, 3, f"Invalid input error: filter is not JSON ({exc})") from exc
        return [p["stringValue"] for p in predicates if p.get("key") in ("display_name", "name") and p.get("operation") == "EQUALS"]

    def _namespace(self, namespace: str | None) -> str:
        if self.multi_user and not namespace:
            raise ApiRefusal(400, 3, "Invalid input error: namespace is required in multi-user mode")
        return namespace or ""

    # -- POST (JSON) -------------------------------------------------------------------------

    def post(self, path: str, body: bytes) -> dict:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise ApiRefusal(400, 3, "Invalid input error: the body is not JSON") from exc
        if path == "/apis/v2beta1/experiments":
            experiment = parse(body, "V2beta1Experiment")
            self.requests.append(("POST", path, experiment))
            if not experiment.display_name:
                raise ApiRefusal(400, 3, "Invalid input error: Experiment name is empty")
            namespace = self._namespace(experiment.namespace)
            if any(e["display_name"] == experiment.display_name and e.get("namespace", "") == namespace for e in self.experiments.values()):
                raise ApiRefusal(409, 6, f"Already exists: experiment {experiment.display_name!r}")
            created = {**payload, "namespace": namespace, "experiment_id": str(uuid.uuid4()), "storage_state": "AVAILABLE"}
            self.experiments[created["experiment_id"]] = created
            return created
        if path == "/apis/v2beta1/recurringruns":
            recurring = parse(body, "V2beta1RecurringRun")
            self.requests.append(("POST", path, recurring))
            problem = self.recurring_run_problem(recurring)
            if problem:
                raise ApiRefusal(400, 3, f"Invalid input error: {problem}")
            created = {**payload, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
            self.recurring_runs[created["recurring_run_id"]] = created
            return created
        if path == "/apis/v2beta1/runs":
            run = parse(body, "V2beta1Run")
            self.requests.append(("POST", path, run))
            return self.create_run(run, payload)
        raise ApiRefusal(404, 5, f"Not found: {path}")

    def create_run(self, run: Any, payload: dict) -> dict:
        if self.multi_user and not run.experiment_id:
            raise ApiRefusal(400, 3, "Invalid input error: a run needs an experiment (and so a namespace) in multi-user mode")
        if run.experiment_id and run.experiment_id not in self.experiments:
            raise ApiRefusal(404, 5, f"Not found: Experiment {run.experiment_id} not found")
        if not run.display_name:
            raise ApiRefusal(400, 3, "Invalid input error: The run name is empty")
        if bool(run.pipeline_spec) == bool(run.pipeline_version_reference):
            raise ApiRefusal(400, 3, "Invalid input error: give either a pipeline spec or a pipeline version reference")
        spec = run.pipeline_spec
        if isinstance(spec, dict) and "pipeline_spec" in spec:
            # A package with a kfp-kubernetes document: kfp.Client sends both, the server splits them.
            platform = spec.get("platform_spec")
            if set(spec) != {"pipeline_spec", "platform_spec"} or not isinstance(platform, dict) or set(platform) != {"platforms"}:
                raise ApiRefusal(400, 3, "Invalid input error: a wrapped spec holds exactly pipeline_spec and platform_spec (with platforms)")
            self.platform_specs.append(platform)
            spec = spec["pipeline_spec"]
        if run.pipeline_version_reference:
            version = self.versions.get(run.pipeline_version_reference.pipeline_version_id or "")
            if version is None:
                raise ApiRefusal(404, 5, "Not found: the referenced pipeline version does not exist")
            spec = version["pipeline_spec"]
        problem = spec_problem(spec) or parameters_problem(spec, (run.runtime_config.parameters or {}) if run.runtime_config else {})
        if problem:
            raise ApiRefusal(400, 3, f"Invalid input error: {problem}")
        namespace = self.experiments[run.experiment_id].get("namespace", "") if run.experiment_id else ""
        return self.runs.create(payload, spec, namespace)

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
        if not run.pipeline_spec:
            return ""
        given = (run.runtime_config.parameters or {}) if run.runtime_config else {}
        declared = run.pipeline_spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        unknown = sorted(set(given) - set(declared))
        if unknown:
            return f"unknown pipeline parameters {unknown}"
        missing = sorted(n for n, d in declared.items() if not d.get("isOptional") and n not in given)
        return f"missing pipeline parameters {missing}" if missing else ""

    # -- multipart uploads ---------------------------------------------------------------------

    def upload(self, path: str, query: dict[str, str], content_type: str, body: bytes) -> dict:
        filename, spec = self._uploaded_file(content_type, body)
        self.requests.append(("POST", path, {**query, "filename": filename}))
        now = stamp(dt.datetime.now(dt.timezone.utc))
        if path == "/apis/v2beta1/pipelines/upload":
            name = query.get("name") or filename.rsplit(".", 1)[0]
            namespace = query.get("namespace", "")
            if any(p["display_name"] == name and p.get("namespace", "") == namespace for p in self.pipelines.values()):
                raise ApiRefusal(409, 6, "Failed to create a pipeline and a pipeline version")
            pipeline = {"pipeline_id": str(uuid.uuid4()), "name": name, "display_name": name, "description": query.get("description", ""), "created_at": now, "namespace": namespace}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self._add_version(pipeline["pipeline_id"], name, query.get("description", ""), spec, now)
            return pipeline
        if path == "/apis/v2beta1/pipelines/upload_version":
            pipeline_id = query.get("pipelineid", "")
            if pipeline_id not in self.pipelines:
                raise ApiRefusal(400, 3, "Failed to create a pipeline version")
            name = query.get("name") or filename
            if any(v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()):
                raise ApiRefusal(409, 6, "Failed to create a pipeline version")
            return self._add_version(pipeline_id, name, query.get("description", ""), spec, now)
        raise ApiRefusal(404, 5, f"Not found: {path}")

    def _uploaded_file(self, content_type: str, body: bytes) -> tuple[str, dict]:
        if not content_type.startswith("multipart/form-data"):
            raise ApiRefusal(400, 3, "Failed to read pipeline from file")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "uploadfile"]
        if len(parts) != 1 or not parts[0].get_filename():
            raise ApiRefusal(400, 3, "Failed to read pipeline from file")
        filename = parts[0].get_filename() or ""
        if not filename.endswith((".yaml", ".yml")):
            raise ApiRefusal(400, 3, "Unexpected pipeline file format. Support .zip, .tar.gz or YAML.")
        try:
            spec = next(iter(yaml.safe_load_all(parts[0].get_payload(decode=True))))
        except (yaml.YAMLError, StopIteration) as exc:
            raise ApiRefusal(400, 3, "Failed to read a pipeline spec file") from exc
        problem = spec_problem(spec)
        if problem:
            raise ApiRefusal(400, 3, f"Invalid input error: {problem}")
        return filename, spec

    def _add_version(self, pipeline_id: str, name: str, description: str, spec: dict, now: str) -> dict:
        version: dict[str, Any] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "name": name,
            "display_name": name,
            "description": description,
            "created_at": now,
            "pipeline_spec": spec,
        }
        self.versions[version["pipeline_version_id"]] = version
        return version

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
