"""Sample-ratio mismatch: do the arms receive the traffic shares they were configured with?

A mismatch means assignment or logging is broken (a crashing arm drops requests, a redirect
loses users), and every effect estimate is then suspect, whatever its p-value.

- ``srm_chi_square``: Pearson's goodness-of-fit test, valid at one pre-planned look.
- ``srm_sequential``: the always-valid test of Lindon & Malek (2022), "Anytime-valid
  inference for multinomial count data": a Dirichlet-multinomial mixture Bayes factor against
  the configured shares, whose reciprocal is an always-valid p-value (Ville's inequality), so
  it can be checked at every look of a canary without inflating false alarms.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from kfp_mlops.components.abtest.stats.moments import Values, as_result

# Dirichlet prior alpha = concentration * shares: centred on the configured split, with a
# prior sd of each share of sqrt(p (1 - p) / (concentration + 1)), 0.05 at 50/50. The Bayes
# factor is most powerful against deviations of about the prior's width. SRM bugs range from
# gross (an arm that drops most traffic, seen in the first hundred users of a canary) to a
# skew of one or two points of share seen only after ten thousand users; 100 serves both.
# Always-valid p-values at 50/50 for a few choices (1 / BF at that look):
#   concentration     1       100      500      10^4
#   52/48, 10,000   0.042    0.0037   0.0023   0.026
#   51/49, 40,000   0.084    0.0069   0.0033   0.0037
#   70/30,    100   0.0034   0.025    0.29     0.93
# The "uninformative" 1 needs ~1.4x the traffic for a 2-point skew (52/48 reaches p < 0.01 at
# 12,000 users against 8,700 with 100); 500 and up are slow to see a broken arm early on.
DEFAULT_CONCENTRATION = 100.0


def _normalized_shares(shares: ArrayLike) -> np.ndarray:
    p = np.asarray(shares, dtype=float)
    if p.ndim != 1 or p.size < 2 or np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise ValueError(f"shares must be a 1-D array of at least two positive numbers; got {p.tolist()}")
    return p / p.sum()


def _check_counts(counts: np.ndarray, k: int) -> None:
    if counts.shape[-1] != k:
        raise ValueError(f"counts have {counts.shape[-1]} arms on the last axis but shares have {k}")
    if np.any(counts < 0):
        raise ValueError("counts must not be negative")


def srm_chi_square(counts: ArrayLike, shares: ArrayLike) -> tuple[Values, Values]:
    """Pearson's chi-square test of the observed counts against the configured shares.

    Args:
        counts: Units per arm, shape [..., k].
        shares: Configured traffic shares, shape [k]; normalized to sum to 1.

    Returns:
        (statistic, p_value) of shape [...], with k - 1 degrees of freedom. No units at all
        is no evidence of a mismatch: statistic 0, p-value 1.
    """
    p = _normalized_shares(shares)
    n = np.asarray(counts, dtype=float)
    _check_counts(n, p.size)
    expected = n.sum(-1, keepdims=True) * p
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(expected > 0, (n - expected) ** 2 / expected, 0.0).sum(-1)
    return as_result(statistic), as_result(stats.chi2.sf(statistic, p.size - 1))


def srm_log_bayes_factor(counts: ArrayLike, shares: ArrayLike, concentration: float = DEFAULT_CONCENTRATION) -> Values:
    """log of the Dirichlet-multinomial mixture Bayes factor of ``counts`` against ``shares``.

    BF = [Gamma(A) / Gamma(A + n) * prod Gamma(a_i + n_i) / Gamma(a_i)] / prod p_i^n_i with
    a = concentration * shares, A = sum(a), n = sum(counts) (the multinomial coefficient cancels).

    Args:
        counts: Cumulative units per arm, shape [..., k].
        shares: Configured shares, shape [k]; normalized.
        concentration: Prior concentration A (see DEFAULT_CONCENTRATION).

    Returns:
        log BF, shape [...].
    """
    p = _normalized_shares(shares)
    if not concentration > 0:
        raise ValueError(f"concentration must be positive; got {concentration}")
    n = np.asarray(counts, dtype=float)
    _check_counts(n, p.size)
    a = concentration * p
    total = n.sum(-1)
    mixture = special.gammaln(concentration) - special.gammaln(concentration + total)
    mixture = mixture + (special.gammaln(a + n) - special.gammaln(a)).sum(-1)
    return as_result(mixture - (n * np.log(p)).sum(-1))


def srm_sequential(counts_over_looks: ArrayLike, shares: ArrayLike, concentration: float = DEFAULT_CONCENTRATION) -> np.ndarray:
    """Always-valid SRM p-values at each look: p_t = min(1, min over s <= t of 1 / BF_s).

    Args:
        counts_over_looks: Cumulative units per arm at each look, shape [..., T, k] (looks in
            time order on the second-to-last axis).
        shares: Configured traffic shares, shape [k]; normalized.
        concentration: Dirichlet prior concentration (see DEFAULT_CONCENTRATION).

    Returns:
        p-values of shape [..., T], non-increasing along looks. Under the configured shares
        the chance that any look's p-value ever falls to alpha or below is at most alpha.
    """
    log_bf = srm_log_bayes_factor(counts_over_looks, shares, concentration)
    p = np.exp(-np.maximum(log_bf, 0.0))
    return np.minimum.accumulate(p, axis=-1)
