"""Always-valid inference: the normal-mixture confidence sequence, looked at as often as wanted.

Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic
confidence sequences", eq. 14, in the asymptotic form of Waudby-Smith et al. that GrowthBook's
gbstats and Eppo use. With N = n_total units, s2 = variance_of_effect * N and r = N rho^2,
the half-width is

    sqrt( 2 (r + 1) / r * ln( sqrt(r + 1) / alpha ) * variance_of_effect )

which is the textbook sqrt( 2 (N s2 rho'^2 + 1) / (N^2 rho'^2) ln( sqrt(N s2 rho'^2 + 1) / alpha ) )
with the mixture's rho'^2 = rho^2 / s2 set on the standardized scale. That is what makes the
tuning N* a number of units, independent of the metric's scale, and it is the form whose
numbers match gbstats' published tests (the unstandardized form with the same rho does not).
rho is chosen so the sequence is (approximately) tightest at N = N*, as Howard et al.
derive: rho^2 = (-2 ln alpha + ln(-2 ln alpha + 1)) / N*.

A one-sided sequence at level alpha is the two-sided one at 2 alpha (one side of it).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from kfp_mlops.components.abtest.stats.estimate import Estimate, check_sides
from kfp_mlops.components.abtest.stats.moments import Values, as_result

DEFAULT_TUNING = 5000.0

# Smallest number of units in EACH arm before a sequential decision is taken (earlier looks
# are shown as "not enough data"). Measured for the case that needs it most, a 0/1 outcome at a
# 5% rate with the relative lift (A/A, 40,000 runs, alpha 0.05, 100 looks of 100 units per arm
# from the first units on; table 3 of benchmarks/bench_ab_simulation.py):
#
#   decide from (units per arm)      0      500    1000   1500   2000   3000
#   two-sided mixture              0.063  0.044  0.034  0.028  0.024  0.018
#   one-sided mixture (guardrail)  0.086  0.066  0.052  0.043  0.037  0.029
#
# The cause is the lift's delta-method variance, v_t / c^2 + t^2 v_c / c^4: when the
# treatment's count is low by chance its variance estimate p(1 - p) / n shrinks with it, so
# "treatment worse" is flagged too easily (the other side is correspondingly conservative)
# until each arm has ~100 events. On the absolute difference every mode is nominal from the
# first look (at most 0.024 here: the sequence is so wide at small N that it protects itself),
# and at a 20% rate the lift needs no gate either (40 events per arm sufficed). 2000 units are
# 100 expected events at 5%; for rarer outcomes 100 / rate units per arm is the safe side.
MIN_UNITS_PER_ARM = 2000


def rho_squared(alpha: ArrayLike, tuning: ArrayLike = DEFAULT_TUNING) -> np.ndarray:
    """The mixing variance (standardized scale) that makes the sequence tightest at N = tuning."""
    log_term = -2.0 * np.log(np.asarray(alpha, dtype=float))
    return (log_term + np.log(log_term + 1.0)) / np.asarray(tuning, dtype=float)


def mixture_half_width(variance: ArrayLike, n_total: ArrayLike, alpha: ArrayLike, tuning: ArrayLike = DEFAULT_TUNING) -> Values:
    """Two-sided half-width of the normal-mixture confidence sequence at level alpha.

    Args:
        variance: Sampling variance of the effect estimate at this look.
        n_total: Units in both arms at this look.
        alpha: Two-sided level of the sequence.
        tuning: N*, the number of units where the sequence is tightest.

    Returns:
        The half-width (NaN where the variance is NaN or no units).
    """
    r = np.asarray(n_total, dtype=float) * rho_squared(alpha, tuning)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = 2.0 * (r + 1.0) / r * np.log(np.sqrt(r + 1.0) / np.asarray(alpha, dtype=float))
        return as_result(np.where(r > 0, np.sqrt(spread * np.asarray(variance, dtype=float)), np.nan))


def _design_alpha(alpha: float, sides: str) -> float:
    return alpha if check_sides(sides) == "two" else 2.0 * alpha


def mixture_interval(est: Estimate, alpha: float, tuning: float = DEFAULT_TUNING, sides: str = "two") -> tuple[Values, Values]:
    """The always-valid confidence interval at this look.

    The probability that any look's interval misses the true effect is at most alpha, however
    many looks are taken and whenever the analysis stops.

    Args:
        est: The effect estimate at this look (absolute or relative).
        alpha: Level of the sequence.
        tuning: N*, the total units where the sequence is tightest.
        sides: "two"; "greater" gives [lower, inf) and "less" gives (-inf, upper], each the
            matching side of the two-sided sequence at 2 alpha.

    Returns:
        (lower, upper); NaN where the estimate is not estimable.
    """
    half = mixture_half_width(est.variance, est.n_total, _design_alpha(alpha, sides), tuning)
    nan_or = np.where(np.isnan(est.effect), np.nan, 1.0)
    if sides == "greater":
        return as_result(est.effect - half), as_result(np.inf * nan_or)
    if sides == "less":
        return as_result(-np.inf * nan_or), as_result(est.effect + half)
    return as_result(est.effect - half), as_result(est.effect + half)


def mixture_p_value(est: Estimate, tuning: float = DEFAULT_TUNING, *, alpha: float = 0.05, sides: str = "two") -> Values:
    """The always-valid p-value at this look: the smallest level at which the sequence excludes 0.

    The mixture's rho is fixed by the design level ``alpha`` and ``tuning`` (as gbstats does);
    with rho fixed the sequences for all levels are nested and the p-value is exactly
    1 / (mixture likelihood ratio), in closed form:

        p = min(1, sqrt(r + 1) * exp(-z^2 r / (2 (r + 1)))),  r = N rho^2, z = effect / se.

    So ``p <= alpha`` exactly when ``mixture_interval(est, alpha, tuning, sides)`` excludes 0.
    It is valid at every look by itself (Ville's inequality); its running minimum over looks
    (``np.minimum.accumulate`` along the look axis) is valid too and never goes back up.

    Args:
        est: The effect estimate at this look.
        tuning: N*, the total units where the sequence is tightest.
        alpha: The design level that fixes rho (keep it equal to the decision's level).
        sides: "two", "greater" or "less"; a one-sided p-value is half the two-sided one at
            design level 2 alpha when the effect points that way, else 1.

    Returns:
        p-values in [0, 1]; NaN where the estimate is not estimable.
    """
    design = _design_alpha(alpha, sides)
    r = np.asarray(est.n_total, dtype=float) * rho_squared(design, tuning)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_squared = np.asarray(est.effect, dtype=float) ** 2 / np.asarray(est.variance, dtype=float)
        log_p = 0.5 * np.log1p(r) - z_squared * r / (2.0 * (r + 1.0))
    p = np.exp(np.minimum(log_p, 0.0))
    if sides == "greater":
        p = np.where(est.effect > 0, p / 2.0, 1.0)
    elif sides == "less":
        p = np.where(est.effect < 0, p / 2.0, 1.0)
    return as_result(np.where(np.isnan(est.effect) | np.isnan(log_p), np.nan, np.clip(p, 0.0, 1.0)))
