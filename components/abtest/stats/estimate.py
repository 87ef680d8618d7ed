"""The treatment effect and its variance from two arms' Moments, and the fixed-horizon interval.

Kinds of metric:

- ``"proportion"``: a 0/1 metric per unit. Per-unit variance p(1 - p) (the unpooled,
  maximum-likelihood form GrowthBook's gbstats uses; the interval is not pooled).
  Normal reference (``dof`` = inf).
- ``"mean"``: any per-unit metric; Welch's unequal-variance test with the
  Welch-Satterthwaite degrees of freedom.
- ``"ratio"``: sum(numerator) / sum(denominator) per arm with the unit as the sampling
  unit (per-request outcomes under per-user assignment, or true ratio metrics); delta-method
  variance; normal reference.

``relative=True`` reports the lift (t - c) / c with the delta-method variance (meaningful for
positive metrics). ``cuped=True`` adjusts for a pre-period covariate (CUPED, Deng et al. 2013)
with one slope pooled within both arms.

Degenerate inputs never raise and never pass for a result: where an arm has fewer than two
units, the effect's variance is not positive (e.g. no conversions in either arm), or the
lift's baseline is 0, both ``effect`` and ``variance`` are NaN and ``estimable`` is False.
Callers say "not enough data" there instead of reporting a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from kfp_mlops.components.abtest.stats.moments import (
    COVARIATE_FIELDS,
    RATIO_FIELDS,
    Moments,
    Values,
    as_result,
    safe_divide,
    sample_covariance,
    sample_variance,
)

KINDS = ("proportion", "mean", "ratio")
SIDES = ("two", "greater", "less")


def check_sides(sides: str) -> str:
    """``sides`` if it is one of "two", "greater" (treatment above control), "less"; else ValueError."""
    if sides not in SIDES:
        raise ValueError(f"sides must be one of {', '.join(SIDES)}, not {sides!r}")
    return sides


@dataclass(frozen=True)
class Estimate:
    """An effect estimate (treatment minus control, or the lift) with its sampling variance.

    Attributes:
        effect: The estimated effect; NaN where not estimable.
        variance: The variance of ``effect``; NaN where not estimable.
        n_total: Units in both arms together (the N of the sequential analysis).
        dof: Degrees of freedom of the reference distribution; inf means normal.
    """

    effect: Values
    variance: Values
    n_total: Values
    dof: Values

    @property
    def standard_error(self) -> Values:
        """The square root of ``variance``."""
        return as_result(np.sqrt(self.variance))


def estimable(est: Estimate) -> np.ndarray | np.bool_:
    """Where ``est`` carries a usable effect: finite effect and a finite, positive variance.

    False marks too few units, no variation in either arm, or a zero baseline for a lift:
    report "not enough data" there, not the NaN.
    """
    effect = np.asarray(est.effect, dtype=float)
    variance = np.asarray(est.variance, dtype=float)
    with np.errstate(invalid="ignore"):
        return (np.isfinite(effect) & np.isfinite(variance) & (variance > 0))[()]


@dataclass(frozen=True)
class _ArmMoments:
    """One arm's point estimate, the variance of that estimate, and its unit count."""

    mean: Values
    variance: Values
    n: Values


def _require(arm: Moments, names: tuple[str, ...], label: str, why: str) -> None:
    if getattr(arm, names[0]) is None:
        raise ValueError(f"{why} needs the {label} arm's {', '.join(names)}; they are missing. Aggregate them with the metric.")


def _unit_variance(arm: Moments, kind: str) -> np.ndarray:
    if kind == "proportion":
        p = arm.mean
        return p * (1.0 - p)
    return arm.variance


def _plain_arm(arm: Moments, kind: str) -> _ArmMoments:
    n = np.asarray(arm.n, dtype=float)
    if kind == "ratio":
        ratio = safe_divide(arm.sum, arm.den_sum)
        den_mean = safe_divide(arm.den_sum, n)
        # Delta method for sum(y)/sum(d) with units i.i.d.: Var ~ Var(y - R d) / (n mean(d)^2).
        spread = sample_variance(n, arm.sum, arm.sum_sq) - 2.0 * ratio * sample_covariance(n, arm.sum, arm.den_sum, arm.num_den_sum) + ratio**2 * sample_variance(n, arm.den_sum, arm.den_sum_sq)
        return _ArmMoments(ratio, safe_divide(np.maximum(spread, 0.0), n * den_mean**2), n)
    return _ArmMoments(arm.mean, safe_divide(_unit_variance(arm, kind), n), n)


def per_unit(arm: Moments, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The arm's value (mean, share, or sum(num)/sum(den) for a ratio) and the variance of one unit's
    contribution to it (the delta-method linearization for a ratio): what a power calculation needs."""
    plain = _plain_arm(arm, kind)
    return np.asarray(plain.mean, dtype=float), np.asarray(plain.variance, dtype=float) * np.asarray(arm.n, dtype=float)


def _combine(control: _ArmMoments, treatment: _ArmMoments, covariance: ArrayLike, relative: bool) -> tuple[np.ndarray, np.ndarray]:
    """Effect and variance of treatment - control, or of the lift, given the arms' covariance."""
    c, t = control.mean, treatment.mean
    if not relative:
        return t - c, treatment.variance + control.variance - 2.0 * np.asarray(covariance)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = t / c - 1.0
        variance = treatment.variance / c**2 + t**2 * control.variance / c**4 - 2.0 * t * np.asarray(covariance) / c**3
    return lift, variance


def _cuped_arms(control: Moments, treatment: Moments, kind: str) -> tuple[_ArmMoments, _ArmMoments, np.ndarray]:
    """CUPED-adjusted arm means, their variances and their covariance.

    Each arm's mean becomes mean(y) - theta (mean_arm(x) - mean_pooled(x)), with theta the
    slope of y on x pooled within both arms (the treatment cannot move a pre-period x, so the
    within-arm slope is free of the effect). Centring on the pooled mean of x keeps the
    adjusted means on the metric's scale, which a lift needs; that shared term makes the two
    adjusted means correlated, and the covariance is carried into the lift's variance.
    """
    arms = (control, treatment)
    n = [np.asarray(a.n, dtype=float) for a in arms]
    n_total = n[0] + n[1]
    var_y = [_unit_variance(a, kind) for a in arms]
    var_x = [sample_variance(a.n, a.x_sum, a.x_sum_sq) for a in arms]
    cov_xy = [sample_covariance(a.n, a.x_sum, a.sum, a.xy_sum) for a in arms]
    pooled_sxx = (n[0] - 1.0) * var_x[0] + (n[1] - 1.0) * var_x[1]
    pooled_sxy = (n[0] - 1.0) * cov_xy[0] + (n[1] - 1.0) * cov_xy[1]
    # A constant covariate explains nothing: no adjustment rather than NaN.
    theta = np.where(pooled_sxx > 0, safe_divide(pooled_sxy, pooled_sxx), 0.0)
    x_pooled = safe_divide(np.add(control.x_sum, treatment.x_sum), n_total)
    # With D = mean(y) - theta mean_arm(x), each adjusted mean is D + theta x_pooled, so:
    #   Var = Var(D) + theta^2 Var(x_pooled) + 2 theta Cov(D, x_pooled), and the two arms share
    #   theta^2 Var(x_pooled) + theta (Cov(D_c, x_pooled) + Cov(D_t, x_pooled)) as covariance.
    var_x_pooled = safe_divide(n[0] * var_x[0] + n[1] * var_x[1], n_total**2)
    shared = theta**2 * var_x_pooled
    cov_with_pooled = [safe_divide(cxy - theta * vx, n_total) for cxy, vx in zip(cov_xy, var_x)]  # ~0: shared slope
    adjusted = []
    for arm, n_arm, vy, vx, cxy, own in zip(arms, n, var_y, var_x, cov_xy, cov_with_pooled):
        mean = arm.mean - theta * (safe_divide(arm.x_sum, n_arm) - x_pooled)
        residual_var = safe_divide(vy - 2.0 * theta * cxy + theta**2 * vx, n_arm)
        adjusted.append(_ArmMoments(mean, np.maximum(residual_var + shared + 2.0 * theta * own, 0.0), n_arm))
    covariance = shared + theta * (cov_with_pooled[0] + cov_with_pooled[1])
    return adjusted[0], adjusted[1], covariance


def _welch_dof(control: _ArmMoments, treatment: _ArmMoments) -> np.ndarray:
    numerator = (control.variance + treatment.variance) ** 2
    denominator = safe_divide(control.variance**2, control.n - 1.0) + safe_divide(treatment.variance**2, treatment.n - 1.0)
    # Both variances 0 gives 0/0; that estimate is masked as not estimable anyway.
    return safe_divide(numerator, denominator)


def difference(control: Moments, treatment: Moments, *, kind: str, relative: bool = False, cuped: bool = False) -> Estimate:
    """The effect of treatment over control.

    Args:
        control: The control arm's Moments.
        treatment: The treatment arm's Moments (broadcastable against control's).
        kind: "proportion", "mean" or "ratio" (see the module docstring).
        relative: Report the lift (t - c) / c instead of t - c.
        cuped: Adjust for the pre-period covariate (needs the x_* sums; kinds proportion, mean).

    Returns:
        The Estimate; NaN effect and variance wherever ``estimable`` is False.

    Raises:
        ValueError: unknown kind, a ratio without denominator sums, CUPED without covariate
            sums or on a ratio metric.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "ratio":
        for arm, label in ((control, "control"), (treatment, "treatment")):
            _require(arm, RATIO_FIELDS, label, 'kind="ratio"')
    if cuped:
        if kind == "ratio":
            raise ValueError("cuped=True is supported for kinds proportion and mean, not ratio")
        for arm, label in ((control, "control"), (treatment, "treatment")):
            _require(arm, COVARIATE_FIELDS, label, "cuped=True")
        arm_c, arm_t, covariance = _cuped_arms(control, treatment, kind)
    else:
        arm_c, arm_t, covariance = _plain_arm(control, kind), _plain_arm(treatment, kind), 0.0
    effect, variance = _combine(arm_c, arm_t, covariance, relative)
    dof = _welch_dof(arm_c, arm_t) if kind == "mean" else np.full(np.shape(effect), np.inf)
    with np.errstate(invalid="ignore"):
        usable = (arm_c.n >= 2) & (arm_t.n >= 2) & np.isfinite(effect) & np.isfinite(variance) & (variance > 0)
        if relative:
            usable &= np.abs(arm_c.mean) > 0
    n_total = np.broadcast_to(arm_c.n + arm_t.n, np.shape(effect)).astype(float)
    return Estimate(
        effect=as_result(np.where(usable, effect, np.nan)),
        variance=as_result(np.where(usable, variance, np.nan)),
        n_total=as_result(n_total),
        dof=as_result(np.broadcast_to(dof, np.shape(effect))),
    )


def fixed_interval(est: Estimate, alpha: float, sides: str = "two") -> tuple[Values, Values, Values]:
    """The fixed-horizon confidence interval and p-value (valid at one pre-planned look only).

    Student t with ``est.dof`` degrees of freedom (Welch), the normal where dof is inf
    (proportions, ratios).

    Args:
        est: The estimate.
        alpha: Significance level (0.05 gives a 95% interval).
        sides: "two"; "greater" (H1: effect > 0, interval [lower, inf)); "less" (H1:
            effect < 0, interval (-inf, upper]).

    Returns:
        (lower, upper, p_value); NaN where the estimate is not estimable.
    """
    check_sides(sides)
    se = est.standard_error
    dist = stats.t(np.asarray(est.dof, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est.effect / se
    if sides == "two":
        q = dist.ppf(1.0 - alpha / 2.0)
        return as_result(est.effect - q * se), as_result(est.effect + q * se), as_result(np.minimum(2.0 * dist.sf(np.abs(z)), 1.0))
    q = dist.ppf(1.0 - alpha)
    nan_or = np.where(np.isnan(est.effect), np.nan, 1.0)  # keep NaN where the estimate is NaN
    if sides == "greater":
        return as_result(est.effect - q * se), as_result(np.inf * nan_or), as_result(dist.sf(z))
    return as_result(-np.inf * nan_or), as_result(est.effect + q * se), as_result(dist.cdf(z))
