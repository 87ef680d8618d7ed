"""A monitoring run over one or many registered models: resolve, load profiles, read current data, decide, report.

The component and the CLI call ``run_monitor``; everything it needs from the environment
(the tracking URI) is handed in, and every output file is written atomically.
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa

from kfp_mlops.components._shared.atomic import write_text_atomic
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import require_existing_store, resolve_tracking_uri
from kfp_mlops.components.monitor import sources
from kfp_mlops.components.monitor.core import MonitorSettings, check_overrides, monitor, parse_overrides
from kfp_mlops.components.monitor.reference import ModelProfile
from kfp_mlops.components.monitor.report import summary_html, summary_markdown
from kfp_mlops.components.monitor.report_metrics import summary_metrics
from kfp_mlops.components.monitor.results import MonitorResult
from kfp_mlops.components.monitor.store import load_profile, resolve_version
from kfp_mlops.components.register.registry import Registry, Version

MAX_MODELS = 200
SCORE_ROWS = 16_384


@dataclass(frozen=True)
class MonitorRequest:
    """The monitor component's parameters, as plain values (see the component's docstring)."""

    current_path: str = ""
    model_names: str = "kfp-mlops-model"
    model_tag: str = ""
    model_version: str = "champion"
    log_sink: str = ""
    window_hours: float = 24.0
    window_end: str = ""
    column_methods: str = ""
    drift_share: float = 0.5
    min_rows: int = 100
    score_with_model: bool = True
    evidently_sample_rows: int = 5000
    evidently_parity: bool = False
    mlflow_tracking_uri: str = ""


@dataclass
class MonitorOutcome:
    results: list[MonitorResult]
    metrics: dict[str, float]
    text: str
    retrain: bool
    drift_detected: bool
    seconds: dict[str, float] = field(default_factory=dict)


def check_request(request: MonitorRequest) -> tuple[MonitorSettings, tuple[datetime | None, datetime | None]]:
    """Every parameter checked before anything is read; returns the settings and the log window."""
    if bool(request.current_path) == bool(request.log_sink):
        raise DataError("give exactly one source of current data: a current Dataset or a log_sink", fix="pass the ingest output as current, or the model server's log sink as log_sink")
    if not 0 < request.drift_share <= 1:
        raise DataError(f"drift_share must be in (0, 1], not {request.drift_share}", fix="use e.g. 0.5 (Evidently's default)")
    if request.min_rows < 0 or request.evidently_sample_rows < 0:
        raise DataError("min_rows and evidently_sample_rows must not be negative", fix="use 0 or more")
    if request.model_tag and request.model_tag.count("=") != 1:
        raise DataError(f"model_tag {request.model_tag!r} is not key=value", fix="e.g. team=fraud")
    settings = MonitorSettings(drift_share=request.drift_share, overrides=parse_overrides(request.column_methods), min_rows=request.min_rows, evidently_parity=request.evidently_parity)
    window: tuple[datetime | None, datetime | None] = (None, None)
    if request.log_sink:
        if not 0 < request.window_hours <= 24 * 366:
            raise DataError(f"window_hours must be in (0, 8784], not {request.window_hours}", fix="use e.g. 24 for the last day")
        end = datetime.now(timezone.utc)
        if request.window_end:
            try:
                end = datetime.fromisoformat(request.window_end)
            except ValueError as exc:
                raise DataError(f"window_end {request.window_end!r} is not an ISO 8601 time", fix="e.g. 2026-11-28T00:00:00+00:00") from exc
            if end.tzinfo is None:
                raise DataError("window_end has no timezone", fix="add one, e.g. +00:00")
        try:
            window = (end - timedelta(hours=request.window_hours), end)
        except OverflowError as exc:
            raise DataError(f"window_end {request.window_end!r} minus {request.window_hours} hours is before year 1", fix="give a window within the log's dates") from exc
    return settings, window


def watched_models(registry: Registry, request: MonitorRequest) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in request.model_names.split(",") if n.strip()))
    if request.model_tag:
        key, value = request.model_tag.split("=")
        names += [n for n in registry.models_tagged(key.strip(), value.strip()) if n not in names]
    if not names:
        raise DataError("no model to monitor", fix="name models in model_names, or tag registered models and pass model_tag")
    if len(names) > MAX_MODELS:
        raise DataError(f"{len(names)} models match; one run watches at most {MAX_MODELS}", fix="split them over several runs by tag")
    return names


def run_monitor(request: MonitorRequest, *, environment: Mapping[str, str], report_path: str, summary_path: str, evidently_path: str = "") -> MonitorOutcome:
    started = time.perf_counter()
    settings, window = check_request(request)
    tracking_uri = resolve_tracking_uri(request.mlflow_tracking_uri, environment)
    require_existing_store(tracking_uri)
    registry = Registry(tracking_uri)
    names = watched_models(registry, request)
    results, first, failures = [], None, []
    for name in names:
        try:
            version = resolve_version(registry, name, request.model_version)
            profile = load_profile(registry, version)
            check_overrides(profile, settings.overrides)
            current = _current(request, profile, name, window)
            with tempfile.TemporaryDirectory(prefix="monitor-model-") as scratch:
                scorer = _scorer(registry, version, Path(scratch)) if request.score_with_model and not request.log_sink else None
                results.append(monitor(profile, current, model_name=name, model_version=version.version, settings=settings, scorer=scorer))
        except DataError as exc:
            if len(names) == 1:
                raise
            # One broken model must not blind the run to the others: it is reported, they are monitored.
            failures.append(exc)
            results.append(MonitorResult(name, "", "", 0, error=str(exc), reasons=[f"not monitored: {exc.problem}" + (f" ({exc.where})" if exc.where else "")], warnings=[exc.fix] if exc.fix else []))
            continue
        first = first or (profile, name)
    if len(failures) == len(names):
        raise failures[0]
    write_text_atomic(report_path, summary_html(results))
    write_text_atomic(summary_path, summary_markdown(results))
    if evidently_path:
        write_text_atomic(evidently_path, _evidently_page(request, first[0], first[1], window))
    for failure in failures:
        print(f"not monitored: {failure}")
    retrain, drifted = any(r.retrain for r in results), any(r.drift_detected for r in results)
    text = "\n".join(
        f"{r.model_name} v{r.model_version}: {r.n_rows} rows, drift share {r.drift_share:.0%}, drift {'yes' if r.drift_detected else 'no'}, retrain {'yes' if r.retrain else 'no'}: {'; '.join(r.reasons)}"
        for r in results
    )
    return MonitorOutcome(results, summary_metrics(results), text, retrain, drifted, {"total": time.perf_counter() - started})


def _current(request: MonitorRequest, profile: ModelProfile, name: str, window: tuple[datetime | None, datetime | None]) -> sources.CurrentData:
    if request.log_sink:
        return sources.prediction_logs(request.log_sink, model_name=name, since=window[0], until=window[1], label_column=profile.label)
    # Only the model's inputs and its label: a user's column named like the model's output is data, not a score.
    return sources.dataset(request.current_path, columns=list(dict.fromkeys([*profile.columns, profile.label])))


def _scorer(registry: Registry, version: Version, scratch: Path):
    """The registered model's serving transform (files checked against the registry's hashes), as a scorer."""
    from kfp_mlops.components.serve.model_source import load_registered_version

    transform = load_registered_version(registry, version.name, version.version, scratch)

    def score(table: pa.Table) -> np.ndarray:
        # Small slices: the network's activations for a whole read batch would take gigabytes.
        parts = [transform.predict_table(table.slice(start, SCORE_ROWS), "current data") for start in range(0, table.num_rows, SCORE_ROWS)]
        return np.concatenate(parts) if parts else transform.predict_table(table, "current data")

    return score


def _evidently_page(request: MonitorRequest, profile: ModelProfile, name: str, window: tuple[datetime | None, datetime | None]) -> str:
    from kfp_mlops.components.monitor.evidently_report import evidently_html

    if not request.evidently_sample_rows:
        return "<!doctype html><p>Evidently report skipped (evidently_sample_rows = 0).</p>"
    if request.log_sink:
        current = _current(request, profile, name, window)
        table = pa.Table.from_batches(list(current.batches), schema=current.schema)
    else:
        table = _sample_dataset(request.current_path, request.evidently_sample_rows)
    if table.num_rows > request.evidently_sample_rows:
        picked = np.sort(np.random.default_rng(0).choice(table.num_rows, request.evidently_sample_rows, replace=False))
        table = table.take(pa.array(picked))
    if not table.num_rows:
        return "<!doctype html><p>No current rows: no Evidently report.</p>"
    try:
        return evidently_html(profile, table)
    except Exception as exc:  # noqa: BLE001 - Evidently's page is an extra: our verdicts and report stand without it
        print(f"Evidently's report could not be made on this sample ({type(exc).__name__}: {str(exc)[:300]}); the monitor's own report has the verdicts")
        return f"<!doctype html><meta charset='utf-8'><p>Evidently could not render this sample: {html.escape(type(exc).__name__)}: {html.escape(str(exc)[:500])}</p><p>The monitor's own report has the verdicts.</p>"


def _sample_dataset(path: str, rows: int) -> pa.Table:
    import pyarrow.dataset as ds

    data = ds.dataset(path, format="parquet")
    total = data.count_rows()
    picked = np.sort(np.random.default_rng(0).choice(total, min(rows, total), replace=False))
    return data.take(pa.array(picked))
