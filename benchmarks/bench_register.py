"""Register benchmark: the register step's wall time (imports excluded) on sqlite and over HTTP
(mlflow server on PostgreSQL), split into the gate's evaluation of both models on the
100k-row test split and the registry writes. Target: under 2 s on sqlite.

    python benchmarks/bench_register.py [--test-rows 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test-rows", type=int, default=100_000)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfp_mlops.components.register.core import register_model
    from kfp_mlops.components.register.registry import Registry
    from kfp_mlops.components.train.core import TrainInputs, train_model
    from kfp_mlops.components.train.loop import TrainConfig
    from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
    from kfp_mlops.demo import DemoSpec, iter_demo_batches
    from tests.services import MlflowServer, port_open

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=60_000 + args.test_rows, seed=2))))
        paths = {"train": work / "train.parquet", "validation": work / "validation.parquet", "test": work / "test.parquet"}
        pq.write_table(table.slice(0, 50_000), paths["train"])
        pq.write_table(table.slice(50_000, 10_000), paths["validation"])
        pq.write_table(table.slice(60_000), paths["test"])
        targets = [("sqlite", f"sqlite:///{work / 'mlflow.db'}", None)]
        if port_open(5432):
            server = MlflowServer(work / "server")
            targets.append(("HTTP (mlflow server, PostgreSQL)", server.url, server))
        for label, uri, server in targets:
            models = []
            for seed in (1, 2):
                result = train_model(
                    TrainInputs(paths["train"], paths["validation"], paths["test"], "label", frozenset({"entity_id", "event_timestamp"})),
                    TrainConfig(hidden=(32,), max_epochs=1, seed=seed),
                    model_dir=work / f"{label[:4]}-{seed}",
                    tracking=TrackingSettings(uri, experiment="bench"),
                )
                models.append((result.model_uri, result.mlflow_run_id))
            registry = Registry(uri)
            for i, (model_uri, run_id) in enumerate(models):
                started = time.perf_counter()
                out = register_model(model_uri, run_id, paths["test"], "label", registry=registry, name="bench", thresholds=None, promote=True, tags={})
                total = time.perf_counter() - started
                what = "first model, no champion" if i == 0 else "second model, gated against the champion"
                print(
                    f"{label:<32} {what:<42} step {total:5.2f} s = evaluation {out.seconds['evaluate']:.2f} s "
                    f"({'2 models' if i else '1 model'} x {args.test_rows:,} rows) + registry {out.seconds['register']:.2f} s"
                )
            if server is not None:
                server.close()


if __name__ == "__main__":
    main()
