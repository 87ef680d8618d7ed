"""Score a model on a test table through the serving transform (hash-checked, nothing unpickled)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.train import metrics as M
from kfp_mlops.components.train.serving import ServingTransform


class Incomparable(Exception):
    """The model cannot score this data (other features, label or classes)."""


@dataclass(frozen=True)
class Scored:
    """A model's predictions on the test rows, what the gate's intervals are computed from.

    Attributes:
        task: binary, multiclass or regression.
        y: Class indices (classification) or label values (regression), per row.
        predictions: Positive-class probabilities, class probabilities (n, k) or values.
        metrics: The point metrics.
        constant: What a constant predictor would say (the training label mean, regression only).
    """

    task: str
    y: np.ndarray
    predictions: np.ndarray
    metrics: dict[str, float]
    constant: float = 0.0


def score(transform: ServingTransform, table: pa.Table, where: str) -> Scored:
    """``transform``'s predictions and metrics on ``table``; DataError when the table does not fit the model."""
    prep = transform.prep
    if prep.label not in table.schema.names:
        raise DataError(f"label column {prep.label!r} is not in the test split", where=where, fix="pass the test split of the data the model was trained on")
    out = transform.predict_table(table, where)
    if prep.task == "regression":
        y = table.column(prep.label).cast(pa.float64()).to_numpy(zero_copy_only=False)
        return Scored(prep.task, y, out, M.regression(y, out), constant=prep.label_mean)
    y = prep.encode_label(table, where)
    return Scored(prep.task, y, out, M.classification(y, out))


def score_champion(transform: ServingTransform, table: pa.Table, where: str) -> Scored:
    """The champion's scores, or Incomparable naming why it cannot score this table."""
    try:
        return score(transform, table, where)
    except DataError as exc:
        raise Incomparable(exc.problem) from exc
