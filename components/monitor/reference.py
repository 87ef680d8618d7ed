"""A model's reference profile: its input columns, its score and its performance, as one JSON document.

Register builds it from the training split (inputs) and the held-out test split (the
model's scores and, for classifiers, the calibration of confidence-based performance
estimation), logs it beside the model in the MLflow run and records its sha256 as a
version tag. The monitor downloads it, checks the hash and parses it with checks:
nothing in it is executed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.components.monitor.performance import PerformanceReference, fit_reference
from kfp_mlops.components.monitor.profile import ColumnProfile, profile_column, profile_parquet
from kfp_mlops.components.monitor.results import CATEGORICAL, NUMERIC

SCHEMA = "kfp-mlops.profile/v1"
ARTIFACT_DIR = "kfp_mlops_profile"
FILE_NAME = "profile.json"
SHA_TAG = "kfp_mlops.profile_sha256"
SCORE_COLUMN = "score"  # how the report names the model's output
MAX_BYTES = 256 << 20
SAMPLE_ROWS = 2000
_FIX = "recreate it: `kfp-mlops profile --model-name NAME --version N --data TRAIN_SPLIT --test TEST_SPLIT`"


@dataclass
class ModelProfile:
    """Everything the monitor compares current data with.

    Attributes:
        task: binary, multiclass or regression.
        label: Label column.
        classes: Class values as text (classification).
        columns: Profile per model input, in the model's order.
        score: Profile of the model's score on the test split (positive-class or predicted-class probability, or the value).
        performance: Confidence-based estimation reference (classifiers), else None.
        sample: Up to SAMPLE_ROWS reference rows of the inputs, for the Evidently report on a bounded sample.
        source: Where the reference came from (paths, row counts), for the report.
    """

    task: str
    label: str
    classes: list[str]
    columns: dict[str, ColumnProfile]
    score: ColumnProfile
    performance: PerformanceReference | None
    sample: dict[str, list[Any]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: profile.kind for name, profile in self.columns.items()}

    def to_json(self) -> bytes:
        document = {
            "schema": SCHEMA, "task": self.task, "label": self.label, "classes": self.classes,
            "columns": [c.to_dict() for c in self.columns.values()], "score": self.score.to_dict(),
            "performance": self.performance.to_dict() if self.performance else None,
            "sample": self.sample, "source": self.source,
        }  # fmt: skip
        return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> "ModelProfile":
        if len(raw) > MAX_BYTES:
            raise DataError(f"the reference profile is larger than {MAX_BYTES >> 20} MiB", where=where, fix=_FIX)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise DataError(f"the reference profile is not valid JSON ({exc})", where=where, fix=_FIX) from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise DataError(f"not a kfp-mlops reference profile (expected schema {SCHEMA})", where=where, fix=_FIX)
        try:
            columns = [ColumnProfile.from_dict(c, where) for c in data["columns"]]
            performance = data.get("performance")
            return cls(
                task=str(data["task"]),
                label=str(data["label"]),
                classes=[str(c) for c in data.get("classes") or []],
                columns={c.name: c for c in columns},
                score=ColumnProfile.from_dict(data["score"], where),
                performance=PerformanceReference.from_dict(performance, where) if performance else None,
                sample={str(k): list(v) for k, v in dict(data.get("sample") or {}).items()},
                source=dict(data.get("source") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"the reference profile is malformed ({type(exc).__name__}: {exc})", where=where, fix=_FIX) from exc


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def model_outputs(task: str, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logged score and the predicted class index of each row, as the model server answers them."""
    if task == "regression":
        return predictions.astype(float), np.zeros(len(predictions), np.int64)
    if task == "binary":
        return predictions.astype(float), (predictions > 0.5).astype(np.int64)
    return predictions.max(axis=1).astype(float), predictions.argmax(axis=1)


def build_profile(contract: ModelArtifact, *, reference_path: str | Path, test_y: np.ndarray, test_predictions: np.ndarray, test_path: str | Path = "") -> ModelProfile:
    """The profile of a trained model: inputs from ``reference_path`` (Parquet), score and calibration from its test-split predictions."""
    kinds = {f.name: (CATEGORICAL if f.kind == "categorical" else NUMERIC) for f in contract.features}
    columns = profile_parquet(str(reference_path), kinds)
    if not columns or not next(iter(columns.values())).rows:
        raise DataError("the reference data has no rows: a profile of nothing would call everything drift-free", where=str(reference_path), fix="profile the training split the model was trained on")
    if not len(test_y):
        raise DataError("the test split has no rows", where=str(test_path), fix="pass the held-out test split of the same run")
    scores, predicted = model_outputs(contract.task, test_predictions)
    performance, performance_note = None, ""
    if contract.task == "regression":
        performance_note = "regression: no confidence-based estimate (realized metrics only need labels)"
    else:
        try:
            performance = fit_reference(contract.task, test_y, scores, predicted)
        except DataError as exc:  # a small or one-class test split: the model still registers, without the estimate
            performance_note = f"{exc.problem}; {exc.fix}" if exc.fix else exc.problem
    return ModelProfile(
        task=contract.task,
        label=contract.label,
        classes=list(contract.classes),
        columns=columns,
        score=profile_column(SCORE_COLUMN, NUMERIC, [pa.array(scores)]),
        performance=performance,
        sample=_sample(str(reference_path), list(kinds)),
        source={
            "reference": str(reference_path),
            "test": str(test_path),
            "reference_rows": next(iter(columns.values())).rows if columns else 0,
            "test_rows": int(len(scores)),
            "performance_note": performance_note,
        },
    )


def _sample(path: str, names: list[str]) -> dict[str, list[Any]]:
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(path)
    rows = reader.metadata.num_rows
    if not rows:
        return {}
    picked = np.sort(np.random.default_rng(0).choice(rows, size=min(rows, SAMPLE_ROWS), replace=False))
    # One column in memory at a time: the reference may be far larger than the sample.
    return {name: [_plain(v) for v in reader.read(columns=[name]).column(0).take(pa.array(picked)).to_pylist()] for name in names}


def _plain(value: Any) -> Any:
    """JSON-safe cell: NaN and infinities become null, anything exotic its text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    return str(value)
