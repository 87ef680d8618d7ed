"""Run a pipeline on this machine with kfp.local, then list where every output is."""

from __future__ import annotations

import os
import shutil
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


HTML_STARTS = (b"<!doctype html", b"<html")


def list_outputs(run_dir: Path) -> list[Path]:
    """Every output file of a run, by task; HTML reports under a name a browser opens as a page.

    KFP names an output file after the output (``report``), with no extension, so a
    browser shows it as text. A ``.html`` hard link beside it is listed instead; the
    artifact itself stays where KFP's metadata points.
    """
    listed = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if path.suffix == ".html" and path.with_suffix("").is_file():
            continue  # the link made by an earlier listing
        listed.append(_browsable(path) if _is_html(path) else path)
    return listed


def _is_html(path: Path) -> bool:
    if path.suffix.lower() in (".html", ".htm"):
        return False
    with path.open("rb") as f:
        return f.read(64).lstrip().lower().startswith(HTML_STARTS)


def _browsable(path: Path) -> Path:
    page = path.with_name(path.name + ".html")
    if not page.exists():
        try:
            os.link(path, page)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(path, page)
    return page
