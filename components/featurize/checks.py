"""Checks on the events and label files, run before anything is computed, registered or written.

Each refusal names the column, the row or value, and what to do. What passes here is
what Feast and its stores hand back unchanged: keys that are integers or strings,
feature values of scalar types, timestamps pandas can hold.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.spec import FeatureSpec

NUMERIC_FUNCTIONS = {"sum", "mean", "min", "max"}
OFFSET = re.compile(r"([+-]\d\d:?\d\d|Z)$")
# Feast materializes through pandas, whose timestamps are int64 nanoseconds since 1970:
# only this range survives every store (a placeholder such as 9999-12-31 does not).
EARLIEST = dt.datetime(1677, 9, 22, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(2262, 4, 11, tzinfo=dt.timezone.utc)
INT64_MAX = 2**63 - 1
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def read_schema(path: str | Path, what: str = "dataset") -> pa.Schema:
    """The Parquet schema of ``path``, or a ``DataError`` saying it is not readable Parquet."""
    try:
        return pq.read_schema(str(path))
    except FileNotFoundError:
        raise DataError(f"the {what} file does not exist", where=str(path), fix="pass the output of the ingest step") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"the {what} is not a readable Parquet file ({exc})", where=str(path), fix="pass Parquet, e.g. the output of the ingest step") from None


def is_nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t) or (pa.types.is_dictionary(t) and pa.types.is_nested(t.value_type))


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def is_servable(t: pa.DataType) -> bool:
    """Types Feast serves back as they went in (decimals are computed as doubles)."""
    if pa.types.is_dictionary(t):
        return pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    return is_numeric(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_timestamp(t) or pa.types.is_duration(t)


def check_columns(schema: pa.Schema, spec: FeatureSpec, where: str) -> None:
    """Every column the spec names exists, once, with a type Feast serves and its functions accept."""
    names = set(schema.names)
    wanted = [spec.entity, spec.timestamp, spec.label, *spec.passthrough, *(a.column for a in spec.aggregates)]
    missing = [c for c in dict.fromkeys(wanted) if c not in names]
    if missing:
        raise DataError(f"columns {missing} are missing; the dataset has {schema.names[:30]}", where=where, fix="fix the feature spec or the ingest step")
    repeated = sorted({c for c in schema.names if schema.names.count(c) > 1})
    if repeated:
        raise DataError(f"columns {repeated} appear more than once", where=where, fix="give every column its own name in ingest")
    by_lower: dict[str, list[str]] = {}
    for column in schema.names:
        by_lower.setdefault(column.lower(), []).append(column)
    twins = sorted({tuple(by_lower[c.lower()]) for c in wanted if len(by_lower[c.lower()]) > 1})
    if twins:
        raise DataError(
            f"columns {[list(t) for t in twins]} differ only in letter case; DuckDB and Feast's SQL stores treat them as one column",
            where=where,
            fix="rename or drop one of each pair in ingest",
        )
    key_type = schema.field(spec.entity).type
    if not (pa.types.is_integer(key_type) or pa.types.is_string(key_type) or pa.types.is_large_string(key_type)):
        raise DataError(
            f"entity column {spec.entity!r} is {key_type}; Feast entity keys are integers or strings",
            where=where,
            fix="cast the key to int64 or string in ingest (column types), or pick another entity column",
        )
    # A column's values reach the store as they are unless every function on it is count.
    served = [*spec.passthrough, *(a.column for a in spec.aggregates if set(a.functions) != {"count"})]
    nested = [c for c in dict.fromkeys(served) if is_nested(schema.field(c).type)]
    if nested:
        raise DataError(
            f"columns {nested} hold nested values ({', '.join(str(schema.field(c).type) for c in nested[:3])}); nested values are not features and Feast cannot serve them",
            where=where,
            fix="drop them or flatten them into scalar columns in ingest, or leave them out of the feature spec",
        )
    unservable = [c for c in dict.fromkeys(served) if not is_servable(schema.field(c).type)]
    if unservable:
        raise DataError(
            f"columns {unservable} have types Feast does not serve back unchanged ({', '.join(str(schema.field(c).type) for c in unservable[:3])})",
            where=where,
            fix="cast them in ingest (dates and times to timestamps, binary to strings) or leave them out of the feature spec",
        )
    for agg in spec.aggregates:
        t = schema.field(agg.column).type
        bad = sorted(set(agg.functions) & NUMERIC_FUNCTIONS) if not is_numeric(t) else []
        if bad:
            raise DataError(f"{bad} need a numeric column; {agg.column!r} is {t}", where=where, fix="use count or last for non-numeric columns")


def check_timestamps(path: Path, column: str, where: str) -> None:
    """Refuse nulls, text timestamps (naming what is wrong with them) and out-of-range values."""
    parquet = pq.ParquetFile(str(path), pre_buffer=False)
    t = parquet.schema_arrow.field(column).type
    rows_before = 0
    for batch in parquet.iter_batches(columns=[column], batch_size=262_144):
        values = batch.column(0)
        if values.null_count:
            row = rows_before + pc.index(values.is_null(), True).as_py() + 1
            raise DataError(f"timestamp column {column!r} has nulls (first at row {row})", where=where, fix="drop rows without an event time")
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            raise _text_timestamp_error(values, column, where, rows_before)
        _check_range(values, column, where, rows_before)
        rows_before += len(values)


def _check_range(values: pa.Array, column: str, where: str, rows_before: int) -> None:
    t = values.type
    per_second: float
    if pa.types.is_timestamp(t):
        ints, per_second = values.cast(pa.int64()), _PER_SECOND[t.unit]
    elif pa.types.is_date32(t):
        ints, per_second = values.cast(pa.int32()).cast(pa.int64()), 1 / 86_400
    else:  # date64: milliseconds
        ints, per_second = values.cast(pa.int64()), 1_000
    low, high = (int(b.timestamp() * per_second) for b in (EARLIEST, LATEST))
    outside = pc.or_(pc.less(ints, low), pc.greater_equal(ints, high))
    first = pc.index(outside, True).as_py()
    if first < 0:
        return
    try:
        shown = values[first].as_py().isoformat()
    except (ValueError, OverflowError):  # past Python's year 9999
        shown = f"{ints[first].as_py()} {getattr(t, 'unit', 'units')} from 1970-01-01"
    raise DataError(
        f"timestamp column {column!r} holds {shown} at row {rows_before + first + 1}, outside the range Feast and pandas can store ({EARLIEST.date()} to {LATEST.date()})",
        where=where,
        fix="drop or correct rows with placeholder or mistyped dates (such as 9999-12-31) upstream",
    )


def _text_timestamp_error(values: pa.Array, column: str, where: str, rows_before: int) -> DataError:
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return DataError(
            f"timestamp column {column!r} is {values.type}, not a timestamp",
            where=where,
            fix="pass the event time column as timestamp_column (--timestamp-column); ingest reads dates, ISO text and integer years in that column as timestamps",
        )
    texts = values.to_pylist()
    for i, text in enumerate(texts):
        if not _parses(text):
            return DataError(
                f"timestamp column {column!r} holds {text[:60]!r} at row {rows_before + i + 1}, which is not a timestamp",
                where=where,
                fix="write ISO 8601 timestamps (2026-01-31T12:00:00Z); ingest this column as the timestamp column (--timestamp-column), "
                f'or force its type there with column_types {{"{column}": "timestamp"}} (--column-types), which names any value that does not parse',
            )
    zoned = [bool(OFFSET.search(v.strip())) for v in texts]
    if any(zoned) and not all(zoned):
        i = zoned.index(not zoned[0])
        return DataError(
            f"timestamp column {column!r} mixes values with and without a time zone (row {rows_before + i + 1}: {texts[i]!r}, row {rows_before + 1}: {texts[0]!r})",
            where=where,
            fix="write every timestamp in one convention, preferably ISO 8601 in UTC (2026-01-31T12:00:00Z)",
        )
    return DataError(
        f"timestamp column {column!r} is text ({values.type}), not a timestamp",
        where=where,
        fix=f'ingest it as the timestamp column (--timestamp-column {column}), or force its type there: column_types {{"{column}": "timestamp"}} (--column-types)',
    )


def _parses(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def check_labels(path: Path, spec: FeatureSpec, entity_type: pa.DataType) -> None:
    """The label rows: the three columns, a key of the events' key type, valid timestamps."""
    where = str(path)
    schema = read_schema(path, "labels")
    missing = [c for c in (spec.entity, spec.timestamp, spec.label) if c not in schema.names]
    if missing:
        raise DataError(f"the labels lack columns {missing}; they have {schema.names[:30]}", where=where, fix="give the labels the entity, timestamp and label columns of the dataset")
    key_type = schema.field(spec.entity).type
    if _key_kind(key_type) != _key_kind(entity_type):
        raise DataError(
            f"the labels' entity column {spec.entity!r} is {key_type}, the dataset's is {entity_type}: no label would find its features",
            where=where,
            fix="write the labels' keys with the dataset's key type",
        )
    table = pq.read_table(str(path), columns=[spec.entity])
    if table.column(0).null_count:
        row = pc.index(table.column(0).is_null(), True).as_py() + 1
        raise DataError(f"the labels' entity column {spec.entity!r} has nulls (first at row {row})", where=where, fix="drop label rows without an entity key")
    check_timestamps(path, spec.timestamp, where)


def _key_kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    return "string" if pa.types.is_string(t) or pa.types.is_large_string(t) else str(t)
