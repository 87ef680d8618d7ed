"""Give an already registered version its reference profile (versions registered before profiles existed, or elsewhere).

The version's own files are downloaded and checked against the hashes the registry
recorded, then it scores the test split exactly as register would have.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.monitor.reference import build_profile
from kfp_mlops.components.monitor.store import has_profile, resolve_version, save_profile
from kfp_mlops.components.register.evaluate import score
from kfp_mlops.components.register.registry import Registry


def profile_registered_version(registry: Registry, name: str, version_or_alias: str, *, reference_path: Path, test_path: Path, replace: bool = False) -> tuple[str, str]:
    """Build and store the profile of ``name`` at ``version_or_alias``; returns (version, profile sha256).

    A version that has a profile keeps it unless ``replace``: register made it from the exact training data.
    """
    import pyarrow.parquet as pq

    from kfp_mlops.components.serve.model_source import load_registered_version

    version = resolve_version(registry, name, version_or_alias)
    if has_profile(registry, version) and not replace:
        raise DataError(
            "the version already has a reference profile", where=f"{name} version {version.version}", fix="pass --replace to overwrite it (monitoring compares with the new one from then on)"
        )
    for path, what in ((reference_path, "training data"), (test_path, "test split")):
        if not path.exists():
            raise DataError(f"the {what} does not exist", where=str(path), fix="pass the featurize step's train and test outputs of the run that trained this version")
    with tempfile.TemporaryDirectory(prefix="profile-model-") as scratch:
        transform = load_registered_version(registry, name, version.version, Path(scratch))
        try:
            table = pq.read_table(str(test_path))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the test split as Parquet ({exc})", where=str(test_path), fix="pass the featurize step's test output") from exc
        scored = score(transform, table, str(test_path))
    profile = build_profile(transform.contract, reference_path=reference_path, test_y=scored.y, test_predictions=scored.predictions, test_path=test_path)
    return version.version, save_profile(registry, version, profile)
