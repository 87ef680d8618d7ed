"""Point-in-time correct training sets and their time-based split (the random one is in ``splitting``).

Label rows are (entity, timestamp, label). Each gets, through Feast's
``get_historical_features``, the latest feature row of its entity at or before
its own timestamp (within the TTL); a label row with none keeps its place with
null features. The rows are then split by label time: train < b1 <= validation
< b2 <= test, so no split sees a later split's events.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.spec import FeatureSpec

SPLITS = ("train", "validation", "test")
FRACTIONS_FIX = "pass three shares of the label time range that sum to 1, e.g. 0.7,0.15,0.15"


@dataclass(frozen=True)
class Split:
    """The training set cut in three.

    Attributes:
        tables: train, validation and test rows.
        boundaries: The two cut timestamps (ISO 8601) of a time split: validation starts at the
            first, test at the second; empty for a random split.
        strategy: ``time`` or ``random``.
        seed: The random split's seed (None for a time split).
        stratified_by: The label a random split kept the class shares of; empty if none.
    """

    tables: dict[str, pa.Table]
    boundaries: tuple[str, str]
    strategy: str = "time"
    seed: int | None = None
    stratified_by: str = ""


def label_rows(dataset: str | Path, spec: FeatureSpec) -> pa.Table:
    """Entity, timestamp and label of every row (the entity rows of the historical join)."""
    table = pq.read_table(str(dataset), columns=[spec.entity, spec.timestamp, spec.label])
    ts = table.column(spec.timestamp)
    if pa.types.is_date(ts.type):  # Feast finds the event time column by its timestamp type
        table = table.set_column(1, spec.timestamp, ts.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")))
    elif pa.types.is_timestamp(ts.type) and ts.type.tz is None:
        table = table.set_column(1, spec.timestamp, ts.cast(pa.timestamp(ts.type.unit, tz="UTC")))
    return table


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` -> checked train, validation and test shares."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise DataError(f"split_fractions {str(text)[:60]!r} is not three comma-separated numbers", fix=FRACTIONS_FIX) from None
    return check_fractions(values)


def check_fractions(fractions: Any) -> tuple[float, float, float]:
    """Three finite positive shares summing to 1 (NaN passes every comparison, so test it by name)."""
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise DataError(f"split_fractions {fractions!r} is not three numbers", fix=FRACTIONS_FIX) from None
    if len(values) != 3:
        raise DataError(f"split_fractions has {len(values)} values {values}; it needs three (train, validation, test)", fix=FRACTIONS_FIX)
    bad = [(name, v) for name, v in zip(SPLITS, values) if not math.isfinite(v) or v <= 0]
    if bad:
        shown = ", ".join(f"{name} {v}" for name, v in bad)
        raise DataError(f"split_fractions {values}: every share must be a finite number above 0 ({shown})", fix=FRACTIONS_FIX)
    if abs(sum(values) - 1) > 1e-6:
        raise DataError(f"split_fractions {values} sum to {sum(values):g}, not 1", fix=FRACTIONS_FIX)
    return values  # type: ignore[return-value]


def historical_features(store: Any, rows: pa.Table, service_name: str) -> pa.Table:
    """Feast's point-in-time join of ``rows`` with the features of ``service_name``."""
    service = store.get_feature_service(service_name)
    job = store.get_historical_features(entity_df=rows.to_pandas(), features=service)
    return job.to_arrow()


def split_by_time(table: pa.Table, timestamp: str, fractions: tuple[float, float, float]) -> Split:
    """Cut at the label-time quantiles given by ``fractions`` (train, validation, test)."""
    fractions = check_fractions(fractions)
    ts = table.column(timestamp).cast(pa.int64()).to_numpy()
    distinct = np.unique(ts)
    if len(distinct) < 3:
        raise DataError(
            f"{len(distinct)} distinct label timestamps cannot be split three ways by time",
            fix="split the rows at random: split=random (kfp-mlops run training --split random)",
        )
    cut1 = distinct[min(len(distinct) - 2, max(1, int(round(fractions[0] * len(distinct)))))]
    cut2 = distinct[min(len(distinct) - 1, max(np.searchsorted(distinct, cut1) + 1, int(round((fractions[0] + fractions[1]) * len(distinct)))))]
    masks = {"train": ts < cut1, "validation": (ts >= cut1) & (ts < cut2), "test": ts >= cut2}
    tables = {name: table.filter(pa.array(mask)) for name, mask in masks.items()}
    unit = table.schema.field(timestamp).type.unit
    to_iso = lambda v: pa.scalar(int(v), type=pa.timestamp(unit, tz="UTC")).as_py().isoformat()  # noqa: E731
    return Split(tables=tables, boundaries=(to_iso(cut1), to_iso(cut2)))


def null_rates(table: pa.Table, features: list[str]) -> dict[str, float]:
    """Share of null values per feature."""
    rows = max(table.num_rows, 1)
    return {name: table.column(name).null_count / rows for name in features}


def write_split(split: Split, paths: dict[str, Path]) -> None:
    for name in SPLITS:
        pq.write_table(split.tables[name], str(paths[name]))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)


def sample_entities(table: pa.Table, entity: str, n: int, seed: int = 0) -> list[Any]:
    values = pc.unique(table.column(entity)).to_pylist()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(values), size=min(n, len(values)), replace=False)
    return [values[i] for i in sorted(picks)]
