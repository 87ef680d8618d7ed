"""Featurize core: feature table, Feast repo (apply, materialize), PIT training set, time split.

Plain Python, no KFP. The repo folder and the split files are written through
temporary paths and renamed at the end: a failure leaves none of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.atomic import atomic_path
from kfp_mlops.components._shared.errors import DataError, FeatureStoreError, KfpMlopsError
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.components.featurize.checks import check_labels, read_schema
from kfp_mlops.components.featurize.compute import FeatureTable, compute_feature_table
from kfp_mlops.components.featurize.repo import (
    FEATURES_FILE,
    StoreSettings,
    apply_and_materialize,
    build_objects,
    save_spec_with_schema,
    write_repo,
)
from kfp_mlops.components.featurize.spec import FeatureSpec
from kfp_mlops.components.featurize.sql import ident, literal
from kfp_mlops.components.featurize.training_set import (
    SPLITS,
    check_fractions,
    historical_features,
    label_rows,
    null_rates,
    sample_entities,
    split_by_time,
    utc,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeaturizeOptions:
    """How to featurize.

    Attributes:
        settings: Registry and online store (embedded sqlite by default).
        split_fractions: Train, validation, test shares of the label time range.
        duplicates: ``error`` (default) or ``last``: what to do with repeated (entity, timestamp) rows.
        online_check_entities: Entities whose online values are compared with the offline latest.
    """

    settings: StoreSettings = field(default_factory=StoreSettings)
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    duplicates: str = "error"
    online_check_entities: int = 20


@dataclass(frozen=True)
class FeaturizeResult:
    """What featurize produced."""

    table: FeatureTable
    features: list[str]
    rows: dict[str, int]
    boundaries: tuple[str, str]
    null_rates: dict[str, float]
    service: str
    online_checked: int
    seconds: dict[str, float]

    def metrics(self) -> dict[str, float]:
        out = {f"rows_{name}": float(n) for name, n in self.rows.items()}
        out["features"] = float(len(self.features))
        out["feature_rows"] = float(self.table.rows)
        out["null_rate_mean"] = sum(self.null_rates.values()) / max(len(self.null_rates), 1)
        out["null_rate_max"] = max(self.null_rates.values(), default=0.0)
        return out

    def summary_markdown(self) -> str:
        from kfp_mlops.components._shared.markdown import md_code, md_table

        lines = [
            "# Features",
            "",
            f"- **Feature service:** {md_code(self.service)} ({len(self.features)} features, {self.table.rows:,} feature rows)",
            f"- **Splits:** train {self.rows['train']:,} / validation {self.rows['validation']:,} / test {self.rows['test']:,} rows",
            f"- **Boundaries:** validation from {md_code(self.boundaries[0])}, test from {md_code(self.boundaries[1])}",
            f"- **Online check:** {self.online_checked} entities match the offline latest values",
            "",
            md_table(["feature", "type", "null rate"], [[n, self.table.feature_types.get(n, ""), f"{self.null_rates.get(n, 0):.2%}"] for n in self.features]),
        ]
        return "\n".join(lines) + "\n"


def featurize(
    dataset: str | Path,
    spec: FeatureSpec,
    *,
    repo_dir: str | Path,
    split_paths: dict[str, Path],
    options: FeaturizeOptions = FeaturizeOptions(),
    labels: str | Path | None = None,
) -> FeaturizeResult:
    """Compute, register, materialize and join features; write the repo folder and the three splits.

    Args:
        dataset: Parquet events (the ingest output).
        spec: What to compute.
        repo_dir: Folder for the feature repo.
        split_paths: Parquet path per split name (train, validation, test).
        options: Store settings, split fractions, duplicate rule.
        labels: Parquet label rows (entity, timestamp, label); default: the dataset's own rows.
    """
    started = time.perf_counter()
    _check_options(options)
    settings = options.settings
    # `import feast` costs seconds; do it while DuckDB computes the features.
    warm_up = threading.Thread(target=importlib.import_module, args=("feast",), daemon=True)
    warm_up.start()
    seconds: dict[str, float] = {}
    with atomic_path(repo_dir) as repo:
        (repo / "data").mkdir(parents=True)
        table = compute_feature_table(dataset, spec, repo / FEATURES_FILE, duplicates=options.duplicates)
        entity_type = _entity_type(dataset, spec)
        if labels is not None:
            check_labels(Path(labels), spec, read_schema(dataset).field(spec.entity).type)
        rows = label_rows(labels or dataset, spec)
        _check_label_times(rows, spec, labels or dataset)
        seconds["compute"] = time.perf_counter() - started
        warm_up.join()
        seconds["import_feast_wait"] = time.perf_counter() - started - seconds["compute"]
        # Everything above checked the inputs; from here on the registry and online store are written.
        with feast_errors(settings, "writing the feature repo's settings"):
            write_repo(repo, spec, settings)
            payload = save_spec_with_schema(repo, spec, table.feature_types, entity_type)
            objects = build_objects(payload)
        mark = time.perf_counter()
        with feast_errors(settings, "feast apply/materialize"):
            store = apply_and_materialize(repo, objects, utc(table.min_timestamp), utc(table.max_timestamp) + dt.timedelta(seconds=1), settings)
        seconds["apply_materialize"] = time.perf_counter() - mark
        mark = time.perf_counter()
        service = objects["feature_service"].name
        with feast_errors(settings, "the point-in-time join"):
            training = historical_features(store, rows, service)
        seconds["historical_join"] = time.perf_counter() - mark
        checked = verify_online(store, table, spec, service, options.online_check_entities, settings)
        split = split_by_time(training, spec.timestamp, options.split_fractions)
        # All three splits or none: each is renamed into place only when every one is written.
        with contextlib.ExitStack() as stack:
            for name in SPLITS:
                tmp = stack.enter_context(atomic_path(split_paths[name]))
                pq.write_table(split.tables[name], str(tmp))
    features = spec.feature_names()
    seconds["total"] = time.perf_counter() - started
    return FeaturizeResult(
        table=dataclasses.replace(table, path=Path(repo_dir) / FEATURES_FILE),
        features=features,
        rows={name: split.tables[name].num_rows for name in SPLITS},
        boundaries=split.boundaries,
        null_rates=null_rates(training, features),
        service=service,
        online_checked=checked,
        seconds=seconds,
    )


def _entity_type(dataset: str | Path, spec: FeatureSpec) -> str:
    return str(pq.read_schema(str(dataset)).field(spec.entity).type)


def _check_options(options: FeaturizeOptions) -> None:
    """Refuse bad options before any input is read or anything is written."""
    check_fractions(options.split_fractions)
    if options.duplicates not in ("error", "last"):
        raise DataError(f"duplicates must be 'error' or 'last', not {str(options.duplicates)[:40]!r}", fix="pass error or last")
    n = options.online_check_entities
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DataError(f"online_check_entities must be a whole number of 0 or more, not {n!r}", fix="pass e.g. 20")
    if not isinstance(options.settings, StoreSettings):
        raise DataError(f"settings must be StoreSettings, not {type(options.settings).__name__}", fix="pass StoreSettings(...)")


def _check_label_times(rows: pa.Table, spec: FeatureSpec, where: str | Path) -> None:
    # split_by_time would refuse this too, but only after the registry was written.
    distinct = len(pc.unique(rows.column(spec.timestamp)))
    if distinct < 3:
        raise DataError(f"{distinct} distinct label timestamps cannot be split three ways by time", where=str(where), fix="ingest more history")


@contextlib.contextmanager
def feast_errors(settings: StoreSettings, doing: str) -> Iterator[None]:
    """Any failure inside Feast or its stores as a ``FeatureStoreError`` whose message holds no password."""
    try:
        yield
    except KfpMlopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any store failure, named for the user
        message = redact_text(f"{type(exc).__name__}: {exc}")
        for secret in settings.secrets():
            message = message.replace(secret, "***")
        stores = settings.describe()
        error = FeatureStoreError(
            f"{doing} failed: {message[:2000]}",
            where=f"registry {stores['registry']}, online store {stores['online_store']}",
            fix="check that the registry and online store are reachable from this step and that "
            "PGPASSWORD / REDIS_PASSWORD hold their passwords",
        )
        # A client library's own message may hold the password in a form not scrubbed above.
        if settings.secrets():
            raise error from None
        raise error from exc


def offline_latest(table: FeatureTable, spec: FeatureSpec, entities: list[Any]) -> dict[Any, dict[str, Any]]:
    """The latest feature row per entity, read straight from the offline feature table."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("wanted", pa.table({"k": entities}))
        key, ts = ident(spec.entity), ident(spec.timestamp)
        rows = con.sql(
            f"SELECT * FROM read_parquet({literal(str(table.path))}) WHERE {key} IN (SELECT k FROM wanted) "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {ts} DESC) = 1"
        ).to_arrow_table().to_pylist()
    finally:
        con.close()
    return {row[spec.entity]: row for row in rows}


def verify_online(store: Any, table: FeatureTable, spec: FeatureSpec, service: str, n: int, settings: StoreSettings | None = None) -> int:
    """Compare the online store with the offline latest values for ``n`` sampled entities."""
    if n <= 0:
        return 0
    keys = pq.read_table(str(table.path), columns=[spec.entity])
    entities = sample_entities(keys, spec.entity, n)
    expected = offline_latest(table, spec, entities)
    with feast_errors(settings or StoreSettings(), "reading the online store"):
        online = store.get_online_features(features=store.get_feature_service(service), entity_rows=[{spec.entity: e} for e in entities]).to_dict()
    mismatches = []
    for i, entity in enumerate(entities):
        for name in spec.feature_names():
            want, got = expected[entity][name], online[name][i]
            if not _same(want, got):
                mismatches.append(f"{spec.entity}={entity} {name}: offline {want!r}, online {got!r}")
    if mismatches:
        raise FeatureStoreError(
            f"online store disagrees with the offline latest values ({len(mismatches)} values), e.g. {mismatches[:3]}",
            fix="re-run materialize; check that nothing else writes this project's online store",
        )
    return len(entities)


def _missing(v: Any) -> bool:
    # Feast stores a NaN feature value as "no value": both mean missing.
    return v is None or (isinstance(v, float) and math.isnan(v))


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if a == b:  # also equal infinities, whose difference is NaN
        return True
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
        except (TypeError, ValueError):
            return False
    return False
