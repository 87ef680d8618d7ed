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
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from kfp_mlops.components._shared.errors import DataError

FUNCTIONS = ("count", "sum", "mean", "min", "max", "last")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# ASCII digits only: \d also matches other scripts' digits, which nobody means in a duration.
DURATION = re.compile(r"^([0-9]+)([smhdw])$")
# Every consumer must hold the duration: Python's timedelta, Feast's protobuf Duration, DuckDB
# intervals, and pandas Timedelta (about 292 years); 100 years is far past any useful window.
MAX_DURATION = dt.timedelta(days=36_500)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names Feast uses itself in entity dataframes and retrieval jobs.
RESERVED = frozenset({"event_timestamp", "created", "created_timestamp", "__dummy", "__dummy_id", "entity_timestamp"})
SPEC_ERROR_FIX = "fix the feature spec (see the featurize docs for an example)"


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages about wrong types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def parse_duration(text: str, what: str) -> dt.timedelta:
    """``30d`` -> 30 days; units s, m, h, d, w; at most ``MAX_DURATION``."""
    if not isinstance(text, str):
        raise DataError(f"{what} must be a duration string like 1h, 7d or 4w, not {json_type(text)}", fix=SPEC_ERROR_FIX)
    match = DURATION.match(text.strip())
    if match is None or not match.group(1).lstrip("0"):  # no match, or zero
        raise DataError(f"{what} {text[:40]!r} is not a duration like 1h, 7d or 4w", fix=SPEC_ERROR_FIX)
    digits, unit = match.group(1).lstrip("0"), match.group(2)
    # Compare before building the timedelta: a huge count overflows it (and int() of a
    # number thousands of digits long is itself refused by Python).
    if len(digits) > 15 or int(digits) * UNIT_SECONDS[unit] > MAX_DURATION.total_seconds():
        raise DataError(
            f"{what} {text[:40]!r} is longer than the {MAX_DURATION.days:,}-day limit",
            fix=f"use a duration of at most {MAX_DURATION.days}d",
        )
    return dt.timedelta(**{UNITS[unit]: int(digits)})


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
        """A checked spec from parsed JSON; every wrong type is a ``DataError`` naming the field."""
        if not isinstance(data, dict):
            raise DataError(f"the feature spec must be a JSON object, not {json_type(data)}", fix=SPEC_ERROR_FIX)
        unknown = sorted(str(k) for k in set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise DataError(f"unknown feature spec fields {unknown}", fix=f"allowed: {sorted(cls.__dataclass_fields__)}")
        for required in ("entity", "timestamp", "label"):
            if required not in data:
                raise DataError(f"the feature spec needs '{required}' (a column name)", fix=SPEC_ERROR_FIX)
            _column_name(data[required], f"'{required}'")
        aggregates = []
        for i, raw in enumerate(_list(data, "aggregates")):
            where = f"aggregates[{i}]"
            if not isinstance(raw, dict):
                raise DataError(f"{where} must be an object with 'column', 'functions' and 'windows', not {json_type(raw)}", fix=SPEC_ERROR_FIX)
            if set(raw) != {"column", "functions", "windows"}:
                raise DataError(f"{where} needs exactly 'column', 'functions' and 'windows' (it has {sorted(map(str, raw))})", fix=SPEC_ERROR_FIX)
            column = _column_name(raw["column"], f"{where}.column")
            functions = tuple(_strings(_list(raw, "functions", where), f"{where}.functions"))
            windows = tuple(_strings(_list(raw, "windows", where), f"{where}.windows"))
            aggregates.append(Aggregate(column=column, functions=functions, windows=windows))
        passthrough = tuple(_column_name(v, f"passthrough[{i}]") for i, v in enumerate(_list(data, "passthrough")))
        for optional in ("ttl", "name"):
            if optional in data and not isinstance(data[optional], str):
                raise DataError(f"'{optional}' must be a string, not {json_type(data[optional])}", fix=SPEC_ERROR_FIX)
        spec = cls(
            entity=data["entity"],
            timestamp=data["timestamp"],
            label=data["label"],
            passthrough=passthrough,
            aggregates=tuple(aggregates),
            ttl=data.get("ttl", "30d"),
            name=data.get("name", "features"),
        )
        spec.check()
        return spec

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        if not isinstance(text, str):
            raise DataError(f"the feature spec must be JSON text, not {type(text).__name__}", fix=SPEC_ERROR_FIX)
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise DataError(f"the feature spec is not valid JSON ({exc})", fix=SPEC_ERROR_FIX) from None
        except RecursionError:  # json's C decoder recurses once per nesting level
            raise DataError("the feature spec is nested far too deeply to be a feature spec (it has at most 3 levels)", fix=SPEC_ERROR_FIX) from None
        return cls.from_dict(data)

    def check(self) -> None:
        """Refuse specs that would leak the label, collide, or not compute."""
        self._check_types()
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise DataError(f"spec name {self.name!r} must be letters, digits and underscores", fix=SPEC_ERROR_FIX)
        self.ttl_delta  # noqa: B018 - parses, raising on a bad duration
        if self.entity == self.timestamp:
            raise DataError(f"the entity and the timestamp are the same column {self.entity!r}", fix="name the entity key column and the event time column")
        if self.label in (self.entity, self.timestamp):
            role = "entity key" if self.label == self.entity else "event timestamp"
            raise DataError(
                f"the label column {self.label!r} is also the {role} column: a model would be trained to predict its own key or time",
                fix="pass the column that holds the outcome to predict as label_column",
            )
        for role, column in (("entity", self.entity), ("label", self.label)):
            if column == "event_timestamp":  # Feast takes a column of this name as the event time
                raise DataError(
                    f"the {role} column is named 'event_timestamp', which Feast reads as the event time of every label row",
                    fix="rename that column in ingest (or make it the timestamp column, if it holds the event time)",
                )
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
        dupes = sorted(n for n, k in Counter(names).items() if k > 1)
        if dupes:
            raise DataError(f"feature names collide: {dupes}", fix="declare each column/function/window once")
        by_lower: dict[str, list[str]] = {}
        for n in names:
            by_lower.setdefault(n.lower(), []).append(n)
        case_twins = [group for group in by_lower.values() if len(group) > 1]
        if case_twins:
            raise DataError(f"feature names {case_twins[:5]} differ only in letter case, which DuckDB treats as the same name", fix="rename those columns in ingest")
        key_names = {k.lower() for k in (*keys, self.label)}
        clashes = sorted((set(names) & (RESERVED | keys | {self.label})) | {n for n in names if n.lower() in RESERVED | key_names})
        if clashes:
            raise DataError(f"feature names {clashes} collide with Feast's reserved names or the key/label columns", fix="rename those columns in ingest")
        invalid = [n for n in names if not NAME.match(n)]
        if invalid:
            raise DataError(f"feature names {invalid[:5]} are not identifiers Feast accepts", fix="rename those columns (letters, digits, underscores)")

    def _check_types(self) -> None:
        # Specs built in Python skip from_dict's checks; a wrong type must not reach a regex or SQL.
        for what, value in (("entity", self.entity), ("timestamp", self.timestamp), ("label", self.label)):
            _column_name(value, f"'{what}'")
        if not isinstance(self.passthrough, (tuple, list)):
            raise DataError(f"'passthrough' must be a list of column names, not {json_type(self.passthrough)}", fix=SPEC_ERROR_FIX)
        for i, column in enumerate(self.passthrough):
            _column_name(column, f"passthrough[{i}]")
        if not isinstance(self.aggregates, (tuple, list)):
            raise DataError(f"'aggregates' must be a list, not {json_type(self.aggregates)}", fix=SPEC_ERROR_FIX)
        for i, agg in enumerate(self.aggregates):
            if not isinstance(agg, Aggregate):
                raise DataError(f"aggregates[{i}] must be an Aggregate, not {json_type(agg)}", fix=SPEC_ERROR_FIX)
            _column_name(agg.column, f"aggregates[{i}].column")
            for key in ("functions", "windows"):
                values = getattr(agg, key)
                if not isinstance(values, (tuple, list)):
                    raise DataError(f"aggregates[{i}].{key} must be a list, not {json_type(values)}", fix=SPEC_ERROR_FIX)
                _strings(list(values), f"aggregates[{i}].{key}")


def _list(data: dict[str, Any], key: str, where: str = "") -> list[Any]:
    """``data[key]`` as a list (absent: empty); a string, object, number or null is refused."""
    if key not in data:
        return []
    value = data[key]
    field_name = f"{where}.{key}" if where else f"'{key}'"
    if isinstance(value, list):
        return value
    hint = f' (write ["{value}"] for one)' if isinstance(value, str) else ""
    raise DataError(f"{field_name} must be a list, not {json_type(value)}{hint}", fix=SPEC_ERROR_FIX)


def _strings(values: list[Any], field_name: str) -> list[str]:
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(f"{field_name}[{i}] must be a string, not {json_type(value)}", fix=SPEC_ERROR_FIX)
    return values


def _column_name(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "an empty string" if isinstance(value, str) else json_type(value)
        raise DataError(f"the feature spec needs {field_name} to be a column name (a non-empty string), not {got}", fix=SPEC_ERROR_FIX)
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of repeated keys silently: a pasted spec would lose a section.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"the feature spec repeats the key {key!r}", fix="give each field once")
        out[key] = value
    return out


DEFAULT_WINDOWS = ("1h", "1d", "7d", "30d")


def default_spec(
    columns: dict[str, str],
    *,
    entity: str,
    timestamp: str,
    label: str,
    name: str = "features",
    span: dt.timedelta | None = None,
    one_row_per_entity: bool = False,
) -> FeatureSpec:
    """A sensible spec for a dataset: every other column passes through, plus the entity's event
    count and the mean of every numeric column over the longest two or three of 1h/1d/7d/30d
    that fit in the data's time ``span``. When every entity has ``one_row_per_entity`` (a plain
    table), columns only pass through: a window mean would copy each value and a count be 1."""
    numeric = ("int", "uint", "float", "double", "decimal")
    fitting = [w for w in DEFAULT_WINDOWS if span is None or parse_duration(w, "window") <= span]
    count_windows, mean_windows = tuple(fitting[-3:]), tuple(fitting[-2:])
    others = [c for c in columns if c not in (entity, timestamp, label) and not columns[c].startswith(("timestamp", "date"))]
    aggregates: tuple[Aggregate, ...] = ()
    if count_windows and not one_row_per_entity:
        aggregates += (Aggregate(column=entity, functions=("count",), windows=count_windows),)
        aggregates += tuple(Aggregate(column=c, functions=("mean",), windows=mean_windows) for c in others if columns[c].startswith(numeric))
    spec = FeatureSpec(entity=entity, timestamp=timestamp, label=label, passthrough=tuple(others), aggregates=aggregates, name=name)
    spec.check()
    return spec
