"""Resolve a model reference to local, hash-checked files and load them safely.

References the server takes:

- ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``: a registered version, its files
  checked against the hashes the registry recorded when it was registered;
- ``runs:/RUN_ID/model``: the model a training run logged (its own contract's hashes:
  a run has no registry record);
- a local folder holding ``kfp_mlops_model.json``, or an MLflow model folder holding
  exactly one such folder.

Nothing of the model is imported or run: ``ServingTransform.load`` reads the exported
graph weights-only after the hashes match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components._shared.model_artifact import CONTRACT_FILE, ModelArtifact
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components.register.registry import Registry
from kfp_mlops.components.train.serving import ServingTransform

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[0-9]+))$")
_RUN = re.compile(r"^runs:/(?P<run>[0-9A-Za-z_-]+)/(?P<path>.+)$")
URI_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a local model folder"


class ModelReferenceError(KfpMlopsError):
    """The model reference names nothing that can be served (a user error: exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, and where its verified files are (each worker process reloads them).

    Attributes:
        transform: The loaded serving transform.
        folder: The local model folder (kfp_mlops_model.json, model.pt2, preprocessing.json).
        expected_hashes: The hashes the files were checked against.
        uri: The reference as given (without credentials).
        registered_name: The registered model name ("" when not from the registry).
        version: The registered version ("" when not from the registry).
    """

    transform: ServingTransform
    folder: Path
    expected_hashes: Mapping[str, str] = field(default_factory=dict)
    uri: str = ""
    registered_name: str = ""
    version: str = ""

    @property
    def contract(self) -> ModelArtifact:
        return self.transform.contract

    def reload(self) -> ServingTransform:
        """The same files loaded again, checked against the same hashes (a fresh worker process)."""
        return ServingTransform.load(self.folder, expected_hashes=dict(self.expected_hashes))


def model_folder_in(root: Path, what: str) -> Path:
    """The one kfp-mlops model folder at or under ``root``."""
    if (root / CONTRACT_FILE).is_file():
        return root
    found = sorted(p.parent for p in root.rglob(CONTRACT_FILE))
    if len(found) != 1:
        problem = "holds no kfp-mlops model folder" if not found else f"holds {len(found)} kfp-mlops model folders ({[str(f) for f in found[:3]]})"
        raise ModelReferenceError(f"{what} {problem}", where=str(root), fix="point --model-uri at a model written by kfp-mlops train (a folder with kfp_mlops_model.json)")
    return found[0]


def registered_model_folder(registry: Registry, name: str, version: str, scratch: Path) -> tuple[Path, dict[str, str]]:
    """A registered version's model folder, downloaded under ``scratch``, and the hashes the registry recorded."""
    expected = registry.recorded_hashes(name, version)
    local = registry.download(name, version, scratch)
    return model_folder_in(local, f"models:/{name}/{version}"), expected


def load_registered_version(registry: Registry, name: str, version: str, scratch: Path) -> ServingTransform:
    """A registered version, loaded from its files after they match the hashes the registry recorded.

    The one way register (scoring the champion), the model server and monitor load a
    registered version.
    """
    folder, expected = registered_model_folder(registry, name, version, scratch)
    return ServingTransform.load(folder, expected_hashes=expected)


def resolve_model(uri: str, *, tracking_uri: str, scratch: Path) -> LoadedModel:
    """Resolve ``uri`` (see the module docstring), download what is remote under ``scratch``, and load it."""
    shown = redact_uri(uri)
    registered = _REGISTERED.match(uri)
    if registered:
        if not tracking_uri:
            raise ModelReferenceError(
                f"{shown} names a registered model but no tracking URI is set", fix="pass --tracking-uri (or set MLFLOW_TRACKING_URI) to the MLflow server that holds the registry"
            )
        registry = Registry(tracking_uri)
        name = registered["name"]
        version = registered["version"]
        if registered["alias"]:
            found = registry.alias(name, registered["alias"])
            if found is None:
                raise ModelReferenceError(
                    f"{shown}: model {name!r} has no alias {registered['alias']!r} in the registry at {redact_uri(tracking_uri)}",
                    fix=f"register and promote a version first (kfp-mlops register), or pass models:/{name}/<version>; check the model name and alias",
                )
            version = found.version
        elif registry.version(name, version) is None:
            raise ModelReferenceError(
                f"{shown}: model {name!r} has no version {version} in the registry at {redact_uri(tracking_uri)}", fix="pass a version that exists, or an alias such as models:/NAME@champion"
            )
        folder, expected = registered_model_folder(registry, name, version, scratch)
        transform = ServingTransform.load(folder, expected_hashes=expected)
        return LoadedModel(transform, folder, expected, shown, name, version)
    run = _RUN.match(uri)
    if run:
        folder = _download_run_model(uri, tracking_uri, scratch)
        transform = ServingTransform.load(folder)
        return LoadedModel(transform, folder, dict(transform.contract.files), shown)
    if "://" in uri or uri.startswith(("models:", "runs:")):
        raise ModelReferenceError(f"{shown} is not a model reference the server reads", fix=f"pass {URI_FORMS}")
    root = Path(uri.removeprefix("file://") if uri.startswith("file://") else uri)
    if not root.is_dir():
        raise ModelReferenceError(f"{shown} is neither a model reference nor an existing folder", fix=f"pass {URI_FORMS}")
    folder = model_folder_in(root, "the folder")
    transform = ServingTransform.load(folder)
    return LoadedModel(transform, folder, dict(transform.contract.files), shown)


def _download_run_model(uri: str, tracking_uri: str, scratch: Path) -> Path:
    from kfp_mlops.components._shared import mlflow_adapter

    if not tracking_uri:
        raise ModelReferenceError(f"{redact_uri(uri)} names a run's model but no tracking URI is set", fix="pass --tracking-uri (or set MLFLOW_TRACKING_URI)")
    from mlflow.artifacts import download_artifacts

    try:
        local = Path(download_artifacts(artifact_uri=uri, dst_path=str(scratch), tracking_uri=tracking_uri))
    except Exception as exc:  # noqa: BLE001 - a missing run or artifact, named for the user
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException) and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise ModelReferenceError(
                f"{redact_uri(uri)}: no such run or model in the tracking server at {redact_uri(tracking_uri)}", fix="check the run id (the train step's mlflow_run_id) and the artifact path"
            ) from exc
        raise mlflow_adapter.failure(f"downloading {redact_uri(uri)}", exc) from exc
    return model_folder_in(local, redact_uri(uri))
