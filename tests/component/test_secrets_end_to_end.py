"""A whole local run given a credentialed source URI and a Redis password: no secret in any
artifact, report, database, metadata or console line; the project's demo data as CSV (nulls
in integer columns) trains and registers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.component.test_local_runs import CLI
from tests.unit.test_featurize_safety import PASSWORD as REDIS_PASSWORD
from tests.unit.test_featurize_safety import redis_with_password  # noqa: F401 - fixture
from tests.unit.test_ingest_safety import PASSWORD, USER, secret_server  # noqa: F401 - fixture

SECRETS = (PASSWORD, REDIS_PASSWORD)


def test_a_run_with_credentials_leaves_no_secret_anywhere(secret_server, redis_with_password, tmp_path):  # noqa: F811
    root, http_port = secret_server
    write_demo_dataset(root / "demo.csv", DemoSpec(rows=4_000, seed=5))
    workdir = tmp_path / "wd"
    env = {**os.environ, "REDIS_PASSWORD": REDIS_PASSWORD, "PYTHONUNBUFFERED": "1"}
    argv = [
        CLI, "run", "training", "--workdir", str(workdir),
        "--source-uri", f"http://{USER}:{PASSWORD}@127.0.0.1:{http_port}/demo.csv",
        "--online-store", f"redis://127.0.0.1:{redis_with_password}/0",
        "--max-epochs", "3", "--deploy-target", "none", "--verbose",
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "BLESSED: kfp-mlops-model version 1" in proc.stdout, "demo data from CSV, nulls in integer columns, registers"
    assert "127.0.0.1" in proc.stdout and "demo.csv" in proc.stdout, "the source is shown, without its credentials"
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} in {name}"
    scanned = 0
    for file in sorted(workdir.rglob("*")):
        if file.is_file() and not file.is_symlink():
            data = file.read_bytes()
            scanned += 1
            for secret in SECRETS:
                assert secret.encode() not in data, f"{secret!r} written into {file}"
    assert scanned > 20, "artifacts, reports, metadata, the MLflow database and its artifacts were all scanned"
    private = [p for p in (workdir / "runs").rglob("feature_store.yaml")]
    assert private and all(p.stat().st_mode & 0o077 == 0 for p in private), "sensitive files are owner-only"
    assert "${REDIS_PASSWORD}" in private[0].read_text()


def test_the_compiled_pipeline_holds_no_credential(tmp_path):
    """What users upload: no URI with user info anywhere (defaults, docs, code)."""
    import re

    repo = Path(__file__).resolve().parents[2]
    userinfo = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@", re.I)
    for path in (repo / "compiled").rglob("*.yaml"):
        assert not userinfo.search(path.read_text()), path
