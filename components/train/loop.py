"""The training loop: contiguous mini-batches, early stopping, LR schedule, checkpoint/resume, DDP, AMP.

Schedule: AdamW, a linear warm-up over the first epoch, then a cosine decay sized by
``max_epochs`` (to 5% of the learning rate at the last epoch), so that a larger
``max_epochs`` means a slower decay and more training. Early stopping watches the
validation metric with ``patience`` epochs and restores the best epoch's weights; a
tie on the metric (a validation ROC AUC of 1.0 on a small split) is broken by the
validation log loss. The net is a TabM ensemble (see model.py): the loss is the mean
of the members' losses.

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

from kfp_mlops.components.train import metrics as M
from kfp_mlops.components.train.config import (  # noqa: F401 - the settings' public home is still this module for callers
    LR_SCHEDULES,
    TrainConfig,
    TrainError,
    effective_batch_size,
    parse_hidden_layers,
    resolve_budget,
)
from kfp_mlops.components.train.model import ServingModel, TabularNet, build_net, standardize
from kfp_mlops.components.train.preprocessing import Preprocessing

log = logging.getLogger(__name__)
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
CHECKPOINT = "last.pt"


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


def member_loss(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The mean over rows and ensemble members of each member's own loss (out: (B, k) or (B, k, C))."""
    if task == "binary":
        return lambda out, y: nn.functional.binary_cross_entropy_with_logits(out, y.unsqueeze(1).expand_as(out))
    if task == "multiclass":
        return lambda out, y: nn.functional.cross_entropy(out.flatten(0, 1), y.repeat_interleave(out.shape[1]))
    return lambda out, y: nn.functional.mse_loss(out, y.unsqueeze(1).expand_as(out))


def learning_rate_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over the first epoch, then cosine decay to 5% at ``max_epochs`` (or flat)."""
    warmup = max(1, steps_per_epoch)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    if config.lr_schedule == "constant":
        return config.learning_rate
    total = max(warmup + 1, config.max_epochs * steps_per_epoch)
    progress = min(1.0, (step - warmup) / (total - warmup))
    return config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def improved(metric: str, scores: dict[str, float], best: dict[str, float] | None) -> bool:
    """Better on ``metric``; on a tie, better on the validation log loss (classification)."""
    if best is None:
        return not np.isnan(scores[metric])
    if scores[metric] == best[metric] and metric != "log_loss" and "log_loss" in scores:
        return M.better("log_loss", scores["log_loss"], best["log_loss"])
    return M.better(metric, scores[metric], best[metric])


def predict(net: TabularNet, prep: Preprocessing, data: Tensors, device: torch.device, batch: int = 8_192) -> np.ndarray:
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
    config = resolve_budget(config, len(train) // dist.world)
    device = select_device(config.gpu, dist)
    amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    mean = torch.tensor([c.mean for c in prep.numeric], dtype=torch.float32)
    std = torch.tensor([c.std for c in prep.numeric], dtype=torch.float32)
    x_num = standardize(train.numeric, mean, std)
    net = build_net(prep, list(config.hidden), config.dropout, numeric_embedding=config.numeric_embedding, train_numeric=x_num, bins=config.numeric_bins, ensemble=config.ensemble_size).to(device)
    model: nn.Module = net
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)  # one kernel per step (CPU and CUDA)
    loss_fn = member_loss(prep.task)
    x_num = x_num.to(device)
    x_cat, y_all = train.categorical.to(device), train.y.to(device)

    state = {"epoch": 0, "best": None, "best_epoch": -1, "bad_epochs": 0, "history": [], "best_state": None}
    path = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
    resumed_from = 0
    if path is not None and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        state = {k: saved[k] for k in state}
        resumed_from = state["epoch"]
        log.info("resumed from the checkpoint after epoch %d", resumed_from)

    per_rank = len(train) // dist.world
    batch_size = effective_batch_size(config, per_rank)
    steps_per_epoch = math.ceil(per_rank / batch_size)
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
        total = torch.zeros((), device=device)
        step = epoch * steps_per_epoch
        for start in range(0, per_rank, batch_size):
            end = start + batch_size
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, step, steps_per_epoch)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(xn[start:end], xc[start:end])
                loss = loss_fn(out.float(), yy[start:end])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * (min(end, per_rank) - start)  # no device sync per step
            step += 1
        train_seconds = time.perf_counter() - started
        busy += train_seconds
        samples += per_rank
        scores = evaluate(net, prep, val, device)
        if improved(metric, scores, state["best"]):
            state.update(best=scores, best_epoch=epoch, bad_epochs=0, best_state=copy.deepcopy({k: v.cpu() for k, v in net.state_dict().items()}))
        else:
            state["bad_epochs"] += 1
        record = {"epoch": float(epoch), "train_loss": float(total) / per_rank, "learning_rate": optimizer.param_groups[0]["lr"], "epoch_seconds": train_seconds}
        record.update({f"val_{k}": v for k, v in scores.items()})
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if path is not None and dist.main:
            _save_checkpoint(path, net, optimizer, state)
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


def _save_checkpoint(path: Path, net: nn.Module, optimizer, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    payload = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), **state}
    torch.save(payload, tmp)
    os.replace(tmp, path)
