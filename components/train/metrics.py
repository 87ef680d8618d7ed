"""Evaluation metrics in NumPy (no scikit-learn in the training image)."""

from __future__ import annotations

import numpy as np

EPS = 1e-15
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "f1": True, "log_loss": False, "rmse": False, "mae": False, "r2": True}


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    boundaries = np.flatnonzero(np.diff(ordered)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = midranks(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(y: np.ndarray, p: np.ndarray, points: int = 101) -> tuple[list[float], list[float], list[float]]:
    """(fpr, tpr, thresholds) at up to ``points`` thresholds, for KFP's ROC chart."""
    thresholds = np.unique(np.quantile(p, np.linspace(0, 1, points)))[::-1]
    positives, negatives = max(y.sum(), 1), max(len(y) - y.sum(), 1)
    tpr = [float(((p >= t) & (y == 1)).sum() / positives) for t in thresholds]
    fpr = [float(((p >= t) & (y == 0)).sum() / negatives) for t in thresholds]
    return [0.0, *fpr, 1.0], [0.0, *tpr, 1.0], [1.0 + EPS, *map(float, thresholds), 0.0]


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, k: int) -> list[list[int]]:
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix.tolist()


def classification(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Binary (probs of the positive class, shape (n,)) or multiclass (shape (n, k))."""
    if probs.ndim == 1:
        predicted = (probs >= 0.5).astype(np.int64)
        clipped = np.clip(probs, EPS, 1 - EPS)
        tp = float(((predicted == 1) & (y == 1)).sum())
        precision = tp / max(predicted.sum(), 1)
        recall = tp / max(y.sum(), 1)
        return {
            "accuracy": float((predicted == y).mean()),
            "roc_auc": roc_auc(y, probs),
            "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
            "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        }
    y = y.astype(np.int64)
    predicted = probs.argmax(axis=1)
    k = probs.shape[1]
    f1s = []
    for c in range(k):
        tp = float(((predicted == c) & (y == c)).sum())
        precision, recall = tp / max((predicted == c).sum(), 1), tp / max((y == c).sum(), 1)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    aucs = [roc_auc((y == c).astype(np.int64), probs[:, c]) for c in range(k)]
    return {
        "accuracy": float((predicted == y).mean()),
        "roc_auc": float(np.nanmean(aucs)),  # one-vs-rest, macro
        "f1": float(np.mean(f1s)),  # macro
        "log_loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0)))),
    }


def regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = predicted - y
    variance = float(np.var(y))
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1 - float(np.mean(error**2)) / variance if variance > 0 else float("nan"),
    }


def better(metric: str, new: float, best: float | None) -> bool:
    if best is None or np.isnan(best):
        return not np.isnan(new)
    return new > best if HIGHER_IS_BETTER[metric] else new < best
