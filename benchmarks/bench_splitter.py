"""Splitter benchmark: the latency the local splitter adds in front of a model-server arm.

2000 one-row requests at concurrency 1 and 8, sent to one arm directly and through the
splitter (that arm at 100 %, requests keyed, so the sticky path is measured), in the same
run and interleaved in rounds so both see the same machine. Prints p50/p99 of each, the
added latency, the ratio, and the splitter's CPU time per request. Target: added < 1 ms at
p50 and < 3 ms at p99. The arm is a trivial aiohttp echo server, and then the real model
server when it is importable (a small model is trained first; --no-real skips it).

    python benchmarks/bench_splitter.py [--requests 2000] [--rounds 8] [--no-real]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


async def timed_requests(url: str, body: bytes, count: int, concurrency: int, session) -> list[float]:
    """Latency in ms of ``count`` POSTs, ``concurrency`` at a time, on one keep-alive session."""
    latencies: list[float] = []
    per_worker = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]

    async def worker(n: int, offset: int) -> None:
        for i in range(n):
            headers = {"Content-Type": "application/json", "X-Kfp-Mlops-Key": f"user-{offset + i}"}
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{url} answered {answer.status}: {(await answer.read())[:300]!r}")
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker(n, i * 100_000) for i, n in enumerate(per_worker)))
    return latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def compare(direct_url: str, split_url: str, splitter_pid: int, body: bytes, requests: int, rounds: int, concurrency: int) -> dict:
    import aiohttp

    results: dict[str, list[float]] = {"direct": [], "split": []}
    cpu = 0.0
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in (direct_url, split_url):  # warm both paths: connections, imports, caches
            await timed_requests(url, body, 200, concurrency, session)
        per_round = max(requests // rounds, concurrency)
        for _ in range(rounds):
            results["direct"] += await timed_requests(direct_url, body, per_round, concurrency, session)
            before = cpu_seconds(splitter_pid)
            results["split"] += await timed_requests(split_url, body, per_round, concurrency, session)
            cpu += cpu_seconds(splitter_pid) - before
    q = {name: statistics.quantiles(values, n=100) for name, values in results.items()}
    return {
        "n": len(results["split"]),
        "direct_p50": q["direct"][49], "split_p50": q["split"][49], "direct_p99": q["direct"][98], "split_p99": q["split"][98],
        "splitter_cpu_ms_per_request": cpu * 1000 / len(results["split"]),
    }  # fmt: skip


def report(label: str, concurrency: int, r: dict) -> None:
    added50, added99 = r["split_p50"] - r["direct_p50"], r["split_p99"] - r["direct_p99"]
    verdict = "meets" if added50 < 1 and added99 < 3 else "MISSES"
    print(
        f"{label:<22} c={concurrency}  n={r['n']:>5}  p50 direct {r['direct_p50']:6.2f} ms  split {r['split_p50']:6.2f} ms  added {added50:+5.2f} ms "
        f"(x{r['split_p50'] / r['direct_p50']:.2f})  |  p99 direct {r['direct_p99']:6.2f}  split {r['split_p99']:6.2f}  added {added99:+5.2f} ms "
        f"(x{r['split_p99'] / r['direct_p99']:.2f})  |  splitter CPU {r['splitter_cpu_ms_per_request']:.3f} ms/req  -> {verdict} <1 ms p50, <3 ms p99",
        flush=True,
    )


def run_against(label: str, arm_command, body: bytes, args: argparse.Namespace, work: Path, env: dict[str, str] | None = None) -> None:
    from kfp_mlops.components.deploy.local_target import LocalArm, deploy_local, stop_local

    state_dir = work / f"state-{label.split()[0]}"
    deployment = deploy_local([LocalArm("champion", arm_command, 100)], state_dir=state_dir, env=env, ready_timeout_s=300)
    try:
        direct = deployment.arms["champion"].url
        path = "/v1/models/demo:predict"
        for concurrency in (1, 8):
            result = asyncio.run(compare(direct + path, deployment.url + path, deployment.splitter_pid, body, args.requests, args.rounds, concurrency))
            report(label, concurrency, result)
    finally:
        stop_local(state_dir)


def real_server_arm(work: Path) -> tuple[list[str], bytes, dict[str, str]]:
    """Train and register a small model; the real server's command and a one-row V1 body for it."""
    import logging

    logging.disable(logging.WARNING)
    import pyarrow.parquet as pq

    from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
    from kfp_mlops.components.register.core import register_model
    from kfp_mlops.components.register.registry import Registry
    from kfp_mlops.components.train.core import TrainInputs, train_model
    from kfp_mlops.components.train.loop import TrainConfig
    from tests.unit.test_train import KEYS, _splits

    uri = f"sqlite:///{work / 'mlflow.db'}"
    paths = _splits(work / "data", rows=3_000)
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), TrainConfig(hidden=(16,), max_epochs=2),
                         model_dir=work / "model", tracking=TrackingSettings(uri, experiment="bench-splitter"))  # fmt: skip
    register_model(work / "model", result.contract, paths["test"], registry=Registry(uri), name="demo", thresholds=None, promote=True, tags={})
    row = pq.read_table(paths["test"]).slice(0, 1).select(result.contract.feature_names).to_pylist()[0]
    command = [sys.executable, "-m", "kfp_mlops.components.serve", "--model-uri", "models:/demo/1", "--model-name", "demo", "--tracking-uri", uri, "--arm", "champion"]
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    return command, json.dumps({"instances": [row]}, default=str).encode(), env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=8, help="direct and split alternate this many times")
    parser.add_argument("--no-real", action="store_true", help="skip the real model server")
    args = parser.parse_args()
    import importlib.util

    from tests.unit.test_local_target import STAND_IN

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "echo.py").write_text(STAND_IN)
        body = json.dumps({"instances": [{"age": 41, "country": "fr", "amount": 12.5}]}).encode()
        run_against("echo arm (aiohttp)", [sys.executable, str(work / "echo.py"), "--arm", "champion"], body, args, work)
        if not args.no_real and importlib.util.find_spec("kfp_mlops.components.serve.__main__") is not None:
            command, real_body, env = real_server_arm(work)
            run_against("real model server", command, real_body, args, work, env)


if __name__ == "__main__":
    main()
