"""Isolated venvs holding the pipeline-spec and kfp-kubernetes protos of each KFP backend."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".kfp-mlops" / "spec-venvs"

# Kubeflow 1.8 / 1.9 / 1.10 ship KFP backend 2.0.3 / 2.2.0 / 2.4.0; "current" is what this repo compiles with.
BACKENDS = {
    "2.0": ("kfp-pipeline-spec==0.2.2", "protobuf==3.20.3", "kfp-kubernetes==1.0.0"),
    "2.2": ("kfp-pipeline-spec==0.3.0", "protobuf>=4.25,<5", "kfp-kubernetes==1.2.0"),
    "2.4": ("kfp-pipeline-spec==0.6.0", "protobuf>=4.25,<5", "kfp-kubernetes==1.4.0"),
    "current": ("kfp-pipeline-spec==2.17.3", "protobuf>=6,<7", "kfp-kubernetes==2.17.3"),
}
# google.rpc (status.proto) for the spec protos; releases from 1.60 on need protobuf 4+.
COMMON_PROTOS = {
    "2.0": "googleapis-common-protos<1.60",
    "2.2": "googleapis-common-protos<1.60",
    "2.4": "googleapis-common-protos<1.60",
    "current": "googleapis-common-protos>=1.60",
}
PB2 = "kfp/kubernetes/kubernetes_executor_config_pb2.py"


def _extract_pb2(archive: Path, target: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            target.write_bytes(zf.read(PB2))
        return
    with tarfile.open(archive) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith(PB2))
        target.write_bytes(tf.extractfile(member).read())


def _build(name: str) -> tuple[Path, Path]:
    spec_req, proto_req, k8s_req = BACKENDS[name]
    common_req = COMMON_PROTOS[name]
    venv = CACHE / name
    python = venv / "bin" / "python"
    pb2 = venv / "kubernetes_executor_config_pb2.py"
    ready = venv / "ready"
    if ready.exists():
        return python, pb2
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(python), "-m", "pip", "install", "-q", spec_req, proto_req, common_req], check=True, env=env)
    download = venv / "download"
    subprocess.run([str(python), "-m", "pip", "download", "-q", "--no-deps", "-d", str(download), k8s_req], check=True, env=env)
    _extract_pb2(next(download.iterdir()), pb2)
    ready.write_text(" ".join(BACKENDS[name] + (common_req,)))
    return python, pb2


@pytest.fixture(scope="session")
def backend_venvs() -> dict[str, tuple[Path, Path]]:
    """Backend name -> (python of its venv, its kfp-kubernetes pb2 file)."""
    return {name: _build(name) for name in BACKENDS}
