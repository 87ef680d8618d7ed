"""Repeated simulated canary rollouts through the real decision code (10% -> 25% -> 50%, a gate after each step).

Each step's traffic is drawn (binomial outcomes, per-request assignment); each gate analyses all
steps so far as periods, exactly as ``core.run_gate`` does, and the last gate rolls back when
nothing was shown. A better challenger must be promoted, an equal one promoted no more often than
alpha, a failing one rolled back by its guardrail.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from kfp_mlops.components.abtest.analysis import Decision, analyze_periods
from kfp_mlops.components.abtest.periods import Period
from kfp_mlops.components.abtest.settings import AnalysisSettings
from tests.unit.test_ab_analysis import T0, arm, data

STEPS = (10, 25, 50)
REQUESTS_PER_STEP = 4000
ROLLOUTS = 300
LOOKS = 4


def rollout(rng: np.random.Generator, *, lift: float = 0.0, error_rate: float = 0.0, base: float = 0.7) -> Decision:
    periods: list[Period] = []
    for step, weight in enumerate(STEPS):
        challenger_units = rng.binomial(REQUESTS_PER_STEP, weight / 100)
        start = T0 + timedelta(hours=step)
        period = data(
            arm("champion", REQUESTS_PER_STEP - challenger_units, base, rng=rng, looks=LOOKS),
            arm("challenger", challenger_units, base + lift, rng=rng, looks=LOOKS, error_rate=error_rate),
            start=start, looks=LOOKS,
        )  # fmt: skip
        periods.append(Period(period, {"champion": 100 - weight, "challenger": weight}))
        decision = analyze_periods(periods, AnalysisSettings()).decision
        if decision.action != "continue":
            return decision
    return Decision("rollback", "challenger", ["last step, nothing shown"])


def _outcomes(**kwargs) -> dict[str, float]:
    rng = np.random.default_rng(2026)
    actions = [rollout(rng, **kwargs) for _ in range(ROLLOUTS)]
    shares = {a: sum(d.action == a for d in actions) / ROLLOUTS for a in ("promote", "rollback", "continue", "blocked")}
    shares["by_guardrail"] = sum(d.action == "rollback" and "5xx" in " ".join(d.reasons) for d in actions) / ROLLOUTS
    return shares


def test_a_truly_better_challenger_is_promoted():
    shares = _outcomes(lift=0.05)
    assert shares["promote"] >= 0.9, shares


def test_an_equal_challenger_is_promoted_no_more_often_than_alpha():
    shares = _outcomes(lift=0.0)
    margin = 2.58 * np.sqrt(0.05 * 0.95 / ROLLOUTS)
    assert shares["promote"] <= 0.05 + margin, shares
    assert shares["blocked"] <= 0.01, "the SRM test is not set off by a correct split"


def test_a_failing_challenger_is_rolled_back_by_its_guardrail_even_when_more_accurate():
    shares = _outcomes(lift=0.02, error_rate=0.03)
    assert shares["by_guardrail"] >= 0.9 and shares["promote"] <= 0.05, shares
