"""Evaluate a registered-format model (MLflow pyfunc from train) on a test table."""

from __future__ import annotations

import pandas as pd

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.train import metrics as M


class Incomparable(Exception):
    """The model cannot score this data (its input signature no longer matches)."""


def load(model_uri: str, what: str):
    import mlflow

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - missing, corrupt or unreadable artifacts
        raise DataError(f"the {what} model at {model_uri} cannot be loaded ({str(exc).splitlines()[0][:200]})", fix="check the train step's model artifact and MLflow run") from exc


def score(model, frame: pd.DataFrame, label: str) -> dict[str, float]:
    """Metrics of ``model`` on ``frame``; raises Incomparable when the model refuses the columns."""
    from mlflow.exceptions import MlflowException

    inputs = model.metadata.get_input_schema()
    names = inputs.input_names() if inputs is not None else [c for c in frame.columns if c != label]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise Incomparable(f"its inputs {missing[:5]} are not in the data")
    try:
        out = model.predict(frame[names])
    except MlflowException as exc:
        raise Incomparable(str(exc).splitlines()[0][:200]) from exc
    probability_columns = [c for c in out.columns if c.startswith("probability_")]
    if not probability_columns:
        return M.regression(frame[label].to_numpy(dtype=float), out["prediction"].to_numpy(dtype=float))
    classes = [c[len("probability_") :] for c in probability_columns]
    labels = frame[label].astype(str)
    unseen = sorted(set(labels) - set(classes))
    if unseen:
        raise Incomparable(f"it never saw the classes {unseen[:5]}")
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    probs = out[probability_columns].to_numpy(dtype=float)
    return M.classification(y, probs[:, 1]) if len(classes) == 2 else M.classification(y, probs)
