"""Feature tables: per-entity window aggregates over event time, computed with DuckDB.

DuckDB runs the window functions out of core (it spills to disk), so the table
is computed whatever the dataset size. Rules, checked before anything is written:

- the entity and timestamp columns exist and have no nulls; timestamps are real
  timestamps (text that mixes time-zone conventions or does not parse is refused);
  timestamps without a zone are taken as UTC;
- (entity, timestamp) is unique: a repeated pair is an error, unless the caller
  asks to keep the last row of each pair in input order (``duplicates="last"``);
- every window fits in the data's time span (a longer one would make every value
  a running total over all history);
- keys, feature types and timestamp ranges are ones Feast stores unchanged (``checks.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.featurize.checks import INT64_MAX, check_columns, check_timestamps, read_schema
from kfp_mlops.components.featurize.spec import FeatureSpec, parse_duration
from kfp_mlops.components.featurize.sql import ident, literal

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


def _value_sql(column: str, t: pa.DataType) -> str:
    # Feast has no decimal type: decimals are served as doubles, so compute them as doubles.
    return f"CAST({ident(column)} AS DOUBLE)" if pa.types.is_decimal(t) else ident(column)


def _aggregate_sql(fn: str, column: str, t: pa.DataType, window_seconds: int, spec: FeatureSpec) -> str:
    over = f"OVER (PARTITION BY {ident(spec.entity)} ORDER BY {ident(spec.timestamp)} RANGE BETWEEN INTERVAL {window_seconds} SECOND PRECEDING AND CURRENT ROW)"
    if fn == "count":
        return f"count({ident(column)}) {over}"
    col = _value_sql(column, t)
    if fn in ("sum", "mean"):
        if pa.types.is_boolean(t):  # DuckDB has no sum/avg of booleans: count and share of trues
            col = f"CAST({col} AS INTEGER)"
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
    schema = read_schema(dataset)
    check_columns(schema, spec, where)
    if pq.read_metadata(str(dataset)).num_rows == 0:
        raise DataError("the dataset has no rows", where=where, fix="check the ingest step's source and filters")
    check_timestamps(Path(dataset), spec.timestamp, where)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TEMP VIEW src AS SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS {ROW} FROM read_parquet({literal(str(dataset))}, file_row_number = true)")
        key, ts = ident(spec.entity), ident(spec.timestamp)
        nulls = con.execute(f"SELECT count(*) FILTER (WHERE {key} IS NULL) FROM src").fetchone()[0]
        if nulls:
            raise DataError(f"entity column {spec.entity!r} has {nulls:,} nulls", where=where, fix="drop rows without an entity key")
        _check_uint64(con, schema, spec, where)
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
        selects = [f"{key}", f"CAST({ts} AS TIMESTAMPTZ) AS {ts}"] + [f"{_value_sql(c, schema.field(c).type)} AS {ident(c)}" for c in spec.passthrough]
        for agg in spec.aggregates:
            for name, fn, window in agg.feature_names():
                seconds = int(parse_duration(window, "window").total_seconds())
                selects.append(f"{_aggregate_sql(fn, agg.column, schema.field(agg.column).type, seconds, spec)} AS {ident(name)}")
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


def _check_uint64(con, schema: pa.Schema, spec: FeatureSpec, where: str) -> None:
    """Feast stores integers as int64: a uint64 key or served value above its maximum cannot go in."""
    used = [spec.entity, *spec.passthrough, *(a.column for a in spec.aggregates if set(a.functions) & {"min", "max", "last"})]
    for column in dict.fromkeys(used):
        if schema.field(column).type != pa.uint64():
            continue
        over, row = con.execute(f"SELECT count(*), min({ROW}) FROM src WHERE {ident(column)} > {INT64_MAX}").fetchone()
        if over:
            raise DataError(
                f"column {column!r} holds {over:,} values above {INT64_MAX:,} (first at row {row}), more than Feast's int64 can store",
                where=where,
                fix="cast the column to string in ingest if it is an identifier, or to double if it is a quantity",
            )


def time_span(path: str | Path, column: str) -> dt.timedelta | None:
    """Latest minus earliest value of a timestamp column (None if it is not a usable timestamp column;
    ``compute_feature_table`` then says what is wrong with it)."""
    try:
        values = pq.read_table(str(path), columns=[column]).column(0)
        if pa.types.is_date(values.type):
            values = values.cast(pa.timestamp("us"))
        if not pa.types.is_timestamp(values.type) or values.null_count == len(values):
            return None
        mm = pc.min_max(values.cast(pa.timestamp("us", tz=values.type.tz), safe=False))
        return mm["max"].as_py() - mm["min"].as_py()
    except (pa.ArrowException, OverflowError, ValueError):
        return None


def one_row_per_entity(path: str | Path, entity: str) -> bool:
    """Whether every entity has exactly one row (a plain table: window aggregates would only copy each value)."""
    keys = pq.read_table(str(path), columns=[entity]).column(0)
    return pc.count_distinct(keys, mode="all").as_py() == len(keys)


def _time_range(path: Path, column: str) -> tuple[str, str]:
    values = pq.read_table(str(path), columns=[column]).column(0)
    mm = pc.min_max(values)
    return mm["min"].as_py().isoformat(), mm["max"].as_py().isoformat()
