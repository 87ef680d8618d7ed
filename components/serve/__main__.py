"""The model server's command line: ``python -m kfp_mlops.components.serve --model-uri ...``.

Our arguments are parsed, and the model resolved, downloaded, hash-checked and loaded,
before kserve is imported (it parses ``sys.argv`` at import) and before the port is
bound: a bad argument or an unloadable model ends here with the project's message and
exit code, not a half-started server.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Sequence

from kfp_mlops.components._shared.entry import exit_on_error
from kfp_mlops.components._shared.errors import DataError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kfp_mlops.components.serve", description="Serve a kfp-mlops model over KServe V1 and Open Inference Protocol V2.")
    p.add_argument("--model-uri", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a local model folder")
    # --model_name too: KServe reads a custom container's model name only from an argument spelled
    # that way, and an InferenceGraph then calls /v2/models/<that name>/infer.
    p.add_argument("--model-name", "--model_name", dest="model_name", default="", help="name in the URLs (default: the registered model name, else 'model')")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1, help="worker processes; each loads the model files itself")
    p.add_argument("--arm", default="default", help="A/B arm written with each logged prediction")
    p.add_argument("--log-sink", default="", help="prediction log: a folder, s3:// or gs:// prefix ('' = off)")
    p.add_argument("--log-batch-rows", type=int, default=1000)
    p.add_argument("--log-flush-seconds", type=float, default=5.0)
    p.add_argument("--log-queue-size", type=int, default=10000)
    p.add_argument("--feature-repo", default="", help="a featurize feature_repo folder: rows may then carry only their entity key")
    p.add_argument("--max-payload-bytes", type=int, default=1 << 20, help="larger request bodies get HTTP 413")
    p.add_argument("--kserve-handlers", action="store_true", help="answer V1 predict through KServe's own handlers (slower; for comparison)")
    return p


def _check(args: argparse.Namespace) -> None:
    problems = []
    if not 0 < args.http_port < 65536:
        problems.append(f"--http-port {args.http_port} is not a port number (1-65535)")
    for flag, value in (("--workers", args.workers), ("--log-batch-rows", args.log_batch_rows), ("--log-queue-size", args.log_queue_size), ("--max-payload-bytes", args.max_payload_bytes)):
        if value < 1:
            problems.append(f"{flag} must be at least 1, not {value}")
    if not args.log_flush_seconds > 0:
        problems.append(f"--log-flush-seconds must be above 0, not {args.log_flush_seconds}")
    if args.feature_repo and not os.path.isfile(os.path.join(args.feature_repo, "feature_store.yaml")):
        problems.append(f"--feature-repo {args.feature_repo!r} holds no feature_store.yaml")
    if problems:
        raise DataError("; ".join(problems), where="model server arguments", fix="fix the flags (python -m kfp_mlops.components.serve --help)")


def main(argv: Sequence[str] | None = None) -> None:
    from kfp_mlops.components._shared.telemetry import telemetry_off

    telemetry_off()
    args = parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    sys.argv = sys.argv[:1]  # kserve parses sys.argv at import, and again in each worker process
    tracking_uri = args.tracking_uri if args.tracking_uri is not None else os.environ.get("MLFLOW_TRACKING_URI", "")
    with exit_on_error("serve"), tempfile.TemporaryDirectory(prefix="kfp-mlops-serve-") as scratch:
        _check(args)
        from pathlib import Path

        from kfp_mlops.components.serve.model_source import resolve_model

        loaded = resolve_model(args.model_uri, tracking_uri=tracking_uri, scratch=Path(scratch))
        from kfp_mlops.components.serve.http_server import serve
        from kfp_mlops.components.serve.server import ServeOptions

        options = ServeOptions(
            model_name=args.model_name or loaded.registered_name or "model",
            host=args.host,
            http_port=args.http_port,
            workers=args.workers,
            arm=args.arm,
            log_sink=args.log_sink,
            log_batch_rows=args.log_batch_rows,
            log_flush_seconds=args.log_flush_seconds,
            log_queue_size=args.log_queue_size,
            feature_repo=args.feature_repo,
            max_payload_bytes=args.max_payload_bytes,
            kserve_handlers=args.kserve_handlers,
        )
        print(f"kfp-mlops serve: {loaded.uri} ({loaded.contract.task}, version {loaded.version or '-'}) as {options.model_name!r} on {options.host}:{options.http_port}", file=sys.stderr, flush=True)
        serve(loaded, options)


if __name__ == "__main__":
    main()
