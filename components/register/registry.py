"""MLflow Model Registry: idempotent registration, aliases, a promotion lock that takes nothing it did not make.

Aliases, not stages: a new version becomes ``challenger``; promotion moves
``champion`` to it and gives the replaced champion ``previous`` (rollback is one
``promote_locked(name, previous)`` under the lock).

The lock is a registered model with a reserved, fixed-length name
(``kfp-mlops-lock.<hash of the model name>``) carrying an owner tag: creating a
registered model is atomic on sqlite and on any tracking server, so one creator wins.
A registered model of that name without the owner tags is someone's model: the lock
refuses to touch it. A lock is broken only when it is ours-in-kind (tagged) and stale,
and released only by its owner.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kfp_mlops.components._shared import mlflow_adapter
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import TrackingError
from kfp_mlops.components._shared.model_artifact import MODEL_FILES
from kfp_mlops.components._shared.redact import redact_uri

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
LOCK_PREFIX = "kfp-mlops-lock."
HASH_TAG = "kfp_mlops.sha256."
_LOCK_TAG, _OWNER_TAG, _TIME_TAG, _FOR_TAG = "kfp_mlops.lock", "kfp_mlops.lock_owner", "kfp_mlops.lock_time", "kfp_mlops.lock_for"

RegistryError = TrackingError  # one infrastructure error for tracking and registry failures


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    run_id: str
    source: str
    created: bool = False


# MLflow's registered_models.name is VARCHAR(256) on SQL stores.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")


def check_model_name(name: str) -> None:
    if not MODEL_NAME.match(name or ""):
        raise DataError(f"invalid model name {name[:300]!r}", fix="use at most 256 letters, digits, '.', '_' and '-', starting with a letter or digit")
    if name.startswith(LOCK_PREFIX):
        raise DataError(f"model names starting with {LOCK_PREFIX!r} are reserved for kfp-mlops promotion locks", fix="choose another model name")


def lock_name(name: str) -> str:
    """The reserved lock name of a model: fixed length, so any valid model name has one."""
    return LOCK_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:32]


def hash_tags(files: dict[str, str]) -> dict[str, str]:
    return {HASH_TAG + name: digest for name, digest in files.items()}


class Registry:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = mlflow_adapter.client(tracking_uri)

    def _call(self, what: str, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure, named for the user
            raise mlflow_adapter.failure(what, exc) from exc

    def alias(self, name: str, alias: str) -> Version | None:
        """The version ``alias`` points at, or None when the model or the alias does not exist."""
        return self._find(f"reading alias {name}@{alias}", self.client.get_model_version_by_alias, name, alias)

    def version(self, name: str, version: str) -> Version | None:
        """A registered version, or None when the model or the version does not exist."""
        return self._find(f"reading {name} version {version}", self.client.get_model_version, name, version)

    def _find(self, what: str, fn, *args: str) -> Version | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = fn(*args)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise mlflow_adapter.failure(what, exc) from exc
        except Exception as exc:  # noqa: BLE001 - an unreachable server, named for the user
            raise mlflow_adapter.failure(what, exc) from exc
        return Version(mv.name, str(mv.version), mv.run_id or "", mv.source)

    def version_tags(self, name: str, version: str) -> dict[str, str]:
        """The tags of a registered version (register records the hashes, ``blessed`` and the test metrics)."""
        mv = self._call(f"reading {name} version {version}", self.client.get_model_version, name, version)
        return dict(mv.tags or {})

    def version_aliases(self, name: str, version: str) -> list[str]:
        """The aliases that point at a version now (champion, challenger, previous, ...)."""
        mv = self._call(f"reading {name} version {version}", self.client.get_model_version, name, version)
        return sorted(mv.aliases or [])

    def recorded_hashes(self, name: str, version: str) -> dict[str, str]:
        """The model file hashes recorded as tags when the version was registered."""
        tags = self.version_tags(name, version)
        return {k[len(HASH_TAG) :]: v for k, v in tags.items() if k.startswith(HASH_TAG) and k[len(HASH_TAG) :] in MODEL_FILES}

    def download(self, name: str, version: str, destination: Path) -> Path:
        return mlflow_adapter.download_model_version(self.client, self.tracking_uri, name, version, destination)

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
                raise mlflow_adapter.failure(f"creating registered model {name!r}", exc) from exc
        except Exception as exc:  # noqa: BLE001
            raise mlflow_adapter.failure(f"creating registered model {name!r}", exc) from exc
        source = model_uri
        if model_uri.startswith("runs:/"):  # registered from the run's artifact folder, as the REST API expects
            run = self._call(f"reading run {run_id}", self.client.get_run, run_id)
            source = f"{run.info.artifact_uri.rstrip('/')}/{model_uri.split('/', 2)[2]}"
        mv = self._call(f"registering {redact_uri(model_uri)} as {name!r}", self.client.create_model_version, name, source, run_id=run_id, tags=tags)
        return Version(name, str(mv.version), run_id, mv.source, created=True)

    def models_tagged(self, key: str, value: str) -> list[str]:
        """Names of the registered models carrying tag ``key`` = ``value`` (promotion locks excluded)."""
        quoted = value.replace("'", "''")
        found = self._call(f"searching models tagged {key}", self.client.search_registered_models, f"tags.`{key}` = '{quoted}'")
        return sorted(m.name for m in found if not m.name.startswith(LOCK_PREFIX))

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call(f"tagging {name} version {version}", self.client.set_model_version_tag, name, version, key, value)

    def log_run_file(self, run_id: str, local_path: Path, artifact_dir: str) -> None:
        """Upload one file into a run's artifacts (beside the model it describes)."""
        self._call(f"uploading {local_path.name} to run {run_id}", self.client.log_artifact, run_id, str(local_path), artifact_dir)

    def download_run_file(self, run_id: str, artifact_path: str, destination: Path) -> Path | None:
        """One file of a run's artifacts, or None when the run has no such file."""
        listed = self._call(f"listing run {run_id}'s artifacts", self.client.list_artifacts, run_id, artifact_path.rsplit("/", 1)[0])
        if not any(f.path == artifact_path for f in listed):
            return None
        return Path(self._call(f"downloading {artifact_path} of run {run_id}", self.client.download_artifacts, run_id, artifact_path, str(destination)))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(f"setting {name}@{alias}", self.client.set_registered_model_alias, name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(f"removing {name}@{alias}", self.client.delete_registered_model_alias, name, alias)

    def promote_locked(self, name: str, version: str) -> str | None:
        """Make ``version`` the champion; the replaced champion becomes ``previous``. Returns it.

        The caller holds ``lock(name)``: the champion it read and gated against is the
        one replaced here.
        """
        current = self.alias(name, CHAMPION)
        if current is not None and current.version == version:
            return None
        if current is not None:
            self.set_alias(name, PREVIOUS, current.version)
        self.set_alias(name, CHAMPION, version)
        return current.version if current else None

    def promote(self, name: str, version: str) -> str | None:
        """``promote_locked`` under the lock (a rollback is ``promote(name, previous)``)."""
        with self.lock(name):
            return self.promote_locked(name, version)

    @contextlib.contextmanager
    def lock(self, name: str, *, timeout_s: float = 180.0, stale_s: float = 600.0) -> Iterator[None]:
        """Hold the promotion lock of ``name``: read the champion, gate, register and move aliases inside."""
        from mlflow.exceptions import MlflowException

        held = lock_name(name)
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                tags = {_LOCK_TAG: "1", _OWNER_TAG: owner, _TIME_TAG: str(time.time()), _FOR_TAG: name}
                self.client.create_registered_model(held, tags=tags, description=f"kfp-mlops promotion lock of {name!r}")
                break
            except MlflowException as exc:
                # RESOURCE_DOES_NOT_EXIST: a tracking server under load can lose the race between our
                # create and a concurrent release (seen in CI); whether we hold the lock is read below.
                if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                    raise mlflow_adapter.failure(f"locking {name!r} for promotion", exc) from exc
            except Exception as exc:  # noqa: BLE001
                raise mlflow_adapter.failure(f"locking {name!r} for promotion", exc) from exc
            holder = self._lock_tags(held)
            if holder is not None and holder.get(_OWNER_TAG) == owner:
                break  # our create went through although the server answered otherwise
            if holder is not None and holder.get(_LOCK_TAG) != "1":
                raise RegistryError(
                    f"a registered model named {held!r} exists and is not a kfp-mlops lock",
                    fix=f"rename that model: kfp-mlops reserves names starting with {LOCK_PREFIX!r} for its promotion locks and never deletes a model it did not create",
                )
            if holder is not None and time.time() - _float(holder.get(_TIME_TAG)) > stale_s:
                self._release(held, holder.get(_OWNER_TAG, ""))  # its holder died mid-promotion
                continue
            if time.monotonic() > deadline:
                raise RegistryError(f"{name!r} stayed locked for promotion for {timeout_s:.0f}s", fix=f"if no promotion is running, delete the registered model {held!r} (the lock of {name!r})")
            time.sleep(0.2 + random.random() * 0.3)
        try:
            yield
        finally:
            self._release(held, owner)

    def _lock_tags(self, held: str) -> dict[str, str] | None:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(held).tags or {})
        except MlflowException:
            return None  # released meanwhile

    def _release(self, held: str, owner: str) -> None:
        """Delete the lock only if it still is the one ``owner`` created."""
        from mlflow.exceptions import MlflowException

        tags = self._lock_tags(held)
        if tags is None or tags.get(_LOCK_TAG) != "1" or tags.get(_OWNER_TAG) != owner:
            return
        try:
            self.client.delete_registered_model(held)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise mlflow_adapter.failure(f"releasing {held!r}", exc) from exc


def _float(text: str | None) -> float:
    try:
        return float(text or "0")
    except ValueError:
        return 0.0
