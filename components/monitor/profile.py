"""The reference profile of one column: what drift tests need from the training data, nothing more.

Built once, in batches, from the reference rows and stored with the model version, so a
monitoring run never re-reads the training set. What is kept decides which of
Evidently's tests can be reproduced exactly (docs/monitor-research.md, section 2):

- up to ``RAW_LIMIT`` (1000) non-null values: the values themselves (K-S, chi-square and
  Z are then exact on any current data);
- numeric columns: count, min, max, mean, population std, and per-bin count and sum on
  fine edges (reference quantiles plus equal-width edges, plus every distinct value when
  there are at most ``QUANTILE_EDGES``), which make the normed Wasserstein distance
  near-exact, and exact on tied data; the value counts when there are at most
  ``FEW_VALUES`` distinct values (Jensen-Shannon on value counts is then exact);
- categorical columns: every category count (up to ``MAX_CATEGORIES``).

Everything is plain numbers and strings: a profile is JSON, read back with checks, never unpickled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.monitor.results import CATEGORICAL, NUMERIC

RAW_LIMIT = 1000  # Evidently uses the p-value tests up to this many reference values
FEW_VALUES = 5  # numeric columns with at most this many distinct values get value-count tests
MAX_CATEGORIES = 50_000
QUANTILE_EDGES = 1000
EQUAL_WIDTH_EDGES = 200
_SAMPLE_FOR_EDGES = 200_000
_FIX = "recreate the profile with kfp-mlops (register writes it; `kfp-mlops profile` recreates it for a registered version)"


def numeric_values(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The finite values of a numeric (or boolean) column as float64; nulls, NaN and infinities dropped."""
    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.int8())
    values = pc.cast(array, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return values[np.isfinite(values)]


def category_keys(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Categories as text (nulls dropped), so a category compares equal however it was typed."""
    array = pc.drop_null(array)
    if pa.types.is_dictionary(array.type):
        array = pc.cast(array, array.type.value_type)
    if pa.types.is_floating(array.type):
        # 3.0 and 3 are the same category: floats that are whole numbers print as integers.
        values = array.to_numpy(zero_copy_only=False)
        keep = np.isfinite(values)
        whole = np.where(keep & (values == np.round(values)) & (np.abs(values) < 2**53), values, np.nan)
        text = [str(int(w)) if not math.isnan(w) else repr(float(v)) for v, w in zip(values[keep], whole[keep])]
        return pa.array(text, pa.string())
    return pc.cast(array, pa.string())


def value_counts(keys: pa.Array) -> dict[str, int]:
    if len(keys) == 0:
        return {}
    counted = pc.value_counts(keys)
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))


@dataclass
class ColumnProfile:
    """The reference sketch of one column.

    Attributes:
        name: Column name.
        kind: numeric or categorical.
        dtype: Arrow type of the reference column.
        rows: Reference rows, nulls included.
        count: Non-null (and, for numbers, finite) values.
        raw: All values when count <= RAW_LIMIT (sorted floats, or category texts); else empty.
        counts: Value counts: categories, or numbers (as their repr) when there are few.
        minimum, maximum, mean, std: Numeric summary (std with ddof=0, as Evidently norms by it).
        edges: Bin edges for numeric columns (ascending, first = minimum, last = maximum).
        bin_counts: Values per bin: below the first edge, [e0, e1), ..., [e_last, inf).
        bin_sums: Sum of the values per bin.
        truncated: More than MAX_CATEGORIES categories; the rest are counted under "" and tests are approximate.
    """

    name: str
    kind: str
    dtype: str
    rows: int
    count: int
    raw: list[Any] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    minimum: float = math.nan
    maximum: float = math.nan
    mean: float = math.nan
    std: float = math.nan
    edges: list[float] = field(default_factory=list)
    bin_counts: list[int] = field(default_factory=list)
    bin_sums: list[float] = field(default_factory=list)
    truncated: bool = False

    @property
    def null_rate(self) -> float:
        return 1.0 - self.count / self.rows if self.rows else math.nan

    @property
    def few_values(self) -> list[float] | None:
        """The distinct numeric values when there are at most FEW_VALUES, else None."""
        if self.kind != NUMERIC or not self.counts:
            return None
        return sorted(float(k) for k in self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "ColumnProfile":
        if not isinstance(data, dict):
            raise DataError("a column profile is not a JSON object", where=where, fix=_FIX)
        try:
            profile = cls(
                name=str(data["name"]),
                kind=str(data["kind"]),
                dtype=str(data["dtype"]),
                rows=int(data["rows"]),
                count=int(data["count"]),
                raw=list(data.get("raw") or []),
                counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
                minimum=_float(data.get("minimum")),
                maximum=_float(data.get("maximum")),
                mean=_float(data.get("mean")),
                std=_float(data.get("std")),
                edges=[float(v) for v in data.get("edges") or []],
                bin_counts=[int(v) for v in data.get("bin_counts") or []],
                bin_sums=[float(v) for v in data.get("bin_sums") or []],
                truncated=bool(data.get("truncated", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"a column profile is malformed ({type(exc).__name__}: {exc})", where=where, fix=_FIX) from exc
        profile._check(where)
        return profile

    def _check(self, where: str) -> None:
        where = f"{where}: column {self.name!r}"
        problems = []
        if self.kind not in (NUMERIC, CATEGORICAL):
            problems.append(f"unknown kind {self.kind!r}")
        if not 0 <= self.count <= self.rows:
            problems.append("count outside [0, rows]")
        if self.count <= RAW_LIMIT and self.count and len(self.raw) != self.count:
            problems.append("the raw values do not match the count")
        if self.kind == NUMERIC and self.count:
            if len(self.bin_counts) != len(self.edges) + 1 or len(self.bin_sums) != len(self.bin_counts):
                problems.append("bins do not match their edges")
            elif sum(self.bin_counts) != self.count or np.any(np.diff(self.edges) <= 0) or any(c < 0 for c in self.bin_counts):
                problems.append("bins are not ascending, or do not add up to the count")
            if self.kind == NUMERIC and self.raw and not all(isinstance(v, (int, float)) for v in self.raw):
                problems.append("numeric raw values are not numbers")
            # A NaN here would not fail loudly: it turns every score NaN, and NaN is never drift.
            elif not np.all(np.isfinite([self.minimum, self.maximum, self.mean, self.std, *self.edges, *self.bin_sums, *self.raw])) or self.std < 0:
                problems.append("the numeric summary, edges, sums or raw values are missing or not finite, or the std is negative")
        if any(n < 0 for n in self.counts.values()):
            problems.append("negative value counts")
        if self.counts and sum(self.counts.values()) != self.count:
            problems.append("value counts do not add up to the count")
        if problems:
            raise DataError("the reference profile is inconsistent: " + "; ".join(problems), where=where, fix=_FIX)


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def profile_column(name: str, kind: str, batches: Iterable[pa.Array], rows_hint: int = 0) -> ColumnProfile:
    """The reference profile of one column from its batches (they are read twice for numbers: pass a re-iterable)."""
    batches = list(batches) if not isinstance(batches, (list, tuple)) else batches
    dtype = str(batches[0].type) if batches else "null"
    rows = sum(len(b) for b in batches)
    if kind == CATEGORICAL:
        return _profile_categories(name, dtype, rows, batches)
    return _profile_numbers(name, dtype, rows, batches)


def _profile_categories(name: str, dtype: str, rows: int, batches: list[pa.Array]) -> ColumnProfile:
    counts: dict[str, int] = {}
    raw: list[str] = []
    for batch in batches:
        keys = category_keys(batch)
        for key, n in value_counts(keys).items():
            counts[key] = counts.get(key, 0) + n
        if len(raw) <= RAW_LIMIT:
            raw.extend(keys.slice(0, RAW_LIMIT + 1 - len(raw)).to_pylist())
    count = sum(counts.values())
    truncated = len(counts) > MAX_CATEGORIES
    if truncated:
        kept = dict(sorted(counts.items(), key=lambda kv: -kv[1])[: MAX_CATEGORIES - 1])
        kept[""] = count - sum(kept.values())
        counts = kept
    return ColumnProfile(name, CATEGORICAL, dtype, rows, count, raw=raw if count <= RAW_LIMIT else [], counts=counts, truncated=truncated)


def _profile_numbers(name: str, dtype: str, rows: int, batches: list[pa.Array]) -> ColumnProfile:
    count, mean, m2 = 0, 0.0, 0.0
    low, high = math.inf, -math.inf
    distinct: dict[float, int] | None = {}
    raw: list[float] = []
    sample: list[np.ndarray] = []
    rng = np.random.default_rng(0)
    keep_share = min(1.0, _SAMPLE_FOR_EDGES / max(rows, 1))
    for batch in batches:
        values = numeric_values(batch)
        if not len(values):
            continue
        # Chan's parallel update: exact population std without cancellation on large means.
        n_b, mean_b = len(values), float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        delta, total = mean_b - mean, count + n_b
        mean += delta * n_b / total
        m2 += m2_b + delta**2 * count * n_b / total
        count = total
        low, high = min(low, float(values.min())), max(high, float(values.max()))
        if distinct is not None:
            uniques, counted = np.unique(values, return_counts=True)
            if len(uniques) > FEW_VALUES:
                distinct = None  # settled: no Python loop over a million distinct floats
            else:
                for value, n in zip(uniques.tolist(), counted.tolist()):
                    distinct[value] = distinct.get(value, 0) + n
                if len(distinct) > FEW_VALUES:
                    distinct = None
        if count <= RAW_LIMIT:
            raw.extend(values.tolist())
        sample.append(values if keep_share >= 1 else values[rng.random(len(values)) < keep_share])
    if count == 0:
        return ColumnProfile(name, NUMERIC, dtype, rows, 0)
    edges = _edges(np.concatenate(sample), low, high)
    bin_counts = np.zeros(len(edges) + 1, dtype=np.int64)
    bin_sums = np.zeros(len(edges) + 1)
    for batch in batches:
        values = numeric_values(batch)
        index = np.searchsorted(edges, values, side="right")
        bin_counts += np.bincount(index, minlength=len(edges) + 1)
        bin_sums += np.bincount(index, weights=values, minlength=len(edges) + 1)
    return ColumnProfile(
        name, NUMERIC, dtype, rows, count,
        raw=sorted(raw) if count <= RAW_LIMIT else [],
        counts={repr(float(k) + 0.0): n for k, n in distinct.items()} if distinct is not None else {},  # -0.0 keyed as 0.0
        minimum=low, maximum=high, mean=mean, std=math.sqrt(m2 / count),
        edges=edges.tolist(), bin_counts=bin_counts.tolist(), bin_sums=bin_sums.tolist(),
    )  # fmt: skip


def _edges(sample: np.ndarray, low: float, high: float) -> np.ndarray:
    """Quantile edges (where the data is) united with equal-width edges (so a long tail is not one bin)."""
    if low == high:
        return np.array([low])
    quantiles = np.quantile(sample, np.linspace(0, 1, QUANTILE_EDGES + 1))
    even = np.linspace(low, high, EQUAL_WIDTH_EDGES + 1)
    distinct = np.unique(sample)
    # With every reference value an edge, F_ref is flat inside each bin, so tied (discrete) data
    # needs no interpolation where F_ref - F_cur changes sign.
    exact = distinct if len(distinct) <= QUANTILE_EDGES else np.zeros(0)
    edges = np.unique(np.concatenate([quantiles, even, exact, [low, high]]))
    return edges[(edges >= low) & (edges <= high)]


def profile_parquet(path: str, kinds: dict[str, str], *, batch_rows: int = 1 << 20) -> dict[str, ColumnProfile]:
    """Profiles of the named columns of a Parquet file, one column in memory at a time."""
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the reference data as Parquet ({exc})", where=path, fix="pass the train or test split written by featurize") from exc
    missing = [c for c in kinds if c not in reader.schema_arrow.names]
    if missing:
        raise DataError(f"the reference data lacks the model's columns {missing[:10]}", where=path, fix="profile the split the model was trained on")
    profiles = {}
    for name, kind in kinds.items():
        batches = [b.column(0) for b in reader.iter_batches(batch_size=batch_rows, columns=[name])]
        profiles[name] = profile_column(name, kind, batches)
    return profiles
