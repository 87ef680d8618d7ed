"""The model-quality gate: train on demo data as users do, compare the test metrics with a baseline.

    python -m kfp_mlops.pipelines.quality_gate --baseline .github/quality-baseline.json
    python -m kfp_mlops.pipelines.quality_gate --baseline .github/quality-baseline.json --rows 20000 --record

The training pipeline runs locally (kfp.local, a sqlite MLflow store in a temporary folder) on seeded
demo data, so the same code gives the same metrics; a change that makes the model worse by more than
a metric's tolerance fails (exit 1, one line per metric). ``--record`` (re)writes the baseline from a
run, keeping the tolerances already in it. Exit 2: bad arguments or baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from kfp_mlops.components._shared.errors import DataError, KfpMlopsError

BASELINE_VERSION = 1
DEFAULT_ROWS = 20_000
DEFAULT_SEED = 7
# Absolute drops allowed by default: a seeded CPU run repeats its metrics, but another torch build or
# CPU may round differently; a real regression moves AUC or accuracy by more than this.
DEFAULT_TOLERANCE = 0.02
TRAIN_TASK = "train"
# Names as the train step reports them (test_<metric>); the direction comes from train's own table.
METRIC_PREFIX = "test_"


class TrainingFailed(KfpMlopsError):
    """The pipeline did not produce a model to judge: the gate fails as for a regression."""

    exit_code = 1


@dataclass(frozen=True)
class MetricBaseline:
    """One gated metric: its recorded value, the absolute drop allowed, and which way is better."""

    value: float
    tolerance: float
    higher_is_better: bool


@dataclass(frozen=True)
class Baseline:
    """What a run is compared with, and the data and arguments it must be run with to be comparable."""

    rows: int
    seed: int
    arguments: dict[str, Any]
    metrics: dict[str, MetricBaseline]


@dataclass(frozen=True)
class Comparison:
    """One metric of a run against its baseline; ``value`` is None when the run did not report it."""

    metric: str
    value: float | None
    baseline: MetricBaseline

    @property
    def change(self) -> float | None:
        """Signed improvement: positive is better, whichever way the metric points."""
        if self.value is None or math.isnan(self.value):
            return None
        delta = self.value - self.baseline.value
        # + 0.0 turns the -0.0 of an unchanged lower-is-better metric into 0.0.
        return (delta if self.baseline.higher_is_better else -delta) + 0.0

    @property
    def regressed(self) -> bool:
        change = self.change
        # A tiny epsilon: a drop of exactly the tolerance passes despite float rounding.
        return change is None or change < -self.baseline.tolerance - 1e-12


def higher_is_better(metric: str) -> bool:
    """Direction of a reported test metric (``test_roc_auc``), from the train step's own table."""
    from kfp_mlops.components.train.metrics import HIGHER_IS_BETTER

    name = metric[len(METRIC_PREFIX) :] if metric.startswith(METRIC_PREFIX) else metric
    if name not in HIGHER_IS_BETTER:
        raise DataError(f"metric {metric!r} has no known direction", fix=f"gate only the train step's test metrics: {', '.join(METRIC_PREFIX + m for m in HIGHER_IS_BETTER)}")
    return HIGHER_IS_BETTER[name]


def compare(measured: dict[str, float], baseline: Baseline) -> list[Comparison]:
    """Every baseline metric against the run's value, in the baseline's order."""
    return [Comparison(name, measured.get(name), expected) for name, expected in baseline.metrics.items()]


def failure_lines(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per regressed metric: value, baseline, allowed drop."""
    lines = []
    for c in comparisons:
        if not c.regressed:
            continue
        shown = "not reported" if c.value is None else f"{c.value:.4f}"
        direction = "higher" if c.baseline.higher_is_better else "lower"
        lines.append(f"{c.metric}: {shown}, baseline {c.baseline.value:.4f}, allowed drop {c.baseline.tolerance:.4f} ({direction} is better)")
    return lines


def table(comparisons: Sequence[Comparison], extra: dict[str, float] | None = None) -> str:
    """A plain-text table of every metric; metrics the baseline does not gate are listed as such."""
    rows = [("metric", "value", "baseline", "allowed drop", "change", "")]
    for c in comparisons:
        change = c.change
        rows.append(
            (
                c.metric,
                "-" if c.value is None else f"{c.value:.4f}",
                f"{c.baseline.value:.4f}",
                f"{c.baseline.tolerance:.4f}",
                "-" if change is None else f"{change:+.4f}",
                "REGRESSED" if c.regressed else "ok",
            )
        )
    for name, value in sorted((extra or {}).items()):
        rows.append((name, f"{value:.4f}", "-", "-", "-", "not gated"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def load_baseline(path: Path) -> Baseline:
    """Read and check a baseline file; every problem names the file and how to fix it."""
    record = f"python -m kfp_mlops.pipelines.quality_gate --baseline {path} --record"
    if not path.is_file():
        raise DataError(f"no baseline file {path}", fix=f"record one: {record}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"baseline {path} is not JSON: {exc}", fix=f"repair it or record it again: {record}") from None
    if not isinstance(raw, dict) or raw.get("version") != BASELINE_VERSION:
        raise DataError(f"baseline {path} is not a version {BASELINE_VERSION} quality baseline", fix=f"record it again: {record}")
    try:
        metrics = {name: MetricBaseline(value=float(entry["value"]), tolerance=float(entry["tolerance"]), higher_is_better=higher_is_better(name)) for name, entry in raw["metrics"].items()}
        baseline = Baseline(rows=int(raw["rows"]), seed=int(raw["seed"]), arguments=dict(raw.get("arguments", {})), metrics=metrics)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"baseline {path} has a missing or mistyped entry ({exc}): it needs rows, seed and metrics of {{value, tolerance}}", fix=f"record it again: {record}") from None
    if not baseline.metrics:
        raise DataError(f"baseline {path} gates no metric", fix=f"record it again: {record}")
    flipped = [name for name, m in baseline.metrics.items() if raw["metrics"][name].get("higher_is_better", m.higher_is_better) != m.higher_is_better]
    if flipped:
        raise DataError(f"baseline {path}: higher_is_better of {', '.join(flipped)} contradicts the train step's metric", fix="remove those higher_is_better entries or record the baseline again")
    bad = [name for name, m in baseline.metrics.items() if not (math.isfinite(m.value) and m.tolerance >= 0)]
    if bad:
        raise DataError(f"baseline {path}: {', '.join(bad)} need a finite value and a tolerance of 0 or more", fix="edit those entries")
    return baseline


def baseline_from_run(measured: dict[str, float], *, rows: int, seed: int, arguments: dict[str, Any], previous: Baseline | None, tolerance: float) -> Baseline:
    """A new baseline from a run's metrics; tolerances already chosen in ``previous`` are kept."""
    metrics = {}
    for name, value in sorted(measured.items()):
        if not math.isfinite(value):
            raise DataError(f"the run reported {name} = {value}", fix="a baseline needs finite metrics: check the run's test split (both classes present)")
        kept = previous.metrics.get(name) if previous else None
        metrics[name] = MetricBaseline(value=value, tolerance=kept.tolerance if kept else tolerance, higher_is_better=higher_is_better(name))
    return Baseline(rows=rows, seed=seed, arguments=arguments, metrics=metrics)


def write_baseline(path: Path, baseline: Baseline) -> None:
    document = {
        "version": BASELINE_VERSION,
        "pipeline": "training",
        "rows": baseline.rows,
        "seed": baseline.seed,
        "arguments": baseline.arguments,
        "metrics": {name: {"value": m.value, "tolerance": m.tolerance, "higher_is_better": m.higher_is_better} for name, m in baseline.metrics.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def train_step_metrics(run_dir: Path) -> dict[str, float]:
    """The test metrics of the run's train step, from its Metrics artifact (as kfp.local records it)."""
    from kfp_mlops.pipelines.local_console import step_outputs

    step = run_dir / TRAIN_TASK
    if not (step / "executor_output.json").is_file():
        raise TrainingFailed(f"the run under {run_dir} has no {TRAIN_TASK} step output", fix="see the pipeline log: the train step did not finish")
    reported = step_outputs(step)[1].get("metrics", {})
    metrics = {name: float(value) for name, value in reported.items() if name.startswith(METRIC_PREFIX) and isinstance(value, (int, float))}
    if not metrics:
        raise TrainingFailed(f"the train step of {run_dir} reported no test metrics", fix="the train component must log test_<metric> values to its Metrics output")
    return metrics


def run_training(rows: int, seed: int, arguments: dict[str, Any], workdir: Path) -> dict[str, float]:
    """Train on ``rows`` seeded demo rows with the training pipeline, locally; the train step's test metrics."""
    from kfp_mlops.components._shared.mlflow_adapter import default_tracking_uri
    from kfp_mlops.demo import DemoSpec, write_demo_dataset
    from kfp_mlops.pipelines import catalog
    from kfp_mlops.pipelines.local_run import pipeline_parameters, run_locally

    pipeline = catalog.pipeline("training")
    unknown = sorted(set(arguments) - set(pipeline_parameters(pipeline)))
    if unknown:
        raise DataError(f"the training pipeline has no parameter {', '.join(unknown)}", fix="record a new baseline with --record")
    data = write_demo_dataset(workdir / "demo" / f"demo-{rows}-seed{seed}.parquet", DemoSpec(rows=rows, seed=seed))
    tracking_uri = default_tracking_uri(workdir / "mlflow")
    # CPU only: a seeded CPU run is reproducible, so only a change of code or pins moves the metrics.
    run_arguments = {"gpu": "forbid", **arguments, "source_uri": str(data.resolve()), "mlflow_tracking_uri": tracking_uri}
    try:
        run = run_locally(pipeline, run_arguments, workdir / "runs", verbose=False, name="training")
    except RuntimeError as exc:
        raise TrainingFailed(f"the training pipeline failed: {exc}", fix="read the failing step's log named above") from None
    return train_step_metrics(run.run_dir)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kfp_mlops.pipelines.quality_gate", description="Train on seeded demo data and fail when a test metric drops below the baseline by more than its tolerance."
    )
    parser.add_argument("--baseline", type=Path, required=True, help="baseline JSON (e.g. .github/quality-baseline.json)")
    parser.add_argument("--rows", type=int, default=None, help=f"demo rows (default: the baseline's; {DEFAULT_ROWS:,} for a new one)")
    parser.add_argument("--seed", type=int, default=None, help=f"demo data seed (default: the baseline's; {DEFAULT_SEED} for a new one)")
    parser.add_argument("--max-epochs", type=int, default=None, help="train's max_epochs (default: the baseline's, else the pipeline's)")
    parser.add_argument("--record", action="store_true", help="(re)write the baseline from this run instead of comparing")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="with --record: allowed absolute drop of metrics the baseline has no tolerance for yet (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the run goes (default: a temporary folder, removed afterwards)")
    return parser


def _settings(args: argparse.Namespace, baseline: Baseline | None) -> tuple[int, int, dict[str, Any]]:
    """Rows, seed and pipeline arguments of this run: the flags given, else the baseline's, else the defaults."""
    arguments = dict(baseline.arguments) if baseline else {}
    if args.max_epochs is not None:
        arguments["max_epochs"] = args.max_epochs
    rows = args.rows if args.rows is not None else (baseline.rows if baseline else DEFAULT_ROWS)
    seed = args.seed if args.seed is not None else (baseline.seed if baseline else DEFAULT_SEED)
    if rows < 1000:
        raise DataError(f"--rows {rows} is too few to split into train, validation and test reliably", fix="use 1000 rows or more")
    return rows, seed, arguments


def _measure(args: argparse.Namespace, rows: int, seed: int, arguments: dict[str, Any]) -> dict[str, float]:
    print(f"quality gate: training pipeline on {rows:,} demo rows (seed {seed}){f', arguments {arguments}' if arguments else ''}")
    with tempfile.TemporaryDirectory(prefix="kfp-mlops-quality-") as scratch:
        return run_training(rows, seed, arguments, args.workdir or Path(scratch))


def _record(args: argparse.Namespace) -> int:
    if args.tolerance < 0:
        raise DataError(f"--tolerance {args.tolerance} is negative", fix="give the allowed drop as a number of 0 or more")
    previous = None
    if args.baseline.is_file():
        try:
            previous = load_baseline(args.baseline)
        except DataError as exc:
            # Recording is how a broken baseline is repaired: start afresh, with the default tolerances.
            print(f"quality gate: replacing the unreadable baseline: {exc.problem}")
    rows, seed, arguments = _settings(args, previous)
    measured = _measure(args, rows, seed, arguments)
    recorded = baseline_from_run(measured, rows=rows, seed=seed, arguments=arguments, previous=previous, tolerance=args.tolerance)
    write_baseline(args.baseline, recorded)
    print(f"\nrecorded {args.baseline}:\n{table(compare(measured, recorded))}")
    return 0


def _check(args: argparse.Namespace) -> int:
    baseline = load_baseline(args.baseline)
    rows, seed, arguments = _settings(args, baseline)
    if (rows, seed, arguments) != (baseline.rows, baseline.seed, baseline.arguments):
        raise DataError(
            f"this run ({rows} rows, seed {seed}, arguments {arguments}) would not be comparable with the baseline ({baseline.rows} rows, seed {baseline.seed}, arguments {baseline.arguments})",
            where=str(args.baseline),
            fix="leave out --rows, --seed and --max-epochs to use the baseline's, or --record a new baseline",
        )
    measured = _measure(args, rows, seed, arguments)
    comparisons = compare(measured, baseline)
    print("\n" + table(comparisons, {k: v for k, v in measured.items() if k not in baseline.metrics}))
    failures = failure_lines(comparisons)
    if failures:
        print(f"\nquality gate FAILED: {len(failures)} metric(s) dropped by more than the allowed drop:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        print(f"If the drop is intended, record a new baseline: python -m kfp_mlops.pipelines.quality_gate --baseline {args.baseline} --record", file=sys.stderr)
        return 1
    print(f"\nquality gate passed: {len(comparisons)} metric(s) within their allowed drop of {args.baseline}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _record(args) if args.record else _check(args)
    except KfpMlopsError as exc:
        print(f"quality gate: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
