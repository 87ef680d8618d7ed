"""Benchmark 2: validate 10M rows against one plain pyarrow pass computing the same statistics.

The baseline reads the same Parquet file batch by batch and computes, per column,
nulls, min/max, mean and variance (numbers), value counts (text and the label),
and the key uniqueness validate reports. Target: validate within 2x, bounded memory.

    python benchmarks/bench_validate.py [--rows 10000000] [--small-rows 1000000] [--repeat 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import demo_file, measure, median_of, size_arguments  # noqa: E402

BASELINE_SETUP = "import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq"
BASELINE = """
f = pq.ParquetFile({src!r})
stats, keys = {{}}, []
for batch in f.iter_batches(batch_size=131072):
    for name, col in zip(batch.schema.names, batch.columns):
        s = stats.setdefault(name, {{"nulls": 0, "counts": {{}}}})
        s["nulls"] += col.null_count
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            s["mm"] = pc.min_max(col); s["mean"] = pc.mean(col); s["var"] = pc.variance(col)
        elif pa.types.is_timestamp(col.type):
            s["mm"] = pc.min_max(col)
        if pa.types.is_string(col.type) or name == "label":
            vc = pc.value_counts(col)
            for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
                s["counts"][v] = s["counts"].get(v, 0) + n
    k = batch.column("entity_id").to_numpy().view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    keys.append(k ^ batch.column("event_timestamp").cast(pa.int64()).to_numpy().view(np.uint64))
h = np.sort(np.concatenate(keys)); dups = int((h[1:] == h[:-1]).sum())
"""
OURS_SETUP = "from kfp_mlops.components.validate.core import ValidateOptions, validate"
OURS = """
validate({src!r}, options=ValidateOptions(label_column="label", key_columns=("entity_id", "event_timestamp")))
"""


def main() -> None:
    args = size_arguments()
    print(f"{'rows':>12} {'pyarrow s':>10} {'validate s':>11} {'ratio':>6} {'pyarrow RSS':>12} {'validate RSS':>13}")
    for rows in (args.small_rows, args.rows):
        src = str(demo_file(rows, ".parquet"))
        base = median_of([measure(BASELINE_SETUP, BASELINE.format(src=src)) for _ in range(args.repeat)])
        ours = median_of([measure(OURS_SETUP, OURS.format(src=src)) for _ in range(args.repeat)])
        print(
            f"{rows:>12,} {base['seconds']:>10.2f} {ours['seconds']:>11.2f} {ours['seconds'] / base['seconds']:>6.2f} {base['peak_rss_mib']:>9.0f} MiB {ours['peak_rss_mib']:>10.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
