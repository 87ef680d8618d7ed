"""Validate core: statistics, schema (inferred or given), anomalies, report; fail on severity.

One streaming pass computes the statistics and, on the side, a uniform row sample,
the label's values and, given a Great Expectations suite, what its expectations
need. From those: the label's task and problems (by train's own rule), label leakage
(on the sample), against a reference schema ranges, domains and distribution skew,
and against a suite each expectation's outcome.

Plain Python, no KFP. Outputs are written only when validation passes, each
atomically, so a failed validation leaves no artifact that a later step could
mistake for a validated dataset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kfp_mlops.components._shared.atomic import write_json_atomic, write_text_atomic
from kfp_mlops.components._shared.errors import DataError, ValidationFailedError
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components._shared.task import check_task_name
from kfp_mlops.components.validate import distribution
from kfp_mlops.components.validate.checks import SEVERITIES, Anomaly, find_anomalies, infer_schema, severity_rank, sort_anomalies
from kfp_mlops.components.validate.gx_checks import Outcome, SuiteChecker
from kfp_mlops.components.validate.gx_suite import ExpectationSuite
from kfp_mlops.components.validate.labels import check_label
from kfp_mlops.components.validate.leakage import Leak, find_leaks
from kfp_mlops.components.validate.report import render_report
from kfp_mlops.components.validate.sample import LabelTracker, RowSampler
from kfp_mlops.components.validate.schema import DatasetSchema
from kfp_mlops.components.validate.statistics import DatasetStats, compute_statistics, read_schema


@dataclass(frozen=True)
class ValidateOptions:
    """What to check.

    Attributes:
        label_column: The label; empty for unlabeled data.
        key_columns: Columns whose combination must be unique.
        fail_on_severity: Fail when an anomaly is at least this severe: error, warning, info or never.
        max_domain_size: A text column with more distinct values is free text, not categorical.
        min_class_share: A label class rarer than this share is reported as imbalance.
        task: auto, binary, multiclass or regression: the task train will be asked for
            (the same rule decides it, so label problems surface here).
        accept_leaks: Columns allowed to predict the label almost perfectly (a leak whose
            columns are all listed is reported as info, not as an error).
        exclude_columns: Columns training will leave out of the features: not checked for leaks.
        skew_threshold: Largest distribution distance to a reference schema's histograms
            that passes (per column, the schema's skew_threshold wins).
    """

    label_column: str = ""
    key_columns: tuple[str, ...] = ()
    fail_on_severity: str = "error"
    max_domain_size: int = 100
    min_class_share: float = 0.01
    task: str = "auto"
    accept_leaks: tuple[str, ...] = ()
    exclude_columns: tuple[str, ...] = ()
    skew_threshold: float = distribution.DEFAULT_THRESHOLD

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
        object.__setattr__(self, "task", check_task_name(self.task))
        if isinstance(self.skew_threshold, bool) or not isinstance(self.skew_threshold, (int, float)) or not 0 < self.skew_threshold <= 1:
            raise DataError(f"skew_threshold must be a distance in (0, 1], got {self.skew_threshold!r}", where="skew_threshold", fix="pass e.g. 0.1")
        object.__setattr__(self, "accept_leaks", tuple(str(c).strip() for c in self.accept_leaks if str(c).strip()))
        object.__setattr__(self, "exclude_columns", tuple(str(c).strip() for c in self.exclude_columns if str(c).strip()))


@dataclass(frozen=True)
class ValidationResult:
    """Everything validate found."""

    stats: DatasetStats
    schema: DatasetSchema
    anomalies: list[Anomaly]
    mode: str
    seconds: float
    task: str | None = None
    expectations: tuple[Outcome, ...] = ()

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
        } | ({"expectations": float(len(self.expectations)), "expectations_failed": float(sum(not o.success for o in self.expectations))} if self.expectations else {})


def validate(
    dataset_path: str | Path,
    *,
    options: ValidateOptions = ValidateOptions(),
    reference_schema: DatasetSchema | None = None,
    expectation_suite: ExpectationSuite | None = None,
) -> ValidationResult:
    """Compute statistics of the Parquet dataset and find anomalies; raise if too severe.

    With ``reference_schema`` the data is checked against it (and the schema is
    passed through); without, a schema is inferred from the data. With
    ``expectation_suite`` (parsed by ``gx_suite``) each expectation is enforced in the
    same pass, and each one that fails is an anomaly of its severity.

    Raises:
        ValidationFailedError: an anomaly reached ``options.fail_on_severity``; the message
            lists every anomaly.
        DataError: the dataset cannot be read.
    """
    threshold = None if options.fail_on_severity == "never" else severity_rank(options.fail_on_severity)
    started = time.perf_counter()
    label = options.label_column or None
    keys = list(options.key_columns) or (reference_schema.key_columns if reference_schema else [])
    not_features = frozenset(keys) | frozenset(reference_schema.key_columns if reference_schema else [])
    sampler = RowSampler()
    tracker = LabelTracker(label) if label else None
    # The suite's columns and types are checked against the file's footer: no row is read for that.
    checker = SuiteChecker(expectation_suite, read_schema(dataset_path)) if expectation_suite is not None else None
    try:
        stats = compute_statistics(
            dataset_path,
            key_columns=keys,
            categorical_columns=frozenset([label] if label else []),
            max_domain_size=options.max_domain_size,
            reference=reference_schema,
            observers=tuple(o for o in (sampler, tracker, checker) if o is not None),
        )
        outcomes = tuple(checker.finish(stats)) if checker is not None else ()
    finally:
        if checker is not None:
            checker.close()  # its spill files, also when the pass failed
    sample = sampler.table()
    anomalies = find_anomalies(stats, label_column=label, reference=reference_schema)
    anomalies += [o.anomaly() for o in outcomes if not o.success]
    task, classes = None, []
    if tracker is not None:
        verdict = check_label(tracker, stats, requested=options.task, reference=reference_schema, min_class_share=options.min_class_share)
        anomalies += verdict.anomalies
        task, classes = verdict.task, verdict.classes
        if task is not None and sample is not None:
            anomalies += _leak_anomalies(find_leaks(sample, label=tracker.label, task=task, classes=classes, skip=not_features | frozenset(options.exclude_columns)), options.accept_leaks, stats)
    if reference_schema is not None:
        anomalies += _skew_anomalies(stats, sample, reference_schema, not_features, options.skew_threshold)
        schema = reference_schema
    else:
        histograms = {st.name: h for st in stats.columns if st.name not in not_features and (h := distribution.histogram_of(st, sample, st.kind)) is not None}
        schema = infer_schema(stats, label_column=label, label_classes=classes or None, histograms=histograms)
    anomalies = sort_anomalies(anomalies)
    result = ValidationResult(
        stats=stats,
        schema=schema,
        anomalies=anomalies,
        mode=_mode(reference_schema, expectation_suite),
        seconds=time.perf_counter() - started,
        task=task,
        expectations=outcomes,
    )
    failing = [a for a in anomalies if threshold is not None and severity_rank(a.severity) >= threshold]
    if failing:
        listing = "\n".join(f"  - {a}" for a in anomalies)
        raise ValidationFailedError(
            f"{len(failing)} anomal{'y' if len(failing) == 1 else 'ies'} at or above severity {options.fail_on_severity!r}:\n{listing}\n",
            where=str(dataset_path),
            fix="fix the data as each finding says; a finding you expect and accept can be let through with fail_on_severity (--fail-on-severity) or a reference schema that allows it",
        )
    return result


def _mode(reference: DatasetSchema | None, suite: ExpectationSuite | None) -> str:
    checked = (["a schema"] if reference is not None else []) + ([f"Great Expectations suite {suite.name!r} ({len(suite.expectations)} expectations)"] if suite is not None else [])
    if not checked:
        return "schema inferred"
    return "checked against " + " and ".join(checked) + ("" if reference is not None else "; schema inferred")


def _leak_anomalies(leaks: list[Leak], accepted: tuple[str, ...], stats: DatasetStats) -> list[Anomaly]:
    found = []
    for leak in leaks:
        columns = ",".join(leak.columns)
        if set(leak.columns) <= set(accepted):
            found.append(Anomaly("info", "accepted_leak", columns, leak.description, "accepted by accept_leaks; remove them from it to have training refused again"))
            continue
        found.append(
            Anomaly(
                "error",
                "label_leak",
                columns,
                f"{leak.description}: a model would learn the answer, not the task",
                f"if these columns are not known when a prediction is made, leave them out of the features: exclude_columns={columns!r} "
                f"(kfp-mlops run training --exclude-columns {columns}); if they are, accept them: accept_leaks={columns!r} (--accept-leaks {columns})",
            )
        )
    unknown = [c for c in accepted if stats.column(c) is None]
    if unknown:
        found.append(Anomaly("warning", "unknown_accepted_leak", ",".join(unknown), f"accept_leaks names columns the dataset does not have: {unknown}", "correct the names in accept_leaks"))
    return found


def _skew_anomalies(stats: DatasetStats, sample: pa.Table | None, reference: DatasetSchema, not_features: frozenset[str], default_threshold: float) -> list[Anomaly]:
    found = []
    for st in stats.columns:
        ref = reference.column(st.name)
        if ref is None or st.name in not_features:
            continue
        skew = distribution.compare(st, sample, ref, default_threshold)
        if skew is not None:
            found.append(
                Anomaly(
                    "warning",
                    "distribution_skew",
                    st.name,
                    f"{skew.measure} {skew.distance:.3f} from the schema's distribution (threshold {skew.threshold:g}): {skew.detail}",
                    "check the source for a change (units, filters, population); if the change is expected, re-infer the schema from recent data or raise this column's skew_threshold in the schema",
                )
            )
    return found


def write_outputs(result: ValidationResult, *, schema_path: str | Path, statistics_path: str | Path, anomalies_path: str | Path, report_path: str | Path, source: str) -> None:
    """Write the schema, statistics, anomalies (JSON) and the HTML report, each atomically.

    ``source`` (shown in the report) is redacted first: it may be a URL with credentials.
    """
    result.schema.save(schema_path)
    write_json_atomic(statistics_path, result.stats.to_dict())
    write_json_atomic(anomalies_path, [a.to_dict() for a in result.anomalies])
    write_text_atomic(report_path, render_report(result.stats, result.anomalies, title="Data validation", source=redact_uri(source), mode=result.mode))
