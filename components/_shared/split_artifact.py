"""The contract of a featurize split (train, validation, test) as the steps after it read it.

Featurize writes it into each split's metadata; train reads it from there. It carries
what train must not decide again on its own rows: the keys that are not features and
the task validate resolved on the whole dataset (a time split's training rows alone
can make a count label look like a few classes). Carried by the artifact rather than
as separate task outputs, it reaches a train step inside a ParallelFor unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from kfp_mlops.components._shared.task import TASKS


@dataclass(frozen=True)
class SplitInfo:
    """Attributes:
    entity_column: The entity key (not a feature).
    timestamp_column: The event time key (not a feature).
    label_column: The label.
    task: binary, multiclass or regression as resolved upstream; empty when not resolved.
    fingerprint: Content fingerprint of the dataset the split came from.
    """

    entity_column: str = ""
    timestamp_column: str = ""
    label_column: str = ""
    task: str = ""
    fingerprint: str = ""

    def to_metadata(self) -> dict[str, str]:
        return {
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
        return cls(**text)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for k in (self.entity_column, self.timestamp_column) if k)
