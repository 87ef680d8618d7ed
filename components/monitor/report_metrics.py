"""The flat KFP metrics of a monitoring run, and the one order of columns (drifted first, strongest
evidence first) that the metrics, the HTML page and the Markdown all use."""

from __future__ import annotations

import math

from kfp_mlops.components._shared.metric_keys import metric_keys
from kfp_mlops.components.monitor.drift import P_VALUE_METHODS
from kfp_mlops.components.monitor.results import ERROR, WARNING, ColumnDrift, MonitorResult

MAX_METRIC_COLUMNS = 50


def _evidence(drift: ColumnDrift) -> float:
    """How far past its threshold a score is (1 at the threshold), comparable across methods; NaN scores last."""
    if not (math.isfinite(drift.score) and drift.threshold > 0):
        return -math.inf
    if drift.method in P_VALUE_METHODS:
        return math.log(max(drift.score, 1e-300)) / math.log(min(drift.threshold, 1 - 1e-12))
    return drift.score / drift.threshold


def sorted_columns(columns: list[ColumnDrift]) -> list[ColumnDrift]:
    """Drifted columns first, each group strongest evidence first, no-verdict columns last (stable)."""
    return sorted(columns, key=lambda c: (not c.drifted, -_evidence(c)))


def _model_metrics(r: MonitorResult) -> dict[str, float]:
    out: dict[str, float] = {
        "rows": r.n_rows,
        "columns": len(r.columns),
        "drifted_columns": len(r.drifted_columns),
        "drift_share": r.drift_share,
        "dataset_drift": r.dataset_drift,
        "schema_drift": r.schema_drift,
        "drift_detected": r.drift_detected,
        "retrain": r.retrain,
        "quality_errors": sum(f.severity == ERROR for f in r.quality),
        "quality_warnings": sum(f.severity == WARNING for f in r.quality),
    }
    if r.prediction is not None:
        out.update(prediction_drift=r.prediction.drifted, prediction_drift_score=r.prediction.score)
    for p in r.performance:
        metric = metric_keys([p.metric], "metric")[0]
        out.update({f"reference_{metric}": p.reference, f"estimated_{metric}": p.estimated, f"realized_{metric}": p.realized, f"alert_{metric}": p.alert})
    if r.performance:
        out["labelled_rows"] = max(p.n_labelled for p in r.performance)
    columns = sorted_columns(r.columns)[:MAX_METRIC_COLUMNS]
    out.update({f"drift_score.{key}": c.score for key, c in zip(metric_keys([c.column for c in columns], "column"), columns)})
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


def summary_metrics(results: list[MonitorResult]) -> dict[str, float]:
    """Flat numeric metrics for KFP's Metrics artifact: finite floats, keys of [A-Za-z0-9_.] only.

    One model gives plain keys (drift_share, drifted_columns, rows, dataset_drift, schema_drift, retrain,
    estimated_<metric>, realized_<metric>, prediction_drift_score, drift_score.<column> for the first
    50 columns, drifted first). Several models prefix every key with ``<model>.`` (the name, with the
    version added when a name repeats) and add models, models_retrain, models_drifted and models_schema_drift.

    Args:
        results: One record per monitored model.

    Returns:
        The metrics; NaN values are left out.
    """
    if len(results) == 1:
        return _model_metrics(results[0])
    names = [r.model_name for r in results]
    labels = [f"{r.model_name}_v{r.model_version}" if names.count(r.model_name) > 1 else r.model_name for r in results]
    out = {
        "models": float(len(results)),
        "models_retrain": float(sum(r.retrain for r in results)),
        "models_drifted": float(sum(r.drift_detected for r in results)),
        "models_schema_drift": float(sum(r.schema_drift for r in results)),
        "models_failed": float(sum(r.failed for r in results)),
    }
    for prefix, result in zip(metric_keys(labels, "model"), results):
        out.update({f"{prefix}.{key}": value for key, value in _model_metrics(result).items()})
    return out
