"""Compiled pipelines on a Kubeflow Pipelines cluster: upload, submit, follow (v2beta1 API through kfp.Client).

The typed core of ``kfp-mlops upload`` and ``kfp-mlops submit``; notebooks call it directly.
Parameters are checked against the compiled spec before anything is sent, and every API
failure becomes a ``KfpApiError`` carrying the server's own message: exit code 2 when the
request was wrong (4xx), 3 when the cluster is unreachable, refuses the credentials or fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from kfp_mlops._version import __version__
from kfp_mlops.components._shared.errors import DataError, KfpMlopsError
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.pipelines.schedule import kind_words, typed_params

_JSON_TYPES: dict[str, tuple[type, ...]] = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,), "LIST": (list,), "STRUCT": (dict,)}
# Argo entries of a v2 run that are KFP machinery, not user steps (used when the run carries no spec).
# A compiled pipeline is ~100 kB of YAML: libyaml reads it in 20 ms, the pure-Python loader in 180 ms.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KfpApiError(KfpMlopsError):
    """The KFP API refused a request or could not be reached."""

    exit_code = 3

    def __init__(self, problem: str, *, status: int = 0, fix: str = "") -> None:
        super().__init__(problem, fix=fix)
        self.status = status
        # A 4xx other than authentication is a wrong request: the user's input, not the cluster.
        if 400 <= status < 500 and status not in (401, 403):
            self.exit_code = 2


def read_spec(package: Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled pipeline."""
    try:
        spec = next(iter(yaml.load_all(Path(package).read_text(encoding="utf-8"), Loader=_LOADER)))
        if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
            raise ValueError("no pipelineInfo and root")
    except (OSError, yaml.YAMLError, StopIteration, ValueError) as exc:
        raise DataError(f"not a compiled pipeline ({exc})", where=str(package), fix="give a YAML written by `kfp-mlops compile`") from exc
    return spec


def root_parameters(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(spec["root"].get("inputDefinitions", {}).get("parameters", {}))


def check_params(package: Path, params: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """Parameters as the API wants them: known names, the declared types, every required one given.

    ``params`` is either ``name=value`` pairs (as typed on a command line) or a mapping of values.
    """
    declared = root_parameters(read_spec(package))
    typed = _typed(package, declared, params)
    missing = required_missing(declared, typed)
    if missing:
        raise DataError(f"missing required pipeline parameters {missing}", fix="give them: " + " ".join(f"--param {n}=VALUE" for n in missing))
    return typed


def required_missing(declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]) -> list[str]:
    return sorted(n for n, d in declared.items() if not d.get("isOptional") and "defaultValue" not in d and n not in given)


def _typed(package: Path, declared: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    if isinstance(params, str):
        raise DataError("parameters must be name=value pairs or a mapping, not one string", fix='e.g. ["source_uri=gs://bucket/data.csv"]')
    if not isinstance(params, Mapping):
        return typed_params(package, list(params))
    typed: dict[str, Any] = {}
    for name, value in params.items():
        if name not in declared:
            typed_params(package, [f"{name}="])  # raises the unknown-parameter error, listing the known ones
        kind = declared[name].get("parameterType", "STRING")
        if isinstance(value, str) and kind != "STRING":
            typed[name] = typed_params(package, [f"{name}={value}"])[name]  # text from a form or a file: parsed as on the CLI
        elif not fits(value, kind):
            raise DataError(f"parameter {name} must be {kind_words(kind)}, not {value!r}", fix="give a value of that type")
        else:
            typed[name] = float(value) if kind == "NUMBER_DOUBLE" else value
    return typed


def fits(value: Any, kind: str) -> bool:
    """Whether a JSON value suits a KFP parameter type (a bool is no number, an int is a double)."""
    return isinstance(value, _JSON_TYPES.get(kind, (object,))) and (kind == "BOOLEAN" or not isinstance(value, bool))


def describe_submission(package: Path, params: Mapping[str, Any] | Sequence[str] = ()) -> str:
    """What a submission would send, readable without a cluster: the pipeline, each root parameter with
    the value it would get, and the images its steps run (secrets in values are masked)."""
    spec = read_spec(package)
    declared = root_parameters(spec)
    given = _typed(package, declared, params)
    missing = required_missing(declared, given)
    info = spec["pipelineInfo"]
    lines = [f"pipeline {info['name']!r} ({package})"]
    if info.get("description"):
        lines.append(f"  {info['description']}")
    lines.append("parameters:")
    width = max((len(n) for n in declared), default=0)
    for name in sorted(declared):
        if name in missing:
            shown = "MISSING (required)"
        elif name in given:
            shown = _shown(given[name])
        else:
            default = declared[name].get("defaultValue")
            if declared[name].get("parameterType") == "NUMBER_INTEGER" and isinstance(default, float) and default.is_integer():
                default = int(default)  # the spec stores every number as a float
            shown = f"{_shown(default)}  (default)"
        lines.append(f"  {name:<{width}} = {shown}")
    images = sorted({e["container"]["image"] for e in spec.get("deploymentSpec", {}).get("executors", {}).values() if "container" in e})
    lines.append("images:")
    lines.extend(f"  {image}" for image in images)
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return repr(redact_text(value)) if isinstance(value, str) else repr(value)


def default_version_name(package: Path, now: dt.datetime | None = None) -> str:
    """Package version, a short hash of the YAML and the UTC time (to the millisecond): a re-upload of
    the same file gets a new name, and the name says which code and which content it is."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:8]
    return f"{__version__}-{digest}-{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z"


def connect(host: str, *, namespace: str | None = None, token: str | None = None) -> Any:
    """A ``kfp.Client`` for ``host``, its health check passed; a clear error when it cannot be reached."""
    import kfp

    if not host:
        raise DataError("no KFP API host given", fix="give the endpoint, e.g. https://kubeflow.example.com/pipeline")
    _answers(host, token)
    # kfp.Client logs each failed health check with a traceback (and urllib3 each retry) before it
    # raises a bare TimeoutError: keep the last failure to say why, and those logs off the console.
    failures = _HealthCheckFailures()
    root, retries = logging.getLogger(), logging.getLogger("urllib3.connectionpool")
    retries_level = retries.level
    root.addFilter(failures)
    retries.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with api_errors(f"connect to {redact_text(host)}"):
                try:
                    # kfp.Client takes its default "kubeflow" to mean "no namespace given".
                    return kfp.Client(host=host, existing_token=token, namespace=namespace or "kubeflow")
                except TimeoutError as exc:
                    if failures.last is not None:
                        raise failures.last from exc
                    raise
    finally:
        root.removeFilter(failures)
        retries.setLevel(retries_level)


ANSWER_TIMEOUT_S = 15.0


def _answers(host: str, token: str | None) -> None:
    """Fail fast when the host accepts connections but never answers (a stuck port-forward or ingress): kfp.Client has no timeout."""
    import requests

    url = (host if "://" in host else f"http://{host}").rstrip("/") + "/apis/v2beta1/healthz"
    try:
        requests.get(url, timeout=ANSWER_TIMEOUT_S, headers={"Authorization": f"Bearer {token}"} if token else {})
    except requests.Timeout as exc:
        raise KfpApiError(
            f"{redact_text(host)} accepted the connection but did not answer within {ANSWER_TIMEOUT_S:.0f} s", fix="check the endpoint (a port-forward or ingress that is stuck?) and try again"
        ) from exc
    except requests.RequestException:
        pass  # refused, unresolvable, TLS: kfp.Client's own check says why


class _HealthCheckFailures(logging.Filter):
    """Drops the root logger's error records that carry an exception, remembering the last exception."""

    def __init__(self) -> None:
        super().__init__()
        self.last: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.exc_info and record.exc_info[1] is not None:
            self.last = record.exc_info[1]
            return False
        return True


@contextlib.contextmanager
def api_errors(action: str) -> Iterator[None]:
    """Turn what kfp.Client raises into a ``KfpApiError`` that names ``action`` and quotes the server."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except KfpMlopsError:
        raise
    except kfp_server_api.ApiException as exc:
        raise _refused(action, exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise KfpApiError(
            f"cannot {action}: the KFP API did not answer ({redact_text(str(reason))[:300]})", fix="check the host URL, your network or port-forward, and that the ml-pipeline service runs"
        ) from exc


def _refused(action: str, exc: Any) -> KfpApiError:
    status = int(getattr(exc, "status", 0) or 0)
    message = server_message(exc)
    if status == 0:
        return KfpApiError(f"cannot {action}: {message}", fix="check the host URL and its TLS settings")
    fixes = {
        401: "give a valid bearer token (the CLI reads it from the variable named by --token-env, KFP_TOKEN by default)",
        403: "your token is not allowed to do this here: check the profile namespace (--namespace) and your access to it",
        404: "check the name or id: it does not exist on this cluster (or in this namespace)",
    }
    fix = fixes.get(status, "the KFP API server failed: try again, or read its logs (the ml-pipeline deployment)" if status >= 500 else "")
    if status == 400 and "namespace" in message.lower():
        fix = "give your Kubeflow profile namespace (--namespace): this cluster is multi-user"
    return KfpApiError(f"the KFP API refused to {action}: {message} (HTTP {status})", status=status, fix=fix)


def server_message(exc: Any) -> str:
    """The message in a KFP error answer: v2beta1 gRPC-gateway (``message``) or the upload endpoints (``error_message``)."""
    body = getattr(exc, "body", None)
    try:
        payload = json.loads(body) if body else None
    except (TypeError, ValueError):
        payload = None
    if isinstance(payload, dict):
        for key in ("message", "error_message", "error"):
            if payload.get(key):
                return redact_text(str(payload[key]))[:500]
    text = (body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")).strip()
    return redact_text(text or str(getattr(exc, "reason", "") or exc))[:500]


def find_pipeline(client: Any, name: str, *, namespace: str | None = None) -> str | None:
    """The id of the pipeline called ``name`` (in ``namespace`` on multi-user Kubeflow), or None."""
    wanted = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    # list_pipelines rather than get_pipeline_id: only it passes the namespace, and pipeline names are per namespace.
    found = [p for p in (client.list_pipelines(filter=wanted, namespace=namespace, page_size=10).pipelines or []) if p.display_name == name]
    if len(found) > 1:
        raise KfpApiError(f"{len(found)} pipelines are called {name!r}", status=409, fix="give another --name, or delete the duplicates in the dashboard")
    return found[0].pipeline_id if found else None


def upload(client: Any, package: Path, *, name: str | None = None, version_name: str | None = None, description: str | None = None, namespace: str | None = None) -> tuple[str, str]:
    """Upload the pipeline, or a new version of it when a pipeline of that name exists; (pipeline id, version id).

    A new pipeline's first version carries the pipeline's name (the API names it); ``version_name``
    (default: ``default_version_name``) names each version uploaded after it.
    """
    spec = read_spec(package)
    name = name or spec["pipelineInfo"]["name"]
    description = spec["pipelineInfo"].get("description") if description is None else description
    with api_errors(f"upload {name!r}"):
        pipeline_id = find_pipeline(client, name, namespace=namespace)
        if pipeline_id is None:
            created = client.upload_pipeline(str(package), pipeline_name=name, description=description, namespace=namespace)
            versions = client.list_pipeline_versions(created.pipeline_id, page_size=10).pipeline_versions or []
            if len(versions) != 1:
                raise KfpApiError(f"the new pipeline {name!r} has {len(versions)} versions, expected its first one", status=500)
            return created.pipeline_id, versions[0].pipeline_version_id
        version_name = version_name or default_version_name(package)
        try:
            version = client.upload_pipeline_version(str(package), version_name, pipeline_id=pipeline_id, description=description)
        except Exception as exc:
            # The API answers a taken name with a bare "Failed to create a pipeline version" (409).
            if getattr(exc, "status", None) == 409:
                raise KfpApiError(
                    f"pipeline {name!r} already has a version named {version_name!r}",
                    status=409,
                    fix="choose another --version-name, or leave it out: the default (package version, content hash, UTC time) is new at every upload",
                ) from exc
            raise
        return pipeline_id, version.pipeline_version_id


def submit(client: Any, package: Path, *, params: Mapping[str, Any] | Sequence[str] = (), experiment: str = "kfp-mlops", run_name: str | None = None, namespace: str | None = None) -> str:
    """Start a run of the compiled pipeline in ``experiment`` (created when missing); returns the run id.

    The parameters are checked against the spec first: a wrong one sends nothing.
    """
    arguments = check_params(package, params)
    pipeline_name = read_spec(package)["pipelineInfo"]["name"]
    run_name = run_name or f"{pipeline_name} {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    with api_errors(f"submit {pipeline_name!r}"):
        found = client.create_experiment(experiment, namespace=namespace)  # returns the existing one of that name
        result = client.create_run_from_pipeline_package(str(package), arguments=arguments, run_name=run_name, experiment_id=found.experiment_id)
    return str(result.run_id)
