"""Features from the Feast online store for rows that carry only their entity key.

The KServe transformer pattern, done in-process: the rows of one request that name an
entity get their missing features in ONE batched ``get_online_features`` call; values
a row sends itself win. A store failure is a ``FeatureStoreError`` (HTTP 503) naming the
store; the store is then reopened on the next request, so the server recovers when the
store does (a cached connection to a replaced or repaired file would not).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kfp_mlops.components._shared.errors import FeatureStoreError, KfpMlopsError
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.components.serve.codec import MISSING, RequestError


@dataclass(frozen=True)
class LookupResult:
    rows_looked_up: int
    rows_without_stored_features: int


class FeatureLookup:
    """The online features of a featurize ``feature_repo`` folder, for the model's features it holds."""

    def __init__(self, repo: str | Path, model_features: list[str], environ: Mapping[str, str] | None = None) -> None:
        self.repo = Path(repo)
        self.environ = environ
        spec_path = self.repo / "feature_spec.json"
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            self.entity = str(spec["entity"])
            self.service_name = f"{spec['name']}_training"
            entity_type = str((spec.get("_schema") or {}).get("entity", "string"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FeatureStoreError(
                f"the feature repo has no readable feature_spec.json ({type(exc).__name__}: {exc})",
                where=str(spec_path),
                fix="pass --feature-repo the feature_repo folder written by kfp-mlops featurize",
            ) from exc
        self.integer_keys = entity_type.startswith(("int", "uint"))
        self.store_name = self._describe_store()
        self._lock = threading.Lock()
        self._store: Any = None
        self._service: Any = None
        store = self._open()
        served = {f.name for view in self._service.feature_view_projections for f in view.features}
        self.features = [name for name in model_features if name in served]
        if not self.features:
            raise FeatureStoreError(
                f"feature service {self.service_name!r} holds none of the model's features {model_features[:10]}",
                where=str(self.repo),
                fix="pass the feature_repo of the featurize run the model was trained from",
            )
        del store

    def _describe_store(self) -> str:
        try:
            import yaml

            config = yaml.safe_load((self.repo / "feature_store.yaml").read_text()) or {}
            online = config.get("online_store") or {}
            kind = online.get("type", "sqlite") if isinstance(online, dict) else str(online)
            where = online.get("connection_string") or online.get("path") or "online.db" if isinstance(online, dict) else ""
            return redact_text(f"{kind} online store ({where}) of the feature repo {self.repo}")
        except Exception:  # noqa: BLE001 - only a description
            return f"online store of the feature repo {self.repo}"

    def _open(self) -> Any:
        from kfp_mlops.components.featurize.repo import open_store

        with self._lock:
            if self._store is None:
                try:
                    store = open_store(self.repo, self.environ)
                    self._service = store.get_feature_service(self.service_name)
                except KfpMlopsError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any registry failure, named for the user
                    raise self._failure("opening the feature store", exc) from None
                self._store = store
            return self._store

    def _failure(self, doing: str, exc: Exception) -> FeatureStoreError:
        message = redact_text(f"{type(exc).__name__}: {exc}")[:500]
        return FeatureStoreError(
            f"{doing} failed: {message}", where=self.store_name, fix="check that the feature store is reachable and readable from the model server; requests with every feature sent still work"
        )

    def fill(self, columns: dict[str, list[Any]], rows: int, request_field: str) -> LookupResult:
        """Fill the ``MISSING`` features of rows that carry the entity key, in one batched lookup."""
        keys_column = columns.get(self.entity)
        if keys_column is None:
            return LookupResult(0, 0)
        wanted = [i for i in range(rows) if keys_column[i] is not MISSING and any(columns[f][i] is MISSING for f in self.features)]
        if not wanted:
            return LookupResult(0, 0)
        keys = []
        for i in wanted:
            key = keys_column[i]
            if self.integer_keys and type(key) is not int or not self.integer_keys and type(key) is not str:
                raise RequestError(
                    f"entity key {self.entity!r} is {key!r}; this feature store keys entities by {'integer' if self.integer_keys else 'text'}",
                    where=f"{request_field}[{i}]",
                    fix=f"send {self.entity!r} as {'an integer' if self.integer_keys else 'text'}",
                )
            keys.append(key)
        unique = list(dict.fromkeys(keys))
        found = self._lookup(unique)
        position = {key: j for j, key in enumerate(unique)}
        without = 0
        for i, key in zip(wanted, keys):
            j = position[key]
            values = [found[f][j] for f in self.features]
            if all(v is None for v in values):
                without += 1
            for name, value in zip(self.features, values):
                column = columns[name]
                if column[i] is MISSING:
                    column[i] = value
        return LookupResult(len(wanted), without)

    def _lookup(self, keys: list[Any]) -> dict[str, list[Any]]:
        store = self._open()
        try:
            response = store.get_online_features(features=self._service, entity_rows=[{self.entity: k} for k in keys]).to_dict()
        except Exception as exc:  # noqa: BLE001 - any store failure is an outage for this request
            with self._lock:
                self._store = None  # reopened on the next request: the server recovers with the store
            raise self._failure(f"reading {len(keys)} entities", exc) from None
        out = {}
        for name in self.features:
            values = response.get(name)
            if values is None or len(values) != len(keys):
                raise self._failure("reading the online store", KeyError(f"feature {name!r} missing from the response"))
            # Feast returns a NaN it stored as "no value"; the model imputes a missing value.
            out[name] = [None if isinstance(v, float) and v != v else v for v in values]
        return out
