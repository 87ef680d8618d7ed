"""The training loop: contiguous mini-batches, early stopping, LR schedule, checkpoint/resume, DDP, AMP.

Deterministic on CPU: the same seed and data give the same weights to the last bit.
Each epoch's shuffle comes from its own seeded generator and the checkpoint holds
the torch RNG state, so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have. Under DDP every rank trains on its own shard of each
epoch's permutation (same number of batches everywhere) and evaluates the whole
validation split, so early stopping decides the same on every rank.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components.train import metrics as M
from kfp_mlops.components.train.model import ServingModel, TabularNet, build_net, standardize
from kfp_mlops.components.train.preprocessing import Preprocessing

log = logging.getLogger(__name__)
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
CHECKPOINT = "last.pt"


class TrainError(KfpMlopsError):
    """Training cannot run as configured (settings, device, distributed setup)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and run settings.

    Attributes:
        hidden: Sizes of the MLP's hidden layers.
        dropout: Dropout after each hidden layer.
        batch_size: Rows per optimizer step (per rank under DDP).
        max_epochs: Upper bound on epochs.
        learning_rate: AdamW learning rate (halved when the validation metric stalls).
        weight_decay: AdamW weight decay.
        patience: Epochs without improvement before stopping.
        seed: Seed of initialization, shuffling and dropout.
        gpu: require, prefer or forbid.
        early_stopping_metric: Validation metric to stop on (default: roc_auc, log_loss or rmse by task).
    """

    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.1
    batch_size: int = 256
    max_epochs: int = 20
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 7
    gpu: str = "prefer"
    early_stopping_metric: str = ""

    def __post_init__(self) -> None:
        """Refuse settings that cannot train, before any data is read (exit 2, named)."""
        problems = []
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            problems.append(f"hidden_layers {self.hidden} must be positive integers, e.g. 64,64")
        for name, value, low in (("batch_size", self.batch_size, 1), ("max_epochs", self.max_epochs, 1), ("patience", self.patience, 1)):
            if not isinstance(value, int) or value < low:
                problems.append(f"{name} {value!r} must be an integer of at least {low}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning_rate {self.learning_rate!r} must be a finite number above 0")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay {self.weight_decay!r} must be a finite number of at least 0")
        if not (math.isfinite(self.dropout) and 0 <= self.dropout < 1):
            problems.append(f"dropout {self.dropout!r} must be at least 0 and below 1")
        if self.gpu not in ("require", "prefer", "forbid"):
            problems.append(f"gpu {self.gpu!r} must be require, prefer or forbid")
        if self.early_stopping_metric and self.early_stopping_metric not in M.HIGHER_IS_BETTER:
            problems.append(f"early_stopping_metric {self.early_stopping_metric!r} must be empty or one of {sorted(M.HIGHER_IS_BETTER)}")
        if problems:
            raise TrainError("training settings cannot work: " + "; ".join(problems), fix="fix these parameters")


def parse_hidden_layers(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> (64, 64), or a TrainError naming the text."""
    try:
        return tuple(int(h) for h in str(text).split(",") if h.strip())
    except ValueError:
        raise TrainError(f"hidden_layers {str(text)[:80]!r} is not comma-separated integers", fix="pass e.g. 64,64") from None


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job (world 1: a single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class Tensors:
    numeric: torch.Tensor  # raw values, NaN where missing
    categorical: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class FitResult:
    net: TabularNet
    history: list[dict[str, float]]
    best_epoch: int
    metric: str
    resumed_from: int
    samples_per_second: float
    device: str
    mixed_precision: bool
    train_seconds: float = 0.0
    stopped_early: bool = False
    extras: dict[str, float] = field(default_factory=dict)


def select_device(policy: str, dist: Distributed) -> torch.device:
    if policy not in ("require", "prefer", "forbid"):
        raise TrainError(f"gpu must be require, prefer or forbid, not {policy!r}", fix="pass one of those")
    cuda = torch.cuda.is_available()
    if policy == "require" and not cuda:
        raise TrainError(
            "a GPU is required but none is visible (torch.cuda.is_available() is False)",
            fix="schedule the step on a GPU node (accelerator type nvidia.com/gpu), or pass gpu='prefer'",
        )
    if cuda and policy != "forbid":
        return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _loss(task: str) -> nn.Module:
    return {"binary": nn.BCEWithLogitsLoss(), "multiclass": nn.CrossEntropyLoss(), "regression": nn.MSELoss()}[task]


def predict(net: TabularNet, prep: Preprocessing, data: Tensors, device: torch.device, batch: int = 65_536) -> np.ndarray:
    """Probabilities (classification) or label-unit values (regression), through the serving transform."""
    serving = ServingModel(net, prep).to(device).eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            outs.append(serving(data.numeric[start : start + batch].to(device), data.categorical[start : start + batch].to(device)).float().cpu())
    return torch.cat(outs).numpy()


def evaluate(net: TabularNet, prep: Preprocessing, data: Tensors, device: torch.device) -> dict[str, float]:
    out = predict(net, prep, data, device)
    y = data.y.numpy()
    if prep.task == "regression":
        return M.regression(y * prep.label_std + prep.label_mean, out)
    return M.classification(y, out)


def fit(
    train: Tensors,
    val: Tensors,
    prep: Preprocessing,
    config: TrainConfig,
    *,
    checkpoint_dir: Path | None = None,
    dist: Distributed = Distributed(),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train until early stopping or ``max_epochs``; return the best weights (by the validation metric)."""
    metric = config.early_stopping_metric or DEFAULT_METRIC[prep.task]
    if metric not in M.HIGHER_IS_BETTER:
        raise TrainError(f"unknown early stopping metric {metric!r}", fix=f"use one of {sorted(M.HIGHER_IS_BETTER)}")
    if len(train) < 2 * dist.world:
        raise TrainError(f"{len(train)} training rows cannot feed {dist.world} rank(s)", fix="ingest more data")
    device = select_device(config.gpu, dist)
    amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    net = build_net(prep, list(config.hidden), config.dropout).to(device)
    model: nn.Module = net
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    mode = "max" if M.HIGHER_IS_BETTER[metric] else "min"
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=1)
    loss_fn = _loss(prep.task)
    mean = torch.tensor([c.mean for c in prep.numeric], dtype=torch.float32)
    std = torch.tensor([c.std for c in prep.numeric], dtype=torch.float32)
    x_num = standardize(train.numeric, mean, std).to(device)
    x_cat, y_all = train.categorical.to(device), train.y.to(device)

    state = {"epoch": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "history": [], "best_state": None}
    path = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
    resumed_from = 0
    if path is not None and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state = {k: saved[k] for k in state}
        resumed_from = state["epoch"]
        log.info("resumed from the checkpoint after epoch %d", resumed_from)

    per_rank = len(train) // dist.world
    samples, busy = 0, 0.0
    stopped = False
    for epoch in range(state["epoch"], config.max_epochs):
        if state["bad_epochs"] >= config.patience:
            stopped = True
            break
        started = time.perf_counter()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        order = order[dist.rank * per_rank : (dist.rank + 1) * per_rank].to(device)
        xn, xc, yy = x_num[order], x_cat[order], y_all[order]  # one gather per epoch, then contiguous slices
        model.train()
        total = 0.0
        for start in range(0, per_rank, config.batch_size):
            end = start + config.batch_size
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(xn[start:end], xc[start:end])
                loss = loss_fn(out.float(), yy[start:end])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * (min(end, per_rank) - start)
        train_seconds = time.perf_counter() - started
        busy += train_seconds
        samples += per_rank
        scores = evaluate(net, prep, val, device)
        scheduler.step(scores[metric])
        if M.better(metric, scores[metric], state["best"]):
            state.update(best=scores[metric], best_epoch=epoch, bad_epochs=0, best_state=copy.deepcopy({k: v.cpu() for k, v in net.state_dict().items()}))
        else:
            state["bad_epochs"] += 1
        record = {"epoch": float(epoch), "train_loss": total / per_rank, "learning_rate": optimizer.param_groups[0]["lr"], "epoch_seconds": train_seconds}
        record.update({f"val_{k}": v for k, v in scores.items()})
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if path is not None and dist.main:
            _save_checkpoint(path, net, optimizer, scheduler, state)
        if on_epoch is not None and dist.main:
            on_epoch(record)
        log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
    else:
        stopped = state["bad_epochs"] >= config.patience
    if state["best_state"] is not None:
        net.load_state_dict(state["best_state"])
    return FitResult(
        net=net.cpu(),
        history=state["history"],
        best_epoch=state["best_epoch"],
        metric=metric,
        resumed_from=resumed_from,
        samples_per_second=samples / busy if busy else 0.0,
        device=str(device),
        mixed_precision=amp,
        train_seconds=busy,
        stopped_early=stopped,
    )


def _save_checkpoint(path: Path, net: nn.Module, optimizer, scheduler, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    payload = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), **state}
    torch.save(payload, tmp)
    os.replace(tmp, path)
