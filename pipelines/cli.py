"""The kfp-mlops command: compile, run pipelines locally, make demo data.

kfp-mlops run training [--source-uri URI] [--label-column label] ...
kfp-mlops run training --help        lists the pipeline's parameters from its spec
kfp-mlops run deploy --arms champion=50,challenger=50   serve two versions locally
kfp-mlops run rollout                canary steps of the @challenger, each gated by the A/B analysis
kfp-mlops deployments [stop NAME]    local deployments: where they answer, or stop one
kfp-mlops run monitoring --demo-drift 0.6   drift, data quality and performance of @champion; retrain on need
kfp-mlops profile --model-name M --data TRAIN --test TEST   a monitoring reference for an older version
kfp-mlops schedule monitoring --host URL --cron "0 * * * *" --param source_uri=gs://...   a recurring run
kfp-mlops submit training --host URL --param source_uri=gs://... [--wait]   a run on Kubeflow, followed step by step
kfp-mlops upload training --host URL [--version-name V]   the pipeline, or a new version of it, to Kubeflow
kfp-mlops compile [--output-dir compiled] [--image-registry REGISTRY]
kfp-mlops demo-data OUT.parquet --rows N [--seed S] [--drift D]
kfp-mlops schema-to-suite SCHEMA.json [-o SUITE.json] [--name NAME]   validate's schema as a Great Expectations suite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from kfp_mlops.components._shared.redact import redact_text, redacted_console
from kfp_mlops.components._shared.telemetry import telemetry_off
from kfp_mlops.pipelines import catalog

DEFAULT_WORKDIR = Path(".kfp-mlops")
DEMO_ROWS = 100_000  # as local_run.DEMO_ROWS, without importing it for `--help`
PARAM_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float}


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _run_parser(name: str, pipeline: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"kfp-mlops run {name}",
        description=(pipeline.description or "") + " Runs locally with kfp.local (SubprocessRunner, no containers).",
    )
    from kfp_mlops.pipelines.local_run import pipeline_parameters

    params = sorted(pipeline_parameters(pipeline).items())
    for pname, (ptype, default, optional, description) in params:
        flag = "--" + pname.replace("_", "-")
        if ptype == "NUMBER_INTEGER" and isinstance(default, float) and default.is_integer():
            default = int(default)  # the spec stores every number as a float
        description = description.replace("%", "%%")  # argparse formats help with %
        kind = _bool if ptype == "BOOLEAN" else PARAM_TYPES.get(ptype, str)
        if pname == "source_uri":
            parser.add_argument(flag, dest=pname, default=None, help=f"{description} Default: demo data generated under --workdir.")
        else:
            # Unset flags are left out, so the pipeline applies its own (typed) defaults.
            parser.add_argument(flag, dest=pname, type=kind, default=None, required=not optional, help=f"{description} (default: {repr(default).replace('%', '%%')})")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where runs and demo data go (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="print every step's full log (default: one line per step; the full log is in the run folder's run.log)")
    if any(p[0] == "source_uri" for p in params):
        parser.add_argument("--demo-rows", type=int, default=DEMO_ROWS, help="rows of demo data when no --source-uri is given")
        parser.add_argument("--demo-drift", type=float, default=0.0, help="drift of the demo data, 0 (the training distribution) to 1 (strong): shifted values, new categories")
    return parser


def cmd_run(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: kfp-mlops run PIPELINE [--PARAM VALUE ...] [--verbose]\n\npipelines:")
        for name in catalog.PIPELINES:
            print(f"  {name:<12} {catalog.pipeline(name).description}")
        print("\n`kfp-mlops run PIPELINE --help` lists a pipeline's parameters.")
        return 0
    name, rest = argv[0], list(argv[1:])
    if name not in catalog.PIPELINES:
        print(f"unknown pipeline {name!r}; known: {', '.join(catalog.PIPELINES)}", file=sys.stderr)
        return 2
    from kfp_mlops.components._shared.errors import KfpMlopsError
    from kfp_mlops.pipelines.local_run import prepare_arguments, run_locally

    pipeline = catalog.pipeline(name)
    args = vars(_run_parser(name, pipeline).parse_args(rest))
    workdir: Path = args.pop("workdir")
    verbose: bool = args.pop("verbose")
    demo = {"demo_rows": args.pop("demo_rows", DEMO_ROWS), "demo_drift": args.pop("demo_drift", 0.0)}
    try:
        arguments = prepare_arguments(name, args, workdir=workdir, **demo)
    except KfpMlopsError as exc:
        print(f"kfp-mlops run {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"running pipeline {name!r} locally with:")
    for key, value in arguments.items():
        print(f"  {key} = {redact_text(value) if isinstance(value, str) else value!r}")
    print("steps:" if not verbose else "")
    try:
        with redacted_console():
            run = run_locally(pipeline, arguments, workdir / "runs", verbose=verbose, name=name)
    except RuntimeError as exc:
        print(f"\npipeline {name!r} failed: {redact_text(str(exc))}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    if verbose:
        from kfp_mlops.pipelines.local_run import list_outputs

        print(f"outputs of this run, under {run.run_dir}:")
        for path in list_outputs(run.run_dir):
            print(f"  {path.relative_to(run.run_dir)}  ({path.stat().st_size:,} bytes)")
    print()
    print_gates(run.run_dir, run.reports())
    print_monitoring(run.run_dir)
    print(run.summary())
    return 0


def print_gates(run_dir: Path, reports: dict[str, Path]) -> None:
    """One line per A/B gate of the run: its decision and its report (``reports``: the run's pages by step)."""
    import json

    gates = sorted(run_dir.glob("analyze-experiment*/executor_output.json"), key=lambda p: (len(p.parent.name), p.parent.name))
    for number, path in enumerate(gates, 1):
        decision = json.loads(path.read_text()).get("parameterValues", {}).get("Output", "?")
        report = reports.get(path.parent.name)
        print(f"gate {number}: {decision}" + (f"  (report: {report})" if report else ""))


def print_monitoring(run_dir: Path) -> None:
    """The monitor's verdict and, when it retrained, what the gate decided."""
    import json

    for step in sorted(run_dir.glob("monitor-models*")):
        values = json.loads((step / "executor_output.json").read_text()).get("parameterValues", {})
        print(f"\nmonitor: retrain {'yes' if values.get('retrain') else 'no'}, drift {'yes' if values.get('drift_detected') else 'no'}  (report: {step / 'report.html'})")
    for register in sorted(run_dir.glob("register*")) if any(run_dir.glob("monitor-models*")) else []:
        values = json.loads((register / "executor_output.json").read_text()).get("parameterValues", {})
        print(f"retrained: version {values.get('version')} {'blessed' if values.get('blessed') else 'NOT blessed'}  (comparison: {register / 'report.html'})")


def cmd_compile(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kfp-mlops compile",
        description="Compile every component and pipeline to KFP IR YAML for a cluster (the options are compile-time; everything else is a pipeline parameter).",
        epilog="An options file (--options cluster.yaml) holds the same keys as the flags (with _), plus training/serving: {node_selector: {...}, tolerations: [...]}; flags override it.",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("compiled"))
    parser.add_argument("--options", type=Path, default=None, help="YAML or JSON file of cluster options")
    flags = {
        "image_registry": "registry of the kfp-mlops-<role> images, e.g. registry.example.com/ml",
        "image_pull_secret": "Kubernetes Secret every step and model server pulls images with",
        "mlflow_tracking_uri": "default of the pipelines' mlflow_tracking_uri parameter, e.g. http://mlflow.kubeflow:5000",
        "mlflow_secret": "Secret with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (train, register, deploy, monitor)",
        "s3_secret": "Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for s3:// sources",
        "gcs_secret": "Secret with a service-account key.json for gs:// sources",
        "feature_store_secret": "Secret with PGPASSWORD and REDIS_PASSWORD for featurize",
        "gpu_type": "GPU model for training: the nodes' nvidia.com/gpu.product label, e.g. NVIDIA-L4",
        "checkpoint_pvc": "PVC mounted into training for checkpoints a retried step resumes from",
    }
    for name, help_text in flags.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=help_text)
    parser.add_argument("--gpu-count", dest="gpu_count", type=int, default=None, help="GPUs (nvidia.com/gpu) per training pod")
    for role in ("training", "serving"):
        parser.add_argument(f"--{role}-node-selector", default=None, metavar="JSON", help=f'node labels for {role} pods, e.g. {{"pool": "gpu"}}')
        parser.add_argument(f"--{role}-tolerations", default=None, metavar="JSON", help=f'tolerations for {role} pods, e.g. [{{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}}]')
    args = vars(parser.parse_args(argv))
    import json

    from kfp_mlops.components._shared.errors import KfpMlopsError
    from kfp_mlops.pipelines.compile import compile_all
    from kfp_mlops.pipelines.options import ClusterOptions

    try:
        data = cluster_options_data(args.pop("options"))
        for role in ("training", "serving"):
            for part in ("node_selector", "tolerations"):
                text = args.pop(f"{role}_{part}")
                if text is not None:
                    try:
                        data.setdefault(role, {})[part] = json.loads(text)
                    except ValueError as exc:
                        raise KfpMlopsError(f"--{role}-{part.replace('_', '-')} is not JSON ({exc})", fix="quote the JSON for the shell") from exc
        output_dir = args.pop("output_dir")
        data.update({k: v for k, v in args.items() if v is not None})
        options = ClusterOptions.from_mapping(data)
        paths = compile_all(output_dir, options)
    except OSError as exc:
        print(f"kfp-mlops compile: cannot write to {output_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    except KfpMlopsError as exc:
        print(f"kfp-mlops compile: {exc}", file=sys.stderr)
        return exc.exit_code
    for path in paths:
        print(f"wrote {path}")
    return 0


def cluster_options_data(path: Path | None) -> dict[str, Any]:
    """The options file as a mapping (empty without one); checked with the flags merged in."""
    if path is None:
        return {}
    import yaml

    from kfp_mlops.components._shared.errors import DataError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the cluster options ({exc})", where=str(path), fix="give a YAML or JSON file of option: value") from exc
    if not isinstance(data, dict):
        raise DataError("cluster options must be a mapping of option: value", where=str(path), fix="e.g. mlflow_secret: mlflow-credentials")
    return data


def cmd_deployments(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kfp-mlops deployments", description="List the local deployments of a workdir, or stop one.")
    parser.add_argument("action", nargs="?", choices=("list", "stop"), default="list")
    parser.add_argument("name", nargs="?", default="", help="deployment to stop (its name is in the list)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the workdir given to `kfp-mlops run` (default: %(default)s)")
    args = parser.parse_args(argv)
    from kfp_mlops.components.deploy.core import DEPLOYMENT_NAME
    from kfp_mlops.components.deploy.local_target import status_local, stop_local

    chosen = args.workdir != DEFAULT_WORKDIR  # the default may simply not exist yet: nothing ran here
    if chosen and (not args.workdir.is_dir() or (args.workdir / ".kfp-mlops").is_dir() and not (args.workdir / "deployments").is_dir()):
        nested = args.workdir / ".kfp-mlops"
        hint = f"; did you mean --workdir {nested} (the folder `kfp-mlops run` writes under {args.workdir})?" if nested.is_dir() else ""
        print(f"{args.workdir} is not a kfp-mlops workdir (the folder given to `kfp-mlops run --workdir`, default {DEFAULT_WORKDIR}){hint}", file=sys.stderr)
        return 2
    root = args.workdir / "deployments"
    if args.action == "stop":
        # A name, never a path: `stop ../x` must not signal processes recorded elsewhere.
        if not DEPLOYMENT_NAME.fullmatch(args.name) or not (root / args.name).is_dir():
            known = sorted(p.name for p in root.iterdir() if status_local(p) is not None) if root.is_dir() else []
            print(f"no local deployment {args.name!r} under {root}; known: {', '.join(known) or 'none'}", file=sys.stderr)
            return 2
        running = status_local(root / args.name) is not None
        stop_local(root / args.name)
        print(f"stopped {args.name}" if running else f"{args.name} was not running: nothing to stop")
        return 0
    found = 0
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        deployment = status_local(folder)
        if deployment is None:
            continue
        found += 1
        exited = [arm for arm, running in deployment.arms.items() if not running.alive] + ([] if deployment.splitter_alive else ["the splitter"])
        state = "running" if deployment.healthy else f"DEGRADED ({', '.join(exited)} exited: redeploy or stop it)"
        print(f"{folder.name}: {deployment.url} ({state})")
        for arm, running in deployment.arms.items():
            served = served_version(running.command)
            print(f"  {arm:<12} weight {running.weight:>3}%  {running.url}  {served or '?'}  log {running.log_file}" + ("" if running.alive else "  EXITED"))
            moved = alias_moved(arm, running.command)
            if moved:
                print(f"    {moved}")
    if not found:
        print(f"no local deployments under {root}; start one with `kfp-mlops run deploy`")
    return 0


def _flag(command: Sequence[str], flag: str) -> str:
    return command[command.index(flag) + 1] if flag in command[:-1] else ""


def served_version(command: Sequence[str]) -> str:
    """The models:/NAME/VERSION an arm's server was started with (deploy pins every alias to a version)."""
    return _flag(command, "--model-uri")


def alias_moved(arm: str, command: Sequence[str]) -> str:
    """When an arm named after an alias serves another version than the alias names now: what happened and what to do."""
    uri, tracking = served_version(command), _flag(command, "--tracking-uri")
    if not uri.startswith("models:/") or not tracking or uri.count("/") != 2:
        return ""
    name, version = uri.removeprefix("models:/").split("/")
    from kfp_mlops.components._shared.errors import KfpMlopsError
    from kfp_mlops.components.register.registry import Registry

    try:
        now = Registry(tracking).alias(name, arm)
    except KfpMlopsError:
        return ""
    if now is None or now.version == version:
        return ""
    return f"@{arm} is version {now.version} now (a rollout or retraining moved it); this arm still serves version {version}: redeploy with `kfp-mlops run deploy`"


def main(argv: Sequence[str] | None = None) -> None:
    telemetry_off()
    argv = list(sys.argv[1:] if argv is None else argv)
    from kfp_mlops.pipelines.cli_kfp import cmd_schedule, cmd_submit, cmd_upload
    from kfp_mlops.pipelines.cli_monitor import cmd_profile

    commands = {"run": cmd_run, "compile": cmd_compile, "deployments": cmd_deployments, "profile": cmd_profile, "schedule": cmd_schedule, "submit": cmd_submit, "upload": cmd_upload}
    if argv and argv[0] == "schema-to-suite":
        from kfp_mlops.components.validate.gx_export import main as schema_to_suite_main

        raise SystemExit(schema_to_suite_main(argv[1:]))
    if argv and argv[0] == "demo-data":
        from kfp_mlops.demo import main as demo_main

        demo_main(argv[1:])
        return
    if not argv or argv[0] not in commands:
        asked = not argv or argv[0] in ("-h", "--help")
        if not asked:
            print(f"kfp-mlops: unknown command {argv[0]!r}; the commands are run, compile, deployments, profile, schedule, submit, upload, demo-data and schema-to-suite\n", file=sys.stderr)
        print(__doc__.strip(), file=sys.stdout if asked else sys.stderr)
        raise SystemExit(0 if not argv or argv[0] in ("-h", "--help") else 2)
    raise SystemExit(commands[argv[0]](argv[1:]))


if __name__ == "__main__":
    main()
