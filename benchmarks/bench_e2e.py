"""Benchmark: the whole local training pipeline, as `kfp-mlops run training` runs it, on 100k demo rows.

Per step: wall time, the part that is importing the step's libraries in a fresh
interpreter (what every kfp.local subprocess pays before it works), and the rest (work);
orchestration = total - the steps (kfp.local compiling, dispatching, writing outputs).
Target: under 60 s on a 2-core machine.

    python benchmarks/bench_e2e.py [--rows 100000] [--deploy-target local|none]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What each step imports before it runs (the component's own imports; kfp.dsl.executor_main loads kfp too).
STEP_IMPORTS = {
    "ingest": "import kfp.dsl, pyarrow.parquet; import kfp_mlops.components.ingest.core",
    "validate": "import kfp.dsl, pyarrow.parquet; import kfp_mlops.components.validate.core",
    "featurize": "import kfp.dsl, duckdb; from kfp_mlops.components.featurize.feast_import import import_feast; import_feast(); import kfp_mlops.components.featurize.core",
    "train": "import kfp.dsl; import torch, mlflow; import kfp_mlops.components.train.core",
    "register": "import kfp.dsl; import torch, mlflow; import kfp_mlops.components.register.core",
    "deploy": "import kfp.dsl; import kfp_mlops.components.deploy.core",
}
TARGET_SECONDS = 60.0


def import_seconds(code: str, repeat: int = 2) -> float:
    """Best of ``repeat`` fresh interpreters importing ``code`` (the OS file cache is warm, as in a run)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--deploy-target", default="local", choices=("local", "none"))
    args = parser.parse_args()
    from kfp_mlops.pipelines.local_run import run_pipeline

    with tempfile.TemporaryDirectory() as workdir:
        from kfp_mlops.demo import DemoSpec, write_demo_dataset

        demo = Path(workdir) / "demo" / f"demo-{args.rows}.parquet"
        demo.parent.mkdir(parents=True)
        write_demo_dataset(demo, DemoSpec(rows=args.rows, seed=7))  # written before the clock starts
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            run = run_pipeline("training", workdir=workdir, demo_rows=args.rows, deploy_target=args.deploy_target)
        total = time.perf_counter() - started
        if run.endpoint:
            from kfp_mlops.components.deploy.local_target import stop_local

            stop_local(Path(run.arguments["local_state_dir"]))
    interpreter = import_seconds("pass")
    print(f"\nlocal training pipeline, {args.rows:,} demo rows, deploy_target={args.deploy_target}: {total:.1f} s (target {TARGET_SECONDS:.0f} s: {'met' if total < TARGET_SECONDS else 'MISSED'})\n")
    print(f"{'step':<12} {'wall s':>7} {'imports s':>9} {'work s':>7} {'share':>6}  key figure")
    steps_total = imports_total = 0.0
    for step in run.steps:
        imports = import_seconds(STEP_IMPORTS[step.name]) if step.name in STEP_IMPORTS else interpreter
        steps_total += step.seconds
        imports_total += min(imports, step.seconds)
        print(f"{step.name:<12} {step.seconds:>7.1f} {imports:>9.1f} {max(step.seconds - imports, 0):>7.1f} {step.seconds / total:>6.0%}  {step.key}")
    orchestration = total - steps_total
    print(f"{'(kfp.local)':<12} {orchestration:>7.1f} {'':>9} {'':>7} {orchestration / total:>6.0%}  compile, dispatch, reading outputs")
    print(f"\nratios: imports / total = {imports_total / total:.2f}, work / total = {(steps_total - imports_total) / total:.2f}, orchestration / total = {orchestration / total:.2f}")
    print(f"a bare interpreter starts in {interpreter:.2f} s; each step pays it plus its imports")


if __name__ == "__main__":
    main()
