"""Run a pipeline on this machine with kfp.local, then list where every output is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run_locally(pipeline: Any, arguments: dict[str, Any], pipeline_root: str | Path) -> Path:
    """Run ``pipeline`` with ``arguments`` through ``SubprocessRunner(use_venv=False)``; return its run folder."""
    from kfp import local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = {p for p in root.iterdir() if p.is_dir()}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    started = time.perf_counter()
    pipeline(**arguments)
    print(f"\npipeline finished in {time.perf_counter() - started:.1f}s")
    new = sorted((p for p in root.iterdir() if p.is_dir() and p not in before), key=lambda p: p.stat().st_mtime)
    return new[-1] if new else root


def list_outputs(run_dir: Path) -> list[Path]:
    """Every output file of a run, by task."""
    return sorted(p for p in run_dir.rglob("*") if p.is_file())
