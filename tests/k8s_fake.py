"""A fake Kubernetes API server at the HTTP boundary, and offline CRD validation.

No API server can run here. The fake speaks the REST paths the ``kubernetes`` client uses
(custom objects under /apis/GROUP/VERSION, core objects under /api/v1): GET, POST, DELETE and
PATCH with ``application/apply-patch+yaml`` (server-side apply: create when absent, else
replace spec/labels/annotations; 409 naming the other field manager without ``force``). Every
object written is validated against the real CRD schema (422, as strict field validation
rejects). A test plays the controller with ``mark_ready`` / ``mark_failed`` / ``set_status``,
or hooks ``on_create`` / ``on_apply``; ``requests`` records what the client sent.
"""

from __future__ import annotations

import copy
import functools
import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "fixtures" / "crds"
PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/?]+)(?:/(?P<name>[^/?]+))?(?:\?(?P<query>.*))?$")
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}


@functools.cache
def _crd(file: str) -> dict[str, Any]:
    return yaml.load((CRDS / file).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def crd_schema(file: str, version: str) -> dict[str, Any]:
    return copy.deepcopy(next(v for v in _crd(file)["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"])


def unknown_fields(node: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not declare (what strict field validation rejects)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or not isinstance(node, (dict, list)):
        return []
    if isinstance(node, list):
        items = schema.get("items", {})
        return [f for i, v in enumerate(node) for f in unknown_fields(v, items, f"{path}[{i}]")]
    props = schema.get("properties")
    if props is None:
        extra = schema.get("additionalProperties")
        return [f for k, v in node.items() for f in unknown_fields(v, extra, f"{path}.{k}")] if isinstance(extra, dict) else []
    found = []
    for key, value in node.items():
        if key not in props:
            found.append(f"{path}.{key}".lstrip("."))
        else:
            found += unknown_fields(value, props[key], f"{path}.{key}")
    return found


def validate_manifest(manifest: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Schema errors (types, required, enums, minimums) plus undeclared fields."""
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(body)]
    return errors + [f"unknown field {f}" for f in unknown_fields(body, schema)]


# (group, version, plural) -> (CRD file, version); None: a built-in kind, accepted as posted.
SCHEMAS: dict[tuple[str, str, str], tuple[str, str] | None] = {
    ("trainer.kubeflow.org", "v1alpha1", "trainjobs"): ("trainer.trainer.kubeflow.org_trainjobs.yaml", "v1alpha1"),
    ("kubeflow.org", "v1", "pytorchjobs"): ("training-operator-v1.kubeflow.org_pytorchjobs.yaml", "v1"),
    ("serving.kserve.io", "v1beta1", "inferenceservices"): ("kserve.serving.kserve.io_inferenceservices.yaml", "v1beta1"),
    ("serving.kserve.io", "v1alpha1", "inferencegraphs"): ("kserve.serving.kserve.io_inferencegraphs.yaml", "v1alpha1"),
    ("serving.kserve.io", "v1alpha1", "servingruntimes"): ("kserve.serving.kserve.io_servingruntimes.yaml", "v1alpha1"),
    ("machinelearning.seldon.io", "v1", "seldondeployments"): ("seldon-v1.machinelearning.seldon.io_seldondeployments.yaml", "v1"),
    ("mlops.seldon.io", "v1alpha1", "models"): ("seldon-v2.mlops.seldon.io_models.yaml", "v1alpha1"),
    ("mlops.seldon.io", "v1alpha1", "experiments"): ("seldon-v2.mlops.seldon.io_experiments.yaml", "v1alpha1"),
    ("", "v1", "serviceaccounts"): None,
    ("rbac.authorization.k8s.io", "v1", "roles"): None,
    ("rbac.authorization.k8s.io", "v1", "rolebindings"): None,
}


@dataclass
class Request:
    """One request the fake answered: method, resource, query, content type, and the RBAC verbs it needed."""

    method: str
    group: str
    plural: str
    namespace: str
    name: str
    query: dict[str, str]
    content_type: str
    status: int = 0
    verbs: list[str] = field(default_factory=list)


class FakeKubeAPI:
    """Objects by (plural, namespace, name).

    Hooks (run in a thread after the answer): ``on_create(obj)`` after a POST, ``on_apply(obj, created)``
    after an apply. Failure injection: ``fail_gets`` (that many GETs answer 503), ``fail_create_status``
    (every POST answers it), ``fail_next(method, status, times)``, ``uninstall(plural)`` (404 page not found).
    """

    def __init__(self, on_create: Callable[[dict[str, Any]], None] | None = None, on_apply: Callable[[dict[str, Any], bool], None] | None = None) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.managers: dict[tuple[str, str, str], str] = {}  # the field manager that owns each object's fields
        self.posted: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.on_create, self.on_apply = on_create, on_apply
        self.fail_gets = 0
        self.fail_create_status = 0
        self.failures: dict[str, list[int]] = {}
        self.uninstalled: set[str] = set()
        self.lock = threading.RLock()
        self._version = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any] | str) -> None:
                record = getattr(self, "record", None)
                if record is not None:  # before answering: the client may read the log as soon as it has the answer
                    record.status = status
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str, **extra: Any) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code, **extra})

            def _route(self) -> tuple[re.Match[str], tuple[str, str, str], Request] | None:
                m = PATH.match(self.path)
                if m is None:
                    self._send(404, "404 page not found")
                    return None
                group, version = m["group"] or "", m["core"] or m["version"]
                query = dict(urllib.parse.parse_qsl(m["query"] or ""))
                request = Request(self.command, group, m["plural"], m["ns"], m["name"] or "", query, self.headers.get("Content-Type", ""), verbs=[VERBS[self.command]])
                self.record = request
                with fake.lock:
                    fake.requests.append(request)
                    injected = fake.failures.get(self.command)
                    status = injected.pop(0) if injected else 0
                if status:
                    self._status(status, {403: "Forbidden", 401: "Unauthorized"}.get(status, "Injected"), f"injected HTTP {status} for {self.command} {m['plural']}")
                    return None
                resource = (group, version, m["plural"])
                if resource not in SCHEMAS or m["plural"] in fake.uninstalled:
                    self._send(404, "404 page not found")  # what the API server answers for a kind it does not serve
                    return None
                return m, resource, request

            def _body(self) -> Any:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                return yaml.safe_load(raw) if raw else None  # JSON is YAML: apply-patch+yaml bodies parse the same

            def _invalid(self, obj: dict[str, Any], resource: tuple[str, str, str]) -> bool:
                schema = SCHEMAS[resource]
                errors = validate_manifest(obj, crd_schema(*schema)) if schema else []
                if errors:
                    self._status(422, "Invalid", f"{obj.get('kind')} {obj.get('metadata', {}).get('name')!r} is invalid: " + "; ".join(errors))
                return bool(errors)

            def _not_found(self, m: re.Match[str]) -> None:
                self._status(404, "NotFound", f'{m["plural"]} "{m["name"]}" not found', details={"name": m["name"], "kind": m["plural"]})

            def do_POST(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                m, resource, request = routed
                obj = self._body()
                fake.posted.append(obj)
                if fake.fail_create_status:
                    self._status(fake.fail_create_status, "Forbidden", "denied")
                    return
                if self._invalid(obj, resource):
                    return
                key = (m["plural"], m["ns"], obj["metadata"]["name"])
                with fake.lock:
                    if key in fake.objects:
                        self._status(409, "AlreadyExists", f"{key} exists")
                        return
                    stored = fake._store(key, obj, request.query.get("fieldManager", "kubectl-create"))
                self._send(201, stored)
                if fake.on_create is not None:
                    threading.Thread(target=fake.on_create, args=(copy.deepcopy(stored),), daemon=True).start()

            def do_PATCH(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                m, resource, request = routed
                if request.content_type != "application/apply-patch+yaml":
                    self._status(415, "UnsupportedMediaType", f"the fake implements server-side apply only, not {request.content_type}")
                    return
                obj = self._body()
                manager, force = request.query.get("fieldManager", ""), request.query.get("force") == "true"
                if not manager:
                    self._status(400, "BadRequest", "PATCH with apply requires fieldManager")
                    return
                if obj.get("metadata", {}).get("name") != m["name"] or obj["metadata"].get("namespace", m["ns"]) != m["ns"]:
                    self._status(400, "BadRequest", "the name or namespace of the object does not match the request")
                    return
                if self._invalid(obj, resource):
                    return
                key = (m["plural"], m["ns"], m["name"])
                with fake.lock:
                    existing = fake.objects.get(key)
                    owner = fake.managers.get(key, "")
                    if existing is not None and owner != manager and not force and _desired(existing) != _desired(obj):
                        self._status(
                            409,
                            "Conflict",
                            f'Apply failed with 1 conflict: conflict with "{owner}": .spec',
                            details={"causes": [{"reason": "FieldManagerConflict", "message": f'conflict with "{owner}"', "field": ".spec"}]},
                        )
                        return
                    if existing is None:
                        request.verbs.append("create")  # apply that creates needs the create verb too
                    stored = fake._store(key, obj, manager)
                    fake.applied.append(copy.deepcopy(obj))
                self._send(201 if existing is None else 200, stored)
                if fake.on_apply is not None:
                    threading.Thread(target=fake.on_apply, args=(copy.deepcopy(stored), existing is None), daemon=True).start()

            def do_GET(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                m, _, _ = routed
                with fake.lock:
                    if fake.fail_gets > 0:
                        fake.fail_gets -= 1
                        self._status(503, "ServiceUnavailable", "try again")
                        return
                    obj = copy.deepcopy(fake.objects.get((m["plural"], m["ns"], m["name"])))
                if obj is None:
                    self._not_found(m)
                else:
                    self._send(200, obj)

            def do_DELETE(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                m, _, _ = routed
                with fake.lock:
                    obj = fake.objects.pop((m["plural"], m["ns"], m["name"]), None)
                    fake.managers.pop((m["plural"], m["ns"], m["name"]), None)
                if obj is None:
                    self._not_found(m)
                else:
                    self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": m["name"]}})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- storage (callers hold the lock) ----------------------------------------------------
    def _store(self, key: tuple[str, str, str], obj: dict[str, Any], manager: str) -> dict[str, Any]:
        self._version += 1
        old = self.objects.get(key)
        meta = obj.get("metadata", {})
        if old is None:
            stored = copy.deepcopy(obj)
            stored["metadata"] = {**copy.deepcopy(meta), "namespace": key[1], "generation": 1}
        else:
            stored = {**copy.deepcopy(obj), "metadata": copy.deepcopy(old["metadata"]), **({"status": old["status"]} if "status" in old else {})}
            for part in ("labels", "annotations"):
                stored["metadata"].pop(part, None)
                if part in meta:
                    stored["metadata"][part] = copy.deepcopy(meta[part])
            if _desired(old)["body"] != _desired(obj)["body"]:
                stored["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        stored["metadata"]["resourceVersion"] = str(self._version)
        self.objects[key] = stored
        self.managers[key] = manager
        return copy.deepcopy(stored)

    # -- playing the controller ---------------------------------------------------------------
    def put(self, obj: dict[str, Any], plural: str, *, manager: str = "kubectl") -> None:
        """Seed an object as if someone else had created it."""
        with self.lock:
            self._store((plural, obj["metadata"]["namespace"], obj["metadata"]["name"]), obj, manager)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.objects.get((plural, namespace, name)))

    def set_condition(self, plural: str, namespace: str, name: str, kind: str, reason: str = "", message: str = "", status: str = "True") -> None:
        """Set one condition (replacing an earlier one of the same type)."""
        with self.lock:
            conditions = self.objects[(plural, namespace, name)].setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != kind]
            conditions.append({"type": kind, "status": status, "reason": reason, "message": message})

    def set_status(self, plural: str, namespace: str, name: str, **fields: Any) -> None:
        with self.lock:
            self.objects[(plural, namespace, name)].setdefault("status", {}).update(copy.deepcopy(fields))

    def mark_ready(self, plural: str, namespace: str, name: str) -> None:
        """What a controller does once the current generation serves: Ready=True, observedGeneration, Seldon v1 state."""
        with self.lock:
            obj = self.objects[(plural, namespace, name)]
            self.set_condition(plural, namespace, name, "Ready", "Ready")
            obj["status"]["observedGeneration"] = obj["metadata"].get("generation", 1)
            if plural == "seldondeployments":
                obj["status"]["state"] = "Available"

    def mark_failed(self, plural: str, namespace: str, name: str, reason: str, message: str) -> None:
        with self.lock:
            obj = self.objects[(plural, namespace, name)]
            self.set_condition(plural, namespace, name, "Ready", reason, message, status="False")
            obj["status"]["observedGeneration"] = obj["metadata"].get("generation", 1)
            if plural == "seldondeployments":
                obj["status"].update(state="Failed", description=message)
            elif plural == "inferenceservices":
                obj["status"]["modelStatus"] = {"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": {"reason": reason, "message": message}}
            else:
                self.set_condition(plural, namespace, name, "Failed", reason, message)

    def fail_next(self, method: str, status: int, times: int = 1) -> None:
        with self.lock:
            self.failures.setdefault(method, []).extend([status] * times)

    def uninstall(self, plural: str) -> None:
        self.uninstalled.add(plural)

    def verbs_used(self) -> set[tuple[str, str, str]]:
        """(API group, resource, verb) of every request answered without an injected or authorization failure."""
        return {(r.group, r.plural, v) for r in self.requests if r.status not in (401, 403) for v in r.verbs}

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self.lock:
            self.objects.pop((plural, namespace, name), None)
            self.managers.pop((plural, namespace, name), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _desired(obj: dict[str, Any]) -> dict[str, Any]:
    """What an apply sets: every top-level field but metadata and status, plus labels and annotations."""
    meta = obj.get("metadata", {})
    return {"body": {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}, "labels": meta.get("labels", {}), "annotations": meta.get("annotations", {})}
