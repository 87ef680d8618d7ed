"""Run a pipeline on this machine with kfp.local: the arguments a laptop needs filled in, one line per step, where to look after.

``run_pipeline("training")`` is what ``kfp-mlops run training`` does, for notebooks and
scripts: demo data when no ``source_uri`` is given, a sqlite MLflow store in the
workdir, local deployments beside the runs; it returns a :class:`LocalRun`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kfp_mlops.pipelines import catalog
from kfp_mlops.pipelines.local_console import StepConsole, StepResult, format_step, step_outputs

DEFAULT_WORKDIR = Path(".kfp-mlops")
DEMO_ROWS = 100_000
LOG_NAME = "run.log"


@dataclass(frozen=True)
class ModelSummary:
    """The registered version a run produced and the aliases on it after the run."""

    name: str
    version: str
    blessed: bool
    aliases: tuple[str, ...]

    def __str__(self) -> str:
        aliases = ", ".join(f"@{a}" for a in self.aliases) or "no alias"
        return f"{self.name} version {self.version} ({'blessed' if self.blessed else 'NOT blessed'}; {aliases})"


INTERRUPTED = 130  # the shell's exit status for a command ended by Ctrl-C


class LocalRunFailed(RuntimeError):
    """A local run stopped at a failed step; ``exit_code`` is that step's own (2 bad input, 3 infrastructure, 1 otherwise)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class LocalRun:
    """A finished local run: its folder, its steps and what it produced."""

    pipeline: str
    run_dir: Path
    arguments: dict[str, Any]
    steps: list[StepResult] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    log: Path | None = None
    model: ModelSummary | None = None

    def step_dir(self, step: str) -> Path:
        return self.run_dir / step

    def parameters(self, step: str) -> dict[str, Any]:
        """A step's output parameters (``blessed``, ``version``, ``Output``, ...)."""
        return step_outputs(self.step_dir(step))[0]

    def metrics(self, step: str) -> dict[str, Any]:
        """A step's ``metrics`` output (e.g. ``run.metrics("train")["test_roc_auc"]``)."""
        return step_outputs(self.step_dir(step))[1].get("metrics", {})

    def reports(self) -> dict[str, Path]:
        """Every HTML page of the run, by step (``step`` or ``step/output``), as files a browser opens."""
        pages = [p for p in list_outputs(self.run_dir) if p.suffix == ".html"]
        return {str(p.parent.relative_to(self.run_dir)) + ("" if p.stem == "report" else f"/{p.stem}"): p for p in pages}

    @property
    def endpoint(self) -> str:
        if self.arguments.get("mode") == "dry-run":
            return ""  # rendered and checked only: nothing serves
        found = [p.read_text().strip() for p in sorted(self.run_dir.glob("deploy*/endpoint"))]
        return found[-1] if found and found[-1] else ""

    @property
    def mlflow_ui(self) -> str:
        uri = str(self.arguments.get("mlflow_tracking_uri", ""))
        if uri.startswith("sqlite:///"):
            return f"mlflow ui --backend-store-uri {uri}"
        return f"open {uri} in a browser" if uri.startswith("http") else ""

    def summary(self) -> str:
        """What the CLI prints at the end: reports, the model and its aliases, the endpoint, MLflow."""
        lines = [f"pipeline {self.pipeline!r} finished in {self.seconds:.1f}s; outputs under {self.run_dir}"]
        reports = self.reports()
        if reports:
            lines.append("reports (open in a browser):")
            lines += [f"  {name:<28} {path}" for name, path in reports.items()]
        if self.model is not None:
            lines.append(f"model: {self.model}")
        if self.endpoint:
            lines.append(f"serving at {self.endpoint}  (`kfp-mlops deployments` lists it; `kfp-mlops deployments stop NAME` stops it)")
        if self.mlflow_ui:
            lines.append(f"MLflow: {self.mlflow_ui}")
        if self.log is not None:
            lines.append(f"full log: {self.log}")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # notebooks show the summary
        steps = "\n".join(f"| {s.name} | {s.state} | {s.seconds:.1f}s | {s.key} |" for s in self.steps)
        return f"| step | state | time | key figure |\n|---|---|---|---|\n{steps}\n\n```\n{self.summary()}\n```"


def prepare_arguments(name: str, params: dict[str, Any], *, workdir: Path, demo_rows: int = DEMO_ROWS, demo_drift: float = 0.0, say: TextIO = sys.stdout) -> dict[str, Any]:
    """The pipeline's arguments with what a laptop run needs filled in; prints what it filled in."""
    from kfp_mlops.components._shared.errors import KfpMlopsError

    pipeline = catalog.pipeline(name)
    declared = pipeline_parameters(pipeline)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise KfpMlopsError(f"pipeline {name!r} has no parameter {', '.join(unknown)}", fix=f"use one of: {', '.join(sorted(declared))}")
    if not 0.0 <= demo_drift <= 1.0:
        raise KfpMlopsError(f"demo drift must be between 0 and 1, not {demo_drift}", fix="pass 0 (the training distribution) to 1 (strong)")
    args = {k: v for k, v in params.items() if v is not None}
    if "source_uri" in declared and not args.get("source_uri"):
        from kfp_mlops.components._shared.file_lock import locked
        from kfp_mlops.demo import DemoSpec, write_demo_dataset

        # Drifted demo rows come from another seed: new rows, not the training rows moved.
        demo = workdir / "demo" / (f"demo-{demo_rows}.parquet" if not demo_drift else f"demo-{demo_rows}-drift{demo_drift:g}.parquet")
        if not demo.exists():
            with locked(demo.with_name(demo.name + ".lock")):  # two runs started at once in one workdir write it once
                if not demo.exists():
                    print(f"no source_uri given: writing {demo_rows:,} rows of demo data{f' with drift {demo_drift:g}' if demo_drift else ''} to {demo}", file=say)
                    write_demo_dataset(demo, DemoSpec(rows=demo_rows, drift=demo_drift, seed=7 if not demo_drift else 8))
        args["source_uri"] = str(demo.resolve())
    if "mlflow_tracking_uri" in declared and not args.get("mlflow_tracking_uri"):
        from kfp_mlops.components._shared.mlflow_adapter import default_tracking_uri

        # One tracking database per workdir, so local runs accumulate like on a server.
        args["mlflow_tracking_uri"] = default_tracking_uri(workdir / "mlflow")
    if "deploy_target" in declared and args.get("deploy_target") is None:
        # On this machine a blessed model is served right away (`--deploy-target none` to skip).
        args["deploy_target"] = "local"
    target = args.get("deploy_target", args.get("target")) or "local"
    if "local_state_dir" in declared and not args.get("local_state_dir") and target == "local":
        from kfp_mlops.components.deploy.core import DeployRequest, deployment_name

        # Local deployments live beside the workdir's runs, so `kfp-mlops deployments` finds them.
        named = DeployRequest(model_name=args.get("model_name") or declared["model_name"][1], deployment=args.get("deployment_name") or "")
        args["local_state_dir"] = str((workdir / "deployments" / deployment_name(named)).resolve())
    if "replay_uri" in declared and args.get("replay_uri") is None and target == "local":
        latest = latest_test_split(workdir / "runs")
        if latest is not None:
            print(f"no replay_uri given: replaying the test split of the latest training run as traffic ({latest})", file=say)
            args["replay_uri"] = str(latest)
    return args


def run_pipeline(name: str, *, workdir: str | Path = DEFAULT_WORKDIR, verbose: bool = False, demo_rows: int = DEMO_ROWS, demo_drift: float = 0.0, **params: Any) -> LocalRun:
    """Run the pipeline ``name`` locally as ``kfp-mlops run`` does; raises RuntimeError naming the failed step."""
    workdir = Path(workdir)
    arguments = prepare_arguments(name, params, workdir=workdir, demo_rows=demo_rows, demo_drift=demo_drift)
    return run_locally(catalog.pipeline(name), arguments, workdir / "runs", verbose=verbose, name=name)


def run_locally(pipeline: Any, arguments: dict[str, Any], pipeline_root: str | Path, *, verbose: bool = True, name: str = "") -> LocalRun:
    """Run ``pipeline`` through ``SubprocessRunner(use_venv=False)``: one line per step (every line with ``verbose``), the whole log in the run folder."""
    from kfp import local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = {p for p in root.iterdir() if p.is_dir()}

    def run_dir() -> Path | None:
        new = [p for p in root.iterdir() if p.is_dir() and p not in before]
        return max(new, key=lambda p: p.stat().st_mtime) if new else None

    from kfp_mlops.components._shared.mlflow_adapter import initialize_store_in_background

    # A sqlite store's schema takes seconds to create; the first steps run meanwhile (those that open
    # the store wait for it).
    store_ready = initialize_store_in_background(str(arguments.get("mlflow_tracking_uri") or ""))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    # Our images hold exactly this package; running their steps in this environment is the point.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task that uses custom or non-Python base image", category=RuntimeWarning)
    staging = root / f".{os.getpid()}-{time.time_ns()}.log"
    started = time.perf_counter()
    terminal = sys.stdout
    with staging.open("w", encoding="utf-8") as log_file:
        os.chmod(staging, 0o600)
        console = StepConsole(terminal, log_file, run_dir, verbose=verbose, pipeline_root=root)
        failure: RuntimeError | None = None
        interrupted = False
        try:
            with contextlib.redirect_stdout(console):
                pipeline(**arguments)
        except RuntimeError as exc:
            failure = exc
        except KeyboardInterrupt:
            # Ctrl-C reaches the step's process too; what it wrote stays, the log is kept below.
            interrupted = True
        finally:
            console.flush()
            store_ready()
    folder = console.run_folder or run_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)  # a first step that failed left nothing there but its log
    # A run that failed before its first output has no folder: its log gets a name of its own.
    log = folder / LOG_NAME if folder is not None else root / f"{name or 'pipeline'}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    folder = folder or root
    shutil.move(str(staging), log)
    run = LocalRun(name or getattr(pipeline, "name", "pipeline"), folder, arguments, console.steps, time.perf_counter() - started, log)
    if interrupted:
        during = next((f" during step {s.name!r}" for s in reversed(console.steps) if s.state == "RUNNING"), "")
        raise LocalRunFailed(f"interrupted{during}: the steps before it finished, nothing after it ran; partial outputs under {folder} (its log: {log})", INTERRUPTED)
    if failure is not None:
        failed = next((s for s in console.steps if s.state != "SUCCEEDED"), None)
        if failed is None:
            raise LocalRunFailed(str(failure)) from failure
        raise LocalRunFailed(f"step {failed.name!r} failed (its log: {log})", failed.exit_code or 1) from failure
    run.model = registered_model(run)
    return run


def registered_model(run: LocalRun) -> ModelSummary | None:
    """The version the run's last register step recorded, with the aliases it left on it (None when it registered
    nothing). No later step of a pipeline moves aliases, and reading the step's outputs spares the run's end an
    MLflow import."""
    registers = sorted(run.run_dir.glob("register*"), key=lambda p: (len(p.name), p.name))
    params = step_outputs(registers[-1])[0] if registers else {}
    if "version" not in params:
        return None
    name = run.arguments.get("model_name") or "kfp-mlops-model"
    aliases = tuple(sorted(a for a in str(params.get("aliases", "")).split(",") if a))
    return ModelSummary(name, str(params["version"]), bool(params.get("blessed")), aliases)


def pipeline_parameters(pipeline: Any) -> dict[str, tuple[str, Any, bool, str]]:
    """name -> (type, default, optional, description) of each pipeline parameter, read from its compiled spec."""
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    params = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return {name: (p.get("parameterType", "STRING"), p.get("defaultValue"), bool(p.get("isOptional")), p.get("description", "")) for name, p in params.items()}


def latest_test_split(runs: Path) -> Path | None:
    """The test split of the newest local run that made one (the rollout replays it as traffic)."""
    found = [p for p in runs.glob("*/featurize*/test") if p.exists()] if runs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def print_steps(run: LocalRun, out: TextIO = sys.stdout) -> None:
    for step in run.steps:
        print(format_step(step), file=out)


HTML_STARTS = (b"<!doctype html", b"<html")


def list_outputs(run_dir: Path) -> list[Path]:
    """Every output file of a run, by task; HTML reports under a name a browser opens as a page.

    KFP names an output file after the output (``report``), with no extension, so a
    browser shows it as text. A ``.html`` hard link beside it is listed instead; the
    artifact itself stays where KFP's metadata points.
    """
    listed = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if path.suffix == ".html" and path.with_suffix("").is_file():
            continue  # the link made by an earlier listing
        listed.append(_browsable(path) if _is_html(path) else path)
    return listed


def _is_html(path: Path) -> bool:
    if path.suffix.lower() in (".html", ".htm"):
        return False
    with path.open("rb") as f:
        return f.read(64).lstrip().lower().startswith(HTML_STARTS)


def _browsable(path: Path) -> Path:
    page = path.with_name(path.name + ".html")
    if not page.exists():
        try:
            os.link(path, page)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(path, page)
    return page
