"""Score a model on a test table through the serving transform (hash-checked, nothing unpickled)."""

from __future__ import annotations

import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.train import metrics as M
from kfp_mlops.components.train.serving import ServingTransform


class Incomparable(Exception):
    """The model cannot score this data (other features, label or classes)."""


def score(transform: ServingTransform, table: pa.Table, where: str) -> dict[str, float]:
    """Test metrics of ``transform`` on ``table``; raises DataError when the table does not fit the model."""
    prep = transform.prep
    if prep.label not in table.schema.names:
        raise DataError(f"label column {prep.label!r} is not in the test split", where=where, fix="pass the test split of the data the model was trained on")
    out = transform.predict_table(table, where)
    if prep.task == "regression":
        return M.regression(table.column(prep.label).cast(pa.float64()).to_numpy(zero_copy_only=False), out)
    return M.classification(prep.encode_label(table, where), out)


def score_champion(transform: ServingTransform, table: pa.Table, where: str) -> dict[str, float]:
    """The champion's metrics, or Incomparable naming why it cannot score this table."""
    try:
        return score(transform, table, where)
    except DataError as exc:
        raise Incomparable(exc.problem) from exc
