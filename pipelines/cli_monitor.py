"""`kfp-mlops profile`: store a reference profile for a registered version; `kfp-mlops schedule`: a recurring run on Kubeflow."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence


def cmd_profile(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kfp-mlops profile", description="Create the monitoring reference profile of a registered model version (register makes one for every version it registers).")
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--version", default="champion", help="version number or alias (default: %(default)s)")
    parser.add_argument("--data", type=Path, required=True, help="the training split the version was trained on (Parquet; a local run keeps it in .kfp-mlops/runs/training-*/featurize/train)")
    parser.add_argument("--test", type=Path, required=True, help="its held-out test split (Parquet, .../featurize/test): the model's scores and calibration come from it")
    parser.add_argument("--replace", action="store_true", help="overwrite the version's existing profile")
    parser.add_argument("--mlflow-tracking-uri", default="", help="default: MLFLOW_TRACKING_URI")
    args = parser.parse_args(argv)
    from kfp_mlops.components._shared.errors import KfpMlopsError
    from kfp_mlops.components._shared.mlflow_adapter import require_existing_store, resolve_tracking_uri
    from kfp_mlops.components.monitor.backfill import profile_registered_version
    from kfp_mlops.components.register.registry import Registry

    try:
        tracking_uri = resolve_tracking_uri(args.mlflow_tracking_uri, os.environ)
        require_existing_store(tracking_uri)
        version, digest = profile_registered_version(Registry(tracking_uri), args.model_name, args.version, reference_path=args.data, test_path=args.test, replace=args.replace)
    except KfpMlopsError as exc:
        print(f"kfp-mlops profile: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"stored the reference profile of {args.model_name} version {version} (sha256 {digest[:12]}...)")
    return 0


def cmd_schedule(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kfp-mlops schedule",
        description="Run a compiled pipeline on a schedule on Kubeflow (a recurring run), e.g. hourly monitoring.",
        epilog="The API token comes from the environment variable named by --token-env (never a flag: flags land in shell history).",
    )
    parser.add_argument("pipeline", help="name of a compiled pipeline, e.g. monitoring")
    parser.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline")
    parser.add_argument("--cron", required=True, help='when to run, 5 cron fields, e.g. "0 * * * *" for hourly')
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter (repeatable)")
    parser.add_argument("--experiment", default="kfp-mlops", help="experiment to run in (created if missing; default: %(default)s)")
    parser.add_argument("--name", default="", help="recurring run name (default: the pipeline's name)")
    parser.add_argument("--namespace", default=None, help="profile namespace on multi-user Kubeflow")
    parser.add_argument("--token-env", default="KFP_TOKEN", help="environment variable holding a bearer token (default: %(default)s)")
    parser.add_argument("--compiled-dir", type=Path, default=Path("compiled"), help="where `kfp-mlops compile` wrote the pipelines (default: %(default)s)")
    args = parser.parse_args(argv)
    import kfp

    from kfp_mlops.components._shared.errors import KfpMlopsError
    from kfp_mlops.pipelines.schedule import kfp_cron, schedule, typed_params

    package = args.compiled_dir / f"{args.pipeline}.yaml"
    try:
        if not package.is_file():
            raise KfpMlopsError(f"no compiled pipeline {package}", fix=f"run `kfp-mlops compile --output-dir {args.compiled_dir}` (with your cluster options) first")
        params, cron = typed_params(package, args.param), kfp_cron(args.cron)
        client = kfp.Client(host=args.host, existing_token=os.environ.get(args.token_env) or None, namespace=args.namespace or "kubeflow")
        created = schedule(client, package, name=args.name or args.pipeline, experiment=args.experiment, cron=cron, params=params, namespace=args.namespace)
    except KfpMlopsError as exc:
        print(f"kfp-mlops schedule: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the API's answer, shown without a traceback
        print(f"kfp-mlops schedule: the KFP API refused the recurring run: {str(exc)[:500]}", file=sys.stderr)
        return 3
    print(f"scheduled {args.pipeline!r} as recurring run {created.recurring_run_id} ({cron}) in experiment {args.experiment!r}")
    return 0
