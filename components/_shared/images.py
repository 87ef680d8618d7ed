"""Component images: one version constant for the tag, registry overridable at compile time.

Roles keep each step's image to what it imports (see the Dockerfile's targets):
``data`` (ingest, validate: kfp, pyarrow, storage clients) has no torch, Feast,
MLflow or Evidently; ``features`` (featurize) adds Feast, DuckDB and the Redis and
PostgreSQL clients; ``train`` has torch (CPU or CUDA wheel, a build argument) and MLflow; ``serve`` (the model
server, deploy, the A/B gate and traffic simulator, the monitor) adds KServe's model server and Feast (feature
lookup, and DuckDB for the gate's log reads) to ``train``. A private registry is a
compile option (``kfp-mlops compile --image-registry``, ``ClusterOptions.image_registry``):
the compiler rewrites the images of the default registry in the compiled specs.
"""

from __future__ import annotations

from kfp_mlops._version import __version__

DEFAULT_REGISTRY = "ghcr.io/kfp-mlops"
ROLES = ("data", "features", "train", "serve")


def image(role: str, registry: str = "") -> str:
    """The pinned image of a role, e.g. ``ghcr.io/kfp-mlops/kfp-mlops-data:0.1.0``."""
    if role not in ROLES:
        raise ValueError(f"unknown image role {role!r}; known: {ROLES}")
    registry = registry.strip().rstrip("/") or DEFAULT_REGISTRY
    return f"{registry}/kfp-mlops-{role}:{__version__}"
