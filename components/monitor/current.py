"""The current data of one column, summarized in one streaming pass against its reference profile.

Only sums are kept, so sketches of batches, files or days merge by addition and memory
does not grow with rows:

- numbers: per-bin count and sum on the reference edges (Wasserstein), counts in the
  2u+1 buckets around the u distinct reference values when the reference kept its raw
  values (exact K-S, chi-square and Z), and the values the reference never had, while
  they are few (up to FEW_VALUES + 1: enough to settle Evidently's choice of test);
- categories: the count of every category, reference or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components.monitor.profile import (
    FEW_VALUES,
    MAX_CATEGORIES,
    ColumnProfile,
    category_keys,
    numeric_values,
    value_counts,
)
from kfp_mlops.components.monitor.results import CATEGORICAL

_UNSEEN_TRACKED = FEW_VALUES + 1


@dataclass
class ColumnSketch:
    """Sums of one column's current values, aligned with its profile.

    Attributes:
        rows: Current rows, nulls included.
        count: Non-null (finite, for numbers) values.
        nonfinite: Numeric values that were NaN or infinite (not null in Arrow).
        outside: Numeric values below the reference minimum or above its maximum.
        minimum, maximum: Of the finite values.
        bin_counts, bin_sums: On the profile's edges (numbers).
        buckets: Counts below, at and between the reference's raw distinct values (numbers, small reference).
        unseen: Values the reference never had, with counts (numbers: only while few; categories: all).
        unseen_overflow: More distinct unseen numbers than are tracked.
        counts: Counts per reference category (categories) or per reference value (numbers with few values).
    """

    profile: ColumnProfile
    rows: int = 0
    count: int = 0
    nonfinite: int = 0
    outside: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    bin_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bin_sums: np.ndarray = field(default_factory=lambda: np.zeros(0))
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_overflow: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._edges = np.asarray(self.profile.edges, dtype=float)
        self._points = np.unique(np.asarray(self.profile.raw, dtype=float)) if self.profile.kind != CATEGORICAL and self.profile.raw else np.zeros(0)
        self._few = self.profile.few_values
        if self.profile.kind != CATEGORICAL:
            self.bin_counts = np.zeros(len(self._edges) + 1, np.int64)
            self.bin_sums = np.zeros(len(self._edges) + 1)
            self.buckets = np.zeros(2 * len(self._points) + 1, np.int64)

    @property
    def points(self) -> np.ndarray:
        """The distinct raw reference values the buckets are built around."""
        return self._points

    def add(self, array: pa.Array | pa.ChunkedArray) -> None:
        self.rows += len(array)
        if self.profile.kind == CATEGORICAL:
            self._add_categories(array)
        else:
            self._add_numbers(array)

    def _add_categories(self, array: pa.Array | pa.ChunkedArray) -> None:
        keys = category_keys(array)
        self.count += len(keys)
        for key, n in value_counts(keys).items():
            target = self.counts if key in self.profile.counts else self.unseen
            if target is self.unseen and len(self.unseen) >= MAX_CATEGORIES and key not in self.unseen:
                key = ""  # past the cap every new category is pooled: the verdict already says drift
            target[key] = target.get(key, 0) + n

    def _add_numbers(self, array: pa.Array | pa.ChunkedArray) -> None:
        non_null = len(array) - array.null_count
        values = numeric_values(array)
        self.nonfinite += non_null - len(values)
        if not len(values):
            return
        self.count += len(values)
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))
        self.outside += int(np.count_nonzero((values < self.profile.minimum) | (values > self.profile.maximum)))
        if len(self._edges):
            index = np.searchsorted(self._edges, values, side="right")
            self.bin_counts += np.bincount(index, minlength=len(self.bin_counts))
            self.bin_sums += np.bincount(index, weights=values, minlength=len(self.bin_sums))
        if len(self._points):
            # Even buckets hold values strictly between points, odd ones values equal to a point.
            left = np.searchsorted(self._points, values, side="left")
            right = np.searchsorted(self._points, values, side="right")
            self.buckets += np.bincount(left + right, minlength=len(self.buckets))
        if self._few is not None:
            self._count_few(values)

    def _count_few(self, values: np.ndarray) -> None:
        uniques, counted = np.unique(values, return_counts=True)
        known = set(self._few)
        for value, n in zip(uniques.tolist(), counted.tolist()):
            key = repr(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0: one value, one key, as in the profile
            if value in known:
                self.counts[key] = self.counts.get(key, 0) + n
            elif key in self.unseen or len(self.unseen) < _UNSEEN_TRACKED:
                self.unseen[key] = self.unseen.get(key, 0) + n
            else:
                self.unseen_overflow = True

    def merge(self, other: "ColumnSketch") -> None:
        """Add another sketch of the same profile (another file, day or shard)."""
        self.rows += other.rows
        self.count += other.count
        self.nonfinite += other.nonfinite
        self.outside += other.outside
        self.minimum, self.maximum = min(self.minimum, other.minimum), max(self.maximum, other.maximum)
        self.bin_counts = self.bin_counts + other.bin_counts
        self.bin_sums = self.bin_sums + other.bin_sums
        self.buckets = self.buckets + other.buckets
        for mine, theirs in ((self.counts, other.counts), (self.unseen, other.unseen)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        if self._few is not None and len(self.unseen) > _UNSEEN_TRACKED:
            self.unseen_overflow = True
        self.unseen_overflow = self.unseen_overflow or other.unseen_overflow

    @property
    def null_count(self) -> int:
        return self.rows - self.count

    def distinct_union(self) -> int:
        """Distinct values in reference and current together, as Evidently counts them (capped past FEW_VALUES for numbers)."""
        if self.profile.kind == CATEGORICAL:
            return len(self.profile.counts) + len(self.unseen)
        if self._few is None:  # the reference alone has more than FEW_VALUES distinct values
            return FEW_VALUES + 1
        return len(self._few) + len(self.unseen) + (FEW_VALUES + 1 if self.unseen_overflow else 0)


def sketch_table(profiles: dict[str, ColumnProfile], batches: "pa.RecordBatchReader | list[pa.RecordBatch]") -> dict[str, ColumnSketch]:
    """One pass over record batches: a sketch per profiled column present in them."""
    sketches = {name: ColumnSketch(profile) for name, profile in profiles.items()}
    for batch in batches:
        for name, sketch in sketches.items():
            index = batch.schema.get_field_index(name)
            if index >= 0:
                sketch.add(batch.column(index))
    return sketches


def is_numeric_type(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type) or pa.types.is_decimal(data_type)


def cast_error(array: pa.Array) -> str:
    """Why a column cannot be read as numbers ('' when it can)."""
    try:
        pc.cast(array, pa.float64(), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return str(exc).splitlines()[0]
    return ""
