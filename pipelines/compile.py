"""Compile every component and pipeline to IR YAML under compiled/.

After KFP compiles, the kfp-kubernetes document is made portable: fields that
repeat a default (``optional: false``) or duplicate ``secretName`` (``constant`` for a PVC) as a
constant ``secretNameParameter`` (``pvcNameParameter``) are dropped, because the protos of KFP backends 2.0-2.4
reject them as unknown fields and newer backends fall back to ``secretName``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from kfp_mlops.components._shared.images import DEFAULT_REGISTRY
from kfp_mlops.pipelines import catalog
from kfp_mlops.pipelines.options import ClusterOptions

SECRET_LISTS = ("secretAsEnv", "secretAsVolume")


def compile_all(output_dir: str | Path, options: ClusterOptions | None = None) -> list[Path]:
    """Write ``components/<name>.yaml`` and ``<pipeline>.yaml`` into ``output_dir`` for a cluster with ``options``; return the paths."""
    options = options or ClusterOptions()
    options.check()
    out = Path(output_dir)
    (out / "components").mkdir(parents=True, exist_ok=True)
    targets = [(catalog.component(n), out / "components" / f"{n}.yaml") for n in sorted(catalog.COMPONENTS)]
    targets += [(catalog.pipeline(n, options), out / f"{n}.yaml") for n in sorted(catalog.PIPELINES)]
    for func, path in targets:
        compile_one(func, path, options)
    return [path for _, path in targets]


def compile_one(func: Any, path: Path, options: ClusterOptions | None = None) -> None:
    """Compile one component or pipeline to ``path`` with the options' images, defaults and pull Secret, and a portable platform document."""
    from google.protobuf import json_format
    from kfp.compiler import pipeline_spec_builder as builder
    from kfp.pipeline_spec import pipeline_spec_pb2

    options = options or ClusterOptions()
    parameters = func.component_spec.inputs or {}
    overrides = {"mlflow_tracking_uri": options.mlflow_tracking_uri} if options.mlflow_tracking_uri and "mlflow_tracking_uri" in parameters else None
    spec = builder.modify_pipeline_spec_with_override(pipeline_spec=func.pipeline_spec, pipeline_name=None, pipeline_parameters=overrides, pipeline_display_name=None)
    spec_dict = json_format.MessageToDict(spec)
    platform_dict = json_format.MessageToDict(func.platform_spec)
    if apply_image_options(spec_dict, options):
        spec = json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec())
    if options.image_pull_secret:
        platform_dict = with_image_pull_secret(platform_dict, spec_dict, options.image_pull_secret)
    platform = json_format.ParseDict(platform_dict, pipeline_spec_pb2.PlatformSpec())
    builder.write_pipeline_spec_to_file(pipeline_spec=spec, pipeline_description=func.description, platform_spec=platform, package_path=str(path))
    text = path.read_text(encoding="utf-8")
    head, sep, platform_text = text.partition("\n---\n")
    if sep:
        portable = make_platform_portable(yaml.safe_load(platform_text))
        path.write_text(head + sep + yaml.safe_dump(portable, sort_keys=True), encoding="utf-8")


def apply_image_options(spec: dict[str, Any], options: ClusterOptions) -> bool:
    """Point every kfp-mlops image at the options' registry; True when something changed."""
    if not options.image_registry:
        return False
    changed = False
    for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
        container = executor.get("container", {})
        if str(container.get("image", "")).startswith(DEFAULT_REGISTRY + "/kfp-mlops-"):
            container["image"] = options.image_registry.rstrip("/") + container["image"][len(DEFAULT_REGISTRY) :]
            changed = True
    return changed


def with_image_pull_secret(platform: dict[str, Any], spec: dict[str, Any], secret: str) -> dict[str, Any]:
    """Every executor of the pipeline pulls its image with ``secret`` (kfp-kubernetes' imagePullSecret)."""
    platform = copy.deepcopy(platform)
    executors = platform.setdefault("platforms", {}).setdefault("kubernetes", {}).setdefault("deploymentSpec", {}).setdefault("executors", {})
    for name in spec.get("deploymentSpec", {}).get("executors", {}):
        pulls = executors.setdefault(name, {}).setdefault("imagePullSecret", [])
        if not any(p.get("secretName") == secret for p in pulls):
            pulls.append({"secretName": secret})
    return platform


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
        for entry in config.get("pvcMount", []):
            constant = entry.get("pvcNameParameter", {}).get("runtimeValue", {}).get("constant")
            if constant is not None and constant == entry.get("constant"):
                del entry["pvcNameParameter"]
    return doc
