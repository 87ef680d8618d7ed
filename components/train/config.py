"""Training settings, checked before any data is read, and the automatic training budget.

No torch here: the pipeline's check-training step imports it to refuse bad settings in a
second, before a step pays for torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components.train import metrics as M

NUMERIC_EMBEDDINGS = ("piecewise", "periodic", "none")
LR_SCHEDULES = ("cosine", "constant")
MIN_STEPS_PER_EPOCH = 8
MIN_BATCH = 16
# The automatic training budget (patience=0, ensemble_size=0), measured in benchmarks/bench_model_quality.py
# (ten real tables) and the 100k-row demo: an ensemble pays for itself on small splits, where a single
# net's variance shows; on the demo's 70k training rows a plain MLP scores the same (ROC AUC 0.7917 vs
# 0.7920) in a fifth of the time, and 4 epochs of patience stop at the same best epoch as 16.
AUTO_ENSEMBLE = 8
AUTO_ENSEMBLE_MAX_ROWS = 10_000
AUTO_PATIENCE = 16
MIN_AUTO_PATIENCE = 4
PATIENCE_STEPS = 1_000


class TrainError(KfpMlopsError):
    """Training cannot run as configured (settings, device, distributed setup)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and run settings.

    Attributes:
        hidden: Sizes of the MLP's hidden layers.
        dropout: Dropout after each hidden layer.
        batch_size: Rows per optimizer step (per rank under DDP). A training split of
            fewer than 8 batches takes batches of 1/8 of its rows (at least 16), so a
            table of a few hundred rows still makes several steps per epoch.
        max_epochs: Upper bound on epochs; the cosine schedule spans them.
        learning_rate: AdamW peak learning rate (warm-up over the first epoch, then cosine decay).
        weight_decay: AdamW weight decay.
        patience: Epochs without validation improvement before stopping (the best epoch's weights are
            kept); 0 (auto): 16 epochs, or fewer on a large split, where each epoch is many steps
            (about PATIENCE_STEPS optimizer steps' worth, at least 4 epochs).
        seed: Seed of initialization, shuffling and dropout.
        gpu: require, prefer or forbid.
        early_stopping_metric: Validation metric to stop on (default: roc_auc, log_loss or rmse by task).
        numeric_embedding: piecewise (piecewise-linear encoding over quantile bins), periodic (PLR) or none.
        numeric_bins: Quantile bins per numeric feature for the piecewise embedding (2 to 256); a small
            training split gets fewer, at least 16 rows per bin.
        ensemble_size: TabM members sharing the MLP's weights (1: a plain MLP); 0 (auto): 8 up to
            AUTO_ENSEMBLE_MAX_ROWS training rows, a plain MLP above (see resolve_budget).
        lr_schedule: cosine (warm-up, then decay over max_epochs) or constant (warm-up, then flat).
    """

    hidden: tuple[int, ...] = (128, 128)
    dropout: float = 0.1
    batch_size: int = 256
    max_epochs: int = 200
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 0
    seed: int = 7
    gpu: str = "prefer"
    early_stopping_metric: str = ""
    numeric_embedding: str = "piecewise"
    numeric_bins: int = 32
    ensemble_size: int = 0
    lr_schedule: str = "cosine"

    def __post_init__(self) -> None:
        """Refuse settings that cannot train, before any data is read (exit 2, named)."""
        problems = []
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            problems.append(f"hidden_layers {self.hidden} must be positive integers, e.g. 64,64")
        for name, value, low in (("batch_size", self.batch_size, 1), ("max_epochs", self.max_epochs, 1), ("patience", self.patience, 0)):
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
        if self.numeric_embedding not in NUMERIC_EMBEDDINGS:
            problems.append(f"numeric_embedding {self.numeric_embedding!r} must be one of {', '.join(NUMERIC_EMBEDDINGS)}")
        if not isinstance(self.numeric_bins, int) or isinstance(self.numeric_bins, bool) or not 2 <= self.numeric_bins <= 256:
            problems.append(f"numeric_bins {self.numeric_bins!r} must be an integer from 2 to 256")
        if not isinstance(self.ensemble_size, int) or isinstance(self.ensemble_size, bool) or not 0 <= self.ensemble_size <= 64:
            problems.append(f"ensemble_size {self.ensemble_size!r} must be an integer from 1 (a plain MLP) to 64, or 0 (auto)")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule {self.lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}")
        if problems:
            raise TrainError("training settings cannot work: " + "; ".join(problems), fix="fix these parameters")


def parse_hidden_layers(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> (64, 64), or a TrainError naming the text."""
    try:
        return tuple(int(h) for h in str(text).split(",") if h.strip())
    except ValueError:
        raise TrainError(f"hidden_layers {str(text)[:80]!r} is not comma-separated integers", fix="pass e.g. 64,64") from None


def effective_batch_size(config: TrainConfig, rows: int) -> int:
    """``batch_size``, or 1/8 of a small split (at least 16 rows) so that an epoch has several steps."""
    return max(1, min(config.batch_size, max(MIN_BATCH, rows // MIN_STEPS_PER_EPOCH)))


def resolve_budget(config: TrainConfig, rows: int) -> TrainConfig:
    """``config`` with an automatic (0) patience and ensemble size made concrete for ``rows`` training rows (per rank)."""
    steps_per_epoch = math.ceil(max(rows, 1) / effective_batch_size(config, max(rows, 1)))
    patience = config.patience or min(AUTO_PATIENCE, max(MIN_AUTO_PATIENCE, math.ceil(PATIENCE_STEPS / steps_per_epoch)))
    ensemble = config.ensemble_size or (AUTO_ENSEMBLE if rows <= AUTO_ENSEMBLE_MAX_ROWS else 1)
    return dataclasses.replace(config, patience=patience, ensemble_size=ensemble)
