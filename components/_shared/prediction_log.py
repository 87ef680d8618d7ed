"""The prediction log: every answered prediction, written off the request path, and outcomes.

The one typed contract for the prediction-log artifact kind. The model server logs
a ``PredictionRecord`` per prediction through a ``PredictionLogger`` (a bounded
queue and one writer thread that writes Parquet files in batches) and hands the
labels that arrive later to ``write_feedback``. Monitoring and the A/B analysis
read both back with ``read_predictions``, ``read_feedback`` and ``join_outcomes``
and use the column names in ``Columns``; nobody else spells them.

A sink is a local folder (``/path``, ``file:///path``, or a relative path,
resolved against the working directory when the sink is checked) or an
object-store prefix (``s3://bucket/prefix``, ``gs://bucket/prefix``). The file
layout is in ``prediction_log_io``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared import prediction_log_io as plio
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.prediction_log_io import (
    ERROR_SCHEMA,
    FEEDBACK_SCHEMA,
    PREDICTION_SCHEMA,
)
from kfp_mlops.components._shared.prediction_log_writer import ErrorLogger, PredictionLogger
from kfp_mlops.components._shared.storage import objects

log = logging.getLogger(__name__)

UNMATCHED_KEY = b"kfp_mlops.unmatched_outcomes"
__all__ = [
    "ERROR_SCHEMA", "FEEDBACK_SCHEMA", "PREDICTION_SCHEMA", "Columns", "ErrorLogger", "ErrorRecord", "Outcome", "PredictionLogger",
    "PredictionRecord", "join_outcomes", "read_errors", "read_feedback", "read_predictions", "unmatched_outcomes", "write_feedback",
]  # fmt: skip


class Columns:
    """Column names of the tables this module returns."""

    REQUEST_ID = "request_id"
    TIME = "time"
    ARM = "arm"
    MODEL_NAME = "model_name"
    MODEL_VERSION = "model_version"
    FEATURES = "features"
    PREDICTION = "prediction"
    SCORE = "score"
    LATENCY_MS = "latency_ms"
    ROUTING_KEY = "routing_key"
    OUTCOME = "outcome"  # feedback tables and join_outcomes
    OUTCOME_TIME = "outcome_time"  # join_outcomes: the time of the outcome that won
    STATUS = "status"  # error tables: the HTTP status the server answered


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One answered prediction.

    Attributes:
        request_id: The id the server answered with; outcomes are joined on it.
        time: When it was answered, timezone-aware UTC (a naive time is taken as UTC).
        arm: The A/B arm (deployment variant) that answered.
        model_name: Registered model name.
        model_version: Registered model version.
        features: JSON object of the row's feature values as scored.
        prediction: Class label text, or the regression value as text.
        score: Regression value; positive-class probability (binary); predicted-class probability (multiclass).
        latency_ms: Time the server spent on the request.
        routing_key: What the splitter routed on (empty when random).
    """

    request_id: str
    time: datetime
    arm: str
    model_name: str
    model_version: str
    features: str
    prediction: str
    score: float
    latency_ms: float
    routing_key: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """The observed outcome (label) of one request, reported later.

    Attributes:
        request_id: The request it belongs to.
        outcome: The label as text (class label, or the value as text).
        time: When it was observed, timezone-aware UTC; the latest outcome per request wins.
    """

    request_id: str
    outcome: str
    time: datetime


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A request the server failed (HTTP status >= 500): what the error-rate guardrail counts.

    Attributes:
        request_id, time, arm, model_name, model_version, routing_key: as in ``PredictionRecord``.
        status: The HTTP status answered.
    """

    request_id: str
    time: datetime
    arm: str
    model_name: str
    model_version: str
    status: int
    routing_key: str


def write_feedback(sink: str, outcomes: list[Outcome], *, client: Any = None) -> int:
    """Persist outcomes (one Parquet file per UTC date); returns how many were written.

    ``client``: an object-store client from ``objects.client_for`` for the sink's store, reused
    by callers that write often; None makes one for this call.

    Raises:
        DataError: an outcome has no request id or time, or a field of the wrong type.
        SourceError: the store refused or failed the write.
    """
    checked = plio.parse_sink(sink)
    if not outcomes:
        return 0
    for index, item in enumerate(outcomes):
        if not (isinstance(item, Outcome) and isinstance(item.request_id, str) and item.request_id and isinstance(item.outcome, str) and isinstance(item.time, datetime)):
            raise DataError(
                "an outcome needs a non-empty request_id, the outcome as text and a datetime time",
                where=f"outcomes[{index}] = {item!r}"[:300],
                fix="pass Outcome(request_id=..., outcome=str(label), time=datetime.now(timezone.utc)); nothing was written",
            )
    table = plio.rows_table(outcomes, FEEDBACK_SCHEMA)
    if client is None:
        client = objects.client_for(checked.root)
    written = plio.write_partitioned(checked, plio.FEEDBACK, table, lambda uri, data: objects.put_object(uri, data, client=client), datetime.now(timezone.utc))
    return sum(rows for _, rows in written)


def read_predictions(sink: str, *, since: datetime | None = None, until: datetime | None = None, arm: str | None = None) -> pa.Table:
    """Logged predictions with ``since <= time < until`` (either may be None), of one ``arm`` if given.

    Returns a table with ``PREDICTION_SCHEMA``, sorted by time (empty when nothing was logged).

    Raises:
        DataError: a naive since/until, or a log file that is not readable (the message names it).
        SourceError: the store could not be listed or read.
    """
    window = plio.require_utc(since, "since"), plio.require_utc(until, "until")
    table = plio.read_kind(plio.parse_sink(sink), plio.PREDICTIONS, PREDICTION_SCHEMA, since=window[0], until=window[1])
    if arm is not None:
        table = table.filter(pc.equal(table.column(Columns.ARM), pa.scalar(arm, pa.string())))
    return table


def read_errors(sink: str, *, since: datetime | None = None, until: datetime | None = None) -> pa.Table:
    """Logged server errors with ``since <= time < until``, with ``ERROR_SCHEMA``, sorted by time."""
    window = plio.require_utc(since, "since"), plio.require_utc(until, "until")
    return plio.read_kind(plio.parse_sink(sink), plio.ERRORS, ERROR_SCHEMA, since=window[0], until=window[1])


def read_feedback(sink: str) -> pa.Table:
    """Every outcome written to ``sink``, with ``FEEDBACK_SCHEMA``, sorted by time (duplicates kept)."""
    return plio.read_kind(plio.parse_sink(sink), plio.FEEDBACK, FEEDBACK_SCHEMA)


def join_outcomes(predictions: pa.Table, outcomes: pa.Table) -> pa.Table:
    """``predictions`` with ``outcome`` and ``outcome_time`` columns (null where none arrived).

    A left join on ``request_id``, in the order of ``predictions``. Per request id
    the outcome with the latest ``time`` wins (without a ``time`` column, the last
    row). ``outcomes`` may be ``read_feedback``'s table or a user's table with
    ``request_id`` and ``outcome`` (any type; compared as text) and an optional
    ``time``. Outcomes whose request id is not among the predictions are ignored and
    counted: ``unmatched_outcomes(result)``.

    Raises:
        DataError: a required column is missing or cannot be converted.
    """
    joined, unmatched = plio.join_latest(predictions, outcomes)
    if unmatched:
        log.info("join_outcomes: %d outcomes name request ids with no logged prediction; ignored", unmatched)
    metadata = {**(joined.schema.metadata or {}), UNMATCHED_KEY: str(unmatched).encode()}
    return joined.replace_schema_metadata(metadata)


def unmatched_outcomes(joined: pa.Table) -> int:
    """How many outcomes ``join_outcomes`` ignored because no prediction had their request id."""
    value = (joined.schema.metadata or {}).get(UNMATCHED_KEY)
    if value is None:
        raise DataError("the table did not come from join_outcomes", fix="pass join_outcomes' result")
    return int(value)
