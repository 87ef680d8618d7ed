"""The one Kubernetes adapter: get, create, server-side apply, delete, wait, and apply-all-or-roll-back.

Every call goes through the official ``kubernetes`` client's ``ApiClient.call_api`` (in-cluster
service account, or a kubeconfig; tests point it at a fake API server). One request path for
custom and built-in kinds alike, because ``CustomObjectsApi.patch_namespaced_custom_object`` of
client 30.x hard-codes ``application/merge-patch+json`` and cannot send a server-side apply.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops.components._shared.errors import DeployError, KfpMlopsError

log = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
OURS = "kfp-mlops"
APPLY_PATCH = "application/apply-patch+yaml"
TRANSIENT = {429, 500, 502, 503, 504}
RBAC_HINT = "for deploy, apply the Role and RoleBinding that kfp_mlops.components.deploy.rbac.render_rbac renders"


@dataclass(frozen=True)
class Kind:
    """A resource type we manage: where it lives, what installs it, how it reports readiness."""

    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    provider: str  # what to install when the API server does not know the kind
    readiness: str = "conditions"  # conditions | seldon-state | exists | job

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k
    for k in (
        Kind("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", "KServe (serving.kserve.io CRDs and controller)"),
        Kind("serving.kserve.io", "v1alpha1", "inferencegraphs", "InferenceGraph", "KServe (serving.kserve.io CRDs and controller)"),
        Kind("serving.kserve.io", "v1beta1", "inferencegraphs", "InferenceGraph", "KServe (serving.kserve.io CRDs and controller)"),
        Kind("machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment", "Seldon Core v1 (machinelearning.seldon.io)", "seldon-state"),
        Kind("mlops.seldon.io", "v1alpha1", "models", "Model", "Seldon Core v2 (mlops.seldon.io)"),
        Kind("mlops.seldon.io", "v1alpha1", "experiments", "Experiment", "Seldon Core v2 (mlops.seldon.io)"),
        Kind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", "the Kubeflow Trainer (TrainJob)", "job"),
        Kind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", "the training-operator (PyTorchJob)", "job"),
        Kind("", "v1", "serviceaccounts", "ServiceAccount", "nothing (a core kind)", "exists"),
        Kind("rbac.authorization.k8s.io", "v1", "roles", "Role", "nothing (a core kind)", "exists"),
        Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", "nothing (a core kind)", "exists"),
    )
}
# Terminal condition types of the job kinds: (success, failure).
JOB_DONE = {"TrainJob": ("Complete", "Failed"), "PyTorchJob": ("Succeeded", "Failed")}


def kind_for(api_version: str, kind: str) -> Kind:
    found = KINDS.get((api_version, kind))
    if found is None:
        known = ", ".join(sorted(f"{k}/{v}" for v, k in KINDS))
        raise KfpMlopsError(f"kfp-mlops does not manage {kind} ({api_version})", fix=f"use one of: {known}")
    return found


@dataclass(frozen=True)
class ResourceRef:
    """One namespaced object: its kind, namespace and name."""

    kind: Kind
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> ResourceRef:
        meta = manifest.get("metadata", {})
        if not meta.get("name") or not meta.get("namespace"):
            raise KfpMlopsError(f"a {manifest.get('kind', '?')} manifest has no metadata.name or metadata.namespace", fix="render manifests with both set")
        return cls(kind_for(manifest.get("apiVersion", ""), manifest.get("kind", "")), meta["namespace"], meta["name"])

    @property
    def path(self) -> str:
        root = f"/apis/{self.kind.group}/{self.kind.version}" if self.kind.group else f"/api/{self.kind.version}"
        return f"{root}/namespaces/{self.namespace}/{self.kind.plural}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class JobOutcome:
    name: str
    succeeded: bool
    reason: str
    message: str
    seconds: float


@dataclass(frozen=True)
class ApplyOutcome:
    """What apply_all_or_rollback changed; every resource is Ready when it returns."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    seconds: float = 0.0


def api_client(host: str = "") -> Any:
    """In-cluster credentials, or the kubeconfig; ``host`` overrides the server (tests)."""
    from kubernetes import client, config

    if host:
        configuration = client.Configuration()
        configuration.host = host
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise DeployError(
                f"no Kubernetes cluster is reachable from here: not in a pod, and no usable kubeconfig ({exc})",
                fix="run the step on the cluster (its service account), set KUBECONFIG, or use target=local / mode=dry-run",
            ) from None
    return client.ApiClient()


class KubeClient:
    """get / create / apply / delete / wait on the kinds in ``KINDS``.

    ``error`` is the exception class raised (DeployError; the training launcher passes JobError).
    Transient API answers (429, 5xx) are retried ``retries`` times with a short backoff.
    """

    def __init__(self, api_client: Any, *, error: type[KfpMlopsError] = DeployError, retries: int = 5, backoff_s: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api_client
        self.error = error
        self.retries, self.backoff_s, self.sleep = retries, backoff_s, sleep

    # -- one request, with retries and error translation ------------------------------------
    def _call(self, method: str, ref: ResourceRef, verb: str, *, body: Any = None, query: Iterable[tuple[str, str]] = (), content_type: str = "application/json", collection: bool = False) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        path = ref.path.rsplit("/", 1)[0] if collection else ref.path
        for attempt in range(self.retries + 1):
            try:
                return self.api.call_api(
                    path,
                    method,
                    query_params=list(query),
                    header_params={"Accept": "application/json", "Content-Type": content_type},
                    body=body,
                    response_type="object",
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=60,
                )
            except ApiException as exc:
                if exc.status not in TRANSIENT or attempt == self.retries:
                    raise _ApiFailure(exc.status or 0, exc.reason or "", _status_message(exc), exc.body or "") from exc
                log.warning("%s %s: HTTP %s, retrying", verb, ref, exc.status)
            except HTTPError as exc:  # connection refused, DNS, TLS: the API server cannot be reached
                if attempt == self.retries:
                    raise self.error(f"cannot reach the Kubernetes API server to {verb} {ref}: {exc}", fix="check the cluster is up and the pod's network policy allows the API server") from exc
                log.warning("%s %s: %s, retrying", verb, ref, exc)
            self.sleep(min(self.backoff_s * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    def _fail(self, failure: _ApiFailure, verb: str, ref: ResourceRef) -> KfpMlopsError:
        status, detail = failure.status, failure.message or failure.reason
        problem = f"{verb} {ref} failed: HTTP {status} {detail}".rstrip()
        if status in (401, 403):
            fix = f"grant the step's service account '{verb}' on {ref.kind.plural}.{ref.kind.group or 'core'} in namespace {ref.namespace} (RBAC); {RBAC_HINT}"
        elif status == 404:
            fix = f"install {ref.kind.provider} in the cluster: the API server does not know {ref.kind.kind} {ref.kind.api_version}"
        elif status == 422:
            fix = "the API server rejected these fields of the manifest (see the message); fix the inputs that produced them"
        elif status == 409 and (manager := _conflicting_manager(detail)):
            fix = f"the fields are owned by field manager '{manager}': apply with force=True to take them over, or change them through '{manager}'"
        else:
            fix = "check the Kubernetes API server and retry"
        return self.error(problem, fix=fix)

    # -- verbs -------------------------------------------------------------------------------
    def get(self, ref: ResourceRef) -> dict[str, Any] | None:
        """The object, or None when it does not exist (a missing kind is an error)."""
        try:
            return self._call("GET", ref, "get")
        except _ApiFailure as failure:
            if failure.object_absent(ref):
                return None
            raise self._fail(failure, "get", ref) from None

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create; if it exists already (a retried step), reuse it when it is ours, else refuse."""
        ref = ResourceRef.of(manifest)
        try:
            return self._call("POST", ref, "create", body=manifest, collection=True)
        except _ApiFailure as failure:
            if failure.status != 409:
                raise self._fail(failure, "create", ref) from None
        existing = self.get(ref)
        if existing is None:
            raise self.error(f"{ref} was reported to exist and then vanished", fix="check who is deleting it; rerun the step")
        if existing.get("metadata", {}).get("labels", {}).get(MANAGED_BY) != OURS:
            raise self.error(f"{ref} exists and was not created by kfp-mlops", fix="delete it, or choose another name (another KFP run)")
        log.info("%s exists already (a retried step): reusing it", ref)
        return existing

    def apply(self, manifest: dict[str, Any], *, field_manager: str = OURS, force: bool = True) -> dict[str, Any]:
        """Server-side apply: create when absent, else make the fields we own equal to the manifest."""
        ref = ResourceRef.of(manifest)
        query = [("fieldManager", field_manager), ("fieldValidation", "Strict")] + ([("force", "true")] if force else [])
        try:
            return self._call("PATCH", ref, "apply", body=manifest, query=query, content_type=APPLY_PATCH)
        except _ApiFailure as failure:
            raise self._fail(failure, "apply", ref) from None

    def delete(self, ref: ResourceRef) -> bool:
        """Delete; False when it was already gone."""
        try:
            self._call("DELETE", ref, "delete")
            return True
        except _ApiFailure as failure:
            if failure.object_absent(ref):
                return False
            raise self._fail(failure, "delete", ref) from None

    # -- waiting -----------------------------------------------------------------------------
    def _poll(
        self, ref: ResourceRef, what: str, timeout_s: float, poll_s: float, sleep: Callable[[float], None], clock: Callable[[], float], judge: Callable[[dict[str, Any]], tuple[str, str, str]]
    ) -> tuple[str, str, str, float]:
        started = clock()
        outages = 0
        while True:
            try:
                obj = self._call("GET", ref, "get")
                outages = 0
            except _ApiFailure as failure:
                if failure.object_absent(ref):
                    raise self.error(f"{ref} disappeared while waiting for it to {what}", fix="check who deleted it (kubectl get events); rerun the step") from None
                # A long wait outlives a short API outage: a few polls in a row may fail after their retries.
                outages += 1
                if failure.status not in TRANSIENT or outages > self.retries:
                    raise self._fail(failure, "get", ref) from None
                log.warning("reading %s failed with HTTP %s; trying again at the next poll", ref, failure.status)
                obj = {}
            state, reason, message = judge(obj) if obj else ("pending", "", "")
            if state != "pending":
                return state, reason, message, clock() - started
            if clock() - started >= timeout_s:
                last = f" (last status: {reason}: {message})" if reason or message else ""
                raise self.error(
                    f"{ref} did not {what} within {timeout_s:.0f}s{last}",
                    fix=f"raise the timeout, or inspect it: kubectl describe {ref.kind.plural}.{ref.kind.group or 'core'} -n {ref.namespace} {ref.name}",
                )
            sleep(poll_s)

    def wait_ready(self, ref: ResourceRef, *, timeout_s: float, poll_s: float = 5.0, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> float:
        """Block until the object is Ready; a failure it reports is raised with its reason and message. Returns seconds waited."""
        state, reason, message, seconds = self._poll(ref, "become Ready", timeout_s, poll_s, sleep, clock, lambda obj: readiness(ref.kind, obj))
        if state == "failed":
            raise self.error(f"{ref} failed: {reason}: {message}".rstrip(": "), fix=f"read its status and its pods' logs (kubectl describe {ref.kind.plural} -n {ref.namespace} {ref.name})")
        return seconds

    def wait_done(self, ref: ResourceRef, *, timeout_s: float, poll_s: float = 10.0, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> JobOutcome:
        """Block until a job reports a terminal condition; a failed job is an outcome, not an error."""
        success, failure = JOB_DONE[ref.kind.kind]

        def judge(obj: dict[str, Any]) -> tuple[str, str, str]:
            for condition in obj.get("status", {}).get("conditions", []):
                if condition.get("status") == "True" and condition.get("type") in (success, failure):
                    return ("ready" if condition["type"] == success else "failed"), condition.get("reason", ""), condition.get("message", "")
            return "pending", "", ""

        state, reason, message, seconds = self._poll(ref, "finish", timeout_s, poll_s, sleep, clock, judge)
        return JobOutcome(ref.name, state == "ready", reason, message, seconds)

    # -- many objects, all or nothing --------------------------------------------------------
    def apply_all_or_rollback(
        self,
        manifests: list[dict[str, Any]],
        *,
        timeout_s: float,
        poll_s: float = 5.0,
        field_manager: str = OURS,
        adopt: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> ApplyOutcome:
        """Apply every manifest, then wait until all are Ready; on any failure restore what was there before.

        Existing objects not labelled ``managed-by: kfp-mlops`` are refused unless ``adopt``.
        The rollback re-applies each previous object (spec, labels, annotations) and deletes the
        ones that did not exist; it does not wait for them: they were Ready before.
        """
        started = clock()
        refs = [ResourceRef.of(m) for m in manifests]
        if len(set(refs)) != len(refs):
            raise self.error("the same resource appears twice in one deployment", fix="render each object once")
        previous = {ref: self.get(ref) for ref in refs}  # before any change: a 403 or a missing kind stops here
        for ref, obj in previous.items():
            if obj is not None and not adopt and obj.get("metadata", {}).get("labels", {}).get(MANAGED_BY) != OURS:
                raise self.error(f"{ref} exists and is not managed by kfp-mlops; nothing was changed", fix="choose another deployment name, delete it, or deploy with adopt=True to take it over")
        applied: list[ResourceRef] = []
        try:
            for manifest, ref in zip(manifests, refs):
                self.apply(manifest, field_manager=field_manager, force=True)
                applied.append(ref)
            for ref in refs:
                self.wait_ready(ref, timeout_s=max(0.0, timeout_s - (clock() - started)), poll_s=poll_s, sleep=sleep, clock=clock)
        except KfpMlopsError as exc:
            problems = self._rollback(applied, previous, field_manager)
            restored = f"rolled back {len(applied)} object(s) to their previous state" if not problems else "rollback incomplete: " + "; ".join(problems)
            fix = exc.fix if not problems else f"{exc.fix}; then restore by hand: {', '.join(problems)}"
            raise self.error(f"deployment failed and was rolled back: {exc.problem} ({restored})", where=exc.where, fix=fix) from exc
        created = [str(r) for r in refs if previous[r] is None]
        updated = [str(r) for r in refs if previous[r] is not None]
        return ApplyOutcome(created, updated, clock() - started)

    def _rollback(self, applied: list[ResourceRef], previous: dict[ResourceRef, dict[str, Any] | None], field_manager: str) -> list[str]:
        problems = []
        for ref in reversed(applied):
            try:
                before = previous[ref]
                if before is None:
                    self.delete(ref)
                else:
                    self.apply(restorable(before), field_manager=field_manager, force=True)
                log.warning("rolled back %s", ref)
            except KfpMlopsError as exc:
                problems.append(f"{ref}: {exc.problem}")
        return problems


def restorable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as one would apply it again: without status and server-managed metadata."""
    meta = obj.get("metadata", {})
    kept_meta = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return {**{k: v for k, v in obj.items() if k not in ("metadata", "status")}, "metadata": kept_meta}


def readiness(kind: Kind, obj: dict[str, Any]) -> tuple[str, str, str]:
    """("ready" | "failed" | "pending", reason, message) from the status the controllers write."""
    if kind.readiness == "exists":
        return "ready", "", ""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    # A Ready condition of an older generation says nothing about the spec just applied.
    if generation is not None and observed is not None and observed < generation:
        return "pending", "NotObserved", f"the controller has seen generation {observed}, not {generation} yet"
    if kind.readiness == "seldon-state":
        state = status.get("state", "")
        if state == "Available":
            return "ready", state, ""
        if state == "Failed":
            return "failed", state, status.get("description", "")
        return "pending", state, status.get("description", "")
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo") or {}
    if model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec") or (model.get("states") or {}).get("targetModelState") == "FailedToLoad":
        return "failed", failure.get("reason", model.get("transitionStatus", "")), failure.get("message", "")
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    for bad in ("Failed", "Stalled"):
        if conditions.get(bad, {}).get("status") == "True":
            return "failed", conditions[bad].get("reason", bad), conditions[bad].get("message", "")
    # Knative's RevisionFailed, Seldon v2's ModelFailed / ScheduleFailed: a controller that gave up.
    for condition in conditions.values():
        if condition.get("status") == "False" and str(condition.get("reason", "")).endswith("Failed"):
            return "failed", condition["reason"], condition.get("message", "")
    ready = conditions.get("Ready", {})
    if ready.get("status") == "True":
        return "ready", ready.get("reason", ""), ready.get("message", "")
    return "pending", ready.get("reason", ""), ready.get("message", "")


class _ApiFailure(Exception):
    """A non-transient API answer, translated by the caller that knows the verb."""

    def __init__(self, status: int, reason: str, message: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status, self.reason, self.message, self.body = status, reason, message, body

    def object_absent(self, ref: ResourceRef) -> bool:
        """404 for the object (a Status naming it), as opposed to 404 for an unknown kind (no Status)."""
        if self.status != 404:
            return False
        try:
            body = json.loads(self.body)
        except ValueError:
            return False  # "404 page not found": the API server does not serve this group/version/resource
        return isinstance(body, dict) and body.get("kind") == "Status" and body.get("reason") == "NotFound"


def _status_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return (exc.body or "").strip()[:500]
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def _conflicting_manager(message: str) -> str:
    found = re.search(r'conflicts? with "([^"]+)"', message)
    return found.group(1) if found else ""
