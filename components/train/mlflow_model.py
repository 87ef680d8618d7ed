"""The MLflow model folder of a trained model: the pyfunc (as code), the model folder, an explicit signature.

The signature is built from the model contract, not inferred from a few example rows:
an integer feature with no nulls in five rows would otherwise be declared
``long, required`` and MLflow would refuse the same column with nulls at scoring
time. MLflow's own type enforcement refuses int64 for ``double`` and float64 (an
integer column with nulls) for ``long``, so inputs are declared by name, optional and
of any type; the serving transform casts them to the contract's types and names the
column it cannot cast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from kfp_mlops._version import __version__
from kfp_mlops.components._shared.model_artifact import ModelArtifact

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
ARTIFACT = "kfp_mlops_model"
# MLServer (Seldon Core v2) reads this file from the model's storage folder; the class
# lives in the mlserver image only (components/serve/mlserver_runtime.py).
MLSERVER_SETTINGS_FILE = "model-settings.json"
MLSERVER_SETTINGS = {"implementation": "kfp_mlops.components.serve.mlserver_runtime.KfpMlopsRuntime", "parameters": {"uri": "."}}


def signature(contract: ModelArtifact):
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema([ColSpec(AnyType(), f.name, required=False) for f in contract.features])
    if contract.task == "regression":
        outputs = Schema([ColSpec("double", "prediction")])
    else:
        outputs = Schema([ColSpec("string", "prediction"), *(ColSpec("double", f"probability_{c}") for c in contract.classes)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def requirements() -> list[str]:
    """Explicit pip requirements (inferring them costs about 11 s per model)."""
    import mlflow
    import pandas

    return [f"kfp-mlops[train]=={__version__}", f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", f"pandas=={pandas.__version__}", f"numpy=={np.__version__}"]


def save(model_folder: Path, destination: Path, contract: ModelArtifact) -> None:
    """Write the MLflow model folder for ``model_folder`` at ``destination`` (which must not exist)."""
    import mlflow

    mlflow.pyfunc.save_model(
        str(destination),
        python_model=str(PYFUNC_CODE),
        artifacts={ARTIFACT: str(model_folder)},
        signature=signature(contract),
        pip_requirements=requirements(),
    )
    (destination / MLSERVER_SETTINGS_FILE).write_text(json.dumps(MLSERVER_SETTINGS, indent=2) + "\n")
