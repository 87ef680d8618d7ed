"""The one MLflow adapter: explicit clients, a bounded wait for the server, runs and model files.

No global state: nothing here calls ``mlflow.set_tracking_uri`` or the fluent run API;
every call goes through an ``MlflowClient`` built for one tracking URI. An HTTP
tracking server that does not answer is an infrastructure error (exit 3) naming the
URI within ``REACHABLE_WITHIN_S``, instead of MLflow's own retries (about 20 minutes
with its defaults). Credentials come from the environment the way MLflow reads them
(MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, from a Secret); URIs are
stored and shown without user info.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from kfp_mlops.components._shared import file_lock
from kfp_mlops.components._shared.errors import DataError, KfpMlopsError
from kfp_mlops.components._shared.redact import redact_text, redact_uri
from kfp_mlops.components._shared.retry import RetryPolicy, TransientError, call_with_retry

log = logging.getLogger(__name__)
REACHABLE_WITHIN_S = 45.0
# MLflow's HTTP retries, bounded unless the user set them (read per request): about a minute of
# backoff (2+4+8+16+32 s) rides out a server restart mid-step; a server that is down when the
# step starts is caught by wait_until_reachable first.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
ATTEMPT_TAG = "kfp_mlops.attempt"
MODEL_ARTIFACT_PATH = "model"
SET_TRACKING_URI = (
    "set the pipeline's mlflow_tracking_uri (an MLflow server, http://mlflow.kubeflow:5000) or the MLFLOW_TRACKING_URI environment variable of the step; on one machine, sqlite:////abs/path/mlflow.db"
)


class TrackingError(KfpMlopsError):
    """The MLflow tracking server or registry failed."""

    exit_code = 3


def resolve_tracking_uri(parameter: str, environment: Mapping[str, str]) -> str:
    """The tracking URI a step uses: its parameter, else MLFLOW_TRACKING_URI, else an error.

    There is no silent default: on a cluster a store in the pod's file system is gone
    when the pod ends, and the next step (register) would never find the run.
    """
    uri = parameter.strip() or environment.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise TrackingError("no MLflow tracking URI is set", fix=SET_TRACKING_URI)
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme not in ("http", "https", "sqlite", "postgresql", "mysql", "databricks") and not scheme.startswith(("postgresql+", "mysql+")):
        raise DataError(f"unsupported MLflow tracking URI {redact_uri(uri)!r}", fix=SET_TRACKING_URI)
    if scheme == "sqlite" and not uri.startswith("sqlite:////"):
        raise DataError(f"the sqlite tracking URI {uri!r} is relative: it would depend on each step's working directory", fix="use an absolute path, sqlite:////abs/path/mlflow.db")
    return uri


def require_existing_store(tracking_uri: str) -> None:
    """A step that reads runs (register) must find the store: a missing sqlite file means the
    store lived in another pod's file system (or a volume not mounted here), and MLflow would
    silently create an empty one."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///") :]).is_file():
        raise DataError(
            f"the MLflow store {tracking_uri} does not exist in this step",
            fix="a sqlite store only works where every step mounts the same volume; on a cluster use an MLflow tracking server (" + SET_TRACKING_URI + ")",
        )


def wait_until_reachable(tracking_uri: str, *, within_s: float | None = None) -> None:
    """For an HTTP server: one answered request within ``within_s`` (default REACHABLE_WITHIN_S), else TrackingError."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    within_s = REACHABLE_WITHIN_S if within_s is None else within_s
    import requests

    url = tracking_uri.rstrip("/") + "/health"
    deadline = time.monotonic() + within_s
    last = ""
    while True:
        try:
            requests.get(url, timeout=min(10.0, max(1.0, deadline - time.monotonic())))
            return  # any HTTP answer: the server is there (auth and paths are checked by the real calls)
        except requests.RequestException as exc:
            last = redact_text(f"{type(exc).__name__}: {str(exc)[:200]}")
        if time.monotonic() + 2.0 > deadline:
            raise TrackingError(
                f"the MLflow tracking server {redact_uri(tracking_uri)} did not answer within {within_s:.0f}s ({last})",
                fix="check the URI, the server and the network policy between the step and the server",
            )
        time.sleep(2.0)


def client(tracking_uri: str):
    """An explicit MlflowClient for ``tracking_uri`` (tracking and registry), the server checked first."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    wait_until_reachable(tracking_uri)
    if not tracking_uri.startswith("sqlite:///"):
        return _new_client(tracking_uri)
    with _schema_lock(tracking_uri):
        return _new_client(tracking_uri)


def _new_client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def failure(what: str, exc: Exception) -> KfpMlopsError:
    """A client failure named for the user: bad arguments are data errors, the rest infrastructure."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, KfpMlopsError):
        return exc
    if isinstance(exc, MlflowException):
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return DataError(f"{what}: {redact_text(exc.message)}", fix="check the model name (letters, digits, '-', '_', '.') and the model URI")
        return TrackingError(f"{what} failed: {redact_text(exc.message)[:500]}", fix="check the tracking server; the step can be retried safely")
    return TrackingError(f"{what} failed: {redact_text(str(exc))[:500]}", fix="check that the MLflow tracking server is reachable; the step can be retried safely")


def initialize_store(tracking_uri: str) -> None:
    """Create a sqlite tracking database's schema now (``client`` would on its first open)."""
    client(tracking_uri).search_experiments(max_results=1)


def initialize_store_in_background(tracking_uri: str) -> Callable[[], None]:
    """Start creating a sqlite store's schema in a thread; returns the function that waits for it.

    The schema lock is held before this returns, so a step that opens the store meanwhile waits
    for the schema instead of migrating it too. A failure here is only logged: the first step
    that opens the store meets it again and names it.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return lambda: None
    lock = _schema_lock(tracking_uri)

    def create() -> None:
        # MLflow announces each schema step at INFO: it would land between the run's step lines.
        announcer = logging.getLogger("mlflow.store.db.utils")
        level = announcer.level
        announcer.setLevel(logging.WARNING)
        with lock:
            try:
                _new_client(tracking_uri).search_experiments(max_results=1)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                log.warning("creating the MLflow store %s failed: %s", redact_uri(tracking_uri), redact_text(str(exc))[:300])
            finally:
                announcer.setLevel(level)

    worker = threading.Thread(target=create, name="mlflow-store-schema")  # not a daemon: never cut off mid-migration
    worker.start()
    return worker.join


def _schema_lock(tracking_uri: str) -> IO[str]:
    """The open, exclusively locked lock file beside a sqlite database (released when closed).

    MLflow creates or migrates the schema when a client first opens the database, and two
    first opens at once (parallel trials, two runs on a fresh folder) race and corrupt the file.
    """
    database = Path(tracking_uri[len("sqlite:///") :])
    return file_lock.acquire(database.with_name(database.name + ".init-lock"))


def default_tracking_uri(folder: Path) -> str:
    """The embedded default of the CLI: a sqlite database in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside a sqlite database (MLflow would otherwise use ./mlruns under the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
    return None


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs go.

    Attributes:
        tracking_uri: MLflow tracking URI (sqlite:////abs/path.db, http://server:5000, ...).
        experiment: Experiment name.
        run_name: Run name (default: MLflow's).
        tags: Lineage tags (KFP run and task ids, dataset fingerprint, ...).
        attempt_key: Identifies one step across its retries: a retry marks the runs
            its killed attempts left RUNNING as KILLED.
    """

    tracking_uri: str
    experiment: str = "kfp-mlops"
    run_name: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    attempt_key: str = ""


class MlflowRun:
    """An open MLflow run; use as a context manager (FAILED on an exception, else FINISHED)."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.settings = settings
        self.client = client(settings.tracking_uri)
        mlflow_client = self.client
        tags = dict(settings.tags) | ({ATTEMPT_TAG: settings.attempt_key} if settings.attempt_key else {})

        def start():
            from mlflow.exceptions import MlflowException

            try:
                experiment = mlflow_client.get_experiment_by_name(settings.experiment)
                if experiment is None:
                    try:
                        experiment_id = mlflow_client.create_experiment(settings.experiment, artifact_location=_artifact_location(settings.tracking_uri))
                    except MlflowException:
                        experiment_id = mlflow_client.get_experiment_by_name(settings.experiment).experiment_id  # created by a parallel trial
                else:
                    experiment_id = experiment.experiment_id
                if settings.attempt_key:
                    _kill_stale_attempts(mlflow_client, experiment_id, settings.attempt_key)
                return mlflow_client.create_run(experiment_id, run_name=settings.run_name or None, tags=tags)
            except Exception as exc:  # noqa: BLE001 - parallel trials race to create a sqlite schema; servers restart
                raise TransientError(redact_text(str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)) from exc

        try:
            self.run = call_with_retry(start, what=f"start an MLflow run at {redact_uri(settings.tracking_uri)}", policy=RetryPolicy(attempts=4, base_delay_s=1.0))
        except Exception as exc:  # noqa: BLE001 - any tracking failure, named for the user
            raise TrackingError(f"cannot start an MLflow run at {redact_uri(settings.tracking_uri)}: {redact_text(str(exc))[:300]}", fix="check the tracking URI and that the server is up") from exc
        self.run_id = self.run.info.run_id
        self.log_seconds = 0.0

    def __enter__(self) -> "MlflowRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if exc_type else "FINISHED")

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        started = time.perf_counter()
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step or 0) for k, v in values.items()])
        self.log_seconds += time.perf_counter() - started

    def log_model_folder(self, mlflow_model_dir: Path) -> str:
        """Upload a saved MLflow model folder as this run's ``model`` artifact; its runs:/ URI."""
        started = time.perf_counter()
        self.client.log_artifacts(self.run_id, str(mlflow_model_dir), MODEL_ARTIFACT_PATH)
        self.log_seconds += time.perf_counter() - started
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT_PATH}"


def _kill_stale_attempts(mlflow_client: Any, experiment_id: str, attempt_key: str) -> None:
    """A SIGKILLed attempt never ends its run: the retry marks it KILLED."""
    stale = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`{ATTEMPT_TAG}` = '{attempt_key}' and attributes.status = 'RUNNING'", max_results=50)
    for run in stale:
        mlflow_client.set_terminated(run.info.run_id, status="KILLED")


def download_model_version(mlflow_client: Any, tracking_uri: str, name: str, version: str, destination: Path) -> Path:
    """Download a registered version's files (its MLflow model folder) under ``destination``.

    Only files move: nothing of the model is imported or run here.
    """
    from mlflow.artifacts import download_artifacts

    try:
        uri = mlflow_client.get_model_version_download_uri(name, version)
        return Path(download_artifacts(artifact_uri=uri, dst_path=str(destination), tracking_uri=tracking_uri))
    except Exception as exc:  # noqa: BLE001 - missing or unreadable artifacts
        raise failure(f"downloading {name} version {version}", exc) from exc
