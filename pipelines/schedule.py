"""A compiled pipeline as a recurring run on Kubeflow Pipelines (v2beta1 API, through kfp.Client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kfp_mlops.components._shared.errors import DataError

PARAM_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool}
KIND_WORDS = {"STRING": "text", "NUMBER_INTEGER": "a whole number", "NUMBER_DOUBLE": "a number", "BOOLEAN": "true or false", "LIST": "a JSON list", "STRUCT": "a JSON object"}


def kind_words(kind: str) -> str:
    """A spec's parameter type as a user reads it."""
    return KIND_WORDS.get(kind, kind.lower().replace("_", " "))


def pipeline_inputs(package: Path) -> dict[str, str]:
    """The compiled pipeline's root parameters and their types."""
    try:
        spec = next(iter(yaml.safe_load_all(package.read_text(encoding="utf-8"))))
        declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as exc:
        raise DataError(f"not a compiled pipeline ({exc})", where=str(package), fix="compile it first: kfp-mlops compile") from exc
    return {name: d["parameterType"] for name, d in declared.items()}


def typed_params(package: Path, pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs checked against the pipeline's parameters and converted to their types."""
    declared = pipeline_inputs(package)
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if name not in declared:
            raise DataError(f"unknown pipeline parameter {name!r}", fix=f"use name=value with one of: {', '.join(sorted(declared))}")
        if not sep:
            raise DataError(f"parameter {name!r} has no value", fix=f"write it as name=value, e.g. --param {name}=... (an empty value: {name}=)")
        kind = declared[name]
        try:
            if kind == "BOOLEAN":
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                params[name] = text.lower() == "true"
            else:
                params[name] = PARAM_TYPES.get(kind, str)(text)
        except ValueError as exc:
            raise DataError(f"parameter {name} must be {kind_words(kind)}, not {text!r}", fix="give a value of that type") from exc
    return params


def kfp_cron(expression: str) -> str:
    """KFP's cron has a seconds field first: a 5-field expression gets ``0`` seconds."""
    fields = expression.split()
    if len(fields) == 5:
        return "0 " + " ".join(fields)
    if len(fields) == 6:
        return " ".join(fields)
    raise DataError(f"cron {expression!r} has {len(fields)} fields", fix='use 5 fields (minute hour day month weekday), e.g. "0 * * * *" for hourly')


def schedule(client: Any, package: Path, *, name: str, experiment: str, cron: str, params: dict[str, Any], namespace: str | None = None) -> Any:
    """Create (or reuse) the experiment and the recurring run; returns the API's recurring run."""
    try:
        found = client.get_experiment(experiment_name=experiment, namespace=namespace)
    except ValueError:  # kfp.Client's way of saying there is none of that name
        found = client.create_experiment(experiment, namespace=namespace)
    return client.create_recurring_run(found.experiment_id, name, cron_expression=cron, params=params, pipeline_package_path=str(package), max_concurrency=1, no_catchup=True)
