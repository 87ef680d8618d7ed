"""An MLServer runtime for kfp-mlops models, for Seldon Core v2 (which serves through MLServer).

Runs only inside the ``mlserver`` image target (MLServer 1.7.1 needs fastapi below
0.116, which Feast and KServe do not accept, so it never shares an environment with
them). Train writes a ``model-settings.json`` naming this class into every logged
MLflow model folder, so a Seldon ``Model`` whose ``storageUri`` is a registered
version's artifact folder loads with no extra files.

Loading goes through the same safe loader as everything else (file hashes checked,
weights-only, no code run); requests are decoded by the model server's codec, so a
row scores the same here, in the KServe server and in training. Run it with
``parallel_workers: 0`` (settings.json): with uvloop 0.23 MLServer's worker pool
crash-loops ("no current event loop").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mlserver import MLModel
from mlserver.errors import InferenceError, MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

from kfp_mlops.components.serve.codec import (
    MISSING,
    FeatureCodec,
    RequestError,
    score_output,
)
from kfp_mlops.components.serve.model_source import model_folder_in
from kfp_mlops.components.train.serving import ServingTransform


class BadRequest(MLServerError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=400)


class KfpMlopsRuntime(MLModel):
    """Open Inference Protocol V2 in, ``prediction`` (and ``probabilities``) out."""

    async def load(self) -> bool:
        folder = model_folder_in(Path(await get_model_uri(self._settings)), "the model's storage folder")
        self._transform = ServingTransform.load(folder)
        self._codec = FeatureCodec(self._transform.prep)
        torch.set_num_threads(1)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        body = {"inputs": [{"name": i.name, "shape": list(i.shape), "datatype": i.datatype, "data": _flat(i.data)} for i in payload.inputs]}
        try:
            columns, rows, field = self._codec.v2_columns(body)
            absent = [name for name in self._codec.feature_names if columns[name] and columns[name][0] is MISSING]
            if absent:
                raise RequestError(f"features {absent[:10]} are missing", where=field, fix="send one input tensor per feature the model was trained on")
            encoded = self._codec.encode(columns, rows, field)
        except RequestError as exc:
            raise BadRequest(str(exc)) from None
        try:
            with torch.no_grad():
                out = self._transform.program(torch.from_numpy(encoded.numeric), torch.from_numpy(encoded.categorical))
        except Exception as exc:  # noqa: BLE001 - a scoring failure is the server's, named
            raise InferenceError(f"scoring failed: {type(exc).__name__}: {exc}") from exc
        scored = score_output(out.float().numpy(), self._transform.prep)
        outputs = [ResponseOutput(name="prediction", shape=[rows], datatype="FP64" if scored.probabilities is None else "BYTES", data=scored.predictions)]
        if scored.probabilities is not None:
            k = scored.probabilities.shape[1]
            outputs.append(
                ResponseOutput(name="probabilities", shape=[rows, k], datatype="FP32", data=scored.probabilities.reshape(-1).tolist(), parameters={"classes": list(self._transform.prep.classes)})
            )
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)


def _flat(data: Any) -> list[Any]:
    """MLServer hands tensor data as a TensorData wrapper or a list."""
    root = getattr(data, "root", data)
    return list(root) if not isinstance(root, list) else root
