"""The A/B analysis over a large prediction log: streamed (ours) against loading it whole (baseline).

Writes a log of N predictions with an outcome each in the layout the model server writes
(zstd Parquet parts of 100,000 rows under predictions/date=.../, feedback/ beside it; a
realistic ~150-byte features JSON per row), then in fresh processes:

- ours: ``read_experiment`` (DuckDB over the parts: only the needed columns, the join and
  the per-arm, per-look sums in bounded memory) + ``analyze``;
- baseline: the obvious way, ``read_predictions`` + ``read_feedback`` + ``join_outcomes``
  (the whole log as Arrow tables) and a pandas group-by for the same per-arm sums.

Prints wall time and peak RSS of each and the ratios. Target: 10M rows under 10 s, bounded memory.

    python benchmarks/bench_ab_analysis.py [--rows 10000000] [--small-rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from _harness import DATA, measure  # noqa: E402

PART_ROWS = 100_000
T0_US = int(datetime(2026, 11, 28, tzinfo=timezone.utc).timestamp() * 1_000_000)

OURS = """
from kfp_mlops.components.abtest.logs import read_experiment
from kfp_mlops.components.abtest.analysis import analyze
from kfp_mlops.components.abtest.settings import AnalysisSettings
"""
OURS_WORK = """
settings = AnalysisSettings(unit={unit!r})
result = analyze(read_experiment({sink!r}, settings), settings, {{"champion": 50, "challenger": 50}})
print("decision", result.decision.action, {{n: int(a.units[-1]) for n, a in result.data.arms.items()}})
"""
BASELINE = """
from kfp_mlops.components._shared.prediction_log import join_outcomes, read_feedback, read_predictions
"""
BASELINE_WORK = """
joined = join_outcomes(read_predictions({sink!r}), read_feedback({sink!r})).to_pandas()
joined["m"] = (joined.prediction == joined.outcome).astype(float)
sums = joined.groupby("arm").m.agg(["count", "sum"])
print("arms", sums.to_dict())
"""


def write_log(sink: Path, rows: int, seed: int = 0) -> None:
    """A log of ``rows`` predictions over one day, each with an outcome; challenger 3 points more accurate."""
    rng = np.random.default_rng(seed)
    day = sink / "predictions" / "date=2026-11-28"
    feedback = sink / "feedback" / "date=2026-11-28"
    day.mkdir(parents=True, exist_ok=True)
    feedback.mkdir(parents=True, exist_ok=True)
    us_per_row = int(86_400e6 / rows)
    for part, start in enumerate(range(0, rows, PART_ROWS)):
        n = min(PART_ROWS, rows - start)
        index = np.arange(start, start + n)
        challenger = rng.random(n) < 0.5
        label = rng.integers(0, 2, n)
        right = rng.random(n) < np.where(challenger, 0.73, 0.70)
        times = pa.array(T0_US + index * us_per_row, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        ids = pa.array([f"{i:016x}-{part:04d}" for i in index])
        features = pa.array(
            [
                f'{{"amount": {a:.2f}, "age": {b}, "country": "DE", "device": "mobile", "plan": "pro", "score_a": {c:.4f}}}'
                for a, b, c in zip(rng.gamma(2, 50, n), rng.integers(18, 90, n), rng.random(n))
            ]
        )
        table = pa.table({
            "request_id": ids, "time": times, "arm": pa.array(np.where(challenger, "challenger", "champion")),
            "model_name": pa.array(["demo"] * n), "model_version": pa.array(np.where(challenger, "2", "1")), "features": features,
            "prediction": pa.array(np.where(right, label, 1 - label).astype(str)), "score": pa.array(rng.random(n)),
            "latency_ms": pa.array(rng.gamma(2.0, 2.0, n)), "routing_key": pa.array([f"user-{u}" for u in rng.integers(0, 200_000, n)]),
        })  # fmt: skip
        pq.write_table(table, day / f"part-{part:05d}.parquet", compression="zstd")
        pq.write_table(pa.table({"request_id": ids, "outcome": pa.array(label.astype(str)), "time": times}), feedback / f"part-{part:05d}.parquet", compression="zstd")


def log_of(rows: int) -> Path:
    sink = DATA / f"ab_log_{rows}"
    if not (sink / "predictions").exists():
        print(f"writing a log of {rows:,} predictions to {sink} ...", flush=True)
        write_log(sink, rows)
    return sink


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-max-rows", type=int, default=10_000_000, help="skip the baseline above this size")
    args = parser.parse_args()
    print(f"{'rows':>12} {'variant':<22} {'seconds':>8} {'peak RSS MiB':>13}")
    for rows in (args.small_rows, args.rows):
        sink = str(log_of(rows))
        results = {}
        for unit in ("request", "user"):
            results[f"ours ({unit})"] = measure(OURS, OURS_WORK.format(sink=sink, unit=unit))
        if rows <= args.baseline_max_rows:
            results["baseline (whole log)"] = measure(BASELINE, BASELINE_WORK.format(sink=sink))
        for name, r in results.items():
            print(f"{rows:>12,} {name:<22} {r['seconds']:>8.2f} {r['peak_rss_mib']:>13.0f}", flush=True)
        if "baseline (whole log)" in results:
            base, ours = results["baseline (whole log)"], results["ours (request)"]
            print(f"{'':>12} ratio baseline/ours: time {base['seconds'] / ours['seconds']:.1f}x, peak RSS {base['peak_rss_mib'] / ours['peak_rss_mib']:.1f}x")


if __name__ == "__main__":
    main()
