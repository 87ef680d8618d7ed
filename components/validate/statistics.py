"""Streaming dataset statistics: one pass over a Parquet file in bounded memory.

Per column: nulls, NaN/inf, min/max, mean/std (merged per batch with Chan's
formula, numerically stable), value counts up to a cap, string lengths. Key
uniqueness keeps 8 bytes per row (a 64-bit hash of the key), far less than the
data. With a reference schema, the same pass counts values outside the known
range or domain.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.validate.schema import ColumnSchema, DatasetSchema, kind_of

BATCH_ROWS = 131_072
EXAMPLES = 5


@dataclass
class ColumnStats:
    """Statistics of one column (JSON-serializable via ``asdict``)."""

    name: str
    type: str
    kind: str
    count: int = 0
    nulls: int = 0
    nan: int = 0
    inf: int = 0
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    m2: float = 0.0
    moment_count: int = 0
    distinct_capped: bool = False
    value_counts: dict[str, int] = field(default_factory=dict)
    max_length: int | None = None
    out_of_range: int = 0
    out_of_domain: int = 0
    unseen_examples: list[str] = field(default_factory=list)

    @property
    def null_fraction(self) -> float:
        return self.nulls / self.count if self.count else 0.0


@dataclass
class DatasetStats:
    """Statistics of a dataset."""

    rows: int
    columns: list[ColumnStats]
    key_columns: list[str]
    duplicate_keys: int
    duplicate_key_examples: list[int]

    def column(self, name: str) -> ColumnStats | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for col in out["columns"]:
            col.pop("m2", None)
            col.pop("moment_count", None)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _KeyHasher:
    """64-bit hashes of key tuples with their row numbers, spilled to disk by hash prefix.

    Each of ``PARTITIONS`` files holds the keys whose hash starts with its bits, so
    duplicates meet in one file and the final check loads one file at a time:
    memory stays a small fraction of the data, whatever the row count.
    """

    MULT = np.uint64(0x9E3779B97F4A7C15)
    PARTITIONS = 64
    SHIFT = np.uint64(58)  # top 6 bits pick the partition

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="kfp-mlops-keys-")
        folder = Path(self.dir.name)
        self.hash_files = [open(folder / f"{i:02d}.hash", "wb") for i in range(self.PARTITIONS)]
        self.row_files = [open(folder / f"{i:02d}.row", "wb") for i in range(self.PARTITIONS)]
        self.rows = 0

    def add(self, columns: list[pa.Array]) -> None:
        h = np.zeros(len(columns[0]), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in columns:
                h = (h ^ column_hash(column)) * self.MULT
                h ^= h >> np.uint64(29)
        part = (h >> self.SHIFT).astype(np.uint8)
        order = np.argsort(part, kind="stable")  # radix sort on uint8: linear
        bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=self.PARTITIONS))])
        hashes, rows = h[order], order.astype(np.int64) + self.rows
        self.rows += len(h)
        for i in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[i], bounds[i + 1]
            hashes[lo:hi].tofile(self.hash_files[i])
            rows[lo:hi].tofile(self.row_files[i])

    def duplicates(self) -> tuple[int, list[int]]:
        count, examples = 0, list[int]()
        try:
            for hash_file, row_file in zip(self.hash_files, self.row_files):
                hash_file.close()
                row_file.close()
                hashes = np.fromfile(hash_file.name, dtype=np.uint64)
                if len(hashes) < 2:
                    continue
                ordered = np.sort(hashes)
                found = int((ordered[1:] == ordered[:-1]).sum())
                if found and len(examples) < EXAMPLES:
                    # Only here are row numbers needed: the later row of each repeated key.
                    order = np.argsort(hashes, kind="stable")
                    repeat = hashes[order][1:] == hashes[order][:-1]
                    rows = np.fromfile(row_file.name, dtype=np.int64)[order][1:][repeat]
                    examples.extend(int(r) + 1 for r in np.sort(rows)[:EXAMPLES])
                count += found
        finally:
            self.dir.cleanup()
        return count, sorted(examples)[:EXAMPLES]


NULL_HASH = np.uint64(0x5BD1E995)


def column_hash(column: pa.Array) -> np.ndarray:
    t = column.type
    if pa.types.is_dictionary(t):
        return column_hash(column.dictionary_decode())
    if pa.types.is_null(t):
        return np.full(len(column), NULL_HASH, dtype=np.uint64)
    if pa.types.is_decimal(t):
        return column_hash(column.cast(pa.string()))
    if pa.types.is_nested(t):
        # Rare as a key (a Parquet file not written by ingest); hash the values' text.
        return np.array([hash(repr(v)) for v in column.to_pylist()], dtype=np.int64).view(np.uint64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        encoded = pc.dictionary_encode(column)
        # Python's hash is stable within one process, which is all a duplicate count needs.
        table = np.array([hash(v) for v in encoded.dictionary.to_pylist()], dtype=np.int64).view(np.uint64)
        idx = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return np.where(idx >= 0, table[np.clip(idx, 0, None)] if len(table) else 0, NULL_HASH)
    if pa.types.is_temporal(t):
        # Dates, times, durations and timestamps are integers underneath; not all of them cast to int64.
        column = column.view(pa.int32() if t.bit_width == 32 else pa.int64())
    elif pa.types.is_floating(t):
        column = column.cast(pa.float64())
    elif pa.types.is_boolean(t):
        column = column.cast(pa.int8())
    values = column.fill_null(0).to_numpy(zero_copy_only=False)
    raw = np.ascontiguousarray(values).astype(np.int64 if values.dtype.kind in "iub" else values.dtype).view(np.uint64)
    if column.null_count:
        raw = np.where(column.is_valid().to_numpy(zero_copy_only=False), raw, NULL_HASH)
    return raw


class BatchObserver(Protocol):
    """Something else that wants to see every batch of the one pass (a row sample, the label's values)."""

    def observe(self, batch: pa.RecordBatch, total_rows: int) -> None: ...


def read_schema(path: str | Path) -> pa.Schema:
    """The dataset's Arrow schema from the Parquet footer, before any row is read."""
    try:
        return pq.read_schema(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the dataset as Parquet ({exc})", where=str(path), fix="pass the output of the ingest step") from exc


def compute_statistics(
    path: str | Path,
    *,
    key_columns: list[str] = (),  # type: ignore[assignment]
    categorical_columns: frozenset[str] = frozenset(),
    max_domain_size: int = 100,
    reference: DatasetSchema | None = None,
    observers: tuple[BatchObserver, ...] = (),
) -> DatasetStats:
    """One streaming pass over the Parquet file at ``path``.

    Args:
        path: Parquet file.
        key_columns: Columns whose combination must be unique; missing ones are skipped here
            (the checks report them).
        categorical_columns: Columns to count values of even when not text (e.g. an int label).
        max_domain_size: Value counts stop (and the column counts as free text) past this
            many distinct values.
        reference: Schema whose ranges and domains are checked in the same pass.
        observers: Each sees every batch, with the file's total row count.
    """
    try:
        # pre_buffer caches every row group read so far (memory grows with the file): off.
        parquet = pq.ParquetFile(str(path), pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the dataset as Parquet ({exc})", where=str(path), fix="pass the output of the ingest step") from exc
    schema = parquet.schema_arrow
    stats = [ColumnStats(name=f.name, type=str(f.type), kind=kind_of(f.type)) for f in schema]
    ref_cols = {c.name: c for c in reference.columns} if reference else {}
    keys = [k for k in key_columns if k in schema.names]
    hasher = _KeyHasher() if keys else None
    rows = 0
    total_rows = parquet.metadata.num_rows
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for observer in observers:
                observer.observe(batch, total_rows)
            for st, column in zip(stats, batch.columns):
                if pa.types.is_dictionary(column.type):
                    column = column.dictionary_decode()  # pandas categoricals arrive dictionary-encoded
                _update(st, column, st.name in categorical_columns, max_domain_size, ref_cols.get(st.name))
            if hasher is not None:
                hasher.add([batch.column(k) for k in keys])
            rows += batch.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        if hasher is not None:
            hasher.duplicates()  # removes its spill files
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the machine (a full temp disk for the key spill), not the data
        raise DataError(f"the dataset is corrupt after {rows:,} rows ({exc})", where=str(path), fix="re-run the step that wrote it") from exc
    duplicates, examples = hasher.duplicates() if hasher is not None else (0, [])
    for st in stats:
        st.std = math.sqrt(st.m2 / (st.moment_count - 1)) if st.moment_count > 1 else None
        st.min, st.max = _jsonable(st.min), _jsonable(st.max)
        st.mean = _jsonable(st.mean)
        st.std = _jsonable(st.std)
    return DatasetStats(rows=rows, columns=stats, key_columns=list(key_columns), duplicate_keys=duplicates, duplicate_key_examples=examples)


def _update(st: ColumnStats, column: pa.Array, categorical: bool, cap: int, ref: ColumnSchema | None) -> None:
    st.count += len(column)
    if pa.types.is_float16(column.type):
        column = column.cast(pa.float32())  # Arrow has no min/max, mean or variance kernels for half floats
    st.nulls += column.null_count
    if column.null_count == len(column):
        return
    kind = st.kind
    if kind in ("float", "integer"):
        if kind == "float":
            nan_mask = pc.is_nan(column)
            st.nan += pc.sum(nan_mask).as_py() or 0
            st.inf += pc.sum(pc.is_inf(column)).as_py() or 0
            finite = column.filter(pc.is_finite(column))
        else:
            finite = column
        _merge_moments(st, finite)
        _update_min_max(st, finite)
        if ref is not None and ref.min is not None and ref.max is not None and len(finite):
            outside = pc.or_(pc.less(finite, ref.min), pc.greater(finite, ref.max))
            st.out_of_range += pc.sum(outside).as_py() or 0
    elif kind == "timestamp":
        _update_min_max(st, column)
    elif kind == "boolean":
        _merge_moments(st, column.cast(pa.int8()))
    if kind in ("text", "categorical") or categorical or kind == "boolean":
        _update_counts(st, column, cap)
        if kind in ("text", "categorical"):
            longest = pc.max(pc.binary_length(column)).as_py()
            st.max_length = max(st.max_length or 0, longest or 0)
    if ref is not None and ref.domain is not None:
        domain = pa.array(ref.domain, type=pa.string())
        try:
            present = column.drop_null().cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return  # a type with no text form: the type check against the schema reports the column
        unseen = present.filter(pc.invert(pc.is_in(present, value_set=domain)))
        st.out_of_domain += len(unseen)
        for value in pc.unique(unseen).to_pylist():
            if len(st.unseen_examples) < EXAMPLES and value not in st.unseen_examples:
                st.unseen_examples.append(value)


def _merge_moments(st: ColumnStats, values: pa.Array) -> None:
    n_b = len(values) - values.null_count
    if n_b == 0:
        return
    mean_b = pc.mean(values).as_py()
    m2_b = (pc.variance(values, ddof=0).as_py() or 0.0) * n_b
    n_a = st.moment_count
    if st.mean is None:
        st.mean, st.m2 = mean_b, m2_b
    else:
        delta = mean_b - st.mean
        total = n_a + n_b
        st.mean += delta * n_b / total
        st.m2 += m2_b + delta * delta * n_a * n_b / total
    st.moment_count = n_a + n_b


def _update_min_max(st: ColumnStats, values: pa.Array) -> None:
    if len(values) == values.null_count:
        return
    if pa.types.is_timestamp(values.type) and values.type.unit == "ns":
        # Python datetimes hold microseconds; without pandas, ns scalars do not convert.
        values = values.cast(pa.timestamp("us", tz=values.type.tz), safe=False)
    mm = pc.min_max(values)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    st.min = lo if st.min is None else min(st.min, lo)
    st.max = hi if st.max is None else max(st.max, hi)


def _update_counts(st: ColumnStats, column: pa.Array, cap: int) -> None:
    if st.distinct_capped:
        return
    counts = pc.value_counts(column.drop_null())
    for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        key = str(value)
        st.value_counts[key] = st.value_counts.get(key, 0) + n
    if len(st.value_counts) > cap:
        st.distinct_capped = True
        st.value_counts = {}
