"""Shared benchmark plumbing: demo data on disk, and each measurement in a fresh process
(so that its peak RSS is its own)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"
MEASURE = """
import json, resource, sys, time
{setup}
started = time.perf_counter()
{work}
seconds = time.perf_counter() - started
print("RESULT " + json.dumps({{"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def demo_file(rows: int, suffix: str) -> Path:
    """The demo dataset of ``rows`` rows, generated once and kept under benchmarks/.data."""
    from kfp_mlops.demo import DemoSpec, write_demo_dataset

    path = DATA / f"demo_{rows}{suffix}"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        write_demo_dataset(path, DemoSpec(rows=rows))
    return path


def measure(setup: str, work: str) -> dict[str, float]:
    """Run ``setup`` then ``work`` in a fresh interpreter; return the wall time of ``work`` and the peak RSS."""
    code = MEASURE.format(setup=setup, work=work)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def size_arguments() -> argparse.Namespace:
    """--rows (the large run), --small-rows (to show memory does not grow with size), --repeat."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    return parser.parse_args()


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}
