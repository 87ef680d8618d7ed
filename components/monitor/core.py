"""One monitoring pass: current batches against a model's reference profile, to a MonitorResult.

Schema first (a missing or retyped input is schema drift, not a crash), then one streaming
pass that sketches every input, the model's score and the performance sums, then the
verdicts: per-column drift, data quality, prediction drift, estimated and realized
performance, and the two booleans a pipeline branches on.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.monitor import quality
from kfp_mlops.components.monitor.current import ColumnSketch, is_numeric_type
from kfp_mlops.components.monitor.drift import METHODS, P_VALUE_METHODS, column_drift, drift_columns
from kfp_mlops.components.monitor.performance import MIN_ALERT_LABELS, PerformanceSketch, estimate
from kfp_mlops.components.monitor.profile import FEW_VALUES
from kfp_mlops.components.monitor.reference import ModelProfile, model_outputs
from kfp_mlops.components.monitor.results import ERROR, NUMERIC, MonitorResult
from kfp_mlops.components.monitor.sources import LOGGED_SCORE, PREDICTED, CurrentData

Scorer = Callable[[pa.Table], np.ndarray]


@dataclass(frozen=True)
class MonitorSettings:
    """What counts as drift and as a problem.

    Attributes:
        drift_share: Dataset drift when at least this share of inputs drifted (Evidently's default 0.5).
        overrides: Per column: (method, threshold or None) replacing Evidently's default choice.
        null_rate_increase: A rise of the null share by more than this (absolute) is a quality warning.
        out_of_range_share: More than this share of values outside the reference [min, max] is a warning.
        min_rows: Fewer current rows than this give no retraining advice (too little evidence).
        evidently_parity: Evidently's exact verdicts, its one-sample chi-square included (see drift.default_method).
    """

    drift_share: float = 0.5
    overrides: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    null_rate_increase: float = 0.1
    out_of_range_share: float = 0.05
    min_rows: int = 100
    evidently_parity: bool = False


def parse_overrides(text: str) -> dict[str, tuple[str, float | None]]:
    """``{"col": "ks"}`` or ``{"col": {"method": "wasserstein", "threshold": 0.2}}`` to (method, threshold)."""
    if not text.strip():
        return {}
    fix = 'give a JSON object per column, e.g. {"age": {"method": "ks", "threshold": 0.01}}; methods: ' + ", ".join(METHODS)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"column_methods is not valid JSON ({str(exc)[:200]})", fix=fix) from exc
    if not isinstance(data, dict):
        raise DataError("column_methods is not a JSON object", fix=fix)
    found = {}
    for column, rule in data.items():
        rule = {"method": rule} if isinstance(rule, str) else rule
        if not isinstance(rule, dict) or set(rule) - {"method", "threshold"}:
            raise DataError(f"column_methods[{column!r}] must be a method name or an object with method and threshold", fix=fix)
        method = str(rule.get("method", ""))
        threshold = rule.get("threshold")
        if method and method not in METHODS:
            raise DataError(f"unknown drift method {method!r} for column {column!r}", fix=fix)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < math.inf):
            raise DataError(f"the threshold for column {column!r} must be a positive number", fix=fix)
        found[str(column)] = (method, None if threshold is None else float(threshold))
    return found


def check_overrides(profile: ModelProfile, overrides: dict[str, tuple[str, float | None]]) -> None:
    """Every forced method must fit its column, before any row is read."""
    unknown = sorted(set(overrides) - set(profile.columns))
    if unknown:
        raise DataError(f"column_methods names columns the model does not use: {unknown[:10]}", fix=f"use model inputs: {list(profile.columns)[:20]}")
    for name, (method, threshold) in overrides.items():
        column = profile.columns[name]
        if method in ("ks", "wasserstein") and column.kind != NUMERIC:
            problem = f"{method} needs numbers, and {name!r} is categorical"
        elif method in ("chisquare", "chisquare_evidently", "z") and not column.counts:
            problem = f"{method} needs few distinct values, and {name!r} has more than {FEW_VALUES}"
        elif method == "z" and len(column.counts) > 2:
            problem = f"z compares two values, and {name!r} has {len(column.counts)}"
        elif threshold is not None and (method or "ks") in P_VALUE_METHODS and threshold >= 1:
            problem = f"a p-value threshold must be below 1, not {threshold} (for {name!r})"
        else:
            continue
        raise DataError(f"column_methods: {problem}", fix="ks or wasserstein for numbers, chisquare or jensenshannon for categories, z for two values")


def monitor(
    profile: ModelProfile,
    current: CurrentData,
    *,
    model_name: str,
    model_version: str,
    settings: MonitorSettings | None = None,
    scorer: Scorer | None = None,
) -> MonitorResult:
    """Compare ``current`` with ``profile``; ``scorer`` gives the model's outputs when the data carries none."""
    settings = settings or MonitorSettings()
    started = time.perf_counter()
    result = MonitorResult(model_name, model_version, current.source, 0, drift_share_threshold=settings.drift_share)
    check_overrides(profile, settings.overrides)
    if current.schema.names:  # an empty log window has no columns at all: no rows, not schema drift
        result.quality.extend(quality.schema_findings(profile, current.schema))
    usable = {name: p for name, p in profile.columns.items() if not any(f.column == name and f.severity == ERROR for f in result.quality)}
    sketches = {name: ColumnSketch(p) for name, p in usable.items()}
    score_sketch = ColumnSketch(profile.score)
    performance = PerformanceSketch(profile.performance) if profile.performance else None
    can_score = scorer is not None and len(usable) == len(profile.columns)
    unknown_labels = 0
    for batch in current.batches:
        result.n_rows += batch.num_rows
        for name, sketch in sketches.items():
            sketch.add(batch.column(batch.schema.get_field_index(name)))
        scores, predicted = _model_outputs(profile, batch, scorer if can_score else None)
        if scores is None:
            continue
        score_sketch.add(pa.array(scores))
        if performance is not None:
            labels, unknown = _labels(profile, batch)
            unknown_labels += unknown
            performance.add(scores, predicted, labels)
    sketched = time.perf_counter()
    result.columns = drift_columns(usable, sketches, settings.overrides, evidently_parity=settings.evidently_parity)
    if score_sketch.count:
        result.prediction = column_drift(profile.score, score_sketch)
    if performance is not None and result.n_rows:
        result.performance = estimate(profile.performance, performance)
    result.quality.extend(quality.value_findings(sketches, settings, result.n_rows))
    _decide(result, settings, has_scores=bool(score_sketch.count), could_score=can_score or LOGGED_SCORE in current.schema.names)
    if profile.performance is None and profile.source.get("performance_note"):
        result.warnings.append(f"no performance estimate for this version: {str(profile.source['performance_note'])[:300]}")
    if unknown_labels:
        result.warnings.append(f"{unknown_labels} labels are not among the model's classes {profile.classes[:10]}: those rows count as unlabelled")
    if performance is not None and performance.n_skipped:
        result.warnings.append(f"{performance.n_skipped} rows had no usable model output (NaN score, or a predicted class the model does not have): left out of the performance estimate")
    result.seconds = {"read_and_sketch": sketched - started, "tests": time.perf_counter() - sketched}
    return result


def _model_outputs(profile: ModelProfile, batch: pa.RecordBatch, scorer: Scorer | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Score and predicted class index per row (NaN where unusable): as logged, or from the model."""
    names = batch.schema.names
    if LOGGED_SCORE in names and is_numeric_type(batch.schema.field(LOGGED_SCORE).type):
        scores = batch.column(names.index(LOGGED_SCORE)).to_numpy(zero_copy_only=False).astype(float)
        if PREDICTED in names and profile.classes:
            index = {c: float(i) for i, c in enumerate(profile.classes)}
            predicted = np.array([index.get(v, np.nan) for v in batch.column(names.index(PREDICTED)).to_pylist()])
        else:
            predicted = (scores > 0.5).astype(float)
        return scores, np.where(np.isfinite(scores), predicted, np.nan)
    if scorer is None:
        return None, None
    scores, predicted = model_outputs(profile.task, scorer(pa.Table.from_batches([batch])))
    return scores, np.where(np.isfinite(scores), predicted.astype(float), np.nan)


def _labels(profile: ModelProfile, batch: pa.RecordBatch) -> tuple[np.ndarray | None, int]:
    """Class index per row, NaN where no label (feedback may be partial), and how many labels named no class of the model."""
    index = batch.schema.get_field_index(profile.label)
    if index < 0:
        return None, 0
    codes = {c: float(i) for i, c in enumerate(profile.classes)}
    keys = [_label_key(v) for v in batch.column(index).to_pylist()]
    out = np.array([np.nan if key is None else codes.get(key, np.nan) for key in keys])
    given = len(keys) - keys.count(None)
    return out, int(given - np.isfinite(out).sum())


def _label_key(value: object) -> str | None:
    """A label as the model's classes are written: whole floats as integers; None when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):  # as Arrow casts booleans to text, which is how the classes were written
        return "true" if value else "false"
    return str(value)


def _listed(names: list[str], shown: int = 10) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _decide(result: MonitorResult, settings: MonitorSettings, *, has_scores: bool, could_score: bool) -> None:
    tested = [c for c in result.columns if not math.isnan(c.score)]
    drifted = [c.column for c in tested if c.drifted]
    result.drift_share = len(drifted) / len(tested) if tested else 0.0
    result.dataset_drift = bool(tested) and result.drift_share >= settings.drift_share
    result.schema_drift = any(f.check in ("missing_column", "wrong_type") for f in result.quality)
    broken = [f for f in result.quality if f.severity == ERROR and f.check not in ("missing_column", "wrong_type", "empty")]
    prediction_drift = result.prediction is not None and result.prediction.drifted
    alerts = [p for p in result.performance if p.alert]
    reasons = result.reasons
    if not result.n_rows:
        reasons.append("no current rows: nothing to compare (check the window or the data source)")
    if result.dataset_drift:
        reasons.append(f"dataset drift: {len(drifted)} of {len(tested)} inputs drifted ({result.drift_share:.0%} >= {settings.drift_share:.0%}): {_listed(drifted)}")
    elif drifted:
        reasons.append(f"{len(drifted)} of {len(tested)} inputs drifted ({_listed(drifted)}), below the dataset drift share {settings.drift_share:.0%}")
    if result.schema_drift:
        missing = [f.column for f in result.quality if f.check == "missing_column"]
        retyped = [f.column for f in result.quality if f.check == "wrong_type"]
        parts = ([f"{len(missing)} inputs missing ({_listed(missing)})"] if missing else []) + ([f"{len(retyped)} inputs no longer numbers ({_listed(retyped)})"] if retyped else [])
        reasons.append("schema drift: " + "; ".join(parts))
    reasons.extend(f.message for f in broken)
    if prediction_drift:
        reasons.append(f"prediction drift: the model's score distribution moved ({result.prediction.method} {result.prediction.score:.3g})")
    for alert in alerts:
        realized = alert.realized if alert.n_labelled >= MIN_ALERT_LABELS else math.nan
        below = [f"{how} {value:.3f}" for how, value in (("realized", realized), ("estimated", alert.estimated)) if value < alert.alert_below]
        reasons.append(f"performance alert: {alert.metric} {' and '.join(below)} below {alert.alert_below:.3f} (reference {alert.reference:.3f})")
    result.drift_detected = result.dataset_drift or result.schema_drift or prediction_drift or bool(broken)
    wants = result.dataset_drift or bool(alerts)
    result.retrain = wants and not result.schema_drift and result.n_rows >= settings.min_rows
    if wants and result.schema_drift:
        reasons.append("no retraining: the current data lacks inputs the model needs; fix the data pipeline first")
    elif wants and result.n_rows < settings.min_rows:
        reasons.append(f"no retraining: {result.n_rows} rows are fewer than min_rows {settings.min_rows}")
    if not has_scores and not could_score:
        result.warnings.append("no prediction drift or performance estimate: the data carries no model score and the model was not loaded to score it")
    if not result.drift_detected and not alerts and not drifted and result.n_rows:
        reasons.append("no drift: every test passed")
