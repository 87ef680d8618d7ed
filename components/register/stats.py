"""Confidence intervals for the gate: is a model better than chance, and better than the champion?

- ROC AUC: DeLong's variance (DeLong et al. 1988) in the O(n log n) form of Sun & Xu
  (2014), for one model and for the paired difference of two models scored on the same
  rows (the covariance of their structural components enters the difference's variance).
- Accuracy (multiclass): a normal interval for the share of correct rows; paired, for
  the per-row difference in correctness.
- RMSE (regression): a paired bootstrap over rows of the difference between two
  predictors' RMSE (seeded, so a retried step decides the same way).

Every interval is two-sided at ``level`` (95% by default); a gate passes when the lower
end clears its bound, so an equal model is never "better".
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from kfp_mlops.components.train.metrics import midranks

LEVEL = 0.95
BOOTSTRAP_SAMPLES = 1000
SEED = 20240229


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    method: str

    def text(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def _delong(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of each score vector and the covariance matrix of the AUC estimates."""
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        from kfp_mlops.components._shared.errors import DataError

        raise DataError(
            f"the test split has {m} row(s) of the positive class and {n} of the other; the gate's ROC AUC interval (DeLong) needs at least two of each",
            fix="train on more rows, or give the test split a larger share (split_fractions), so that both classes appear in it",
        )
    aucs, v10, v01 = [], [], []
    for s in scores:
        x, z = s[positive], s[~positive]
        tx, tz, tall = midranks(x), midranks(z), midranks(np.concatenate([x, z]))
        aucs.append((tall[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tall[:m] - tx) / n)
        v01.append(1.0 - (tall[m:] - tz) / m)
    s10 = np.atleast_2d(np.cov(np.vstack(v10)))
    s01 = np.atleast_2d(np.cov(np.vstack(v01)))
    return np.array(aucs), s10 / m + s01 / n


def auc_interval(y: np.ndarray, scores: np.ndarray, level: float = LEVEL) -> Interval:
    aucs, cov = _delong(y, [scores])
    half = _z(level) * float(np.sqrt(max(cov[0, 0], 0.0)))
    return Interval(float(aucs[0]), max(float(aucs[0]) - half, 0.0), min(float(aucs[0]) + half, 1.0), "DeLong")


def auc_difference(y: np.ndarray, new: np.ndarray, old: np.ndarray, level: float = LEVEL) -> Interval:
    """AUC(new) - AUC(old) on the same rows, with DeLong's paired interval."""
    aucs, cov = _delong(y, [new, old])
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = float(aucs[0] - aucs[1])
    half = _z(level) * float(np.sqrt(max(variance, 0.0)))
    return Interval(diff, diff - half, diff + half, "paired DeLong")


def share_interval(correct: np.ndarray, level: float = LEVEL) -> Interval:
    """Mean of per-row values: a Wilson score interval for a share of 0/1 outcomes, else a normal one.

    The normal interval of a share collapses to zero width at 0% or 100% (51 of 51 right
    is not certainty); Wilson's stays honest there and within [0, 1].
    """
    values = correct.astype(np.float64)
    n = len(values)
    mean = float(values.mean())
    z = _z(level)
    if n and bool(np.isin(values, (0.0, 1.0)).all()):
        centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return Interval(mean, max(float(centre - half), 0.0), min(float(centre + half), 1.0), "Wilson")
    se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return Interval(mean, mean - z * se, mean + z * se, "normal")


def rmse_difference(y: np.ndarray, baseline: np.ndarray, candidate: np.ndarray, level: float = LEVEL, samples: int = BOOTSTRAP_SAMPLES) -> Interval:
    """RMSE(baseline) - RMSE(candidate) (positive: the candidate is better), paired bootstrap over rows."""
    base_sq, cand_sq = (baseline - y) ** 2, (candidate - y) ** 2
    estimate = float(np.sqrt(base_sq.mean()) - np.sqrt(cand_sq.mean()))
    rng = np.random.default_rng(SEED)
    n = len(y)
    diffs = np.empty(samples)
    for i in range(samples):
        rows = rng.integers(0, n, n)
        diffs[i] = np.sqrt(base_sq[rows].mean()) - np.sqrt(cand_sq[rows].mean())
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), "paired bootstrap")
