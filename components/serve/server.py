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

import asyncio
import gc
import logging
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import orjson
import torch

from kfp_mlops.components._shared.errors import FeatureStoreError, KfpMlopsError
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
from kserve.protocol.rest.server import RESTServer  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from kfp_mlops.components.serve.transport import (  # noqa: E402
    JSON,
    PatientMultiProcess,
    PayloadLimit,
    error_response,
    quiet_access_log,
)

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


class Routes:
    """Our request handlers on KServe's app."""

    def __init__(self, rest: "HostRESTServer") -> None:
        self.rest = rest
        self.frozen = False
        self._store_clients: dict[str, Any] = {}
        self._store_clients_lock = threading.Lock()

    def store_client(self, sink: str) -> Any:
        """One object-store client per sink (None for a folder), made on first use in this worker
        process, so after any fork; boto3 and google-cloud-storage clients may be shared by threads."""
        with self._store_clients_lock:
            if sink not in self._store_clients:
                from kfp_mlops.components._shared.storage.objects import client_for

                self._store_clients[sink] = client_for(sink)
            return self._store_clients[sink]

    def model(self, name: str) -> ServedModel | None:
        model = self.rest.dataplane.model_registry.get_model(name)
        return model if isinstance(model, ServedModel) else None

    async def v1_predict(self, request: Request) -> Response:
        return await self._predict(request, v2=False)

    async def v2_infer(self, request: Request) -> Response:
        return await self._predict(request, v2=True)

    async def _predict(self, request: Request, *, v2: bool) -> Response:
        started = time.perf_counter()
        if not self.frozen:
            # Queued log records survive young collections, so full collections come often: once
            # the server is up, its ~10^6 library objects (torch, MLflow, KServe) are left out of them.
            gc.freeze()
            self.frozen = True
        headers = request.headers
        request_id = headers.get("x-request-id") or ""
        name = request.path_params["model_name"]
        model = self.model(name)
        if model is None:
            return error_response(404, f"model {name!r} is not served here", request_id)
        rt = model.runtime
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return error_response(400, f"the body is not valid JSON ({exc})", request_id or uuid.uuid4().hex)
        if v2 and not request_id and isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
            request_id = body["id"]
        request_id = request_id or uuid.uuid4().hex
        try:
            columns, rows, field = rt.codec.v2_columns(body, rt.extra) if v2 else rt.codec.v1_columns(body, rt.extra)
            without = -1
            if rt.lookup is not None:
                found = await asyncio.to_thread(rt.lookup.fill, columns, rows, field)
                without = found.rows_without_stored_features if found.rows_looked_up else -1
            encoded, scored = model.score(columns, rows, field)
        except RequestError as exc:
            return error_response(exc.status, str(exc), request_id)
        except FeatureStoreError as exc:
            model.log_error(request_id, headers.get("x-kfp-mlops-key", ""), 503)
            return error_response(503, str(exc), request_id)
        except Exception:  # noqa: BLE001 - a scoring failure is the arm's: answered, logged, counted
            log.exception("scoring request %s failed", request_id)
            model.log_error(request_id, headers.get("x-kfp-mlops-key", ""), 500)
            return error_response(500, "the model failed on this request; the server log has the traceback", request_id)
        answer = model.v2_body(scored, request_id) if v2 else model.v1_body(scored, request_id)
        if without >= 0:
            if v2:
                answer["parameters"] = {"rows_without_stored_features": without}
            else:
                answer["rows_without_stored_features"] = without
        payload = orjson.dumps(answer)
        if rt.logger is not None:
            model.log_predictions(encoded, scored, request_id, headers.get("x-kfp-mlops-key", ""), (time.perf_counter() - started) * 1000.0)
        return Response(payload, media_type=JSON, headers={"x-request-id": request_id})

    async def v2_metadata(self, request: Request) -> Response:
        name = request.path_params["model_name"]
        model = self.model(name)
        if model is None:
            return error_response(404, f"model {name!r} is not served here")
        return Response(orjson.dumps(model.metadata()), media_type=JSON)

    async def feedback(self, request: Request) -> Response:
        from kfp_mlops.components._shared.prediction_log import write_feedback
        from kfp_mlops.components.serve.feedback import FeedbackRefused, check_caller, parse_outcomes

        models = [m for m in self.rest.dataplane.model_registry.get_models().values() if isinstance(m, ServedModel)]
        sink = models[0].options.log_sink if models else ""
        try:
            check_caller(request.headers)
            if not sink:
                raise FeedbackRefused(409, "no prediction log is configured, so outcomes cannot be recorded: start the server with --log-sink")
            outcomes = parse_outcomes(await request.body(), datetime.now(timezone.utc))
        except FeedbackRefused as refused:
            return error_response(refused.status, str(refused))
        try:
            written = await asyncio.to_thread(lambda: write_feedback(sink, outcomes, client=self.store_client(sink)))
        except KfpMlopsError as exc:
            return error_response(503 if exc.exit_code == 3 else 400, str(exc))
        return Response(orjson.dumps({"written": written}), media_type=JSON)


class HostRESTServer(RESTServer):
    """KServe's REST server, bound to ``host``, with our routes first and no per-request log lines."""

    def __init__(self, *args: Any, host: str, options: ServeOptions, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host
        self.config.access_log = False
        self.options = options
        quiet_access_log()

    def _add_middlewares(self, app: Any) -> None:
        # KServe's TimingMiddleware logs a line per request; the payload limit replaces it.
        app.add_middleware(PayloadLimit, limit=self.options.max_payload_bytes)

    def create_application(self) -> None:
        from uvicorn.importer import import_from_string

        warnings.filterwarnings("ignore", category=DeprecationWarning)  # FastAPI warns on every request otherwise
        quiet_access_log()
        for model in self.dataplane.model_registry.get_models().values():
            if isinstance(model, ServedModel):
                model.load()  # in this process: a worker got the model without its program
        app = import_from_string("kserve.model_server:app")
        routes = Routes(self)
        own = [
            Route("/v2/models/{model_name}/infer", routes.v2_infer, methods=["POST"]),
            Route("/v2/models/{model_name}", routes.v2_metadata, methods=["GET"]),
            Route("/v1/feedback", routes.feedback, methods=["POST"]),
        ]
        if not self.options.kserve_handlers:
            own.insert(0, Route("/v1/models/{model_name}:predict", routes.v1_predict, methods=["POST"]))
        app.router.routes[0:0] = own
        super().create_application()


class KfpModelServer(kserve.ModelServer):
    """KServe's ModelServer, serving REST only, through ``HostRESTServer``."""

    def __init__(self, options: ServeOptions) -> None:
        super().__init__(http_port=options.http_port, workers=options.workers, enable_grpc=False, enable_latency_logging=False)
        self.options = options

    def start(self, models: list[kserve.Model]) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        rest = HostRESTServer(
            "kserve.model_server:app",
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.options.host,
            options=self.options,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        if self.workers > 1:
            multi = PatientMultiProcess(
                "kserve.model_server:app",
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                workers=self.workers,
                grace_period=self.grace_period,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
            )
            multi._rest_server = rest  # its worker processes run our server's app and bind our host
            self._rest_multiprocess_server = multi
            self.servers.append(multi.start())
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def serve(loaded: LoadedModel, options: ServeOptions) -> None:
    """Serve ``loaded`` until stopped (SIGTERM / SIGINT)."""
    model = ServedModel(loaded, options)
    try:
        KfpModelServer(options).start([model])
    finally:
        if model._runtime is not None:
            model._runtime.close()


__all__ = ["HostRESTServer", "KfpModelServer", "PayloadLimit", "ServeOptions", "ServedModel", "serve"]
