"""Files of the prediction log: the sink URI, the schemas, the layout, encoding and reading.

Layout under a sink (a local folder or an s3:// / gs:// prefix)::

    <sink>/predictions/date=YYYY-MM-DD/part-<UTC time>-<uuid>.parquet
    <sink>/feedback/date=YYYY-MM-DD/part-<UTC time>-<uuid>.parquet

Only names of that form are read: the hidden temporaries of an atomic local
write, a user's notes or a ``_SUCCESS`` marker are skipped. ``prediction_log``
is the public face; this module is its plumbing.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import (
    DataError,
    SourceAccessDeniedError,
    UnsupportedSourceError,
)
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components._shared.storage import GLOB_CHARS, objects, parse_object_uri
from kfp_mlops.components._shared.storage.local import to_path

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
TIME_TYPE = pa.timestamp("us", tz="UTC")
PREDICTION_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time", TIME_TYPE),
        ("arm", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("features", pa.string()),
        ("prediction", pa.string()),
        ("score", pa.float64()),
        ("latency_ms", pa.float64()),
        ("routing_key", pa.string()),
    ]
)
FEEDBACK_SCHEMA = pa.schema([("request_id", pa.string()), ("outcome", pa.string()), ("time", TIME_TYPE)])
ERRORS = "errors"
# A request the server failed (status >= 500): the arm's error rate is errors / (predictions + errors).
ERROR_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("time", TIME_TYPE),
        ("arm", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("status", pa.int32()),
        ("routing_key", pa.string()),
    ]
)
PART_NAME = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/part-[^/]+\.parquet$")
READ_THREADS = 8
US_PER_DAY = 86_400_000_000
USAGE = "use a local folder (/path or file:///path), s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"


@dataclass(frozen=True, slots=True)
class Sink:
    """A checked sink: ``root`` is an absolute local folder or ``scheme://bucket[/prefix]``."""

    root: str
    scheme: str  # "" for local

    @property
    def shown(self) -> str:
        return redact_uri(self.root)

    def folder(self, kind: str) -> str:
        return f"{self.root}/{kind}"


def parse_sink(uri: str) -> Sink:
    """Check a sink URI and normalise it; relative local paths resolve against the working directory.

    Raises:
        UnsupportedSourceError: empty, an unknown scheme, a glob, a query, a host in a file:// URI,
            or credentials in the URI.
        SourceNotFoundError: an object-store URI without a bucket.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise UnsupportedSourceError("no prediction-log sink given", fix=USAGE)
    uri = uri.strip()
    shown = redact_uri(uri)
    scheme = objects.scheme_of(uri)  # raises for http://, ftp://, ...
    if scheme and ("?" in uri or "#" in uri):
        raise UnsupportedSourceError("a prediction-log sink cannot have a query or fragment", where=shown, fix=USAGE)
    if GLOB_CHARS & set(uri):
        raise UnsupportedSourceError("a prediction-log sink cannot contain glob characters (* ? [)", where=shown, fix=USAGE)
    if scheme == "":
        parsed = urlparse(uri)
        if uri.lower().startswith("file://") and parsed.netloc not in ("", "localhost"):
            raise UnsupportedSourceError(f"file:// URI names a host ({parsed.netloc!r})", where=shown, fix="write file:///absolute/path (three slashes)")
        return Sink(root=os.path.abspath(to_path(uri)).rstrip("/") or "/", scheme="")
    ref = parse_object_uri(uri)  # raises for a missing bucket or credentials in the URI
    key = ref.key.strip("/")
    return Sink(root=f"{scheme}://{ref.bucket}" + (f"/{key}" if key else ""), scheme=scheme)


def part_uri(sink: Sink, kind: str, day: date, now: datetime) -> str:
    """A new, unique file name in ``kind``'s partition for ``day``."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{sink.folder(kind)}/date={day.isoformat()}/part-{stamp}-{uuid.uuid4().hex}.parquet"


def to_parquet_bytes(table: pa.Table) -> bytes:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue().to_pybytes()


def split_by_day(table: pa.Table, time_column: str = "time") -> list[tuple[date, pa.Table]]:
    """The rows of ``table`` grouped by their UTC date (one group in the common case)."""
    if table.num_rows == 0:
        return []
    times = table.column(time_column)
    low, high = pc.min_max(times).values()
    if low.as_py().date() == high.as_py().date():
        return [(low.as_py().date(), table)]
    days = pc.floor(pc.divide(pc.cast(pc.cast(times, pa.int64()), pa.float64()), float(US_PER_DAY)))
    parts = []
    for day_number in sorted(pc.unique(days).to_pylist()):
        day = datetime.fromtimestamp(day_number * 86_400, tz=timezone.utc).date()
        parts.append((day, table.filter(pc.equal(days, day_number))))
    return parts


def write_partitioned(sink: Sink, kind: str, table: pa.Table, put: Callable[[str, bytes], None], now: datetime) -> list[tuple[str, int]]:
    """Write ``table`` as one file per UTC date; returns (uri, rows) of each file written."""
    written = []
    for day, part in split_by_day(table):
        uri = part_uri(sink, kind, day, now)
        put(uri, to_parquet_bytes(part))
        written.append((uri, part.num_rows))
    return written


def require_utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC; a naive datetime is refused (it would be read as UTC, silently)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise DataError(
            f"{name} is a naive datetime",
            where=f"{name}={value.isoformat()}",
            fix="pass a timezone-aware time, e.g. datetime.now(timezone.utc) or datetime(..., tzinfo=timezone.utc)",
        )
    return value.astimezone(timezone.utc)


def read_kind(
    sink: Sink,
    kind: str,
    schema: pa.Schema,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    """Every row of ``kind`` under ``sink`` with since <= time < until, sorted by time.

    Raises:
        DataError: a log file is not readable Parquet or lacks a column.
        SourceError: the store could not be listed or read.
    """
    client = objects.client_for(sink.root)
    uris = part_uris(sink, kind, since=since, until=until, client=client)
    if sink.scheme and len(uris) > 1:
        # Object stores answer one small GET at a time slowly; a few in flight hide the latency.
        with ThreadPoolExecutor(READ_THREADS) as pool:
            tables = list(pool.map(lambda u: _read_file(u, schema, client), uris))
    else:
        tables = [_read_file(u, schema, client) for u in uris]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    mask = None
    if since is not None:
        mask = pc.greater_equal(table.column("time"), pa.scalar(since, TIME_TYPE))
    if until is not None:
        before = pc.less(table.column("time"), pa.scalar(until, TIME_TYPE))
        mask = before if mask is None else pc.and_(mask, before)
    if mask is not None:
        table = table.filter(mask)
    return table.sort_by("time") if table.num_rows > 1 else table


def part_uris(sink: Sink, kind: str, *, since: datetime | None = None, until: datetime | None = None, client: Any = None) -> list[str]:
    """The part files of ``kind`` whose date partition overlaps [since, until] (rows still need filtering by time)."""
    client = client if client is not None else objects.client_for(sink.root)
    return [u for u in objects.list_objects(sink.folder(kind), client=client) if _in_window(u, since, until)]


def _in_window(uri: str, since: datetime | None, until: datetime | None) -> bool:
    match = PART_NAME.search(uri)
    if match is None:
        return False
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:  # a folder named like a part but not a date (date=2026-13-45): not ours
        return False
    if since is not None and day < since.date():
        return False
    return until is None or day <= until.date()


def _read_file(uri: str, schema: pa.Schema, client: Any) -> pa.Table:
    shown = redact_uri(uri)
    fix = "move the file out of the log folder (or restore it); every part-*.parquet file under date=... folders is read"
    try:
        source: Any = to_path(uri) if objects.scheme_of(uri) == "" else io.BytesIO(objects.get_object(uri, client=client))
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file ({exc})", where=shown, fix=fix) from exc
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise DataError(f"not a prediction-log file: columns {missing} are missing", where=shown, fix=fix)
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"a column has the wrong type ({exc})", where=shown, fix=fix) from exc


def make_local_folder(folder: str) -> None:
    """Create a local sink folder now, so that a server with an unusable sink fails at start."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceAccessDeniedError(
            f"cannot create the prediction-log folder ({exc.strerror})",
            where=folder,
            fix="choose a folder the server may write to, or fix the permissions",
        ) from exc


def remove_stale_temporaries(folder: str, *, older_than_s: float = 3600.0) -> int:
    """Delete the hidden temporaries that killed writers left in a local log folder; returns how many.

    Only old ones: a fresh temporary may belong to another live process writing to the same sink.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    for stale in Path(folder).glob(f"date=*/.part-*{objects.TEMP_SUFFIX}"):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
                removed += 1
        except OSError:
            pass  # gone already, or not ours to delete: readers skip it anyway
    return removed


def encode_rows(rows: Sequence[Any], schema: pa.Schema) -> tuple[pa.Table, int]:
    """A table of ``rows`` (objects with an attribute per field) and how many were skipped.

    A row is skipped when a field has the wrong type or its time is missing; the
    rest of its batch is kept (encoded one by one only when the fast path fails).
    """
    try:
        table = rows_table(rows, schema)
        if table.column("time").null_count == 0:
            return table, 0
    except (pa.ArrowException, TypeError, ValueError, AttributeError):
        pass
    good = []
    for row in rows:
        try:
            one = rows_table([row], schema)
        except (pa.ArrowException, TypeError, ValueError, AttributeError):
            continue
        if one.column("time").null_count == 0:
            good.append(one)
    return (pa.concat_tables(good) if good else schema.empty_table()), len(rows) - len(good)


def warm_up(schema: pa.Schema) -> None:
    """Pay pyarrow's one-off costs now: its first ``pa.array`` from a list imports pandas
    (~0.4 s of CPU, holding the GIL), which in the writer thread would stall serving."""
    row = {f.name: (datetime.now(timezone.utc) if f.name == "time" else 0.0 if pa.types.is_floating(f.type) else 0 if pa.types.is_integer(f.type) else "") for f in schema}
    to_parquet_bytes(pa.Table.from_arrays([pa.array([row[f.name]], type=f.type) for f in schema], schema=schema))


def rows_table(rows: Sequence[Any], schema: pa.Schema) -> pa.Table:
    """A table of ``rows``: objects with an attribute per field, or tuples in the schema's order."""
    if rows and isinstance(rows[0], tuple):
        columns = list(zip(*rows)) if len(rows[0]) == len(schema) else None
        if columns is None:
            raise ValueError(f"rows have {len(rows[0])} values, the schema {len(schema)} fields")
        arrays = [pa.array(values, type=field.type) for values, field in zip(columns, schema)]
    else:
        arrays = [pa.array([getattr(r, field.name) for r in rows], type=field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def join_latest(predictions: pa.Table, outcomes: pa.Table) -> tuple[pa.Table, int]:
    """``predictions`` (in order) with outcome and outcome_time from ``latest_outcomes``, and the
    number of outcomes whose request id has no prediction."""
    if "request_id" not in predictions.column_names:
        raise DataError(
            "the predictions table has no request_id column",
            where=f"columns {predictions.column_names}",
            fix="pass the table read_predictions returns",
        )
    latest = latest_outcomes(outcomes)
    prediction_ids = pc.cast(predictions.column("request_id"), pa.string())
    known = pc.is_in(latest.column("request_id"), value_set=prediction_ids)
    unmatched = latest.num_rows - int(pc.sum(pc.cast(known, pa.int64())).as_py() or 0)
    order = "__prediction_row"
    left = predictions.append_column(order, pa.array(range(predictions.num_rows), pa.int64()))
    left = left.set_column(left.schema.get_field_index("request_id"), "request_id", prediction_ids)
    joined = left.join(latest, keys="request_id", join_type="left outer", use_threads=False)
    joined = joined.sort_by(order).select([*predictions.column_names, "outcome", "outcome_time"])
    return joined.replace_schema_metadata(predictions.schema.metadata), unmatched


def latest_outcomes(outcomes: pa.Table) -> pa.Table:
    """One row per request id (request_id, outcome, outcome_time): the latest by time, else the last.

    Accepts ``read_feedback``'s table or a user's table with request_id and outcome
    (any type, turned into text) and an optional time; rows without a request id are dropped.

    Raises:
        DataError: a column is missing or cannot be converted.
    """
    names = outcomes.column_names
    missing = [c for c in ("request_id", "outcome") if c not in names]
    if missing:
        raise DataError(f"the outcomes table lacks {missing}", where=f"columns {names}", fix="pass a table with request_id and outcome columns (time optional)")
    ids = _converted(outcomes, "request_id", pa.string())
    values = _converted(outcomes, "outcome", pa.string())
    times = _converted(outcomes, "time", TIME_TYPE) if "time" in names else pa.nulls(outcomes.num_rows, TIME_TYPE)
    rows = pa.table({"request_id": ids, "outcome": values, "outcome_time": times, "row": pa.array(range(outcomes.num_rows), pa.int64())})
    rows = rows.filter(pc.is_valid(rows.column("request_id")))
    # A null time sorts first: any timed outcome is taken as later than an untimed one.
    # (A filled key rather than null_placement, whose spelling changed across pyarrow versions.)
    time_key = pc.fill_null(pc.cast(rows.column("outcome_time"), pa.int64()), -(2**63))
    order = pc.sort_indices(
        rows.append_column("time_key", time_key),
        sort_keys=[("request_id", "ascending"), ("time_key", "ascending"), ("row", "ascending")],
    )
    rows = rows.take(order)
    sorted_ids = rows.column("request_id").combine_chunks()
    if len(sorted_ids) == 0:
        return rows.drop_columns(["row"])
    following = pa.concat_arrays([sorted_ids.slice(1), pa.nulls(1, pa.string())])
    last_of_run = pc.fill_null(pc.not_equal(sorted_ids, following), True)
    return rows.filter(last_of_run).drop_columns(["row"])


def _converted(table: pa.Table, name: str, target: pa.DataType) -> pa.ChunkedArray:
    column = table.column(name)
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is None:
        column = pc.assume_timezone(column, "UTC")  # a naive timestamp column is taken as UTC
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"outcomes column {name!r} ({column.type}) cannot be read as {target}: {exc}", fix=f"make {name!r} {target}") from exc
