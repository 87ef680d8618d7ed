"""A version register did not bless can be deployed (shadow, manual test), but never into traffic unnoticed."""

from __future__ import annotations

from kfp_mlops.components.deploy.arms import ResolvedArm
from kfp_mlops.components.deploy.core import unblessed_warnings
from kfp_mlops.components.register.registry import Registry


def test_only_unblessed_versions_with_traffic_are_named(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry.client.create_registered_model("m")
    source = str(tmp_path / "model")
    for blessed in ("true", "false", "false"):
        registry.client.create_model_version("m", source, tags={"blessed": blessed})
    registry.client.create_model_version("m", source)  # registered outside kfp-mlops: no verdict to report
    arms = [ResolvedArm("champion", "champion", "1", 80, "m"), ResolvedArm("challenger", "2", "2", 20, "m"), ResolvedArm("shadow", "3", "3", 0, "m"), ResolvedArm("other", "4", "4", 0, "m")]
    warnings = unblessed_warnings(registry, arms)
    assert len(warnings) == 1, warnings
    assert "'challenger'" in warnings[0] and "models:/m/2 at 20%" in warnings[0] and "NOT bless" in warnings[0]
