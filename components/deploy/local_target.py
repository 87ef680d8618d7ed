"""The local deploy target: one model-server process per arm behind the local splitter.

The processes outlive the caller (a KFP step ends once it has deployed): each runs in its
own session, logs to ``state_dir/logs/``, and is recorded in ``state_dir/deployment.json``
(written atomically) with its pid, start time, port, weight and command. Later calls
(status, set weights, redeploy, stop) find them there.

A redeploy reuses every arm whose command is unchanged, starts the changed ones on new
ports, waits for them to be ready, then switches the splitter and only then stops the
processes it replaced. If a new process exits or is not ready in time, the new processes
are killed and the running deployment is left exactly as it was. A pid is signalled only
after its command line and start time match what we recorded: never a stranger's process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from kfp_mlops.components._shared.atomic import write_json_atomic
from kfp_mlops.components._shared.file_lock import locked
from kfp_mlops.components.deploy.arms import DeployInputError
from kfp_mlops.components.deploy.local_processes import (
    LocalDeployError,
    Process,
    boot_id,
    exit_status,
    free_port,
    start,
    stop,
    tail,
)
from kfp_mlops.components.deploy.splitting import SplitterConfigError, check_weights

STATE_FILE = "deployment.json"
STARTING_FILE = "starting.json"
ARM_HOST = "127.0.0.1"  # arms are reached through the splitter only
READINESS_PATH = "/v2/health/ready"
SPLITTER_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LocalArm:
    """One arm to run: ``command`` is the server's argv without host and port (they are appended as
    ``--host 127.0.0.1 --http-port PORT``), or a callable that gets the port and returns the full argv."""

    name: str
    command: Sequence[str] | Callable[[int], Sequence[str]]
    weight: int

    def argv(self, port: int) -> list[str]:
        if callable(self.command):
            return [str(a) for a in self.command(port)]
        return [*map(str, self.command), "--host", ARM_HOST, "--http-port", str(port)]


class RunningArm(NamedTuple):
    url: str
    pid: int
    weight: int
    command: list[str]
    log_file: Path
    alive: bool = True


@dataclass
class LocalDeployment:
    """What runs: the splitter's URL and pid, and each arm's URL, pid, weight, command and log."""

    url: str
    arms: dict[str, RunningArm]
    splitter_pid: int
    state_file: Path
    splitter_alive: bool = True
    splitter_log: Path | None = None
    reused: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.splitter_alive and all(arm.alive for arm in self.arms.values())


def deploy_local(arms: list[LocalArm], *, state_dir: Path, host: str = "127.0.0.1", port: int = 0, ready_timeout_s: float = 120.0,
                 env: dict[str, str] | None = None, readiness_path: str = READINESS_PATH,
                 while_starting: Callable[[], None] | None = None) -> LocalDeployment:  # fmt: skip
    """Run ``arms`` behind a splitter on ``host:port`` (0 = a free port, or the running splitter's).

    ``while_starting`` runs once the new processes are started, before waiting for them (a check that
    overlaps their start); what it raises stops them and keeps the previous deployment.

    Raises:
        DeployInputError: names, weights or commands are wrong (nothing started).
        LocalDeployError: a process exited or was not ready (the previous deployment is kept).
    """
    _check_arms(arms)
    state_dir = Path(state_dir).expanduser().resolve()
    env_digest = _digest(env or {})
    child_env = {**os.environ, **(env or {})}
    with _locked(state_dir):
        _kill_leftovers_of_an_interrupted_deploy(state_dir)
        previous = _load_live_state(state_dir)
        old_arms: dict[str, dict[str, Any]] = previous.get("arms", {}) if previous else {}
        records: dict[str, dict[str, Any]] = {}
        started: dict[str, Process] = {}
        try:
            for arm in arms:
                old = old_arms.get(arm.name)
                if old and old["alive"] and old["env_digest"] == env_digest and arm.argv(old["port"]) == old["argv"]:
                    records[arm.name] = {**old, "weight": arm.weight}
                    continue
                arm_port = free_port(ARM_HOST)
                started[arm.name] = start(arm.argv(arm_port), state_dir / "logs" / f"{arm.name}-{arm_port}.log", child_env, arm.name)
                _record_starting(state_dir, started.values())
                url = f"http://{ARM_HOST}:{arm_port}"
                records[arm.name] = {**started[arm.name].record(), "port": arm_port, "url": url, "weight": arm.weight, "env_digest": env_digest}
            if while_starting is not None:
                while_starting()
            _wait_until_ready({n: (started[n], records[n]["url"] + readiness_path) for n in started}, ready_timeout_s)
            splitter = _switch_splitter(state_dir, previous, [(a.name, records[a.name]) for a in arms], host, port, started)
        except BaseException:
            for process in started.values():
                stop(process)
            _record_starting(state_dir, [])
            raise
        state = {"version": 1, "boot_id": boot_id(), "splitter": splitter, "order": [a.name for a in arms], "arms": records}
        write_json_atomic(state_dir / STATE_FILE, _without_liveness(state))
        _record_starting(state_dir, [])
        for name, old in old_arms.items():
            if records.get(name, {}).get("pid") != old["pid"]:
                stop(Process.from_record(old), remove_log=True)
        if previous and previous["splitter"]["pid"] != splitter["pid"]:
            stop(Process.from_record(previous["splitter"]), remove_log=True)
        deployment = _deployment(state_dir, state)
        deployment.reused = [a.name for a in arms if a.name not in started]
        return deployment


def status_local(state_dir: Path) -> LocalDeployment | None:
    """The recorded deployment with each process's liveness; None (and the state removed) once nothing of it runs."""
    state_dir = Path(state_dir).expanduser().resolve()
    if not (state_dir / STATE_FILE).exists():
        return None
    with _locked(state_dir):
        state = _load_live_state(state_dir)
        if state is None:
            return None
        if not state["splitter"]["alive"] and not any(a["alive"] for a in state["arms"].values()):
            _remove_state(state_dir)
            return None
        if state["splitter"]["alive"]:
            # Weights may have been changed on the splitter's admin route directly: report what routes now.
            with contextlib.suppress(LocalDeployError):
                for name, weight in _admin(state["splitter"], "GET", "/-/splitter", None)["weights"].items():
                    if name in state["arms"]:
                        state["arms"][name]["weight"] = weight
        return _deployment(state_dir, state)


def stop_local(state_dir: Path) -> None:
    """Stop the splitter (first, so no request reaches a stopping arm) and every arm; remove the state."""
    state_dir = Path(state_dir).expanduser().resolve()
    if not state_dir.exists():
        return
    with _locked(state_dir):
        _kill_leftovers_of_an_interrupted_deploy(state_dir)
        state = _load_live_state(state_dir)
        if state is not None:
            for record in [state["splitter"], *state["arms"].values()]:
                stop(Process.from_record(record), remove_log=True)
        _remove_state(state_dir)


def set_weights_local(state_dir: Path, weights: dict[str, int]) -> LocalDeployment:
    """Shift traffic between the running arms without restarting anything."""
    state_dir = Path(state_dir).expanduser().resolve()
    with _locked(state_dir):
        state = _load_live_state(state_dir)
        if state is None:
            raise LocalDeployError("no local deployment is recorded here", where=str(state_dir / STATE_FILE), fix="deploy first (kfp-mlops deploy --target local)")
        try:
            checked = check_weights(weights, state["order"])
        except SplitterConfigError as error:
            raise DeployInputError(error.problem, where=str(state_dir / STATE_FILE), fix=error.fix) from None
        if not state["splitter"]["alive"]:
            raise LocalDeployError("the splitter is not running", where=state["splitter"]["log"], fix="deploy again to restart it; its log is named above")
        _admin(state["splitter"], "PUT", "/-/splitter/weights", checked)
        for name, weight in checked.items():
            state["arms"][name]["weight"] = weight
        write_json_atomic(state_dir / STATE_FILE, _without_liveness(state))
        return _deployment(state_dir, state)


def _check_arms(arms: list[LocalArm]) -> None:
    fix = "give each arm once, a name of letters, digits, '-' or '_', a non-empty command, and whole-percent weights summing to 100"
    if not arms:
        raise DeployInputError("no arms to deploy", fix=fix)
    for arm in arms:
        if not arm.name or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in arm.name) or len(arm.name) > 63:
            raise DeployInputError(f"arm name {arm.name!r} is not usable in a URL header and a file name", fix=fix)
        if not callable(arm.command) and (isinstance(arm.command, str) or not list(arm.command)):
            raise DeployInputError(f"arm {arm.name!r} has command {arm.command!r}; it must be a non-empty argv list", fix=fix)
    try:
        names = [a.name for a in arms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SplitterConfigError(f"arm(s) {duplicates} given twice", fix=fix)
        check_weights({a.name: a.weight for a in arms}, names)
    except SplitterConfigError as error:
        raise DeployInputError(error.problem, fix=error.fix) from None


def _wait_until_ready(pending: dict[str, tuple[Process, str]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while pending:
        for name, (process, ready_url) in list(pending.items()):
            if not process.alive():
                raise LocalDeployError(
                    f"arm {name!r} exited before it was ready (pid {process.pid}{exit_status(process.pid)}); its log ends with:\n{tail(process.log)}",
                    where=str(process.log),
                    fix="fix what the log names (model URI, tracking URI, port) and deploy again; the previous deployment is still serving",
                )
            if _answers_200(ready_url):
                del pending[name]
        if pending and time.monotonic() > deadline:
            name, (process, ready_url) = next(iter(pending.items()))
            raise LocalDeployError(
                f"arm {name!r} was not ready at {ready_url} within {timeout_s:g} s; its log ends with:\n{tail(process.log)}",
                where=str(process.log),
                fix="read the log; raise the ready timeout if the model is only slow to load; the previous deployment is still serving",
            )
        if pending:
            time.sleep(0.1)


def _switch_splitter(state_dir: Path, previous: dict | None, table: list[tuple[str, dict]], host: str, port: int,
                     started: dict[str, Process]) -> dict[str, Any]:  # fmt: skip
    """Point the running splitter at ``table`` (it answers once the arms it dropped are idle), or start one."""
    arms = [{"name": name, "url": rec["url"], "weight": rec["weight"]} for name, rec in table]
    old = previous["splitter"] if previous else None
    if old and old["alive"] and port in (0, old["port"]) and old["host"] == host:
        _admin(old, "PUT", "/-/splitter/arms", {"arms": arms})
        return {k: v for k, v in old.items() if k != "alive"}
    port_file = state_dir / f"splitter-{os.getpid()}.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "kfp_mlops.components.deploy.splitter", "--host", host, "--port", str(port), "--port-file", str(port_file)]
    argv += [f"--arm={a['name']}={a['url']}" for a in arms] + ["--weights=" + ",".join(f"{a['name']}={a['weight']}" for a in arms)]
    log = state_dir / "logs" / f"splitter-{os.getpid()}-{time.time_ns()}.log"
    process = start(argv, log, dict(os.environ), "the splitter")
    started["(splitter)"] = process
    _record_starting(state_dir, started.values())
    deadline = time.monotonic() + SPLITTER_READY_TIMEOUT_S
    while not port_file.exists():
        if not process.alive() or time.monotonic() > deadline:
            how = f"exited{exit_status(process.pid)}" if not process.alive() else f"was not listening within {SPLITTER_READY_TIMEOUT_S:g} s"
            raise LocalDeployError(f"the splitter on {host}:{port} {how}; its log ends with:\n{tail(log)}", where=str(log),
                                   fix="pick a free port (or 0), and read the log; the previous deployment is still serving")  # fmt: skip
        time.sleep(0.05)
    bound = int(port_file.read_text())
    port_file.unlink()
    record = {**process.record(), "host": host, "port": bound, "url": f"http://{_connectable(host)}:{bound}"}
    _admin(record, "GET", "/-/splitter/health", None)
    return record


def _admin(splitter: dict[str, Any], method: str, path: str, payload: Any) -> dict[str, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(splitter["url"] + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:2000]
        raise LocalDeployError(f"the splitter refused {method} {path}: {error.code} {detail}", where=splitter["url"], fix="check the weights and arms sent") from None
    except OSError as error:
        raise LocalDeployError(f"the splitter at {splitter['url']} did not answer {method} {path} ({error})", where=splitter.get("log", ""),
                               fix="read the splitter's log; deploy again to restart it") from None  # fmt: skip


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (OSError, ValueError):
        return False


def _connectable(host: str) -> str:
    """The address a local client uses for a server bound to ``host`` (a wildcard bind is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One deploy, stop or weight change at a time per state folder, across processes."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with locked(state_dir / ".lock"):
        yield


def _load_live_state(state_dir: Path) -> dict[str, Any] | None:
    """The recorded state with an ``alive`` flag per process; after a reboot nothing recorded is ours."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError as error:
        raise LocalDeployError(f"the deployment state is not valid JSON ({error})", where=str(path), fix="stop the processes it names by hand, then delete the file") from None
    same_boot = state.get("boot_id") == boot_id()
    for record in [state["splitter"], *state["arms"].values()]:
        record["alive"] = same_boot and Process.from_record(record).alive()
    return state


def _kill_leftovers_of_an_interrupted_deploy(state_dir: Path) -> None:
    path = state_dir / STARTING_FILE
    if not path.exists():
        return
    state_path = state_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {"splitter": {}, "arms": {}}
    recorded = {rec.get("pid") for rec in [state["splitter"], *state["arms"].values()]}
    for record in json.loads(path.read_text()):
        if record["pid"] not in recorded:
            stop(Process.from_record(record))
    path.unlink()


def _record_starting(state_dir: Path, processes: Any) -> None:
    """Processes started but not yet in the state: a deploy killed half-way leaves them for the next call to stop."""
    records = [p.record() for p in processes]
    if records:
        write_json_atomic(state_dir / STARTING_FILE, records)
    else:
        (state_dir / STARTING_FILE).unlink(missing_ok=True)


def _remove_state(state_dir: Path) -> None:
    for name in (STATE_FILE, STARTING_FILE):
        (state_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (state_dir / "logs").rmdir()  # only when empty: logs of failed starts stay for reading


def _without_liveness(state: dict[str, Any]) -> dict[str, Any]:
    strip = lambda rec: {k: v for k, v in rec.items() if k != "alive"}  # noqa: E731
    return {**state, "splitter": strip(state["splitter"]), "arms": {n: strip(r) for n, r in state["arms"].items()}}


def _deployment(state_dir: Path, state: dict[str, Any]) -> LocalDeployment:
    arms = {name: RunningArm(rec["url"], rec["pid"], rec["weight"], list(rec["argv"]), Path(rec["log"]), rec.get("alive", True)) for name in state["order"] for rec in [state["arms"][name]]}
    splitter = state["splitter"]
    return LocalDeployment(splitter["url"], arms, splitter["pid"], state_dir / STATE_FILE, splitter.get("alive", True), Path(splitter["log"]))


def _digest(env: dict[str, str]) -> str:
    # Only a digest: the environment may hold credentials, which never go into the state file.
    return hashlib.sha256(json.dumps(sorted(env.items())).encode()).hexdigest()[:16]
