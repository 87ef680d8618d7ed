"""A local HTTP splitter: routes each request to one model-server arm by weight, sticky by a key.

    python -m kfp_mlops.components.deploy.splitter --port 8080 \\
        --arm champion=http://127.0.0.1:9001 --arm challenger=http://127.0.0.1:9002 \\
        --weights champion=90,challenger=10

Every path is forwarded unchanged (method, path, query, body, end-to-end headers) to the
chosen arm, and the answer comes back with an ``X-Kfp-Mlops-Arm`` header. The body is
never parsed. Admin routes live under ``/-/splitter`` and answer loopback clients only:
``GET /-/splitter`` (arms, weights, counts), ``GET /-/splitter/health``,
``PUT /-/splitter/weights`` (``{"champion": 75, "challenger": 25}``) and
``PUT /-/splitter/arms`` (the whole table; answers once the backends it dropped are idle).

How an arm is chosen (by weight, sticky by the ``X-Kfp-Mlops-Key`` header) is in
splitting.py, with why a weight shift moves keys only between the arms whose weights change.

Why raw asyncio protocols and httptools (the parser uvicorn uses) rather than aiohttp's
server and client: on the same machine and run, aiohttp cost 0.78 ms of splitter CPU per
request and added 2.1 ms at p50; this costs 0.1-0.3 ms and adds 0.25 ms
(benchmarks/bench_splitter.py). Bodies are capped (413 above ``--max-body-bytes``) and
relayed whole, never parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import signal
import socket
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

from kfp_mlops.components.deploy.splitter_backend import BackendPool
from kfp_mlops.components.deploy.splitting import (
    BUCKETS,
    WEIGHTS_FIX,
    Route,
    RoutingTable,
    SplitterConfigError,
    key_bucket,
    routes_from_json,
)

ADMIN_PREFIX = "/-/splitter"
ARM_HEADER = "X-Kfp-Mlops-Arm"
DEFAULT_KEY_HEADER = "X-Kfp-Mlops-Key"
# One MiB of request plus slack for the JSON framing around it.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024 + 64 * 1024
MAX_HEAD_BYTES = 64 * 1024


class Splitter:
    """Routing state shared by every connection: the table, a connection pool per arm URL, counters."""

    def __init__(self, table: RoutingTable, *, key_header: str = DEFAULT_KEY_HEADER, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 seed: int | None = None, backend_timeout_s: float = 60.0) -> None:  # fmt: skip
        self.table = table
        self.key_header = key_header
        self.key_header_lower = key_header.lower().encode("latin-1")
        self.max_body_bytes = max_body_bytes
        self.backend_timeout_s = backend_timeout_s
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
        self._random = random.Random(self.seed)
        self.pools: dict[str, BackendPool] = {}
        self.in_flight: dict[str, int] = {}
        self.requests: dict[str, int] = {r.name: 0 for r in table.routes}
        self.errors: dict[str, int] = {r.name: 0 for r in table.routes}

    def choose(self, key: bytes | str | None) -> Route:
        return self.table.route_for_bucket(key_bucket(key) if key else self._random.randrange(BUCKETS))

    def pool(self, url: str) -> "BackendPool":
        pool = self.pools.get(url)
        if pool is None:
            pool = self.pools[url] = BackendPool(url)
        return pool

    async def forward(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes, list, bytes]:
        """Send one request to the chosen arm; (status, reason, headers, body) with the arm header added."""
        key = next((v for k, v in headers if k.lower() == self.key_header_lower), None)
        route = self.choose(key)
        name = route.name
        self.requests[name] = self.requests.get(name, 0) + 1
        self.in_flight[route.url] = self.in_flight.get(route.url, 0) + 1
        arm_header = (ARM_HEADER.encode(), name.encode("latin-1"))
        try:
            status, reason, answer_headers, payload = await self.pool(route.url).exchange(method, target, headers, body, self.backend_timeout_s)
            return status, reason, [*answer_headers, arm_header], payload
        except (ConnectionRefusedError, socket.gaierror) as error:
            return self._backend_error(route, 502, f"arm {name!r} at {route.url} is not reachable ({error})")
        except asyncio.TimeoutError:
            return self._backend_error(route, 504, f"arm {name!r} at {route.url} did not answer within {self.backend_timeout_s:g} s")
        except (OSError, ValueError) as error:
            return self._backend_error(route, 502, f"arm {name!r} at {route.url} failed mid-request ({type(error).__name__}: {error})")
        finally:
            self.in_flight[route.url] -= 1

    def _backend_error(self, route: Route, status: int, message: str) -> tuple[int, bytes, list, bytes]:
        self.errors[route.name] = self.errors.get(route.name, 0) + 1
        fix = "check the arm's process and log (kfp-mlops deployments lists them and their logs), or shift its weight to 0 with PUT /-/splitter/weights"
        status_, reason, headers, body = json_answer(status, {"error": message, "arm": route.name, "fix": fix})
        return status_, reason, [*headers, (ARM_HEADER.encode(), route.name.encode("latin-1"))], body

    def replace_table(self, table: RoutingTable) -> list[str]:
        """Route by ``table`` from now on; return the URLs no arm uses any more (to drain and close)."""
        self.table = table
        for route in table.routes:
            self.requests.setdefault(route.name, 0)
            self.errors.setdefault(route.name, 0)
        kept = {r.url for r in table.routes}
        return [url for url in self.pools if url not in kept]

    async def drain_and_close(self, urls: list[str], timeout_s: float) -> bool:
        """Wait for the requests still running on ``urls`` to finish, then close their connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(self.in_flight.get(u, 0) for u in urls) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        drained = not any(self.in_flight.get(u, 0) for u in urls)
        for url in urls:
            pool = self.pools.pop(url, None)
            if pool is not None:
                pool.close()
        return drained

    def describe(self) -> dict[str, Any]:
        arms = [
            {"name": r.name, "url": r.url, "weight": r.weight, "requests": self.requests.get(r.name, 0),
             "errors": self.errors.get(r.name, 0), "in_flight": self.in_flight.get(r.url, 0)}
            for r in self.table.routes
        ]  # fmt: skip
        return {"arms": arms, "weights": self.table.weights(), "key_header": self.key_header, "buckets": BUCKETS,
                "max_body_bytes": self.max_body_bytes, "pid": os.getpid()}  # fmt: skip

    async def admin(self, method: bytes, path: str, body: bytes, peer: str | None) -> tuple[int, bytes, list, bytes]:
        """The routes under /-/splitter; loopback clients only."""
        if not _is_loopback(peer):
            return json_answer(403, {"error": "the splitter's admin routes answer loopback clients only"})
        query = parse_qs(urlsplit(path).query)
        route = (method.decode("latin-1"), urlsplit(path).path.rstrip("/"))
        if route == ("GET", ADMIN_PREFIX):
            return json_answer(200, self.describe())
        if route == ("GET", f"{ADMIN_PREFIX}/health"):
            return json_answer(200, {"status": "ok", "arms": len(self.table.routes)})
        if route in (("PUT", f"{ADMIN_PREFIX}/weights"), ("PUT", f"{ADMIN_PREFIX}/arms")):
            try:
                payload = _json(body)
                if route[1].endswith("/weights"):
                    self.replace_table(self.table.with_weights(payload))
                    return json_answer(200, self.describe())
                dropped = self.replace_table(RoutingTable(routes_from_json(payload)))
                drain_s = float(query.get("drain_s", ["30"])[0])
            except (SplitterConfigError, ValueError) as error:
                return json_answer(400, {"error": str(error)})
            drained = await self.drain_and_close(dropped, drain_s)
            return json_answer(200, {**self.describe(), "drained": drained})
        return json_answer(404, {"error": f"no splitter admin route {route[0]} {route[1]}"})

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


def json_answer(status: int, payload: Any) -> tuple[int, bytes, list, bytes]:
    return status, HTTPStatus(status).phrase.encode(), [(b"Content-Type", b"application/json")], json.dumps(payload).encode()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise SplitterConfigError(f"the body is not JSON ({error})", fix=WEIGHTS_FIX) from None


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        return False


class ClientConnection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered in order (pipelining allowed)."""

    def __init__(self, splitter: Splitter) -> None:
        import httptools

        self.splitter = splitter
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.peer: str | None = None
        self.queue: list[tuple[bytes, bytes, list, bytes, bool]] = []
        self.busy = False
        self.refused = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else None

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        try:
            self.parser.feed_data(data)
        except Exception as error:  # httptools.HttpParserError / HttpParserUpgrade: not a request we can forward
            self._refuse(400, f"not an HTTP/1.1 request the splitter can forward ({type(error).__name__}: {error})")

    def on_message_begin(self) -> None:
        self.url, self.size, self.head_size = b"", 0, 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        """The request line and headers are held in memory: capped, as the body is."""
        self.head_size += size
        if self.head_size > MAX_HEAD_BYTES:
            self._refuse(431, f"request line and headers are larger than {MAX_HEAD_BYTES} bytes", "send a shorter URL and fewer, shorter headers")

    def on_headers_complete(self) -> None:
        length = next((v for k, v in self.headers if k.lower() == b"content-length"), None)
        if length is not None and length.strip().isdigit() and int(length) > self.splitter.max_body_bytes:
            return self._too_large()
        if any(k.lower() == b"expect" and v.lower() == b"100-continue" for k, v in self.headers):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.splitter.max_body_bytes:
            return self._too_large()
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.queue.append((self.parser.get_method(), self.url, self.headers, b"".join(self.body), self.parser.should_keep_alive()))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._answer_in_order())

    async def _answer_in_order(self) -> None:
        while self.queue and not self.transport.is_closing():
            method, target, headers, body, keep_alive = self.queue.pop(0)
            if target.startswith(ADMIN_PREFIX.encode()) and target[len(ADMIN_PREFIX) : len(ADMIN_PREFIX) + 1] in (b"", b"/", b"?"):
                answer = await self.splitter.admin(method, target.decode("latin-1"), body, self.peer)
            else:
                answer = await self.splitter.forward(method, target, headers, body)
            self._write(*answer, keep_alive=keep_alive)
        self.busy = False

    def _write(self, status: int, reason: bytes, headers: list, body: bytes, *, keep_alive: bool) -> None:
        head = [b"HTTP/1.1 %d %s\r\n" % (status, reason or b"-")]
        head += [b"%s: %s\r\n" % kv for kv in headers]
        head.append(b"Content-Length: %d\r\n" % len(body))
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        self.transport.write(b"".join(head) + b"\r\n" + body)
        if not keep_alive:
            self.transport.close()

    def _too_large(self) -> None:
        limit = self.splitter.max_body_bytes
        self._refuse(413, f"request body is larger than the splitter's limit of {limit} bytes", "send fewer rows per request, or start the splitter with a larger --max-body-bytes")

    def _refuse(self, status: int, message: str, fix: str = "") -> None:
        """Answer now and close: the rest of this connection's bytes are not read."""
        if not self.refused:
            self.refused = True
            self._write(*json_answer(status, {"error": message, "fix": fix}), keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.refused = True


async def serve(splitter: Splitter, host: str, port: int, *, port_file: Path | None = None) -> None:
    """Serve until SIGTERM or SIGINT; write the bound port to ``port_file`` (atomically) once listening."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = await loop.create_server(lambda: ClientConnection(splitter), sock=sock, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if port_file is not None:
        from kfp_mlops.components._shared.atomic import write_text_atomic

        write_text_atomic(port_file, str(sock.getsockname()[1]))
    print(f"splitter listening on {host}:{sock.getsockname()[1]}, arms {splitter.table.weights()}", flush=True)
    await stop.wait()
    server.close()
    splitter.close()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kfp_mlops.components.deploy.splitter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (see --port-file)")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME=URL", help="an arm, in routing order; repeat per arm")
    parser.add_argument("--weights", default="", metavar="NAME=PERCENT,...", help="default: all traffic to the first arm")
    parser.add_argument("--key-header", default=DEFAULT_KEY_HEADER)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--backend-timeout-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="seed of the weighted random choice for requests without a key")
    parser.add_argument("--port-file", type=Path, default=None, help="write the bound port here once listening")
    return parser.parse_args(list(argv))


def table_from_args(arms: Sequence[str], weights_text: str) -> RoutingTable:
    pairs = [a.partition("=") for a in arms]
    if any(not sep or not name for name, sep, _ in pairs):
        raise SplitterConfigError(f"arms {list(arms)} are not all NAME=URL", fix="give each arm as --arm NAME=http://HOST:PORT")
    weights: dict[str, Any] = {name: 0 for name, _, _ in pairs}
    if pairs and not weights_text:
        weights[pairs[0][0]] = 100
    for part in filter(None, (p.strip() for p in weights_text.split(","))):
        name, _, value = part.partition("=")
        weights[name.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value
    return RoutingTable([Route(name, url.rstrip("/"), weights.get(name, 0)) for name, _, url in pairs]).with_weights(weights)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        table = table_from_args(args.arm, args.weights)
    except SplitterConfigError as error:
        print(error, file=sys.stderr)
        return error.exit_code
    splitter = Splitter(table, key_header=args.key_header, max_body_bytes=args.max_body_bytes, seed=args.seed, backend_timeout_s=args.backend_timeout_s)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional: the standard loop works, somewhat slower
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(splitter, args.host, args.port, port_file=args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
