"""The component images, built once per session (buildah caches layers under .oci/)."""

from __future__ import annotations

import pytest

from tests.container.launcher import IMAGES, build_image


@pytest.fixture(scope="session")
def image() -> str:
    return build_image(*IMAGES["kfp-mlops-data"])


@pytest.fixture(scope="session")
def features_image() -> str:
    return build_image(*IMAGES["kfp-mlops-features"])


@pytest.fixture(scope="session")
def train_image() -> str:
    return build_image(*IMAGES["kfp-mlops-train"])


@pytest.fixture(scope="session")
def serve_image() -> str:
    return build_image(*IMAGES["kfp-mlops-serve"])
