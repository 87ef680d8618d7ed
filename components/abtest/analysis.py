"""The A/B analysis: SRM first, then the primary metric and the guardrails per challenger.

Every hypothesis of the experiment (per challenger: the primary metric better, the
primary metric worse, latency harm, error-rate harm) is one member of one family;
its p-values are adjusted together (Holm or Benjamini-Hochberg) and its intervals are
drawn at alpha / family size, so the report's intervals agree with its decisions.
Sequential (always-valid) p-values and confidence sequences make every look safe: the
gate may run after every canary step, or every minute, without inflating false claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from kfp_mlops.components.abtest.logs import ArmData, ExperimentData
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


@dataclass
class PowerCheck:
    mde: float  # the effect the calculation is for, in the metric's units
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


def analyze(data: ExperimentData, settings: AnalysisSettings, weights: dict[str, int]) -> AnalysisResult:
    """Test ``data`` under ``settings``; ``weights`` are the deployment's traffic percents per arm (the SRM design)."""
    arms = _arms_in_design(data, settings, weights)
    challengers = [name for name in weights if name != settings.control and weights[name] > 0]
    warnings = _warnings(data, settings)
    srm_check = _srm(data, weights)
    control = arms[settings.control]
    comparisons: list[Comparison] = []
    for name in challengers:
        comparisons += _compare(control, arms[name], data.look_times, settings)
    family = max(1, len(comparisons))
    raw = np.array([c.p_value for c in comparisons], dtype=float)
    adjusted = raw if settings.correction == "none" else (multiple.holm(raw) if settings.correction == "holm" else multiple.benjamini_hochberg(raw))
    for comparison, p in zip(comparisons, np.atleast_1d(adjusted)):
        comparison.adjusted_p = float(p)
        comparison.significant = bool(comparison.estimable and np.isfinite(p) and p < settings.alpha)
    level = settings.alpha / family
    for comparison in comparisons:
        _draw_intervals(comparison, control, arms[comparison.challenger], data.look_times, settings, level)
    power_check = _power(control, arms[challengers[0]], data, settings, weights[challengers[0]] / (weights[challengers[0]] + weights[settings.control])) if challengers else None
    decision = _decide(arms, challengers, comparisons, srm_check, settings)
    return AnalysisResult(settings, data, srm_check, comparisons, power_check, decision, family, warnings)


def _arms_in_design(data: ExperimentData, settings: AnalysisSettings, weights: dict[str, int]) -> dict[str, ArmData]:
    if settings.control not in weights:
        raise AnalysisInputError(f"the control arm {settings.control!r} is not among the deployment's arms {sorted(weights)}", fix="pass control= the champion's arm name, as deployed")
    unknown = sorted(set(data.arms) - set(weights))
    if unknown:
        raise AnalysisInputError(f"the log has arms {unknown} that the design {weights} does not", fix="pass the deployment's arms with their weights, e.g. champion=90,challenger=10")
    if not any(w > 0 for name, w in weights.items() if name != settings.control):
        raise AnalysisInputError(f"no challenger receives traffic in the design {weights}", fix="give a challenger a weight above 0")
    empty = _empty_arm(len(data.look_times))
    return {name: data.arms.get(name, ArmData(name, empty.units, empty.metric, empty.latency, empty.units, empty.units, 0.0, 0)) for name in weights}


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
    for arm in data.arms.values():
        if len(arm.versions) > 1:
            out.append(f"arm {arm.name!r} served several model versions in the window ({', '.join(arm.versions)}): the window spans a redeploy")
    return out


def _srm(data: ExperimentData, weights: dict[str, int]) -> SrmCheck:
    names = [n for n, w in weights.items() if w > 0]
    shares = np.array([weights[n] for n in names], dtype=float)
    counts_over_time = np.stack([data.arms[n].units if n in data.arms else np.zeros(len(data.look_times)) for n in names], axis=-1)
    final = counts_over_time[-1]
    _, chi_p = srm.srm_chi_square(final, shares)
    seq_p = srm.srm_sequential(counts_over_time, shares)[-1]
    stray = {n: int(data.arms[n].units[-1]) for n, w in weights.items() if w == 0 and n in data.arms and data.arms[n].units[-1] > 0}
    counts = {n: int(c) for n, c in zip(names, final)} | stray
    return SrmCheck(counts, {n: float(s / shares.sum()) for n, s in zip(names, shares)}, float(chi_p), float(seq_p), False)


def _estimate(control: Moments, treatment: Moments, settings: AnalysisSettings, *, kind: str | None = None, relative: bool = False) -> est.Estimate:
    if kind is None:
        kind = "ratio" if treatment.has_ratio else ("mean" if settings.cuped_days else settings.spec.kind)
    return est.difference(control, treatment, kind=kind, relative=relative, cuped=bool(settings.cuped_days))


def _p_one_sided(estimate: est.Estimate, threshold: float, settings: AnalysisSettings, greater: bool) -> np.ndarray:
    """p of H0 'effect <= threshold' (greater) or 'effect >= threshold', at every look.

    Always-valid: the running minimum over looks (valid at any stopping time); fixed-horizon: as is.
    """
    shifted = est.Estimate(np.asarray(estimate.effect) - threshold, estimate.variance, estimate.n_total, estimate.dof)
    sides = "greater" if greater else "less"
    if settings.method == "fixed-horizon":
        return est.fixed_interval(shifted, settings.alpha, sides=sides)[2]
    p = sequential.mixture_p_value(shifted, tuning=settings.tuning, alpha=settings.alpha, sides=sides)
    return np.fmin.accumulate(np.atleast_1d(p), axis=-1)


def _compare(control: ArmData, challenger: ArmData, looks: list[datetime], settings: AnalysisSettings) -> list[Comparison]:
    sign = 1.0 if settings.spec.higher_is_better else -1.0
    primary = _estimate(control.metric, challenger.metric, settings)
    ok = bool(np.asarray(est.estimable(primary))[-1])
    last = _last(primary)
    values = (_value(control.metric), _value(challenger.metric))
    better = _p_one_sided(primary, sign * settings.min_effect, settings, greater=sign > 0)
    worse = _p_one_sided(primary, 0.0, settings, greater=sign < 0)
    name = settings.metric
    out = [
        Comparison(challenger.name, name, PRIMARY, f"{name} better by more than {settings.min_effect:g}", *values, last, np.nan, np.nan, float(np.asarray(better)[-1]), estimable=ok),
        Comparison(challenger.name, name, GUARDRAIL, f"{name} worse", *values, last, np.nan, np.nan, float(np.asarray(worse)[-1]), estimable=ok),
    ]
    latency = est.difference(control.latency, challenger.latency, kind="mean", relative=True)
    p_latency = _p_one_sided(latency, settings.latency_margin, settings, greater=True)
    out.append(Comparison(challenger.name, "latency", GUARDRAIL, f"mean latency more than {settings.latency_margin:.0%} higher", _value(control.latency), _value(challenger.latency), _last(latency), np.nan, np.nan, float(np.asarray(p_latency)[-1]), estimable=bool(np.asarray(est.estimable(latency))[-1])))
    errors = est.difference(Moments.binary(control.errors, control.requests), Moments.binary(challenger.errors, challenger.requests), kind="proportion")
    rates = (_rate(control.errors, control.requests), _rate(challenger.errors, challenger.requests))
    if rates[0] == 0 and rates[1] == 0:
        p_errors, ok_errors = 1.0, True  # no error anywhere: nothing to test, and no harm
    else:
        p_errors, ok_errors = float(np.asarray(_p_one_sided(errors, settings.error_margin, settings, greater=True))[-1]), bool(np.asarray(est.estimable(errors))[-1]) or rates[0] == 0
    out.append(Comparison(challenger.name, "error_rate", GUARDRAIL, f"5xx rate more than {settings.error_margin:g} higher", *rates, rates[1] - rates[0], np.nan, np.nan, p_errors, estimable=ok_errors))
    return out


def _draw_intervals(comparison: Comparison, control: ArmData, challenger: ArmData, looks: list[datetime], settings: AnalysisSettings, level: float) -> None:
    """The comparison's interval at the last look and over time, at the family-adjusted level."""
    if comparison.metric == "latency":
        estimate = est.difference(control.latency, challenger.latency, kind="mean", relative=True)
    elif comparison.metric == "error_rate":
        estimate = est.difference(Moments.binary(control.errors, control.requests), Moments.binary(challenger.errors, challenger.requests), kind="proportion")
    else:
        estimate = _estimate(control.metric, challenger.metric, settings)
    if settings.method == "fixed-horizon":
        lower, upper, _ = est.fixed_interval(estimate, level)
    else:
        lower, upper = sequential.mixture_interval(estimate, level, tuning=settings.tuning)
    effect = np.asarray(estimate.effect, dtype=float)
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    comparison.lower, comparison.upper = float(lower[-1]), float(upper[-1])
    comparison.over_time = [(t, float(e), float(lo), float(hi)) for t, e, lo, hi in zip(looks, effect, lower, upper) if np.isfinite(e) and np.isfinite(lo)]


def _power(control: ArmData, challenger: ArmData, data: ExperimentData, settings: AnalysisSettings, share: float) -> PowerCheck | None:
    mean, sd = _per_unit_mean_sd(control.metric)
    if not (np.isfinite(mean) and np.isfinite(sd) and sd > 0):
        return None
    mde = settings.min_effect or max(abs(mean) * 0.1, sd * 0.05)
    needed = float(power.fixed_sample_size(mde, sd, alpha=settings.alpha, power=settings.power, share_treatment=share))
    needed_seq = float(power.sequential_sample_size(mde, sd, alpha=settings.alpha, power=settings.power, share_treatment=share, tuning=settings.tuning))
    so_far = float(control.metric.n[-1] + challenger.metric.n[-1])
    elapsed = (data.last_time - data.first_time).total_seconds() if data.first_time and data.last_time else 0.0
    remaining = float(power.expected_duration_s(needed_seq if settings.method == "always-valid" else needed, so_far, elapsed))
    return PowerCheck(mde, needed, needed_seq, so_far, remaining)


def _per_unit_mean_sd(m: Moments) -> tuple[float, float]:
    """The metric's value and per-unit sd at the last look; for a ratio, of its linearization (delta method)."""
    n = float(np.asarray(m.n)[-1])
    if n < 2:
        return float("nan"), float("nan")
    if not m.has_ratio:
        return float(np.asarray(m.mean)[-1]), float(np.sqrt(np.asarray(m.variance)[-1]))
    total, den = float(np.asarray(m.sum)[-1]), float(np.asarray(m.den_sum)[-1])
    if den <= 0:
        return float("nan"), float("nan")
    ratio, mean_den = total / den, den / n
    var_num = (float(np.asarray(m.sum_sq)[-1]) - total * total / n) / (n - 1)
    var_den = (float(np.asarray(m.den_sum_sq)[-1]) - den * den / n) / (n - 1)
    cov = (float(np.asarray(m.num_den_sum)[-1]) - total * den / n) / (n - 1)
    variance = (var_num - 2 * ratio * cov + ratio * ratio * var_den) / (mean_den * mean_den)
    return ratio, float(np.sqrt(max(variance, 0.0)))


def _decide(arms: dict[str, ArmData], challengers: list[str], comparisons: list[Comparison], srm_check: SrmCheck, settings: AnalysisSettings) -> Decision:
    min_units = max(int(settings.min_units), sequential.MIN_UNITS_PER_ARM)
    srm_check.mismatch = srm_check.chi_square_p < settings.srm_alpha or srm_check.sequential_p < settings.srm_alpha
    if srm_check.mismatch:
        shown = ", ".join(f"{n} {c} (expected {srm_check.expected_shares.get(n, 0):.0%})" for n, c in srm_check.counts.items())
        return Decision("blocked", "", [f"sample-ratio mismatch: {shown}; chi-square p={srm_check.chi_square_p:.2g}, sequential p={srm_check.sequential_p:.2g}. The split is broken (an arm failing, a routing bug), so no comparison can be trusted: fix the deployment, then restart the experiment"])
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
        return Decision("continue", "", [f"collecting data: {', '.join(f'{n} has {k}' for n, k in short.items())} of the {min_units} units per arm needed before any decision"])
    winners = [c for c in comparisons if c.role == PRIMARY and c.significant]
    if winners:
        best = max(winners, key=lambda c: (c.lower if settings.spec.higher_is_better else -c.upper))
        return Decision("promote", best.challenger, [f"{best.challenger}: {best.question} (effect {best.effect:+.4g}, interval [{best.lower:.4g}, {best.upper:.4g}], adjusted p={best.adjusted_p:.2g}); no guardrail harmed"])
    return Decision("continue", "", ["no challenger is shown better or harmful yet: keep collecting (the analysis stays valid at every look)"])


def _last(estimate: est.Estimate) -> float:
    return float(np.asarray(estimate.effect, dtype=float)[-1])


def _value(moments: Moments) -> float:
    n = float(np.asarray(moments.n)[-1])
    if n <= 0:
        return float("nan")
    if moments.has_ratio:
        den = float(np.asarray(moments.den_sum)[-1])
        return float(np.asarray(moments.sum)[-1]) / den if den else float("nan")
    return float(np.asarray(moments.mean)[-1])


def _rate(errors: np.ndarray, requests: np.ndarray) -> float:
    return float(errors[-1] / requests[-1]) if requests[-1] else float("nan")
