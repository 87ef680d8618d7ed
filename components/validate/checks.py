"""Anomalies: what is wrong with a dataset, how bad, where, and what to do.

``infer_schema`` turns statistics into a schema; ``find_anomalies`` checks the
statistics against the rules every dataset must meet and, when given, against a
reference schema (for example the training schema, to catch serving skew). The
label's own checks are in ``labels``, leakage in ``leakage``, distribution skew in
``distribution``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from kfp_mlops.components.validate.schema import ColumnSchema, DatasetSchema
from kfp_mlops.components.validate.statistics import DatasetStats

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Anomaly:
    """One finding.

    Attributes:
        severity: info, warning or error.
        code: Stable identifier (``duplicate_keys``, ``new_category``, ...).
        column: The column concerned, or empty for the dataset as a whole.
        message: What is wrong, with counts and examples.
        fix: What to do about it.
    """

    severity: str
    code: str
    column: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"column {self.column!r}: " if self.column else ""
        return f"[{self.severity}] {self.code}: {where}{self.message} ({self.fix})"


def severity_rank(severity: str) -> int:
    """Order of severities; unknown names raise ValueError."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; use one of {SEVERITIES} or 'never'")
    return SEVERITIES.index(severity)


def sort_anomalies(found: Iterable[Anomaly]) -> list[Anomaly]:
    """Errors first, then by column and check."""
    return sorted(found, key=lambda a: (-severity_rank(a.severity), a.column, a.code))


def infer_schema(
    stats: DatasetStats,
    *,
    label_column: str | None,
    label_classes: list[str] | None = None,
    histograms: dict[str, dict[str, Any]] | None = None,
) -> DatasetSchema:
    """The schema the data as seen satisfies: observed types, nullability, ranges, domains and distributions.

    Keys get no range and no histogram: ids and event times of later data are new by design.
    """
    keys = set(stats.key_columns)
    columns = []
    for st in stats.columns:
        kind = "text" if st.kind == "categorical" and st.distinct_capped else st.kind
        ranged = kind in ("integer", "float") and st.name not in keys
        columns.append(
            ColumnSchema(
                name=st.name,
                type=st.type,
                kind=kind,
                nullable=st.nulls > 0,
                min=st.min if ranged else None,
                max=st.max if ranged else None,
                domain=sorted(st.value_counts) if kind == "categorical" else None,
                histogram=(histograms or {}).get(st.name) if st.name not in keys else None,
            )
        )
    present = label_column is not None and stats.column(label_column) is not None
    return DatasetSchema(
        columns=columns,
        key_columns=[k for k in stats.key_columns if stats.column(k) is not None],
        label_column=label_column if present else None,
        label_classes=label_classes if present else None,
    )


Add = Callable[[str, str, str, str, str], None]


def find_anomalies(stats: DatasetStats, *, label_column: str | None, reference: DatasetSchema | None = None) -> list[Anomaly]:
    """Every anomaly of the dataset as a whole, its keys and, when given, against ``reference``; errors first."""
    found: list[Anomaly] = []
    add: Add = lambda sev, code, col, msg, fix: found.append(Anomaly(sev, code, col, msg, fix))  # noqa: E731

    if stats.rows == 0:
        add("error", "empty_dataset", "", "the dataset has no rows", "check the ingest source")
    for st in stats.columns:
        if st.name == label_column:
            continue  # the label's checks say what an empty or odd label means for training
        if stats.rows and st.nulls == st.count:
            add("error", "all_null", st.name, f"all {st.count:,} values are null", "drop the column or fix the export that fills it")
        elif st.nan or st.inf:
            add("warning", "non_finite", st.name, f"{st.nan:,} NaN and {st.inf:,} infinite values", "impute or drop them before training")
    _check_missing(stats, label_column, reference, add)
    _check_keys(stats, add)
    if reference is not None:
        _check_against(stats, reference, add)
    return sort_anomalies(found)


def _check_missing(stats: DatasetStats, label_column: str | None, reference: DatasetSchema | None, add: Add) -> None:
    """Every column that should be there and is not, in one finding: fixing them one run at a time wastes runs."""
    present = {c.name for c in stats.columns}
    parts, missing = [], []
    if label_column and label_column not in present:
        parts.append(f"label column not found: {label_column!r}")
        missing.append(label_column)
    keys = [k for k in stats.key_columns if k not in present and k not in missing]
    if keys:
        parts.append(f"key columns not found: {keys}")
        missing += keys
    if reference is not None:
        schema_only = [c.name for c in reference.columns if c.name not in present and c.name not in missing]
        if schema_only:
            parts.append(f"columns in the schema not found: {schema_only}")
            missing += schema_only
    if not parts:
        return
    code = "missing_label" if label_column in missing else "missing_key_column" if keys and len(keys) == len(missing) else "missing_column"
    names = [c.name for c in stats.columns]
    listing = f"{names[:30]}" + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    add("error", code, ",".join(missing), f"{'; '.join(parts)}; the dataset's columns are {listing}", "pass the right column names, restore the columns in the export, or update the schema")


def _check_keys(stats: DatasetStats, add: Add) -> None:
    for key in stats.key_columns:
        st = stats.column(key)
        if st is not None and st.nulls:
            add("error", "null_key", key, f"{st.nulls:,} rows have a null key", "drop or repair those rows")
    if stats.duplicate_keys:
        rows = ", ".join(str(r) for r in stats.duplicate_key_examples)
        add(
            "error",
            "duplicate_keys",
            ",".join(stats.key_columns),
            f"{stats.duplicate_keys:,} rows repeat an earlier key (rows {rows}, 1-based)",
            "deduplicate, or add the column that tells the rows apart (e.g. the event timestamp) to the key",
        )


def _check_against(stats: DatasetStats, reference: DatasetSchema, add: Add) -> None:
    known = {c.name for c in reference.columns}
    # Ids (a generated row_id too) and event times of new data lie outside the training range by design.
    keys = set(reference.key_columns) | set(stats.key_columns)
    for st in stats.columns:
        ref = reference.column(st.name)
        if st.name not in known or ref is None:
            add("warning", "new_column", st.name, f"column not in the schema (type {st.type})", "add it to the schema if it is intended")
            continue
        numeric = {ref.kind, st.kind} <= {"integer", "float"}
        if not (ref.kind == st.kind or numeric or (ref.kind == "text" and st.kind == "categorical")):
            add("error", "type_mismatch", st.name, f"type {st.type} ({st.kind}), schema says {ref.type} ({ref.kind})", "fix the export, or update the schema")
            continue
        if st.type != ref.type:
            add("info", "type_width", st.name, f"type {st.type}, schema says {ref.type}", "harmless if the values fit")
        if st.nulls and not ref.nullable:
            add("warning", "unexpected_nulls", st.name, f"{st.nulls:,} nulls ({st.null_fraction:.2%}) in a column the schema marks non-nullable", "impute, or mark the column nullable")
        if st.out_of_range and st.name not in keys:
            share = st.out_of_range / max(st.count, 1)
            add(
                "warning",
                "out_of_range",
                st.name,
                f"{st.out_of_range:,} values ({share:.2%}) outside [{ref.min}, {ref.max}]; seen [{st.min}, {st.max}]",
                "check units and the source, or widen the range in the schema",
            )
        if st.out_of_domain:
            examples = ", ".join(repr(v) for v in st.unseen_examples)
            add("warning", "new_category", st.name, f"{st.out_of_domain:,} values outside the domain, e.g. {examples}", "map them to known values, or add them to the schema's domain")
