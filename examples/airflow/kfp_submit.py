"""Run a compiled kfp-mlops pipeline on Kubeflow Pipelines from Airflow: submit, wait, fail the task unless it succeeded.

The example DAGs beside this file use ``KfpPipelineRunOperator``. It needs ``kfp`` (the SDK) in the
Airflow environment, not kfp-mlops: the compiled YAML is the whole contract between the two. kfp-mlops
brings torch, Feast, MLflow and Evidently with pins of their own (SQLAlchemy, protobuf, pandas) that
an Airflow deployment does not want on its workers, and nothing of it runs there: the steps run in
the kfp-mlops images on the cluster. So the parts of ``kfp_mlops.pipelines.kfp_remote`` an Airflow task
needs (parameters checked against the spec before anything is sent, a health check that fails in
bounded time, the failed step named) are restated here in a few lines; compiling, when asked for, runs
the ``kfp-mlops compile`` command, which may live in an environment of its own.

Where the cluster is: the Airflow Connection ``kfp_default`` (host = the API endpoint, e.g.
``https://kubeflow.example.com/pipeline``; password = a bearer token, optional; extra
``{"namespace": "<profile namespace>"}`` on multi-user Kubeflow), else the environment variables
``KFP_HOST``, ``KFP_TOKEN`` and ``KFP_NAMESPACE``. Never in a DAG file.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml
from airflow.sdk import BaseHook, BaseOperator, Param
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException

DEFAULT_CONN_ID = "kfp_default"
DAG_FOLDER = Path(__file__).resolve().parent
# Relative package paths are looked up beside the DAG files first, then in the kfp-mlops checkout
# these examples live in (examples/airflow/ -> the repository root), so they run in place too.
PACKAGE_ROOTS = (DAG_FOLDER, DAG_FOLDER.parents[1])
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
HEALTH_TIMEOUT_S = 15.0
_JSON_TYPES: dict[str, tuple[type, ...]] = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,), "LIST": (list,), "STRUCT": (dict,)}
# A copy of kfp-mlops' own redaction (components/_shared/redact.py), kept small and here because the DAGs
# must not import kfp-mlops: user info of URIs, credential query values (signed URLs, tokens, keys) and
# password= options in any text.
_SECRET_KEYS = (
    r"x-amz-(?:signature|credential|security-token)|x-goog-(?:signature|credential)|sig|signature|"
    r"token|access_token|id_token|api[-_]?key|apikey|key|password|passwd|pwd|secret|client_secret|auth"
)
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"<>]+@")
_QUERY_SECRET = re.compile(rf"([?&;](?:{_SECRET_KEYS})=)[^&#\s'\"<>]+", re.I)
_PASSWORD_OPTION = re.compile(r"(?i)(\bpassword\s*[=:]\s*[\"']?)[^,\s'\"<>&]+")
MASK = "***"
# A compiled pipeline is ~100 kB of YAML: libyaml reads it in 20 ms, the pure-Python loader in 180 ms.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _said(problem: str, fix: str) -> str:
    return f"{problem}\nWhat to do: {fix}" if fix else problem


class _Said(Exception):
    # ``fix`` has a default so that Airflow can rebuild the exception from its message alone (serialize, pickle).
    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(_said(problem, fix))


class PipelineInputError(_Said, AirflowFailException):
    """The DAG's params, the package or the connection settings are wrong: a retry cannot help, so none is made."""


class KfpApiError(_Said, AirflowException):
    """The KFP API could not be reached or refused a request (retried as the DAG's retries say)."""


class PipelineRunFailed(_Said, AirflowFailException):
    """The run ended in another state than SUCCEEDED: a finding about the data or the model, so no retry starts another run."""


class PipelineRunTimeout(_Said, AirflowException):
    """The run did not end in time; it goes on on the cluster, and a retry follows it."""


def redact(text: str) -> str:
    """``text`` without secrets: user info of URIs dropped (``https://user:secret@host`` -> ``https://host``),
    credential query values (``?X-Amz-Signature=``, ``token=``, ``sig=``, ``access_token=``, ...) and
    ``password=`` options masked as ``***``."""
    text = _USERINFO.sub(r"\1", text)
    text = _QUERY_SECRET.sub(rf"\g<1>{MASK}", text)
    return _PASSWORD_OPTION.sub(rf"\g<1>{MASK}", text)


@dataclass(frozen=True)
class KfpEndpoint:
    host: str
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)


def kfp_endpoint(conn_id: str = DEFAULT_CONN_ID) -> KfpEndpoint:
    """The cluster from the Airflow Connection ``conn_id``, or from ``KFP_HOST``/``KFP_TOKEN``/``KFP_NAMESPACE``."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    if conn is not None and conn.host:
        host = conn.host
        if "://" not in host:  # a connection URI splits the endpoint: kfp://:TOKEN@host:443/pipeline
            host = "https://" + host + (f":{conn.port}" if conn.port else "") + (f"/{conn.schema}" if conn.schema else "")
        return KfpEndpoint(host=host, namespace=conn.extra_dejson.get("namespace") or None, token=conn.password or None)
    host = os.environ.get("KFP_HOST", "")
    if not host:
        raise PipelineInputError(
            f"no Kubeflow Pipelines endpoint: there is no Airflow Connection {conn_id!r} with a host, and KFP_HOST is not set",
            f"create the Connection {conn_id!r} (host: the KFP API URL, e.g. https://kubeflow.example.com/pipeline; password: a bearer token; "
            'extra: {"namespace": "<your profile namespace>"}), or set KFP_HOST (and KFP_TOKEN, KFP_NAMESPACE) in the workers\' environment',
        )
    return KfpEndpoint(host=host, namespace=os.environ.get("KFP_NAMESPACE") or None, token=os.environ.get("KFP_TOKEN") or None)


def connect(endpoint: KfpEndpoint) -> Any:
    """A ``kfp.Client`` for the endpoint, after one health check that fails in bounded time with the reason."""
    import kfp
    import requests

    host = endpoint.host if "://" in endpoint.host else f"https://{endpoint.host}"
    shown = redact(host)
    headers = {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}
    unreachable = "check the Connection's host (the KFP API URL, e.g. https://kubeflow.example.com/pipeline), the network from the workers and that the ml-pipeline service runs"
    try:
        answer = requests.get(host.rstrip("/") + "/apis/v2beta1/healthz", headers=headers, timeout=HEALTH_TIMEOUT_S)
    except requests.Timeout as exc:
        raise KfpApiError(f"the KFP API at {shown} did not answer within {HEALTH_TIMEOUT_S:.0f} s", unreachable) from exc
    except requests.RequestException as exc:
        raise KfpApiError(f"the KFP API at {shown} did not answer: {redact(_innermost(exc))[:300]}", unreachable) from exc
    if answer.status_code in (401, 403):
        raise PipelineInputError(
            f"the KFP API at {shown} refused the credentials (HTTP {answer.status_code}): {_server_message(answer.text)}",
            "put a valid bearer token in the Connection's password (or KFP_TOKEN), one allowed in the profile namespace",
        )
    if answer.status_code != 200:
        raise KfpApiError(f"the KFP API at {shown} is not healthy (HTTP {answer.status_code}): {_server_message(answer.text)}", "try again later, or read the ml-pipeline deployment's logs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # kfp.Client warns about backend versions on every construction
        # kfp.Client takes its default "kubeflow" to mean "no namespace given" and then retries its own health check for 25 s.
        return kfp.Client(host=host, existing_token=endpoint.token, namespace=endpoint.namespace or "kubeflow")


def _innermost(exc: BaseException) -> str:
    """The root reason of a requests/urllib3 error (``... Connection refused``), not its wrappers' retry talk."""
    reason: BaseException = exc
    for _ in range(5):
        inner = getattr(reason, "reason", None) or next((a for a in reason.args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    return str(reason)


def _server_message(body: Any) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        text = str(payload.get("message") or payload.get("error_message") or payload.get("error") or text)
    return redact(text.strip())[:500]


def _api_call(action: str, call: Callable[[], Any]) -> Any:
    """``call()``, with what the generated client raises turned into a ``KfpApiError`` quoting the server."""
    import kfp_server_api
    import urllib3

    try:
        return call()
    except kfp_server_api.ApiException as exc:
        status = int(exc.status or 0)
        problem = f"the KFP API refused to {action}: {_server_message(exc.body or exc.reason)} (HTTP {status})"
        if 400 <= status < 500 and status not in (401, 403, 404, 409, 429):
            raise PipelineInputError(problem, "correct the request (the message above is the server's); on multi-user Kubeflow give the namespace in the Connection's extra") from exc
        raise KfpApiError(problem, "check the token and namespace for 401/403, otherwise try again or read the ml-pipeline logs") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KfpApiError(f"cannot {action}: the KFP API did not answer ({redact(str(exc))[:300]})", "check the host and the network from the workers") from exc


# -- the package and its parameters -------------------------------------------------------------


def resolve_package(path_text: str, roots: Sequence[Path] = PACKAGE_ROOTS) -> Path:
    """The compiled pipeline ``path_text`` names: absolute, or relative to the first root that has it."""
    path = Path(path_text).expanduser()
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PipelineInputError(
        f"no compiled pipeline at {', '.join(str(c) for c in candidates)}",
        "copy kfp-mlops' compiled/ folder beside the DAG files, give pipeline_package as an absolute path, or set compile_pipeline to true",
    )


def compile_package(pipeline: str, output_dir: Path) -> Path:
    """``kfp-mlops compile`` into ``output_dir`` (the command from KFP_MLOPS_COMPILE_COMMAND, which may add cluster options)."""
    command = shlex.split(os.environ.get("KFP_MLOPS_COMPILE_COMMAND", "kfp-mlops compile")) + ["--output-dir", str(output_dir)]
    fix = "install kfp-mlops where the workers can run it and point KFP_MLOPS_COMPILE_COMMAND at it (e.g. /opt/kfp-mlops/bin/kfp-mlops compile), or ship compiled/*.yaml and leave compile_pipeline off"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PipelineInputError(f"cannot run {shlex.join(command)}: {exc}", fix) from exc
    if done.returncode != 0:
        raise PipelineInputError(f"{shlex.join(command)} failed (exit {done.returncode}): {redact(done.stderr.strip())[-1000:]}", fix)
    return resolve_package(str(output_dir / f"{pipeline}.yaml"))


def read_spec(package: Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled pipeline."""
    try:
        spec = next(iter(yaml.load_all(package.read_text(encoding="utf-8"), Loader=_LOADER)))
        if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
            raise ValueError("no pipelineInfo and root")
    except (OSError, yaml.YAMLError, StopIteration, ValueError) as exc:
        raise PipelineInputError(f"{package} is not a compiled pipeline ({exc})", "give a YAML written by `kfp-mlops compile`") from exc
    return spec


def pipeline_arguments(spec: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against the spec's root parameters: known names, their types, every required one present.

    A string for a number or a boolean is parsed, as the trigger form and the CLI give text. A whole
    number written as a float (``50.0``, as JSON from some tools has it) is an integer; NaN and
    infinity are refused for any number (no step can use them, and JSON cannot carry them).
    """
    declared: dict[str, Any] = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    typed: dict[str, Any] = {}
    for name, value in given.items():
        if name not in declared:
            raise PipelineInputError(f"{spec['pipelineInfo']['name']!r} has no parameter {name!r}", f"use one of: {', '.join(sorted(declared))}")
        kind = declared[name].get("parameterType", "STRING")
        if isinstance(value, str) and kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN"):
            value = _parsed(name, value, kind)
        if isinstance(value, float) and kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE") and not math.isfinite(value):
            raise PipelineInputError(f"parameter {name} must be a finite number, not {value!r}", "give a number (NaN and infinity are not values a step can use)")
        if isinstance(value, float) and kind == "NUMBER_INTEGER" and value.is_integer():
            value = int(value)
        if not isinstance(value, _JSON_TYPES.get(kind, (object,))) or (isinstance(value, bool) and kind != "BOOLEAN"):
            raise PipelineInputError(f"parameter {name} must be {kind.lower().replace('_', ' ')}, not {value!r}", "give a value of that type")
        try:
            typed[name] = float(value) if kind == "NUMBER_DOUBLE" else value
        except OverflowError:
            raise PipelineInputError(f"parameter {name} is too large for a number: {str(value)[:30]}...", "give a number within the range of a double") from None
    missing = sorted(n for n, d in declared.items() if not d.get("isOptional") and "defaultValue" not in d and n not in typed)
    if missing:
        raise PipelineInputError(f"missing required pipeline parameters {missing}", "give them in the DAG run's params (Trigger DAG w/ config)")
    return typed


def _parsed(name: str, text: str, kind: str) -> Any:
    try:
        if kind == "BOOLEAN":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if kind == "NUMBER_INTEGER":
            try:
                return int(text)
            except ValueError:
                return float(text)  # "50.0": whole or not, pipeline_arguments decides
        return float(text)
    except ValueError as exc:
        raise PipelineInputError(f"parameter {name} must be {kind.lower().replace('_', ' ')}, not {text!r}", "give a value of that type") from exc


# -- submit and follow ------------------------------------------------------------------------


def run_name(dag_id: str, dag_run_id: str, *, first_try: int = 1) -> str:
    """The KFP run name of the task in one DAG run: the same for its retries, a new one each time it is cleared.

    ``first_try`` is the first try since the task was last cleared (Airflow's own arithmetic:
    ``max_tries - retries + 1``; 1 until it is cleared).
    """
    base = f"{dag_id} {dag_run_id}"
    return base if first_try <= 1 else f"{base} (cleared, try {first_try})"


_CLEARED = re.compile(r" \(cleared, try \d+\)$")


def submit_or_attach(client: Any, package: Path, arguments: Mapping[str, Any], *, experiment: str, run_name: str, namespace: str | None, log: Callable[[str], None]) -> str:
    """The id of the run this try of the task follows: an earlier try's, or a new one.

    A worker lost mid-wait or a wait that timed out makes Airflow retry the task; starting a second
    run of an hours-long training would duplicate it. So a retry follows the run of its name
    whatever became of it: still going, it is waited for; ended, its outcome is the task's
    (SUCCEEDED passes, FAILED or CANCELED fails naming it) and no run is started. A cleared task has
    a new run name (``run_name``) and starts a new run, unless a run of this task in this DAG run is
    still going: that one is followed, never raced.
    """
    found = _api_call(f"find or create experiment {experiment!r}", lambda: client.create_experiment(experiment, namespace=namespace))
    task_runs = _CLEARED.sub("", run_name)
    # IS_SUBSTRING is a SQL LIKE on the server ("_" matches any character): the names are compared here.
    similar = json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": task_runs}]})
    earlier = _api_call("list runs", lambda: client.list_runs(experiment_id=found.experiment_id, filter=similar, page_size=100, sort_by="created_at desc"))
    mine = [r for r in (earlier.runs or []) if _CLEARED.sub("", r.display_name or "") == task_runs]
    going = [r for r in mine if (r.state or "PENDING") not in TERMINAL_STATES]
    if going:
        log(f"following run {going[0].run_id} ({going[0].state}), started by an earlier try of this task")
        return str(going[0].run_id)
    ended = [r for r in mine if r.display_name == run_name]
    if ended:
        log(f"run {ended[0].run_id}, started by an earlier try of this task, already ended {ended[0].state}: taking its outcome, starting no other (clear the task to start a new run)")
        return str(ended[0].run_id)
    result = _api_call(
        f"submit {package.name}",
        lambda: client.create_run_from_pipeline_package(str(package), arguments=dict(arguments), run_name=run_name, experiment_id=found.experiment_id),
    )
    return str(result.run_id)


def user_steps(spec: Mapping[str, Any] | None) -> set[str] | None:
    """Names of the container steps of a pipeline spec (conditions and loops left out)."""
    if not spec or "root" not in spec:
        return None
    components = spec.get("components", {})
    dags = [spec["root"].get("dag", {})] + [c["dag"] for c in components.values() if "dag" in c]
    return {name for dag in dags for name, task in dag.get("tasks", {}).items() if "dag" not in components.get(task.get("componentRef", {}).get("name", ""), {})}


def _is_step(name: str, steps: set[str] | None) -> bool:
    # Without a spec, the API's own entries (root, *-driver, executor pods) are told apart by name.
    return name in steps if steps is not None else bool(name) and name not in ("root", "executor") and not name.endswith("-driver")


def wait_for_run(client: Any, run_id: str, *, timeout_s: float, poll_s: float, log: Callable[[str], None], link: str) -> Any:
    """Poll until the run ends, logging each step's changes of state; the ended run. Raises after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    steps: set[str] | None = None
    while True:
        run = _api_call(f"follow run {run_id}", lambda: client.get_run(run_id))
        if steps is None and run.pipeline_spec:
            steps = user_steps(dict(run.pipeline_spec))
        for task in (run.run_details.task_details if run.run_details else None) or []:
            state = task.state or "PENDING"
            if _is_step(task.display_name or "", steps) and seen.get(task.task_id) != state:
                seen[task.task_id] = state
                log(f"  {task.display_name}: {state}")
        state = run.state or "PENDING"
        if state in TERMINAL_STATES:
            return run
        if time.monotonic() >= deadline:
            raise PipelineRunTimeout(
                f"run {run_id} is still {state} after {timeout_s / 60:g} minutes; it goes on running on the cluster",
                f"follow it at {link}; a retry of this task follows the same run; raise timeout_minutes for runs this long",
            )
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def failure_text(run: Any) -> str:
    """``run <id> FAILED at step <names>: <the API's error message>`` for an ended run."""
    steps = user_steps(dict(run.pipeline_spec)) if run.pipeline_spec else None
    tasks = (run.run_details.task_details if run.run_details else None) or []
    failed = sorted({t.display_name for t in tasks if t.state == "FAILED" and _is_step(t.display_name or "", steps)})
    where = f" at step {', '.join(failed)}" if failed else ""
    message = f": {redact(run.error.message)}" if run.error and run.error.message else ""
    return f"run {run.run_id} {run.state}{where}{message}"


# -- the DAGs' params and the operator -----------------------------------------------------------


def run_params(pipeline: str) -> dict[str, Param]:
    """The params every kfp-mlops DAG has besides its pipeline parameters: what to submit, where, how long to wait."""
    return {
        "pipeline_parameters": Param({}, type="object", description=f'any other parameter of the {pipeline} pipeline by name, e.g. {{"max_epochs": 50}}'),
        "pipeline_package": Param(f"compiled/{pipeline}.yaml", type="string", description="compiled pipeline: an absolute path, or relative to the DAG folder"),
        "compile_pipeline": Param(False, type="boolean", description="compile with `kfp-mlops compile` (KFP_MLOPS_COMPILE_COMMAND) instead of reading pipeline_package"),
        "experiment": Param("kfp-mlops", type="string", minLength=1, description="KFP experiment the run goes into (created when missing)"),
        "timeout_minutes": Param(720, type="number", minimum=0, description="fail the task when the run has not ended by then (it goes on on the cluster)"),
        "poll_seconds": Param(30, type="number", minimum=0, description="seconds between two looks at the run"),
    }


class KfpPipelineRunOperator(BaseOperator):
    """Submit a compiled kfp-mlops pipeline to Kubeflow Pipelines and wait; the task fails unless the run SUCCEEDED.

    Reads the DAG run's params (see ``run_params``); ``forwarded`` names the params that are pipeline
    parameters themselves (sent when not None), merged over ``params.pipeline_parameters``.
    Returns the run id (XCom).
    """

    ui_color = "#d5e8f7"

    def __init__(self, *, pipeline: str, forwarded: Sequence[str] = ("source_uri",), conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.forwarded = tuple(forwarded)
        self.conn_id = conn_id

    def execute(self, context: Any) -> str:
        params = context["params"]
        arguments = self._arguments(params)
        if params.get("compile_pipeline"):
            with tempfile.TemporaryDirectory(prefix="kfp-mlops-compiled-") as folder:
                return self._run(compile_package(self.pipeline, Path(folder)), arguments, params, context)
        return self._run(resolve_package(str(params.get("pipeline_package") or f"compiled/{self.pipeline}.yaml")), arguments, params, context)

    def _arguments(self, params: Mapping[str, Any]) -> dict[str, Any]:
        extra = params.get("pipeline_parameters") or {}
        if not isinstance(extra, Mapping):
            raise PipelineInputError(f"pipeline_parameters must be an object of name: value, not {extra!r}", 'e.g. {"max_epochs": 50}')
        named = {name: params[name] for name in self.forwarded if params.get(name) is not None}
        clashes = sorted(n for n in named if n in extra and extra[n] != named[n])
        if clashes:
            raise PipelineInputError(f"{clashes} given twice with different values (as params and in pipeline_parameters)", "give each parameter once")
        if named.get("source_uri", "x") == "":
            raise PipelineInputError(
                "source_uri is empty",
                "give source_uri (data the cluster can read) when triggering, or as the default of the DAG's source_uri param "
                "(kfp_mlops_monitoring takes it from KFP_MLOPS_MONITORING_SOURCE_URI in the DAG processor's environment)",
            )
        return {**extra, **named}

    def _first_try(self, context: Any) -> int:
        # Clearing a task sets max_tries to its try number plus retries; retries leave it alone.
        max_tries = getattr(context.get("ti"), "max_tries", None)
        return max_tries - (self.retries or 0) + 1 if isinstance(max_tries, int) else 1

    def _run(self, package: Path, given: Mapping[str, Any], params: Mapping[str, Any], context: Any) -> str:
        arguments = pipeline_arguments(read_spec(package), given)  # checked before anything is sent
        endpoint = kfp_endpoint(self.conn_id)
        name = run_name(context["dag"].dag_id, context["run_id"], first_try=self._first_try(context))
        shown = {k: redact(v) if isinstance(v, str) else v for k, v in arguments.items()}
        self.log.info("submitting %s to %s as %r with %s", package, redact(endpoint.host), name, shown)
        client = connect(endpoint)
        run_id = submit_or_attach(client, package, arguments, experiment=str(params.get("experiment") or "kfp-mlops"), run_name=name, namespace=endpoint.namespace, log=self.log.info)
        link = f"{redact(endpoint.host).rstrip('/')}/#/runs/details/{run_id}"
        self.log.info("run %s: %s", run_id, link)
        started = time.monotonic()
        timeout_s = float(params.get("timeout_minutes", 720)) * 60
        run = wait_for_run(client, run_id, timeout_s=timeout_s, poll_s=float(params.get("poll_seconds", 30)), log=self.log.info, link=link)
        took = time.monotonic() - started
        if run.state != "SUCCEEDED":
            raise PipelineRunFailed(failure_text(run), f"read the failed step's logs at {link}; fix the cause and clear this task to run again")
        self.log.info("run %s SUCCEEDED (followed for %.0f s)", run_id, took)
        return run_id
