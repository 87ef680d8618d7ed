"""Sweep logic: expand a search space into trials; rank trained models by a validation metric."""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.train.metrics import HIGHER_IS_BETTER

MAX_TRIALS = 256
TUNABLE = {
    "hidden_layers": str,
    "learning_rate": float,
    "batch_size": int,
    "dropout": float,
    "weight_decay": float,
    "max_epochs": int,
}


def expand(space_json: str, *, strategy: str = "grid", samples: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """Trials from a search space ``{"learning_rate": [0.001, 0.003], "hidden_layers": ["64,64", "128"]}``.

    ``grid`` takes every combination; ``random`` draws ``samples`` distinct ones (seeded).
    Every trial carries every tunable key, so a ParallelFor can pass them all.
    """
    try:
        space = json.loads(space_json)
    except json.JSONDecodeError as exc:
        raise DataError(f"the search space is not valid JSON ({exc})", fix='pass e.g. {"learning_rate": [0.001, 0.003]}') from exc
    if not isinstance(space, dict) or not space:
        raise DataError("the search space must be a non-empty JSON object of lists", fix='pass e.g. {"learning_rate": [0.001, 0.003]}')
    unknown = sorted(set(space) - set(TUNABLE))
    if unknown:
        raise DataError(f"unknown hyperparameters {unknown}", fix=f"tunable: {sorted(TUNABLE)}")
    for key, values in space.items():
        if not isinstance(values, list) or not values:
            raise DataError(f"{key!r} needs a non-empty list of values", fix="write each hyperparameter as a list")
    for key, values in space.items():
        for value in values:
            _typed(key, value)
    keys = sorted(space)
    size = math.prod(len(space[k]) for k in keys)
    if strategy == "grid" and size > MAX_TRIALS:
        raise DataError(f"the grid has {size:,} combinations, more than {MAX_TRIALS} trials", fix=f"use strategy random with samples <= {MAX_TRIALS}, or fewer values")
    if strategy == "random" and not 1 <= samples <= MAX_TRIALS:
        raise DataError(f"samples {samples} must be between 1 and {MAX_TRIALS}", fix="pass how many trials to draw")
    combos = [dict(zip(keys, vs)) for vs in itertools.product(*(space[k] for k in keys))]
    if strategy == "random":
        rng = random.Random(seed)
        combos = rng.sample(combos, min(samples, len(combos)))
    elif strategy != "grid":
        raise DataError(f"unknown strategy {strategy!r}", fix="use grid or random")
    # The train component's defaults, so a trial that leaves a setting out trains as a plain run would.
    defaults = {"hidden_layers": "128,128", "learning_rate": 0.001, "batch_size": 256, "dropout": 0.1, "weight_decay": 0.0001, "max_epochs": 200}
    return [{k: TUNABLE[k]({**defaults, **c}[k]) for k in TUNABLE} for c in combos]


def parse_trial(text: str) -> dict[str, Any]:
    """A trial's settings from its JSON text (as sweep_trials emits them), typed."""
    try:
        trial = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"hyperparameters are not valid JSON ({exc})", fix='pass e.g. {"learning_rate": 0.003}') from exc
    if not isinstance(trial, dict):
        raise DataError("hyperparameters must be a JSON object", fix='pass e.g. {"learning_rate": 0.003}')
    unknown = sorted(set(trial) - set(TUNABLE))
    if unknown:
        raise DataError(f"unknown hyperparameters {unknown}", fix=f"tunable: {sorted(TUNABLE)}")
    return {k: _typed(k, v) for k, v in trial.items()}


def _typed(key: str, value: Any) -> Any:
    """A hyperparameter value of the right type and range, or a DataError naming it."""
    kind = TUNABLE[key]
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # one hidden layer written as a number
    shape = "text such as 64,64" if kind is str else "numbers"
    if isinstance(value, bool) or (kind is str and not isinstance(value, str)) or (kind is not str and not isinstance(value, (int, float, str))):
        raise DataError(f"{key} value {value!r} is not a {kind.__name__}", fix=f"write {key} values as {shape}")
    try:
        typed = kind(float(value)) if kind is int else kind(value)
    except ValueError:
        raise DataError(f"{key} value {value!r} is not a {kind.__name__}", fix=f"write {key} values as {shape}") from None
    if kind is not str and (not math.isfinite(typed) or typed < 0 or (key != "weight_decay" and key != "dropout" and typed <= 0)):
        raise DataError(f"{key} value {value!r} is out of range", fix=f"use a positive {kind.__name__}" + (" (0 allowed)" if key in ("weight_decay", "dropout") else ""))
    return typed


@dataclass(frozen=True)
class Candidate:
    """A trial's model: its index and its metrics (``val_*``, ``test_*``) from the model contract."""

    index: int
    metrics: dict[str, Any]


def rank(candidates: list[Candidate], metric: str) -> list[tuple[Candidate, float]]:
    """Candidates ordered best first by ``val_<metric>`` in their metadata (missing or NaN last)."""
    if metric not in HIGHER_IS_BETTER:
        raise DataError(f"unknown metric {metric!r}", fix=f"use one of {sorted(HIGHER_IS_BETTER)}")
    if not candidates:
        raise DataError("no trained models to choose from", fix="check the sweep's trials")
    key = f"val_{metric}"
    scored = []
    for c in candidates:
        value = c.metrics.get(key)
        scored.append((c, float(value) if isinstance(value, (int, float)) else math.nan))
    if all(math.isnan(v) for _, v in scored):
        raise DataError(f"no model reports {key}", fix=f"pick a metric the models were validated on: {sorted(k for k in candidates[0].metrics if k.startswith('val_'))}")
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    return sorted(scored, key=lambda cv: (math.isnan(cv[1]), sign * cv[1] if not math.isnan(cv[1]) else 0, cv[0].index))
