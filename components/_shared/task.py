"""The one rule that turns a label column into a learning task (binary, multiclass, regression).

Validate applies it to find label problems before training, featurize to decide
whether a random split is stratified, train to choose the model head. All must
agree, so all import it from here: a label that validate passes is one that train
accepts, and the message is the same everywhere.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared.errors import DataError

TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 50


class LabelTaskError(DataError):
    """The label does not fit the requested (or any) task; ``code`` names the problem for anomaly lists."""

    def __init__(self, code: str, problem: str, *, where: str = "", fix: str = "") -> None:
        super().__init__(problem, where=where, fix=fix)
        self.code = code


def check_task_name(requested: str) -> str:
    """``requested`` normalized; unknown names refused before any data is read."""
    name = str(requested).strip().lower()
    if name not in ("auto", *TASKS):
        raise DataError(f"unknown task {requested!r}", where="task", fix=f"set the task parameter to auto or one of {', '.join(TASKS)}")
    return name


def is_numeric_label(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def decide_task(label_type: pa.DataType, distinct: pa.Array, requested: str, *, more_distinct: bool = False) -> tuple[str, list[str]]:
    """The task and, for classification, the sorted class values as text.

    Args:
        label_type: The label column's Arrow type (dictionary-decoded).
        distinct: The label's distinct non-null values.
        requested: auto, binary, multiclass or regression.
        more_distinct: ``distinct`` holds only some of the values: there are more than
            ``len(distinct)`` (a streaming caller stops collecting past ``MAX_CLASSES``).

    Raises:
        LabelTaskError: the label fits no task, or not the requested one.
    """
    requested = check_task_name(requested)
    count = len(distinct)
    too_many = more_distinct or count > MAX_CLASSES
    shown = f"more than {count:,}" if more_distinct else f"{count:,}"
    if requested == "regression":
        if not is_numeric_label(label_type):
            raise LabelTaskError(
                "label_not_numeric",
                f"task regression needs a numeric label, but the label is {label_type}",
                fix='cast the label to a number at ingest (column_types, e.g. {"price": "float64"}), or set task=auto to classify its values',
            )
        if count < 2 and not more_distinct:
            raise LabelTaskError("constant_label", f"the label has {count} distinct value(s): there is nothing to predict", fix="check the label column and the export that fills it")
        return "regression", []
    if requested == "auto" and is_numeric_label(label_type) and too_many:  # counts are integers too
        return "regression", []
    if too_many:
        raise LabelTaskError(
            "too_many_classes",
            f"the label has {shown} distinct {label_type} values, too many classes for a classifier (at most {MAX_CLASSES})",
            fix="predict a number: cast the label to a numeric type (ingest's column_types) and set task=regression (kfp-mlops run training --task regression); or group the classes",
        )
    # Class names are the label values as Arrow renders them as text, the same cast the
    # label encoding uses (float 1.0 -> "1", bool True -> "true"); numbers sort by value.
    by_value = is_numeric_label(label_type) or pa.types.is_boolean(label_type)
    ordered = pc.array_sort_indices(distinct) if by_value else pc.array_sort_indices(distinct.cast(pa.string()))
    classes = distinct.take(ordered).cast(pa.string()).to_pylist()
    if len(classes) < 2:
        raise LabelTaskError(
            "single_class",
            f"the label has a single class: every row is {classes[0]!r}" if classes else "the label has no values",
            fix="a classifier needs at least two classes: check the label column",
        )
    task = "binary" if len(classes) == 2 else "multiclass"
    if requested not in ("auto", task):
        raise LabelTaskError(
            "task_mismatch",
            f"task {requested!r} does not fit a label with {len(classes)} classes",
            fix=f"set the task parameter to {task} or auto (kfp-mlops run training --task {task})",
        )
    return task, classes


def infer_task(column: pa.ChunkedArray | pa.Array, requested: str) -> tuple[str, list[str]]:
    """The task and class values of a whole label column (see ``decide_task``)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return decide_task(column.type, pc.unique(column.drop_null()), requested)
