"""Compile every component and pipeline to IR YAML under compiled/."""

from __future__ import annotations

import os
from pathlib import Path

from kfp_mlops.pipelines import catalog


def compile_all(output_dir: str | Path) -> list[Path]:
    """Write ``components/<name>.yaml`` and ``<pipeline>.yaml`` into ``output_dir``; return the paths."""
    from kfp import compiler

    out = Path(output_dir)
    (out / "components").mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(catalog.COMPONENTS):
        path = out / "components" / f"{name}.yaml"
        compiler.Compiler().compile(catalog.component(name), str(path))
        written.append(path)
    for name in sorted(catalog.PIPELINES):
        path = out / f"{name}.yaml"
        compiler.Compiler().compile(catalog.pipeline(name), str(path))
        written.append(path)
    return written


def set_image_registry(registry: str) -> None:
    """Point the component images at ``registry``; must run before components are imported."""
    from kfp_mlops.components._shared.images import REGISTRY_ENV

    os.environ[REGISTRY_ENV] = registry
