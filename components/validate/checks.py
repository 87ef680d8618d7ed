"""Anomalies: what is wrong with a dataset, how bad, where, and what to do.

``infer_schema`` turns statistics into a schema; ``find_anomalies`` checks the
statistics against the rules every dataset must meet and, when given, against a
reference schema (for example the training schema, to catch serving skew).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kfp_mlops.components.validate.schema import ColumnSchema, DatasetSchema
from kfp_mlops.components.validate.statistics import ColumnStats, DatasetStats

SEVERITIES = ("info", "warning", "error")
MAX_LABEL_CLASSES = 50


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


def is_classification(stats: ColumnStats) -> bool:
    """A label with few distinct values (text, boolean or integer) is a class label."""
    if stats.kind in ("categorical", "boolean"):
        return not stats.distinct_capped
    return stats.kind == "integer" and not stats.distinct_capped and 0 < len(stats.value_counts) <= MAX_LABEL_CLASSES


def infer_schema(stats: DatasetStats, *, label_column: str | None) -> DatasetSchema:
    """The schema the data as seen satisfies: observed types, nullability, ranges and domains."""
    columns = []
    for st in stats.columns:
        kind = "text" if st.kind == "categorical" and st.distinct_capped else st.kind
        numeric = kind in ("integer", "float")
        columns.append(
            ColumnSchema(
                name=st.name,
                type=st.type,
                kind=kind,
                nullable=st.nulls > 0,
                min=st.min if numeric else None,
                max=st.max if numeric else None,
                domain=sorted(st.value_counts) if kind == "categorical" else None,
            )
        )
    label = stats.column(label_column) if label_column else None
    classes = sorted(label.value_counts) if label is not None and is_classification(label) else None
    return DatasetSchema(
        columns=columns,
        key_columns=[k for k in stats.key_columns if stats.column(k) is not None],
        label_column=label_column if label is not None else None,
        label_classes=classes,
    )


def find_anomalies(
    stats: DatasetStats,
    *,
    label_column: str | None,
    reference: DatasetSchema | None = None,
    min_class_share: float = 0.01,
) -> list[Anomaly]:
    """Every anomaly in ``stats``, errors first."""
    found: list[Anomaly] = []
    add = lambda sev, code, col, msg, fix: found.append(Anomaly(sev, code, col, msg, fix))  # noqa: E731

    if stats.rows == 0:
        add("error", "empty_dataset", "", "the dataset has no rows", "check the ingest source")
    for st in stats.columns:
        if stats.rows and st.nulls == st.count:
            add("error", "all_null", st.name, f"all {st.count:,} values are null", "drop the column or fix the export that fills it")
        elif st.nan or st.inf:
            add("warning", "non_finite", st.name, f"{st.nan:,} NaN and {st.inf:,} infinite values", "impute or drop them before training")
    _check_keys(stats, add)
    if label_column:
        _check_label(stats, label_column, reference, min_class_share, add)
    if reference is not None:
        _check_against(stats, reference, add)
    return sorted(found, key=lambda a: (-severity_rank(a.severity), a.column, a.code))


def _check_keys(stats: DatasetStats, add) -> None:
    for key in stats.key_columns:
        st = stats.column(key)
        if st is None:
            add("error", "missing_key_column", key, "key column is missing", "pass the right key columns or fix the data")
        elif st.nulls:
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


def _check_label(stats: DatasetStats, label_column: str, reference: DatasetSchema | None, min_share: float, add) -> None:
    st = stats.column(label_column)
    if st is None:
        names = [c.name for c in stats.columns][:30]
        add("error", "missing_label", label_column, f"label column not found; columns are {names}", "pass the right label column")
        return
    if st.nulls and st.nulls < st.count:
        add("error", "null_label", label_column, f"{st.nulls:,} rows have no label", "drop unlabeled rows before training")
    if not is_classification(st) or not st.value_counts:
        return
    counts = st.value_counts
    if len(counts) == 1:
        only = next(iter(counts))
        add("error", "single_class", label_column, f"every row has the label {only!r}", "a classifier needs at least two classes: check the label column")
        return
    total = sum(counts.values())
    rare = {k: v / total for k, v in counts.items() if v / total < min_share}
    if rare:
        shares = ", ".join(f"{k!r}: {v:.2%}" for k, v in sorted(rare.items()))
        add("warning", "class_imbalance", label_column, f"classes below {min_share:.0%} of rows: {shares}", "rebalance, reweight, or collect more data")
    if reference is not None and reference.label_classes is not None:
        new = sorted(set(counts) - set(reference.label_classes))
        if new:
            add("error", "new_label_class", label_column, f"label values not in the schema: {new[:10]}", "retrain on data with these classes, or fix the labels")


def _check_against(stats: DatasetStats, reference: DatasetSchema, add) -> None:
    present = {c.name for c in stats.columns}
    for ref in reference.columns:
        if ref.name not in present:
            add("error", "missing_column", ref.name, "column in the schema is missing", "restore the column, or update the schema")
    known = {c.name for c in reference.columns}
    for st in stats.columns:
        ref = reference.column(st.name)
        if st.name not in known:
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
        if st.out_of_range:
            share = st.out_of_range / max(st.count, 1)
            add("warning", "out_of_range", st.name, f"{st.out_of_range:,} values ({share:.2%}) outside [{ref.min}, {ref.max}]; seen [{st.min}, {st.max}]", "check units and the source, or widen the range in the schema")
        if st.out_of_domain:
            examples = ", ".join(repr(v) for v in st.unseen_examples)
            add("warning", "new_category", st.name, f"{st.out_of_domain:,} values outside the domain, e.g. {examples}", "map them to known values, or add them to the schema's domain")
