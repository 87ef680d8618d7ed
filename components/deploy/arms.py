"""Which registered versions serve, at which traffic weights: parsed, checked, resolved.

An arm is named by a registry alias (``champion``, ``challenger``) or a version
number; the deployment always pins the resolved version (``models:/NAME/VERSION``),
so moving an alias later never changes what is running without a new deploy.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from kfp_mlops.components._shared.errors import KfpMlopsError

ARM_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_ARMS_FIX = "pass arms as alias=weight pairs that sum to 100, e.g. champion=90,challenger=10 (a version number also works: 7=50,8=50)"


class DeployInputError(KfpMlopsError):
    """The deployment request itself is wrong: weights, names, aliases, targets."""


@dataclass(frozen=True)
class ArmRequest:
    """One arm as asked for: a registry alias or a version, and its traffic share in percent."""

    reference: str
    weight: int

    @property
    def is_version(self) -> bool:
        return self.reference.isdigit()

    @property
    def name(self) -> str:
        """The arm's name in URLs, labels and logs: the alias, or v<version>."""
        return f"v{self.reference}" if self.is_version else self.reference


@dataclass(frozen=True)
class ResolvedArm:
    """An arm pinned to a registered version."""

    name: str
    reference: str
    version: str
    weight: int
    model_name: str
    source: str = ""  # where the registry keeps the version's files

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


def parse_arms(text: str) -> list[ArmRequest]:
    """``champion=90,challenger=10`` -> arms; every mistake is named before anything is read or started."""
    arms: list[ArmRequest] = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        reference, sep, weight_text = part.partition("=")
        reference, weight_text = reference.strip(), weight_text.strip()
        if not sep or not reference:
            raise DeployInputError(f"arm {part!r} is not alias=weight", fix=_ARMS_FIX)
        try:
            weight = int(weight_text)
        except ValueError:
            raise DeployInputError(f"the weight of arm {reference!r} is {weight_text!r}, not a whole percent", fix=_ARMS_FIX) from None
        if not 0 <= weight <= 100:
            raise DeployInputError(f"the weight of arm {reference!r} is {weight}; weights are percents from 0 to 100", fix=_ARMS_FIX)
        arm = ArmRequest(reference, weight)
        if not reference.isdigit() and not ARM_NAME.match(reference):
            raise DeployInputError(f"arm {reference!r} is not a usable alias (lower-case letters, digits and '-', at most 20, starting with a letter)", fix=_ARMS_FIX)
        if any(a.name == arm.name for a in arms):
            raise DeployInputError(f"arm {reference!r} is given twice", fix=_ARMS_FIX)
        arms.append(arm)
    if not arms:
        raise DeployInputError("no arms given", fix=_ARMS_FIX)
    total = sum(a.weight for a in arms)
    if total != 100:
        raise DeployInputError(f"the arm weights sum to {total}, not 100 ({text!r})", fix=_ARMS_FIX)
    return arms


def resolve_arms(registry, model_name: str, arms: list[ArmRequest]) -> list[ResolvedArm]:
    """Pin each alias to the version it names now; an alias or version that does not exist is an error naming it."""
    resolved = []
    for arm in arms:
        if arm.is_version:
            found = registry.version(model_name, arm.reference)
            if found is None:
                raise DeployInputError(
                    f"models:/{model_name}/{arm.reference} does not exist",
                    fix=f"list the versions of {model_name!r} in the MLflow UI and pass one that exists",
                )
        else:
            found = registry.alias(model_name, arm.reference)
            if found is None:
                raise DeployInputError(
                    f"models:/{model_name}@{arm.reference} does not exist (no version of {model_name!r} has the alias {arm.reference!r})",
                    fix=f"register a model as {model_name!r} first (kfp-mlops run training), or set the alias in the MLflow UI; arms name aliases such as champion and challenger",
                )
        resolved.append(ResolvedArm(arm.name, arm.reference, found.version, arm.weight, model_name, found.source))
    return resolved


def merge_same_version(arms: list[ResolvedArm]) -> tuple[list[ResolvedArm], list[str]]:
    """Arms pinned to one version become one arm: the first named keeps its name and takes the others' weights.

    Returns the arms (in the order first named) and one note per arm merged away, e.g. after a
    first training run, when the new version is both @champion and @challenger.
    """
    by_version: dict[str, ResolvedArm] = {}
    notes = []
    for arm in arms:
        kept = by_version.get(arm.version)
        if kept is None:
            by_version[arm.version] = arm
            continue
        by_version[arm.version] = dataclasses.replace(kept, weight=kept.weight + arm.weight)
        notes.append(
            f"arms {kept.name!r} and {arm.name!r} both resolve to models:/{arm.model_name}/{arm.version}: served once, as arm {kept.name!r} at {kept.weight + arm.weight}% (merge_same_version)"
        )
    return list(by_version.values()), notes
