"""Trainer benchmarks, each against its baseline in the same run.

1. Throughput (samples/s): the trainer's loop against a hand-written PyTorch loop over
   pre-loaded tensors with contiguous slices (same model, data, batch size), and a
   default DataLoader(TensorDataset, shuffle=True) for reference. Target >= 0.9.
2. MLflow logging per epoch (sqlite tracking) as a share of epoch time. Target < 5%.
3. On a machine with a GPU, the same on CUDA (the card's name is printed).

    python benchmarks/bench_train.py [--rows 1000000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from kfp_mlops.components._shared.mlflow_adapter import MlflowRun, TrackingSettings
from kfp_mlops.components.train.loop import Tensors, TrainConfig, fit, member_loss
from kfp_mlops.components.train.model import build_net, standardize
from kfp_mlops.components.train.preprocessing import fit as fit_preprocessing
from kfp_mlops.demo import DemoSpec, iter_demo_batches

BATCH = 256
CONFIG = TrainConfig(batch_size=BATCH)  # the default net: piecewise embeddings, TabM ensemble


def _net(prep, xn):
    return build_net(prep, list(CONFIG.hidden), CONFIG.dropout, numeric_embedding=CONFIG.numeric_embedding, train_numeric=xn, bins=CONFIG.numeric_bins, ensemble=CONFIG.ensemble_size)


KEYS = {"entity_id", "event_timestamp"}


def load(rows: int):
    import pyarrow as pa

    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=rows, seed=1))))
    prep = fit_preprocessing(table, label="label", exclude=KEYS)
    numeric, categorical = prep.encode_features(table)
    data = Tensors(torch.from_numpy(numeric), torch.from_numpy(categorical), torch.from_numpy(prep.encode_label(table)))
    val_n = min(20_000, rows // 10)
    val = Tensors(data.numeric[:val_n], data.categorical[:val_n], data.y[:val_n])
    return prep, data, val


def hand_written(prep, data: Tensors, epochs: int, device: torch.device) -> float:
    """The baseline: permute once per epoch, then contiguous slices; nothing else."""
    torch.manual_seed(0)
    mean = torch.tensor([c.mean for c in prep.numeric])
    std = torch.tensor([c.std for c in prep.numeric])  # noqa: E702
    xn, xc, y = standardize(data.numeric, mean, std), data.categorical.to(device), data.y.to(device)
    net = _net(prep, xn).to(device)
    xn = xn.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
    loss_fn = member_loss(prep.task)
    n, seen, busy = len(y), 0, 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        perm = torch.randperm(n, device=device)
        a, b, c = xn[perm], xc[perm], y[perm]
        for s in range(0, n, BATCH):
            loss = loss_fn(net(a[s : s + BATCH], b[s : s + BATCH]), c[s : s + BATCH])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        busy += time.perf_counter() - started
        seen += n
    return seen / busy


def data_loader(prep, data: Tensors, epochs: int) -> float:
    torch.manual_seed(0)
    mean = torch.tensor([c.mean for c in prep.numeric])
    std = torch.tensor([c.std for c in prep.numeric])  # noqa: E702
    net = _net(prep, standardize(data.numeric, mean, std))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    loss_fn = member_loss(prep.task)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(standardize(data.numeric, mean, std), data.categorical, data.y), batch_size=BATCH, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        for a, b, c in loader:
            loss = loss_fn(net(a, b), c)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs * len(data) / (time.perf_counter() - started)


def trainer(prep, data: Tensors, val: Tensors, epochs: int, gpu: str, tracking_uri: str | None = None) -> tuple[float, float, float]:
    """(samples/s, seconds in MLflow logging, seconds training) of the real loop."""
    config = TrainConfig(batch_size=BATCH, max_epochs=epochs, patience=epochs + 1, gpu=gpu)
    if tracking_uri is None:
        result = fit(data, val, prep, config)
        return result.samples_per_second, 0.0, result.train_seconds
    with MlflowRun(TrackingSettings(tracking_uri, experiment="bench")) as run:
        result = fit(data, val, prep, config, on_epoch=lambda r: run.log_metrics(r, step=int(r["epoch"])))
        return result.samples_per_second, run.log_seconds, result.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    prep, data, val = load(args.rows)
    cpu = torch.device("cpu")
    base = hand_written(prep, data, args.epochs, cpu)
    ours, _, _ = trainer(prep, data, val, args.epochs, "forbid")
    loader = data_loader(prep, data, 1)
    print(
        f"1. throughput, {args.rows:,} rows, batch {BATCH}, default net (MLP {CONFIG.hidden}, {CONFIG.numeric_embedding} embeddings, ensemble of {CONFIG.ensemble_size}), CPU ({torch.get_num_threads()} threads)"
    )
    print(f"   hand-written loop : {base:>10,.0f} samples/s")
    print(f"   kfp-mlops trainer : {ours:>10,.0f} samples/s  ratio {ours / base:.2f}")
    print(f"   default DataLoader: {loader:>10,.0f} samples/s  ratio {loader / base:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        MlflowRun(TrackingSettings(uri, experiment="warmup")).__exit__(None, None, None)  # schema creation is not per-epoch cost
        _, log_s, train_s = trainer(prep, data, val, args.epochs, "forbid", uri)
    print(f"2. MLflow per-epoch logging: {log_s / args.epochs * 1000:.1f} ms per epoch = {log_s / (train_s + log_s):.2%} of epoch time")
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        print(
            f"3. CUDA on {torch.cuda.get_device_name(0)}: hand-written {hand_written(prep, data, args.epochs, gpu):,.0f} samples/s, trainer {trainer(prep, data, val, args.epochs, 'require')[0]:,.0f} samples/s (bf16 autocast)"
        )
    else:
        print("3. no GPU on this machine: CUDA figures not measured")


if __name__ == "__main__":
    main()
