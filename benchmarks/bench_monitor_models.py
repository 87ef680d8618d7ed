"""Many registered models in one monitoring run, through the registry: total time and per-model overhead.

20 (``--models``) registered models in an MLflow sqlite store, each with its own reference
profile (10 of 50 columns, profiled from a ``--reference-rows`` Parquet) saved as register
saves it (run artifact + sha256 version tag). ``run_monitor`` then watches 1 model and all
of them over one ``--rows`` current Parquet, as the component does: resolve the alias,
download and verify the profile, read the current, test, write one summary report. Each
variant runs in a fresh process; the split per model comes from the run's own timings.

    python benchmarks/bench_monitor_models.py             # about a minute
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_monitor import columns_of, data_file, kinds_of  # noqa: E402 - the same synthetic columns

DATA = Path("/tmp/bench_monitor_models")
STORE = DATA / "mlflow.db"


def setup(models: int, reference_rows: int, rows: int) -> tuple[str, Path]:
    """The registry with ``models`` profiled versions, and the current Parquet."""
    import pyarrow as pa

    from kfp_mlops.components._shared.mlflow_adapter import initialize_store
    from kfp_mlops.components.monitor.profile import profile_column, profile_parquet
    from kfp_mlops.components.monitor.reference import ModelProfile
    from kfp_mlops.components.monitor.store import save_profile
    from kfp_mlops.components.register.registry import Registry

    columns = columns_of(30, 10, 10)
    reference = data_file("ref.parquet", columns, reference_rows, shifted=False, seed=1, row_group=500_000)
    current = data_file("cur.parquet", columns, rows, shifted=True, seed=2, row_group=500_000)
    uri = f"sqlite:///{STORE}"
    initialize_store(uri)
    registry = Registry(uri)
    whole = profile_parquet(str(reference), kinds_of(columns))
    score = profile_column("score", "numeric", [pa.array(np.random.default_rng(0).random(2000))])
    experiment = registry.client.create_experiment("bench", artifact_location=(DATA / "artifacts").as_uri())
    rng = np.random.default_rng(7)
    for index in range(models):
        picked = sorted(rng.choice(len(columns), 10, replace=False))
        profile = ModelProfile("binary", "label", ["0", "1"], {columns[i].name: whole[columns[i].name] for i in picked}, score, None)
        run = registry.client.create_run(experiment)
        version = registry.register(f"model-{index:02d}", f"runs:/{run.info.run_id}/model", run.info.run_id, {})
        registry.set_alias(version.name, "champion", version.version)
        save_profile(registry, version, profile)
    return uri, current


def child(uri: str, current: str, names: list[str]) -> None:
    from kfp_mlops.components.monitor.run import MonitorRequest, run_monitor

    started = time.perf_counter()
    request = MonitorRequest(current_path=current, model_names=",".join(names), score_with_model=False, evidently_sample_rows=0)
    outcome = run_monitor(request, environment={"MLFLOW_TRACKING_URI": uri}, report_path=str(DATA / "report.html"), summary_path=str(DATA / "summary.md"))
    total = time.perf_counter() - started
    monitor = sum(sum(r.seconds.values()) for r in outcome.results)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"total": total, "monitor": monitor, "models": len(outcome.results), "rss": rss, "drifted": sum(r.drift_detected for r in outcome.results)}))


def measure(uri: str, current: Path, names: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", uri, str(current), ",".join(names)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2].split(","))
        return
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    try:
        uri, current = setup(args.models, args.reference_rows, args.rows)
        names = [f"model-{i:02d}" for i in range(args.models)]
        one, many = measure(uri, current, names[:1]), measure(uri, current, names)
    finally:
        shutil.rmtree(DATA, ignore_errors=True)
    per_model = (many["total"] - one["total"]) / max(args.models - 1, 1)
    registry = (many["total"] - many["monitor"]) / args.models
    print(f"current: {args.rows:,} rows x 50 columns; each model watches 10 of them (imports excluded)")
    print(f"  1 model:   {one['total']:.2f} s, peak RSS {one['rss']:.0f} MiB")
    print(f"  {args.models} models: {many['total']:.2f} s, peak RSS {many['rss']:.0f} MiB, {many['drifted']} flagged, one summary report")
    print(f"  each extra model adds {per_model:.2f} s: monitor pass {many['monitor'] / args.models:.2f} s, registry + report {registry:.2f} s (alias, profile download, hash check, parse)")


if __name__ == "__main__":
    main()
