"""Benchmark 3: the local training pipeline (kfp.local) against its core functions called
directly in one process, on the same demo data: the orchestration overhead per step.

    python benchmarks/bench_pipeline.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import demo_file  # noqa: E402

STEPS = 2  # ingest, validate


def direct(src: str, out: Path) -> float:
    from kfp_mlops.components.ingest.core import IngestOptions, ingest
    from kfp_mlops.components.validate.core import ValidateOptions, validate, write_outputs

    started = time.perf_counter()
    result = ingest(src, out / "dataset.parquet", options=IngestOptions(entity_column="entity_id", timestamp_column="event_timestamp"))
    (out / "summary.md").write_text(result.summary_markdown())
    checked = validate(result.path, options=ValidateOptions(label_column="label", key_columns=("entity_id", "event_timestamp")))
    write_outputs(checked, schema_path=out / "s.json", statistics_path=out / "st.json", anomalies_path=out / "a.json", report_path=out / "r.html", source=src)
    return time.perf_counter() - started


def pipelined(src: str, root: Path) -> float:
    from kfp import local

    from kfp_mlops.pipelines.training import training

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    with _quiet():  # kfp.local echoes every executor input; keep the result readable
        started = time.perf_counter()
        training(source_uri=src)
        return time.perf_counter() - started


@contextlib.contextmanager
def _quiet():
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        sys.stdout.flush()
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    src = str(demo_file(args.rows, ".parquet"))
    import logging

    logging.disable(logging.WARNING)
    directs, pipes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            directs.append(direct(src, Path(tmp) / f"d{i}"))
            pipes.append(pipelined(src, Path(tmp) / f"p{i}"))
    d, p = sorted(directs)[len(directs) // 2], sorted(pipes)[len(pipes) // 2]
    print(f"rows={args.rows:,}  direct {d:.2f}s  kfp.local pipeline {p:.2f}s  ratio {p / d:.1f}x  overhead {(p - d) / STEPS:.2f}s per step")


if __name__ == "__main__":
    main()
