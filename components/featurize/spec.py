"""The declarative feature spec: what to compute per entity over time.

Example (JSON, as passed to the featurize component)::

    {
      "name": "customer",
      "entity": "entity_id",
      "timestamp": "event_timestamp",
      "label": "label",
      "passthrough": ["amount", "country", "plan"],
      "aggregates": [
        {"column": "amount", "functions": ["count", "sum", "mean", "max"], "windows": ["1d", "7d", "30d"]},
        {"column": "score_a", "functions": ["mean", "last"], "windows": ["7d"]}
      ],
      "ttl": "30d"
    }

Each aggregate is computed at every event of an entity over the window ending
at (and including) that event: ``amount__mean_7d`` at time t is the mean of the
entity's amounts in (t - 7 days, t]. ``last`` is the latest non-null value in the
window. ``ttl`` is how old a feature row may be when joined to a label.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from kfp_mlops.components._shared.errors import DataError

FUNCTIONS = ("count", "sum", "mean", "min", "max", "last")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION = re.compile(r"^(\d+)([smhdw])$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names Feast uses itself in entity dataframes and retrieval jobs.
RESERVED = frozenset({"event_timestamp", "created", "created_timestamp", "__dummy", "__dummy_id", "entity_timestamp"})
SPEC_ERROR_FIX = "fix the feature spec (see the featurize docs for an example)"


def parse_duration(text: str, what: str) -> dt.timedelta:
    """``30d`` -> 30 days; units s, m, h, d, w."""
    match = DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise DataError(f"{what} {text!r} is not a duration like 1h, 7d or 4w", fix=SPEC_ERROR_FIX)
    return dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class Aggregate:
    """Window aggregates of one column.

    Attributes:
        column: Source column (numeric for sum/mean/min/max; any type for count/last).
        functions: Some of count, sum, mean, min, max, last.
        windows: Durations such as 1h, 1d, 7d, 30d.
    """

    column: str
    functions: tuple[str, ...]
    windows: tuple[str, ...]

    def feature_names(self) -> list[tuple[str, str, str]]:
        """(feature name, function, window) for each output feature."""
        return [(f"{self.column}__{fn}_{w}", fn, w) for w in self.windows for fn in self.functions]


@dataclass(frozen=True)
class FeatureSpec:
    """What featurize computes and registers.

    Attributes:
        name: Prefix of the Feast objects (feature view ``<name>_features``, service ``<name>_training``).
        entity: Entity key column.
        timestamp: Event timestamp column.
        label: Label column (never a feature).
        passthrough: Columns served as features as they are at each event.
        aggregates: Per-entity window aggregates.
        ttl: Longest age of a feature row joined to a label.
    """

    entity: str
    timestamp: str
    label: str
    passthrough: tuple[str, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    ttl: str = "30d"
    name: str = "features"

    @property
    def ttl_delta(self) -> dt.timedelta:
        return parse_duration(self.ttl, "ttl")

    def feature_names(self) -> list[str]:
        return list(self.passthrough) + [n for agg in self.aggregates for n, _, _ in agg.feature_names()]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passthrough"] = list(self.passthrough)
        out["aggregates"] = [{"column": a.column, "functions": list(a.functions), "windows": list(a.windows)} for a in self.aggregates]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> "FeatureSpec":
        if not isinstance(data, dict):
            raise DataError("the feature spec must be a JSON object", fix=SPEC_ERROR_FIX)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise DataError(f"unknown feature spec fields {sorted(unknown)}", fix=f"allowed: {sorted(cls.__dataclass_fields__)}")
        for required in ("entity", "timestamp", "label"):
            if not isinstance(data.get(required), str) or not data[required]:
                raise DataError(f"the feature spec needs '{required}' (a column name)", fix=SPEC_ERROR_FIX)
        aggregates = []
        for i, raw in enumerate(data.get("aggregates") or []):
            if not isinstance(raw, dict) or set(raw) != {"column", "functions", "windows"}:
                raise DataError(f"aggregate #{i} needs exactly 'column', 'functions' and 'windows'", fix=SPEC_ERROR_FIX)
            aggregates.append(Aggregate(column=raw["column"], functions=tuple(raw["functions"]), windows=tuple(raw["windows"])))
        spec = cls(
            entity=data["entity"],
            timestamp=data["timestamp"],
            label=data["label"],
            passthrough=tuple(data.get("passthrough") or ()),
            aggregates=tuple(aggregates),
            ttl=data.get("ttl", "30d"),
            name=data.get("name", "features"),
        )
        spec.check()
        return spec

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DataError(f"the feature spec is not valid JSON ({exc})", fix=SPEC_ERROR_FIX) from exc

    def check(self) -> None:
        """Refuse specs that would leak the label, collide, or not compute."""
        if not NAME.match(self.name):
            raise DataError(f"spec name {self.name!r} must be letters, digits and underscores", fix=SPEC_ERROR_FIX)
        self.ttl_delta  # noqa: B018 - parses, raising on a bad duration
        if not self.passthrough and not self.aggregates:
            raise DataError("the feature spec declares no features", fix="add passthrough columns or aggregates")
        keys = {self.entity, self.timestamp}
        for column in (*self.passthrough, *(a.column for a in self.aggregates)):
            if column == self.label:
                raise DataError(
                    f"the label {self.label!r} is declared as a feature: the model would see the answer (leakage)",
                    fix="remove it from passthrough and aggregates",
                )
        for column in self.passthrough:
            if column in keys:
                raise DataError(f"{column!r} is the entity or timestamp column; it cannot also be a passthrough feature", fix=SPEC_ERROR_FIX)
        for agg in self.aggregates:
            bad = [fn for fn in agg.functions if fn not in FUNCTIONS]
            if bad or not agg.functions:
                raise DataError(f"aggregate of {agg.column!r}: unknown functions {bad}", fix=f"use some of {FUNCTIONS}")
            if not agg.windows:
                raise DataError(f"aggregate of {agg.column!r} has no windows", fix="add windows such as 1d, 7d")
            for window in agg.windows:
                parse_duration(window, f"window of {agg.column!r}")
        names = self.feature_names()
        seen: set[str] = set()
        dupes = sorted({n for n in names if n in seen or seen.add(n)})
        if dupes:
            raise DataError(f"feature names collide: {dupes}", fix="declare each column/function/window once")
        clashes = sorted((set(names) & (RESERVED | keys | {self.label})) | {n for n in names if n.lower() in RESERVED})
        if clashes:
            raise DataError(f"feature names {clashes} collide with Feast's reserved names or the key/label columns", fix="rename those columns in ingest")
        invalid = [n for n in names if not NAME.match(n)]
        if invalid:
            raise DataError(f"feature names {invalid[:5]} are not identifiers Feast accepts", fix="rename those columns (letters, digits, underscores)")


DEFAULT_WINDOWS = ("1h", "1d", "7d", "30d")


def default_spec(
    columns: dict[str, str], *, entity: str, timestamp: str, label: str, name: str = "features", span: dt.timedelta | None = None
) -> FeatureSpec:
    """A sensible spec for a dataset: every other column passes through, plus the entity's event
    count and the mean of every numeric column over the longest two or three of 1h/1d/7d/30d
    that fit in the data's time ``span``."""
    numeric = ("int", "uint", "float", "double", "decimal")
    fitting = [w for w in DEFAULT_WINDOWS if span is None or parse_duration(w, "window") <= span]
    count_windows, mean_windows = tuple(fitting[-3:]), tuple(fitting[-2:])
    others = [c for c in columns if c not in (entity, timestamp, label) and not columns[c].startswith(("timestamp", "date"))]
    aggregates: tuple[Aggregate, ...] = ()
    if count_windows:
        aggregates += (Aggregate(column=entity, functions=("count",), windows=count_windows),)
        aggregates += tuple(Aggregate(column=c, functions=("mean",), windows=mean_windows) for c in others if columns[c].startswith(numeric))
    spec = FeatureSpec(entity=entity, timestamp=timestamp, label=label, passthrough=tuple(others), aggregates=aggregates, name=name)
    spec.check()
    return spec
