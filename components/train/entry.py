"""Command-line entry of the trainer: what torchrun, a TrainJob or a PyTorchJob runs.

    torchrun --nproc_per_node=2 -m kfp_mlops.components.train.entry \\
        --train train.parquet --validation validation.parquet --test test.parquet \\
        --label label --model-dir out/model [--exclude entity_id,event_timestamp] [--epochs 20 ...]

It reads the torchrun environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR),
sets up the process group (gloo on CPU, nccl on GPU), trains, and on rank 0 writes
the model and ``result.json`` (test metrics, history, final weights digest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from kfp_mlops.components._shared.entry import exit_on_error


def weights_digest(net) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kfp-mlops-train")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--validation", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--exclude", default="")
    p.add_argument("--task", default="auto")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--checkpoint-dir", type=Path)
    p.add_argument("--tracking-uri", default="", help="MLflow tracking URI; credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN")
    p.add_argument("--experiment", default="kfp-mlops")
    p.add_argument("--tags", default="{}", help="JSON object of MLflow run tags (lineage)")
    p.add_argument("--attempt-key", default="", help="identifies the job across retries: its stale RUNNING runs are marked KILLED")
    p.add_argument("--fingerprint", default="", help="content fingerprint of the training data")
    p.add_argument("--non-finite", default="impute")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--early-stopping-metric", default="")
    p.add_argument("--hidden", default="128,128")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=0, help="0: automatic (see TrainConfig)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--gpu", default="prefer")
    p.add_argument("--numeric-embedding", default="piecewise", help="piecewise, periodic or none")
    p.add_argument("--numeric-bins", type=int, default=32)
    p.add_argument("--ensemble-size", type=int, default=0, help="0: automatic (see TrainConfig)")
    p.add_argument("--lr-schedule", default="cosine", help="cosine or constant")
    p.add_argument("--categorical-columns", default="", help="JSON list or comma-separated columns forced categorical")
    p.add_argument("--numeric-columns", default="", help="JSON list or comma-separated columns forced numeric")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    with exit_on_error("train"):
        import torch
        import torch.distributed as tdist

        from kfp_mlops.components._shared.errors import DataError
        from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
        from kfp_mlops.components.train.core import TrainInputs, train_model
        from kfp_mlops.components.train.loop import Distributed, TrainConfig, parse_hidden_layers
        from kfp_mlops.components.train.preprocessing import parse_columns

        try:
            tags = json.loads(args.tags)
            assert isinstance(tags, dict)
        except (ValueError, AssertionError) as exc:
            raise DataError(f"--tags is not a JSON object: {args.tags[:200]!r}", fix='pass e.g. {"kfp.run_id": "..."}') from exc

        world = int(os.environ.get("WORLD_SIZE", "1"))
        dist = Distributed(rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
        if world > 1:
            backend = "nccl" if torch.cuda.is_available() and args.gpu != "forbid" else "gloo"
            tdist.init_process_group(backend=backend)
        try:
            result = train_model(
                TrainInputs(
                    args.train,
                    args.validation,
                    args.test,
                    args.label,
                    frozenset(filter(None, args.exclude.split(","))),
                    args.task,
                    args.non_finite,
                    args.fingerprint,
                    categorical_columns=parse_columns(args.categorical_columns, "--categorical-columns"),
                    numeric_columns=parse_columns(args.numeric_columns, "--numeric-columns"),
                ),  # fmt: skip
                TrainConfig(
                    hidden=parse_hidden_layers(args.hidden),
                    dropout=args.dropout,
                    batch_size=args.batch_size,
                    max_epochs=args.epochs,
                    learning_rate=args.learning_rate,
                    weight_decay=args.weight_decay,
                    patience=args.patience,
                    seed=args.seed,
                    gpu=args.gpu,
                    early_stopping_metric=args.early_stopping_metric,
                    numeric_embedding=args.numeric_embedding,
                    numeric_bins=args.numeric_bins,
                    ensemble_size=args.ensemble_size,
                    lr_schedule=args.lr_schedule,
                ),
                model_dir=args.model_dir,
                tracking=TrackingSettings(args.tracking_uri, experiment=args.experiment, tags=tuple((str(k), str(v)) for k, v in tags.items() if v), attempt_key=args.attempt_key)
                if args.tracking_uri
                else None,
                checkpoint_dir=args.checkpoint_dir,
                dist=dist,
            )
            digest = weights_digest(result.fit.net)
            record = {
                "rank": dist.rank,
                "world": dist.world,
                "test_metrics": result.test_metrics,
                "epochs": len(result.fit.history),
                "resumed_from": result.fit.resumed_from,
                "weights_sha256": digest,
                "samples_per_second": result.fit.samples_per_second,
            }
            out = args.model_dir.parent / f"result-rank{dist.rank}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=2))
        finally:
            if world > 1:
                tdist.destroy_process_group()


if __name__ == "__main__":
    main()
