"""The checked-in compiled YAML equals a fresh compile (sdkVersion aside)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "kfp-mlops compile   # then commit compiled/"


def _normalized(path: Path) -> list:
    docs = list(yaml.safe_load_all(path.read_text()))
    docs[0].pop("sdkVersion", None)
    return docs


def test_compiled_yaml_is_up_to_date(tmp_path):
    # A fresh interpreter, so no compile-time option set by another test leaks in.
    subprocess.run(["python", "-c", f"from kfp_mlops.pipelines.compile import compile_all; compile_all({str(tmp_path)!r})"], check=True, cwd=REPO)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml"))
    checked_in = sorted(p.relative_to(REPO / "compiled") for p in (REPO / "compiled").rglob("*.yaml"))
    assert fresh == checked_in, f"compiled/ has {checked_in}, a compile writes {fresh}. Regenerate: {REGENERATE}"
    stale = [str(rel) for rel in fresh if _normalized(tmp_path / rel) != _normalized(REPO / "compiled" / rel)]
    assert not stale, f"compiled/{stale} differ from a fresh compile. Regenerate: {REGENERATE}"


def test_docstrings_reach_the_spec():
    spec = yaml.safe_load((REPO / "compiled" / "components" / "ingest.yaml").read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert "Local path, file://" in params["source_uri"]["description"]
    assert all(p.get("description") for p in params.values()), "every ingest parameter is documented"
