"""A fake Kubernetes API server at the HTTP boundary, and offline CRD validation.

No API server can run here. The fake speaks the custom-objects REST API the
``kubernetes`` client uses, validates every posted object against the real CRD
schema (rejecting with 422 as a strict API server would), and lets a test play the
controller by setting status conditions.
"""

from __future__ import annotations

import copy
import http.server
import json
import re
import threading
from pathlib import Path
from typing import Any, Callable

import jsonschema
import yaml

CRDS = Path(__file__).parent / "fixtures" / "crds"
PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/?]+))?")


def crd_schema(file: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


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


SCHEMAS = {
    ("trainer.kubeflow.org", "v1alpha1", "trainjobs"): ("trainer.trainer.kubeflow.org_trainjobs.yaml", "v1alpha1"),
    ("kubeflow.org", "v1", "pytorchjobs"): ("training-operator-v1.kubeflow.org_pytorchjobs.yaml", "v1"),
}


class FakeKubeAPI:
    """Objects by (plural, namespace, name); hooks: ``on_create(obj)`` plays the controller."""

    def __init__(self, on_create: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.posted: list[dict[str, Any]] = []
        self.on_create = on_create
        self.fail_gets = 0  # answer this many GETs with 503 first
        self.fail_create_status = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code})

            def do_POST(self) -> None:  # noqa: N802
                m = PATH.match(self.path)
                obj = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.posted.append(obj)
                if fake.fail_create_status:
                    self._status(fake.fail_create_status, "Forbidden", "denied")
                    return
                errors = validate_manifest(obj, crd_schema(*SCHEMAS[(m["group"], m["version"], m["plural"])]))
                if errors:
                    self._status(422, "Invalid", "; ".join(errors))
                    return
                key = (m["plural"], m["ns"], obj["metadata"]["name"])
                with fake.lock:
                    if key in fake.objects:
                        self._status(409, "AlreadyExists", f"{key} exists")
                        return
                    fake.objects[key] = copy.deepcopy(obj)
                self._send(201, obj)
                if fake.on_create is not None:
                    threading.Thread(target=fake.on_create, args=(copy.deepcopy(obj),), daemon=True).start()

            def do_GET(self) -> None:  # noqa: N802
                m = PATH.match(self.path)
                with fake.lock:
                    if fake.fail_gets > 0:
                        fake.fail_gets -= 1
                        self._status(503, "ServiceUnavailable", "try again")
                        return
                    obj = fake.objects.get((m["plural"], m["ns"], m["name"]))
                if obj is None:
                    self._status(404, "NotFound", "not found")
                else:
                    self._send(200, obj)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_condition(self, plural: str, namespace: str, name: str, kind: str, reason: str = "", message: str = "") -> None:
        with self.lock:
            obj = self.objects[(plural, namespace, name)]
            obj.setdefault("status", {}).setdefault("conditions", []).append({"type": kind, "status": "True", "reason": reason, "message": message})

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self.lock:
            self.objects.pop((plural, namespace, name), None)

    def close(self) -> None:
        self.server.shutdown()
