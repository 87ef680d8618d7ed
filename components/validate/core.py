"""Validate core: statistics, schema (inferred or given), anomalies, report; fail on severity.

Plain Python, no KFP. Outputs are written only when validation passes, each
atomically, so a failed validation leaves no artifact that a later step could
mistake for a validated dataset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kfp_mlops.components._shared.atomic import write_json_atomic, write_text_atomic
from kfp_mlops.components._shared.errors import DataError, ValidationFailedError
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components.validate.checks import SEVERITIES, Anomaly, find_anomalies, infer_schema, severity_rank
from kfp_mlops.components.validate.report import render_report
from kfp_mlops.components.validate.schema import DatasetSchema
from kfp_mlops.components.validate.statistics import DatasetStats, compute_statistics


@dataclass(frozen=True)
class ValidateOptions:
    """What to check.

    Attributes:
        label_column: The label; empty for unlabeled data.
        key_columns: Columns whose combination must be unique.
        fail_on_severity: Fail when an anomaly is at least this severe: error, warning, info or never.
        max_domain_size: A text column with more distinct values is free text, not categorical.
        min_class_share: A label class rarer than this share is reported as imbalance.
    """

    label_column: str = ""
    key_columns: tuple[str, ...] = ()
    fail_on_severity: str = "error"
    max_domain_size: int = 100
    min_class_share: float = 0.01

    def __post_init__(self) -> None:
        # Checked here, when the options are made, so that a typo fails before any data is read.
        severity = str(self.fail_on_severity).strip().lower()
        allowed = (*SEVERITIES, "never")
        if severity not in allowed:
            raise DataError(
                f"unknown failing severity {self.fail_on_severity!r}",
                where="fail_on_severity",
                fix=f"use one of: {', '.join(allowed)}",
            )
        object.__setattr__(self, "fail_on_severity", severity)
        if isinstance(self.max_domain_size, bool) or not isinstance(self.max_domain_size, int) or self.max_domain_size < 1:
            raise DataError(f"max_domain_size must be a positive whole number, got {self.max_domain_size!r}", where="max_domain_size", fix="pass e.g. 100")
        if isinstance(self.min_class_share, bool) or not isinstance(self.min_class_share, (int, float)) or not 0 <= self.min_class_share < 1:
            raise DataError(f"min_class_share must be a share between 0 and 1, got {self.min_class_share!r}", where="min_class_share", fix="pass e.g. 0.01 for 1%")


@dataclass(frozen=True)
class ValidationResult:
    """Everything validate found."""

    stats: DatasetStats
    schema: DatasetSchema
    anomalies: list[Anomaly]
    mode: str
    seconds: float

    @property
    def passed_rank(self) -> int:
        return max((severity_rank(a.severity) for a in self.anomalies), default=-1)

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for the Kubeflow UI."""
        cells = self.stats.rows * max(len(self.stats.columns), 1)
        return {
            "rows": float(self.stats.rows),
            "columns": float(len(self.stats.columns)),
            "anomalies_error": float(sum(a.severity == "error" for a in self.anomalies)),
            "anomalies_warning": float(sum(a.severity == "warning" for a in self.anomalies)),
            "missing_cell_share": sum(c.nulls for c in self.stats.columns) / cells if cells else 0.0,
            "duplicate_keys": float(self.stats.duplicate_keys),
        }


def validate(dataset_path: str | Path, *, options: ValidateOptions = ValidateOptions(), reference_schema: DatasetSchema | None = None) -> ValidationResult:
    """Compute statistics of the Parquet dataset and find anomalies; raise if too severe.

    With ``reference_schema`` the data is checked against it (and the schema is
    passed through); without, a schema is inferred from the data.

    Raises:
        ValidationFailedError: an anomaly reached ``options.fail_on_severity``; the message
            lists every anomaly.
        DataError: the dataset cannot be read.
    """
    threshold = None if options.fail_on_severity == "never" else severity_rank(options.fail_on_severity)
    started = time.perf_counter()
    label = options.label_column or None
    keys = list(options.key_columns) or (reference_schema.key_columns if reference_schema else [])
    stats = compute_statistics(
        dataset_path,
        key_columns=keys,
        categorical_columns=frozenset([label] if label else []),
        max_domain_size=options.max_domain_size,
        reference=reference_schema,
    )
    anomalies = find_anomalies(stats, label_column=label, reference=reference_schema, min_class_share=options.min_class_share)
    schema = reference_schema if reference_schema is not None else infer_schema(stats, label_column=label)
    result = ValidationResult(
        stats=stats,
        schema=schema,
        anomalies=anomalies,
        mode="checked against a schema" if reference_schema is not None else "schema inferred",
        seconds=time.perf_counter() - started,
    )
    failing = [a for a in anomalies if threshold is not None and severity_rank(a.severity) >= threshold]
    if failing:
        listing = "\n".join(f"  - {a}" for a in anomalies)
        raise ValidationFailedError(
            f"{len(failing)} anomal{'y' if len(failing) == 1 else 'ies'} at or above severity {options.fail_on_severity!r}:\n{listing}\n",
            where=str(dataset_path),
            fix="fix the data, or, if a finding is expected, raise the failing severity or update the schema",
        )
    return result


def write_outputs(result: ValidationResult, *, schema_path: str | Path, statistics_path: str | Path, anomalies_path: str | Path, report_path: str | Path, source: str) -> None:
    """Write the schema, statistics, anomalies (JSON) and the HTML report, each atomically.

    ``source`` (shown in the report) is redacted first: it may be a URL with credentials.
    """
    result.schema.save(schema_path)
    write_json_atomic(statistics_path, result.stats.to_dict())
    write_json_atomic(anomalies_path, [a.to_dict() for a in result.anomalies])
    write_text_atomic(report_path, render_report(result.stats, result.anomalies, title="Data validation", source=redact_uri(source), mode=result.mode))
