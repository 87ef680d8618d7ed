"""The prediction log on real folders, a real S3 server (moto) and the GCS emulator."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError, SourceError, UnsupportedSourceError
from kfp_mlops.components._shared.prediction_log import (
    PREDICTION_SCHEMA,
    Columns,
    Outcome,
    PredictionLogger,
    PredictionRecord,
    join_outcomes,
    read_feedback,
    read_predictions,
    unmatched_outcomes,
    write_feedback,
)
from kfp_mlops.components._shared.storage import objects

T0 = datetime(2026, 3, 1, 23, 58, tzinfo=timezone.utc)


def record(i: int, *, when: datetime = T0, arm: str = "champion") -> PredictionRecord:
    return PredictionRecord(
        request_id=f"req-{i}", time=when, arm=arm, model_name="churn", model_version="3",
        features=json.dumps({"amount": i * 1.5, "country": "DE"}), prediction="yes" if i % 2 else "no",
        score=i / 1000, latency_ms=2.5, routing_key=f"user-{i % 7}",
    )  # fmt: skip


def part_files(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def wait_until(condition, what: str, limit_s: float = 60.0) -> None:
    """Wait for a condition of a real process; the limit only turns a hang into a failure."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_local_round_trip_partitions_by_utc_date(tmp_path):
    sink = tmp_path / "logs"
    records = [record(i, when=T0 + timedelta(minutes=i)) for i in range(5)]  # 23:58 .. 00:02 next day
    with PredictionLogger(str(sink), batch_rows=3, flush_s=60) as logger:
        assert all(logger.log(r) for r in records)
        logger.flush()
        assert logger.written == 5 and logger.queued == 0
    dates = sorted(p.parent.name for p in part_files(sink / "predictions"))
    # Batches of 3 + 2 rows; the first batch spans midnight: one file per date partition.
    assert dates == ["date=2026-03-01", "date=2026-03-02", "date=2026-03-02"]
    table = read_predictions(str(sink))
    assert table.schema == PREDICTION_SCHEMA
    assert table.to_pylist() == [_as_row(r) for r in records]
    assert read_predictions(f"file://{sink}").num_rows == 5


def _as_row(r: PredictionRecord) -> dict:
    return {name: getattr(r, name) for name in PREDICTION_SCHEMA.names}


def test_time_window_and_arm_filter(tmp_path):
    sink = str(tmp_path)
    logger = PredictionLogger(sink, flush_s=60)
    for i in range(10):
        logger.log(record(i, when=T0 + timedelta(hours=i), arm="champion" if i % 2 else "challenger"))
    # A non-UTC time is stored as the same instant in UTC.
    logger.log(record(99, when=datetime(2026, 3, 2, 12, 30, tzinfo=timezone(timedelta(hours=2)))))
    logger.close()
    since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=5)
    window = read_predictions(sink, since=since, until=until)
    assert window.column(Columns.REQUEST_ID).to_pylist() == ["req-2", "req-3", "req-4"]  # until is exclusive
    champions = read_predictions(sink, since=since, arm="champion")
    assert champions.column(Columns.REQUEST_ID).to_pylist() == ["req-3", "req-5", "req-7", "req-9", "req-99"]
    moved = read_predictions(sink, since=datetime(2026, 3, 2, 10, 30, tzinfo=timezone.utc), until=datetime(2026, 3, 2, 10, 31, tzinfo=timezone.utc))
    assert moved.column(Columns.REQUEST_ID).to_pylist() == ["req-99"]
    with pytest.raises(DataError, match="naive datetime") as err:
        read_predictions(sink, since=datetime(2026, 3, 1))
    assert "timezone-aware" in str(err.value)


def test_empty_sink_gives_empty_table_with_schema(tmp_path):
    assert read_predictions(str(tmp_path / "never-written")) == PREDICTION_SCHEMA.empty_table()
    assert read_feedback(str(tmp_path)).num_rows == 0


def test_reader_skips_foreign_files_and_names_an_unreadable_one(tmp_path):
    with PredictionLogger(str(tmp_path), flush_s=60) as logger:
        logger.log(record(1))
    partition = part_files(tmp_path)[0].parent
    (partition / ".part-x.parquet.abc.tmp").write_bytes(b"PAR1 half written")  # what a kill leaves
    (partition / "notes.txt").write_text("not ours")
    (tmp_path / "predictions" / "_SUCCESS").write_text("")
    assert read_predictions(str(tmp_path)).num_rows == 1
    broken = partition / "part-broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file") as err:
        read_predictions(str(tmp_path))
    assert str(broken) in str(err.value) and "What to do" in str(err.value)
    pq.write_table(pa.table({"request_id": ["x"]}), broken)
    with pytest.raises(DataError, match="columns .* are missing"):
        read_predictions(str(tmp_path))


def test_full_queue_drops_and_counts_and_log_never_blocks(tmp_path):
    release, stalled = threading.Event(), threading.Event()

    def stalled_put(uri: str, data: bytes) -> None:
        stalled.set()
        release.wait()
        objects.put_object(uri, data)

    logger = PredictionLogger(str(tmp_path), batch_rows=5, flush_s=0.01, queue_size=10, put=stalled_put)
    assert logger.log(record(0))
    assert stalled.wait(60), "the writer never started writing"
    results: list[bool] = []
    # If log() blocked on the full queue this thread would never finish.
    caller = threading.Thread(target=lambda: results.extend(logger.log(record(i)) for i in range(1, 101)))
    caller.start()
    caller.join(60)
    assert not caller.is_alive(), "log() blocked while the writer was stalled"
    assert results.count(True) == 10 and results.count(False) == 90
    assert results[:10] == [True] * 10 and logger.dropped == 90
    release.set()
    logger.close()
    assert logger.written == 11 and logger.failed_batches == 0
    assert read_predictions(str(tmp_path)).column(Columns.REQUEST_ID).to_pylist() == [f"req-{i}" for i in range(11)]
    assert logger.log(record(500)) is False and logger.dropped == 91  # closed


def test_failed_writes_are_retried_then_counted_and_logged_once(tmp_path, caplog):
    attempts: list[str] = []

    def flaky_put(uri: str, data: bytes) -> None:
        attempts.append(uri)
        if len(attempts) <= 2:
            raise SourceError("store down", where="s3://user:hunter2@bucket/x")
        objects.put_object(uri, data)

    caplog.set_level(logging.WARNING)
    logger = PredictionLogger(str(tmp_path), flush_s=60, write_attempts=3, retry_delay_s=0, put=flaky_put)
    logger.log(record(1))
    logger.flush()
    assert logger.written == 1 and logger.failed_batches == 0 and len(attempts) == 3

    def dead_put(uri: str, data: bytes) -> None:
        raise SourceError("store down", where="s3://user:hunter2@bucket/x")

    dead = PredictionLogger(str(tmp_path / "dead"), flush_s=60, write_attempts=2, retry_delay_s=0, put=dead_put)
    for batch in range(3):
        assert dead.log(record(batch))
        dead.flush()
    dead.close()
    assert dead.failed_batches == 3 and dead.failed_rows == 3 and dead.written == 0
    warnings = [r.getMessage() for r in caplog.records if "dead" in r.getMessage()]
    assert len(warnings) == 1, warnings  # six failures, one message a minute
    assert "store down" in warnings[0] and "hunter2" not in caplog.text


def test_bad_record_is_rejected_without_losing_its_batch(tmp_path):
    with PredictionLogger(str(tmp_path), flush_s=60) as logger:
        logger.log(record(1))
        logger.log(PredictionRecord("bad", None, "a", "m", "1", "{}", "x", "not a number", 1.0, ""))  # type: ignore[arg-type]
        logger.log(record(2))
    assert logger.rejected == 1 and logger.written == 2
    assert read_predictions(str(tmp_path)).column(Columns.REQUEST_ID).to_pylist() == ["req-1", "req-2"]


KILLED_WRITER = """
import sys
from datetime import datetime, timezone
from kfp_mlops.components._shared.prediction_log import PredictionLogger, PredictionRecord
logger = PredictionLogger(sys.argv[1], batch_rows=1000, flush_s=0.01, queue_size=20000)
i = 0
while True:
    now = datetime.now(timezone.utc)
    logger.log(PredictionRecord(f"r{i}", now, "a", "m", "1", '{"x": %d}' % i, "p", 0.5, 1.0, "k"))
    i += 1
"""


def test_killed_process_leaves_only_complete_files(tmp_path):
    sink = tmp_path / "sink"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(sink)], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(part_files(sink)) >= 3 or proc.poll() is not None, "three files from the writer")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    files = part_files(sink)
    rows = sum(pq.read_metadata(f).num_rows for f in files)  # each one a complete Parquet file
    table = read_predictions(str(sink))
    assert table.num_rows == rows > 0
    assert len(set(table.column(Columns.REQUEST_ID).to_pylist())) == rows


def test_a_new_logger_removes_old_temporaries_of_killed_writers(tmp_path):
    partition = tmp_path / "predictions" / "date=2026-03-01"
    partition.mkdir(parents=True)
    old, fresh = partition / ".part-a.parquet.x1.tmp", partition / ".part-b.parquet.x2.tmp"
    old.write_bytes(b"PAR1"), fresh.write_bytes(b"PAR1")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    PredictionLogger(str(tmp_path)).close()
    assert not old.exists() and fresh.exists()  # a fresh one may be another live writer's


def test_normal_exit_without_close_writes_the_queue(tmp_path):
    script = KILLED_WRITER.replace("while True:", "for _ in range(25):").replace("flush_s=0.01", "flush_s=3600")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    assert read_predictions(str(tmp_path)).num_rows == 25


def test_feedback_round_trip_and_join(tmp_path):
    sink = str(tmp_path)
    with PredictionLogger(sink, flush_s=60) as logger:
        for i in range(4):
            logger.log(record(i))
    later = T0 + timedelta(days=1)
    written = write_feedback(
        sink,
        [
            Outcome("req-1", "no", later + timedelta(hours=2)),
            Outcome("req-1", "yes", later + timedelta(hours=1)),  # older: loses although written after
            Outcome("req-2", "yes", later),
            Outcome("req-404", "yes", later),  # a request never logged
        ],
    )
    assert written == 4 and write_feedback(sink, []) == 0
    feedback = read_feedback(sink)
    assert feedback.num_rows == 4 and feedback.column(Columns.OUTCOME).to_pylist()[0] == "yes"
    joined = join_outcomes(read_predictions(sink), feedback)
    assert joined.column(Columns.REQUEST_ID).to_pylist() == ["req-0", "req-1", "req-2", "req-3"]
    assert joined.column(Columns.OUTCOME).to_pylist() == [None, "no", "yes", None]
    assert joined.column(Columns.OUTCOME_TIME).to_pylist()[1] == later + timedelta(hours=2)
    assert unmatched_outcomes(joined) == 1
    # A user's table: integer labels, no time column: the last row per request id wins.
    user = pa.table({"request_id": ["req-3", "req-0", "req-3", None], "outcome": [0, 1, 1, 1]})
    joined = join_outcomes(read_predictions(sink), user)
    assert joined.column(Columns.OUTCOME).to_pylist() == ["1", None, None, "1"]
    assert unmatched_outcomes(joined) == 0
    with pytest.raises(DataError, match=r"lacks \['outcome'\]"):
        join_outcomes(read_predictions(sink), pa.table({"request_id": ["req-1"], "label": [1]}))
    with pytest.raises(DataError, match="non-empty request_id"):
        write_feedback(sink, [Outcome("", "yes", later)])


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("", "no prediction-log sink given"),
        ("ftp://host/logs", "cannot write to a ftp:// URI"),
        ("https://host/logs", "cannot write to a https:// URI"),
        ("s3://", "no bucket in URI"),
        ("s3://AKIA:topsecret@bucket/logs", "credentials in an object-store URI"),
        ("gs://bucket/logs/*", "glob characters"),
        ("file://otherhost/logs", "names a host"),
        ("s3://bucket/logs?versionId=1", "query"),
    ],
)
def test_bad_sink_uris_fail_at_construction(uri, expected):
    with pytest.raises(SourceError) as err:
        PredictionLogger(uri)
    message = str(err.value)
    assert expected in message and "What to do" in message and "topsecret" not in message


def test_relative_sink_resolves_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with PredictionLogger("relative/logs", flush_s=60) as logger:
        logger.log(record(1))
    monkeypatch.chdir("/")
    assert logger.sink == str(tmp_path / "relative" / "logs")
    assert read_predictions(str(tmp_path / "relative" / "logs")).num_rows == 1


def test_bad_numbers_fail_at_construction(tmp_path):
    with pytest.raises(DataError, match="batch_rows must be"):
        PredictionLogger(str(tmp_path), batch_rows=0)
    with pytest.raises(DataError, match="flush_s must be > 0"):
        PredictionLogger(str(tmp_path), flush_s=0)


def _object_store_round_trip(sink: str) -> None:
    with PredictionLogger(sink, batch_rows=4, flush_s=60) as logger:
        for i in range(10):
            logger.log(record(i, when=T0 + timedelta(minutes=i)))
    assert logger.written == 10 and logger.failed_batches == 0
    listed = objects.list_objects(sink)
    assert len(listed) == 4 and all("/predictions/date=2026-03-0" in u for u in listed)  # 4+4+2, one batch spans midnight
    table = read_predictions(sink)
    assert table.column(Columns.REQUEST_ID).to_pylist() == [f"req-{i}" for i in range(10)]
    assert read_predictions(sink, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)).num_rows == 2
    assert write_feedback(sink, [Outcome("req-3", "yes", T0)]) == 1
    joined = join_outcomes(table, read_feedback(sink))
    assert joined.column(Columns.OUTCOME).to_pylist()[3] == "yes"


def test_s3_round_trip(s3_env):
    s3_env.create_bucket(Bucket="pred-logs")
    _object_store_round_trip("s3://pred-logs/serving/churn")
    # The bucket root works as a sink too.
    with PredictionLogger("s3://pred-logs", flush_s=60) as logger:
        logger.log(record(1))
    assert read_predictions("s3://pred-logs").num_rows == 1
    # A missing bucket is counted by the logger and named by the readers.
    with PredictionLogger("s3://no-such-bucket/x", flush_s=60, write_attempts=1) as missing:
        missing.log(record(1))
    assert missing.failed_batches == 1 and missing.written == 0
    with pytest.raises(SourceError, match="S3 bucket not found"):
        read_predictions("s3://no-such-bucket/x")


def test_gcs_round_trip(gcs_emulator):
    gcs_emulator.create_bucket("pred-logs-gs")
    _object_store_round_trip("gs://pred-logs-gs/serving/churn")


def test_objects_put_list_get_local(tmp_path):
    target = tmp_path / "a" / "b.bin"
    objects.put_object(str(target), b"one")
    objects.put_object(f"file://{target}", b"two")  # replaces
    assert objects.get_object(str(target)) == b"two" and oct(target.stat().st_mode & 0o777) == "0o600"
    assert objects.list_objects(str(tmp_path)) == [str(target)]
    assert objects.list_objects(f"file://{tmp_path}/a") == [f"file://{target}"]
    assert objects.list_objects(str(tmp_path / "none")) == []
    with pytest.raises(UnsupportedSourceError, match="http"):
        objects.put_object("http://host/x", b"")
