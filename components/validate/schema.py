"""The dataset schema: what validate infers, users edit, and later runs are checked against.

Stored as JSON with a version number. A schema inferred from training data and
passed to validate on serving data catches training/serving skew.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from kfp_mlops.components._shared.errors import SchemaError

SCHEMA_VERSION = 2
# Version 1 had no histograms: such a schema still loads, and is checked by ranges and domains only.
READABLE_VERSIONS = (1, 2)
KINDS = ("integer", "float", "boolean", "categorical", "text", "timestamp", "other")


def kind_of(t: pa.DataType) -> str:
    """The logical kind of an Arrow type."""
    if pa.types.is_dictionary(t):
        return kind_of(t.value_type)
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "categorical"
    if pa.types.is_null(t):
        return "other"
    return "other"


@dataclass
class ColumnSchema:
    """One column's contract.

    Attributes:
        name: Column name.
        type: Arrow type name as found (``int64``, ``string``, ``timestamp[us, tz=UTC]``).
        kind: integer, float, boolean, categorical, text, timestamp or other.
        nullable: Whether nulls are allowed.
        min: Smallest allowed value (numbers only; None for no bound).
        max: Largest allowed value (numbers only; None for no bound).
        domain: Allowed values of a categorical column (None: any value).
        histogram: The distribution seen when the schema was inferred: ``{"edges", "shares"}``
            (numbers: quantile bin edges, one more share than edges) or ``{"values", "shares"}``
            (categories); None to compare ranges and domains only.
        skew_threshold: The largest distribution distance accepted for this column
            (None: validate's skew_threshold parameter).
    """

    name: str
    type: str
    kind: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    domain: list[str] | None = None
    histogram: dict[str, Any] | None = None
    skew_threshold: float | None = None


@dataclass
class DatasetSchema:
    """A dataset's contract.

    Attributes:
        columns: Column contracts in order.
        key_columns: Columns whose combination is unique per row.
        label_column: The label, if any.
        label_classes: Allowed label values of a classification label (as text).
        version: Schema format version.
    """

    columns: list[ColumnSchema]
    key_columns: list[str] = field(default_factory=list)
    label_column: str | None = None
    label_classes: list[str] | None = None
    version: int = SCHEMA_VERSION

    def column(self, name: str) -> ColumnSchema | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        from kfp_mlops.components._shared.atomic import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "schema") -> "DatasetSchema":
        if not isinstance(data, dict):
            raise SchemaError("a schema must be a JSON object", where=where, fix="pass a schema written by validate")
        version = data.get("version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise SchemaError(f"unknown schema version {version!r} (this release reads {', '.join(map(str, READABLE_VERSIONS))})", where=where, fix="re-infer the schema with this release")
        raw_columns = data.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise SchemaError("'columns' must be a non-empty list", where=where, fix="pass a schema written by validate")
        columns = []
        allowed = set(ColumnSchema.__dataclass_fields__)
        for i, raw in enumerate(raw_columns):
            if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
                raise SchemaError(f"column #{i} needs at least 'name' and 'type'", where=where, fix="fix that entry")
            unknown = set(raw) - allowed
            if unknown:
                raise SchemaError(f"column {raw['name']!r} has unknown fields {sorted(unknown)}", where=where, fix=f"allowed fields: {sorted(allowed)}")
            kind = raw.get("kind", "other")
            if kind not in KINDS:
                raise SchemaError(f"column {raw['name']!r} has unknown kind {kind!r}", where=where, fix=f"use one of {KINDS}")
            _check_column_fields(raw, i, where)
            columns.append(ColumnSchema(**raw))
        names = [c.name for c in columns]
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)
        if dupes:
            raise SchemaError(f"columns {dupes} appear more than once", where=where, fix="keep one entry per column")
        for field_name, allowed_types in (("key_columns", (list,)), ("label_classes", (list,)), ("label_column", (str,))):
            value = data.get(field_name)
            if value is not None and (not isinstance(value, allowed_types) or (isinstance(value, list) and not all(isinstance(v, str) for v in value))):
                shape = "a string" if allowed_types == (str,) else "a list of strings"
                raise SchemaError(f"{field_name!r} must be {shape} or null, got {value!r}"[:300], where=where, fix=f"write {field_name} as {shape}")
        for key in data.get("key_columns") or []:
            if key not in names:
                raise SchemaError(f"key column {key!r} is not among the columns", where=where, fix="add the column or drop the key")
        return cls(
            columns=columns,
            key_columns=list(data.get("key_columns") or []),
            label_column=data.get("label_column"),
            label_classes=data.get("label_classes"),
            version=version,
        )

    @classmethod
    def load(cls, path: str | Path) -> "DatasetSchema":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SchemaError(f"cannot read the schema ({exc})", where=str(path), fix="pass a JSON schema written by validate") from exc
        return cls.from_dict(data, where=str(path))


def _check_column_fields(raw: dict[str, Any], index: int, where: str) -> None:
    """Field types of one hand-edited column entry: a wrong one would fail mid-validation instead."""
    label = f"column {raw['name']!r}" if isinstance(raw["name"], str) else f"column #{index}"

    def fail(problem: str, fix: str) -> None:
        raise SchemaError(f"{label}: {problem}"[:300], where=where, fix=fix)

    if not isinstance(raw["name"], str) or not isinstance(raw["type"], str):
        fail("'name' and 'type' must be strings", 'write e.g. {"name": "age", "type": "int64", "kind": "integer"}')
    if not isinstance(raw.get("nullable", True), bool):
        fail(f"'nullable' must be true or false, got {raw['nullable']!r}", "write true or false, without quotes")
    for bound in ("min", "max"):
        value = raw.get(bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            fail(f"{bound!r} must be a number or null, got {value!r}", f"write {bound} as a number without quotes, or null for no bound")
    domain = raw.get("domain")
    if domain is not None and (not isinstance(domain, list) or not all(isinstance(v, str) for v in domain)):
        fail(f"'domain' must be a list of strings or null, got {domain!r}", 'write the allowed values as strings, e.g. ["US", "DE"] or ["0", "1"]')
    if raw.get("histogram") is not None:
        _check_histogram(raw["histogram"], raw["name"], where)
    _check_threshold(raw.get("skew_threshold"), raw["name"], where)


def _check_histogram(raw: Any, column: str, where: str) -> None:
    """A hand-edited ``histogram`` entry must have the shape ``compare`` reads."""

    def fail(problem: str) -> None:
        raise SchemaError(
            f"column {column!r}: 'histogram' {problem}"[:300],
            where=where,
            fix='write {"edges": [numbers], "shares": [one more number]} or {"values": [strings], "shares": [numbers]}, or null to compare ranges only',
        )

    if not isinstance(raw, dict) or "shares" not in raw or len(set(raw) & {"edges", "values"}) != 1 or set(raw) - {"edges", "values", "shares"}:
        fail("must have 'shares' and one of 'edges' or 'values'")
    shares = raw["shares"]
    if not isinstance(shares, list) or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s >= 0 for s in shares):
        fail("'shares' must be a list of non-negative numbers")
    if "edges" in raw:
        edges = raw["edges"]
        if not isinstance(edges, list) or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in edges):
            fail("'edges' must be a list of numbers")
        if any(b <= a for a, b in zip(edges, edges[1:])):
            fail("'edges' must increase")
        if len(shares) != len(edges) + 1:
            fail(f"needs {len(edges) + 1} shares for {len(edges)} edges, has {len(shares)}")
    else:
        values = raw["values"]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            fail("'values' must be a list of strings")
        if len(shares) != len(values):
            fail(f"needs one share per value ({len(values)}), has {len(shares)}")


def _check_threshold(raw: Any, column: str, where: str) -> None:
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= 1):
        raise SchemaError(f"column {column!r}: 'skew_threshold' must be a number in (0, 1] or null, got {raw!r}"[:300], where=where, fix="write e.g. 0.2, or null for the default")
