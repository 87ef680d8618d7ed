"""The model server: a ``kserve.Model`` on KServe's own ``ModelServer``, with lean predict routes.

KServe serves health, readiness, the model list and status, metrics and the V2 server
metadata. The two predict paths (V1 ``:predict``, V2 ``/infer``), the V2 model metadata
and ``/v1/feedback`` are our own Starlette routes on KServe's app, placed before KServe's:
KServe's handlers parse the body twice into generic types, run pre/post-process hooks
under four Prometheus timers and log a line per request, which cost more than scoring a
row does (``benchmarks/bench_serve.py`` measures both). ``kserve_handlers=True`` keeps
KServe's own V1 route (for that comparison).

Changes to KServe's server, each for a measured reason: the REST server binds the
``host`` given (KServe always binds 0.0.0.0), no per-request access or timing log lines,
per-request FastAPI deprecation warnings filtered, and with ``workers > 1`` each worker
process loads the model files itself (a torch.export program cannot be pickled).
The middleware, the access-log silencing and the worker supervisor live in ``transport.py``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import orjson
import torch

from kfp_mlops.components.serve.codec import (
    Encoded,
    FeatureCodec,
    RequestError,
    Scored,
    score_output,
)
from kfp_mlops.components.serve.model_source import LoadedModel

log = logging.getLogger(__name__)

# Imported after the CLI parsed its own arguments: kserve parses sys.argv at import.
import kserve  # noqa: E402  isort: skip


V2_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "halffloat": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint64": "UINT64",
    "uint32": "UINT32",
    "uint16": "UINT16",
    "uint8": "UINT8",
    "bool": "BOOL",
}


@dataclass(frozen=True)
class ServeOptions:
    """How to serve (the CLI's flags, as values).

    Attributes:
        model_name: The name in the URLs (/v1/models/NAME:predict).
        host: Address to bind (0.0.0.0 in a container; 127.0.0.1 for loopback only).
        http_port: HTTP port.
        workers: Worker processes; each loads the model files itself.
        arm: The A/B arm written with each logged prediction.
        log_sink: Prediction log sink (folder, s3:// or gs:// prefix); "" = no log.
        log_batch_rows: Rows per written log file at most.
        log_flush_seconds: Longest wait before queued log rows are written.
        log_queue_size: Log rows held in memory at most; more are dropped, never waited for.
        feature_repo: A featurize feature_repo folder: rows may then carry only their entity key.
        max_payload_bytes: Larger request bodies get 413 before they are parsed.
        kserve_handlers: Serve V1 predict through KServe's own handlers (for comparison only).
    """

    model_name: str = "model"
    host: str = "0.0.0.0"
    http_port: int = 8080
    workers: int = 1
    arm: str = "default"
    log_sink: str = ""
    log_batch_rows: int = 1000
    log_flush_seconds: float = 5.0
    log_queue_size: int = 10000
    feature_repo: str = ""
    max_payload_bytes: int = 1 << 20
    kserve_handlers: bool = False


class _Runtime:
    """What one process needs to score: loaded once per worker, never pickled."""

    def __init__(self, loaded_transform: Any, options: ServeOptions) -> None:
        self.transform = loaded_transform
        self.prep = loaded_transform.prep
        self.program = loaded_transform.program
        self.codec = FeatureCodec(self.prep)
        self.classes = list(self.prep.classes)
        self.lookup = None
        if options.feature_repo:
            from kfp_mlops.components.serve.feature_lookup import FeatureLookup

            self.lookup = FeatureLookup(options.feature_repo, self.prep.feature_names)
        self.extra = (self.lookup.entity,) if self.lookup is not None else ()
        self.logger = self.error_logger = None
        if options.log_sink:
            from kfp_mlops.components._shared.prediction_log import ErrorLogger, PredictionLogger

            self.logger = PredictionLogger(options.log_sink, batch_rows=options.log_batch_rows, flush_s=options.log_flush_seconds, queue_size=options.log_queue_size)
            self.error_logger = ErrorLogger(options.log_sink, batch_rows=options.log_batch_rows, flush_s=options.log_flush_seconds, queue_size=options.log_queue_size)

    def close(self) -> None:
        for logger in (self.logger, self.error_logger):
            if logger is not None:
                logger.close()


class ServedModel(kserve.Model):
    """One kfp-mlops model under KServe. Pickles without its loaded program (each worker reloads the files)."""

    def __init__(self, loaded: LoadedModel, options: ServeOptions) -> None:
        super().__init__(options.model_name)
        self.options = options
        self.folder: Path = loaded.folder
        self.expected_hashes = dict(loaded.expected_hashes)
        self.contract = loaded.contract
        self.registered_name = loaded.registered_name or options.model_name
        self.version = loaded.version or loaded.contract.mlflow_run_id
        self._runtime: _Runtime | None = _Runtime(loaded.transform, options)
        self.ready = True

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_runtime"] = None
        return state

    def load(self) -> bool:
        if self._runtime is None:
            from kfp_mlops.components.train.serving import ServingTransform

            self._runtime = _Runtime(ServingTransform.load(self.folder, expected_hashes=self.expected_hashes), self.options)
        torch.set_num_threads(1)  # one row at a time: threads cost more than they give
        self.ready = True
        return True

    @property
    def runtime(self) -> _Runtime:
        if self._runtime is None:
            self.load()
        assert self._runtime is not None
        return self._runtime

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "datatype": V2_DATATYPES.get(f.dtype, "BYTES"), "shape": [-1]} for f in self.contract.features]

    def get_output_types(self) -> list[dict[str, Any]]:
        if self.contract.task == "regression":
            return [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]
        return [{"name": "prediction", "datatype": "BYTES", "shape": [-1]}, {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.contract.classes)]}]

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata, with the version, the task and the class names behind the probabilities."""
        outputs = self.get_output_types()
        if self.contract.task != "regression":
            outputs[1]["parameters"] = {"classes": list(self.contract.classes)}
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": "pytorch_torch.export",
            "inputs": self.get_input_types(),
            "outputs": outputs,
            "parameters": {"task": self.contract.task, "classes": list(self.contract.classes), "registered_model": self.registered_name},
        }

    # -- scoring --------------------------------------------------------------------
    def score(self, columns: dict[str, list[Any]], rows: int, request_field: str) -> tuple[Encoded, Scored]:
        rt = self.runtime
        encoded = rt.codec.encode(columns, rows, request_field)
        with torch.inference_mode():  # measured ~10% faster than no_grad per one-row call
            out = rt.program(torch.from_numpy(encoded.numeric), torch.from_numpy(encoded.categorical))
        return encoded, score_output(out.float().numpy(), rt.prep)

    def v1_body(self, scored: Scored, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"predictions": scored.predictions, "request_id": request_id}
        if scored.probabilities is not None:
            classes = self.runtime.classes
            body["probabilities"] = [dict(zip(classes, row)) for row in scored.probabilities.tolist()]
        return body

    def v2_body(self, scored: Scored, request_id: str) -> dict[str, Any]:
        n = len(scored.predictions)
        outputs: list[dict[str, Any]] = [{"name": "prediction", "datatype": "FP64" if scored.probabilities is None else "BYTES", "shape": [n], "data": scored.predictions}]
        if scored.probabilities is not None:
            k = scored.probabilities.shape[1]
            outputs.append({"name": "probabilities", "datatype": "FP32", "shape": [n, k], "data": scored.probabilities.reshape(-1).tolist(), "parameters": {"classes": self.runtime.classes}})
        return {"model_name": self.name, "model_version": self.version, "id": request_id, "outputs": outputs}

    def log_predictions(self, encoded: Encoded, scored: Scored, request_id: str, routing_key: str, latency_ms: float) -> None:
        logger = self.runtime.logger
        if logger is None:
            return
        from kfp_mlops.components._shared.prediction_log import PredictionRecord

        codec = self.runtime.codec
        names = codec.numeric_names + codec.categorical_names
        columns = encoded.numeric_values + encoded.category_texts
        now = datetime.now(timezone.utc)
        n = encoded.rows
        for i in range(n):
            features = orjson.dumps({name: column[i] for name, column in zip(names, columns)}).decode()
            prediction = scored.predictions[i]
            logger.log(
                PredictionRecord(
                    request_id if n == 1 else f"{request_id}/{i}",
                    now,
                    self.options.arm,
                    self.registered_name,
                    self.version,
                    features,
                    prediction if isinstance(prediction, str) else str(prediction),
                    scored.scores[i],
                    latency_ms,
                    routing_key,
                )
            )

    def log_error(self, request_id: str, routing_key: str, status: int) -> None:
        """Count a failed request against this arm (the A/B error-rate guardrail reads these)."""
        if self.runtime.error_logger is None:
            return
        from kfp_mlops.components._shared.prediction_log import ErrorRecord

        now = datetime.now(timezone.utc)
        self.runtime.error_logger.log(ErrorRecord(request_id, now, self.options.arm, self.registered_name, self.version, status, routing_key))

    # -- KServe's own handler path (kserve_handlers=True) ------------------------------
    def predict(self, payload: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise kserve.errors.InvalidInput("this server answers V2 /infer on its own route only")
        request_id = (headers or {}).get("x-request-id") or uuid.uuid4().hex
        try:
            columns, rows, field = self.runtime.codec.v1_columns(payload)
            _, scored = self.score(columns, rows, field)
        except RequestError as exc:
            raise kserve.errors.InvalidInput(str(exc)) from None
        return self.v1_body(scored, request_id)


__all__ = ["ServeOptions", "ServedModel"]
