"""MLflow Model Registry adapter: idempotent registration, aliases, promotion with rollback.

Aliases, not stages: a new version becomes ``challenger``; promotion moves
``champion`` to it and gives the replaced champion ``previous`` (rollback is one
``promote(name, previous)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kfp_mlops.components._shared.errors import DataError, KfpMlopsError

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


class RegistryError(KfpMlopsError):
    """The model registry failed."""

    exit_code = 3


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    run_id: str
    source: str
    created: bool = False


class Registry:
    def __init__(self, tracking_uri: str) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _call(self, what: str, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure, named for the user
            raise _translate(what, exc) from exc

    def alias(self, name: str, alias: str) -> Version | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise RegistryError(f"reading alias {name}@{alias} failed: {exc.message}", fix="check the tracking server") from exc
        return Version(mv.name, str(mv.version), mv.run_id or "", mv.source)

    def register(self, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> Version:
        """A version for ``run_id``'s model: the existing one when a retried step registers again."""
        from mlflow.exceptions import MlflowException

        existing = self._call("searching model versions", self.client.search_model_versions, f"name='{name}' and run_id='{run_id}'")
        if existing:
            mv = sorted(existing, key=lambda m: int(m.version))[0]
            return Version(name, str(mv.version), run_id, mv.source, created=False)
        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # a parallel run created it: fine
                raise _translate(f"creating registered model {name!r}", exc) from exc
        mv = self._call(f"registering {model_uri} as {name!r}", self.client.create_model_version, name, model_uri, run_id=run_id, tags=tags)
        return Version(name, str(mv.version), run_id, mv.source, created=True)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(f"setting {name}@{alias}", self.client.set_registered_model_alias, name, alias, version)

    def promote(self, name: str, version: str) -> str | None:
        """Make ``version`` the champion; the replaced champion becomes ``previous``. Returns it."""
        current = self.alias(name, CHAMPION)
        if current is not None and current.version == version:
            return None
        if current is not None:
            self.set_alias(name, PREVIOUS, current.version)
        self.set_alias(name, CHAMPION, version)
        return current.version if current else None


def _translate(what: str, exc: Exception) -> KfpMlopsError:
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return DataError(f"{what}: {exc.message}", fix="use a model name of letters, digits, '-', '_' and '.'")
        return RegistryError(f"{what} failed: {exc.message}", fix="check the tracking server; the step can be retried safely")
    return RegistryError(f"{what} failed: {exc}", fix="check that the MLflow tracking server is reachable; the step can be retried safely")
