"""The README's components catalogue, pipeline parameters and compile options say what the compiled specs say."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfp_mlops.pipelines import catalog
from kfp_mlops.pipelines.readme import SECTIONS, render

REPO = Path(__file__).resolve().parents[2]


def test_generated_sections_are_current():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert render(readme, REPO / "compiled") == readme, "stale: run `python -m kfp_mlops.pipelines.readme` after `kfp-mlops compile`"


def test_every_component_parameter_and_option_is_listed():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in catalog.COMPONENTS:
        assert f"| `{name}` |" in readme, name
    training = catalog.pipeline("training")
    for parameter in training.component_spec.inputs:
        assert f"| `{parameter}` |" in readme, parameter
    for option in ("image_registry", "image_pull_secret", "mlflow_tracking_uri", "gpu_count", "gpu_type", "checkpoint_pvc", "training", "serving"):
        assert f"| `{option}` (" in readme, option


def test_a_missing_section_is_an_error():
    with pytest.raises(ValueError, match="no section"):
        render("# no generated sections", REPO / "compiled")
    assert set(SECTIONS) == {"components", "parameters", "options"}
