"""Compile every component and pipeline to IR YAML under compiled/.

After KFP compiles, the kfp-kubernetes document is made portable: fields that
repeat a default (``optional: false``) or duplicate ``secretName`` as a constant
``secretNameParameter`` are dropped, because the protos of KFP backends 2.0-2.4
reject them as unknown fields and newer backends fall back to ``secretName``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from kfp_mlops.pipelines import catalog

SECRET_LISTS = ("secretAsEnv", "secretAsVolume")


def compile_all(output_dir: str | Path) -> list[Path]:
    """Write ``components/<name>.yaml`` and ``<pipeline>.yaml`` into ``output_dir``; return the paths."""
    out = Path(output_dir)
    (out / "components").mkdir(parents=True, exist_ok=True)
    targets = [(catalog.component(n), out / "components" / f"{n}.yaml") for n in sorted(catalog.COMPONENTS)]
    targets += [(catalog.pipeline(n), out / f"{n}.yaml") for n in sorted(catalog.PIPELINES)]
    for func, path in targets:
        compile_one(func, path)
    return [path for _, path in targets]


def compile_one(func: Any, path: Path) -> None:
    """Compile one component or pipeline to ``path`` with a portable platform document."""
    from kfp import compiler

    compiler.Compiler().compile(func, str(path))
    text = path.read_text(encoding="utf-8")
    head, sep, platform = text.partition("\n---\n")
    if sep:
        portable = make_platform_portable(yaml.safe_load(platform))
        path.write_text(head + sep + yaml.safe_dump(portable, sort_keys=True), encoding="utf-8")


def make_platform_portable(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` without the kfp-kubernetes fields older backends reject when they carry nothing new."""
    doc = copy.deepcopy(doc)
    executors = doc.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    for config in executors.values():
        for key in SECRET_LISTS:
            for entry in config.get(key, []):
                if entry.get("optional") is False:
                    del entry["optional"]
                constant = entry.get("secretNameParameter", {}).get("runtimeValue", {}).get("constant")
                if constant is not None and constant == entry.get("secretName"):
                    del entry["secretNameParameter"]
    return doc


def configure(*, image_registry: str = "", s3_secret: str = "", gcs_secret: str = "", feature_store_secret: str = "", mlflow_secret: str = "") -> None:
    """Set compile-time options; must run before components and pipelines are imported."""
    from kfp_mlops.components._shared.images import REGISTRY_ENV
    from kfp_mlops.pipelines.platform import FEATURE_STORE_SECRET_ENV, GCS_SECRET_ENV, MLFLOW_SECRET_ENV, S3_SECRET_ENV

    settings = ((REGISTRY_ENV, image_registry), (S3_SECRET_ENV, s3_secret), (GCS_SECRET_ENV, gcs_secret), (FEATURE_STORE_SECRET_ENV, feature_store_secret), (MLFLOW_SECRET_ENV, mlflow_secret))
    for env, value in settings:
        if value:
            os.environ[env] = value
