"""A/B statistics by simulation: error rates under repeated looks, coverage, CUPED, power.

Seeded runs of per-look sufficient statistics (see kfp_mlops.components.abtest.stats.simulation).
A rate that must stay at or below alpha may exceed it by 2.58 Monte-Carlo standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from kfp_mlops.components.abtest.stats import simulation as sim
from kfp_mlops.components.abtest.stats.estimate import difference
from kfp_mlops.components.abtest.stats.group_sequential import (
    obrien_fleming_bounds,
    obrien_fleming_spending,
)
from kfp_mlops.components.abtest.stats.power import (
    fixed_sample_size,
    proportion_sd,
    sequential_sample_size,
)
from kfp_mlops.components.abtest.stats.sequential import (
    MIN_UNITS_PER_ARM,
    mixture_interval,
)
from kfp_mlops.components.abtest.stats.srm import srm_chi_square, srm_sequential

ALPHA = 0.05
SIMS = 4000
# Canary-sized looks: 10 looks of 1,000 units per arm, or 100 looks of 200 units per arm.
SCHEDULES = {10: 1000, 100: 200}


def allowed(rate: float = ALPHA, sims: int = SIMS) -> float:
    return rate + 2.58 * np.sqrt(rate * (1 - rate) / sims)


def _arms(outcome: str, looks: int, seed: int, lift: float = 0.0, sims: int = SIMS):
    """Control and treatment paths and the metric kind; the treatment's mean is (1 + lift) x control's."""
    rng = np.random.default_rng(seed)
    units = np.full(looks, SCHEDULES[looks])
    if outcome == "normal":
        return sim.normal_looks(rng, sims, units, 10.0, 3.0), sim.normal_looks(rng, sims, units, 10.0 * (1 + lift), 3.0), "mean"
    return sim.bernoulli_looks(rng, sims, units, 0.05), sim.bernoulli_looks(rng, sims, units, 0.05 * (1 + lift)), "proportion"


@pytest.mark.parametrize("looks", [10, 100])
@pytest.mark.parametrize("outcome", ["normal", "bernoulli"])
def test_aa_type_one_error_stays_at_alpha_under_continuous_looks(outcome: str, looks: int):
    control, treatment, kind = _arms(outcome, looks, seed=looks + len(outcome))
    for mode in ("mixture", "mixture_less", "mixture_greater", "group_sequential"):
        rejected = sim.rejections(control, treatment, mode=mode, kind=kind, relative=True, min_units_per_arm=MIN_UNITS_PER_ARM)
        assert rejected.any(-1).mean() <= allowed(), (mode, rejected.any(-1).mean())


@pytest.mark.parametrize("looks", [10, 100])
@pytest.mark.parametrize("outcome", ["normal", "bernoulli"])
def test_confidence_sequence_covers_a_true_lift_at_every_look(outcome: str, looks: int):
    lift = 0.1
    control, treatment, kind = _arms(outcome, looks, seed=7 * looks + len(outcome), lift=lift)
    est = difference(control, treatment, kind=kind, relative=True)
    lower, upper = mixture_interval(est, ALPHA)
    gated = (control.n >= MIN_UNITS_PER_ARM) & np.isfinite(lower)
    missed = gated & ((lower > lift) | (upper < lift))
    assert 1 - missed.any(-1).mean() >= 1 - allowed()


def test_peeking_at_a_fixed_horizon_test_inflates_the_error():
    control, treatment, kind = _arms("normal", 10, seed=3)
    naive = sim.rejections(control, treatment, mode="naive", kind=kind).any(-1).mean()
    single_look = sim.rejections(control, treatment, mode="naive", kind=kind)[:, -1].mean()
    assert naive > 0.12  # about 0.19 for 10 looks: the harness sees peeking
    assert single_look <= allowed()


def test_the_minimum_sample_gate_is_what_keeps_rare_outcomes_nominal():
    rng = np.random.default_rng(21)
    units = np.full(100, 100)  # looks from the first 100 units per arm on
    control, treatment = sim.bernoulli_looks(rng, SIMS, units, 0.05), sim.bernoulli_looks(rng, SIMS, units, 0.05)

    def error(gate: float, relative: bool) -> float:
        rejected = sim.rejections(control, treatment, mode="mixture_less", kind="proportion", relative=relative, min_units_per_arm=gate)
        return rejected.any(-1).mean()

    assert error(0, relative=True) > allowed()  # the lift's delta method at a handful of events
    assert error(MIN_UNITS_PER_ARM, relative=True) <= allowed()
    assert error(0, relative=False) <= allowed()  # the absolute difference needs no gate


@pytest.mark.parametrize("looks", [10, 100])
def test_sequential_srm_stays_at_alpha_where_a_rechecked_chi_square_does_not(looks: int):
    counts = sim.assignment_counts(np.random.default_rng(looks), SIMS, np.full(looks, 20_000 // looks), [0.5, 0.5])
    sequential = (srm_sequential(counts, [1, 1])[:, -1] <= ALPHA).mean()
    rechecked = (srm_chi_square(counts, [1, 1])[1] <= ALPHA).any(-1).mean()
    assert sequential <= allowed()
    if looks == 100:
        assert rechecked > 3 * ALPHA


def test_group_sequential_bounds_spend_alpha_as_planned_at_uneven_looks():
    fractions = np.array([0.1, 0.25, 0.3, 0.6, 0.85, 1.0])
    bounds = obrien_fleming_bounds(fractions, ALPHA)
    rng = np.random.default_rng(8)
    sims = 200_000
    path = np.cumsum(rng.normal(0, np.sqrt(np.diff(np.r_[0, fractions])), (sims, fractions.size)), 1)
    crossed = np.maximum.accumulate(np.abs(path / np.sqrt(fractions)) >= bounds, axis=1).mean(0)
    planned = obrien_fleming_spending(fractions, ALPHA)
    tolerance = 2.58 * np.sqrt(planned * (1 - planned) / sims) + 1e-4
    assert np.all(np.abs(crossed - planned) <= tolerance), (crossed, planned)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_cuped_cuts_the_variance_by_rho_squared_without_bias(rho: float):
    sims, n, effect = 10_000, 500, 0.3
    rng = np.random.default_rng(int(rho * 10))
    control = sim.covariate_moments(rng, sims, n, 10.0, 2.0, rho, covariate_mean=5.0)
    treatment = sim.covariate_moments(rng, sims, n, 10.0 + effect, 2.0, rho, covariate_mean=5.0)
    for relative, truth in ((False, effect), (True, effect / 10.0)):
        plain = difference(control, treatment, kind="mean", relative=relative)
        adjusted = difference(control, treatment, kind="mean", relative=relative, cuped=True)
        ratio = adjusted.effect.var() / plain.effect.var()
        assert ratio == pytest.approx(1 - rho**2, rel=0.05), (relative, ratio)
        standard_error = adjusted.effect.std() / np.sqrt(sims)
        assert abs(adjusted.effect.mean() - truth) <= 3 * standard_error
        # The reported variance is the one the runs show.
        assert adjusted.variance.mean() == pytest.approx(adjusted.effect.var(), rel=0.05)


def _power_and_stopping(effect: float, sims: int = SIMS) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(int(effect * 1e4))
    units = np.full(10, 1000)
    control, treatment = sim.normal_looks(rng, sims, units, 0.0, 1.0), sim.normal_looks(rng, sims, units, effect, 1.0)
    total = 2 * np.cumsum(units)
    out = {}
    for mode in ("mixture", "group_sequential"):
        rejected = sim.rejections(control, treatment, mode=mode, kind="mean", tuning=float(total[-1]))
        out[mode] = (rejected.any(-1).mean(), sim.stopping_units(rejected, total).mean())
    fixed = sim.rejections(control, treatment, mode="naive", kind="mean")[:, -1]
    out["fixed"] = (fixed.mean(), float(total[-1]))
    return out


def test_power_ordering_and_earlier_stops_when_the_effect_is_large():
    design_effect = 2.8016 * np.sqrt(2 / 10_000)  # 80% power for one look at 10,000 units per arm
    at_design = _power_and_stopping(design_effect)
    assert at_design["fixed"][0] == pytest.approx(0.8, abs=0.025)
    assert at_design["fixed"][0] >= at_design["group_sequential"][0] - 0.01 >= at_design["mixture"][0] - 0.01
    assert at_design["group_sequential"][0] > at_design["mixture"][0]
    large = _power_and_stopping(2 * design_effect)
    for mode in ("group_sequential", "mixture"):
        assert large[mode][0] > 0.95 and large[mode][1] < 0.75 * large["fixed"][1], (mode, large[mode])


def test_sample_size_functions_deliver_their_power():
    rng = np.random.default_rng(12)
    effect, sds = 0.01, (proportion_sd(0.05), proportion_sd(0.06))
    for size_of, mode in ((fixed_sample_size, "naive"), (sequential_sample_size, "mixture")):
        n_total = size_of(effect, *sds, tuning=20_000) if mode == "mixture" else size_of(effect, *sds)
        per_arm = np.array([int(n_total // 2)])
        control, treatment = sim.bernoulli_looks(rng, SIMS, per_arm, 0.05), sim.bernoulli_looks(rng, SIMS, per_arm, 0.05 + effect)
        power = sim.rejections(control, treatment, mode=mode, kind="proportion", tuning=20_000).mean()
        assert power == pytest.approx(0.8, abs=0.025), (mode, n_total, power)
