"""Label leakage: features that give the label away, found on a row sample before any training.

Two shapes seen in real tables:

* one column that nearly determines the label (a same-day return behind an up/down
  label, a copy of the target): its single-feature score is at least ``LEAK_SCORE``;
* a few numeric columns whose sum reproduces a numeric label (``casual +
  registered = cnt``): a least-squares fit on two or three of them has R² of at least
  ``SUM_R2`` with whole-number coefficients.

A single feature's score is cross-fitted: the sample is cut in two halves, the label
rate (or mean) per bin of the feature is learned on one half and scored on the
other. An identifier-like column, which would memorize the label in-sample, scores
at chance this way, and a non-monotone relation (a category, a bin) is still caught.
Classification uses ROC AUC of those rates (the smallest one-vs-rest AUC over the
classes: the feature must tell every class apart); regression uses the larger of
|Pearson correlation| and the square root of the cross-fitted R².
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LEAK_SCORE = 0.99
SUM_R2 = 0.999
SUM_CANDIDATES = 12
SUM_ROWS = 5_000
MAX_SUM_COEFFICIENT = 10
COEFFICIENT_TOLERANCE = 0.05
MAX_BINS = 32
EXACT_VALUES = 64
MIN_ROWS = 50
MIN_CLASS_ROWS = 20


@dataclass(frozen=True)
class Leak:
    """Columns that give the label away.

    Attributes:
        columns: The feature columns involved.
        score: The measure's value (AUC, |correlation|, R²).
        description: What was measured, for the anomaly message.
    """

    columns: tuple[str, ...]
    score: float
    description: str


def _numeric(column: pa.ChunkedArray) -> np.ndarray | None:
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    return None


def _codes(column: pa.ChunkedArray) -> np.ndarray | None:
    """Category indices (nulls are one more category) of a text or boolean column."""
    t = column.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)):
        return None
    encoded = pc.dictionary_encode(column).combine_chunks()
    idx = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(idx < 0, len(encoded.dictionary), idx)


def _bins(values: np.ndarray) -> np.ndarray:
    """Bin index per value: each value its own bin when few, else quantile bins; non-finite values get their own."""
    finite = np.isfinite(values)
    out = np.zeros(len(values), dtype=np.int64)
    present = values[finite]
    distinct = np.unique(present)
    if len(distinct) <= EXACT_VALUES:
        out[finite] = np.searchsorted(distinct, present)
        top = len(distinct)
    else:
        count = int(np.clip(len(present) // 40, 4, MAX_BINS))
        edges = np.unique(np.quantile(present, np.linspace(0, 1, count + 1)[1:-1]))
        out[finite] = np.searchsorted(edges, present, side="right")
        top = len(edges) + 1
    out[~finite] = top
    return out


def _run_bins(values: np.ndarray, fold: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Bins cut where the label changes along the sorted values of half 0, when it changes rarely.

    Quantile bins blur a column that sorts the classes into a few runs (an export's row
    number on a file sorted by the label): a class boundary inside a bin mixes it. Cut at
    the boundaries instead, learned on one half; an id in random order changes label at
    almost every row and is left to the quantile bins.
    """
    half = (fold == 0) & np.isfinite(values)
    order = np.argsort(values[half], kind="stable")
    v, labels = values[half][order], y[half][order]
    changes = np.nonzero(labels[1:] != labels[:-1])[0]
    if not 0 < len(changes) < MAX_BINS:
        return None
    edges = np.unique((v[changes] + v[changes + 1]) / 2)
    out = np.searchsorted(edges, values, side="right")
    out[~np.isfinite(values)] = len(edges) + 1
    return out


def _grouped_auc(score: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC when rows come in groups sharing one score (ties count half)."""
    levels, inverse = np.unique(score, return_inverse=True)
    p = np.bincount(inverse, weights=pos, minlength=len(levels))
    n = np.bincount(inverse, weights=neg, minlength=len(levels))
    below = np.cumsum(n) - n
    return float((p * (below + 0.5 * n)).sum() / (p.sum() * n.sum()))


def _classification_score(bins: np.ndarray, fold: np.ndarray, y: np.ndarray, n_classes: int) -> float | None:
    width = int(bins.max()) + 1
    cells = np.bincount((fold * width + bins) * n_classes + y, minlength=2 * width * n_classes).reshape(2, width, n_classes).astype(float)
    totals = cells.sum(axis=2, keepdims=True)
    prior = cells.sum(axis=(0, 1)) / len(y)
    rates = (cells + prior) / (totals + 1.0)  # one pseudo-row at the prior: an empty bin scores the prior
    score = rates[::-1].reshape(-1, n_classes)  # rows of half f are scored with half 1 - f's rates
    pos = cells.reshape(-1, n_classes)
    neg = totals.reshape(-1, 1) - pos
    per_class = [_grouped_auc(score[:, c], pos[:, c], neg[:, c]) for c in range(n_classes) if MIN_CLASS_ROWS <= pos[:, c].sum() <= len(y) - MIN_CLASS_ROWS]
    return min(per_class) if per_class else None


def _correlation(values: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(values)
    if ok.sum() < MIN_ROWS:
        return None
    x, t = values[ok] - values[ok].mean(), y[ok] - y[ok].mean()
    scale = float(np.sqrt((x * x).sum() * (t * t).sum()))
    return float((x * t).sum()) / scale if scale > 0 else None


def _regression_score(bins: np.ndarray, fold: np.ndarray, y: np.ndarray, r: float | None) -> tuple[float, str]:
    width = int(bins.max()) + 1
    index = fold * width + bins
    sums = np.bincount(index, weights=y, minlength=2 * width).reshape(2, width)
    counts = np.bincount(index, minlength=2 * width).reshape(2, width)
    mean = float(y.mean())
    predicted = ((sums + mean) / (counts + 1.0))[::-1][fold, bins]
    spread = float(((y - mean) ** 2).sum())
    r2 = 1.0 - float(((y - predicted) ** 2).sum()) / spread if spread > 0 else 0.0
    best, what = float(np.sqrt(max(r2, 0.0))), f"cross-validated R² {r2:.4f} of the label's mean per bin"
    if r is not None and abs(r) >= best:
        best, what = abs(r), f"Pearson correlation {r:+.4f} with the label"
    return best, what


def _near_whole(coefficients: np.ndarray) -> bool:
    whole = np.round(coefficients)
    return bool(np.all((whole != 0) & (np.abs(whole) <= MAX_SUM_COEFFICIENT) & (np.abs(coefficients - whole) <= COEFFICIENT_TOLERANCE * np.abs(whole))))


def _term(coefficient: float, name: str, first: bool) -> str:
    sign = "-" if coefficient < 0 else ("" if first else "+")
    size = abs(round(coefficient))
    return f"{sign} {'' if size == 1 else f'{size}·'}{name}".strip()


def _sums(numeric: dict[str, np.ndarray], y: np.ndarray, correlation: dict[str, float], label: str) -> list[Leak]:
    """Pairs, then triples, of the columns most correlated with the label, fitted by least squares.

    Solved from one covariance matrix of the candidates: each of the few hundred
    subsets is then a 2x2 or 3x3 system, not a pass over the rows.
    """
    y = y[:SUM_ROWS]  # the sample is already shuffled across the file
    # Columns mostly null cannot make a sum that reproduces every label.
    usable = [n for n in correlation if np.isfinite(numeric[n][:SUM_ROWS]).mean() >= 0.95]
    names = sorted(usable, key=lambda n: -correlation[n])[:SUM_CANDIDATES]
    if len(names) < 2:
        return []
    x = np.column_stack([numeric[n][:SUM_ROWS] for n in names])
    rows = np.isfinite(x).all(axis=1)
    if rows.sum() < MIN_ROWS:
        return []
    x, target = x[rows] - x[rows].mean(axis=0), y[rows] - y[rows].mean()
    gram, cross, spread = x.T @ x, x.T @ target, float(target @ target)
    if spread <= 0:
        return []
    found: list[Leak] = []
    for size in (2, 3):
        for chosen in itertools.combinations(range(len(names)), size):
            columns = tuple(names[i] for i in chosen)
            if any(set(leak.columns) <= set(columns) for leak in found):
                continue  # a smaller set already explains the label
            index = np.array(chosen)
            try:
                coef = np.linalg.solve(gram[np.ix_(index, index)], cross[index])
            except np.linalg.LinAlgError:
                continue  # collinear columns: a smaller set covers them
            r2 = min(1.0, float(coef @ cross[index]) / spread)
            if r2 >= SUM_R2 and _near_whole(coef):
                formula = " ".join(_term(c, n, i == 0) for i, (c, n) in enumerate(zip(coef, columns)))
                found.append(Leak(columns, r2, f"{label!r} ≈ {formula} (least squares R² {r2:.5f} on {int(rows.sum()):,} sampled rows)"))
    return found


def find_leaks(sample: pa.Table, *, label: str, task: str, classes: list[str], skip: frozenset[str], seed: int = 0) -> list[Leak]:
    """Columns of ``sample`` that give ``label`` away (see the module docstring).

    Args:
        sample: Rows sampled uniformly from the dataset.
        label: The label column.
        task: binary, multiclass or regression (from ``task.decide_task``).
        classes: Class names (classification), as the task rule names them.
        skip: Columns that are not features (keys, the timestamp).
        seed: Seed of the two-way split.
    """
    if label not in sample.column_names:
        return []
    if task == "regression":
        target = sample.column(label).cast(pa.float64()).to_numpy(zero_copy_only=False)
        keep = np.isfinite(target)
    else:
        index = pc.index_in(sample.column(label).cast(pa.string()), value_set=pa.array(classes, type=pa.string()))
        target = index.fill_null(-1).to_numpy(zero_copy_only=False)
        keep = target >= 0
    if keep.sum() < MIN_ROWS:
        return []
    table = sample.filter(pa.array(keep))
    y = target[keep] if task == "regression" else target[keep].astype(np.int64)
    fold = np.random.default_rng(seed).integers(0, 2, len(y))
    leaks: list[Leak] = []
    numeric: dict[str, np.ndarray] = {}
    correlation: dict[str, float] = {}
    for name in table.column_names:
        if name == label or name in skip:
            continue
        column = table.column(name)
        values = _numeric(column)
        if values is not None:
            bins = _bins(values)
        else:
            codes = _codes(column)
            if codes is None:
                continue  # times, dates, nested values: not features train would use
            bins = codes
        if len(np.unique(bins)) < 2:
            continue
        if task == "regression":
            r = _correlation(values, y) if values is not None else None
            score, what = _regression_score(bins, fold, y, r)
        else:
            auc = _classification_score(bins, fold, y, len(classes))
            runs = _run_bins(values, fold, y) if values is not None else None
            if runs is not None:
                by_runs = _classification_score(runs, fold, y, len(classes))
                auc = by_runs if auc is None or (by_runs is not None and by_runs > auc) else auc
            if auc is None:
                continue
            score, what = auc, f"cross-validated ROC AUC {auc:.4f}" + (" (smallest one-vs-rest over the classes)" if task == "multiclass" else "")
        if score >= LEAK_SCORE:
            leaks.append(Leak((name,), score, f"{name!r} alone predicts the label: {what} on {len(y):,} sampled rows"))
        elif task == "regression" and values is not None and r is not None:
            numeric[name] = values
            correlation[name] = abs(r)
    if task == "regression" and len(numeric) >= 2:
        leaks.extend(_sums(numeric, y, correlation, label))
    return leaks
