"""The model artifact contract: one typed record, written and read here only.

Train, distributed training and sweep write it; register, deploy, the model server
and monitor read it. It travels twice: as ``kfp_mlops_model.json`` inside the model
folder (so a copy of the folder is self-describing, e.g. in the MLflow run's
artifacts) and under one key of the KFP artifact's metadata (so a later step and
the dashboard see it without downloading the folder). No other module spells its
keys.

The files of the model are hashed (sha256) when it is written; a loader refuses a
folder whose files differ from the hashes it was given (the registry keeps its own
copy of them as version tags, out of reach of whoever can write artifacts).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.task import TASKS

SCHEMA = "kfp-mlops.model/v1"
METADATA_KEY = "kfp_mlops_model"
CONTRACT_FILE = "kfp_mlops_model.json"
MODEL_FILE = "model.pt2"
PREPROCESSING_FILE = "preprocessing.json"
MODEL_FILES = (MODEL_FILE, PREPROCESSING_FILE)
KINDS = ("numeric", "categorical")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Feature:
    """One input column of the model.

    Attributes:
        name: Column name.
        kind: numeric (standardized) or categorical (embedded).
        dtype: Arrow type of the column in the training data, e.g. int64, double, string.
    """

    name: str
    kind: str
    dtype: str


@dataclass(frozen=True)
class ModelArtifact:
    """What every consumer of a trained model needs to know about it.

    Attributes:
        task: binary, multiclass or regression.
        label: Label column.
        classes: Class values as text (classification); the positive class is the last of two.
        features: Input columns, in the order the model takes them.
        files: sha256 of each model file, by file name.
        mlflow_run_id: The MLflow run that trained it.
        mlflow_model_uri: Where the run logged it (``runs:/<id>/model``).
        tracking_uri: The MLflow tracking URI, without credentials.
        train_fingerprint: Content fingerprint of the training data.
        metrics: test_* and val_* metrics.
        details: Display-only facts (best epoch, hyperparameters, job name, ...).
        framework: pytorch.
        format: torch.export.
        schema: Contract version.
    """

    task: str
    label: str
    features: tuple[Feature, ...]
    files: Mapping[str, str]
    classes: tuple[str, ...] = ()
    mlflow_run_id: str = ""
    mlflow_model_uri: str = ""
    tracking_uri: str = ""
    train_fingerprint: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    framework: str = "pytorch"
    format: str = "torch.export"
    schema: str = SCHEMA

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def with_tracking(self, *, run_id: str, model_uri: str, tracking_uri: str) -> "ModelArtifact":
        return replace(self, mlflow_run_id=run_id, mlflow_model_uri=model_uri, tracking_uri=tracking_uri)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = [asdict(f) for f in self.features]
        data["classes"] = list(self.classes)
        data["files"] = dict(self.files)
        data["metrics"] = {k: float(v) for k, v in self.metrics.items()}
        data["details"] = dict(self.details)
        return data

    def to_metadata(self) -> dict[str, Any]:
        """KFP artifact metadata: the contract under one key, plus flat copies for the dashboard."""
        shown = {k: v for k, v in self.metrics.items() if math.isfinite(v)}
        return {METADATA_KEY: self.to_dict(), "task": self.task, "framework": self.framework, "format": self.format, **shown}

    def write(self, folder: str | Path) -> None:
        Path(folder, CONTRACT_FILE).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> "ModelArtifact":
        """Parse and check a contract; anything malformed is a DataError naming the field."""
        fix = "pass a model written by kfp-mlops train (or train_distributed, select_best)"
        if not isinstance(data, dict):
            raise DataError("the model contract is not a JSON object", where=where, fix=fix)
        if data.get("schema") != SCHEMA:
            raise DataError(f"unknown model contract {data.get('schema')!r} (expected {SCHEMA})", where=where, fix=fix)
        try:
            features = tuple(Feature(str(f["name"]), str(f["kind"]), str(f["dtype"])) for f in data["features"])
            contract = cls(
                task=str(data["task"]),
                label=str(data["label"]),
                features=features,
                files={str(k): str(v) for k, v in dict(data["files"]).items()},
                classes=tuple(str(c) for c in data.get("classes", [])),
                mlflow_run_id=str(data.get("mlflow_run_id", "")),
                mlflow_model_uri=str(data.get("mlflow_model_uri", "")),
                tracking_uri=str(data.get("tracking_uri", "")),
                train_fingerprint=str(data.get("train_fingerprint", "")),
                metrics={str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
                details=dict(data.get("details", {})),
                framework=str(data.get("framework", "pytorch")),
                format=str(data.get("format", "torch.export")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"the model contract is malformed ({type(exc).__name__}: {exc})", where=where, fix=fix) from exc
        if contract.task not in TASKS:
            raise DataError(f"the model contract names an unknown task {contract.task!r}", where=where, fix=fix)
        if any(f.kind not in KINDS for f in contract.features) or not contract.features:
            raise DataError("the model contract lists no features, or a feature of unknown kind", where=where, fix=fix)
        if set(contract.files) != set(MODEL_FILES):
            raise DataError(f"the model contract hashes {sorted(contract.files)}, not {list(MODEL_FILES)}", where=where, fix=fix)
        return contract

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], where: str = "") -> "ModelArtifact":
        if METADATA_KEY not in metadata:
            raise DataError("the model artifact carries no kfp-mlops model contract", where=where, fix="pass the model output of kfp-mlops train, train_distributed or select_best")
        return cls.from_dict(metadata[METADATA_KEY], where)

    @classmethod
    def read(cls, folder: str | Path) -> "ModelArtifact":
        path = Path(folder, CONTRACT_FILE)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError("the model folder has no contract file", where=str(path), fix="pass a model folder written by kfp-mlops train") from exc
        except (ValueError, RecursionError) as exc:
            raise DataError(f"the model contract is not valid JSON ({exc})", where=str(path), fix="pass a model folder written by kfp-mlops train") from exc
        return cls.from_dict(data, str(path))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(folder: str | Path) -> dict[str, str]:
    """sha256 of each model file in ``folder``."""
    return {name: sha256_file(Path(folder, name)) for name in MODEL_FILES}


def verify_files(folder: str | Path, expected: Mapping[str, str], where: str = "") -> None:
    """Refuse ``folder`` unless every model file is present with the expected hash."""
    for name in MODEL_FILES:
        path = Path(folder, name)
        want = expected.get(name)
        if not want:
            raise DataError(f"no recorded hash for {name}: the model cannot be verified", where=where or str(folder), fix="register models with kfp-mlops register, which records their hashes")
        if not path.is_file():
            raise DataError(f"{name} is missing from the model", where=where or str(folder), fix="pass the complete model folder")
        if sha256_file(path) != want:
            raise DataError(
                f"{name} does not match the hash recorded when the model was made: it was changed or replaced",
                where=where or str(folder),
                fix="retrain and re-register the model; do not edit model files",
            )
