"""`kfp-mlops submit`, `upload` and `schedule`: compiled pipelines on a Kubeflow Pipelines cluster.

The API token comes from the environment variable named by --token-env (never a flag: flags land
in shell history). A failure is the API's own message and what to do, never a traceback: exit 2
when the request was wrong, 3 when the cluster is unreachable, refuses the credentials or fails;
`submit --wait` exits 1 when the run fails, is canceled or skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kfp_mlops.components._shared.errors import DataError, KfpMlopsError
from kfp_mlops.components._shared.redact import redact_text, redacted_console

TOKEN_HELP = "environment variable holding a bearer token (default: %(default)s)"


def _common_flags(parser: argparse.ArgumentParser) -> None:
    host = os.environ.get("KFP_HOST") or None
    parser.add_argument("--host", default=host, required=host is None, help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline (default: $KFP_HOST)")
    parser.add_argument("--namespace", default=None, help="profile namespace on multi-user Kubeflow")
    parser.add_argument("--token-env", default="KFP_TOKEN", help=TOKEN_HELP)
    parser.add_argument("--compiled-dir", type=Path, default=Path("compiled"), help="where `kfp-mlops compile` wrote the pipelines (default: %(default)s)")


def _parser(prog: str, description: str, pipeline_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, allow_abbrev=False, epilog="The API token comes from the environment variable named by --token-env (never a flag: flags land in shell history)."
    )
    parser.add_argument("pipeline", help=pipeline_help)
    _common_flags(parser)
    return parser


def resolve_package(pipeline: str, compiled_dir: Path) -> Path:
    """A pipeline name (looked up in ``compiled_dir``) or the path of a compiled YAML."""
    given = Path(pipeline)
    if given.suffix in (".yaml", ".yml") or os.sep in pipeline:
        if not given.is_file():
            raise DataError(f"no compiled pipeline file {given}", fix="give the path of a YAML written by `kfp-mlops compile`, or a pipeline name such as training")
        return given
    package = compiled_dir / f"{pipeline}.yaml"
    if not package.is_file():
        raise KfpMlopsError(f"no compiled pipeline {package}", fix=f"run `kfp-mlops compile --output-dir {compiled_dir}` (with your cluster options) first")
    return package


def _connect(args: argparse.Namespace) -> Any:
    from kfp_mlops.pipelines.kfp_remote import connect

    if args.token_env != "KFP_TOKEN" and not os.environ.get(args.token_env):
        raise DataError(
            f"--token-env names the environment variable {args.token_env!r}, which is not set", fix="export the token in an environment variable and give its name (a token itself is never a flag)"
        )
    return connect(args.host, namespace=args.namespace, token=os.environ.get(args.token_env) or None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # kfp.Client prints its own "... details: <link>" lines; ours say the same, redacted.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _guarded(prog: str, command: Callable[[], int]) -> int:
    """Run ``command``: every failure is one line on stderr with its exit code, never a traceback."""
    try:
        with redacted_console():
            return command()
    except KfpMlopsError as exc:
        print(f"{prog}: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - what the client library raised, shown without a traceback
        print(f"{prog}: the KFP API call failed: {type(exc).__name__}: {redact_text(str(exc))[:500]}", file=sys.stderr)
        return 3


def _run_link(host: str, run_id: str) -> str:
    return f"{redact_text(host.rstrip('/'))}/#/runs/details/{run_id}"


def cmd_submit(argv: Sequence[str]) -> int:
    parser = _parser(
        "kfp-mlops submit", "Run a compiled pipeline on Kubeflow Pipelines; with --wait, follow it step by step.", "name of a compiled pipeline (e.g. training) or the path of a compiled YAML"
    )
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter (repeatable)")
    parser.add_argument("--experiment", default="kfp-mlops", help="experiment to run in (created if missing; default: %(default)s)")
    parser.add_argument("--run-name", default=None, help="run name (default: the pipeline's name and the UTC time)")
    parser.add_argument("--wait", action="store_true", help="follow the run until it ends: exit 0 only when it succeeds")
    parser.add_argument("--timeout-minutes", type=float, default=60.0, help="with --wait: stop waiting after this long (the run goes on; default: %(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="with --wait: how often to ask for the run's state (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.timeout_minutes < 0 or args.poll_seconds < 0:
        parser.error("--timeout-minutes and --poll-seconds must not be negative")

    def run() -> int:
        from kfp_mlops.pipelines.kfp_progress import failure_summary, wait
        from kfp_mlops.pipelines.kfp_remote import check_params, read_spec, submit

        package = resolve_package(args.pipeline, args.compiled_dir)
        params = check_params(package, args.param)  # before any request: a typo sends nothing
        name = read_spec(package)["pipelineInfo"]["name"]
        print(f"submitting {name!r} ({package}) to {redact_text(args.host)}, experiment {args.experiment!r}")
        for key, value in params.items():
            print(f"  {key} = {redact_text(value) if isinstance(value, str) else value!r}")
        client = _connect(args)
        with _quiet():
            run_id = submit(client, package, params=params, experiment=args.experiment, run_name=args.run_name, namespace=args.namespace)
        print(f"run {run_id}: {_run_link(args.host, run_id)}")
        if not args.wait:
            return 0
        print(f"waiting for run {run_id} (at most {args.timeout_minutes:g} min):")
        state = wait(client, run_id, timeout=args.timeout_minutes * 60, poll_seconds=args.poll_seconds, on_progress=lambda line: print(line, flush=True))
        if state == "SUCCEEDED":
            print(f"run {run_id} SUCCEEDED")
            return 0
        print(f"kfp-mlops submit: {failure_summary(client, run_id)}\nIts logs: {_run_link(args.host, run_id)}", file=sys.stderr)
        return 1

    return _guarded("kfp-mlops submit", run)


def cmd_upload(argv: Sequence[str]) -> int:
    parser = _parser(
        "kfp-mlops upload",
        "Upload a compiled pipeline to Kubeflow Pipelines, or a new version of it when one of that name exists.",
        "name of a compiled pipeline (e.g. training) or the path of a compiled YAML",
    )
    parser.add_argument("--name", default=None, help="pipeline name on the cluster (default: the name in the spec)")
    parser.add_argument("--version-name", default=None, help="name of the new version (default: package version, content hash and UTC time)")
    parser.add_argument("--description", default=None, help="description (default: the pipeline's own)")
    args = parser.parse_args(argv)

    def run() -> int:
        from kfp_mlops.pipelines.kfp_remote import api_errors, upload

        package = resolve_package(args.pipeline, args.compiled_dir)
        client = _connect(args)
        with _quiet():
            pipeline_id, version_id = upload(client, package, name=args.name, version_name=args.version_name, description=args.description, namespace=args.namespace)
            with api_errors("read the uploaded version"):
                version = client.get_pipeline_version(pipeline_id, version_id)
        print(f"uploaded {package} to {redact_text(args.host)}: pipeline {pipeline_id}, version {version.display_name!r} ({version_id})")
        print(f"  {redact_text(args.host.rstrip('/'))}/#/pipelines/details/{pipeline_id}/version/{version_id}")
        return 0

    return _guarded("kfp-mlops upload", run)


def cmd_schedule(argv: Sequence[str]) -> int:
    parser = _parser(
        "kfp-mlops schedule",
        "Run a compiled pipeline on a schedule on Kubeflow (a recurring run), e.g. hourly monitoring.",
        "name of a compiled pipeline (e.g. monitoring) or the path of a compiled YAML",
    )
    parser.add_argument("--cron", required=True, help='when to run, 5 cron fields, e.g. "0 * * * *" for hourly')
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter (repeatable)")
    parser.add_argument("--experiment", default="kfp-mlops", help="experiment to run in (created if missing; default: %(default)s)")
    parser.add_argument("--name", default="", help="recurring run name (default: the pipeline's name)")
    args = parser.parse_args(argv)

    def run() -> int:
        from kfp_mlops.pipelines.kfp_remote import api_errors
        from kfp_mlops.pipelines.schedule import kfp_cron, schedule, typed_params

        package = resolve_package(args.pipeline, args.compiled_dir)
        params, cron = typed_params(package, args.param), kfp_cron(args.cron)
        client = _connect(args)
        name = args.name or Path(args.pipeline).stem
        with _quiet(), api_errors(f"schedule {name!r}"):
            created = schedule(client, package, name=name, experiment=args.experiment, cron=cron, params=params, namespace=args.namespace)
        print(f"scheduled {args.pipeline!r} as recurring run {created.recurring_run_id} ({cron}) in experiment {args.experiment!r}")
        return 0

    return _guarded("kfp-mlops schedule", run)
