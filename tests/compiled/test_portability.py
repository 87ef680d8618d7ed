"""Every compiled YAML runs on every supported KFP backend: strict proto parses plus the rules the backends enforce."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STRICT_PARSE = Path(__file__).with_name("strict_parse.py")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
VERTEX_ONLY = ("google.VertexModel", "google.BQTable", "aiplatform", "{{$.pipeline_google_cloud", "gcpc_types")
TAGGED_IMAGE = re.compile(r"^[^\s:@]+(:[0-9]+)?/?[^\s:@]*(?::(?!latest$)[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")


# What KFP backend 2.0's kfp-kubernetes protos know (Secrets, PVCs, node selectors, GPUs);
# image pull Secrets and tolerations came with later backends.
BASIC_OPTIONS = (
    "s3_secret='s3-creds', gcs_secret='gcs-creds', feature_store_secret='store-creds', mlflow_secret='mlflow-creds',"
    " image_registry='registry.example.com:5000/ml', mlflow_tracking_uri='http://mlflow.kubeflow:5000', gpu_count=2, gpu_type='NVIDIA-L4',"
    " checkpoint_pvc='checkpoints', training={'node_selector': {'pool': 'gpu'}}, serving={'node_selector': {'pool': 'serve'}}"
)
FULL_OPTIONS = (
    BASIC_OPTIONS.replace("training={'node_selector': {'pool': 'gpu'}}, serving={'node_selector': {'pool': 'serve'}}", "")
    + " image_pull_secret='regcred', training={'node_selector': {'pool': 'gpu'}, 'tolerations': [{'key': 'gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]},"
    " serving={'node_selector': {'pool': 'serve'}, 'tolerations': [{'key': 'serve', 'operator': 'Equal', 'value': 'yes', 'effect': 'NoExecute', 'toleration_seconds': 60}]}"
)


def _compile_with(out: Path, options: str) -> list[Path]:
    code = f"from kfp_mlops.pipelines.compile import compile_all; from kfp_mlops.pipelines.options import ClusterOptions;compile_all({str(out)!r}, ClusterOptions.from_mapping(dict({options})))"
    subprocess.run(["python", "-c", code], check=True, cwd=REPO)
    return sorted(out.rglob("*.yaml"))


@pytest.fixture(scope="module")
def with_secrets(tmp_path_factory) -> list[Path]:
    """A variant compiled with the cluster options every backend knows (exercises platforms.kubernetes)."""
    return _compile_with(tmp_path_factory.mktemp("compiled-with-secrets"), BASIC_OPTIONS)


@pytest.fixture(scope="module")
def with_all_options(tmp_path_factory) -> list[Path]:
    """A variant compiled with every cluster option, image pull Secret and tolerations included."""
    return _compile_with(tmp_path_factory.mktemp("compiled-with-all-options"), FULL_OPTIONS)


def _all_files(with_secrets: list[Path]) -> list[Path]:
    return sorted((REPO / "compiled").rglob("*.yaml")) + with_secrets


def test_platform_document_present_in_secret_variant(with_secrets):
    docs = list(yaml.safe_load_all((next(p for p in with_secrets if p.name == "training.yaml")).read_text()))
    assert len(docs) == 2
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-ingest"]["secretAsEnv"][0]["secretName"] == "s3-creds"
    assert executors["exec-featurize"]["secretAsEnv"][0]["secretName"] == "store-creds"
    assert executors["exec-register"]["secretAsEnv"][0]["secretName"] == "mlflow-creds"


@pytest.mark.parametrize("backend", ["2.0", "2.2", "2.4", "current"])
def test_strict_parse_with_backend_protos(backend, backend_venvs, with_secrets, with_all_options, tmp_path):
    python, pb2 = backend_venvs[backend]
    inputs = []
    for i, path in enumerate(_all_files(with_secrets) + (with_all_options if backend != "2.0" else [])):
        target = tmp_path / f"{i}-{path.stem}.json"
        target.write_text(json.dumps(list(yaml.safe_load_all(path.read_text()))))
        inputs.append((path, target))
    proc = subprocess.run([str(python), str(STRICT_PARSE), str(pb2), *[str(t) for _, t in inputs]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(inputs)
    failures = {Path(r["file"]).name: r["errors"] for r in results if r["errors"]}
    assert not failures, f"backend {backend} rejects: {failures}"


def test_strict_parse_rejects_unknown_field(backend_venvs, tmp_path):
    """The check is real: an injected unknown field fails on every backend."""
    doc = yaml.safe_load((REPO / "compiled" / "training.yaml").read_text())
    doc["root"]["dag"]["tasks"]["ingest"]["notAField"] = 1
    target = tmp_path / "bad.json"
    target.write_text(json.dumps([doc]))
    for backend, (python, pb2) in backend_venvs.items():
        out = subprocess.run([str(python), str(STRICT_PARSE), str(pb2), str(target)], capture_output=True, text=True, check=True).stdout
        assert "notAField" in json.loads(out)["errors"][0], backend


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, path + (i,))
    else:
        yield path, node


@pytest.mark.parametrize("name", sorted(str(p.relative_to(REPO / "compiled")) for p in (REPO / "compiled").rglob("*.yaml")))
def test_backend_rules(name, with_secrets):
    for path in [REPO / "compiled" / name, *[p for p in with_secrets if str(p).endswith(name)]]:
        text = path.read_text()
        docs = list(yaml.safe_load_all(text))
        spec = docs[0]
        assert spec["schemaVersion"] == "2.1.0"
        assert DNS_LABEL.match(spec["pipelineInfo"]["name"]), spec["pipelineInfo"]["name"]
        for task in spec["root"].get("dag", {}).get("tasks", {}):
            assert DNS_LABEL.match(task), task
        for marker in VERTEX_ONLY:
            assert marker not in text, f"{path}: Vertex-only {marker}"
        for executor in spec["deploymentSpec"]["executors"].values():
            container = executor["container"]
            assert TAGGED_IMAGE.match(container["image"]), container["image"]
            assert "pip install" not in " ".join(container.get("command", []))
            accel = container.get("resources", {}).get("accelerator", {})
            if accel:
                assert re.match(r"^[a-z0-9.-]+/[a-z0-9.-]+$", accel.get("resourceType", accel.get("type", ""))), accel
        for keypath, value in _walk(spec):
            if keypath and keypath[-1] == "description":
                assert isinstance(value, str)


def test_image_tag_comes_from_version():
    from kfp_mlops import __version__

    spec = yaml.safe_load((REPO / "compiled" / "training.yaml").read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"ghcr.io/kfp-mlops/kfp-mlops-{role}:{__version__}" for role in ("data", "features", "train", "serve")}


def test_image_registry_override(with_secrets):
    from kfp_mlops import __version__

    spec = yaml.safe_load(next(p for p in with_secrets if p.name == "training.yaml").read_text().split("\n---\n")[0])
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"registry.example.com:5000/ml/kfp-mlops-{role}:{__version__}" for role in ("data", "features", "train", "serve")}, images
