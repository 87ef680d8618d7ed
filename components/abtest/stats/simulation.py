"""Simulated experiments from sufficient statistics, to check the procedures' error rates.

Every look adds a batch of units per arm; instead of drawing each unit, the batch's sums are
drawn from their exact distributions (normal sums with a chi-square spread, binomial
counts, a Wishart scatter matrix for a metric with a covariate), so 10,000 runs of 100 looks
take well under a second. Results are cumulative Moments of shape (sims, looks).

``rejections`` applies one decision procedure at every look, the way a monitoring loop would;
``first_look`` and ``stopping_units`` turn that into "stopped when, with how many units".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from kfp_mlops.components.abtest.stats.estimate import (
    difference,
    estimable,
    fixed_interval,
)
from kfp_mlops.components.abtest.stats.group_sequential import obrien_fleming_bounds
from kfp_mlops.components.abtest.stats.moments import Moments
from kfp_mlops.components.abtest.stats.sequential import (
    DEFAULT_TUNING,
    mixture_interval,
)

MODES = ("mixture", "mixture_less", "mixture_greater", "group_sequential", "naive")


def _increments(units_per_look: ArrayLike) -> np.ndarray:
    units = np.asarray(units_per_look, dtype=np.int64)
    if units.ndim != 1 or np.any(units < 1):
        raise ValueError("units_per_look must be a 1-D array of positive unit counts")
    return units


def normal_looks(rng: np.random.Generator, sims: int, units_per_look: ArrayLike, mean: float, sd: float) -> Moments:
    """Cumulative Moments of a normal metric, shape (sims, looks).

    Per look of m units the sum is N(m mean, m sd^2) and, independently, the sum of squared
    deviations from the batch mean is sd^2 chi^2_{m-1} (exact for normal units).
    """
    m = _increments(units_per_look).astype(float)
    shape = (sims, m.size)
    sums = rng.normal(m * mean, np.sqrt(m) * sd, size=shape)
    spread = sd**2 * rng.chisquare(np.maximum(m - 1.0, 1e-9), size=shape) * (m > 1)
    return Moments(n=np.broadcast_to(np.cumsum(m), shape), sum=np.cumsum(sums, 1), sum_sq=np.cumsum(spread + sums**2 / m, 1))


def bernoulli_looks(rng: np.random.Generator, sims: int, units_per_look: ArrayLike, rate: float) -> Moments:
    """Cumulative Moments of a 0/1 metric with the given rate, shape (sims, looks)."""
    m = _increments(units_per_look)
    successes = np.cumsum(rng.binomial(m, rate, size=(sims, m.size)), 1)
    return Moments.binary(successes, np.broadcast_to(np.cumsum(m), successes.shape))


def assignment_counts(rng: np.random.Generator, sims: int, units_per_look: ArrayLike, shares: ArrayLike) -> np.ndarray:
    """Cumulative units per arm when each unit lands in arm i with probability shares[i]: (sims, looks, k)."""
    m = _increments(units_per_look)
    p = np.asarray(shares, dtype=float) / np.sum(shares)
    draws = rng.multinomial(np.broadcast_to(m, (sims, m.size)), p)
    return np.cumsum(draws, axis=1)


def covariate_moments(rng: np.random.Generator, sims: int, n: int, mean: float, sd: float, rho: float, covariate_mean: float = 0.0, covariate_sd: float = 1.0) -> Moments:
    """One look's Moments of n units whose metric has correlation rho with a pre-period covariate.

    The unit pairs (y, x) are bivariate normal; their means are drawn from N(mu, Sigma / n) and
    their scatter matrix from Wishart(n - 1, Sigma), independently (exact for normal units).
    """
    cov = np.array([[sd**2, rho * sd * covariate_sd], [rho * sd * covariate_sd, covariate_sd**2]])
    means = rng.multivariate_normal([mean, covariate_mean], cov / n, size=sims)
    scatter = stats.wishart(df=n - 1, scale=cov).rvs(size=sims, random_state=rng).reshape(sims, 2, 2)
    y_bar, x_bar = means[:, 0], means[:, 1]
    return Moments(
        n=np.full(sims, float(n)),
        sum=n * y_bar,
        sum_sq=scatter[:, 0, 0] + n * y_bar**2,
        x_sum=n * x_bar,
        x_sum_sq=scatter[:, 1, 1] + n * x_bar**2,
        xy_sum=scatter[:, 0, 1] + n * x_bar * y_bar,
    )


def rejections(
    control: Moments,
    treatment: Moments,
    *,
    mode: str,
    kind: str,
    relative: bool = False,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    min_units_per_arm: float = 0.0,
) -> np.ndarray:
    """Whether each look's test rejects "no effect", shape (sims, looks).

    Modes: "mixture" (two-sided confidence sequence excludes 0), "mixture_less" /
    "mixture_greater" (the one-sided guardrail form), "group_sequential" (O'Brien-Fleming
    bounds at fractions n_look / n_last of the mean of both arms), "naive" (the fixed-horizon
    z/t test at every look, which is what peeking means). Looks where an arm has fewer than
    ``min_units_per_arm`` units, or the effect is not estimable, never reject.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    est = difference(control, treatment, kind=kind, relative=relative)
    eligible = estimable(est) & (np.asarray(control.n) >= min_units_per_arm) & (np.asarray(treatment.n) >= min_units_per_arm)
    if mode == "naive":
        decided = fixed_interval(est, alpha)[2] <= alpha
    elif mode == "group_sequential":
        units = np.broadcast_to(np.asarray(est.n_total, dtype=float), est.effect.shape)
        bounds = obrien_fleming_bounds(units[0] / units[0, -1], alpha)
        decided = np.abs(est.effect / est.standard_error) >= bounds
    else:
        sides = {"mixture": "two", "mixture_less": "less", "mixture_greater": "greater"}[mode]
        lower, upper = mixture_interval(est, alpha, tuning, sides)
        decided = (lower > 0) | (upper < 0)
    return eligible & decided  # comparisons with NaN are False


def first_look(rejected: np.ndarray) -> np.ndarray:
    """Index of the first rejecting look per run, -1 for runs that never reject."""
    hit = rejected.any(-1)
    return np.where(hit, np.argmax(rejected, -1), -1)


def stopping_units(rejected: np.ndarray, units_at_look: ArrayLike) -> np.ndarray:
    """Total units at which each run stops: its first rejection, else the last look."""
    units = np.asarray(units_at_look, dtype=float)
    look = first_look(rejected)
    return np.where(look >= 0, units[np.maximum(look, 0)], units[-1])
