"""Benchmark 1: ingest CSV to Parquet against a plain pyarrow streaming loop, same run.

Reports throughput (MB/s of CSV), the ratio ours/pyarrow (target >= 0.8), and
peak RSS at two file sizes (target < 1 GiB, not growing with the file).

    python benchmarks/bench_ingest.py [--rows 10000000] [--small-rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DATA, demo_file, measure, median_of, size_arguments  # noqa: E402

BASELINE_SETUP = "import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq"
BASELINE = """
reader = pacsv.open_csv({src!r})
with pq.ParquetWriter({dst!r}, reader.schema) as writer:
    for batch in reader:
        writer.write_batch(batch)
"""
OURS_SETUP = "from kfp_mlops.components.ingest.core import IngestOptions, ingest"
OURS = """
ingest({src!r}, {dst!r}, options=IngestOptions(entity_column="entity_id", timestamp_column="event_timestamp"))
"""


def run(rows: int, repeat: int) -> tuple[dict, dict, float]:
    src = demo_file(rows, ".csv")
    size_mb = src.stat().st_size / 1e6
    out = DATA / "bench-out.parquet"
    base_runs, our_runs = [], []
    for _ in range(repeat):  # interleaved, so drift in machine load hits both alike
        base_runs.append(measure(BASELINE_SETUP, BASELINE.format(src=str(src), dst=str(out))))
        our_runs.append(measure(OURS_SETUP, OURS.format(src=str(src), dst=str(out))))
    out.unlink(missing_ok=True)
    return median_of(base_runs), median_of(our_runs), size_mb


def main() -> None:
    args = size_arguments()
    print(f"{'rows':>12} {'CSV MB':>8} {'pyarrow MB/s':>13} {'ingest MB/s':>12} {'ratio':>6} {'pyarrow RSS':>12} {'ingest RSS':>11}")
    for rows in (args.small_rows, args.rows):
        base, ours, size = run(rows, args.repeat)
        b_tp, o_tp = size / base["seconds"], size / ours["seconds"]
        print(
            f"{rows:>12,} {size:>8,.0f} {b_tp:>13.1f} {o_tp:>12.1f} {o_tp / b_tp:>6.2f} {base['peak_rss_mib']:>9.0f} MiB {ours['peak_rss_mib']:>8.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
