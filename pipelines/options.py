"""Cluster settings of a compiled pipeline: one explicit options object, given to the compiler.

Everything a cluster user must set is either a pipeline parameter (chosen per run) or
one of these (fixed when compiling: where images come from, which Secrets and volumes
a step mounts, where training and serving pods land). ``kfp-mlops compile`` builds a
:class:`ClusterOptions` from its flags or an options file (``--options cluster.yaml``);
in Python, ``compile_all("compiled", ClusterOptions(mlflow_secret="mlflow"))``.
"""

from __future__ import annotations

import contextlib
import json
import re
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from kfp_mlops.components._shared.errors import DataError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
REGISTRY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*(:[0-9]+)?(/[a-z0-9]+([._\-/][a-z0-9]+)*)?$")
TOLERATION_KEYS = {"key", "operator", "value", "effect", "toleration_seconds"}
OPERATORS, EFFECTS = ("Equal", "Exists"), ("NoSchedule", "PreferNoSchedule", "NoExecute")
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set by NVIDIA GPU feature discovery on every GPU node
CHECKPOINT_MOUNT = "/mnt/kfp-mlops-checkpoints"


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None


@dataclass(frozen=True)
class Placement:
    """Where a kind of pod may run: node labels it needs and taints it tolerates."""

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    def node_selector_json(self) -> str:
        return json.dumps(dict(self.node_selector), sort_keys=True) if self.node_selector else ""

    def tolerations_json(self) -> str:
        return json.dumps([{k: v for k, v in asdict(t).items() if v not in ("", None)} for t in self.tolerations]) if self.tolerations else ""


@dataclass(frozen=True)
class ClusterOptions:
    """Compile-time settings for a Kubeflow cluster (all empty: the portable defaults, no Secrets, public images)."""

    image_registry: str = ""  # registry/prefix of the kfp-mlops-<role> images, e.g. registry.example.com/ml
    image_pull_secret: str = ""  # Secret every step's pod (and the model servers) pull images with
    mlflow_tracking_uri: str = ""  # default of the pipelines' mlflow_tracking_uri parameter
    mlflow_secret: str = ""  # MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
    s3_secret: str = ""  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    gcs_secret: str = ""  # key.json of a service account
    feature_store_secret: str = ""  # PGPASSWORD / REDIS_PASSWORD
    gpu_count: int = 0  # nvidia.com/gpu per training pod
    gpu_type: str = ""  # value of the node label nvidia.com/gpu.product, e.g. NVIDIA-A100-SXM4-80GB
    checkpoint_pvc: str = ""  # PVC mounted into training for resumable checkpoints
    training: Placement = field(default_factory=Placement)
    serving: Placement = field(default_factory=Placement)

    def key(self) -> str:
        """A stable text form (pipelines built with equal options are built once)."""
        return json.dumps(asdict(self), sort_keys=True)

    def image(self, role: str) -> str:
        from kfp_mlops.components._shared.images import image

        return image(role, registry=self.image_registry)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, where: str = "cluster options") -> "ClusterOptions":
        """Parse and check options given as a mapping (an options file, or the CLI's flags)."""
        if not isinstance(data, dict):
            raise DataError("cluster options must be a mapping of option: value", where=where, fix=f"use the keys {', '.join(f.name for f in fields(cls))}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"unknown cluster option(s) {', '.join(unknown)}", where=where, fix=f"use the keys {', '.join(sorted(known))}")
        values = {k: v for k, v in data.items() if k not in ("training", "serving")}
        for name, value in values.items():
            expected = int if name == "gpu_count" else str
            if value is None:
                values[name] = 0 if expected is int else ""
            elif not isinstance(value, expected) or isinstance(value, bool):
                raise DataError(f"cluster option {name} must be {'a whole number' if expected is int else 'text'}, not {value!r}", where=where, fix="give a value of that type")
        options = cls(**values, training=_placement(data.get("training"), f"{where}: training"), serving=_placement(data.get("serving"), f"{where}: serving"))
        options.check(where)
        return options

    @classmethod
    def from_file(cls, path: Path) -> "ClusterOptions":
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"cannot read the cluster options ({exc})", where=str(path), fix="give a YAML or JSON file of option: value") from exc
        return cls.from_mapping(data, where=str(path))

    def check(self, where: str = "cluster options") -> None:
        """Refuse what Kubernetes or a registry would refuse later, with the option's name."""
        for name in ("image_pull_secret", "mlflow_secret", "s3_secret", "gcs_secret", "feature_store_secret", "checkpoint_pvc"):
            value = getattr(self, name)
            if value and not DNS_LABEL.match(value):
                raise DataError(f"{name} {value!r} is not a Kubernetes object name", where=where, fix="use lower-case letters, digits and '-' (a DNS-1123 name)")
        if self.image_registry and not REGISTRY.match(self.image_registry.rstrip("/")):
            raise DataError(f"image_registry {self.image_registry!r} is not a registry path", where=where, fix="e.g. registry.example.com/ml or ghcr.io/my-org (no tag, no scheme)")
        if self.mlflow_tracking_uri and not re.match(r"^(https?|databricks|postgresql(\+\w+)?|mysql(\+\w+)?)://", self.mlflow_tracking_uri):
            raise DataError(
                f"mlflow_tracking_uri {self.mlflow_tracking_uri!r} is not a tracking server a pod can reach",
                where=where,
                fix="e.g. http://mlflow.kubeflow:5000 (a file or sqlite store inside a pod is lost with it)",
            )
        if self.gpu_count < 0:
            raise DataError(f"gpu_count is {self.gpu_count}", where=where, fix="give 0 (no GPU) or more")
        if self.gpu_type and not LABEL_VALUE.match(self.gpu_type):
            raise DataError(f"gpu_type {self.gpu_type!r} is not a node label value", where=where, fix=f"use the value of the {GPU_PRODUCT_LABEL} label of your GPU nodes, e.g. NVIDIA-L4")
        if self.gpu_type and not self.gpu_count:
            raise DataError("gpu_type is set but gpu_count is 0", where=where, fix="set gpu_count to the GPUs per training pod")


def _placement(data: Any, where: str) -> Placement:
    if data is None:
        return Placement()
    if isinstance(data, Placement):
        return data
    if not isinstance(data, dict) or set(data) - {"node_selector", "tolerations"}:
        raise DataError(
            "a placement is a mapping with node_selector and/or tolerations",
            where=where,
            fix='e.g. {"node_selector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}',
        )
    selector = data.get("node_selector") or {}
    if not isinstance(selector, dict):
        raise DataError("node_selector must map label keys to values", where=where, fix='e.g. {"pool": "gpu"}')
    for key, value in selector.items():
        if not isinstance(key, str) or not LABEL_KEY.match(key) or not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise DataError(
                f"node_selector {key!r}: {value!r} is not a Kubernetes label", where=where, fix="keys like pool or example.com/pool, values of letters, digits, '-', '_' and '.' (at most 63)"
            )
    tolerations = data.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise DataError("tolerations must be a list", where=where, fix='e.g. [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]')
    return Placement(tuple(sorted(selector.items())), tuple(_toleration(t, where) for t in tolerations))


def _toleration(data: Any, where: str) -> Toleration:
    fix = 'e.g. {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}'
    if not isinstance(data, dict) or set(data) - TOLERATION_KEYS:
        raise DataError(f"toleration {data!r} has unknown fields", where=where, fix=f"use {', '.join(sorted(TOLERATION_KEYS))}; {fix}")
    toleration = Toleration(**{k: v for k, v in data.items() if v is not None})
    if toleration.operator not in OPERATORS or (toleration.effect and toleration.effect not in EFFECTS):
        raise DataError(f"toleration {data!r}: operator must be one of {OPERATORS}, effect one of {EFFECTS}", where=where, fix=fix)
    if toleration.operator == "Exists" and toleration.value:
        raise DataError(f"toleration {data!r}: operator Exists takes no value", where=where, fix=fix)
    if toleration.key and not LABEL_KEY.match(toleration.key):
        raise DataError(f"toleration key {toleration.key!r} is not a taint key", where=where, fix=fix)
    if toleration.toleration_seconds is not None and (not isinstance(toleration.toleration_seconds, int) or toleration.effect != "NoExecute"):
        raise DataError(f"toleration {data!r}: toleration_seconds is a whole number and only for effect NoExecute", where=where, fix=fix)
    return toleration


_ACTIVE: ContextVar[ClusterOptions] = ContextVar("kfp_mlops_cluster_options", default=ClusterOptions())


def active() -> ClusterOptions:
    """The options the pipeline being built right now was asked for."""
    return _ACTIVE.get()


@contextlib.contextmanager
def building_with(options: ClusterOptions) -> Iterator[None]:
    """Pipelines defined (or rebuilt) inside see ``options`` through :func:`active`."""
    token = _ACTIVE.set(options)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
