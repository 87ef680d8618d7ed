"""`kfp-mlops profile`: store a reference profile for a registered version."""

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
