"""Distribution skew against a reference schema, as TFDV measures it.

Ranges alone miss most skew: a mean that moves by two standard deviations can stay
inside the training range. So the schema carries each column's distribution, and
serving data is compared with it:

* numbers: shares of the reference's quantile bins (edges from training, outer bins
  open-ended); distance = L-infinity, the largest change of one bin's share;
* categories and booleans: shares of each value; distance = Jensen-Shannon
  divergence (base 2, so between 0 and 1), values outside the domain pooled.

Numeric shares come from the row sample (about 20,000 rows: a share is then known to
about ±0.004, far below the 0.1 default threshold); category shares from the exact
counts of the statistics pass. Keys and timestamps are not compared: ids and event
times are new in every batch by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from kfp_mlops.components.validate.schema import ColumnSchema
from kfp_mlops.components.validate.statistics import ColumnStats

NUMERIC_BINS = 10
DEFAULT_THRESHOLD = 0.1
MIN_ROWS = 200  # below this many values, sampling noise alone can move a share by the threshold


@dataclass(frozen=True)
class Skew:
    """How far a column's distribution moved.

    Attributes:
        column: Column name.
        measure: ``L-infinity distance`` or ``Jensen-Shannon divergence``.
        distance: The measured distance.
        threshold: The threshold it was compared with.
        detail: The largest single change, for the message.
    """

    column: str
    measure: str
    distance: float
    threshold: float
    detail: str


def _finite(sample: pa.Table | None, name: str) -> np.ndarray | None:
    if sample is None or name not in sample.column_names:
        return None
    column = sample.column(name)
    t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return None
    # Unsafe: a uint64 past 2**53 (an id) rounds, which a histogram does not mind; a safe cast raised.
    values = column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return values[np.isfinite(values)]


def _shares(counts: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in counts / max(counts.sum(), 1)]


def histogram_of(stats: ColumnStats, sample: pa.Table | None, kind: str) -> dict[str, Any] | None:
    """The column's distribution as the schema stores it, or None when there is none to keep."""
    if kind in ("categorical", "boolean") and stats.value_counts and not stats.distinct_capped:
        names = sorted(stats.value_counts)
        return {"values": names, "shares": _shares(np.array([stats.value_counts[v] for v in names], dtype=float))}
    if kind in ("integer", "float"):
        values = _finite(sample, stats.name)
        if values is None or len(values) < 2:
            return None
        edges = np.unique(np.quantile(values, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(float)
        return {"edges": [float(e) for e in edges], "shares": _shares(counts)}
    return None


def _bin_name(edges: list[float], i: int) -> str:
    lo = f"{edges[i - 1]:.4g}" if i > 0 else "-inf"
    hi = f"{edges[i]:.4g}" if i < len(edges) else "+inf"
    return f"[{lo}, {hi})"


def compare(stats: ColumnStats, sample: pa.Table | None, ref: ColumnSchema, default_threshold: float) -> Skew | None:
    """The column's skew against ``ref.histogram`` when it reaches the threshold; None otherwise or when not comparable."""
    hist = ref.histogram
    threshold = ref.skew_threshold if ref.skew_threshold is not None else default_threshold
    if hist is None:
        return None
    reference = np.array(hist["shares"], dtype=float)
    if "edges" in hist:
        values = _finite(sample, stats.name)
        if values is None or len(values) < MIN_ROWS:
            return None
        edges = hist["edges"]
        current = np.bincount(np.searchsorted(np.array(edges, dtype=float), values, side="right"), minlength=len(reference)).astype(float)
        current /= current.sum()
        change = np.abs(current - reference)
        worst = int(np.argmax(change))
        distance = float(change[worst])
        detail = f"share of values in {_bin_name(edges, worst)} went from {reference[worst]:.1%} to {current[worst]:.1%}"
        measure = "L-infinity distance"
    else:
        if stats.distinct_capped or not stats.value_counts:
            return None  # more values than the domain cap: the new_category check reports them
        total = sum(stats.value_counts.values())
        known = list(hist["values"])
        # With many categories, sampling alone spreads the shares: about 10 rows per category
        # keep a resample of the same distribution well below the default threshold.
        if total < max(MIN_ROWS, 10 * len(known)):
            return None
        current = np.array([stats.value_counts.get(v, 0) for v in known] + [total - sum(stats.value_counts.get(v, 0) for v in known)], dtype=float) / total
        reference = np.append(reference / max(reference.sum(), 1e-12), 0.0)
        distance = _jensen_shannon(reference, current)
        change = np.abs(current - reference)
        worst = int(np.argmax(change))
        name = repr(known[worst]) if worst < len(known) else "values outside the domain"
        detail = f"share of {name} went from {reference[worst]:.1%} to {current[worst]:.1%}"
        measure = "Jensen-Shannon divergence"
    if distance < threshold:
        return None
    return Skew(stats.name, measure, distance, threshold, detail)


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))
