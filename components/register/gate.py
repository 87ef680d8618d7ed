"""The evaluation gate: absolute bounds, and change against the champion, per metric.

Thresholds (JSON)::

    {"roc_auc": {"min": 0.70, "delta": 0.0},
     "log_loss": {"max": 0.65, "delta": -0.01, "relative": false}}

``min``/``max`` bound the new model's value. ``delta`` is the improvement required
over the champion in the metric's better direction (negative allows that much
degradation); with ``relative`` it is a share of the champion's value. Without a
champion (or with an incomparable one) only the bounds decide.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.train.metrics import HIGHER_IS_BETTER

KEYS = {"min", "max", "delta", "relative"}


@dataclass(frozen=True)
class Threshold:
    metric: str
    min: float | None = None
    max: float | None = None
    delta: float | None = None
    relative: bool = False


@dataclass(frozen=True)
class Check:
    metric: str
    kind: str  # min, max, delta
    new: float
    champion: float | None
    bound: float
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class GateResult:
    blessed: bool
    checks: list[Check]
    against: str  # "champion", "no champion", "incomparable champion"

    def to_dict(self) -> dict[str, Any]:
        return {"blessed": self.blessed, "against": self.against, "checks": [asdict(c) for c in self.checks]}


_EXAMPLE = '{"roc_auc": {"min": 0.7, "delta": 0.0}}'


def parse_thresholds(text: str) -> list[Threshold]:
    """Thresholds from JSON, strictly: every rule names a known metric and at least one finite bound.

    Unknown keys, wrong types (a string or a boolean where a number goes, a string
    for ``relative``), null bounds, repeated keys and NaN/Infinity are errors: a
    gate that silently checks nothing would bless any model.
    """
    if not text.strip():
        return []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise DataError(f"thresholds repeat the keys {repeated}", fix="write each metric and each bound once")
        return dict(pairs)

    def no_constants(name: str) -> None:
        raise DataError(f"thresholds contain {name}", fix="use finite numbers")

    try:
        raw = json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constants)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"thresholds are not valid JSON ({str(exc)[:200]})", fix=f"pass e.g. {_EXAMPLE}") from exc
    if not isinstance(raw, dict) or not raw:
        raise DataError("thresholds must be a non-empty JSON object keyed by metric", fix=f"pass e.g. {_EXAMPLE}, or nothing for the default gate")
    out = []
    for metric, rule in raw.items():
        if metric not in HIGHER_IS_BETTER:
            raise DataError(f"unknown metric {metric!r} in thresholds", fix=f"use some of {sorted(HIGHER_IS_BETTER)}")
        if not isinstance(rule, dict) or set(rule) - KEYS:
            raise DataError(f"threshold of {metric!r} must be an object with some of {sorted(KEYS)}", fix=f"e.g. {_EXAMPLE}")
        bounds = {}
        for key in ("min", "max", "delta"):
            if key not in rule:
                continue
            value = rule[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DataError(f"{metric}.{key} must be a finite number, not {value!r}", fix=f"e.g. {_EXAMPLE}")
            bounds[key] = float(value)
        if not bounds:
            raise DataError(f"threshold of {metric!r} sets no bound (min, max or delta)", fix="give at least one number, or leave the metric out")
        relative = rule.get("relative", False)
        if not isinstance(relative, bool):
            raise DataError(f"{metric}.relative must be true or false, not {relative!r}", fix='write "relative": true without quotes')
        if relative and "delta" not in bounds:
            raise DataError(f"{metric}.relative is set without a delta", fix="relative applies to delta: add one")
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            raise DataError(f"{metric}: min {bounds['min']} is above max {bounds['max']}", fix="no model could pass: swap or fix them")
        out.append(Threshold(metric, bounds.get("min"), bounds.get("max"), bounds.get("delta"), relative))
    return out


def decide(new: dict[str, float], champion: dict[str, float] | None, thresholds: list[Threshold], *, comparable: bool = True) -> GateResult:
    """Check ``new`` against the bounds and, when there is a comparable champion, against it."""
    unknown = sorted(t.metric for t in thresholds if t.metric not in new)
    if unknown:
        raise DataError(f"thresholds name metrics the model does not produce: {unknown}", fix=f"use some of {sorted(new)}")
    checks: list[Check] = []
    against = "champion" if champion is not None and comparable else ("incomparable champion" if champion is not None else "no champion")
    for t in thresholds:
        value = float(new[t.metric])
        if t.min is not None:
            checks.append(Check(t.metric, "min", value, None, t.min, value >= t.min))
        if t.max is not None:
            checks.append(Check(t.metric, "max", value, None, t.max, value <= t.max))
        if t.delta is None:
            continue
        if against != "champion" or t.metric not in champion:  # type: ignore[operator]
            checks.append(Check(t.metric, "delta", value, None, t.delta, True, f"skipped: {against}"))
            continue
        base = float(champion[t.metric])  # type: ignore[index]
        gain = value - base if HIGHER_IS_BETTER.get(t.metric, True) else base - value
        if t.relative:
            gain = gain / abs(base) if base else gain
        checks.append(Check(t.metric, "delta", value, base, t.delta, gain >= t.delta, f"{'relative ' if t.relative else ''}improvement {gain:+.4g}"))
    return GateResult(blessed=all(c.passed for c in checks), checks=checks, against=against)
