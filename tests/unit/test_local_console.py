"""One line per step from kfp.local's output, the full log (scrubbed) in a file, the failing step's own words on failure."""

from __future__ import annotations

import io
import json
from pathlib import Path

from kfp_mlops.pipelines.local_console import StepConsole, key_figure

CYAN, GREEN, RED, RESET = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[0m"


def _step(run: Path, name: str, params: dict, artifacts: dict) -> None:
    (run / name).mkdir(parents=True)
    record = {"parameterValues": params, "artifacts": {k: {"artifacts": [{"metadata": v}]} for k, v in artifacts.items()}}
    (run / name / "executor_output.json").write_text(json.dumps(record))


def _kfp_lines(name: str, status: str, body: list[str]) -> str:
    color = GREEN if status == "SUCCESS" else RED
    lines = [f"05:37:56.704 - INFO - Executing task {CYAN}'{name}'{RESET}", "05:37:56.705 - INFO - Streamed logs:", ""]
    lines += [f"    {line}" for line in body]
    lines += [f"05:37:57.199 - INFO - Task {CYAN}'{name}'{RESET} finished with status {color}{status}{RESET}", "-" * 40]
    return "\n".join(lines) + "\n"


def test_each_step_is_one_line_with_its_key_figure_and_the_log_keeps_everything(tmp_path):
    run = tmp_path / "training-1"
    _step(run, "ingest", {"rows": 100000}, {})
    _step(run, "train", {}, {"metrics": {"test_roc_auc": 0.8123, "test_accuracy": 0.7}})
    _step(run, "register", {"blessed": False, "version": "2"}, {})
    _step(run, "analyze-experiment-2", {"Output": "promote"}, {})
    terminal, log = io.StringIO(), io.StringIO()
    console = StepConsole(terminal, log, lambda: run)
    password = "hunter2-secret"
    for name, body in (("ingest", [f"reading http://user:{password}@host/data.csv"]), ("train", ["epoch 1"]), ("register", ["NOT blessed"]), ("analyze-experiment-2", ["decision: promote"])):
        text = _kfp_lines(name, "SUCCESS", body)
        console.write(text[:17])  # kfp.local writes in pieces; lines are assembled
        console.write(text[17:])
    shown = terminal.getvalue().splitlines()
    assert [line.split()[0] for line in shown] == ["ingest", "train", "register", "analyze-experiment-2"]
    assert "100,000 rows" in shown[0] and "roc_auc 0.812 (test)" in shown[1]
    assert "version 2 NOT blessed" in shown[2] and "decision promote" in shown[3]
    assert all("SUCCEEDED" in line for line in shown) and "epoch 1" not in terminal.getvalue()
    kept = log.getvalue()
    assert "epoch 1" in kept and "\x1b[" not in kept, "the log keeps every line, without colour codes"
    assert password not in kept and password not in terminal.getvalue()
    assert [s.state for s in console.steps] == ["SUCCEEDED"] * 4


def test_a_failed_step_shows_the_tail_of_its_own_log(tmp_path):
    terminal = io.StringIO()
    console = StepConsole(terminal, io.StringIO(), lambda: tmp_path)
    body = [f"noise {i}" for i in range(40)] + ["kfp-mlops: label column not found: 'target'", "What to do: pass --label-column"]
    console.write(_kfp_lines("validate", "FAILURE", body))
    out = terminal.getvalue()
    assert "validate" in out.splitlines()[0] and "FAILED" in out.splitlines()[0]
    assert "label column not found" in out and "What to do" in out
    assert "noise 0" not in out, "only the tail"
    assert console.steps[0].state == "FAILED"


def test_verbose_passes_everything_through(tmp_path):
    terminal = io.StringIO()
    console = StepConsole(terminal, io.StringIO(), lambda: tmp_path, verbose=True)
    console.write(_kfp_lines("ingest", "SUCCESS", ["every line"]))
    assert "every line" in terminal.getvalue() and "Executing task" in terminal.getvalue()


def test_key_figure_of_a_step_without_outputs_is_empty(tmp_path):
    (tmp_path / "ingest").mkdir()
    assert key_figure(tmp_path / "ingest") == ""
    (tmp_path / "unknown-step").mkdir()
    (tmp_path / "unknown-step" / "executor_output.json").write_text("{not json")
    assert key_figure(tmp_path / "unknown-step") == ""


def test_the_failure_tail_starts_at_the_error_not_in_the_executor_input(tmp_path):
    terminal = io.StringIO()
    console = StepConsole(terminal, io.StringIO(), lambda: tmp_path)
    executor_input = ['    "dataset": {', '        "artifacts": [', '            {"uri": "minio://x"}', "        ]", "    }"] * 8
    body = executor_input + ["kfp-mlops ingest failed: /nonexistent/data.csv: file does not exist", "What to do: give a path that exists"]
    console.write(_kfp_lines("ingest", "FAILURE", body))
    shown = terminal.getvalue().splitlines()
    assert shown[1].strip() == "| kfp-mlops ingest failed: /nonexistent/data.csv: file does not exist", shown
    assert not any('"artifacts"' in line for line in shown)


def test_a_failed_step_keeps_its_own_exit_code_and_warnings_of_a_good_step_are_shown(tmp_path):
    """kfp.local loses a step's exit status; the step's last line says it, so `kfp-mlops run` exits 2 for bad data."""
    terminal = io.StringIO()
    console = StepConsole(terminal, io.StringIO(), lambda: tmp_path)
    console.write(_kfp_lines("deploy", "SUCCESS", ["serving", "WARNING: arm 'challenger' serves models:/m/2 at 10%, which register did NOT bless"]))
    console.write(_kfp_lines("validate", "FAILURE", ["kfp-mlops validate failed: 1 anomaly", "What to do: fix the data", "(exit code 2: bad input or settings: fix them, then run again)"]))
    console.write(_kfp_lines("train", "FAILURE", ["Traceback (most recent call last):", "ZeroDivisionError: division by zero"]))
    out = terminal.getvalue()
    assert "! WARNING: arm 'challenger'" in out, out
    assert [s.exit_code for s in console.steps] == [0, 2, 1], "a step that said nothing is a plain failure"


def test_the_component_exit_path_ends_with_the_exit_code_line(capsys):
    import pytest

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.errors import DataError

    with pytest.raises(SystemExit) as stopped:
        with exit_on_error("ingest"):
            raise DataError("column 'x' is empty", fix="drop it")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("(exit code 2: bad input")
