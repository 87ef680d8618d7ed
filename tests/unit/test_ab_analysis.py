"""The A/B decision: SRM first, guardrails, the primary metric; canary periods; decisions agree with intervals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from kfp_mlops.components.abtest.analysis import analyze, analyze_periods
from kfp_mlops.components.abtest.logs import ArmData, ExperimentData
from kfp_mlops.components.abtest.periods import Period
from kfp_mlops.components.abtest.settings import AnalysisInputError, AnalysisSettings, check_settings
from kfp_mlops.components.abtest.stats.moments import Moments

T0 = datetime(2026, 11, 28, 9, tzinfo=timezone.utc)
LOOKS = 8


def arm(name: str, n: float, rate: float, *, latency_ms: float = 20.0, latency_sd: float = 4.0, error_rate: float = 0.0, p95: float | None = None,
        rng: np.random.Generator | None = None, looks: int = LOOKS, version: str = "1") -> ArmData:  # fmt: skip
    """An arm whose units arrive evenly; with ``rng`` the successes are drawn, else exactly ``rate``."""
    units = np.linspace(n / looks, n, looks).round()
    steps = np.diff(units, prepend=0.0)
    successes = np.cumsum(rng.binomial(steps.astype(int), rate)) if rng is not None else (units * rate).round()
    errors = (units * error_rate).round()
    latency = Moments(n=units, sum=units * latency_ms, sum_sq=units * (latency_ms**2 + latency_sd**2))
    return ArmData(name, units, Moments.binary(successes, units), latency, units + errors, errors, p95 if p95 is not None else 1.6 * latency_ms, 0, [version])


def data(*arms: ArmData, start: datetime = T0, looks: int = LOOKS) -> ExperimentData:
    times = [start + timedelta(minutes=10 * (k + 1)) for k in range(looks)]
    return ExperimentData({a.name: a for a in arms}, times, start, times[-1], int(sum(a.units[-1] for a in arms)), 0, 0)


HALF = {"champion": 50, "challenger": 50}


def test_a_clearly_better_challenger_is_promoted_with_its_interval_above_zero():
    result = analyze(data(arm("champion", 5000, 0.70), arm("challenger", 5000, 0.75, version="2")), AnalysisSettings(), HALF)
    assert result.decision.action == "promote" and result.decision.challenger == "challenger"
    primary = next(c for c in result.comparisons if c.role == "primary")
    assert primary.significant and primary.lower > 0 and primary.effect == pytest.approx(0.05)
    assert len(primary.over_time) == LOOKS and result.power is not None and result.family_size == 4


def test_a_worse_challenger_is_rolled_back_by_the_primary_harm_test():
    result = analyze(data(arm("champion", 5000, 0.75), arm("challenger", 5000, 0.70)), AnalysisSettings(), HALF)
    assert result.decision.action == "rollback"
    assert any("accuracy worse" in r for r in result.decision.reasons)


def test_latency_harm_needs_both_the_margin_and_the_floor():
    slow = analyze(data(arm("champion", 5000, 0.7), arm("challenger", 5000, 0.7, latency_ms=40.0)), AnalysisSettings(), HALF)
    assert slow.decision.action == "rollback" and "latency" in slow.decision.reasons[0]
    # +60% but only +0.3 ms: noise of a cold process, never worth a rollback
    arms = data(arm("champion", 5000, 0.7, latency_ms=0.5, latency_sd=0.1), arm("challenger", 5000, 0.7, latency_ms=0.8, latency_sd=0.1))
    assert analyze(arms, AnalysisSettings(), HALF).decision.action != "rollback"
    lowered = analyze(arms, AnalysisSettings(latency_floor_ms=0.1), HALF)
    assert lowered.decision.action == "rollback", "with the floor lowered the same data is harm"


def test_a_failing_challenger_is_rolled_back_by_the_error_guardrail():
    result = analyze(data(arm("champion", 5000, 0.7), arm("challenger", 5000, 0.7, error_rate=0.03)), AnalysisSettings(), HALF)
    assert result.decision.action == "rollback" and "5xx" in result.decision.reasons[0]


def test_the_p95_ceiling_rolls_back():
    result = analyze(data(arm("champion", 5000, 0.7), arm("challenger", 5000, 0.7, p95=250.0)), AnalysisSettings(max_p95_latency_ms=200), HALF)
    assert result.decision.action == "rollback" and "p95" in result.decision.reasons[0]


def test_a_sample_ratio_mismatch_blocks_even_a_clear_winner():
    result = analyze(data(arm("champion", 9600, 0.70), arm("challenger", 10400, 0.80)), AnalysisSettings(), HALF)
    assert result.decision.action == "blocked" and result.srm.mismatch
    assert result.srm.chi_square_p < 1e-6 and "sample-ratio mismatch" in result.decision.reasons[0]
    fine = analyze(data(arm("champion", 9000, 0.70), arm("challenger", 1000, 0.70)), AnalysisSettings(), {"champion": 90, "challenger": 10})
    assert not fine.srm.mismatch, "a 90/10 design receiving 90/10 is no mismatch"


def test_too_little_data_continues_and_says_how_much_is_missing():
    result = analyze(data(arm("champion", 150, 0.5), arm("challenger", 150, 0.9)), AnalysisSettings(), HALF)
    assert result.decision.action == "continue" and "200 units per arm" in result.decision.reasons[0]


def test_design_mistakes_are_named():
    d = data(arm("champion", 1000, 0.7), arm("challenger", 1000, 0.7))
    with pytest.raises(AnalysisInputError, match="control arm 'baseline'"):
        analyze(d, AnalysisSettings(control="baseline"), HALF)
    with pytest.raises(AnalysisInputError, match="arms \\['challenger'\\] that the design"):
        analyze(d, AnalysisSettings(), {"champion": 100})
    with pytest.raises(AnalysisInputError, match="no challenger receives traffic"):
        analyze(data(arm("champion", 1000, 0.7)), AnalysisSettings(), {"champion": 100, "challenger": 0})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "clicks"}, "metric 'clicks'"),
        ({"unit": "session"}, "unit 'session'"),
        ({"alpha": 0.7}, "alpha 0.7"),
        ({"alpha": float("nan")}, "alpha nan"),
        ({"method": "bayesian"}, "method 'bayesian'"),
        ({"cuped_days": 7}, "CUPED needs"),
        ({"missing_outcome": "zero"}, "not a accuracy value"),
        ({"since": datetime(2026, 1, 1)}, "no timezone"),
        ({"since": T0, "until": T0 - timedelta(hours=1)}, "ends"),
        ({"tuning": 0}, "tuning 0"),
        ({"latency_floor_ms": -1}, "latency_floor_ms -1"),
    ],
)
def test_bad_settings_fail_before_anything_is_read(changes, message):
    with pytest.raises(AnalysisInputError, match=message) as caught:
        check_settings(AnalysisSettings(**changes))
    assert "What to do" in str(caught.value)


def test_canary_periods_are_stratified_so_a_time_trend_is_no_effect():
    """Weights 90/10 while the base rate is 0.5, then 50/50 when it is 0.7; no true effect.

    Pooled, the challenger's units sit mostly in the good period: a spurious +0.08. Stratified: none.
    """
    first = data(arm("champion", 9000, 0.5), arm("challenger", 1000, 0.5))
    second = data(arm("champion", 5000, 0.7), arm("challenger", 5000, 0.7), start=T0 + timedelta(hours=2))
    periods = [Period(first, {"champion": 90, "challenger": 10}), Period(second, HALF)]
    stratified = analyze_periods(periods, AnalysisSettings())
    primary = next(c for c in stratified.comparisons if c.role == "primary")
    assert primary.effect == pytest.approx(0.0, abs=1e-9) and stratified.decision.action == "continue"
    assert not stratified.srm.mismatch and stratified.periods == 2 and len(primary.over_time) == 2 * LOOKS
    merged_counts = {"champion": 14000, "challenger": 6000}
    pooled_rate = {n: (9000 * 0.5 + 5000 * 0.7) / 14000 if n == "champion" else (1000 * 0.5 + 5000 * 0.7) / 6000 for n in merged_counts}
    assert pooled_rate["challenger"] - pooled_rate["champion"] > 0.08, "what pooling would have reported"


def test_periods_must_keep_the_same_arms():
    first = data(arm("champion", 1000, 0.5), arm("challenger", 1000, 0.5))
    with pytest.raises(AnalysisInputError, match="arms changed"):
        analyze_periods([Period(first, HALF), Period(first, {"champion": 50, "other": 50})], AnalysisSettings())


@pytest.mark.parametrize("correction", ["none", "holm", "bh"])
def test_every_decision_agrees_with_its_interval(correction):
    rng = np.random.default_rng(11)
    for _ in range(60):
        lift = rng.uniform(-0.04, 0.04)
        result = analyze(data(arm("champion", 3000, 0.6, rng=rng), arm("challenger", 3000, 0.6 + lift, rng=rng)), AnalysisSettings(correction=correction, min_units=50), HALF)
        for c in result.comparisons:
            if c.metric != "accuracy" or not c.estimable:
                continue
            excludes = c.lower > 0 if c.question.startswith("accuracy better") else c.upper < 0
            if c.significant:
                assert excludes, (c.question, c.lower, c.upper, c.adjusted_p)
            if correction == "none":
                assert c.significant == excludes
