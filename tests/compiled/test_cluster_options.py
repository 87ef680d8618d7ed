"""Cluster options: one object given to the compiler, checked before anything is written, and what it puts into the compiled YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.pipelines.options import CHECKPOINT_MOUNT, ClusterOptions

REPO = Path(__file__).resolve().parents[2]
OPTIONS = {
    "image_registry": "registry.example.com:5000/ml",
    "image_pull_secret": "regcred",
    "mlflow_tracking_uri": "http://mlflow.kubeflow:5000",
    "mlflow_secret": "mlflow-creds",
    "gpu_count": 2,
    "gpu_type": "NVIDIA-L4",
    "checkpoint_pvc": "checkpoints",
    "training": {"node_selector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    "serving": {"node_selector": {"pool": "serve"}, "tolerations": [{"key": "serve", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """compiled/ for a cluster, through the CLI with an options file (a fresh process: options are never global state)."""
    out = tmp_path_factory.mktemp("cluster")
    options = out / "cluster.yaml"
    options.write_text(yaml.safe_dump(OPTIONS))
    proc = subprocess.run([sys.executable, "-m", "kfp_mlops.pipelines.cli", "compile", "--options", str(options), "--output-dir", str(out / "compiled")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return out / "compiled"


def _docs(path: Path) -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], (docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {})


def test_training_gets_gpus_placement_checkpoints_and_secrets(compiled):
    spec, platform = _docs(compiled / "training.yaml")
    train = spec["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert train["image"].startswith("registry.example.com:5000/ml/kfp-mlops-train:")
    assert train["resources"]["accelerator"]["count"] == "2" and train["resources"]["accelerator"]["type"] == "nvidia.com/gpu"
    config = platform["exec-train"]
    assert config["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-L4", "pool": "gpu"}
    assert config["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert config["pvcMount"] == [{"constant": "checkpoints", "mountPath": CHECKPOINT_MOUNT}]
    assert config["secretAsEnv"][0]["secretName"] == "mlflow-creds"
    assert spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["checkpoint_dir"]["runtimeValue"]["constant"] == CHECKPOINT_MOUNT
    assert "nodeSelector" not in platform["exec-ingest"] and "tolerations" not in platform["exec-featurize"], "only training lands on training nodes"


def test_every_step_pulls_with_the_secret_and_the_mlflow_default_is_set(compiled):
    for name in ("training", "monitoring", "rollout", "deploy", "sweep"):
        spec, platform = _docs(compiled / f"{name}.yaml")
        executors = spec["deploymentSpec"]["executors"]
        assert set(platform) >= set(executors), name
        assert all(platform[e]["imagePullSecret"] == [{"secretName": "regcred"}] for e in executors), name
        assert all(e["container"]["image"].startswith("registry.example.com:5000/ml/") for e in executors.values()), name
        assert spec["root"]["inputDefinitions"]["parameters"]["mlflow_tracking_uri"]["defaultValue"] == "http://mlflow.kubeflow:5000", name


def _deploy_inputs(spec: dict) -> dict:
    def walk(dag: dict):
        for task in dag.get("tasks", {}).values():
            if task["componentRef"]["name"].startswith("comp-deploy"):
                yield task["inputs"]["parameters"]

    found = list(walk(spec["root"]["dag"]))
    for component in spec["components"].values():
        found += list(walk(component.get("dag", {})))
    return found[0]


def test_model_servers_get_the_serving_placement_and_image(compiled):
    for name in ("training", "rollout", "deploy"):
        spec, _ = _docs(compiled / f"{name}.yaml")
        inputs = _deploy_inputs(spec)
        constant = lambda key: inputs[key]["runtimeValue"]["constant"]  # noqa: E731
        assert json.loads(constant("node_selector")) == {"pool": "serve"}, name
        assert json.loads(constant("tolerations")) == [{"key": "serve", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}], name
        assert constant("image_pull_secret") == "regcred" and constant("server_image").startswith("registry.example.com:5000/ml/kfp-mlops-serve:"), name


def test_the_nested_training_of_monitoring_is_built_with_the_same_options(compiled):
    _, platform = _docs(compiled / "monitoring.yaml")
    assert platform["exec-train"]["nodeSelector"]["labels"]["pool"] == "gpu"


def test_default_compile_has_no_cluster_settings():
    spec, platform = _docs(REPO / "compiled" / "training.yaml")
    assert platform == {} and spec["root"]["inputDefinitions"]["parameters"]["mlflow_tracking_uri"]["defaultValue"] == ""
    assert "checkpoint_dir" not in spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]


@pytest.mark.parametrize(
    "bad, says",
    [
        ({"mlflow_secret": "Mlflow_Creds"}, "not a Kubernetes object name"),
        ({"image_registry": "https://registry.example.com"}, "not a registry path"),
        ({"mlflow_tracking_uri": "sqlite:///mlflow.db"}, "not a tracking server a pod can reach"),
        ({"gpu_count": -1}, "gpu_count is -1"),
        ({"gpu_count": "2"}, "must be a whole number"),
        ({"gpu_type": "NVIDIA-L4"}, "gpu_count is 0"),
        ({"gpu_secret": "x"}, "unknown cluster option"),
        ({"training": {"node_selector": {"pool": "a b"}}}, "not a Kubernetes label"),
        ({"training": {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]}}, "Exists takes no value"),
        ({"serving": {"tolerations": [{"key": "gpu", "operator": "Maybe"}]}}, "operator must be one of"),
        ({"serving": {"tolerations": [{"key": "gpu", "effect": "NoSchedule", "toleration_seconds": 5}]}}, "only for effect NoExecute"),
        ({"serving": {"affinity": {}}}, "a placement is a mapping"),
        ({"serving": {"tolerations": [{"key": "gpu", "colour": "red"}]}}, "unknown fields"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(bad, says):
    with pytest.raises(DataError, match=says):
        ClusterOptions.from_mapping(bad)


def test_the_cli_refuses_bad_options_before_writing(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "kfp_mlops.pipelines.cli", "compile", "--output-dir", str(out), "--gpu-type", "NVIDIA-L4"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "gpu_count is 0" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists(), "nothing written"
    proc = subprocess.run([sys.executable, "-m", "kfp_mlops.pipelines.cli", "compile", "--output-dir", str(out), "--training-tolerations", "[{oops"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "is not JSON" in proc.stderr


def test_every_step_that_reads_or_moves_aliases_gets_the_mlflow_secret(compiled):
    expected = {
        "training": {"exec-train", "exec-register", "exec-deploy"},
        "rollout": {"exec-deploy", "exec-analyze-experiment", "exec-analyze-experiment-2", "exec-analyze-experiment-3"},
        "deploy": {"exec-deploy"},
        "monitoring": {"exec-monitor-models", "exec-train", "exec-register"},
    }
    for name, steps in expected.items():
        _, platform = _docs(compiled / f"{name}.yaml")
        with_secret = {e for e, config in platform.items() if any(s["secretName"] == "mlflow-creds" for s in config.get("secretAsEnv", []))}
        assert steps <= with_secret, (name, sorted(steps - with_secret))
    spec, _ = _docs(compiled / "rollout.yaml")
    assert _deploy_inputs(spec)["mlflow_secret"]["runtimeValue"]["constant"] == "mlflow-creds", "the model servers read the registry too"
