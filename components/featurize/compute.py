"""Feature tables: per-entity window aggregates over event time, computed with DuckDB.

DuckDB runs the window functions out of core (it spills to disk), so the table
is computed whatever the dataset size. Rules, checked before anything is written:

- the entity and timestamp columns exist and have no nulls; timestamps are real
  timestamps (text that mixes time-zone conventions or does not parse is refused);
  timestamps without a zone are taken as UTC;
- (entity, timestamp) is unique: a repeated pair is an error, unless the caller
  asks to keep the last row of each pair in input order (``duplicates="last"``);
- every window fits in the data's time span (a longer one would make every value
  a running total over all history).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.sql import ident, literal
from kfp_mlops.components.featurize.spec import FeatureSpec, parse_duration

NUMERIC_FUNCTIONS = {"sum", "mean", "min", "max"}
OFFSET = re.compile(r"([+-]\d\d:?\d\d|Z)$")
ROW = "__row"


@dataclass(frozen=True)
class FeatureTable:
    """The computed feature table.

    Attributes:
        path: Parquet file: entity, timestamp, then every feature.
        rows: Row count.
        feature_types: Feature name to Arrow type name.
        min_timestamp: Earliest event (ISO 8601).
        max_timestamp: Latest event (ISO 8601).
        dropped_duplicates: Rows dropped by ``duplicates="last"``.
    """

    path: Path
    rows: int
    feature_types: dict[str, str]
    min_timestamp: str
    max_timestamp: str
    dropped_duplicates: int


def check_columns(schema: pa.Schema, spec: FeatureSpec, where: str) -> None:
    """Every column the spec names exists, with a type its functions accept."""
    names = set(schema.names)
    wanted = [spec.entity, spec.timestamp, spec.label, *spec.passthrough, *(a.column for a in spec.aggregates)]
    missing = [c for c in dict.fromkeys(wanted) if c not in names]
    if missing:
        raise DataError(f"columns {missing} are missing; the dataset has {schema.names[:30]}", where=where, fix="fix the feature spec or the ingest step")
    for agg in spec.aggregates:
        t = schema.field(agg.column).type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        bad = sorted(set(agg.functions) & NUMERIC_FUNCTIONS) if not numeric else []
        if bad:
            raise DataError(f"{bad} need a numeric column; {agg.column!r} is {t}", where=where, fix="use count or last for non-numeric columns")


def check_timestamps(path: Path, column: str, where: str) -> None:
    """Refuse text timestamps, naming what is wrong with them, and nulls."""
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
        rows_before += len(values)


def _text_timestamp_error(values: pa.Array, column: str, where: str, rows_before: int) -> DataError:
    texts = values.cast(pa.string()).to_pylist()
    for i, text in enumerate(texts):
        if not _parses(text):
            return DataError(
                f"timestamp column {column!r} holds {text!r} at row {rows_before + i + 1}, which is not a timestamp",
                where=where,
                fix="write ISO 8601 timestamps (2026-01-31T12:00:00Z), or force the type in ingest with column types",
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
        fix='force the column\'s type in ingest, e.g. column types {"ts": "timestamp[us, tz=UTC]"}',
    )


def _parses(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _aggregate_sql(fn: str, column: str, window_seconds: int, spec: FeatureSpec) -> str:
    over = f"OVER (PARTITION BY {ident(spec.entity)} ORDER BY {ident(spec.timestamp)} RANGE BETWEEN INTERVAL {window_seconds} SECOND PRECEDING AND CURRENT ROW)"
    col = ident(column)
    if fn == "count":
        return f"count({col}) {over}"
    if fn in ("sum", "mean"):
        return f"CAST({'sum' if fn == 'sum' else 'avg'}({col}) {over} AS DOUBLE)"
    if fn in ("min", "max"):
        return f"{fn}({col}) {over}"
    return f"last_value({col} IGNORE NULLS) {over}"


def compute_feature_table(dataset: str | Path, spec: FeatureSpec, output: str | Path, *, duplicates: str = "error") -> FeatureTable:
    """Compute the spec's features for every event of ``dataset`` into the Parquet file ``output``."""
    import duckdb

    where = str(dataset)
    if duplicates not in ("error", "last"):
        raise DataError(f"duplicates must be 'error' or 'last', not {duplicates!r}", fix="pass error or last")
    schema = pq.read_schema(str(dataset))
    check_columns(schema, spec, where)
    check_timestamps(Path(dataset), spec.timestamp, where)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TEMP VIEW src AS SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {ROW} FROM read_parquet({literal(str(dataset))}, file_row_number = true)")
        key, ts = ident(spec.entity), ident(spec.timestamp)
        nulls = con.execute(f"SELECT count(*) FILTER (WHERE {key} IS NULL) FROM src").fetchone()[0]
        if nulls:
            raise DataError(f"entity column {spec.entity!r} has {nulls:,} nulls", where=where, fix="drop rows without an entity key")
        dupes, example = con.execute(
            f"SELECT count(*) - count(DISTINCT ({key}, {ts})), min({ROW}) FILTER (WHERE n > 1) FROM (SELECT {key}, {ts}, {ROW}, count(*) OVER (PARTITION BY {key}, {ts}) AS n FROM src)"
        ).fetchone()
        if dupes and duplicates == "error":
            raise DataError(
                f"{dupes:,} rows repeat an (entity, timestamp) pair of an earlier row (first repeated pair at row {example})",
                where=where,
                fix="deduplicate upstream, or pass duplicates='last' to keep the last row of each pair in input order",
            )
        span_s = con.execute(f"SELECT epoch(max({ts})) - epoch(min({ts})) FROM src").fetchone()[0] or 0
        for agg in spec.aggregates:
            for window in agg.windows:
                if parse_duration(window, "window").total_seconds() > span_s:
                    raise DataError(
                        f"window {window} of {agg.column!r} is longer than the data's time span ({span_s / 86400:.1f} days)",
                        where=where,
                        fix="use shorter windows, or ingest a longer history",
                    )
        source = "src" if not dupes else f"(SELECT * FROM src QUALIFY row_number() OVER (PARTITION BY {key}, {ts} ORDER BY {ROW} DESC) = 1)"
        selects = [f"{key}", f"CAST({ts} AS TIMESTAMPTZ) AS {ts}"] + [ident(c) for c in spec.passthrough]
        for agg in spec.aggregates:
            for name, fn, window in agg.feature_names():
                seconds = int(parse_duration(window, "window").total_seconds())
                selects.append(f"{_aggregate_sql(fn, agg.column, seconds, spec)} AS {ident(name)}")
        query = f"SELECT {', '.join(selects)} FROM {source} ORDER BY {ts}, {key}"
        con.execute(f"COPY ({query}) TO {literal(str(output))} (FORMAT parquet, ROW_GROUP_SIZE 262144)")
    except duckdb.Error as exc:
        raise DataError(f"computing features failed: {exc}", where=where, fix="check the feature spec against the dataset's columns") from exc
    finally:
        con.close()
    out_schema = pq.read_schema(str(output))
    meta = pq.read_metadata(str(output))
    stats = _time_range(Path(output), spec.timestamp)
    return FeatureTable(
        path=Path(output),
        rows=meta.num_rows,
        feature_types={f.name: str(f.type) for f in out_schema if f.name not in (spec.entity, spec.timestamp)},
        min_timestamp=stats[0],
        max_timestamp=stats[1],
        dropped_duplicates=int(dupes),
    )


def time_span(path: str | Path, column: str) -> dt.timedelta | None:
    """Latest minus earliest value of a timestamp column (None if it is not a timestamp column)."""
    values = pq.read_table(str(path), columns=[column]).column(0)
    if not pa.types.is_timestamp(values.type) or values.null_count == len(values):
        return None
    mm = pc.min_max(values.cast(pa.timestamp("us", tz=values.type.tz), safe=False))
    return mm["max"].as_py() - mm["min"].as_py()


def _time_range(path: Path, column: str) -> tuple[str, str]:
    values = pq.read_table(str(path), columns=[column]).column(0)
    mm = pc.min_max(values)
    return mm["min"].as_py().isoformat(), mm["max"].as_py().isoformat()
