"""The prediction log's writers: records queued off the request path, written as Parquet batches.

``prediction_log`` is the public face (it re-exports ``PredictionLogger`` and
``ErrorLogger``); the records, the reading and the joining live there.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import operator
import threading
import time
import weakref
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import pyarrow as pa

from kfp_mlops.components._shared import prediction_log_io as plio
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.prediction_log_io import ERROR_SCHEMA, PREDICTION_SCHEMA
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.components._shared.storage import objects

if TYPE_CHECKING:
    from kfp_mlops.components._shared.prediction_log import PredictionRecord

log = logging.getLogger("kfp_mlops.components._shared.prediction_log")  # one logger name for the whole log
WARN_EVERY_S = 60.0


class PredictionLogger:
    """Writes ``PredictionRecord``s to a sink in Parquet batches, off the request path.

    ``log`` only puts the record on a bounded queue; one daemon thread writes a
    file when ``batch_rows`` are queued or ``flush_s`` has passed. When the queue
    is full (a slow or stalled store) records are dropped and counted, never
    waited for. A failed write is retried ``write_attempts`` times in all, then
    the batch is dropped and counted; failures are logged at most once a minute.

    Counters (read them any time): ``dropped`` records refused by ``log`` (queue
    full or logger closed); ``written`` rows persisted; ``failed_batches`` /
    ``failed_rows`` given up after retries; ``rejected`` records that could not be
    encoded (a field of the wrong type), skipped without losing their batch.

    Args:
        sink: Local folder or s3:// / gs:// prefix (checked here; a local folder is created).
        batch_rows: Most rows per file.
        flush_s: Longest a record waits in the queue before its batch is written.
        queue_size: Most records waiting; beyond it ``log`` drops.
        write_attempts: Tries per file before the batch is dropped.
        retry_delay_s: Pause before the second try; doubles per try.
        put: Writes one object (uri, bytes); defaults to the object-store adapter.

    Raises:
        UnsupportedSourceError, SourceNotFoundError: the sink URI is not usable (the message says why).
        SourceAccessDeniedError: a local sink folder cannot be created.
    """

    KIND = plio.PREDICTIONS
    SCHEMA = PREDICTION_SCHEMA

    def __init__(
        self,
        sink: str,
        *,
        batch_rows: int = 1000,
        flush_s: float = 5.0,
        queue_size: int = 10000,
        write_attempts: int = 3,
        retry_delay_s: float = 0.5,
        put: Callable[[str, bytes], None] | None = None,
    ) -> None:
        for name, value in (("batch_rows", batch_rows), ("queue_size", queue_size), ("write_attempts", write_attempts)):
            if not isinstance(value, int) or value < 1:
                raise DataError(f"{name} must be a whole number >= 1, got {value!r}", where="PredictionLogger", fix=f"pass {name}=1 or more")
        if not (flush_s > 0 and math.isfinite(flush_s)) or retry_delay_s < 0:
            raise DataError(f"flush_s must be > 0 and retry_delay_s >= 0, got {flush_s!r} and {retry_delay_s!r}", where="PredictionLogger", fix="pass positive seconds")
        self._sink = plio.parse_sink(sink)
        if self._sink.scheme == "":
            plio.make_local_folder(self._sink.folder(self.KIND))
            plio.remove_stale_temporaries(self._sink.folder(self.KIND))
        self.sink = self._sink.shown
        plio.warm_up(self.SCHEMA)
        self.batch_rows, self.flush_s = batch_rows, flush_s
        self.write_attempts, self.retry_delay_s = write_attempts, retry_delay_s
        self.dropped = self.written = self.failed_batches = self.failed_rows = self.rejected = 0
        self._put = put
        self._client: Any = None
        # A deque, not a queue.Queue: append and popleft are atomic under the GIL and take no lock,
        # which the request path (and the writer, row by row) would otherwise pay for each record.
        self._queue: collections.deque[tuple[Any, ...]] = collections.deque()
        self.queue_size = queue_size
        # Queued as plain tuples: the garbage collector stops tracking a tuple of strings, numbers
        # and datetimes, so a full queue does not make every collection walk thousands of records.
        self._as_row = operator.attrgetter(*self.SCHEMA.names)
        self._counter_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._last_warning = -math.inf
        self._unreported_failures = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()
        _OPEN_LOGGERS.add(self)

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record``; never blocks or raises. False (and counted in ``dropped``) when full or closed."""
        if not self._closed and len(self._queue) < self.queue_size:
            try:
                self._queue.append(self._as_row(record))
                return True
            except AttributeError:  # not a record of this logger's kind: skipped, as a record with a bad field is
                with self._counter_lock:
                    self.rejected += 1
                return False
        with self._counter_lock:
            self.dropped += 1
        return False

    @property
    def queued(self) -> int:
        """Records waiting to be written."""
        return len(self._queue)

    def flush(self) -> None:
        """Write everything queued now, in the caller's thread (tests, shutdown)."""
        self._drain()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop accepting records, write what is queued and stop the writer (waits up to ``timeout_s``)."""
        if self._closed:
            return
        self._closed = True
        _OPEN_LOGGERS.discard(self)
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning(
                "prediction log %s: the writer did not finish within %.0fs; %d queued predictions may be lost",
                self.sink, timeout_s, len(self._queue),
            )  # fmt: skip

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        # Polls rather than waking on every put: a wake-up per request would cost the request path.
        poll_s = min(self.flush_s, 0.1)
        deadline = time.monotonic() + self.flush_s
        while not self._stop.wait(poll_s):
            if len(self._queue) >= self.batch_rows or time.monotonic() >= deadline:
                self._drain_guarded()
                deadline = time.monotonic() + self.flush_s
        self._drain_guarded()

    def _drain_guarded(self) -> None:
        try:
            self._drain()
        except Exception as exc:  # noqa: BLE001 - a dead writer would silently stop the log
            self._report_failure(exc)

    def _drain(self) -> None:
        with self._write_lock:
            # Only what is queued now: under steady load a flush() must still end.
            remaining = len(self._queue)
            while remaining > 0:
                batch: list[tuple[Any, ...]] = []
                take = self._queue.popleft
                while len(batch) < min(self.batch_rows, remaining):
                    try:
                        batch.append(take())
                    except IndexError:
                        break
                if not batch:
                    return
                remaining -= len(batch)
                self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Any, ...]]) -> None:
        try:
            table = self._encode(batch)
            parts = plio.split_by_day(table)
        except Exception as exc:  # noqa: BLE001 - the writer thread must survive anything
            self._report_failure(exc)
            with self._counter_lock:
                self.failed_batches += 1
                self.failed_rows += len(batch)
            return
        now = datetime.now(timezone.utc)
        for day, part in parts:
            uri = plio.part_uri(self._sink, self.KIND, day, now)
            if self._write_with_retries(uri, part):
                with self._counter_lock:
                    self.written += part.num_rows
            else:
                with self._counter_lock:
                    self.failed_batches += 1
                    self.failed_rows += part.num_rows

    def _encode(self, batch: list[tuple[Any, ...]]) -> pa.Table:
        table, rejected = plio.encode_rows(batch, self.SCHEMA)
        if rejected:
            with self._counter_lock:
                self.rejected += rejected
            self._report_failure(DataError(f"{rejected} prediction records could not be encoded (a field of the wrong type) and were skipped"))
        return table

    def _write_with_retries(self, uri: str, part: pa.Table) -> bool:
        for attempt in range(1, self.write_attempts + 1):
            try:
                self._write(uri, plio.to_parquet_bytes(part))
                return True
            except Exception as exc:  # noqa: BLE001 - any failure of the store is retried, then counted
                self._report_failure(exc)
                if attempt < self.write_attempts:
                    # On close the stop event cuts the pause short: retries continue, faster.
                    self._stop.wait(self.retry_delay_s * 2 ** (attempt - 1))
        return False

    def _write(self, uri: str, data: bytes) -> None:
        if self._put is not None:
            self._put(uri, data)
            return
        if self._client is None and self._sink.scheme:
            self._client = objects.client_for(self._sink.root)
        objects.put_object(uri, data, client=self._client)

    def _report_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning < WARN_EVERY_S:
            self._unreported_failures += 1
            return
        earlier = f" ({self._unreported_failures} more failures since the last message)" if self._unreported_failures else ""
        self._last_warning, self._unreported_failures = now, 0
        log.warning(
            "prediction log %s: %s%s (totals: %d batches / %d rows given up, %d records dropped, %d rejected)",
            self.sink, redact_text(str(exc)), earlier, self.failed_batches, self.failed_rows, self.dropped, self.rejected,
        )  # fmt: skip


class ErrorLogger(PredictionLogger):
    """A ``PredictionLogger`` for ``ErrorRecord``s (written under ``errors/``), with the same guarantees."""

    KIND = plio.ERRORS
    SCHEMA = ERROR_SCHEMA


# A server that never calls close() still writes its queue at a normal interpreter exit
# (atexit runs while daemon threads are alive); a SIGKILL loses at most the queue.
_OPEN_LOGGERS: weakref.WeakSet[PredictionLogger] = weakref.WeakSet()


@atexit.register
def _close_open_loggers() -> None:
    for logger in list(_OPEN_LOGGERS):
        logger.close(timeout_s=5.0)
