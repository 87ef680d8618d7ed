"""The kfp-mlops command: compile, run pipelines locally, make demo data.

    kfp-mlops run training [--source-uri URI] [--label-column label] ...
    kfp-mlops run training --help        lists the pipeline's parameters from its spec
    kfp-mlops run deploy --arms champion=50,challenger=50   serve two versions locally
    kfp-mlops run rollout                canary steps of the @challenger, each gated by the A/B analysis
    kfp-mlops deployments [stop NAME]    local deployments: where they answer, or stop one
    kfp-mlops run monitoring --demo-drift 0.6   drift, data quality and performance of @champion; retrain on need
    kfp-mlops profile --model-name M --data TRAIN --test TEST   a monitoring reference for an older version
    kfp-mlops schedule monitoring --host URL --cron "0 * * * *" --param source_uri=gs://...   a recurring run
    kfp-mlops compile [--output-dir compiled] [--image-registry REGISTRY]
    kfp-mlops demo-data OUT.parquet --rows N [--seed S] [--drift D]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from kfp_mlops.components._shared.redact import redact_text, redacted_console
from kfp_mlops.pipelines import catalog

DEFAULT_WORKDIR = Path(".kfp-mlops")
DEMO_ROWS = 100_000
PARAM_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float}


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def pipeline_parameters(pipeline: Any) -> list[tuple[str, str, Any, bool, str]]:
    """(name, type, default, optional, description) of each pipeline parameter, read from its compiled spec."""
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    params = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return [
        (name, p.get("parameterType", "STRING"), p.get("defaultValue"), bool(p.get("isOptional")), p.get("description", ""))
        for name, p in params.items()
    ]


def _run_parser(name: str, pipeline: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"kfp-mlops run {name}",
        description=(pipeline.description or "") + " Runs locally with kfp.local (SubprocessRunner, no containers).",
    )
    params = sorted(pipeline_parameters(pipeline), key=lambda p: p[0])
    for pname, ptype, default, optional, description in params:
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
    if any(p[0] == "source_uri" for p in params):
        parser.add_argument("--demo-rows", type=int, default=DEMO_ROWS, help="rows of demo data when no --source-uri is given")
        parser.add_argument("--demo-drift", type=float, default=0.0, help="drift of the demo data, 0 (the training distribution) to 1 (strong): shifted values, new categories")
    return parser


def cmd_run(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: kfp-mlops run PIPELINE [--PARAM VALUE ...]\n\npipelines:")
        for name in catalog.PIPELINES:
            print(f"  {name:<12} {catalog.pipeline(name).description}")
        print("\n`kfp-mlops run PIPELINE --help` lists a pipeline's parameters.")
        return 0
    name, rest = argv[0], list(argv[1:])
    if name not in catalog.PIPELINES:
        print(f"unknown pipeline {name!r}; known: {', '.join(catalog.PIPELINES)}", file=sys.stderr)
        return 2
    pipeline = catalog.pipeline(name)
    args = vars(_run_parser(name, pipeline).parse_args(rest))
    workdir: Path = args.pop("workdir")
    demo_rows = args.pop("demo_rows", DEMO_ROWS)
    demo_drift = args.pop("demo_drift", 0.0)
    if not 0.0 <= demo_drift <= 1.0:
        print(f"--demo-drift must be between 0 and 1, not {demo_drift}", file=sys.stderr)
        return 2
    if "source_uri" in args and args["source_uri"] is None:
        from kfp_mlops.demo import DemoSpec, write_demo_dataset

        # Drifted demo rows come from another seed: new rows, not the training rows moved.
        demo = workdir / "demo" / (f"demo-{demo_rows}.parquet" if not demo_drift else f"demo-{demo_rows}-drift{demo_drift:g}.parquet")
        if not demo.exists():
            print(f"no --source-uri given: writing {demo_rows:,} rows of demo data{f' with drift {demo_drift:g}' if demo_drift else ''} to {demo}")
            write_demo_dataset(demo, DemoSpec(rows=demo_rows, drift=demo_drift, seed=7 if not demo_drift else 8))
        args["source_uri"] = str(demo.resolve())
    if "mlflow_tracking_uri" in args and not args["mlflow_tracking_uri"]:
        from kfp_mlops.components._shared.mlflow_adapter import default_tracking_uri

        # One tracking database per workdir, so local runs accumulate like on a server.
        args["mlflow_tracking_uri"] = default_tracking_uri(workdir / "mlflow")
    if str(args.get("mlflow_tracking_uri") or "").startswith("sqlite:///"):
        from kfp_mlops.components._shared.mlflow_adapter import initialize_store

        initialize_store(args["mlflow_tracking_uri"])
    if "local_state_dir" in args and not args["local_state_dir"] and (args.get("target") or "local") == "local":
        from kfp_mlops.components.deploy.core import DeployRequest, deployment_name

        # Local deployments live beside the workdir's runs, so `kfp-mlops stop` finds them.
        from kfp_mlops.components._shared.errors import KfpMlopsError

        defaults = {pname: default for pname, _, default, _, _ in pipeline_parameters(pipeline)}
        named = DeployRequest(model_name=args.get("model_name") or defaults["model_name"], deployment=args.get("deployment_name") or "")
        try:
            args["local_state_dir"] = str((workdir / "deployments" / deployment_name(named)).resolve())
        except KfpMlopsError as exc:
            print(f"kfp-mlops run deploy: {exc}", file=sys.stderr)
            return exc.exit_code
    if "replay_uri" in args and args["replay_uri"] is None and (args.get("target") or "local") == "local":
        latest = latest_test_split(workdir / "runs")
        if latest is not None:
            print(f"no --replay-uri given: replaying the test split of the latest training run as traffic ({latest})")
            args["replay_uri"] = str(latest)
    arguments = {k: v for k, v in args.items() if v is not None}
    print(f"running pipeline {name!r} locally with:")
    for key, value in arguments.items():
        print(f"  {key} = {redact_text(value) if isinstance(value, str) else value!r}")
    from kfp_mlops.pipelines.local_run import list_outputs, run_locally

    try:
        with redacted_console():
            run_dir = run_locally(pipeline, arguments, workdir / "runs")
    except RuntimeError as exc:
        print(f"\npipeline {name!r} failed: {redact_text(str(exc))}\nThe failing step's message is printed above.", file=sys.stderr)
        return 1
    print(f"outputs of this run, under {run_dir}:")
    for path in list_outputs(run_dir):
        print(f"  {path.relative_to(run_dir)}  ({path.stat().st_size:,} bytes)")
    for endpoint in sorted(run_dir.glob("*/endpoint")):
        if endpoint.read_text().strip():
            print(f"\nserving at {endpoint.read_text().strip()}  (`kfp-mlops deployments` lists it; `kfp-mlops deployments stop NAME` stops it)")
    print_gates(run_dir)
    print_monitoring(run_dir)
    return 0


def print_gates(run_dir: Path) -> None:
    """One line per A/B gate of the run: its decision and its report."""
    import json

    gates = sorted(run_dir.glob("analyze-experiment*/executor_output.json"), key=lambda p: (len(p.parent.name), p.parent.name))
    for number, path in enumerate(gates, 1):
        decision = json.loads(path.read_text()).get("parameterValues", {}).get("Output", "?")
        report = path.parent / "report.html"
        print(f"gate {number}: {decision}" + (f"  (report: {report})" if report.exists() else ""))


def print_monitoring(run_dir: Path) -> None:
    """The monitor's verdict and, when it retrained, what the gate decided."""
    import json

    for step in sorted(run_dir.glob("monitor-models*")):
        values = json.loads((step / "executor_output.json").read_text()).get("parameterValues", {})
        print(f"\nmonitor: retrain {'yes' if values.get('retrain') else 'no'}, drift {'yes' if values.get('drift_detected') else 'no'}  (report: {step / 'report.html'})")
    for register in sorted(run_dir.glob("register*")) if any(run_dir.glob("monitor-models*")) else []:
        values = json.loads((register / "executor_output.json").read_text()).get("parameterValues", {})
        print(f"retrained: version {values.get('version')} {'blessed' if values.get('blessed') else 'NOT blessed'}  (comparison: {register / 'report.html'})")


def latest_test_split(runs: Path) -> Path | None:
    """The test split of the newest local run that made one (the rollout replays it as traffic)."""
    found = [p for p in runs.glob("*/featurize*/test") if p.exists()] if runs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def cmd_compile(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kfp-mlops compile", description="Compile every component and pipeline to KFP IR YAML.")
    parser.add_argument("--output-dir", type=Path, default=Path("compiled"))
    parser.add_argument("--image-registry", default="", help="registry for the component images, e.g. registry.example.com/ml")
    parser.add_argument("--s3-secret", default="", help="Kubernetes Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for s3:// sources")
    parser.add_argument("--gcs-secret", default="", help="Kubernetes Secret with a service-account key.json for gs:// sources")
    parser.add_argument("--feature-store-secret", default="", help="Kubernetes Secret with PGPASSWORD and REDIS_PASSWORD for featurize")
    parser.add_argument("--mlflow-secret", default="", help="Kubernetes Secret with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for train and register")
    args = parser.parse_args(argv)
    from kfp_mlops.pipelines.compile import compile_all, configure

    configure(image_registry=args.image_registry, s3_secret=args.s3_secret, gcs_secret=args.gcs_secret, feature_store_secret=args.feature_store_secret, mlflow_secret=args.mlflow_secret)
    for path in compile_all(args.output_dir):
        print(f"wrote {path}")
    return 0


def cmd_deployments(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kfp-mlops deployments", description="List the local deployments of a workdir, or stop one.")
    parser.add_argument("action", nargs="?", choices=("list", "stop"), default="list")
    parser.add_argument("name", nargs="?", default="", help="deployment to stop (its name is in the list)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the workdir given to `kfp-mlops run` (default: %(default)s)")
    args = parser.parse_args(argv)
    from kfp_mlops.components.deploy.core import DEPLOYMENT_NAME
    from kfp_mlops.components.deploy.local_target import status_local, stop_local

    root = args.workdir / "deployments"
    if args.action == "stop":
        # A name, never a path: `stop ../x` must not signal processes recorded elsewhere.
        if not DEPLOYMENT_NAME.fullmatch(args.name) or not (root / args.name).is_dir():
            known = sorted(p.name for p in root.iterdir() if status_local(p) is not None) if root.is_dir() else []
            print(f"no local deployment {args.name!r} under {root}; known: {', '.join(known) or 'none'}", file=sys.stderr)
            return 2
        stop_local(root / args.name)
        print(f"stopped {args.name}")
        return 0
    found = 0
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        deployment = status_local(folder)
        if deployment is None:
            continue
        found += 1
        state = "running" if deployment.healthy else "DEGRADED (a process has exited: redeploy or stop it)"
        print(f"{folder.name}: {deployment.url} ({state})")
        for arm, running in deployment.arms.items():
            print(f"  {arm:<12} weight {running.weight:>3}%  {running.url}  log {running.log_file}")
    if not found:
        print(f"no local deployments under {root}; start one with `kfp-mlops run deploy`")
    return 0


# Usage reporting of our dependencies stays off unless the user turned it on themselves.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1", "NML_DISABLE_USAGE_LOGGING": "1"}


def main(argv: Sequence[str] | None = None) -> None:
    import os

    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    argv = list(sys.argv[1:] if argv is None else argv)
    from kfp_mlops.pipelines.cli_monitor import cmd_profile, cmd_schedule

    commands = {"run": cmd_run, "compile": cmd_compile, "deployments": cmd_deployments, "profile": cmd_profile, "schedule": cmd_schedule}
    if argv and argv[0] == "demo-data":
        from kfp_mlops.demo import main as demo_main

        demo_main(argv[1:])
        return
    if not argv or argv[0] not in commands:
        asked = not argv or argv[0] in ("-h", "--help")
        print(__doc__.strip(), file=sys.stdout if asked else sys.stderr)
        raise SystemExit(0 if not argv or argv[0] in ("-h", "--help") else 2)
    raise SystemExit(commands[argv[0]](argv[1:]))
