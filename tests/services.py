"""Local stand-ins for the systems a cluster would have: an HTTP file server with
injectable faults, the GCS emulator and an S3 server (moto). Started by the tests
themselves; nothing here is mocked in-process."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def require(ok: bool, reason: str) -> None:
    """Skip with a visible reason, or fail under CI=true, where every dependency must be present."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


class FaultyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder. ``/fail503/N/<file>`` answers 503 N times first; ``/reset/N/<file>``
    drops the connection N times first; ``/denied/<file>`` answers 403."""

    failures: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # keep test output readable
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = self.path.lstrip("/").split("/")
        if parts[0] == "denied":
            self.send_error(403)
            return
        if parts[0] in ("fail503", "reset") and len(parts) >= 3:
            with self.lock:
                seen = self.failures.get(self.path, 0)
                self.failures[self.path] = seen + 1
            if seen < int(parts[1]):
                if parts[0] == "fail503":
                    self.send_error(503)
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                return
            self.path = "/" + "/".join(parts[2:])
        super().do_GET()


def start_http_server(directory: Path):
    handler = lambda *a, **kw: FaultyHandler(*a, directory=str(directory), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def start_process(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return proc


def python_bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with its backend store in a fresh PostgreSQL database."""

    def __init__(self, workdir: Path) -> None:
        import uuid

        import psycopg

        workdir.mkdir(parents=True, exist_ok=True)
        self.database = f"mlflow_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.start()

    def start(self) -> None:
        workdir = self.workdir
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        self.proc = subprocess.Popen(
            [
                python_bin("mlflow"), "server",
                "--backend-store-uri", f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}",
                "--artifacts-destination", str(workdir / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2",
            ],
            stdout=(workdir / "server.log").open("a"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self._wait_healthy(120)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)

    def _wait_healthy(self, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError("mlflow server did not become healthy")

    def close(self) -> None:
        import psycopg

        if self.proc.poll() is None:
            self.stop()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
