"""The label's checks: what training would trip over, found before it starts.

The task comes from the same rule train uses (``task.decide_task``), so every label
problem train would raise deterministically (too many classes, one class, a text
label for regression) is an error here, where a retry does not repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_mlops.components._shared.task import LabelTaskError
from kfp_mlops.components.validate.checks import Anomaly
from kfp_mlops.components.validate.sample import LabelTracker
from kfp_mlops.components.validate.schema import DatasetSchema
from kfp_mlops.components.validate.statistics import DatasetStats

# Featurize splits by time into train, validation and test; a class needs a row in each
# to be learned and evaluated, and train refuses a class its training split never saw.
MIN_CLASS_ROWS = 3


@dataclass
class LabelVerdict:
    """The task the label implies and what is wrong with the label.

    Attributes:
        task: binary, multiclass or regression; None when the label fits no task.
        classes: Class names (classification), as train names them.
        anomalies: Findings about the label.
    """

    task: str | None = None
    classes: list[str] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)


def check_label(tracker: LabelTracker, stats: DatasetStats, *, requested: str, reference: DatasetSchema | None, min_class_share: float) -> LabelVerdict:
    """The task and the label's anomalies; a missing label is reported with the other missing columns."""
    verdict = LabelVerdict()
    name = tracker.label
    st = stats.column(name)
    if st is None:
        return verdict

    def add(severity: str, code: str, message: str, fix: str) -> None:
        verdict.anomalies.append(Anomaly(severity, code, name, message, fix))

    if st.count and st.nulls == st.count:
        add("error", "no_labels", f"all {st.count:,} labels are null", "check the label column name and the export that fills it")
        return verdict
    if st.nulls:
        add("error", "null_label", f"{st.nulls:,} rows have no label", "drop unlabeled rows before training")
    if st.nan or st.inf:
        add("error", "non_finite_label", f"{st.nan:,} NaN and {st.inf:,} infinite labels", "drop those rows or repair their labels")
    if tracker.unsupported:
        add("error", "label_type", f"a label of type {st.type} cannot be used ({tracker.unsupported})", "use a number, text or true/false column as the label")
        return verdict
    try:
        verdict.task, verdict.classes = tracker.decide(requested)
    except LabelTaskError as exc:
        add("error", exc.code, exc.problem, exc.fix)
        return verdict
    if verdict.task == "regression":
        if st.std == 0:
            add("error", "constant_label", f"every row has the label {st.min!r}: there is nothing to predict", "check the label column and the export that fills it")
        return verdict
    counts = tracker.class_counts()
    too_few = {k: v for k, v in counts.items() if v < MIN_CLASS_ROWS}
    if too_few:
        listing = ", ".join(f"{k!r}: {v} row{'s' if v > 1 else ''}" for k, v in sorted(too_few.items()))
        add(
            "error",
            "too_few_rows_in_class",
            f"classes with fewer than {MIN_CLASS_ROWS} rows cannot be in each of the train, validation and test splits: {listing}",
            "collect more rows of these classes, merge them into a related class, or drop their rows",
        )
    total = sum(counts.values())
    rare = {k: v / total for k, v in counts.items() if v / total < min_class_share and k not in too_few}
    if rare:
        shares = ", ".join(f"{k!r}: {v:.2%}" for k, v in sorted(rare.items()))
        add("warning", "class_imbalance", f"classes below {min_class_share:.0%} of rows: {shares}", "rebalance, reweight, or collect more data")
    if reference is not None and reference.label_classes is not None:
        known = set(reference.label_classes)
        legacy = tracker.legacy_names()  # schemas of earlier releases named True "True", 1.0 "1.0"
        new = sorted(c for c in counts if c not in known and legacy.get(c) not in known)
        if new:
            add("error", "new_label_class", f"label values not in the schema: {new[:10]}", "retrain on data with these classes, or fix the labels")
    return verdict
