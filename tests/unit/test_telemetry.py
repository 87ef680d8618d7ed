"""Usage reporting stays off: in the tests (conftest), in the CLI and the model server (telemetry_off), and as each library itself reads it."""

from __future__ import annotations

import os
import subprocess
import sys

from kfp_mlops.components._shared.telemetry import TELEMETRY_OFF


def test_the_tests_run_with_every_switch_off_and_the_libraries_agree():
    assert {k: os.environ.get(k) for k in TELEMETRY_OFF} == TELEMETRY_OFF
    from dvc.analytics import is_enabled
    from mlflow.telemetry.utils import is_telemetry_disabled

    assert is_telemetry_disabled() and not is_enabled()


def test_the_cli_turns_them_off_for_itself_and_every_step_it_starts_but_keeps_a_users_choice():
    clean = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF and k != "CI"}
    probe = (
        "import os, sys; from kfp_mlops.pipelines import cli; sys.argv = ['kfp-mlops', '--help']\ntry:\n    cli.main()\nexcept SystemExit:\n    pass\nprint(repr({k: os.environ.get(k) for k in %r}))"
        % sorted(TELEMETRY_OFF)
    )
    seen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=clean, check=True).stdout.strip().splitlines()[-1]
    assert eval(seen) == TELEMETRY_OFF  # noqa: S307 - our own repr of a dict of strings
    kept = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**clean, "DO_NOT_TRACK": "false"}, check=True).stdout.strip().splitlines()[-1]
    assert eval(kept)["DO_NOT_TRACK"] == "false"  # noqa: S307
