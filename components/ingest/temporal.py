"""Temporal columns: the event-time column made a real timestamp, and text parsed as dates or times.

Two jobs, both per record batch so memory stays flat:

- ``EventTime``: the column chosen as the event time becomes ``timestamp[us, tz=UTC]``
  when it is a date (midnight UTC), holds integer years (1 January of the year, UTC) or
  holds text (parsed as below), so that every later step (validation, Feast, the
  point-in-time join) sees one type.
- ``parse_text``: CSV columns forced to ``timestamp`` or ``date`` through column_types
  are read as text and parsed here, so that a value that does not parse is reported
  with its row, not as a bare Arrow conversion error.

Years outside 1678-2261 are refused: Feast materializes through pandas, whose
nanosecond timestamps cannot hold them (the same range featurize enforces).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared.errors import DataError

UTC_US = pa.timestamp("us", tz="UTC")
YEAR_MIN, YEAR_MAX = 1678, 2261
YEAR_TEXT = r"^([0-9]{4})$"
# An offset after a time of day: "Z", "+02:00", "-0500" (a date's "-01" is not one).
ZONED_TEXT = r"[T ][0-9]{2}:[0-9]{2}.*(Z|[+-][0-9]{2}:?[0-9]{2})$"
TEMPORAL_FIX_EXAMPLES = "ISO 8601 dates or times (2026-01-31, 2026-01-31T12:00:00Z) or four-digit years (1990)"


def is_temporal(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


@dataclass(frozen=True)
class EventTime:
    """How the event-time column's values become timestamps.

    Attributes:
        column: The event-time column.
        kind: ``date`` (midnight UTC), ``year`` (1 January, UTC) or ``text`` (``parse_text``).
        note: What was done, for the log, the summary and the metadata.
    """

    column: str
    kind: str
    note: str

    def convert(self, values: pa.Array, rows_before: int, where: str) -> pa.Array:
        """``values`` of one batch as ``timestamp[us, tz=UTC]``; ``rows_before`` numbers the rows in errors."""
        if self.kind == "date":
            return values.cast(pa.timestamp("us")).cast(UTC_US)
        if self.kind == "text":
            parsed, bad = parse_text(values, UTC_US)
            if bad is not None:
                raise DataError(
                    f"event time column {self.column!r} holds {str(values[bad].as_py())[:60]!r} at row {rows_before + bad + 1}, which is not a date or time",
                    where=where,
                    fix=f"write {TEMPORAL_FIX_EXAMPLES}, or pass another column as the timestamp column "
                    "(--timestamp-column, pipeline parameter timestamp_column), or --timestamp-column '' for no event time",
                )
            return parsed
        years, present = _checked_years(values, self.column, rows_before, where)
        stamps = (years - 1970).astype("datetime64[Y]").astype("datetime64[us]")
        return pa.array(stamps, mask=~present).cast(UTC_US)


def plan_event_time(column: str, values: pa.Array, where: str) -> EventTime | None:
    """How to turn the event-time ``column`` (its first batch is ``values``) into timestamps; None: as it is.

    Raises:
        DataError: the column holds numbers that are not years.
    """
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        event_time = EventTime(column, "text", f"event time column {column!r} holds text: read as dates or times in UTC (a time without a zone is taken as UTC, a year alone as 1 January)")
        event_time.convert(values, 0, where)  # a bad first batch fails before anything is written
        return event_time
    if pa.types.is_date(t):
        return EventTime(column, "date", f"event time column {column!r} holds dates: each is read as midnight UTC of that day")
    if _is_number(t):
        _checked_years(values, column, 0, where)
        return EventTime(column, "year", f"event time column {column!r} holds years ({t}): each is read as 1 January of that year, midnight UTC")
    return None


def _checked_years(values: pa.Array, column: str, rows_before: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The years (1970 where missing) and which are present; a number that is not a year is a ``DataError``."""
    numbers = values.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    present = ~np.isnan(numbers)
    bad = present & ((numbers != np.floor(numbers)) | (numbers < YEAR_MIN) | (numbers > YEAR_MAX))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"event time column {column!r} holds numbers, and {values[i].as_py()!r} at row {rows_before + i + 1} is not a year from {YEAR_MIN} to {YEAR_MAX} (numbers are read as years)",
            where=where,
            fix="pass a column of dates, times or years as the timestamp column (--timestamp-column, pipeline parameter timestamp_column), "
            "or --timestamp-column '' for no event time (rows are then split at random)",
        )
    return np.where(present, numbers, 1970).astype(np.int64), present


def parse_text(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, int | None]:
    """Text ``values`` as ``target`` (a date or timestamp type): the parsed array, or the index of the first value that does not parse.

    Accepted: ISO 8601 dates and times, and a four-digit year alone (1 January). For a
    timestamp, a value with a zone offset is converted to UTC; one without is taken as UTC.
    """
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    text = pc.replace_substring_regex(text, YEAR_TEXT, r"\1-01-01")
    try:
        return _parse(text, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for i in range(len(text)):  # only after a failure: find the first bad value
        try:
            _parse(text.slice(i, 1), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return values, i
    raise AssertionError("a batch failed to parse, but none of its values did")  # pragma: no cover


def _parse(text: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_date(target):
        return text.cast(pa.date32()).cast(target)
    zoned = pc.match_substring_regex(text, ZONED_TEXT).fill_null(False)
    missing = pa.scalar(None, pa.string())
    utc = pa.timestamp(target.unit, tz="UTC")
    with_zone = pc.if_else(zoned, text, missing).cast(utc)
    without_zone = pc.if_else(zoned, missing, text).cast(pa.timestamp(target.unit)).cast(utc)
    merged = pc.coalesce(with_zone, without_zone)
    # Without a zone in the target type, the UTC wall time is kept.
    return merged.cast(target) if target.tz else merged.cast(pa.int64()).cast(target)


def describe(target: pa.DataType) -> str:
    return "date" if pa.types.is_date(target) else "timestamp"
