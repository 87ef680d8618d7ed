"""How many units an experiment needs, and how long that takes at the current traffic.

Effects here are absolute differences in the metric's units (for a lift, pass
lift * baseline mean); standard deviations are per unit (``proportion_sd`` for 0/1 metrics).
Sizes are total units over both arms, rounded up.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from kfp_mlops.components.abtest.stats.estimate import check_sides
from kfp_mlops.components.abtest.stats.moments import Values, as_result
from kfp_mlops.components.abtest.stats.sequential import (
    DEFAULT_TUNING,
    mixture_half_width,
)

BISECTION_STEPS = 80  # halves a factor-of-2^40 bracket in log N down to ~1e-12 relative


def proportion_sd(p: ArrayLike) -> Values:
    """Per-unit standard deviation of a 0/1 metric with rate p."""
    p = np.asarray(p, dtype=float)
    return as_result(np.sqrt(p * (1.0 - p)))


def _variance_factor(sd_control: ArrayLike, sd_treatment: ArrayLike | None, share_treatment: ArrayLike) -> np.ndarray:
    """N * Var(difference of arm means) for a total of N units split by share_treatment."""
    sd_c = np.asarray(sd_control, dtype=float)
    sd_t = sd_c if sd_treatment is None else np.asarray(sd_treatment, dtype=float)
    share = np.asarray(share_treatment, dtype=float)
    if np.any((share <= 0) | (share >= 1)):
        raise ValueError("share_treatment must lie strictly between 0 and 1")
    return sd_c**2 / (1.0 - share) + sd_t**2 / share


def _directed(effect: ArrayLike, sides: str) -> np.ndarray:
    """The effect in the direction the test looks for (two-sided: its size)."""
    e = np.asarray(effect, dtype=float)
    return np.abs(e) if sides == "two" else (e if sides == "greater" else -e)


def fixed_sample_size(
    effect: ArrayLike,
    sd_control: ArrayLike,
    sd_treatment: ArrayLike | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    share_treatment: ArrayLike = 0.5,
    sides: str = "two",
) -> Values:
    """Total units for a single fixed-horizon z test to reach ``power`` at ``effect``.

    N = (z_{1-alpha/2} + z_power)^2 (sd_c^2 / (1 - s) + sd_t^2 / s) / effect^2 (alpha for one side).

    Args:
        effect: True absolute difference to detect.
        sd_control: Per-unit sd in control.
        sd_treatment: Per-unit sd in treatment (default: as control).
        alpha: Significance level.
        power: Wanted probability of detecting ``effect``.
        share_treatment: Treatment's share of units.
        sides: "two", "greater" or "less".

    Returns:
        Total units (both arms), inf for a zero effect or one pointing against a one-sided test.
    """
    check_sides(sides)
    tail = alpha / 2.0 if sides == "two" else alpha
    z = special.ndtri(1.0 - tail) + special.ndtri(power)
    size = _directed(effect, sides)
    with np.errstate(divide="ignore"):
        n = np.where(size > 0, z**2 * _variance_factor(sd_control, sd_treatment, share_treatment) / size**2, np.inf)
    return as_result(np.ceil(n))


def sequential_power(
    n_total: ArrayLike,
    effect: ArrayLike,
    sd_control: ArrayLike,
    sd_treatment: ArrayLike | None = None,
    alpha: float = 0.05,
    share_treatment: ArrayLike = 0.5,
    sides: str = "two",
    tuning: float = DEFAULT_TUNING,
) -> Values:
    """Probability that one look at ``n_total`` units finds the mixture sequence excluding 0.

    Normal approximation: effect_hat ~ N(effect, factor / N); the sequence excludes 0 when
    |effect_hat| > half-width (one-sided: in the tested direction, half-width at 2 alpha).
    """
    check_sides(sides)
    n = np.asarray(n_total, dtype=float)
    variance = _variance_factor(sd_control, sd_treatment, share_treatment) / n
    se = np.sqrt(variance)
    half = mixture_half_width(variance, n, alpha if sides == "two" else 2.0 * alpha, tuning)
    size = _directed(effect, sides)
    power = special.ndtr((size - half) / se)
    if sides == "two":
        power = power + special.ndtr((-size - half) / se)
    return as_result(power)


def sequential_sample_size(
    effect: ArrayLike,
    sd_control: ArrayLike,
    sd_treatment: ArrayLike | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    share_treatment: ArrayLike = 0.5,
    sides: str = "two",
    tuning: float = DEFAULT_TUNING,
) -> Values:
    """Smallest total N at which a single look of the mixture sequence has ``power`` at ``effect``.

    Found by bisection in log N (the power rises with N over the relevant range). Arguments as
    ``fixed_sample_size`` plus ``tuning`` (the sequence's N*; set it near the expected size).

    Returns:
        Total units (both arms), inf where the effect is zero or against a one-sided test.
    """
    check_sides(sides)
    shape = np.broadcast_shapes(np.shape(effect), np.shape(sd_control), np.shape(sd_treatment), np.shape(share_treatment))
    fixed = np.broadcast_to(fixed_sample_size(effect, sd_control, sd_treatment, alpha, power, share_treatment, sides), shape)
    finite = np.isfinite(fixed)
    # The sequence is always wider than the fixed interval at the same N, so the fixed size is
    # a lower bound; its doubling until the power is reached is the upper end of the bracket.
    low = np.where(finite, np.maximum(fixed, 2.0), 2.0)
    high = low.copy()

    def enough(n: np.ndarray) -> np.ndarray:
        return sequential_power(n, effect, sd_control, sd_treatment, alpha, share_treatment, sides, tuning) >= power

    for _ in range(40):
        short = finite & ~enough(high)
        if not short.any():
            break
        high = np.where(short, high * 2.0, high)
    for _ in range(BISECTION_STEPS):
        middle = np.sqrt(low * high)
        ok = enough(middle)
        high, low = np.where(ok, middle, high), np.where(ok, low, middle)
    return as_result(np.where(finite, np.ceil(high), np.inf))


def expected_duration_s(units_needed: ArrayLike, units_so_far: ArrayLike, elapsed_s: ArrayLike) -> Values:
    """Seconds still needed to reach ``units_needed`` at the traffic seen so far.

    Args:
        units_needed: Total units the analysis needs.
        units_so_far: Units observed in ``elapsed_s`` seconds.
        elapsed_s: Seconds the experiment has run.

    Returns:
        Seconds; 0 when already reached, inf when no traffic has been seen.
    """
    needed = np.asarray(units_needed, dtype=float)
    seen = np.asarray(units_so_far, dtype=float)
    elapsed = np.asarray(elapsed_s, dtype=float)
    remaining = np.maximum(needed - seen, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(elapsed > 0, seen / elapsed, 0.0)
        seconds = np.where(rate > 0, remaining / rate, np.inf)
    return as_result(np.where(remaining == 0, 0.0, np.where(np.isnan(needed), np.nan, seconds)))
