"""MLflow adapter: one run per training step, per-epoch metrics in one batch call, the model as code."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components._shared.retry import RetryPolicy, TransientError, call_with_retry

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")


class TrackingError(KfpMlopsError):
    """The MLflow tracking server failed."""

    exit_code = 3


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs go.

    Attributes:
        tracking_uri: MLflow tracking URI (sqlite:///path.db, http://server:5000, ...).
        experiment: Experiment name.
        run_name: Run name (default: MLflow's).
        tags: Lineage tags (KFP run and task ids, dataset fingerprint, ...).
    """

    tracking_uri: str
    experiment: str = "kfp-mlops"
    run_name: str = ""
    tags: tuple[tuple[str, str], ...] = ()


class MlflowRun:
    """An open MLflow run; use as a context manager."""

    def __init__(self, settings: TrackingSettings) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow = mlflow
        mlflow.set_tracking_uri(settings.tracking_uri)

        def start():
            try:
                client = MlflowClient(settings.tracking_uri)
                experiment = client.get_experiment_by_name(settings.experiment)
                if experiment is None:
                    try:
                        experiment_id = client.create_experiment(settings.experiment, artifact_location=_artifact_location(settings.tracking_uri))
                    except mlflow.exceptions.MlflowException:
                        experiment_id = client.get_experiment_by_name(settings.experiment).experiment_id  # created by a parallel trial
                else:
                    experiment_id = experiment.experiment_id
                return client, client.create_run(experiment_id, run_name=settings.run_name or None, tags=dict(settings.tags))
            except Exception as exc:  # noqa: BLE001 - parallel trials race to create a sqlite schema; servers restart
                raise TransientError(str(exc).splitlines()[0][:300]) from exc

        try:
            self.client, self.run = call_with_retry(start, what=f"start an MLflow run at {settings.tracking_uri}", policy=RetryPolicy(attempts=5, base_delay_s=1.0))
        except Exception as exc:  # noqa: BLE001 - any tracking failure, named for the user
            raise TrackingError(f"cannot start an MLflow run at {settings.tracking_uri}: {exc}", fix="check the tracking URI and that the server is up") from exc
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

    def log_model(self, model_path: Path, preprocessing_path: Path, input_example, requirements: list[str]) -> str:
        """Log the model (as code, with signature and input example); return its models:/ URI."""
        with self.mlflow.start_run(run_id=self.run_id):
            info = self.mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_CODE),
                artifacts={"model": str(model_path), "preprocessing": str(preprocessing_path)},
                input_example=input_example,
                pip_requirements=requirements,
            )
        return info.model_uri


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside a sqlite database (MLflow would otherwise use ./mlruns under the working directory)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
    return None


def default_tracking_uri(folder: Path) -> str:
    """The embedded default: a sqlite database in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def initialize_store(tracking_uri: str) -> None:
    """Create a sqlite tracking database's schema once, before parallel trials open it
    (concurrent first opens race in MLflow's schema migration and corrupt the file)."""
    if tracking_uri.startswith("sqlite:///"):
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri).search_experiments(max_results=1)
