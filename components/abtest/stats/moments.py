"""Sufficient statistics of one arm's metric, the only thing the analysis needs from raw data.

A unit is what was randomized: a request, or a user under per-user assignment. Per unit
there is the metric ``y`` (for a ratio metric, its numerator), optionally a denominator
``d`` (a ratio metric: e.g. clicks per request with users as units) and optionally a
pre-period covariate ``x`` (CUPED). Sums are additive, so partial aggregates streamed from
many log shards or time windows are simply added up.

Every field may be a float or an array with leading batch dimensions (simulations hold
arrays of shape (sims, looks)); the properties broadcast. Statistics that need more units
than there are (a variance of fewer than two units) come out NaN, never a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

# What the statistics return: an array for array input, a numpy float (a float) for scalars.
Values = np.ndarray | float

RATIO_FIELDS = ("den_sum", "den_sum_sq", "num_den_sum")
COVARIATE_FIELDS = ("x_sum", "x_sum_sq", "xy_sum")


def as_result(value: ArrayLike) -> Values:
    """A float array, or a numpy float (a ``float`` subclass) when the value is a scalar."""
    return np.asarray(value, dtype=float)[()]


def safe_divide(numerator: ArrayLike, denominator: ArrayLike) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is not positive (no warnings)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def sample_covariance(n: ArrayLike, sum_a: ArrayLike, sum_b: ArrayLike, sum_ab: ArrayLike) -> np.ndarray:
    """Sample covariance (divisor n - 1) of two per-unit quantities from their sums; NaN for n < 2.

    Args:
        n: Number of units.
        sum_a: Sum of the first quantity.
        sum_b: Sum of the second quantity.
        sum_ab: Sum of their per-unit products.

    Returns:
        The covariance, broadcast over the inputs.
    """
    n = np.asarray(n, dtype=float)
    centered = np.asarray(sum_ab, dtype=float) - np.asarray(sum_a, dtype=float) * safe_divide(sum_b, n)
    return safe_divide(centered, n - 1.0)


def sample_variance(n: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> np.ndarray:
    """Sample variance (divisor n - 1) from sums, clipped at 0 against rounding; NaN for n < 2."""
    # sum_sq - sum^2/n can come out a hair below zero for a constant metric.
    return np.maximum(sample_covariance(n, total, total, total_sq), 0.0)


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of one arm over its units.

    Attributes:
        n: Number of units.
        sum: Sum of the metric (the numerator of a ratio metric) over units.
        sum_sq: Sum of its squares.
        den_sum: Ratio metrics: sum of the per-unit denominators.
        den_sum_sq: Ratio metrics: sum of their squares.
        num_den_sum: Ratio metrics: sum of numerator times denominator.
        x_sum: CUPED: sum of the pre-period covariate.
        x_sum_sq: CUPED: sum of its squares.
        xy_sum: CUPED: sum of covariate times metric.

    The optional groups are all set or all None; a partial group raises ValueError.
    """

    n: ArrayLike
    sum: ArrayLike
    sum_sq: ArrayLike
    den_sum: ArrayLike | None = None
    den_sum_sq: ArrayLike | None = None
    num_den_sum: ArrayLike | None = None
    x_sum: ArrayLike | None = None
    x_sum_sq: ArrayLike | None = None
    xy_sum: ArrayLike | None = None

    def __post_init__(self) -> None:
        for group, label in ((RATIO_FIELDS, "ratio"), (COVARIATE_FIELDS, "covariate")):
            present = [name for name in group if getattr(self, name) is not None]
            if present and len(present) != len(group):
                missing = [name for name in group if getattr(self, name) is None]
                raise ValueError(f"Moments: the {label} fields come together; {', '.join(present)} given but {', '.join(missing)} missing. Pass all of {', '.join(group)} or none.")

    @classmethod
    def of(
        cls,
        values: ArrayLike,
        denominators: ArrayLike | None = None,
        covariate: ArrayLike | None = None,
    ) -> Moments:
        """Moments of raw per-unit arrays; units run along the last axis.

        Args:
            values: The metric per unit (a ratio metric's numerator), shape [..., units].
            denominators: Per-unit denominators of a ratio metric, same shape, or None.
            covariate: Per-unit pre-period covariate for CUPED, same shape, or None.

        Returns:
            The Moments, with the batch shape [...].
        """
        y = np.asarray(values, dtype=float)
        n = np.full(y.shape[:-1], float(y.shape[-1]))
        extra: dict[str, np.ndarray] = {}
        if denominators is not None:
            d = np.broadcast_to(np.asarray(denominators, dtype=float), y.shape)
            extra.update(den_sum=d.sum(-1), den_sum_sq=(d * d).sum(-1), num_den_sum=(y * d).sum(-1))
        if covariate is not None:
            x = np.broadcast_to(np.asarray(covariate, dtype=float), y.shape)
            extra.update(x_sum=x.sum(-1), x_sum_sq=(x * x).sum(-1), xy_sum=(x * y).sum(-1))
        return cls(n=n, sum=y.sum(-1), sum_sq=(y * y).sum(-1), **extra)

    @classmethod
    def binary(cls, successes: ArrayLike, n: ArrayLike) -> Moments:
        """Moments of a 0/1 metric from its counts (a 0/1 value is its own square)."""
        successes = np.asarray(successes, dtype=float)
        return cls(n=np.asarray(n, dtype=float), sum=successes, sum_sq=successes)

    @property
    def has_ratio(self) -> bool:
        """Whether the ratio-metric denominator sums are present."""
        return self.den_sum is not None

    @property
    def has_covariate(self) -> bool:
        """Whether the CUPED covariate sums are present."""
        return self.x_sum is not None

    @property
    def mean(self) -> Values:
        """Mean of the metric per unit (NaN without units)."""
        return as_result(safe_divide(self.sum, self.n))

    @property
    def variance(self) -> Values:
        """Sample variance (n - 1) of the metric per unit (NaN below two units)."""
        return as_result(sample_variance(self.n, self.sum, self.sum_sq))

    def merged(self, other: Moments) -> Moments:
        """The Moments of both sets of units together (partial aggregates add up).

        Raises:
            ValueError: when one side carries a ratio or covariate group the other lacks,
                since their sum would silently describe different units.
        """
        combined: dict[str, np.ndarray | None] = {}
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if (mine is None) != (theirs is None):
                raise ValueError(f"Moments.merged: {field.name} is set on one side only; partial aggregates must carry the same fields (all ratio sums, all covariate sums, or none).")
            combined[field.name] = None if mine is None else np.add(mine, theirs)
        return Moments(**combined)

    def __add__(self, other: Moments) -> Moments:
        return self.merged(other)
