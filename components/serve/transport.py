"""The model server's HTTP and process plumbing, under KServe's server classes.

``PayloadLimit`` refuses oversized bodies before they are parsed; ``PatientMultiProcess``
gives worker processes time to import torch and load the model before KServe's health
pings may kill them; ``quiet_access_log`` stops uvicorn's per-request access lines (each
measured to cost more than scoring a row). ``error_response`` is the JSON error body
every route and the middleware answer with.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

# Imported only from server.py, after the CLI parsed its own arguments: kserve parses sys.argv at import.
from kserve.protocol.rest.multiprocess.server import (
    RESTServerMultiProcess,
    RESTServerProcess,
)
from starlette.responses import Response

JSON = "application/json"


def error_response(status: int, message: str, request_id: str = "") -> Response:
    """A JSON ``{"error": ..., "request_id": ...}`` answer, echoing the request id as a header too."""
    body = {"error": message}
    if request_id:
        body["request_id"] = request_id
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers={"x-request-id": request_id} if request_id else None)


class PayloadLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413, by its Content-Length or as it streams in.

    It also closes KServe's model repository extension (``/v2/repository/...``): through it any
    client on the serving port could unload the model, leaving the arm answering 404 while
    readiness still says ready.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v2/repository"):
            await error_response(404, "the model repository extension is not served here: a deployment changes the model")(scope, receive, send)
            return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                await error_response(413, f"the request body is {int(value):,} bytes, over the limit of {self.limit:,} (--max-payload-bytes)")(scope, receive, send)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # client left; let the app see it
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                await error_response(413, f"the request body exceeds the limit of {self.limit:,} bytes (--max-payload-bytes)")(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def quiet_access_log() -> None:
    """Stop uvicorn's access line per request (in this process)."""
    # uvicorn writes an access line per request whenever its logger has a handler (the root's counts).
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False


class PatientMultiProcess(RESTServerMultiProcess):
    """KServe's worker supervisor, but a worker still starting is not pinged: KServe kills a worker that
    does not answer within 5 s, and importing torch and loading the model can take longer than that."""

    startup_grace_s = 120.0

    async def keep_subprocess_alive(self, sockets: list) -> None:
        now = time.monotonic()
        born = self.__dict__.setdefault("_born", {})
        for idx, process in enumerate(self._processes):
            born.setdefault(process.pid, now)
            if self.should_exit.is_set():
                return
            alive = process._process.is_alive()
            if alive and now - born[process.pid] < self.startup_grace_s:
                continue
            if alive and process.is_alive():
                continue
            process.kill()
            await process.wait_for_termination()
            replacement = RESTServerProcess(sockets, self._rest_server.run)
            replacement.start()
            self._processes[idx] = replacement


__all__ = ["JSON", "PatientMultiProcess", "PayloadLimit", "error_response", "quiet_access_log"]
