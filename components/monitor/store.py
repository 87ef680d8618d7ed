"""Where a model's reference profile lives: in its MLflow run, its sha256 on the registered version.

The registry's tag is the trusted copy of the hash (whoever can write run artifacts cannot
change version tags through the artifact store), so a swapped or edited profile is refused.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.monitor.reference import ARTIFACT_DIR, FILE_NAME, MAX_BYTES, SHA_TAG, ModelProfile, sha256
from kfp_mlops.components.register.registry import Registry, Version


def artifact_dir(version: Version) -> str:
    """Per registered version: one run registered under two names (or twice) keeps two profiles."""
    return f"{ARTIFACT_DIR}/{hashlib.sha256(version.name.encode()).hexdigest()[:16]}-v{version.version}"


def has_profile(registry: Registry, version: Version) -> bool:
    return bool(registry.version_tags(version.name, version.version).get(SHA_TAG))


def save_profile(registry: Registry, version: Version, profile: ModelProfile) -> str:
    """Upload ``profile`` into the version's run and record its hash on the version; returns the hash."""
    raw = profile.to_json()
    with tempfile.TemporaryDirectory(prefix="profile-") as scratch:
        path = Path(scratch, FILE_NAME)
        path.write_bytes(raw)
        registry.log_run_file(version.run_id, path, artifact_dir(version))
    digest = sha256(raw)
    registry.set_version_tag(version.name, version.version, SHA_TAG, digest)
    return digest


def resolve_version(registry: Registry, name: str, version_or_alias: str) -> Version:
    """A version by number, or by alias (champion, challenger, ...)."""
    found = registry.version(name, version_or_alias) if version_or_alias.isdigit() else registry.alias(name, version_or_alias)
    if found is None:
        raise DataError(f"model {name!r} has no version or alias {version_or_alias!r}", fix="register the model first (the training pipeline does), or name an existing version")
    return found


def load_profile(registry: Registry, version: Version) -> ModelProfile:
    """The version's profile, checked against the hash the registry recorded."""
    where = f"{version.name} version {version.version}"
    how = f"create it with `kfp-mlops profile --model-name {version.name} --version {version.version} --data <train split> --test <test split>` (models registered by kfp-mlops register get one automatically)"
    expected = registry.version_tags(version.name, version.version).get(SHA_TAG, "")
    if not expected:
        raise DataError("the model version has no reference profile", where=where, fix=how)
    with tempfile.TemporaryDirectory(prefix="profile-") as scratch:
        path = registry.download_run_file(version.run_id, f"{artifact_dir(version)}/{FILE_NAME}", Path(scratch))
        if path is None:
            raise DataError("the model version's reference profile is missing from its run", where=where, fix=how)
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
            raise DataError(f"the stored reference profile is not a file of at most {MAX_BYTES >> 20} MiB: it was changed or replaced", where=where, fix=how)
        raw = path.read_bytes()
    if sha256(raw) != expected:
        raise DataError("the reference profile does not match the hash recorded when the model was registered: it was changed or replaced", where=where, fix=how)
    return ModelProfile.from_json(raw, where)
