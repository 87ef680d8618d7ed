"""Experiments whose traffic weights change (canary steps): one period per set of weights.

Pooling requests across periods with different weights biases the comparison whenever
the metric drifts over time (the challenger's share grows late, when the base rate may
differ: Simpson's paradox). So each period is compared on its own and the per-period
effects are combined by inverse-variance weights (a stratified, fixed-effect combination:
a 10% canary step, whose estimate is noisy, counts for less than a 50% one); its variance
is 1 / the sum of the precisions. The timeline runs through the
periods in order: at a look inside period k, periods before k contribute their final
estimate and period k its estimate so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kfp_mlops.components.abtest.logs import ArmData, ExperimentData
from kfp_mlops.components.abtest.stats.estimate import Estimate, estimable
from kfp_mlops.components.abtest.stats.moments import Moments


@dataclass
class Period:
    """One stretch of the experiment at fixed weights."""

    data: ExperimentData
    weights: dict[str, int]


def stratified(parts: list[Estimate]) -> Estimate:
    """The combined estimate at every look of every period (the periods' looks concatenated)."""
    effects, variances, totals = [], [], []
    done: list[tuple[float, float, float]] = []  # (effect, variance, units) of completed periods
    for part in parts:
        e, v, n = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (part.effect, part.variance, part.n_total))
        ok = np.atleast_1d(estimable(part))
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(ok, 1.0 / v, 0.0)
            total_precision = precision + sum(1.0 / d[1] for d in done)
            effect = (np.where(ok, e, 0.0) * precision + sum(d[0] / d[1] for d in done)) / total_precision
            variance = 1.0 / total_precision
        effects.append(np.where(total_precision > 0, effect, np.nan))
        variances.append(np.where(total_precision > 0, variance, np.nan))
        totals.append(np.where(ok, n, 0.0) + sum(d[2] for d in done))
        if ok[-1]:
            done.append((float(e[-1]), float(v[-1]), float(n[-1])))
    return Estimate(np.concatenate(effects), np.concatenate(variances), np.concatenate(totals), np.full(sum(len(x) for x in effects), np.inf))


def over_periods(periods: list[Period], control: str, challenger: str, estimate: Callable[[ArmData, ArmData], Estimate], empty: Callable[[int], ArmData]) -> Estimate:
    """``estimate`` of challenger against control in each period, stratified over the periods."""
    parts = []
    for period in periods:
        looks = len(period.data.look_times)
        arms = period.data.arms
        parts.append(estimate(arms.get(control) or empty(looks), arms.get(challenger) or empty(looks)))
    return stratified(parts)


def merged(periods: list[Period], empty: Callable[[int], ArmData]) -> ExperimentData:
    """The whole experiment as one timeline (each period's cumulative sums continue the previous ones), for display."""
    if len(periods) == 1:
        return periods[0].data
    names = sorted({name for p in periods for name in p.data.arms})
    arms = {}
    for name in names:
        parts = [p.data.arms.get(name) or empty(len(p.data.look_times)) for p in periods]
        arms[name] = ArmData(
            name=name,
            units=_chain([a.units for a in parts]),
            metric=_chain_moments([a.metric for a in parts]),
            latency=_chain_moments([a.latency for a in parts]),
            requests=_chain([a.requests for a in parts]),
            errors=_chain([a.errors for a in parts]),
            p95_latency_ms=max((a.p95_latency_ms for a in parts), default=0.0),
            awaiting_outcome=sum(a.awaiting_outcome for a in parts),
            versions=sorted({v for a in parts for v in a.versions}),
        )
    datas = [p.data for p in periods]
    firsts = [d.first_time for d in datas if d.first_time]
    lasts = [d.last_time for d in datas if d.last_time]
    return ExperimentData(
        arms=arms,
        look_times=[t for d in datas for t in d.look_times],
        first_time=min(firsts) if firsts else None,
        last_time=max(lasts) if lasts else None,
        predictions=sum(d.predictions for d in datas),
        outcomes=sum(d.outcomes for d in datas),
        bad_outcomes=sum(d.bad_outcomes for d in datas),
        users_in_several_arms=sum(d.users_in_several_arms for d in datas),
        requests_without_key=sum(d.requests_without_key for d in datas),
    )


def expected_shares(periods: list[Period]) -> dict[str, float]:
    """Each arm's expected share of all units: the periods' weights, weighted by their units."""
    units = [sum(float(a.units[-1]) for a in p.data.arms.values()) for p in periods]
    total = sum(units) or float(len(periods))
    shares: dict[str, float] = {}
    for p, u in zip(periods, units):
        for name, w in p.weights.items():
            shares[name] = shares.get(name, 0.0) + (u or 1.0) / total * w / 100.0
    return shares


def _chain(series: list[np.ndarray]) -> np.ndarray:
    out, offset = [], 0.0
    for s in series:
        s = np.asarray(s, dtype=float)
        out.append(s + offset)
        offset += float(s[-1]) if len(s) else 0.0
    return np.concatenate(out)


def _chain_moments(parts: list[Moments]) -> Moments:
    fields = ("n", "sum", "sum_sq", "den_sum", "den_sum_sq", "num_den_sum", "x_sum", "x_sum_sq", "xy_sum")
    present = [f for f in fields if all(getattr(m, f) is not None for m in parts)]
    return Moments(**{f: _chain([np.asarray(getattr(m, f), dtype=float) for m in parts]) for f in present})
