"""Carry out a decision: promote (move @champion under the registry lock, all traffic to the winner)
or roll back (all traffic to the control), on the local splitter or a cluster's entry resource.

A promotion is checked against the registry under its lock: the champion must still be
the version the control arm served, or the experiment compared against a stale champion
and nothing is changed. When the traffic shift fails after the alias moved, the aliases
are put back, so the registry never names a champion that does not serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components.abtest.analysis import AnalysisResult
from kfp_mlops.components.abtest.settings import AnalysisInputError
from kfp_mlops.components.deploy import weights as traffic_weights
from kfp_mlops.components.register.registry import CHAMPION, PREVIOUS


@dataclass(frozen=True)
class TrafficTarget:
    """Where the arms run: local (``state_dir``) or a cluster target with its Kubernetes client."""

    target: str
    deployment: str = ""
    namespace: str = "default"
    state_dir: str = ""
    kube: Any = None

    def shift(self, weights: dict[str, int]) -> None:
        if self.target == "local":
            traffic_weights.shift_local(Path(self.state_dir), weights)
        else:
            from kfp_mlops.components._shared.k8s_adapter import KubeClient

            traffic_weights.shift_cluster(KubeClient(self.kube), self.target, self.namespace, self.deployment, weights)


@dataclass
class Applied:
    action: str  # what was done: promoted, rolled-back, nothing
    weights: dict[str, int] = field(default_factory=dict)  # the weights routed by afterwards
    promoted_version: str = ""
    replaced_version: str = ""
    notes: list[str] = field(default_factory=list)


def apply_decision(result: AnalysisResult, *, registry: Any, model_name: str, traffic: TrafficTarget, design: dict[str, int]) -> Applied:
    """Promote or roll back as ``result.decision`` says; ``design`` are the weights deployed.

    Raises:
        AnalysisInputError: the winner served several versions, failed register's gate, or the champion moved during the experiment.
        DeployError / RegistryError: the traffic shift or the registry failed (aliases restored first).
    """
    decision = result.decision
    control = result.settings.control
    everything_to = lambda arm: {name: (100 if name == arm else 0) for name in design}  # noqa: E731
    if decision.action in ("rollback", "blocked"):
        weights = everything_to(control)
        traffic.shift(weights)
        return Applied("rolled-back", weights, notes=[f"all traffic back to {control!r}" + (" (the split could not be trusted)" if decision.action == "blocked" else "")])
    if decision.action != "promote":
        return Applied("nothing", dict(design), notes=["no decision yet: traffic and aliases unchanged"])
    winner = decision.challenger
    version = _served_version(result, winner)
    control_version = _served_version(result, control)
    weights = everything_to(winner)
    if registry.version_tags(model_name, version).get("blessed") == "false":
        raise AnalysisInputError(
            f"{model_name} version {version} won the experiment but failed register's evaluation gate (tag blessed=false): an unblessed model is never promoted automatically",
            fix="look at both verdicts; to promote it anyway, move @champion in the MLflow UI",
        )
    with registry.lock(model_name):
        champion = registry.alias(model_name, CHAMPION)
        if champion is not None and champion.version != control_version:
            raise AnalysisInputError(
                f"{model_name}@champion is version {champion.version} now, but the control arm served version {control_version}: the experiment compared against a stale champion",
                fix="redeploy champion and challenger and run the experiment again; nothing was changed",
            )
        before = registry.alias(model_name, PREVIOUS)
        replaced = registry.promote_locked(model_name, version)
        try:
            traffic.shift(weights)
        except KfpMlopsError:
            if replaced is not None:
                registry.set_alias(model_name, CHAMPION, replaced)
                if before is not None:
                    registry.set_alias(model_name, PREVIOUS, before.version)
                else:  # there was no @previous: the one promote_locked just set goes too
                    registry.delete_alias(model_name, PREVIOUS)
            raise
    return Applied(
        "promoted", weights, version, replaced or "", [f"{model_name}@champion -> version {version}" + (f" (was {replaced}, now @previous)" if replaced else ""), f"all traffic to {winner!r}"]
    )


def _served_version(result: AnalysisResult, arm: str) -> str:
    data = result.data.arms.get(arm)
    versions = data.versions if data else []
    if len(versions) != 1:
        raise AnalysisInputError(
            f"arm {arm!r} served {len(versions)} model versions in the window ({', '.join(versions) or 'none'}), so which one won is ambiguous",
            fix="analyse a window that starts after the last redeploy (since=...)",
        )
    return versions[0]
