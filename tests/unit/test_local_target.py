"""The local deploy target: arms as detached processes behind the weighted, sticky splitter.

Arms are small stand-in HTTP servers started from STAND_IN (they answer readiness and
echo their arm); one test runs the real model server when it is importable.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from kfp_mlops.components.deploy.arms import DeployInputError
from kfp_mlops.components.deploy.local_target import (
    LocalArm,
    LocalDeployError,
    deploy_local,
    set_weights_local,
    status_local,
    stop_local,
)
from kfp_mlops.components.deploy.splitting import BUCKETS, Route, RoutingTable, key_bucket
from tests.services import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]

# A stand-in for the model server: the same --arm/--host/--http-port flags, readiness at
# /v2/health/ready, and every other path echoed with the arm that answered.
STAND_IN = r"""
import argparse, asyncio, os, sys
from aiohttp import web
parser = argparse.ArgumentParser()
parser.add_argument("--arm", required=True)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--http-port", type=int, required=True)
parser.add_argument("--mode", default="ok", choices=["ok", "never-ready", "crash", "slow"])
parser.add_argument("--tag", default="")
args = parser.parse_args()
print(f"stand-in arm={args.arm} pid={os.getpid()} mode={args.mode}", flush=True)
if args.mode == "crash":
    sys.exit("stand-in: cannot load the model (on purpose)")
async def ready(request):
    return web.Response(status=503 if args.mode == "never-ready" else 200, text="")
async def echo(request):
    body = await request.read()
    if args.mode == "slow":
        await asyncio.sleep(30)
    seen = {"arm": args.arm, "tag": args.tag, "method": request.method, "path": request.path_qs, "body_bytes": len(body),
            "key": request.headers.get("X-Kfp-Mlops-Key"), "custom": request.headers.get("X-Custom"),
            "hop": request.headers.get("Proxy-Authorization")}
    return web.json_response(seen, headers={"X-Echo": "1"})
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_get("/v2/health/ready", ready)
app.router.add_route("*", "/{tail:.*}", echo)
web.run_app(app, host=args.host, port=args.http_port, print=None, access_log=None)
"""


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stand-in") / "stand_in.py"
    path.write_text(STAND_IN)
    return path


def arm(stand_in: Path, name: str, weight: int, *extra: str) -> LocalArm:
    return LocalArm(name, [sys.executable, str(stand_in), "--arm", name, *extra], weight)


@pytest.fixture
def deployed(stand_in, tmp_path):
    state_dir = tmp_path / "state"
    deployment = deploy_local([arm(stand_in, "champion", 50), arm(stand_in, "challenger", 50)], state_dir=state_dir, ready_timeout_s=60)
    yield state_dir, deployment
    stop_local(state_dir)


def alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def call(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def put_weights(url: str, weights: object) -> tuple[int, dict]:
    status, _, payload = call(url + "/-/splitter/weights", method="PUT", body=json.dumps(weights).encode())
    return status, payload


async def _many(url: str, keys: list[str | None], concurrency: int = 8) -> list[tuple[int, str, dict]]:
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(key: str | None) -> tuple[int, str, dict]:
            headers = {"X-Kfp-Mlops-Key": key} if key else {}  # aiohttp sends header values as UTF-8
            async with semaphore, session.post(url + "/v1/models/m:predict", data=b'{"instances": [{"x": 1}]}', headers=headers) as answer:
                return answer.status, answer.headers.get("X-Kfp-Mlops-Arm", ""), await answer.json()

        return await asyncio.gather(*(one(k) for k in keys))


def many(url: str, keys: list[str | None]) -> list[tuple[int, str, dict]]:
    return asyncio.run(_many(url, keys))


def arms_by_key(url: str, keys: list[str]) -> dict[str, str]:
    answers = many(url, keys)
    assert all(status == 200 and header == body["arm"] for status, header, body in answers)
    return {key: header for key, (_, header, _) in zip(keys, answers)}


def test_fifty_fifty_split_forwards_requests_unchanged(deployed):
    state_dir, deployment = deployed
    answers = many(deployment.url, [None] * 2000)
    assert all(status == 200 for status, _, _ in answers)
    assert all(header == body["arm"] for _, header, body in answers), "the arm header names the arm that answered"
    counts = Counter(header for _, header, _ in answers)
    # Binomial(2000, 0.5): 4.5 standard deviations either side fails by chance about once in 150 000 runs.
    assert abs(counts["champion"] - 1000) < 4.5 * math.sqrt(2000 * 0.25), counts
    _, _, described = call(deployment.url + "/-/splitter")
    assert {a["name"]: a["requests"] for a in described["arms"]} == dict(counts)

    status, headers, seen = call(
        deployment.url + "/v2/models/m/infer?explain=1&x=%20y", method="POST", body=b"z" * 5000,
        headers={"X-Custom": "kept", "Proxy-Authorization": "hop-by-hop", "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 200 and headers["X-Echo"] == "1" and headers["X-Kfp-Mlops-Arm"] == seen["arm"]
    assert seen["method"] == "POST" and seen["path"] == "/v2/models/m/infer?explain=1&x=%20y" and seen["body_bytes"] == 5000
    assert seen["custom"] == "kept" and seen["hop"] is None, "end-to-end headers pass, hop-by-hop headers do not"


def test_buckets_move_only_from_the_shrinking_arm_to_the_growing_one():
    """Over every bucket and every one-point shift between two arms, in both directions."""
    tables = [RoutingTable([Route("champion", "http://a", 100 - w), Route("challenger", "http://b", w)]) for w in range(101)]
    owners = [[t.route_for_bucket(b).name for b in range(BUCKETS)] for t in tables]
    for w in range(100):
        moved = {(before, after) for before, after in zip(owners[w], owners[w + 1]) if before != after}
        assert moved == {("champion", "challenger")} and owners[w + 1].count("challenger") == (w + 1) * 100
    assert key_bucket("user-17") == key_bucket("user-17") and 0 <= key_bucket("") < BUCKETS
    middle = RoutingTable([Route("a", "http://a", 30), Route("b", "http://b", 0), Route("c", "http://c", 70)])
    assert {middle.route_for_bucket(b).name for b in range(BUCKETS)} == {"a", "c"}, "a zero-weight arm gets nothing"


def test_sticky_keys_stay_put_and_only_move_to_the_growing_arm(deployed):
    state_dir, deployment = deployed
    keys = [f"customer-{i}" for i in range(400)] + ["kundin-müller"]
    seen: dict[int, dict[str, str]] = {}
    for weight in (10, 25, 50, 100, 50, 25, 10):
        set_weights_local(state_dir, {"champion": 100 - weight, "challenger": weight})
        placed = arms_by_key(deployment.url, keys)
        table = RoutingTable([Route("champion", "http://a", 100 - weight), Route("challenger", "http://b", weight)])
        assert placed == {k: table.route_for_bucket(key_bucket(k)).name for k in keys}, "as documented: blake2b(key) mod 10000 on the line"
        assert placed == arms_by_key(deployment.url, keys), "the same key reaches the same arm"
        if weight in seen:
            assert placed == seen[weight], "the same weights place every key as before"
        seen[weight] = placed
        share = sum(a == "challenger" for a in placed.values()) / len(keys)
        assert abs(share - weight / 100) < 0.1, (weight, share)
    ramp = [10, 25, 50, 100]
    for small, large in zip(ramp, ramp[1:]):
        on_challenger_before = {k for k, a in seen[small].items() if a == "challenger"}
        on_challenger_after = {k for k, a in seen[large].items() if a == "challenger"}
        assert on_challenger_before <= on_challenger_after, "no key moved from the growing arm back"
    assert status_local(state_dir).arms["challenger"].weight == 10


def test_weights_are_validated_by_the_splitter_and_the_target(deployed):
    state_dir, deployment = deployed
    for bad in ({"champion": 50, "rogue": 50}, {"champion": 101, "challenger": -1}, {"champion": 50.5, "challenger": 49.5},
                {"champion": "50", "challenger": "50"}, {"champion": True, "challenger": 99}, {"champion": 50, "challenger": 40},
                {"champion": 100}, [50, 50], "not json"):  # fmt: skip
        body = bad.encode() if isinstance(bad, str) else json.dumps(bad).encode()
        status, _, payload = call(deployment.url + "/-/splitter/weights", method="PUT", body=body)
        assert status == 400 and "What to do" in payload["error"], (bad, payload)
    assert put_weights(deployment.url, {"challenger": 25, "champion": 75})[0] == 200
    assert call(deployment.url + "/-/splitter")[2]["weights"] == {"champion": 75, "challenger": 25}, "kept in the arms' order"
    assert call(deployment.url + "/-/splitter/nothing")[0] == 404 and call(deployment.url + "/-/splitter/health")[0] == 200
    with pytest.raises(DeployInputError, match="unknown arm"):
        set_weights_local(state_dir, {"champion": 50, "rogue": 50})
    with pytest.raises(DeployInputError, match="sum to 90"):
        set_weights_local(state_dir, {"champion": 50, "challenger": 40})
    assert {n: a.weight for n, a in status_local(state_dir).arms.items()} == {"champion": 75, "challenger": 25}, "status reads the live weights"


def test_bad_arms_fail_before_anything_starts(stand_in, tmp_path):
    state_dir = tmp_path / "state"
    cases = {
        "sum to 90": [arm(stand_in, "champion", 50), arm(stand_in, "challenger", 40)],
        "given twice": [arm(stand_in, "champion", 50), arm(stand_in, "champion", 50)],
        "not a whole percent": [arm(stand_in, "champion", 150), arm(stand_in, "challenger", -50)],
        "not usable": [arm(stand_in, "cham pion", 100)],
        "non-empty argv": [LocalArm("champion", [], 100)],
        "no arms": [],
    }
    for message, arms in cases.items():
        with pytest.raises(DeployInputError, match=message):
            deploy_local(arms, state_dir=state_dir)
    assert not (state_dir / "deployment.json").exists() and not (state_dir / "logs").exists()


def test_a_down_arm_answers_502_naming_it_and_recovers(stand_in, tmp_path):
    ports = {"champion": free_port(), "challenger": free_port()}
    backends = {name: subprocess.Popen([sys.executable, str(stand_in), "--arm", name, "--http-port", str(port)]) for name, port in ports.items()}
    splitter_port = free_port()
    splitter = subprocess.Popen([
        sys.executable, "-m", "kfp_mlops.components.deploy.splitter", "--port", str(splitter_port), "--max-body-bytes", "4096",
        *(f"--arm={name}=http://127.0.0.1:{port}" for name, port in ports.items()), "--weights", "champion=50,challenger=50",
    ])  # fmt: skip
    url = f"http://127.0.0.1:{splitter_port}"
    try:
        for port in [*ports.values(), splitter_port]:
            wait_for_port(port)
        keys = [f"k{i}" for i in range(200)]
        placed = arms_by_key(url, keys)
        backends["challenger"].terminate()
        backends["challenger"].wait(10)
        answers = dict(zip(keys, many(url, keys)))
        for key, (status, header, body) in answers.items():
            if placed[key] == "challenger":
                assert status == 502 and header == "challenger" and body["arm"] == "challenger" and "not reachable" in body["error"]
            else:
                assert status == 200 and body["arm"] == "champion", "the other arm keeps serving"
        assert call(url + "/-/splitter")[2]["arms"][1]["errors"] == sum(a == "challenger" for a in placed.values())
        backends["challenger"] = subprocess.Popen([sys.executable, str(stand_in), "--arm", "challenger", "--http-port", str(ports["challenger"])])
        wait_for_port(ports["challenger"])
        assert arms_by_key(url, keys) == placed, "the arm is back, with the same keys"

        assert call(url + "/v1/x", method="POST", body=b"x" * 5000)[0] == 413
        chunked = urllib.request.Request(url + "/v1/x", data=iter([b"x" * 3000, b"x" * 3000]), method="POST", headers={"Transfer-Encoding": "chunked"})
        with pytest.raises(urllib.error.HTTPError) as too_large:
            urllib.request.urlopen(chunked, timeout=30)
        assert too_large.value.code == 413 and "4096" in json.loads(too_large.value.read())["error"]
        assert call(url + "/v1/x", method="POST", body=b"x" * 4000)[0] == 200
        huge_header = urllib.request.Request(url + "/v1/x", data=b"{}", method="POST", headers={"X-Padding": "p" * 100_000})
        with pytest.raises(urllib.error.HTTPError) as head_too_large:
            urllib.request.urlopen(huge_header, timeout=30)
        assert head_too_large.value.code == 431, "headers are held in memory: capped like the body"
        assert call(url + "/v1/x", method="POST", body=b"{}")[0] == 200
    finally:
        for process in [splitter, *backends.values()]:
            process.terminate()
            process.wait(10)


def test_an_arm_slower_than_the_backend_timeout_answers_504(stand_in):
    port, splitter_port = free_port(), free_port()
    backend = subprocess.Popen([sys.executable, str(stand_in), "--arm", "slow", "--mode", "slow", "--http-port", str(port)])
    splitter = subprocess.Popen([sys.executable, "-m", "kfp_mlops.components.deploy.splitter", "--port", str(splitter_port),
                                 "--backend-timeout-s", "0.5", f"--arm=slow=http://127.0.0.1:{port}"])  # fmt: skip
    try:
        wait_for_port(port)
        wait_for_port(splitter_port)
        status, headers, body = call(f"http://127.0.0.1:{splitter_port}/v1/x", method="POST", body=b"{}")
        assert status == 504 and headers["X-Kfp-Mlops-Arm"] == "slow" and "did not answer within 0.5 s" in body["error"]
        assert call(f"http://127.0.0.1:{splitter_port}/-/splitter/health")[0] == 200, "the splitter keeps serving"
    finally:
        for process in (splitter, backend):
            process.kill()  # the stand-in would wait for its sleeping handler before exiting on SIGTERM
            process.wait(10)


def test_redeploy_reuses_what_is_unchanged_and_replaces_a_changed_arm(deployed, stand_in):
    state_dir, first = deployed
    again = deploy_local([arm(stand_in, "champion", 50), arm(stand_in, "challenger", 50)], state_dir=state_dir)
    assert again.reused == ["champion", "challenger"] and again.arms == first.arms and again.splitter_pid == first.splitter_pid
    old_challenger = first.arms["challenger"].pid
    changed = deploy_local([arm(stand_in, "champion", 20), arm(stand_in, "challenger", 80, "--tag", "v2")], state_dir=state_dir)
    assert changed.reused == ["champion"] and changed.url == first.url and changed.splitter_pid == first.splitter_pid
    assert changed.arms["champion"].pid == first.arms["champion"].pid and changed.arms["challenger"].pid != old_challenger
    assert not alive(old_challenger) and not first.arms["challenger"].log_file.exists(), "the replaced process is stopped"
    answers = many(changed.url, [f"k{i}" for i in range(100)])
    assert {body["tag"] for _, header, body in answers if header == "challenger"} == {"v2"}
    assert call(changed.url + "/-/splitter")[2]["weights"] == {"champion": 20, "challenger": 80}


def test_an_arm_that_never_becomes_ready_leaves_the_previous_deployment_intact(deployed, stand_in):
    state_dir, first = deployed
    recorded = (state_dir / "deployment.json").read_bytes()
    table = call(first.url + "/-/splitter")[2]
    for mode, message in (("never-ready", "was not ready at"), ("crash", "exited before it was ready")):
        with pytest.raises(LocalDeployError, match=message) as failed:
            deploy_local([arm(stand_in, "champion", 10), arm(stand_in, "challenger", 90, "--mode", mode)], state_dir=state_dir, ready_timeout_s=3)
        error = str(failed.value)
        assert failed.value.exit_code == 3 and "'challenger'" in error and "What to do" in error
        log = Path(failed.value.where)
        assert log.exists() and f"mode={mode}" in error, "the error names the log and quotes its last lines"
        if mode == "crash":
            assert "cannot load the model" in error
        new_pid = int(log.read_text().split("pid=")[1].split()[0])
        assert not alive(new_pid), "the new process is stopped"
    assert (state_dir / "deployment.json").read_bytes() == recorded
    assert {k: v for k, v in call(first.url + "/-/splitter")[2].items() if k != "arms"} == {k: v for k, v in table.items() if k != "arms"}
    assert [(a["name"], a["url"], a["weight"]) for a in call(first.url + "/-/splitter")[2]["arms"]] == [(a["name"], a["url"], a["weight"]) for a in table["arms"]]
    assert status_local(state_dir).healthy and all(alive(a.pid) for a in first.arms.values())


def test_stop_leaves_no_process_and_no_state(stand_in, tmp_path):
    state_dir = tmp_path / "state"
    deployment = deploy_local([arm(stand_in, "champion", 100)], state_dir=state_dir)
    pids = [deployment.splitter_pid, *(a.pid for a in deployment.arms.values())]
    assert all(alive(pid) for pid in pids)
    stop_local(state_dir)
    assert not any(alive(pid) for pid in pids)
    assert status_local(state_dir) is None and not (state_dir / "deployment.json").exists() and not (state_dir / "logs").exists()
    stop_local(state_dir)  # stopping nothing is fine


def test_state_survives_the_calling_process(stand_in, tmp_path):
    state_dir = tmp_path / "state"
    script = (
        "import sys; from pathlib import Path; from kfp_mlops.components.deploy.local_target import LocalArm, deploy_local\n"
        f"arms = [LocalArm(n, [sys.executable, {str(stand_in)!r}, '--arm', n], 50) for n in ('champion', 'challenger')]\n"
        f"print(deploy_local(arms, state_dir=Path({str(state_dir)!r})).url)\n"
    )
    url = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO).stdout.strip()
    deployment = status_local(state_dir)
    try:
        assert deployment is not None and deployment.healthy and deployment.url == url
        assert all(os.getsid(pid) == pid for pid in [deployment.splitter_pid, *(a.pid for a in deployment.arms.values())]), "detached"
        assert {header for _, header, _ in many(url, [f"k{i}" for i in range(50)])} == {"champion", "challenger"}
    finally:
        stop_local(state_dir)
    assert not any(alive(pid) for pid in [deployment.splitter_pid, *(a.pid for a in deployment.arms.values())])


def test_stale_state_is_detected_and_a_stranger_is_never_signalled(deployed, stand_in):
    state_dir, first = deployed
    os.kill(first.arms["challenger"].pid, signal.SIGKILL)
    while alive(first.arms["challenger"].pid):  # SIGKILL cannot be caught: this ends
        time.sleep(0.01)
    stale = status_local(state_dir)
    assert not stale.healthy and not stale.arms["challenger"].alive and stale.arms["champion"].alive
    healed = deploy_local([arm(stand_in, "champion", 50), arm(stand_in, "challenger", 50)], state_dir=state_dir)
    assert healed.reused == ["champion"] and healed.healthy and healed.arms["challenger"].pid != first.arms["challenger"].pid

    stranger = subprocess.Popen(["sleep", "60"])
    try:
        state = json.loads((state_dir / "deployment.json").read_text())
        killed = [state["arms"]["champion"]["pid"], state["arms"]["challenger"]["pid"], state["splitter"]["pid"]]
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        while any(alive(pid) for pid in killed):  # SIGKILL cannot be caught: this ends
            time.sleep(0.01)
        state["arms"]["champion"]["pid"] = stranger.pid  # a recycled pid: the number matches, the process does not
        (state_dir / "deployment.json").write_text(json.dumps(state))
        assert status_local(state_dir) is None and not (state_dir / "deployment.json").exists(), "all gone: the state is cleaned"
        assert stranger.poll() is None, "a process that is not ours is never signalled"
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.skipif(importlib.util.find_spec("kfp_mlops.components.serve.__main__") is None,
                    reason="the model server (python -m kfp_mlops.components.serve) is not in this tree yet")  # fmt: skip
def test_real_model_server_arms_behind_the_splitter(tmp_path):
    import pyarrow.parquet as pq

    from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
    from kfp_mlops.components.register.core import register_model
    from kfp_mlops.components.register.registry import Registry
    from kfp_mlops.components.train.core import TrainInputs, train_model
    from kfp_mlops.components.train.loop import TrainConfig
    from tests.unit.test_train import KEYS, _splits

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = _splits(tmp_path / "data", rows=3_000)
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), TrainConfig(hidden=(16,), max_epochs=2),
                         model_dir=tmp_path / "model", tracking=TrackingSettings(uri, experiment="local-target"))  # fmt: skip
    register_model(tmp_path / "model", result.contract, paths["test"], registry=Registry(uri), name="demo", thresholds=None, promote=True, tags={})
    server = [sys.executable, "-m", "kfp_mlops.components.serve", "--model-uri", "models:/demo/1", "--model-name", "demo", "--tracking-uri", uri]
    arms = [LocalArm(name, [*server, "--arm", name], 50) for name in ("champion", "challenger")]
    state_dir = tmp_path / "state"
    deployment = deploy_local(arms, state_dir=state_dir, env={"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    try:
        row = pq.read_table(paths["test"]).slice(0, 1).select(result.contract.feature_names).to_pylist()[0]
        body = json.dumps({"instances": [row]}, default=str).encode()
        arms_seen = set()
        for i in range(40):
            status, headers, answer = call(deployment.url + "/v1/models/demo:predict", method="POST", body=body,
                                           headers={"Content-Type": "application/json", "X-Kfp-Mlops-Key": f"user-{i}"})  # fmt: skip
            assert status == 200 and "predictions" in answer, answer
            arms_seen.add(headers["X-Kfp-Mlops-Arm"])
        assert arms_seen == {"champion", "challenger"}
    finally:
        stop_local(state_dir)


def test_the_listing_names_an_arm_that_exited_and_a_second_stop_says_nothing_ran(stand_in, tmp_path, capsys):
    from kfp_mlops.pipelines.cli import cmd_deployments

    workdir = tmp_path / "wd"
    deployment = deploy_local([arm(stand_in, "champion", 90), arm(stand_in, "challenger", 10)], state_dir=workdir / "deployments" / "m")
    try:
        os.kill(deployment.arms["challenger"].pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(deployment.arms["challenger"].pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cmd_deployments(["--workdir", str(workdir)]) == 0
        listing = capsys.readouterr().out
        assert "DEGRADED (challenger exited: redeploy or stop it)" in listing
        assert [line for line in listing.splitlines() if line.endswith("EXITED")] == [line for line in listing.splitlines() if line.strip().startswith("challenger")]
    finally:
        assert cmd_deployments(["stop", "m", "--workdir", str(workdir)]) == 0
    assert capsys.readouterr().out.strip() == "stopped m"
    assert cmd_deployments(["stop", "m", "--workdir", str(workdir)]) == 0
    assert capsys.readouterr().out.strip() == "m was not running: nothing to stop"
    assert cmd_deployments(["--workdir", str(tmp_path / "nowhere")]) == 2, "a folder that does not exist"
    assert "is not a kfp-mlops workdir" in capsys.readouterr().err
