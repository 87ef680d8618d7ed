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


def parse_thresholds(text: str) -> list[Threshold]:
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"thresholds are not valid JSON ({exc})", fix='pass e.g. {"roc_auc": {"min": 0.7, "delta": 0.0}}') from exc
    if not isinstance(raw, dict):
        raise DataError("thresholds must be a JSON object keyed by metric", fix='pass e.g. {"roc_auc": {"min": 0.7}}')
    out = []
    for metric, rule in raw.items():
        if not isinstance(rule, dict) or not rule or set(rule) - KEYS:
            raise DataError(f"threshold of {metric!r} must be an object with some of {sorted(KEYS)}", fix='e.g. {"min": 0.7, "delta": 0.0}')
        out.append(Threshold(metric, rule.get("min"), rule.get("max"), rule.get("delta"), bool(rule.get("relative", False))))
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
