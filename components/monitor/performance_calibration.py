"""The numerical pieces of confidence-based performance estimation (CBPE), on plain arrays.

``performance`` builds the reference and the streaming sketch from these. The procedures follow
NannyML 0.13.1 (``calibration.py``, ``sampling_error/binary_classification.py``, ``thresholds.py``)
as described in section 3 of docs/monitor-research.md; the code is our own.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

CALIBRATION_SPLITS = 10
CALIBRATION_BINS = 10
THRESHOLD_CHUNKS = 10
THRESHOLD_STDS = 3.0
QUANTILE_EDGES = 1000
UNIFORM_EDGES = 1000


def needs_calibration(y: np.ndarray, scores: np.ndarray) -> bool:
    """Whether isotonic calibration lowers the expected calibration error (ECE) out of sample.

    Ten stratified 90/10 splits: isotonic is fitted on each 90 % and applied to the 10 %; the
    held-out parts are pooled and the ECE over equal-count bins is compared raw against calibrated.

    Args:
        y: 0/1 outcomes (the label, or whether the predicted class was right).
        scores: The model's probabilities for those outcomes.

    Returns:
        True when the calibrated scores have the lower ECE.
    """
    if np.unique(y).size < 2 or roc_auc_score(y, scores) > 0.999:
        # One class cannot be calibrated; a near-perfect ranking leaves nothing to gain.
        return False
    splitter = StratifiedShuffleSplit(n_splits=CALIBRATION_SPLITS, test_size=0.1, random_state=42)
    held_y, held_raw, held_calibrated = [], [], []
    for train, test in splitter.split(scores, y):
        x_points, y_points = fit_isotonic(y[train], scores[train])
        held_y.append(y[test])
        held_raw.append(scores[test])
        held_calibrated.append(calibrate(scores[test], x_points, y_points))
    pooled_y = np.concatenate(held_y)
    return _ece(pooled_y, np.concatenate(held_raw)) > _ece(pooled_y, np.concatenate(held_calibrated))


def _ece(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Expected calibration error over equal-count bins of the sorted probabilities."""
    order = np.argsort(probabilities)
    probabilities, y = probabilities[order], y[order]
    n = probabilities.size
    bin_count = CALIBRATION_BINS if n > 2 * CALIBRATION_BINS else max(n // 2, 1)
    width = n // bin_count
    # Equal widths with the remainder in the last bin, as NannyML splits them.
    starts = np.arange(bin_count) * width
    stops = np.append(starts[1:], n)
    return float(sum((stop - start) / n * abs(probabilities[start:stop].mean() - y[start:stop].mean()) for start, stop in zip(starts, stops)))


def fit_isotonic(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints of an increasing isotonic fit of y on scores (clipped outside them).

    Returns:
        (x, p): strictly increasing scores and the non-decreasing probabilities at them; the
        calibrated value of any score is the linear interpolation between them (see ``calibrate``).
    """
    regression = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, y)
    return np.asarray(regression.X_thresholds_, dtype=float), np.asarray(regression.y_thresholds_, dtype=float)


def calibrate(scores: np.ndarray, x_points: np.ndarray, p_points: np.ndarray) -> np.ndarray:
    """Calibrated probabilities: the isotonic map (no breakpoints means the scores are used as they are)."""
    if x_points.size == 0:
        return scores.astype(float, copy=False)
    # np.interp holds the end values outside [x[0], x[-1]]: IsotonicRegression's out_of_bounds="clip".
    return np.interp(scores, x_points, p_points)


def score_edges(scores: np.ndarray, breakpoints: np.ndarray) -> np.ndarray:
    """Bin edges on the raw score for the streamed ROC AUCs.

    The calibration breakpoints make the estimated AUC exact wherever the calibrated probability is
    constant; reference quantiles resolve where the scores lie, and a uniform grid on [0, 1] keeps
    resolution where shifted current scores go that the reference rarely reached.
    """
    quantiles = np.quantile(scores, np.linspace(0.0, 1.0, QUANTILE_EDGES + 1))
    return np.unique(np.concatenate([breakpoints, quantiles, np.linspace(0.0, 1.0, UNIFORM_EDGES + 1)]))


def binned_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve from per-bin positive and negative weights ordered by descending score.

    With counts this is the Mann-Whitney AUC (pairs inside a bin count half); with expected counts
    (sum of p, sum of 1 - p) it is NannyML's ``estimate_roc_auc`` with the rows of a bin kept together.
    """
    true_positives = np.concatenate([[0.0], np.cumsum(positive, dtype=float)])
    false_positives = np.concatenate([[0.0], np.cumsum(negative, dtype=float)])
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        return float("nan")
    tpr, fpr = true_positives / true_positives[-1], false_positives / false_positives[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def auc_sampling_components(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Standard deviation and fraction for the AUC's standard error, std / sqrt(n * fraction).

    AUC is a Mann-Whitney statistic: its variance is Var(positive placements) / n_pos +
    Var(negative placements) / n_neg (DeLong). NannyML keeps only the first term, which in our
    simulations made the band ~20 % too narrow; the std returned here folds in the second term so
    that NannyML's formula, with the minority-class fraction, gives the full variance.
    """
    if y.mean() > 0.5:
        y, scores = 1 - y, 1.0 - scores
    ranked = y[np.argsort(scores, kind="stable")]
    positive_ranks, negative_ranks = np.flatnonzero(ranked == 1), np.flatnonzero(ranked == 0)
    n_positive, n_negative = positive_ranks.size, negative_ranks.size
    # Share of the other class ranked below a positive / above a negative.
    positive_placements = (positive_ranks - np.arange(n_positive)) / n_negative
    negative_placements = (n_positive - (negative_ranks - np.arange(n_negative))) / n_positive
    fraction = n_positive / y.size
    variance = np.var(positive_placements) + np.var(negative_placements) * fraction / (1.0 - fraction)
    return float(np.sqrt(variance)), float(fraction)


def f1_sampling_components(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """F1's observation-level standard deviation and the share of rows that enter F1 (TP, FP, FN)."""
    tp = int(np.sum((y == 1) & (predicted == 1)))
    errors = int(np.sum(y != predicted))
    relevant = tp + errors
    if relevant == 0 or tp + 0.5 * errors == 0:
        return float("nan"), 0.0
    # Each relevant row scores 1 (TP) or 0, rescaled so that their mean is the F1.
    scale = relevant / (tp + 0.5 * errors)
    share = tp / relevant
    return float(scale * np.sqrt(share * (1.0 - share))), relevant / y.size


def accuracy(correct: float, n: float) -> float:
    return correct / n if n > 0 else float("nan")


def f1_score(tp: float, fp: float, fn: float) -> float:
    """F1 from (expected) confusion counts; NaN when undefined (no positives predicted or present)."""
    denominator = tp + 0.5 * (fp + fn)
    return tp / denominator if denominator > 0 else float("nan")


def chunk_alert_threshold(chunk_values: list[float]) -> float:
    """Lower alert threshold: mean - 3 std (ddof 0) of the metric over reference chunks, kept in [0, 1].

    With fewer than two chunks where the metric is defined no spread can be measured, so the
    threshold is 0 (never alerts) rather than a guess.
    """
    values = np.asarray(chunk_values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return 0.0
    return float(np.clip(values.mean() - THRESHOLD_STDS * values.std(), 0.0, 1.0))


def reference_chunks(n: int) -> list[np.ndarray]:
    """Row indices of the reference's equal-size chunks, in the order the rows were given."""
    return np.array_split(np.arange(n), THRESHOLD_CHUNKS)
