"""What a local run prints: one line per step instead of kfp.local's executor dumps.

kfp.local prints every step's streamed log, its outputs and its own status lines to
``sys.stdout``. :class:`StepConsole` stands in for ``sys.stdout`` during the run: it
writes everything (secrets scrubbed) to the run's log file and prints, per step, its
name, state, duration and one key figure read from the step's executor output. A failed
step also gets the tail of its own log, where our components put the error and its fix.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from kfp_mlops.components._shared.redact import redact_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
FAILURE_TAIL_LINES = 25
WARNING = "WARNING: "  # how our components print a warning the user must see
EXIT_CODE = re.compile(r"^\(exit code (\d+)\b")
# Where a step's own words start: our components' error line, a traceback, an error message.
ERROR_START = re.compile(r"^(kfp-mlops \S+ failed|Traceback \(most recent call last\)|\w*(Error|Exception)\b:)")


@dataclass
class StepResult:
    """One step of a local run as the summary shows it."""

    name: str
    state: str = "RUNNING"
    seconds: float = 0.0
    key: str = ""
    log: list[str] = field(default_factory=list, repr=False)
    exit_code: int = 0  # a failed step's own exit status (2 bad input, 3 infrastructure), 1 when it did not say


def step_outputs(step_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(output parameters, artifact metadata by output name) from a step's executor_output.json; empty when it has none."""
    try:
        executor = json.loads((step_dir / "executor_output.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}
    artifacts = {name: (entry.get("artifacts") or [{}])[0].get("metadata", {}) for name, entry in executor.get("artifacts", {}).items()}
    return executor.get("parameterValues", {}) or {}, artifacts


def _number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3f}"
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def _train_key(params: dict[str, Any], meta: dict[str, dict[str, Any]]) -> str:
    metrics = meta.get("metrics", {})
    for name in ("test_roc_auc", "test_accuracy", "test_rmse", "test_r2"):
        if name in metrics:
            return f"{name.removeprefix('test_')} {_number(metrics[name])} (test)"
    return ""


def _featurize_key(params: dict[str, Any], meta: dict[str, dict[str, Any]]) -> str:
    rows = [meta.get(split, {}).get("rows") for split in ("train", "validation", "test")]
    return "train/validation/test " + "/".join(_number(r) for r in rows) + " rows" if all(r is not None for r in rows) else ""


def _validate_key(params: dict[str, Any], meta: dict[str, dict[str, Any]]) -> str:
    metrics = meta.get("metrics", {})
    if "anomalies_error" not in metrics:
        return ""
    return f"{_number(metrics['anomalies_error'])} errors, {_number(metrics.get('anomalies_warning', 0))} warnings; task {meta.get('schema', {}).get('task', '?')}"


def _register_key(params: dict[str, Any], meta: dict[str, dict[str, Any]]) -> str:
    if "version" not in params:
        return ""
    return f"version {params['version']} {'blessed' if params.get('blessed') else 'NOT blessed'}"


def _monitor_key(params: dict[str, Any], meta: dict[str, dict[str, Any]]) -> str:
    if "retrain" not in params:
        return ""
    return f"retrain {'yes' if params['retrain'] else 'no'}, drift {'yes' if params.get('drift_detected') else 'no'}"


KEYS: dict[str, Callable[[dict[str, Any], dict[str, dict[str, Any]]], str]] = {
    "ingest": lambda p, m: f"{_number(p['rows'])} rows" if "rows" in p else "",
    "validate": _validate_key,
    "featurize": _featurize_key,
    "train": _train_key,
    "select-best": _train_key,
    "register": _register_key,
    "analyze-experiment": lambda p, m: f"decision {p['Output']}" if "Output" in p else "",
    "monitor-models": _monitor_key,
    "check-rollout": lambda p, m: "settings checked",
    "check-training": lambda p, m: "settings checked",
}


def key_figure(step_dir: Path) -> str:
    """The one figure that says how a step went (rows read, test metric, decision); empty when there is none."""
    params, meta = step_outputs(step_dir)
    base = re.sub(r"-\d+$", "", step_dir.name)
    if base == "deploy" and (step_dir / "endpoint").is_file():  # an output file, not a parameter
        return redact_text((step_dir / "endpoint").read_text(encoding="utf-8").strip())
    try:
        return redact_text(KEYS[base](params, meta)) if base in KEYS else ""
    except (KeyError, TypeError, ValueError):
        return ""


class StepConsole(io.TextIOBase):
    """A stdout for the duration of a run: the full log to ``log_file``, one line per finished step to ``terminal``."""

    def __init__(self, terminal: TextIO, log_file: TextIO, run_dir: Callable[[], Path | None], *, verbose: bool = False, pipeline_root: Path | None = None) -> None:
        self.terminal, self.log_file, self.run_dir, self.verbose = terminal, log_file, run_dir, verbose
        # This run's folder, read off the first step's executor input: another run started in the same
        # workdir meanwhile makes a newer folder there, so "the newest folder" is not ours.
        self.run_folder: Path | None = None
        self._root = pipeline_root
        self._own_output = re.compile(rf'"outputFile": "{re.escape(str(pipeline_root))}/([^/"]+)/') if pipeline_root is not None else None
        self.steps: list[StepResult] = []
        self._current: StepResult | None = None
        self._started = 0.0
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        clean = redact_text(text)
        self.log_file.write(ANSI.sub("", clean))
        if self.verbose:
            self.terminal.write(clean)
        self._partial += clean
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()
        self.terminal.flush()

    def _line(self, line: str) -> None:
        if self.run_folder is None and self._own_output is not None:
            own = self._own_output.search(line)
            if own:
                self.run_folder = Path(str(self._root), own.group(1))
        started, finished = STARTED.search(line), FINISHED.search(line)
        if started:
            self._current, self._started = StepResult(started.group(1)), time.perf_counter()
            self.steps.append(self._current)
        elif finished and self._current is not None and finished.group(1) == self._current.name:
            self._finish(self._current, finished.group(2))
        elif self._current is not None and self._current.state == "RUNNING":
            self._current.log.append(line)

    def _finish(self, step: StepResult, status: str) -> None:
        step.seconds = time.perf_counter() - self._started
        step.state = "SUCCEEDED" if status == "SUCCESS" else "FAILED"
        if step.state == "FAILED":
            said = [int(m.group(1)) for m in (EXIT_CODE.match(line.strip()) for line in step.log) if m]
            step.exit_code = said[-1] if said else 1
        root = self.run_folder or self.run_dir()
        step.key = key_figure(root / step.name) if root is not None and step.state == "SUCCEEDED" else ""
        if not self.verbose:
            self.terminal.write(format_step(step) + "\n")
            if step.state == "FAILED":
                tail = failure_tail(step.log)
                self.terminal.write("".join(f"      | {line.strip()}\n" for line in tail))
            else:
                # Our components' warnings are meant for the user even when the step succeeds.
                self.terminal.write("".join(f"      ! {line.strip()}\n" for line in step.log if line.strip().startswith(WARNING)))
            self.terminal.flush()


def failure_tail(log: list[str]) -> list[str]:
    """The last lines of a failed step's log, from the first line where the error itself starts."""
    lines = [line for line in log if line.strip()][-FAILURE_TAIL_LINES * 4 :]
    start = next((i for i, line in enumerate(lines) if ERROR_START.match(line.strip())), max(0, len(lines) - FAILURE_TAIL_LINES))
    return lines[start:][-FAILURE_TAIL_LINES:]


def format_step(step: StepResult) -> str:
    return f"  {step.name:<22} {step.state:<9} {step.seconds:>6.1f}s  {step.key}".rstrip()
