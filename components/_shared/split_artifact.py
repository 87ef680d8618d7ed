"""The contract of a featurize split (train, validation, test) as the steps after it read it.

Featurize writes it into each split's metadata; train reads it from there. It carries
what train must not decide again on its own rows: the keys that are not features and
the task validate resolved on the whole dataset (a time split's training rows alone
can make a count label look like a few classes). Carried by the artifact rather than
as separate task outputs, it reaches a train step inside a ParallelFor unchanged.

``DataVersion`` names the exact revision of versioned data (DVC) the dataset was read
from; ingest writes it into the dataset's metadata, featurize carries it in each split's,
and train puts it in the MLflow run's tags (``SplitInfo.lineage_tags``), so a model
names the data it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from kfp_mlops.components._shared.task import TASKS


@dataclass(frozen=True)
class DataVersion:
    """Attributes:
    repo: The repository URL, without credentials.
    path: The file's path inside the repository.
    rev: The revision as asked for (tag, branch or commit).
    commit: The git commit that revision resolved to when the data was read.
    md5: The md5 DVC recorded for the file at that commit; empty for a file git tracks itself.
    """

    repo: str
    path: str
    rev: str
    commit: str
    md5: str = ""

    def to_metadata(self) -> dict[str, str]:
        """Flat ``dvc_*`` keys, shown as they are in the Kubeflow dashboard."""
        return {f"dvc_{f.name}": getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "DataVersion | None":
        """Read back; None for data that was not read from a versioned repository."""
        values = {f.name: str(metadata.get(f"dvc_{f.name}") or "") for f in fields(cls)}
        return cls(**values) if values["commit"] else None

    def tags(self) -> dict[str, str]:
        """MLflow run tags; empty values are left out (MLflow shows an empty tag as set)."""
        return {f"dataset.dvc.{f.name}": getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


@dataclass(frozen=True)
class SplitInfo:
    """Attributes:
    entity_column: The entity key (not a feature).
    timestamp_column: The event time key (not a feature).
    label_column: The label.
    task: binary, multiclass or regression as resolved upstream; empty when not resolved.
    fingerprint: Content fingerprint of the dataset the split came from.
    data_version: The revision of versioned data the dataset was read from, if it was.
    """

    entity_column: str = ""
    timestamp_column: str = ""
    label_column: str = ""
    task: str = ""
    fingerprint: str = ""
    data_version: DataVersion | None = None

    def to_metadata(self) -> dict[str, str]:
        version = self.data_version.to_metadata() if self.data_version is not None else {}
        return version | {
            "entity_column": self.entity_column,
            "timestamp_column": self.timestamp_column,
            "label_column": self.label_column,
            "task": self.task if self.task in TASKS else "",
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "SplitInfo":
        """Read back; missing or foreign values become empty (a split from elsewhere has none)."""
        text = {key: str(metadata.get(key) or "") for key in ("entity_column", "timestamp_column", "label_column", "task", "fingerprint")}
        if text["task"] not in TASKS:
            text["task"] = ""
        return cls(**text, data_version=DataVersion.from_metadata(metadata))

    def lineage_tags(self) -> dict[str, str]:
        """The MLflow run tags that name the training data: its fingerprint and, for versioned data, its revision."""
        version = self.data_version.tags() if self.data_version is not None else {}
        return {k: v for k, v in {"dataset.fingerprint": self.fingerprint, **version}.items() if v}

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for k in (self.entity_column, self.timestamp_column) if k)
