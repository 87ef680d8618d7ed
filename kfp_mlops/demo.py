"""Deterministic demo dataset: customers' events with a binary label that has real signal.

Any size (generated in fixed chunks, so memory stays flat at tens of millions of
rows), the same bytes for the same seed, and an optional drift injection
(shifted distributions and categories training never saw) for monitoring demos.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kfp_mlops.components._shared.atomic import atomic_path

CHUNK_ROWS = 250_000
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
SPAN = dt.timedelta(days=90)

COUNTRIES = np.array(["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA"])
COUNTRY_P = np.array([0.30, 0.14, 0.10, 0.12, 0.14, 0.08, 0.07, 0.05])
NEW_COUNTRIES = np.array(["NG", "VN"])
DEVICES = np.array(["mobile", "desktop", "tablet"])
DEVICE_P = np.array([0.55, 0.35, 0.10])
PLANS = np.array(["free", "basic", "pro", "enterprise"])
PLAN_P = np.array([0.50, 0.25, 0.18, 0.07])
PLAN_EFFECT = np.array([-0.6, 0.0, 0.5, 0.9])
DEVICE_EFFECT = np.array([0.2, -0.1, 0.0])

SCHEMA = pa.schema(
    [
        ("entity_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
        ("age", pa.int64()),
        ("tenure_days", pa.float64()),
        ("score_a", pa.float64()),
        ("score_b", pa.float64()),
        ("num_txn_7d", pa.int64()),
        ("country", pa.string()),
        ("device", pa.string()),
        ("plan", pa.string()),
        ("label", pa.int64()),
    ]
)


@dataclass(frozen=True)
class DemoSpec:
    """What to generate.

    Attributes:
        rows: Number of rows.
        seed: Seed; the same seed and size give the same data.
        drift: 0 for the training distribution; up to 1 shifts numeric
            distributions, the device mix and adds unseen countries, and changes
            how the label depends on the inputs (concept drift: a model trained
            on drift 0 gets worse, a retrained one recovers).
        entities: Number of distinct entity ids (default: rows // 20, at least 1).
    """

    rows: int
    seed: int = 7
    drift: float = 0.0
    entities: int | None = None


def _chunk(spec: DemoSpec, start_row: int, n: int) -> pa.RecordBatch:
    rng = np.random.default_rng([spec.seed, start_row])
    entities = spec.entities or max(1, spec.rows // 20)
    d = spec.drift
    index = np.arange(start_row, start_row + n, dtype=np.float64)
    span_us = SPAN / dt.timedelta(microseconds=1)
    offsets = ((index + rng.random(n)) * (span_us / max(spec.rows, 1))).astype(np.int64)
    timestamps = np.datetime64(START.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")

    entity = rng.integers(0, entities, n, dtype=np.int64)
    # An entity-level trait gives the label a per-entity component, as real churn data has.
    entity_trait = np.sin(entity * 12.9898 + spec.seed) * 0.8
    amount = rng.lognormal(mean=3.5 + 0.6 * d, sigma=0.9, size=n).round(2)
    age = rng.integers(18, 91, n, dtype=np.int64)
    tenure = rng.gamma(2.0, 200.0, n).round(0)
    tenure[rng.random(n) < 0.01] = np.nan
    score_a = rng.normal(0.0 + 1.5 * d, 1.0, n)
    score_b = rng.normal(0.0, 1.0 + d, n)
    txn = rng.poisson(3.0, n).astype(np.int64)

    country_p = COUNTRY_P * (1 - 0.3 * d)
    all_countries = np.concatenate([COUNTRIES, NEW_COUNTRIES])
    all_p = np.concatenate([country_p, np.full(2, 0.15 * d)])
    country = rng.choice(all_countries, n, p=all_p / all_p.sum())
    device_p = DEVICE_P if d == 0 else np.array([0.55 - 0.3 * d, 0.35, 0.10 + 0.3 * d])
    device_idx = rng.choice(3, n, p=device_p / device_p.sum())
    plan_idx = rng.choice(4, n, p=PLAN_P)

    logit = -0.4 + 1.1 * score_a - (0.7 - 2.0 * d) * score_b + 0.6 * np.log1p(amount) / 4 - 0.015 * (age - 50) + 0.12 * (txn - 3) + PLAN_EFFECT[plan_idx] + DEVICE_EFFECT[device_idx] + entity_trait
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    tenure_arr = pa.array(tenure, mask=np.isnan(tenure))
    columns = [
        pa.array(entity),
        pa.array(timestamps).cast(pa.timestamp("us", tz="UTC")),
        pa.array(amount),
        pa.array(age),
        tenure_arr,
        pa.array(score_a.round(6)),
        pa.array(score_b.round(6)),
        pa.array(txn),
        pa.array(country),
        pa.array(DEVICES[device_idx]),
        pa.array(PLANS[plan_idx]),
        pa.array(label),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def iter_demo_batches(spec: DemoSpec) -> Iterator[pa.RecordBatch]:
    """Yield the demo data in chunks of at most ``CHUNK_ROWS`` rows."""
    if spec.rows < 1:
        raise ValueError(f"rows must be at least 1, got {spec.rows}")
    for start in range(0, spec.rows, CHUNK_ROWS):
        yield _chunk(spec, start, min(CHUNK_ROWS, spec.rows - start))


def write_demo_dataset(path: str | Path, spec: DemoSpec) -> Path:
    """Write the demo dataset to ``path``; the format follows the extension (.csv or .parquet)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"demo data is written as .csv or .parquet, not {out.name!r}")
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            with pacsv.CSVWriter(str(tmp), SCHEMA) as writer:
                for batch in iter_demo_batches(spec):
                    writer.write_batch(batch)
        else:
            with pq.ParquetWriter(str(tmp), SCHEMA) as writer:
                for batch in iter_demo_batches(spec):
                    writer.write_batch(batch)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kfp-mlops demo-data", description=__doc__)
    parser.add_argument("output", help="file to write, .csv or .parquet")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift", type=float, default=0.0, help="0 (none) to 1 (strong)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be at least 1, not {args.rows}")
    if not 0.0 <= args.drift <= 1.0:
        parser.error(f"--drift must be between 0 and 1, not {args.drift}")
    path = write_demo_dataset(args.output, DemoSpec(rows=args.rows, seed=args.seed, drift=args.drift))
    print(f"wrote {args.rows:,} demo rows to {path}")
