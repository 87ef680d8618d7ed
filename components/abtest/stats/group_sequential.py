"""Group-sequential boundaries: Lan-DeMets alpha spending of O'Brien-Fleming type.

For a planned maximum sample, looks at information fractions t_1 < ... < t_K <= 1 (units so
far / planned units) get z boundaries b_k: stop and reject at the first look with
|Z_k| >= b_k (two-sided) or Z_k >= b_k (one-sided, H1: effect > 0; use -Z for "less").
The type-I error spent by look k is the O'Brien-Fleming-type function of Lan & DeMets (1983),
per side

    alpha_side(t) = 2 (1 - Phi( z_{1 - a/2} / sqrt(t) )),  a = alpha / 2 (two-sided) or alpha,

so the two sides together spend alpha by t = 1 and almost nothing early on (with five equal
looks at two-sided 0.05: 4.877, 3.357, 2.680, 2.290, 2.031, Jennison & Turnbull table 2.7).

The boundaries are found look by look, by the recursive numerical integration of Armitage,
McPherson & Rowe (1969): the sub-density of the Brownian path W(t) = Z sqrt(t) among paths that
have not stopped is carried on a grid (Simpson weights) from look to look through the Gaussian
increments, and each b_k is the root of "probability of first crossing at look k = alpha
spent between t_{k-1} and t_k". Results are cached by (fractions, alpha, sides).

Looks that are not planned exactly as carried out: recompute with the actual fractions
(the spending function makes that legitimate); a look at t > 1 is not supported.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special, stats

from kfp_mlops.components.abtest.stats.estimate import check_sides

# Grid spacing is the increment's standard deviation over this; 24 points per sd keeps the
# boundaries within ~1e-4 of published tables (tests check 3 decimals).
POINTS_PER_SD = 24
MAX_GRID_POINTS = 2001  # caps memory (grid x grid) when two looks are almost the same
LOWER_TAIL_SD = 9.0  # one-sided: paths further below 0 than this many sd carry no mass


def obrien_fleming_spending(fractions: ArrayLike, alpha: float, sides: str = "two") -> np.ndarray:
    """Cumulative type-I error spent by each information fraction (both sides together).

    Args:
        fractions: Information fractions in (0, 1].
        alpha: Overall level.
        sides: "two" (symmetric, alpha/2 per side) or one-sided ("greater" / "less").

    Returns:
        The cumulative alpha spent, equal to alpha at t = 1.
    """
    per_side = alpha / 2.0 if check_sides(sides) == "two" else alpha
    t = np.asarray(fractions, dtype=float)
    one_side = 2.0 * stats.norm.sf(stats.norm.isf(per_side / 2.0) / np.sqrt(t))
    return 2.0 * one_side if sides == "two" else one_side


def _simpson_grid(low: float, high: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on [low, high] with at most ``spacing`` between points."""
    intervals = int(np.ceil((high - low) / spacing / 2.0)) * 2
    intervals = int(min(max(intervals, 2), MAX_GRID_POINTS - 1))
    points = np.linspace(low, high, intervals + 1)
    weights = np.ones(intervals + 1)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return points, weights * (high - low) / (3.0 * intervals)


def _exit_probability(c: float, mass: np.ndarray, points: np.ndarray, sd: float, two_sided: bool) -> float:
    """P(first crossing at this look) for boundary c on the W scale, from the carried sub-density."""
    upper = special.ndtr((points - c) / sd)
    if two_sided:
        upper = upper + special.ndtr((-c - points) / sd)
    return float(mass @ upper)


def _solve_boundary(target: float, mass: np.ndarray, points: np.ndarray, sd: float, two_sided: bool) -> float:
    """The W-scale boundary whose first-crossing probability is ``target`` (inf for none)."""
    if target <= 0.0:
        return np.inf
    edge = float(np.max(np.abs(points))) if points.size else 0.0
    low, high = 0.0, edge + 40.0 * sd
    if _exit_probability(low, mass, points, sd, two_sided) <= target:
        return 0.0  # more alpha left than any boundary can spend: reject on anything
    return optimize.brentq(lambda c: _exit_probability(c, mass, points, sd, two_sided) - target, low, high, xtol=1e-12, rtol=1e-12)


@lru_cache(maxsize=256)
def _bounds(fractions: tuple[float, ...], alpha: float, sides: str) -> tuple[float, ...]:
    two_sided = sides == "two"
    spent = obrien_fleming_spending(np.array(fractions), alpha, sides)
    increments = np.diff(np.concatenate([[0.0], spent]))
    times = np.array(fractions)
    steps = np.diff(np.concatenate([[0.0], times]))
    # Look 1 is a plain normal with variance t_1: a one-point "grid" at W = 0 with mass 1.
    points, mass = np.zeros(1), np.ones(1)
    bounds = []
    for k, (t, step, target) in enumerate(zip(times, steps, increments)):
        sd = np.sqrt(step)
        c = _solve_boundary(float(target), mass, points, sd, two_sided)
        bounds.append(c / np.sqrt(t))
        if k == len(times) - 1:
            break
        next_sd = np.sqrt(steps[k + 1])
        low = -c if two_sided else -LOWER_TAIL_SD * np.sqrt(t)
        high = c if np.isfinite(c) else LOWER_TAIL_SD * np.sqrt(t)
        low = max(low, -LOWER_TAIL_SD * np.sqrt(t))
        new_points, weights = _simpson_grid(low, high, min(sd, next_sd) / POINTS_PER_SD)
        gap = (new_points[:, None] - points[None, :]) / sd
        density = np.exp(-0.5 * gap * gap) @ mass / (sd * np.sqrt(2.0 * np.pi))
        points, mass = new_points, weights * density
    return tuple(float(b) for b in bounds)


def obrien_fleming_bounds(fractions: ArrayLike, alpha: float, sides: str = "two") -> np.ndarray:
    """z boundaries of the Lan-DeMets O'Brien-Fleming-type design at the given looks.

    Args:
        fractions: Information fractions t_1 < ... < t_K in (0, 1].
        alpha: Overall type-I error (two-sided total, or one-sided).
        sides: "two" (reject when |Z| >= b), "greater" (Z >= b) or "less" (Z <= -b).

    Returns:
        The K boundaries on the z scale (inf where a look spends nothing).

    Raises:
        ValueError: fractions not strictly increasing within (0, 1], or alpha not in (0, 1).
    """
    check_sides(sides)
    t = np.asarray(fractions, dtype=float).ravel()
    if t.size == 0 or not np.all(np.diff(t) > 0) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"fractions must increase strictly within (0, 1]; got {t.tolist()}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    key_sides = "two" if sides == "two" else "greater"  # "less" mirrors "greater"
    return np.array(_bounds(tuple(np.round(t, 12).tolist()), float(alpha), key_sides))
