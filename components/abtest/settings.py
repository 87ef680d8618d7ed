"""What an A/B analysis compares and how strictly: one checked settings object.

Every setting is checked here, before any log is read, so a typo fails at once with
the fix named. The metric names are the only place a metric's meaning is spelled:
the log reader turns each into SQL, the report prints its description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from kfp_mlops.components._shared.errors import KfpMlopsError


class AnalysisInputError(KfpMlopsError):
    """The analysis request itself is wrong (metric, unit, alpha, arms, window)."""


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # the test: proportion (z), mean (Welch); per-user units make it a ratio (delta method)
    higher_is_better: bool
    description: str
    numeric_outcome: bool  # the outcome must parse as a number


METRICS = {
    m.name: m
    for m in (
        Metric("accuracy", "proportion", True, "share of requests whose prediction equals the outcome reported later", False),
        Metric("conversion", "proportion", True, "share of requests whose outcome is 1 (outcomes are 0 or 1)", True),
        Metric("mean_outcome", "mean", True, "mean of the numeric outcome (e.g. revenue per request)", True),
        Metric("absolute_error", "mean", False, "mean |prediction - outcome| (regression)", True),
        Metric("squared_error", "mean", False, "mean (prediction - outcome)^2 (regression)", True),
    )
}
UNITS = ("request", "user")
METHODS = ("always-valid", "fixed-horizon")
MISSING_OUTCOME = ("exclude", "zero")
CORRECTIONS = ("holm", "bh", "none")


@dataclass(frozen=True)
class AnalysisSettings:
    """How to analyse one experiment.

    Attributes:
        control: The arm the others are compared with (the champion).
        metric: The primary metric, a key of ``METRICS``.
        unit: request (each request assigned at random) or user (the splitter's sticky key:
            per-user assignment, per-request outcomes analysed by the delta method).
        alpha: Type-I error of the whole experiment (all challengers, the primary metric and the guardrails).
        method: always-valid (a confidence sequence: safe to look at any time) or fixed-horizon
            (valid only at one planned look at the planned sample size).
        tuning: The confidence sequence's N*: the total sample size where it is narrowest.
        min_effect: Smallest improvement worth promoting, in the metric's units (0: any proven improvement).
        correction: holm or bh (Benjamini-Hochberg) across challengers x metrics, or none.
        missing_outcome: exclude requests without an outcome, or count them as 0 (conversion, mean_outcome).
        cuped_days: user units: days before ``since`` whose outcomes are each user's covariate (0 = off).
        latency_margin: Guardrail: relative increase of mean latency tolerated before it is harm (0.2 = 20%).
        latency_floor_ms: Guardrail: and the absolute increase (ms) tolerated in any case.
        error_margin: Guardrail: absolute increase of the 5xx rate tolerated before it is harm (0.005 = 0.5 points).
        max_p95_latency_ms: Guardrail: a hard ceiling on the challenger's p95 latency (0 = none).
        min_units: Fewest units per arm before a promotion (the normal approximation needs them; a proven harm rolls back at any time).
        power: Target power of the sample-size calculation.
        looks: Time buckets of the over-time view (and of the sequential SRM test).
        since, until: The window (timezone-aware UTC); None = from the first / to the last log row.
    """

    control: str = "champion"
    metric: str = "accuracy"
    unit: str = "request"
    alpha: float = 0.05
    method: str = "always-valid"
    tuning: float = 5000.0
    min_effect: float = 0.0
    correction: str = "holm"
    missing_outcome: str = "exclude"
    cuped_days: float = 0.0
    latency_margin: float = 0.2
    latency_floor_ms: float = 5.0
    error_margin: float = 0.005
    max_p95_latency_ms: float = 0.0
    min_units: int = 200
    power: float = 0.8
    looks: int = 20
    srm_alpha: float = 0.001
    since: datetime | None = None
    until: datetime | None = None

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]


def check_settings(settings: AnalysisSettings) -> AnalysisSettings:
    """``settings`` if every value is usable, else AnalysisInputError naming the first problem and its fix."""
    s = settings
    if s.metric not in METRICS:
        raise AnalysisInputError(
            f"metric {s.metric!r} is not one of {', '.join(METRICS)}", fix="accuracy for classifiers, absolute_error for regressors, conversion or mean_outcome for business outcomes"
        )
    if s.unit not in UNITS:
        raise AnalysisInputError(f"unit {s.unit!r} is not request or user", fix="user when the splitter routes by a sticky key (X-Kfp-Mlops-Key), else request")
    if s.method not in METHODS:
        raise AnalysisInputError(f"method {s.method!r} is not one of {', '.join(METHODS)}", fix="always-valid unless you look exactly once, at a sample size planned in advance")
    if s.correction not in CORRECTIONS:
        raise AnalysisInputError(f"correction {s.correction!r} is not one of {', '.join(CORRECTIONS)}", fix="holm controls the chance of any false claim; bh the share of false claims")
    if s.missing_outcome not in MISSING_OUTCOME:
        raise AnalysisInputError(f"missing_outcome {s.missing_outcome!r} is not exclude or zero", fix="zero when no outcome means none happened (no conversion), else exclude")
    if s.missing_outcome == "zero" and s.metric not in ("conversion", "mean_outcome"):
        raise AnalysisInputError(f"missing_outcome=zero means 'no outcome = 0', which is not a {s.metric} value", fix="use missing_outcome=exclude with this metric")
    for name, value, low, high in (("alpha", s.alpha, 0.0, 0.5), ("srm_alpha", s.srm_alpha, 0.0, 0.5), ("power", s.power, 0.5, 1.0)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and low < value < high):
            raise AnalysisInputError(f"{name} {value!r} is not between {low} and {high}", fix=f"e.g. {name}=0.05" if name != "power" else "e.g. power=0.8")
    for name, value in (("tuning", s.tuning), ("looks", s.looks), ("min_units", s.min_units)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
            raise AnalysisInputError(f"{name} {value!r} must be a number >= 1", fix=f"leave {name} at its default")
    for name, value in (
        ("min_effect", s.min_effect),
        ("cuped_days", s.cuped_days),
        ("latency_margin", s.latency_margin),
        ("latency_floor_ms", s.latency_floor_ms),
        ("error_margin", s.error_margin),
        ("max_p95_latency_ms", s.max_p95_latency_ms),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise AnalysisInputError(f"{name} {value!r} must be a finite number >= 0", fix=f"pass {name}=0 to turn it off")
    if s.cuped_days and (s.unit != "user" or s.metric not in ("conversion", "mean_outcome")):
        raise AnalysisInputError(
            "CUPED needs a pre-period value per unit: user units and an outcome metric (conversion or mean_outcome)",
            fix="set unit=user with metric conversion or mean_outcome, or cuped_days=0",
        )
    for name, value in (("since", s.since), ("until", s.until)):
        if value is not None and value.tzinfo is None:
            raise AnalysisInputError(f"{name} {value.isoformat()} has no timezone", fix="give times in UTC, e.g. 2026-11-28T10:00:00Z")
    if s.since is not None and s.until is not None and s.until <= s.since:
        raise AnalysisInputError(f"the window ends ({s.until.isoformat()}) before it starts ({s.since.isoformat()})", fix="swap since and until")
    if not s.control.strip():
        raise AnalysisInputError("control arm is empty", fix="name the arm the challengers are compared with, e.g. champion")
    return s
