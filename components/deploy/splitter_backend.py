"""The splitter's connections to the arms: a keep-alive pool per arm, one request at a time per connection."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded. Host and
# Content-Length are set anew for the hop to the arm.
# Expect is answered here (the arm gets the whole body at once).
HOP_BY_HOP = frozenset(
    h.lower().encode()
    for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
              "TE", "Trailer", "Trailers", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect")
)  # fmt: skip


def _end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers without the hop-by-hop ones (and without those the Connection header names)."""
    named = {t.strip().lower() for k, v in headers if k.lower() == b"connection" for t in v.split(b",")}
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]


class BackendPool:
    """Keep-alive HTTP/1.1 connections to one arm: an idle one is reused, otherwise one is opened."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = parts.netloc.encode("latin-1")
        self.idle: list[BackendConnection] = []
        self.closed = False

    async def exchange(self, method: bytes, target: bytes, headers: list, body: bytes, timeout_s: float) -> tuple[int, bytes, list, bytes]:
        head = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, self.host_header)]
        head += [b"%s: %s\r\n" % kv for kv in _end_to_end(headers)]
        if body or method in (b"POST", b"PUT", b"PATCH"):
            head.append(b"Content-Length: %d\r\n" % len(body))
        request = b"".join(head) + b"\r\n" + body
        while self.idle:
            connection = self.idle.pop()
            if connection.usable():
                try:
                    return await self._send(connection, request, method == b"HEAD", timeout_s)
                except StaleConnection:
                    # The arm closed this idle connection before reading our request: safe to resend once.
                    continue
        _, connection = await asyncio.get_running_loop().create_connection(BackendConnection, self.host, self.port)
        try:
            return await self._send(connection, request, method == b"HEAD", timeout_s)
        except StaleConnection:
            raise ConnectionResetError("the arm closed the connection without answering") from None

    async def _send(self, connection: "BackendConnection", request: bytes, head_only: bool, timeout_s: float) -> tuple[int, bytes, list, bytes]:
        try:
            status, reason, headers, body, keep_alive = await connection.exchange(request, head_only, timeout_s)
        except BaseException:  # a timeout or an error: a late answer must never reach the next request
            connection.close()
            raise
        if keep_alive and connection.usable() and not self.closed and len(self.idle) < 256:
            self.idle.append(connection)
        else:
            connection.close()
        return status, reason, _end_to_end(headers), body

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()


class StaleConnection(ConnectionError):
    """A reused connection was closed before any byte of the answer arrived."""


class BackendConnection(asyncio.Protocol):
    """One connection to an arm; one request at a time; the answer parsed by httptools."""

    def __init__(self) -> None:
        import httptools

        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future | None = None
        self.lost = False
        self.received = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def usable(self) -> bool:
        return not self.lost and self.answer is None and not self.transport.is_closing()

    async def exchange(self, request: bytes, head_only: bool, timeout_s: float) -> tuple[int, bytes, list, bytes, bool]:
        loop = asyncio.get_running_loop()
        self.answer = loop.create_future()
        self.head_only, self.received, self.reason = head_only, False, b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        # A timer on the future, not asyncio.wait_for: that would cost a task per request.
        timer = loop.call_later(timeout_s, self._fail, asyncio.TimeoutError())
        self.transport.write(request)
        try:
            return await self.answer
        finally:
            timer.cancel()
            self.answer = None

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except Exception as error:  # httptools.HttpParserError: the arm spoke something other than HTTP/1.1
            self._fail(ValueError(f"unparseable answer: {error}"))
            self.close()

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head_only:  # no body follows a HEAD answer; the parser cannot be told, so this connection ends here
            self.lost = True
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.answer is not None and not self.answer.done():
            keep_alive = self.parser.should_keep_alive() and not self.lost
            self.answer.set_result((self.parser.get_status_code(), self.reason, self.headers, b"".join(self.body), keep_alive))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(StaleConnection() if not self.received else ConnectionResetError("the arm closed the connection mid-answer"))

    def _fail(self, error: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(error)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()
