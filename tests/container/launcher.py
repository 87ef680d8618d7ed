"""What the KFP v2 launcher does around one step, emulated with podman.

On a cluster each step is its own pod. The driver fills in the executor input (input
values with their defaults, input artifacts as URIs with their types and metadata,
output artifact URIs under the pipeline root, one output file per output parameter);
the launcher downloads the input artifacts to the local paths of their URIs, runs the
command with ``{{$}}`` replaced by that JSON, and uploads only the declared output
artifacts and the executor output. Everything else in the pod is gone afterwards.

Here: every step gets a fresh workspace and its own ``podman run --rm``; the input
artifacts are mounted read-only at the local paths of their URIs (``minio://b/k`` ->
``/minio/b/k``, as ``kfp.dsl`` and the launcher map them); ``/minio``, ``/tmp/kfp`` and
``/tmp/kfp_outputs`` are fresh writable folders (the emptyDirs of a KFP pod). After the
step, the declared outputs and the executor output are copied to a "kept" store (the
object store), anything else the step wrote there is reported as ``discarded``, and the
workspace is deleted. The next step's inputs come from the kept store only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".oci"
IMAGES = {
    "kfp-mlops-data": ("data", "localhost/kfp-mlops-data:test"),
    "kfp-mlops-features": ("features", "localhost/kfp-mlops-features:test"),
    "kfp-mlops-train": ("train", "localhost/kfp-mlops-train:test"),
    "kfp-mlops-serve": ("serve", "localhost/kfp-mlops-serve:test"),
}
TOOLS = ("buildah", "podman", "runc", "debootstrap")
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
OUTPUT_METADATA = "/tmp/kfp_outputs/output_metadata.json"  # the launcher's OutputMetadataFilepath
PARAMETER_DIR = "/tmp/kfp/outputs"  # the driver's output parameter files
LOCAL_PREFIXES = {"minio://": "/minio/", "s3://": "/s3/", "gs://": "/gcs/"}


def podman(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(WORK / "containers.conf")}
    storage = ["--root", str(WORK / "storage"), "--runroot", str(WORK / "run"), "--storage-driver", "overlay"]
    return subprocess.run(["podman", *storage, *args], capture_output=True, text=True, env=env, timeout=timeout)


def build_image(target: str, tag: str) -> str:
    """Build one Dockerfile target (tests/container/base_image.sh); skip (fail under CI) without the tools or root."""
    from tests.services import require

    missing = [t for t in TOOLS if shutil.which(t) is None]
    require(not missing, f"container tools missing: {missing} (apt-get install buildah podman runc debootstrap)")
    require(os.geteuid() == 0, "building images here needs root (buildah chroot isolation)")
    proc = subprocess.run(["bash", str(REPO / "tests/container/base_image.sh"), str(WORK), target, tag], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return tag


def local_path(uri: str) -> str:
    """Where the launcher puts an artifact inside the container (``localPathForURI``)."""
    for prefix, mount in LOCAL_PREFIXES.items():
        if uri.startswith(prefix):
            return mount + uri[len(prefix) :]
    raise ValueError(f"no local path for artifact URI {uri!r}")


@dataclass(frozen=True)
class Component:
    """One component of compiled IR: its spec (inputs, outputs) and its container."""

    name: str
    spec: dict
    container: dict

    @classmethod
    def from_yaml(cls, path: Path) -> "Component":
        """compiled/components/<name>.yaml (a pipeline spec holding one component)."""
        ir = yaml.safe_load(path.read_text().split("\n---\n")[0])
        (executor,) = ir["deploymentSpec"]["executors"].values()
        return cls(path.stem, ir["root"], executor["container"])

    @classmethod
    def from_pipeline(cls, ir: dict, task: str) -> "Component":
        """The component a task of a compiled pipeline runs, with the pipeline's own executor."""
        spec = ir["components"][ir["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
        return cls(task, spec, ir["deploymentSpec"]["executors"][spec["executorLabel"]]["container"])

    @property
    def image(self) -> str:
        name = self.container["image"].rsplit("/", 1)[-1].split(":")[0]
        if name not in IMAGES:
            raise ValueError(f"{self.name}: no test image for {self.container['image']!r}")
        return IMAGES[name][1]


@dataclass(frozen=True)
class Artifact:
    """An artifact as the object store holds it: a host path, its URI, type and metadata."""

    path: Path
    uri: str
    schema_title: str
    metadata: dict = field(default_factory=dict)
    schema_version: str = "0.0.1"

    def runtime(self, name: str) -> dict:
        """The RuntimeArtifact JSON of the executor input."""
        kind = {"schemaTitle": self.schema_title, "schemaVersion": self.schema_version}
        return {"name": name, "type": kind, "uri": self.uri, "metadata": self.metadata}


@dataclass
class StepResult:
    task: str
    returncode: int
    stdout: str
    stderr: str
    artifacts: dict[str, Artifact]  # kept (uploaded) outputs; empty when the step failed
    parameters: dict[str, Any]  # output parameter values; empty when the step failed
    written: list[str]  # declared output artifacts present when the step ended (kept or not)
    discarded: list[str]  # what the step wrote beside its declared outputs (container paths)
    kept_dir: Path

    @property
    def log(self) -> str:
        return f"[{self.task} exit {self.returncode}]\n{self.stdout[-3000:]}\n{self.stderr[-5000:]}"


def _proto_number(value: Any) -> Any:
    """protojson writes a whole-number NumberValue without a fraction (256.0 -> 256)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _parse_parameter(text: str, kind: str) -> Any:
    """The launcher's TextToPbValue for an output parameter file."""
    if kind == "STRING":
        return text
    if kind == "BOOLEAN":
        if text not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return text == "true"
    if kind == "NUMBER_INTEGER":
        return int(text)
    if kind == "NUMBER_DOUBLE":
        return float(text)
    return json.loads(text)  # LIST, STRUCT


def _readable_copy(src: Path, dst: Path) -> None:
    """Copy like an object-store upload plus download: content only, new files 0644, folders 0755."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=shutil.copyfile)
        for root, dirs, files in os.walk(dst):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o644)


def _host_path(work: Path, inside: str) -> Path:
    """The host side of a path in a step's scratch folders (/minio, /tmp/kfp, /tmp/kfp_outputs)."""
    for mount, folder in (("/tmp/kfp_outputs/", "kfp_outputs"), ("/tmp/kfp/", "kfp"), ("/minio/", "minio")):
        if inside.startswith(mount):
            return work / folder / inside[len(mount) :]
    raise ValueError(f"{inside} is not in a step's scratch folders")


class Launcher:
    """Runs steps of one pipeline run; its kept store is ``root/kept``, workspaces ``root/work``."""

    def __init__(self, root: Path, *, pipeline: str = "adhoc", run_id: str = "") -> None:
        self.root = root
        self.pipeline = pipeline
        self.run_id = run_id or str(uuid.uuid4())
        self.task_ids: dict[str, str] = {}
        (root / "kept").mkdir(parents=True, exist_ok=True)
        (root / "work").mkdir(parents=True, exist_ok=True)

    def output_uri(self, task: str, name: str) -> str:
        return f"{PIPELINE_ROOT}/{self.pipeline}/{self.run_id}/{task}/{name}"

    def imported(self, path: Path, name: str, schema_title: str = "system.Dataset", metadata: dict | None = None) -> Artifact:
        """A host file or folder given to a step as an input artifact (as a dsl.importer would)."""
        return Artifact(path, f"{PIPELINE_ROOT}/{self.pipeline}/{self.run_id}/importer/{name}", schema_title, dict(metadata or {}))

    def runtime_value(self, value: Any, task: str) -> Any:
        """The driver's substitution of pipeline placeholders in runtime constants."""
        if not isinstance(value, str):
            return value
        self.task_ids.setdefault(task, str(uuid.uuid4()))
        for placeholder, replacement in {
            "{{$.pipeline_job_uuid}}": self.run_id,
            "{{$.pipeline_job_name}}": f"{self.pipeline}-{self.run_id[:8]}",
            "{{$.pipeline_task_uuid}}": self.task_ids[task],
            "{{$.pipeline_task_name}}": task,
        }.items():
            value = value.replace(placeholder, replacement)
        return value

    def executor_input(self, component: Component, task: str, parameters: Mapping[str, Any], inputs: Mapping[str, Artifact]) -> dict:
        """The ExecutorInput the driver builds, with the launcher's parameter defaults filled in."""
        definitions = component.spec.get("inputDefinitions", {})
        declared = definitions.get("parameters", {})
        unknown = sorted(set(parameters) - set(declared)) + sorted(set(inputs) - set(definitions.get("artifacts", {})))
        if unknown:
            raise ValueError(f"{task}: {component.name} declares no input {unknown}")
        values = {}
        for name, spec in declared.items():
            if name in parameters:
                values[name] = _proto_number(parameters[name])
            elif "defaultValue" in spec:
                values[name] = _proto_number(spec["defaultValue"])
            elif not spec.get("isOptional"):
                raise ValueError(f"{task}: required parameter {name!r} has no value")
        artifacts = {}
        for name, spec in definitions.get("artifacts", {}).items():
            if name not in inputs:
                if not spec.get("isOptional"):
                    raise ValueError(f"{task}: required input artifact {name!r} is missing")
                continue
            wanted = spec["artifactType"]["schemaTitle"]
            if inputs[name].schema_title != wanted and wanted != "system.Artifact":
                raise ValueError(f"{task}: input {name!r} is a {inputs[name].schema_title}, the component takes a {wanted}")
            artifacts[name] = {"artifacts": [inputs[name].runtime(name)]}
        outputs = component.spec.get("outputDefinitions", {})
        return {
            "inputs": {"parameterValues": values, "artifacts": artifacts},
            "outputs": {
                "artifacts": {
                    name: {"artifacts": [{"name": name, "type": spec["artifactType"], "uri": self.output_uri(task, name), "metadata": {}}]} for name, spec in outputs.get("artifacts", {}).items()
                },
                "parameters": {name: {"outputFile": f"{PARAMETER_DIR}/{name}"} for name in outputs.get("parameters", {})},
                "outputFile": OUTPUT_METADATA,
            },
        }

    def run(
        self,
        component: Component,
        task: str = "",
        *,
        parameters: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Artifact] | None = None,
        network: str = "none",
        volumes: Mapping[Path, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
    ) -> StepResult:
        """Run one step in a fresh workspace and container; a retry of ``task`` starts on an empty disk too.

        ``volumes``: extra mounts, host folder -> ``/inside`` or ``/inside:ro`` (a PVC, a data
        volume); ``network``: ``none``, or ``host`` for a step that reaches services on 127.0.0.1.
        """
        task = task or component.name
        inputs = dict(inputs or {})
        executor = self.executor_input(component, task, dict(parameters or {}), inputs)
        payload = json.dumps(executor, separators=(",", ":"))
        argv = [a.replace("{{$}}", payload) for a in component.container["command"] + component.container.get("args", [])]
        if any("{{$" in a for a in argv):
            raise NotImplementedError(f"{task}: a placeholder other than {{{{$}}}} in {argv}")

        work = self.root / "work" / f"{task}-{uuid.uuid4().hex[:8]}"
        scratch = {"/minio": work / "minio", "/tmp/kfp": work / "kfp", "/tmp/kfp_outputs": work / "kfp_outputs"}
        for folder in scratch.values():
            folder.mkdir(parents=True)
        # The launcher, running as the step's user, downloads the inputs and creates the output
        # folders (prepareOutputFolders) before the command starts: their parents are the user's.
        outputs = executor["outputs"]
        paths = [local_path(a.uri) for a in inputs.values()] + [local_path(a["artifacts"][0]["uri"]) for a in outputs["artifacts"].values()]
        for inside in paths + [p["outputFile"] for p in outputs["parameters"].values()]:
            _host_path(work, inside).parent.mkdir(parents=True, exist_ok=True)
        for folder in [work, *work.rglob("*")]:
            folder.chmod(0o777)  # an emptyDir: writable by the step's user (the images run as uid 1000)
        mounts = [f"{host}:{inside}" for inside, host in scratch.items()]
        mounts += [f"{art.path}:{local_path(art.uri)}:ro" for art in inputs.values()]
        mounts += [f"{host}:{inside}" for host, inside in (volumes or {}).items()]
        name = f"kfp-{task}-{uuid.uuid4().hex[:8]}"
        cmd = ["run", "--rm", "--name", name, "--network", network, "--http-proxy=false"]  # a pod has no host proxy settings
        cmd += [x for m in mounts for x in ("-v", m)] + [x for k, v in (env or {}).items() for x in ("-e", f"{k}={v}")]
        try:
            try:
                proc = podman(*cmd, component.image, *argv, timeout=timeout)
            except subprocess.TimeoutExpired:
                podman("rm", "--force", name)
                raise
            return self._collect(component, task, executor, inputs, work, proc)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # the pod is gone

    def _collect(self, component: Component, task: str, executor: dict, inputs: Mapping[str, Artifact], work: Path, proc: subprocess.CompletedProcess) -> StepResult:
        def host(inside: str) -> Path:
            return _host_path(work, inside)

        outputs = executor["outputs"]
        declared = {name: host(local_path(a["artifacts"][0]["uri"])) for name, a in outputs["artifacts"].items()}
        expected = set(declared.values()) | {host(OUTPUT_METADATA)} | {host(p["outputFile"]) for p in outputs["parameters"].values()}
        mount_points = {host(local_path(a.uri)) for a in inputs.values()}
        keep_parents = {parent for path in expected | mount_points for parent in path.parents}
        discarded = []
        for top in (work / "minio", work / "kfp", work / "kfp_outputs"):
            for dirpath, dirs, files in os.walk(top):
                for name in sorted(dirs) + sorted(files):
                    path = Path(dirpath) / name
                    if path not in expected | mount_points | keep_parents:
                        discarded.append(str(path.relative_to(work)))
                dirs[:] = [d for d in dirs if Path(dirpath, d) in keep_parents]
        written = sorted(name for name, path in declared.items() if path.exists())
        kept_dir = self.root / "kept" / task
        result = StepResult(task, proc.returncode, proc.stdout, proc.stderr, {}, {}, written, discarded, kept_dir)
        if proc.returncode != 0:
            return result  # the launcher uploads nothing for a failed step

        metadata_file = host(OUTPUT_METADATA)
        executor_output = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
        values = dict(executor_output.get("parameterValues", {}))
        for name, spec in component.spec.get("outputDefinitions", {}).get("parameters", {}).items():
            if name not in values:  # collectOutputParameters: the metadata file first, then the parameter file
                source = host(outputs["parameters"][name]["outputFile"])
                try:
                    values[name] = _parse_parameter(source.read_text(), spec["parameterType"])
                except (OSError, ValueError) as exc:
                    result.returncode, result.stderr = 1, result.stderr + f"\nlauncher: failed to read output parameter {name!r}: {exc}"
                    return result
        shutil.rmtree(kept_dir, ignore_errors=True)  # a retry uploads to the same URIs
        kept_dir.mkdir(parents=True)
        artifacts = {}
        for name, listing in outputs["artifacts"].items():
            runtime = listing["artifacts"][0]
            produced = executor_output.get("artifacts", {}).get(name, {}).get("artifacts", [{}])[0]
            if declared[name].exists():
                _readable_copy(declared[name], kept_dir / name)
            artifacts[name] = Artifact(kept_dir / name, runtime["uri"], runtime["type"]["schemaTitle"], dict(produced.get("metadata", {})))
        record = {"artifacts": {n: {"artifacts": [a.runtime(n)]} for n, a in artifacts.items()}, "parameterValues": values}
        (kept_dir / "executor_output.json").write_text(json.dumps(record, indent=2))
        result.artifacts, result.parameters = artifacts, values
        return result


def run_pipeline(launcher: Launcher, ir: dict, arguments: Mapping[str, Any], *, options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, StepResult]:
    """Run a compiled pipeline's root DAG step by step, wired as its YAML wires it; stop at a failed step.

    ``options``: per task, what the cluster adds around the step (``network``, ``volumes``, ``env``).
    """
    root = ir["root"]
    declared = root.get("inputDefinitions", {}).get("parameters", {})
    if set(arguments) - set(declared):
        raise ValueError(f"the pipeline has no parameters {sorted(set(arguments) - set(declared))}")
    values = {}
    for name, spec in declared.items():
        if name not in arguments and "defaultValue" not in spec and not spec.get("isOptional"):
            raise ValueError(f"pipeline parameter {name!r} is required")
        values[name] = arguments.get(name, spec.get("defaultValue"))
    tasks = root["dag"]["tasks"]
    results: dict[str, StepResult] = {}
    skipped: set[str] = set()
    pending = dict(tasks)
    while pending:
        ready = sorted(n for n, t in pending.items() if set(t.get("dependentTasks", [])) <= set(results) | skipped)
        if not ready:
            raise ValueError(f"the DAG has a cycle or an unknown dependency among {sorted(pending)}")
        name = ready[0]
        task = pending.pop(name)
        if "triggerPolicy" in task:
            # A dsl.If branch: skipped when its condition is false; running a branch's sub-DAG is not emulated.
            if not _condition_holds(task["triggerPolicy"]["condition"], task, values, results):
                skipped.add(name)
                continue
            raise NotImplementedError(f"{name}: a condition that holds (its sub-DAG) is not emulated")
        for unsupported in ("iteratorPolicy", "parameterIterator", "artifactIterator"):
            if unsupported in task:
                raise NotImplementedError(f"{name}: {unsupported} is not emulated")
        parameters = {}
        for key, source in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                parameters[key] = values[source["componentInputParameter"]]
            elif "taskOutputParameter" in source:
                ref = source["taskOutputParameter"]
                parameters[key] = results[ref["producerTask"]].parameters[ref["outputParameterKey"]]
            elif "runtimeValue" in source:
                parameters[key] = launcher.runtime_value(source["runtimeValue"]["constant"], name)
            else:
                raise NotImplementedError(f"{name}.{key}: {source}")
        inputs = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            ref = source["taskOutputArtifact"]
            inputs[key] = results[ref["producerTask"]].artifacts[ref["outputArtifactKey"]]
        component = Component.from_pipeline(ir, name)
        results[name] = launcher.run(component, name, parameters=parameters, inputs=inputs, **(options or {}).get(name, {}))
        if results[name].returncode != 0:
            break
    return results


CONDITION = re.compile(r"^inputs\.parameter_values\['([^']+)'\]\s*(==|!=)\s*(.+)$")


def _condition_holds(condition: str, task: dict, values: Mapping[str, Any], results: Mapping[str, StepResult]) -> bool:
    """Evaluate the one-comparison CEL conditions our pipelines compile to (``x == true``, ``x != 'none'``)."""
    match = CONDITION.match(" ".join(condition.split()))
    if not match:
        raise NotImplementedError(f"condition {condition!r} is not emulated")
    channel, operator, literal = match.groups()
    source = task["inputs"]["parameters"][channel]
    if "componentInputParameter" in source:
        actual = values[source["componentInputParameter"]]
    else:
        ref = source["taskOutputParameter"]
        actual = results[ref["producerTask"]].parameters[ref["outputParameterKey"]]
    expected = json.loads(literal.replace("'", '"'))
    return (actual == expected) == (operator == "==")
