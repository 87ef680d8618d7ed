"""Register benchmark: the register step's wall time (imports excluded) on sqlite and over HTTP
(mlflow server on PostgreSQL), split into the gate's evaluation of both models on the
100k-row test split and the registry writes (under the promotion lock). Target: under 2 s
on sqlite.

Then the safe loader against the loaders it replaced, in the same run: load time
(ServingTransform.load: hash check + restricted load, vs torch.export.load and
mlflow.pyfunc.load_model) and scoring 100k rows (transform vs the pyfunc), with ratios;
and how long a register against a closed port takes to fail (was 4 minutes).

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

    from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
    from kfp_mlops.components.register.core import register_model
    from kfp_mlops.components.register.registry import Registry
    from kfp_mlops.components.train.core import TrainInputs, train_model
    from kfp_mlops.components.train.loop import TrainConfig
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
        trained = {}
        for label, uri, server in targets:
            models = trained.setdefault(label, [])
            for seed in (1, 2):
                result = train_model(
                    TrainInputs(paths["train"], paths["validation"], paths["test"], "label", frozenset({"entity_id", "event_timestamp"})),
                    TrainConfig(hidden=(32,), max_epochs=1, seed=seed),
                    model_dir=work / f"{label[:4]}-{seed}",
                    tracking=TrackingSettings(uri, experiment="bench"),
                )
                models.append((work / f"{label[:4]}-{seed}", result.contract))
            registry = Registry(uri)
            for i, (model_dir, contract) in enumerate(models):
                started = time.perf_counter()
                out = register_model(model_dir, contract, paths["test"], registry=registry, name="bench", thresholds=None, promote=True, tags={})
                total = time.perf_counter() - started
                what = "first model, no champion" if i == 0 else "second model, gated against the champion"
                print(
                    f"{label:<32} {what:<42} step {total:5.2f} s = evaluation {out.seconds['evaluate']:.2f} s "
                    f"({'2 models' if i else '1 model'} x {args.test_rows:,} rows) + registry {out.seconds['register']:.2f} s"
                )
            if server is not None:
                server.close()
        model_dir, contract = trained["sqlite"][0]
        loaders(model_dir, contract.mlflow_model_uri, f"sqlite:///{work / 'mlflow.db'}", pq.read_table(paths["test"]))
        unreachable()


def _best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def loaders(model_dir: Path, model_uri: str, uri: str, test) -> None:
    import mlflow
    import torch

    from kfp_mlops.components.train.serving import ServingTransform

    mlflow.set_tracking_uri(uri)  # the pyfunc baseline resolves runs:/ through the global URI
    safe = _best_of(lambda: ServingTransform.load(model_dir))
    plain = _best_of(lambda: torch.export.load(str(model_dir / "model.pt2")).module())
    pyfunc_load = _best_of(lambda: mlflow.pyfunc.load_model(model_uri), repeat=3)
    print(
        f"load: safe transform {safe * 1e3:.1f} ms; torch.export.load {plain * 1e3:.1f} ms (safe/plain {safe / plain:.2f}x); mlflow pyfunc {pyfunc_load * 1e3:.1f} ms (safe/pyfunc {safe / pyfunc_load:.2f}x)"
    )
    transform = ServingTransform.load(model_dir)
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    frame = test.select(transform.prep.feature_names).to_pandas()
    scored = _best_of(lambda: transform.predict_table(test), repeat=3)
    via_frame = _best_of(lambda: transform.predict_frame(frame), repeat=3)
    via_pyfunc = _best_of(lambda: pyfunc.predict(frame), repeat=3)
    rows = test.num_rows
    print(f"score {rows:,} rows: transform (Arrow) {scored:.3f} s, transform (pandas) {via_frame:.3f} s, pyfunc {via_pyfunc:.3f} s (pyfunc/transform {via_pyfunc / scored:.2f}x)")


def unreachable() -> None:
    from kfp_mlops.components._shared.mlflow_adapter import TrackingError
    from kfp_mlops.components.register.registry import Registry
    from tests.services import free_port

    started = time.perf_counter()
    try:
        Registry(f"http://127.0.0.1:{free_port()}")
    except TrackingError as exc:
        print(f"closed port: register fails after {time.perf_counter() - started:.1f} s, exit code {exc.exit_code} ({str(exc)[:90]}...)")


if __name__ == "__main__":
    main()
