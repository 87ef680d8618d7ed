"""The A/B analysis: SRM first, then the primary metric and the guardrails per challenger.

Every hypothesis of the experiment (per challenger: the primary metric better, the
primary metric worse, latency harm, error-rate harm) is one member of one family;
its p-values are adjusted together (Holm or Benjamini-Hochberg). Each p-value is the
two-sided one of the distance to the hypothesis' threshold (counted only on the side the
hypothesis names), and each interval is drawn at the level its test used (Holm:
alpha / (m - rank + 1); BH: alpha * rank / m), with the same mixture, so an interval
excludes the threshold exactly when its test rejects at that level.
Sequential (always-valid) p-values and confidence sequences make every look safe: the
gate may run after every canary step, or every minute, without inflating false claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from kfp_mlops.components.abtest.logs import ArmData, ExperimentData
from kfp_mlops.components.abtest.periods import Period, expected_shares, merged, over_periods
from kfp_mlops.components.abtest.settings import AnalysisInputError, AnalysisSettings
from kfp_mlops.components.abtest.stats import estimate as est
from kfp_mlops.components.abtest.stats import multiple, power, sequential, srm
from kfp_mlops.components.abtest.stats.moments import Moments

PRIMARY, GUARDRAIL = "primary", "guardrail"


@dataclass
class Comparison:
    """One challenger against the control on one metric, at the last look and over time."""

    challenger: str
    metric: str
    role: str  # primary | guardrail
    question: str  # what a significant result means, in words
    control_value: float
    challenger_value: float
    effect: float  # challenger - control (relative for latency)
    lower: float
    upper: float
    p_value: float  # of this hypothesis, before adjustment
    adjusted_p: float = float("nan")
    level: float = float("nan")  # the level its interval is drawn at (its test's critical level)
    significant: bool = False
    estimable: bool = True
    over_time: list[tuple[datetime, float, float, float]] = field(default_factory=list)  # (look, effect, lower, upper)


@dataclass
class SrmCheck:
    counts: dict[str, int]
    expected_shares: dict[str, float]
    chi_square_p: float
    sequential_p: float
    mismatch: bool
    periods: int = 1  # each period is tested against its own weights; the smallest p-values are shown


@dataclass
class PowerCheck:
    mde: float  # the effect the calculation is for, in the metric's units
    level: float  # the two-sided level it is computed at (the strictest the primary test may face)
    units_needed: float  # both arms together, fixed horizon
    units_needed_sequential: float
    units_so_far: float
    remaining_s: float  # at the current traffic; inf without traffic


@dataclass
class Decision:
    action: str  # promote | rollback | continue | blocked
    challenger: str  # the challenger promoted or rolled back ("" for continue)
    reasons: list[str]


@dataclass
class AnalysisResult:
    settings: AnalysisSettings
    data: ExperimentData
    srm: SrmCheck
    comparisons: list[Comparison]
    power: PowerCheck | None
    decision: Decision
    family_size: int
    warnings: list[str] = field(default_factory=list)
    periods: int = 1  # canary steps analysed together (stratified)


def analyze(data: ExperimentData, settings: AnalysisSettings, weights: dict[str, int]) -> AnalysisResult:
    """Test ``data`` under ``settings``; ``weights`` are the deployment's traffic percents per arm (the SRM design)."""
    return analyze_periods([Period(data, weights)], settings)


def analyze_periods(periods: list[Period], settings: AnalysisSettings) -> AnalysisResult:
    """Test an experiment whose weights changed between periods (canary steps): per-period SRM, stratified effects."""
    weights = _check_design(periods, settings)
    challengers = [name for name in weights if name != settings.control and weights[name] > 0]
    data = merged(periods, _empty_arm)
    arms = {name: data.arms.get(name) or _empty_arm(len(data.look_times)) for name in weights}
    srm_check = _srm(periods, settings.srm_alpha)
    comparisons: list[Comparison] = []
    estimates: list[est.Estimate] = []
    for name in challengers:
        for comparison, estimate in _compare(periods, arms[settings.control], arms[name], settings):
            comparisons.append(comparison)
            estimates.append(estimate)
    family = max(1, len(comparisons))
    raw = np.array([c.p_value for c in comparisons], dtype=float)
    adjusted = raw if settings.correction == "none" else (multiple.holm(raw) if settings.correction == "holm" else multiple.benjamini_hochberg(raw))
    for comparison, estimate, p, level in zip(comparisons, estimates, np.atleast_1d(adjusted), multiple.critical_levels(raw, settings.alpha, settings.correction) if len(raw) else []):
        comparison.adjusted_p = float(p)
        comparison.significant = bool(comparison.estimable and np.isfinite(p) and p <= settings.alpha)
        comparison.level = level
        _draw_intervals(comparison, estimate, data.look_times, settings, level)
    share = weights[challengers[0]] / (weights[challengers[0]] + weights[settings.control]) if challengers else 0.5
    power_check = _power(arms[settings.control], arms[challengers[0]], data, settings, share, settings.alpha / family) if challengers else None
    decision = _decide(arms, challengers, comparisons, srm_check, settings)
    return AnalysisResult(settings, data, srm_check, comparisons, power_check, decision, family, _warnings(data, settings), len(periods))


def _check_design(periods: list[Period], settings: AnalysisSettings) -> dict[str, int]:
    """The current (last) design, after checking every period's against its data."""
    if not periods:
        raise AnalysisInputError("no period to analyse", fix="pass the deployment's arms and the window")
    names = list(periods[-1].weights)
    for period in periods:
        weights = period.weights
        if list(weights) != names:
            raise AnalysisInputError(f"the arms changed between periods ({list(weights)} then {names})", fix="analyse each set of arms as its own experiment")
        if settings.control not in weights:
            raise AnalysisInputError(f"the control arm {settings.control!r} is not among the deployment's arms {sorted(weights)}", fix="pass control= the champion's arm name, as deployed")
        unknown = sorted(set(period.data.arms) - set(weights))
        if unknown:
            raise AnalysisInputError(f"the log has arms {unknown} that the design {weights} does not", fix="pass the deployment's arms with their weights, e.g. champion=90,challenger=10")
    if not any(w > 0 for name, w in periods[-1].weights.items() if name != settings.control):
        raise AnalysisInputError(f"no challenger receives traffic in the design {periods[-1].weights}", fix="give a challenger a weight above 0")
    return dict(periods[-1].weights)


def _empty_arm(looks: int) -> ArmData:
    zeros = np.zeros(looks)
    moments = Moments(n=zeros, sum=zeros, sum_sq=zeros)
    return ArmData("", zeros, moments, moments, zeros, zeros, 0.0, 0)


def _warnings(data: ExperimentData, settings: AnalysisSettings) -> list[str]:
    out = []
    if data.bad_outcomes:
        out.append(f"{data.bad_outcomes} outcome(s) are not {settings.metric} values ({settings.spec.description}) and were left out")
    if data.users_in_several_arms:
        out.append(f"{data.users_in_several_arms} user(s) were served by more than one arm (weights changed or keys collide): their outcomes mix arms")
    if data.requests_without_key and settings.unit == "user":
        out.append(f"{data.requests_without_key} request(s) carry no routing key and are left out of the per-user analysis")
    served = {tuple(arm.versions) for arm in data.arms.values() if arm.versions}
    if len(data.arms) > 1 and len(served) == 1:
        out.append(f"every arm served the same model version ({', '.join(next(iter(served)))}): this is an A/A test, nothing can be promoted")
    for arm in data.arms.values():
        if len(arm.versions) > 1:
            out.append(f"arm {arm.name!r} served several model versions in the window ({', '.join(arm.versions)}): the window spans a redeploy")
    return out


def _srm(periods: list[Period], srm_alpha: float) -> SrmCheck:
    """SRM per period (each against its own weights, at srm_alpha / periods); the smallest p-values are reported."""
    chi_ps, seq_ps, counts = [], [], {}
    for period in periods:
        names = [n for n, w in period.weights.items() if w > 0]
        shares = np.array([period.weights[n] for n in names], dtype=float)
        looks = len(period.data.look_times)
        over_time = np.stack([period.data.arms[n].units if n in period.data.arms else np.zeros(looks) for n in names], axis=-1)
        if over_time[-1].sum() == 0:
            continue
        chi_ps.append(float(srm.srm_chi_square(over_time[-1], shares)[1]))
        seq_ps.append(float(np.asarray(srm.srm_sequential(over_time, shares))[-1]))
        for name, arm in period.data.arms.items():
            counts[name] = counts.get(name, 0) + int(arm.units[-1])
    chi_p, seq_p = min(chi_ps, default=1.0), min(seq_ps, default=1.0)
    threshold = srm_alpha / len(periods)
    return SrmCheck(counts, expected_shares(periods), chi_p, seq_p, chi_p < threshold or seq_p < threshold, len(periods))


def _kind(moments: Moments, settings: AnalysisSettings) -> str:
    """Per-user sums are a ratio (delta method); CUPED's per-user totals a mean; else the metric's own test."""
    return "ratio" if moments.has_ratio else ("mean" if settings.cuped_days else settings.spec.kind)


def _estimate(control: Moments, treatment: Moments, settings: AnalysisSettings) -> est.Estimate:
    return est.difference(control, treatment, kind=_kind(treatment, settings), cuped=bool(settings.cuped_days))


def _latency(control: ArmData, challenger: ArmData) -> est.Estimate:
    return est.difference(control.latency, challenger.latency, kind="mean")


def _errors(control: ArmData, challenger: ArmData) -> est.Estimate:
    return est.difference(Moments.binary(control.errors, control.requests), Moments.binary(challenger.errors, challenger.requests), kind="proportion")


def _p_directed(estimate: est.Estimate, threshold: float, settings: AnalysisSettings, greater: bool) -> float:
    """p of H0 'effect <= threshold' (greater) or 'effect >= threshold' at the last look.

    The two-sided p-value of effect - threshold when the effect lies on the named side (else 1):
    the interval at level a excludes the threshold exactly when this is <= a.
    """
    shifted = est.Estimate(np.asarray(estimate.effect) - threshold, estimate.variance, estimate.n_total, estimate.dof)
    if settings.method == "fixed-horizon":
        p = float(np.atleast_1d(est.fixed_interval(shifted, settings.alpha)[2])[-1])
    else:
        p = float(np.atleast_1d(sequential.mixture_p_value(shifted, tuning=settings.tuning, alpha=settings.alpha))[-1])
    side = float(np.atleast_1d(shifted.effect)[-1])
    return p if (side > 0 if greater else side < 0) else 1.0


def _interval(estimate: est.Estimate, settings: AnalysisSettings, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided interval at ``level``; always-valid: the mixture tuned for ``settings.alpha``, as the p-values are."""
    if settings.method == "fixed-horizon":
        lower, upper, _ = est.fixed_interval(estimate, level)
        return lower, upper
    r = np.asarray(estimate.n_total, dtype=float) * sequential.rho_squared(settings.alpha, settings.tuning)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt((r + 1.0) / r * (np.log1p(r) - 2.0 * np.log(level)) * np.asarray(estimate.variance, dtype=float))
    half = np.where(r > 0, half, np.nan)
    return np.asarray(estimate.effect) - half, np.asarray(estimate.effect) + half


def _compare(periods: list[Period], control: ArmData, challenger: ArmData, settings: AnalysisSettings) -> list[tuple[Comparison, est.Estimate]]:
    """The four hypotheses of one challenger, each with its estimate over the timeline."""
    name, other = settings.metric, challenger.name
    sign = 1.0 if settings.spec.higher_is_better else -1.0
    primary = over_periods(periods, settings.control, other, lambda c, t: _estimate(c.metric, t.metric, settings), _empty_arm)
    latency = over_periods(periods, settings.control, other, _latency, _empty_arm)
    errors = over_periods(periods, settings.control, other, _errors, _empty_arm)
    ok = bool(np.atleast_1d(est.estimable(primary))[-1])
    # Harm is slower by the margin AND by the floor: sub-millisecond noise is never worth a rollback.
    slower = max(settings.latency_margin * _value(control.latency), settings.latency_floor_ms) if control.latency.n[-1] else settings.latency_floor_ms
    kind = _kind(control.metric, settings)
    values = (_value(control.metric, kind), _value(challenger.metric, kind))
    rates = (_rate(control.errors, control.requests), _rate(challenger.errors, challenger.requests))
    no_errors = rates[0] == 0 and rates[1] == 0  # nothing to test, and no harm
    return [
        (Comparison(other, name, PRIMARY, f"{name} better by more than {settings.min_effect:g}", *values, _last(primary), np.nan, np.nan, _p_directed(primary, sign * settings.min_effect, settings, greater=sign > 0), estimable=ok), primary),
        (Comparison(other, name, GUARDRAIL, f"{name} worse", *values, _last(primary), np.nan, np.nan, _p_directed(primary, 0.0, settings, greater=sign < 0), estimable=ok), primary),
        (Comparison(other, "latency", GUARDRAIL, f"mean latency more than {slower:.3g} ms higher ({settings.latency_margin:.0%}, at least {settings.latency_floor_ms:g} ms)", _value(control.latency), _value(challenger.latency), _last(latency), np.nan, np.nan,
                    _p_directed(latency, slower, settings, greater=True), estimable=bool(np.atleast_1d(est.estimable(latency))[-1])), latency),
        (Comparison(other, "error_rate", GUARDRAIL, f"5xx rate more than {settings.error_margin:g} higher", *rates, rates[1] - rates[0], np.nan, np.nan,
                    1.0 if no_errors else _p_directed(errors, settings.error_margin, settings, greater=True), estimable=no_errors or bool(np.atleast_1d(est.estimable(errors))[-1])), errors),
    ]  # fmt: skip


def _draw_intervals(comparison: Comparison, estimate: est.Estimate, looks: list[datetime], settings: AnalysisSettings, level: float) -> None:
    """The comparison's interval at the last look and over time, at its test's level."""
    lower, upper = _interval(estimate, settings, level)
    effect = np.atleast_1d(np.asarray(estimate.effect, dtype=float))
    lower, upper = np.atleast_1d(np.asarray(lower, dtype=float)), np.atleast_1d(np.asarray(upper, dtype=float))
    comparison.lower, comparison.upper = float(lower[-1]), float(upper[-1])
    comparison.over_time = [(t, float(e), float(lo), float(hi)) for t, e, lo, hi in zip(looks, effect, lower, upper) if np.isfinite(e) and np.isfinite(lo)]


def _power(control: ArmData, challenger: ArmData, data: ExperimentData, settings: AnalysisSettings, share: float, level: float) -> PowerCheck | None:
    value, unit_variance = est.per_unit(control.metric, _kind(control.metric, settings))
    mean, sd = float(value[-1]), float(np.sqrt(unit_variance[-1]))
    if not (np.isfinite(mean) and np.isfinite(sd) and sd > 0):
        return None
    mde = settings.min_effect or max(abs(mean) * 0.1, sd * 0.05)
    needed = float(power.fixed_sample_size(mde, sd, alpha=level, power=settings.power, share_treatment=share))
    needed_seq = float(power.sequential_sample_size(mde, sd, alpha=level, power=settings.power, share_treatment=share, tuning=settings.tuning))
    so_far = float(control.metric.n[-1] + challenger.metric.n[-1])
    elapsed = (data.last_time - data.first_time).total_seconds() if data.first_time and data.last_time else 0.0
    remaining = float(power.expected_duration_s(needed_seq if settings.method == "always-valid" else needed, so_far, elapsed))
    return PowerCheck(mde, level, needed, needed_seq, so_far, remaining)


def _decide(arms: dict[str, ArmData], challengers: list[str], comparisons: list[Comparison], srm_check: SrmCheck, settings: AnalysisSettings) -> Decision:
    min_units = int(settings.min_units)
    if srm_check.mismatch:
        shown = ", ".join(f"{n} {c} (expected {srm_check.expected_shares.get(n, 0):.0%})" for n, c in srm_check.counts.items())
        return Decision(
            "blocked",
            "",
            [
                f"sample-ratio mismatch: {shown}; chi-square p={srm_check.chi_square_p:.2g}, sequential p={srm_check.sequential_p:.2g}. The split is broken (an arm failing, a routing bug), so no comparison can be trusted: fix the deployment, then restart the experiment"
            ],
        )
    harmed = [c for c in comparisons if c.role == GUARDRAIL and c.significant]
    ceiling = settings.max_p95_latency_ms
    for name in challengers:
        arm = arms[name]
        if ceiling and arm.requests[-1] >= min_units and arm.p95_latency_ms > ceiling:
            return Decision("rollback", name, [f"{name}'s p95 latency {arm.p95_latency_ms:.1f} ms is above the ceiling of {ceiling:g} ms"])
    if harmed:
        worst = harmed[0]
        reasons = [f"{c.challenger}: {c.question} (effect {c.effect:+.4g}, adjusted p={c.adjusted_p:.2g})" for c in harmed]
        return Decision("rollback", worst.challenger, reasons)
    short = {n: int(arms[n].metric.n[-1]) for n in [settings.control, *challengers] if arms[n].metric.n[-1] < min_units}
    if short:
        return Decision("continue", "", [f"collecting data: {', '.join(f'{n} has {k}' for n, k in short.items())} of the {min_units} units per arm needed before a promotion"])
    winners = [c for c in comparisons if c.role == PRIMARY and c.significant]
    if winners:
        best = max(winners, key=lambda c: c.lower if settings.spec.higher_is_better else -c.upper)
        return Decision(
            "promote",
            best.challenger,
            [f"{best.challenger}: {best.question} (effect {best.effect:+.4g}, interval [{best.lower:.4g}, {best.upper:.4g}], adjusted p={best.adjusted_p:.2g}); no guardrail harmed"],
        )
    return Decision("continue", "", ["no challenger is shown better or harmful yet: keep collecting (the analysis stays valid at every look)"])


def _last(estimate: est.Estimate) -> float:
    return float(np.asarray(estimate.effect, dtype=float)[-1])


def _value(moments: Moments, kind: str = "mean") -> float:
    """The arm's value at the last look (NaN without units)."""
    return float(est.per_unit(moments, kind)[0][-1])


def _rate(errors: np.ndarray, requests: np.ndarray) -> float:
    return float(errors[-1] / requests[-1]) if requests[-1] else float("nan")
