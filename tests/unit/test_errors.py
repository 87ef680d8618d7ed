"""Known errors end a component with the message alone and the error's exit code."""

from __future__ import annotations

import pytest

from kfp_mlops.components._shared.entry import exit_on_error
from kfp_mlops.components._shared.errors import DataError, SourceAccessDeniedError, SourceNotFoundError
from kfp_mlops.components._shared.retry import RetryPolicy, TransientError, call_with_retry


def test_data_error_exits_2_with_message(capsys):
    with pytest.raises(SystemExit) as caught, exit_on_error("ingest"):
        raise DataError("column 'x' is empty", where="s3://b/k.csv", fix="drop it")
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "kfp-mlops ingest failed: s3://b/k.csv: column 'x' is empty\nWhat to do: drop it" in err


def test_infrastructure_error_exits_3(capsys):
    with pytest.raises(SystemExit) as caught, exit_on_error("ingest"):
        raise SourceAccessDeniedError("GCS access denied", where="gs://x/y")
    assert caught.value.code == 3


def test_a_source_that_does_not_exist_exits_2_no_retry_fixes_a_typo(capsys):
    with pytest.raises(SystemExit) as caught, exit_on_error("ingest"):
        raise SourceNotFoundError("GCS bucket not found", where="gs://x/y")
    assert caught.value.code == 2


def test_unexpected_errors_are_not_swallowed():
    with pytest.raises(ZeroDivisionError), exit_on_error("validate"):
        1 / 0


def test_retry_backs_off_then_succeeds_or_gives_up():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("HTTP 503")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay_s=1.0, max_delay_s=10.0)
    assert call_with_retry(flaky, what="x", policy=policy, sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0

    def broken():
        raise TransientError("HTTP 502") from ConnectionResetError("reset by peer")

    with pytest.raises(ConnectionResetError):
        call_with_retry(broken, what="x", policy=policy, sleep=sleeps.append)


def test_a_message_quoting_binary_bytes_is_printed_escaped(capsys):
    with pytest.raises(SystemExit), exit_on_error("ingest"):
        raise DataError("CSV parse error: expected 3 columns, got 1: '\x00\x1b[2J\ufffd\x7f'", where="garbage.csv")
    err = capsys.readouterr().err
    assert "\\x00\\x1b[2J\ufffd\\x7f" in err and "\x1b" not in err and "\x00" not in err
