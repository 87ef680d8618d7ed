"""What every step's interpreter pays before and after its work: Feast's import and the shutdown.

Each case runs in a fresh interpreter, as kfp.local and the cluster run a step.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


INSTRUMENTED = "'check_argument_types_internal' in feast.feature_view.FeatureView.__init__.__code__.co_names"


def test_feast_is_imported_without_typeguard_instrumentation_or_torch():
    proc = _python(f"""
        import sys, typeguard
        checked = typeguard.typechecked
        from kfp_mlops.components.featurize.feast_import import import_feast
        feast = import_feast()
        import feast.feature_view
        from feast.torch_wrapper import TORCH_AVAILABLE
        print({INSTRUMENTED}, TORCH_AVAILABLE, "torch" in sys.modules, typeguard.typechecked is checked)
        import torch  # hidden during Feast's import only
        print(torch.tensor([1.0]).sum().item(), import_feast() is feast)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["False", "False", "False", "True", "1.0", "True"]


def test_feast_is_instrumented_as_usual_without_it_and_torch_already_imported_is_kept():
    plain = _python(f"import feast, feast.feature_view; print({INSTRUMENTED})")
    assert plain.stdout.split() == ["True"], "the check above would see instrumentation"
    proc = _python("""
        import torch
        from kfp_mlops.components.featurize.feast_import import import_feast
        import_feast()
        from feast.torch_wrapper import TORCH_AVAILABLE
        print(TORCH_AVAILABLE)
    """)
    assert proc.stdout.split() == ["True"], proc.stderr[-3000:]


@pytest.mark.parametrize(("body", "code"), [("pass", 0), ("raise DataError('bad rows', fix='fix them')", 2), ("raise RuntimeError('a bug')", 1)])
def test_a_step_skips_the_final_collections_and_keeps_its_exit_code(body, code):
    proc = _python(f"""
        import atexit, gc
        atexit.register(lambda: print("collecting at exit:", gc.isenabled(), flush=True))  # runs after the step's handler
        from kfp_mlops.components._shared.entry import exit_on_error
        from kfp_mlops.components._shared.errors import DataError
        with exit_on_error("probe"):
            with exit_on_error("probe"):  # registered once however often a body enters it
                {body}
    """)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines() == ["collecting at exit: False"]
