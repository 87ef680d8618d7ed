"""MLflow Model Registry adapter: idempotent registration, aliases, promotion with rollback.

Aliases, not stages: a new version becomes ``challenger``; promotion moves
``champion`` to it and gives the replaced champion ``previous`` (rollback is one
``promote(name, previous)``).
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any, Iterator

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
        # MLflow 3 logged models (models:/m-...) must name their model id when registered over REST.
        model_id = model_uri.split("/", 1)[1] if model_uri.startswith("models:/m-") else None
        mv = self._call(f"registering {model_uri} as {name!r}", self.client.create_model_version, name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
        return Version(name, str(mv.version), run_id, mv.source, created=True)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(f"setting {name}@{alias}", self.client.set_registered_model_alias, name, alias, version)

    def promote(self, name: str, version: str) -> str | None:
        """Make ``version`` the champion; the replaced champion becomes ``previous``. Returns it.

        Two pipelines promoting at once would both read the same champion and one
        replaced champion would lose its ``previous`` alias; a registry-side lock
        serializes the read-and-move.
        """
        with self.lock(name):
            current = self.alias(name, CHAMPION)
            if current is not None and current.version == version:
                return None
            if current is not None:
                self.set_alias(name, PREVIOUS, current.version)
            self.set_alias(name, CHAMPION, version)
            return current.version if current else None

    @contextlib.contextmanager
    def lock(self, name: str, *, timeout_s: float = 120.0, stale_s: float = 300.0) -> Iterator[None]:
        """A mutex in the registry itself: creating a registered model is atomic (one creator
        wins, the others get RESOURCE_ALREADY_EXISTS), on sqlite and on any tracking server."""
        from mlflow.exceptions import MlflowException

        lock_name = f"{name}.promotion-lock"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.create_registered_model(lock_name, tags={"kfp_mlops.lock_time": str(time.time())}, description="kfp-mlops promotion lock")
                break
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise _translate(f"locking {name!r} for promotion", exc) from exc
            if self._stale(lock_name, stale_s):
                self._release(lock_name)  # its holder died mid-promotion
                continue
            if time.monotonic() > deadline:
                raise RegistryError(f"{name!r} stayed locked for promotion for {timeout_s:.0f}s", fix=f"if no promotion is running, delete the registered model {lock_name!r}")
            time.sleep(0.2 + random.random() * 0.3)
        try:
            yield
        finally:
            self._release(lock_name)

    def _stale(self, lock_name: str, stale_s: float) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            held_since = float(self.client.get_registered_model(lock_name).tags.get("kfp_mlops.lock_time", "0"))
        except MlflowException:
            return False  # released meanwhile
        return time.time() - held_since > stale_s

    def _release(self, lock_name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model(lock_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise _translate(f"releasing {lock_name!r}", exc) from exc


def _translate(what: str, exc: Exception) -> KfpMlopsError:
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return DataError(f"{what}: {exc.message}", fix="check the model name (letters, digits, '-', '_', '.') and the model URI")
        return RegistryError(f"{what} failed: {exc.message}", fix="check the tracking server; the step can be retried safely")
    return RegistryError(f"{what} failed: {exc}", fix="check that the MLflow tracking server is reachable; the step can be retried safely")
