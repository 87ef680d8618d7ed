"""Local processes of a deployment: started detached, recorded, and signalled only once proven ours.

A process is recorded by pid, command line and start time; a pid is signalled only while all
three still match (a reused pid is a stranger's process). Children this interpreter started are
reaped here, so they never linger as zombies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_mlops.components._shared.errors import KfpMlopsError


class LocalDeployError(KfpMlopsError):
    """A local process did not start, exited, or was not ready; the previous deployment is unchanged."""

    exit_code = 3


_CHILDREN: dict[int, subprocess.Popen] = {}  # started by this interpreter: reaped here, so never left as zombies
_EXITED: dict[int, subprocess.Popen] = {}  # reaped children, for their exit status in error messages


@dataclass(frozen=True)
class Process:
    """A process we started, as recorded in the state: enough to find it again and prove it ours."""

    pid: int
    argv: list[str]
    start_ticks: str
    log: Path

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "argv": self.argv, "start_ticks": self.start_ticks, "log": str(self.log)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Process":
        return cls(int(record["pid"]), list(record["argv"]), str(record["start_ticks"]), Path(record["log"]))

    def alive(self) -> bool:
        """Running, and ours: the same command line and start time as recorded (a reused pid is a stranger)."""
        _reap(self.pid)
        info = _process_info(self.pid)
        if info is None or info[2] or info[1] != self.start_ticks:
            return False
        # The command line reads empty for a moment while the new program is being exec'd;
        # the start time has already matched, so it is this very process.
        return info[0] in (self.argv, [])


def start(argv: list[str], log: Path, env: dict[str, str], what: str) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log, "ab") as out:
        try:
            # A new session: the process outlives this one, and a terminal's Ctrl-C does not reach it.
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as error:
            raise LocalDeployError(f"{what} could not start: {error}", where=" ".join(argv[:3]), fix="check the command (is the executable installed?)") from None
    _CHILDREN[popen.pid] = popen
    # Popen returns after exec, so the command line read here is the new program's.
    info = _process_info(popen.pid)
    return Process(popen.pid, argv, info[1] if info else "", log)


def stop(process: Process, *, remove_log: bool = False, grace_s: float = 10.0) -> None:
    """SIGTERM the process's group, SIGKILL after ``grace_s``; nothing is signalled unless the leader is ours."""
    if process.alive():
        for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, signum)
                else:
                    os.kill(process.pid, signum)
            deadline = time.monotonic() + wait_s
            while process.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not process.alive():
                break
        # Workers the server forked share its group; the group id cannot be reused while any remain.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if remove_log:
        process.log.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    popen = _CHILDREN.get(pid)
    if popen is not None:
        if popen.poll() is not None:
            _EXITED[pid] = _CHILDREN.pop(pid)
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _process_info(pid: int) -> tuple[list[str], str, bool] | None:
    """(command line, start time, is a zombie) of ``pid``, or None when there is no such process."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():
        try:
            cmdline = proc.joinpath("cmdline").read_bytes()
            stat = proc.joinpath("stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
        return [a.decode(errors="surrogateescape") for a in cmdline.split(b"\0")[:-1]], fields[19], fields[0] == "Z"
    import psutil  # no /proc (macOS): psutil, a dependency of the model server

    try:
        p = psutil.Process(pid)
        return p.cmdline(), f"{p.create_time():.2f}", p.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return [], "", False


def exit_status(pid: int) -> str:
    popen = _EXITED.get(pid)
    if popen is None or popen.returncode is None:
        return ""
    return f", killed by signal {-popen.returncode}" if popen.returncode < 0 else f", exit code {popen.returncode}"


def boot_id() -> str:
    path = Path("/proc/sys/kernel/random/boot_id")
    if path.exists():
        return path.read_text().strip()
    import psutil

    return str(int(psutil.boot_time()))


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(log: Path, lines: int = 20) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (the log is empty)"
