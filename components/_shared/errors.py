"""One exception root for kfp-mlops, one subclass per concern.

Every message says what was wrong, where (file, column, row, URI) and what to do.
The CLI and the component wrappers turn these into a non-zero exit with the
message alone, no traceback noise.
"""

from __future__ import annotations


class KfpMlopsError(Exception):
    """Base of every error kfp-mlops raises on purpose."""

    exit_code = 2

    def __init__(self, problem: str, *, where: str = "", fix: str = "") -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        parts = [problem if not where else f"{where}: {problem}"]
        if fix:
            # On its own line so a user scanning a long log finds the action at once.
            parts.append(f"What to do: {fix}")
        super().__init__("\n".join(parts))


class DataError(KfpMlopsError):
    """The data itself is unusable as given (format, columns, values)."""


class SourceError(KfpMlopsError):
    """A source URI cannot be read (scheme, network, permissions)."""

    # Infrastructure failures get their own exit code so that they can be told
    # apart from bad user data in logs and retry policies.
    exit_code = 3


class SourceNotFoundError(SourceError):
    """The file, object, bucket or URL does not exist: the input names nothing (a typo, the wrong
    bucket), which no retry fixes, so it is bad input (exit code 2)."""

    exit_code = 2


class SourceAccessDeniedError(SourceError):
    """The credentials in the environment are missing or not allowed to read."""


class UnsupportedSourceError(SourceError):
    """The URI scheme or file format is not one kfp-mlops reads."""

    exit_code = 2


class ValidationFailedError(KfpMlopsError):
    """Validation found anomalies at or above the failing severity."""


class SchemaError(KfpMlopsError):
    """A schema artifact is malformed or of an unknown version."""


class FeatureStoreError(KfpMlopsError):
    """The feature store (registry, online or offline store) failed or disagrees with itself."""

    exit_code = 3


class DeployError(KfpMlopsError):
    """The cluster refused a deployment, or it did not become Ready in time (and was rolled back)."""

    # The cluster, not the data: an infrastructure failure, like a failed training job.
    exit_code = 3
