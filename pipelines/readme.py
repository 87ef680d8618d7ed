"""The README's generated sections: the components catalogue, the pipeline parameters and the compile options.

Read from the compiled specs (``compiled/``) and the options object, so the README says
what the YAML a user uploads takes. ``python -m kfp_mlops.pipelines.readme`` rewrites the
sections between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``; a test
fails when they are stale.
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from kfp_mlops.pipelines import catalog

REPO = Path(__file__).resolve().parents[1]
TYPES = {"STRING": "str", "NUMBER_INTEGER": "int", "NUMBER_DOUBLE": "float", "BOOLEAN": "bool", "LIST": "list", "STRUCT": "dict"}
OPTION_HELP = {
    "image_registry": "registry of the `kfp-mlops-<role>` images (private mirror); every step's image and the model servers'",
    "image_pull_secret": "Secret every step and every model server pulls its image with (KFP backend 2.1+)",
    "mlflow_tracking_uri": "default of every pipeline's `mlflow_tracking_uri` parameter (a tracking server a pod reaches)",
    "mlflow_secret": "Secret with `MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD` (train, register, deploy, monitor)",
    "s3_secret": "Secret with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` for `s3://` sources (ingest)",
    "gcs_secret": "Secret holding a service-account `key.json` for `gs://` sources (ingest)",
    "feature_store_secret": "Secret with `PGPASSWORD` (SQL registry) and `REDIS_PASSWORD` (online store) for featurize",
    "gpu_count": "`nvidia.com/gpu` per training pod",
    "gpu_type": "GPU model for training: value of the nodes' `nvidia.com/gpu.product` label, e.g. `NVIDIA-L4`",
    "checkpoint_pvc": "PVC mounted into training: epoch checkpoints a retried step resumes from (a folder per run)",
    "training": "`node_selector` (labels) and `tolerations` of the training pods (tolerations: KFP backend 2.1+)",
    "serving": "`node_selector` and `tolerations` of the model-server pods that deploy creates (KServe, Seldon v1)",
}


def _spec(path: Path) -> dict:
    return next(iter(yaml.safe_load_all(path.read_text(encoding="utf-8"))))


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _default(spec: dict) -> str:
    if "defaultValue" not in spec:
        return "(required)"
    value = spec["defaultValue"]
    if spec.get("parameterType") == "NUMBER_INTEGER" and isinstance(value, float):
        value = int(value)
    return f"`{value!r}`" if value != "" else "`''`"


def components_catalogue(compiled: Path) -> str:
    lines = ["| component | purpose | inputs | outputs | image |", "| --- | --- | --- | --- | --- |"]
    for name in sorted(catalog.COMPONENTS):
        spec = _spec(compiled / "components" / f"{name}.yaml")
        component = next(iter(spec["components"].values()))
        executor = next(iter(spec["deploymentSpec"]["executors"].values()))
        inputs = component.get("inputDefinitions", {})
        outputs = component.get("outputDefinitions", {})
        purpose = (catalog.component(name).description or "").split("\n")[0].strip()
        listed_in = [f"**{n}**" for n in inputs.get("artifacts", {})] + [f"{n}" for n in inputs.get("parameters", {})]
        listed_out = [f"**{n}**" for n in outputs.get("artifacts", {})] + [f"{n}" for n in outputs.get("parameters", {})]
        image = executor["container"]["image"].rsplit("/", 1)[-1]
        lines.append(f"| `{name}` | {_cell(purpose)} | {', '.join(listed_in)} | {', '.join(listed_out)} | `{image}` |")
    return "\n".join(lines) + '\n\nArtifacts in **bold**, parameters plain; `kfp.components.load_component_from_file("compiled/components/NAME.yaml")` loads one.'


def pipeline_parameters(compiled: Path) -> str:
    parts = []
    for name in catalog.PIPELINES:
        spec = _spec(compiled / f"{name}.yaml")
        params = spec["root"].get("inputDefinitions", {}).get("parameters", {})
        rows = [f"| `{p}` | {TYPES.get(d.get('parameterType'), d.get('parameterType'))} | {_default(d)} | {_cell(d.get('description', ''))} |" for p, d in sorted(params.items())]
        description = spec["pipelineInfo"].get("description", "") or catalog.pipeline(name).description
        parts.append(
            f"<details><summary><code>{name}</code> ({len(rows)} parameters): {_cell(description)}</summary>\n\n"
            "| parameter | type | default | meaning |\n| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n</details>"
        )
    return "\n\n".join(parts)


def compile_options() -> str:
    from kfp_mlops.pipelines.options import ClusterOptions

    lines = ["| option (`--flag` of `kfp-mlops compile`, or key of `--options FILE`) | meaning |", "| --- | --- |"]
    for option in fields(ClusterOptions):
        flag = "--" + option.name.replace("_", "-")
        flags = f"`{flag}-node-selector`, `{flag}-tolerations`" if option.name in ("training", "serving") else f"`{flag}`"
        lines.append(f"| `{option.name}` ({flags}) | {OPTION_HELP[option.name]} |")
    return "\n".join(lines)


SECTIONS = {"components": components_catalogue, "parameters": pipeline_parameters, "options": lambda compiled: compile_options()}


def render(readme: str, compiled: Path) -> str:
    """``readme`` with every generated section replaced by what the specs say now."""
    for name, build in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end generated: {name} -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README has no section <!-- generated: {name} --> ... <!-- end generated: {name} -->")
        readme = pattern.sub(lambda m, text=build(compiled): m.group(1) + text + "\n" + m.group(2), readme)
    return readme


def main() -> None:
    readme = REPO / "README.md"
    updated = render(readme.read_text(encoding="utf-8"), REPO / "compiled")
    readme.write_text(updated, encoding="utf-8")
    print(f"updated the generated sections of {readme}", file=sys.stderr)


if __name__ == "__main__":
    main()
