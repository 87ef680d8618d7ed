"""Adjusted p-values for several metrics (or arms) tested at once, along the last axis.

- ``holm``: Holm's step-down procedure; controls the family-wise error rate under any
  dependence between the tests. For guardrails, where one false alarm blocks a rollout.
- ``benjamini_hochberg``: the step-up procedure of Benjamini & Hochberg (1995); controls the
  false discovery rate (independent or positively dependent tests). For many exploratory metrics.

Reject test i at level alpha when its adjusted p-value is <= alpha. NaN p-values (a metric
without enough data) stay NaN and do not count towards the number of tests.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _sorted_with_counts(p_values: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ascending p-values (NaN last), their original positions, ranks 1..m, and m per row."""
    p = np.asarray(p_values, dtype=float)
    if np.any(p[~np.isnan(p)] < 0) or np.any(p[~np.isnan(p)] > 1):
        raise ValueError("p-values must lie in [0, 1] (or be NaN)")
    order = np.argsort(p, axis=-1, kind="stable")  # NaN sorts last
    ordered = np.take_along_axis(p, order, axis=-1)
    tests = (~np.isnan(p)).sum(-1, keepdims=True).astype(float)
    ranks = np.arange(1, p.shape[-1] + 1, dtype=float)
    return ordered, order, ranks, tests


def _unsort(adjusted_in_order: np.ndarray, order: np.ndarray, original: np.ndarray) -> np.ndarray:
    out = np.empty_like(adjusted_in_order)
    np.put_along_axis(out, order, adjusted_in_order, axis=-1)
    return np.where(np.isnan(original), np.nan, out)


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm-adjusted p-values: running max over ranks of min(1, (m - rank + 1) p).

    Args:
        p_values: p-values, shape [..., tests]; NaN for tests without a result.

    Returns:
        Adjusted p-values, same shape; NaN where the input is NaN.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim == 0:
        return p.copy()
    ordered, order, ranks, tests = _sorted_with_counts(p)
    scaled = np.minimum((tests - ranks + 1.0) * ordered, 1.0)
    # fmax skips NaN, which sit at the end of each row and are restored to NaN by _unsort.
    adjusted = np.fmax.accumulate(scaled, axis=-1)
    return _unsort(adjusted, order, p)


def benjamini_hochberg(p_values: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): running min from the top of m p / rank.

    Args:
        p_values: p-values, shape [..., tests]; NaN for tests without a result.

    Returns:
        Adjusted p-values, same shape; NaN where the input is NaN.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim == 0:
        return p.copy()
    ordered, order, ranks, tests = _sorted_with_counts(p)
    scaled = np.where(np.isnan(ordered), np.inf, np.minimum(tests * ordered / ranks, 1.0))
    adjusted = np.minimum.accumulate(scaled[..., ::-1], axis=-1)[..., ::-1]
    return _unsort(adjusted, order, p)


def critical_levels(p_values: ArrayLike, alpha: float, correction: str) -> np.ndarray:
    """The level each test is compared with at its rank: Holm alpha / (m - rank + 1), BH alpha rank / m, none alpha.

    An interval drawn at a test's critical level excludes the null exactly when the test rejects
    at that step (NaN p-values rank last).
    """
    p = np.atleast_1d(np.asarray(p_values, dtype=float))
    m = p.shape[-1]
    ranks = np.empty(m, dtype=float)
    ranks[np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")] = np.arange(1, m + 1)
    if correction == "holm":
        return alpha / (m - ranks + 1)
    if correction == "bh":
        return alpha * ranks / m
    return np.full(m, float(alpha))
