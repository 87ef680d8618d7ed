"""The HTTP side of the model server: our predict, metadata and feedback routes on KServe's app,
the REST server that binds the host given, and the ``ModelServer`` that runs them.

Why these routes bypass KServe's handlers, and what was changed in KServe's server, is in
``server.py``'s docstring; the middleware and worker supervisor are in ``transport.py``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import uuid
import warnings
from datetime import datetime, timezone
from typing import Any

import orjson

from kfp_mlops.components._shared.errors import FeatureStoreError, KfpMlopsError
from kfp_mlops.components.serve.codec import RequestError
from kfp_mlops.components.serve.model_source import LoadedModel
from kfp_mlops.components.serve.server import ServedModel, ServeOptions

# server.py imports kserve after the CLI parsed its arguments; this module is imported after it.
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

log = logging.getLogger(__name__)


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


__all__ = ["HostRESTServer", "KfpModelServer", "Routes", "serve"]
