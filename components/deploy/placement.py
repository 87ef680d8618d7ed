"""Where the model-server pods run: node selector, tolerations, image pull Secret, GPUs.

The deploy step takes these as strings (KFP parameters); they are parsed and checked here,
with Kubernetes' own rules, before any alias is resolved or anything is applied, so a typo
fails the step at once instead of leaving pods Pending or a request rejected halfway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kfp_mlops.components.deploy.arms import DeployInputError

# Kubernetes apimachinery validation: a label key is [prefix/]name, the prefix a DNS-1123
# subdomain of at most 253, the name at most 63; a label value at most 63, possibly empty.
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
OPERATORS = ("Exists", "Equal")
# "" is Kubernetes' "every effect"; the three named ones are the taint effects.
EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_SELECTOR_FIX = 'pass a JSON object of node label -> value, e.g. {"nvidia.com/gpu.product": "NVIDIA-L4"}; empty for none'
TOLERATIONS_FIX = 'pass a JSON list of tolerations, e.g. [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]; empty for none'


@dataclass(frozen=True)
class Placement:
    """Checked placement of every arm's server pod; empty values set nothing.

    Attributes:
        node_selector: Node label -> value the pod's node must carry.
        tolerations: Kubernetes tolerations, as they go into the pod spec.
        image_pull_secret: Secret (in the deployment's namespace) for pulling the server image.
        gpu_count: ``nvidia.com/gpu`` per server container.
    """

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    image_pull_secret: str = ""
    gpu_count: int = 0

    def fields_set(self) -> list[str]:
        """The names of the settings that place pods, as the deploy step's parameters spell them."""
        given = {"node_selector": self.node_selector, "tolerations": self.tolerations, "image_pull_secret": self.image_pull_secret, "gpu_count": self.gpu_count}
        return [name for name, value in given.items() if value]


def parse_placement(*, node_selector: str = "", tolerations: str = "", image_pull_secret: str = "", gpu_count: int = 0) -> Placement:
    """The deploy step's placement parameters, parsed and checked; the first mistake raises ``DeployInputError``."""
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 0:
        raise DeployInputError(f"gpu_count is {gpu_count!r}, not a whole number of GPUs", fix="pass 0 for CPU-only pods, or the nvidia.com/gpu count each arm's server needs, e.g. 1")
    return Placement(
        node_selector=check_node_selector(_json("node_selector", node_selector, NODE_SELECTOR_FIX, {})),
        tolerations=check_tolerations(_json("tolerations", tolerations, TOLERATIONS_FIX, [])),
        image_pull_secret=check_secret_name(image_pull_secret.strip(), "image_pull_secret"),
        gpu_count=gpu_count,
    )


def _json(name: str, text: str, fix: str, empty: Any) -> Any:
    if not text.strip():
        return empty
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeployInputError(f"{name} is not JSON ({exc.msg} at character {exc.pos}): {text[:80]!r}", fix=fix) from None


def check_node_selector(selector: Any) -> dict[str, str]:
    if not isinstance(selector, dict):
        raise DeployInputError(f"node_selector is a JSON {type(selector).__name__}, not an object of label -> value", fix=NODE_SELECTOR_FIX)
    for key, value in selector.items():
        check_label_key(key, "node_selector")
        if not isinstance(value, str):
            raise DeployInputError(f"node_selector label {key!r} has the value {value!r}; label values are strings", fix=f'quote it: {{"{key}": "{value}"}}')
        check_label_value(value, f"node_selector label {key!r}")
    return dict(selector)


def check_label_key(key: str, where: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_1123_SUBDOMAIN.match(prefix)):
        raise DeployInputError(
            f"{where}: the prefix of label key {key!r} is not a DNS subdomain", fix="write the key as prefix/name with a lower-case DNS prefix, e.g. nvidia.com/gpu.product, or a name alone"
        )
    if len(name) > 63 or not LABEL_NAME.match(name):
        raise DeployInputError(
            f"{where}: label key {key!r} is not a Kubernetes label name",
            fix="use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (after an optional DNS prefix and '/')",
        )
    return key


def check_label_value(value: str, where: str) -> str:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise DeployInputError(
            f"{where}: {value!r} is not a Kubernetes label value",
            fix="use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, as the node's label shows it (kubectl get nodes --show-labels)",
        )
    return value


def check_tolerations(tolerations: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(tolerations, dict):
        raise DeployInputError("tolerations is one JSON object, not a list", fix=f"wrap it in [ ]: {TOLERATIONS_FIX}")
    if not isinstance(tolerations, list):
        raise DeployInputError(f"tolerations is a JSON {type(tolerations).__name__}, not a list of tolerations", fix=TOLERATIONS_FIX)
    return tuple(_check_toleration(t, i) for i, t in enumerate(tolerations))


def _check_toleration(toleration: Any, index: int) -> dict[str, Any]:
    """One toleration as Kubernetes validates it (ValidateTolerations)."""
    where = f"tolerations[{index}]"
    if not isinstance(toleration, dict):
        raise DeployInputError(f"{where} is {toleration!r}, not an object", fix=TOLERATIONS_FIX)
    unknown = sorted(set(toleration) - set(TOLERATION_FIELDS))
    if unknown:
        raise DeployInputError(f"{where} has unknown field(s) {', '.join(unknown)}", fix=f"a toleration has only {', '.join(TOLERATION_FIELDS)} (spelled as in Kubernetes)")
    for name in ("key", "operator", "value", "effect"):
        if name in toleration and not isinstance(toleration[name], str):
            raise DeployInputError(f"{where}.{name} is {toleration[name]!r}, not a string", fix=f'quote it: "{name}": "{toleration[name]}"')
    key, value = toleration.get("key", ""), toleration.get("value", "")
    operator = toleration.get("operator", "Equal")  # Kubernetes' default
    if operator not in OPERATORS:
        raise DeployInputError(f"{where}.operator is {operator!r}", fix="use Exists (any value) or Equal (this value), spelled with a capital letter")
    if key:
        check_label_key(key, f"{where}.key")
    elif operator != "Exists":
        raise DeployInputError(f"{where} has no key, which tolerates every taint, but operator {operator}", fix="set operator to Exists to tolerate everything, or name the taint's key")
    if operator == "Exists" and value:
        raise DeployInputError(f"{where} has operator Exists and value {value!r}; Exists matches any value", fix="drop value, or use operator Equal")
    if operator == "Equal":
        check_label_value(value, f"{where}.value")
    effect = toleration.get("effect", "")
    if effect not in EFFECTS:
        raise DeployInputError(f"{where}.effect is {effect!r}", fix="use NoSchedule, PreferNoSchedule or NoExecute as the taint has it, or leave effect out to match every effect")
    if "tolerationSeconds" in toleration:
        seconds = toleration["tolerationSeconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise DeployInputError(f"{where}.tolerationSeconds is {seconds!r}, not a whole number of seconds", fix="pass seconds as a number >= 0, e.g. 300")
        if effect != "NoExecute":
            raise DeployInputError(
                f"{where} sets tolerationSeconds with effect {effect or '(every effect)'!s}; Kubernetes allows it only with NoExecute", fix='set "effect": "NoExecute", or drop tolerationSeconds'
            )
    return dict(toleration)


def check_secret_name(name: str, where: str) -> str:
    if name and (len(name) > 253 or not DNS_1123_SUBDOMAIN.match(name)):
        raise DeployInputError(
            f"{where} {name!r} is not a Secret name", fix="pass the name of a Secret in the deployment's namespace: lower-case letters, digits, '-' and '.', e.g. regcred (kubectl get secrets)"
        )
    return name
