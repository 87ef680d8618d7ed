"""The notebooks run top to bottom in a kernel of this venv and show what they promise; they are committed without outputs.

Each notebook runs with nbclient in a fresh work folder (``KFP_MLOPS_NOTEBOOK_WORKDIR``), with
the repository root as its working directory, and the assertions read both what the cells show
and what the run left behind (the MLflow registry, the fake KFP API's records, the deployments).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kfp_mlops.components._shared.mlflow_adapter import default_tracking_uri
from kfp_mlops.components.deploy.local_target import status_local, stop_local
from kfp_mlops.components.register.registry import Registry
from tests.kfp_fake import FakeKfpApi

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
KERNEL = "kfp-mlops-tests"
# Generous: a cell that trains runs for minutes on a busy 2-core machine; a hang still ends.
CELL_TIMEOUT_S = 1800
TOKEN = "notebook-test-token"
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory) -> Path:
    """A kernelspec that starts this interpreter (the venv's python), in a folder of its own."""
    prefix = tmp_path_factory.mktemp("jupyter")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL], check=True, capture_output=True)
    spec = json.loads((prefix / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    return prefix / "share" / "jupyter"


@pytest.fixture
def workdir(jupyter_path, tmp_path, monkeypatch) -> Path:
    """The notebooks' work folder; the kernel inherits this environment."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("KFP_MLOPS_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    for name in ("KFP_HOST", "KFP_TOKEN", "KFP_NAMESPACE", "KFP_POLL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "work"


def execute(name: str) -> nbformat.NotebookNode:
    """Run every cell of ``notebooks/<name>`` in order; a failing cell raises CellExecutionError with its traceback."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(REPO)}}).execute()
    return notebook


def shown(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    """Everything a cell displayed: printed text, Markdown, HTML and plain-text results."""
    cell = next(c for c in notebook.cells if c.get("id") == cell_id)
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            parts.extend(str(output.data[kind]) for kind in ("text/markdown", "text/html", "text/plain") if kind in output.data)
    return "\n".join(parts)


def registry_of(workdir: Path) -> Registry:
    return Registry(default_tracking_uri(workdir / "mlflow"))


# -- committed form ---------------------------------------------------------------------------


@pytest.mark.unit
def test_the_four_notebooks_are_there():
    assert [p.name for p in NOTEBOOK_FILES] == ["01_quickstart.ipynb", "02_submit_to_kubeflow.ipynb", "03_reuse_components.ipynb", "04_ab_rollout_and_monitoring.ipynb"]


@pytest.mark.unit
@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    problems = []
    for number, cell in enumerate(notebook.cells):
        where = f"cell {number} ({cell.get('id')})"
        if cell.cell_type == "code" and cell.get("outputs"):
            problems.append(f"{where} has outputs")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            problems.append(f"{where} has execution_count {cell.execution_count}")
        if set(cell.get("metadata", {})) - {"tags"}:
            problems.append(f"{where} has metadata {sorted(cell.metadata)}")
    extra = set(notebook.metadata) - ALLOWED_NOTEBOOK_METADATA
    if extra:
        problems.append(f"notebook metadata {sorted(extra)}")
    if set(notebook.metadata.get("language_info", {})) - {"name"}:
        problems.append(f"language_info carries {sorted(notebook.metadata.language_info)} (only its name belongs in git)")
    fix = f"in Jupyter, Edit > Clear Outputs of All Cells before saving (or `jupyter nbconvert --clear-output --inplace {path.relative_to(REPO)}`); keep only kernelspec and language_info.name"
    assert not problems, f"{path.name}: {'; '.join(problems)}. Fix: {fix}"


@pytest.mark.unit
@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_notebook_settings_default_to_a_temporary_work_folder(path: Path):
    notebook = nbformat.read(path, as_version=4)
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    assert 'os.environ.get("KFP_MLOPS_NOTEBOOK_WORKDIR") or tempfile.mkdtemp(' in first_code.source


# -- executed -----------------------------------------------------------------------------------


@pytest.mark.component
def test_quickstart_trains_registers_and_shows_it(workdir):
    notebook = execute("01_quickstart.ipynb")

    steps = shown(notebook, "run")
    for step in ("ingest", "validate", "featurize", "train", "register"):
        assert f"| {step} | SUCCEEDED |" in steps
    assert "kfp-mlops-model version 1 (blessed; @challenger, @champion)" in steps
    roc_auc = float(re.search(r"\| test_roc_auc \| ([0-9.]+) \|", shown(notebook, "metrics")).group(1))
    assert roc_auc > 0.7  # the demo label depends on the inputs: a model that learned shows it
    reports = shown(notebook, "reports")
    assert reports.count("<iframe srcdoc=") == 3
    assert "Training report" in reports and "&lt;svg" in reports  # the learning curves
    assert "Blessed: kfp-mlops-model v1" in reports
    assert "kfp-mlops-model@champion -> version 1" in shown(notebook, "model")
    scored = shown(notebook, "score")
    assert "probability_1" in scored and len(re.findall(r"^\d\s", scored, re.M)) == 5

    registry = registry_of(workdir)
    assert registry.version_aliases("kfp-mlops-model", "1") == ["challenger", "champion"]
    assert (workdir / "champion-model").is_dir()


@pytest.mark.component
def test_submit_notebook_without_a_cluster_shows_what_it_would_send(workdir):
    notebook = execute("02_submit_to_kubeflow.ipynb")

    assert "training.yaml" in shown(notebook, "compile") and (workdir / "compiled" / "components" / "train.yaml").is_file()
    assert "exec-train: Secret 'mlflow-credentials' as MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD" in shown(notebook, "secrets")
    described = shown(notebook, "describe")
    assert "source_uri" in described and "'gs://my-bucket/churn/'" in described
    assert re.search(r"max_epochs\s+= 50\n", described) and re.search(r"mlflow_tracking_uri\s+= 'http://mlflow.kubeflow:5000'  \(default\)", described)
    assert "registry.example.com/ml/kfp-mlops-train:" in described and "ghcr.io" not in described
    assert "KFP_HOST is not set: nothing is sent" in shown(notebook, "connect")
    for cell in ("upload", "submit", "wait"):
        assert shown(notebook, cell).strip() == "skipped: not connected"


@pytest.mark.component
def test_submit_notebook_uploads_runs_and_follows_on_a_kfp_api(workdir, monkeypatch):
    api = FakeKfpApi(TOKEN)
    try:
        monkeypatch.setenv("KFP_HOST", api.url)
        monkeypatch.setenv("KFP_TOKEN", TOKEN)
        monkeypatch.setenv("KFP_POLL_SECONDS", "0")
        notebook = execute("02_submit_to_kubeflow.ipynb")
    finally:
        api.close()

    assert api.authorizations and set(api.authorizations) == {f"Bearer {TOKEN}"}
    (pipeline,) = api.pipelines.values()
    assert pipeline["display_name"] == "kfp-mlops-training"
    (version,) = api.versions.values()
    images = {e["container"]["image"] for e in version["pipeline_spec"]["deploymentSpec"]["executors"].values()}
    assert images and all(i.startswith("registry.example.com/ml/kfp-mlops-") for i in images)
    assert f"pipeline 'kfp-mlops-training': id {pipeline['pipeline_id']}, version {version['pipeline_version_id']}" in shown(notebook, "upload")

    (run_id,) = api.runs.records
    sent = api.runs.records[run_id]["body"]
    (platform,) = api.platform_specs  # the MLflow Secret travels with the run, as a mount
    assert platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]["secretAsEnv"][0]["secretName"] == "mlflow-credentials"
    assert sent["runtime_config"]["parameters"] == {"source_uri": "gs://my-bucket/churn/", "label_column": "churned", "max_epochs": 50, "deploy_target": "kserve"}
    (experiment,) = api.experiments.values()
    assert experiment["display_name"] == "kfp-mlops-notebook" and sent["experiment_id"] == experiment["experiment_id"]
    assert f"run id: {run_id}" in shown(notebook, "submit")
    followed = shown(notebook, "wait")
    assert re.search(r"^\s+register\s+SUCCEEDED\s+\d+s$", followed, re.M)
    assert followed.rstrip().endswith(f"run {run_id} SUCCEEDED")


@pytest.mark.component
def test_reuse_notebook_builds_runs_and_compiles_its_own_pipeline(workdir):
    notebook = execute("03_reuse_components.ipynb")

    loaded = shown(notebook, "load")
    assert "ingest (python)" in loaded and "validate (file " in loaded and re.search(r"ingest \(url http://127\.0\.0\.1:\d+/components/ingest\.yaml\)", loaded)
    first = re.search(r"^anomalies: (.+)$", shown(notebook, "pipeline"), re.M).group(1)
    assert "new_category: country" in first and "out_of_range" in first  # drift 1.0 brings unseen countries and shifted numbers

    compiled = shown(notebook, "compile")
    assert "schemaVersion 2.1.0" in compiled
    assert re.search(r"exec-summarize-anomalies\s+ghcr\.io/kfp-mlops/kfp-mlops-data:", compiled)
    assert (workdir / "serving_skew_check.yaml").is_file()

    rerun = shown(notebook, "rerun")
    for step in ("ingest", "ingest-2", "validate", "validate-2", "summarize-anomalies"):
        assert f"| {step} | SUCCEEDED |" in rerun
    report = shown(notebook, "report")
    assert f"anomalies: {first}" in report  # the YAML finds what the Python pipeline found
    assert "<iframe srcdoc=" in report and "new_category" in report


@pytest.mark.component
def test_rollout_notebook_promotes_monitors_retrains_and_stops_serving(workdir):
    state_dir = workdir / "deployments" / "kfp-mlops-model"
    try:
        notebook = execute("04_ab_rollout_and_monitoring.ipynb")
        left_running = status_local(state_dir)
    finally:
        stop_local(state_dir)  # whatever a failed cell left running
    assert left_running is None, f"the notebook left its deployment running: {left_running}"

    assert "kfp-mlops-model version 1 (blessed; @challenger, @champion)" in shown(notebook, "champion")
    assert "kfp-mlops-model version 2 (blessed; @challenger)" in shown(notebook, "challenger")
    rollout = shown(notebook, "rollout")
    assert "| deploy | SUCCEEDED |" in rollout and "| analyze-experiment | SUCCEEDED |" in rollout
    decision = shown(notebook, "decision")
    assert re.search(r"decision of analyze-experiment(-\d)?: promote", decision) and "PROMOTE" in decision
    serving = shown(notebook, "serving")
    assert re.search(r"challenger\s+weight 100%", serving) and re.search(r"answered by the challenger arm: \['[01]', '[01]', '[01]'\]", serving)
    assert "@champion -> 2, @challenger -> 2, @previous -> 1" in shown(notebook, "aliases")

    assert "monitor: retrain True, drift True" in shown(notebook, "monitor-summary")
    assert "| monitor-models | SUCCEEDED |" in shown(notebook, "monitoring")
    retrained = shown(notebook, "retrained")
    assert "kfp-mlops-model version 3 (blessed; @challenger, @champion)" in retrained
    assert "@champion -> 3, @challenger -> 3, @previous -> 2" in retrained
    assert "stopped; still running: None" in shown(notebook, "stop")

    registry = registry_of(workdir)
    assert registry.alias("kfp-mlops-model", "champion").version == "3"
