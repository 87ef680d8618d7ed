"""The serving transform: exported graph plus preprocessing, the one way every consumer scores.

Register's evaluation, the MLflow pyfunc, the model server and monitor all call
``ServingTransform``; training evaluates with the same ``Preprocessing`` and
``ServingModel``, so a row scores the same everywhere.

Loading never runs code. torch.export archives hold pickles (sample inputs,
constants, optionally weights) and torch falls back to an unrestricted unpickle when
a restricted load fails, which executes whatever the pickle names. ``load_program``
refuses archives that declare pickled weights and forces every ``torch.load`` of
the archive to ``weights_only=True`` with no fallback; file hashes are checked
before any byte is parsed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import torch

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.model_artifact import MODEL_FILE, PREPROCESSING_FILE, ModelArtifact, verify_files
from kfp_mlops.components.train.preprocessing import Preprocessing

_LOAD_GUARD = threading.Lock()
_UNSAFE_FIX = "only load models written by kfp-mlops train; retrain and re-register this one"


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    """Every ``torch.load`` inside is a restricted (weights-only) load, whatever its caller asks."""
    original = torch.load

    def restricted(f: Any, *args: Any, weights_only: Any = None, **kwargs: Any) -> Any:
        return original(f, *args, weights_only=True, **kwargs)

    with _LOAD_GUARD:
        torch.load = restricted  # type: ignore[assignment]
        try:
            yield
        finally:
            torch.load = original  # type: ignore[assignment]


def _refuse_pickled_weights(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json") and ("weights_config" in name or "constants_config" in name):
                    config = json.loads(archive.read(name))
                    entries = config.get("config", {}) if isinstance(config, dict) else {}
                    if any(isinstance(e, dict) and e.get("use_pickle") for e in entries.values()):
                        raise DataError(f"{path.name} stores pickled tensors ({name})", where=str(path), fix=_UNSAFE_FIX)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path.name} is not a torch.export archive ({exc})", where=str(path), fix=_UNSAFE_FIX) from exc


def load_program(path: str | Path) -> torch.nn.Module:
    """The exported serving program at ``path`` (call it with (numeric, categorical)), loaded safely."""
    path = Path(path)
    _refuse_pickled_weights(path)
    try:
        with _weights_only(), torch.no_grad():
            return torch.export.load(str(path)).module()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - every refusal and corruption, named for the user
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise DataError(f"{path.name} cannot be loaded safely ({type(exc).__name__}: {first})", where=str(path), fix=_UNSAFE_FIX) from exc


class ServingTransform:
    """Raw feature columns in, predictions out."""

    def __init__(self, contract: ModelArtifact, prep: Preprocessing, program: torch.nn.Module) -> None:
        self.contract = contract
        self.prep = prep
        self.program = program

    @classmethod
    def load(cls, folder: str | Path, *, expected_hashes: Mapping[str, str] | None = None) -> "ServingTransform":
        """Load a model folder; its files must match ``expected_hashes`` (default: its own contract's)."""
        folder = Path(folder)
        contract = ModelArtifact.read(folder)
        verify_files(folder, expected_hashes if expected_hashes is not None else contract.files)
        prep = Preprocessing.load(folder / PREPROCESSING_FILE)
        if prep.feature_names != contract.feature_names or prep.task != contract.task:
            raise DataError("preprocessing.json and the model contract disagree on the features or the task", where=str(folder), fix=_UNSAFE_FIX)
        return cls(contract, prep, load_program(folder / MODEL_FILE))

    def predict_table(self, table: pa.Table, where: str = "") -> np.ndarray:
        """Positive-class probabilities (binary, shape (n,)), class probabilities (n, k) or values (n,)."""
        numeric, categorical = self.prep.encode_features(table, where)
        with torch.no_grad():
            out = self.program(torch.from_numpy(numeric), torch.from_numpy(categorical))
        return out.float().numpy()

    def predict_frame(self, frame: Any, where: str = "") -> Any:
        """A pandas DataFrame of ``prediction`` and, for classifiers, ``probability_<class>`` columns."""
        import pandas as pd

        missing = [n for n in self.prep.feature_names if n not in frame.columns]
        if missing:
            raise DataError(f"feature columns {missing[:10]} are missing", where=where, fix="send every feature the model was trained on")
        try:
            table = pa.Table.from_pandas(frame[self.prep.feature_names], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(
                f"the input cannot be read as a table ({str(exc).splitlines()[0][:200]})", where=where, fix="send one value per feature: numbers for numeric features, text for categorical ones"
            ) from exc
        out = self.predict_table(table, where)
        if self.prep.task == "regression":
            return pd.DataFrame({"prediction": out})
        classes = self.prep.classes
        probs = np.column_stack([1 - out, out]) if self.prep.task == "binary" else out
        result = pd.DataFrame({f"probability_{c}": probs[:, i] for i, c in enumerate(classes)})
        result.insert(0, "prediction", [classes[i] for i in probs.argmax(axis=1)])
        return result
