"""Great Expectations 1.x expectation suites as validate's reference: read, check, refuse.

A suite JSON (as ``suite.to_json_dict()`` writes it: ``name``, ``expectations`` of
``{type, kwargs, meta, severity, ...}``) is parsed into plain ``Expectation`` objects
that ``gx_checks`` enforces in validate's one streaming pass. Great Expectations
itself is never imported: the data image does not carry it.

Everything wrong with a suite is found here, before any data is read, and reported
in one error: an expectation type or a kwarg we do not enforce is refused by name,
never skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_mlops.components._shared.errors import SchemaError
from kfp_mlops.components.validate.gx_kwargs import SUPPORTED, BadKwarg, parse_kwargs, show
from kfp_mlops.components.validate.schema import DatasetSchema

MAX_FILE_BYTES = 32 * 1024 * 1024
# A contract of thousands of expectations is already hard to review; past this it is a mistake
# (a generated suite gone wrong), and every expectation costs work on every batch.
MAX_EXPECTATIONS = 10_000
MAX_LISTED_PROBLEMS = 40
SEVERITIES = {"critical": "error", "error": "error", "warning": "warning", "info": "info"}
# Written by GX beside kwargs; none of them changes what is checked (severity is read).
EXPECTATION_KEYS = frozenset({"type", "kwargs", "meta", "severity", "id", "notes", "description", "rendered_content"})
SUITE_KEYS = frozenset({"name", "id", "expectations", "meta", "notes"})


@dataclass(frozen=True)
class Expectation:
    """One expectation of a suite, checked and normalized.

    Attributes:
        index: Position in the suite (0-based).
        type: The GX expectation type, e.g. ``expect_column_values_to_be_between``.
        kwargs: Its kwargs that matter here, with GX's defaults filled in.
        severity: error, warning or info (from the expectation's ``meta.severity``, else its
            ``severity``: GX's ``critical`` is error).
    """

    index: int
    type: str
    kwargs: dict[str, Any]
    severity: str

    @property
    def column(self) -> str:
        """The column concerned; for several, joined with commas; empty for the whole table."""
        if "column" in self.kwargs:
            return str(self.kwargs["column"])
        return ",".join(self.kwargs.get("column_list") or [])


@dataclass(frozen=True)
class ExpectationSuite:
    """A parsed suite: its name and expectations in order."""

    name: str
    expectations: tuple[Expectation, ...]


def _severity(raw: dict[str, Any]) -> str:
    meta = raw.get("meta")
    declared = meta.get("severity") if isinstance(meta, dict) and "severity" in meta else raw.get("severity", "critical")
    if not isinstance(declared, str) or declared.strip().lower() not in SEVERITIES:
        raise BadKwarg(f"severity {show(declared)} is not one of critical, warning, info")
    return SEVERITIES[declared.strip().lower()]


def parse_suite(data: Any, where: str = "suite") -> ExpectationSuite:
    """Check a suite JSON object and return its expectations.

    Raises:
        SchemaError: anything we would not enforce exactly as written (every problem listed).
    """
    if not isinstance(data, dict):
        raise SchemaError("an expectation suite must be a JSON object", where=where, fix="pass a suite as GX writes it with suite.to_json_dict()")
    raw_list = data.get("expectations")
    if not isinstance(raw_list, list):
        raise SchemaError("'expectations' must be a list", where=where, fix='write the suite as {"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}')
    if not raw_list:
        raise SchemaError(
            "the suite has no expectations: validating against it would check nothing and pass",
            where=where,
            fix="add expectations (kfp-mlops schema-to-suite writes a suite from validate's schema), or pass no reference to infer a schema from the data",
        )
    if len(raw_list) > MAX_EXPECTATIONS:
        raise SchemaError(
            f"the suite has {len(raw_list):,} expectations; kfp-mlops checks at most {MAX_EXPECTATIONS:,}",
            where=where,
            fix="split it into suites per table or check the generator that wrote it; a suite this large is usually a mistake",
        )
    problems: list[str] = []
    unknown_keys = sorted(set(data) - SUITE_KEYS)
    if unknown_keys:
        problems.append(f"suite: unknown fields {unknown_keys} (a GX 1.x suite has {sorted(SUITE_KEYS)})")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(f"suite: 'name' must be text, got {show(name)}")
    unsupported: dict[str, list[int]] = {}
    expectations = []
    for i, raw in enumerate(raw_list):
        where_i = f"expectation #{i + 1}"
        if isinstance(raw, dict) and "expectation_type" in raw:
            problems.append(f"{where_i}: has 'expectation_type', a Great Expectations 0.x field (1.x calls it 'type'): save the suite again with GX 1.x")
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            problems.append(f"{where_i}: must be an object with a 'type' (text) and 'kwargs', got {show(raw)}")
            continue
        kind = raw["type"]
        if kind not in SUPPORTED:
            unsupported.setdefault(kind[:80], []).append(i + 1)
            continue
        extra = sorted(set(raw) - EXPECTATION_KEYS)
        kwargs = raw.get("kwargs", {})
        try:
            if extra:
                raise BadKwarg(f"unknown fields {extra}")
            if not isinstance(kwargs, dict):
                raise BadKwarg(f"'kwargs' must be an object, got {show(kwargs)}")
            if raw.get("meta") is not None and not isinstance(raw["meta"], dict):
                raise BadKwarg("'meta' must be an object")
            expectations.append(Expectation(index=i, type=kind, kwargs=parse_kwargs(kind, kwargs), severity=_severity(raw)))
        except BadKwarg as exc:
            problems.append(f"{where_i} ({kind}" + (f", column {kwargs.get('column')!r}" if isinstance(kwargs, dict) and isinstance(kwargs.get("column"), str) else "") + f"): {exc}")
    for kind, positions in sorted(unsupported.items()):
        listed = ", ".join(f"#{p}" for p in positions[:5]) + (f" and {len(positions) - 5} more" if len(positions) > 5 else "")
        problems.insert(0, f"unsupported expectation type {kind!r} ({listed})")
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS] + ([f"... and {len(problems) - MAX_LISTED_PROBLEMS} more"] if len(problems) > MAX_LISTED_PROBLEMS else [])
        listing = "\n".join(f"  - {p[:600]}" for p in shown)
        fix = f"remove or rewrite these expectations; check the unsupported ones with Great Expectations in a step of your own. Supported types: {', '.join(sorted(SUPPORTED))}"
        raise SchemaError(f"the expectation suite cannot be enforced as written ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{listing}\n", where=where, fix=fix)
    return ExpectationSuite(name=name or "", expectations=tuple(expectations))


class RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise RepeatedKey(key[:80])
        found[key] = value
    return found


def read_json(path: str | Path) -> Any:
    """A reference JSON file, refused when too big or too deeply nested to be a schema or suite."""
    file = Path(path)
    try:
        with file.open("rb") as source:
            raw = source.read(MAX_FILE_BYTES + 1)  # bounded, whatever the file claims to be
        if len(raw) > MAX_FILE_BYTES:
            raise SchemaError(
                f"the reference is over {MAX_FILE_BYTES // 2**20} MiB; a schema or suite is at most that",
                where=str(path),
                fix="pass the schema or expectation suite JSON, not data",
            )
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_without_repeated_keys)
    except RepeatedKey as exc:
        raise SchemaError(
            f"the reference repeats the key {exc.key!r} in one JSON object; a JSON reader keeps only one of them (Python's the last), so what is checked would depend on the reader",
            where=str(path),
            fix=f"keep one {exc.key!r} in that object",
        ) from None
    except RecursionError:
        raise SchemaError("the reference JSON is nested too deeply to be a schema or suite", where=str(path), fix="pass the schema or expectation suite JSON") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"cannot read the reference ({exc})"[:300], where=str(path), fix="pass a JSON schema written by validate or a GX expectation suite JSON") from exc


def load_reference(path: str | Path) -> DatasetSchema | ExpectationSuite:
    """Our schema or a GX 1.x suite, told apart by shape (``columns`` + ``version``, or ``expectations``)."""
    data = read_json(path)
    where = str(path)
    if isinstance(data, dict) and "expectation_suite_name" in data:
        raise SchemaError(
            "this is a Great Expectations 0.x suite (it has 'expectation_suite_name'); kfp-mlops reads 1.x suites",
            where=where,
            fix="load it with Great Expectations 1.x and save it again (suite.to_json_dict()), which renames the fields",
        )
    if isinstance(data, dict) and "expectations" in data:
        return parse_suite(data, where)
    if isinstance(data, dict) and "columns" in data and "version" not in data and {"rows", "duplicate_keys"} & set(data):
        raise SchemaError(
            "this is validate's statistics output (per-column counts of one dataset), not its schema",
            where=where,
            fix="pass validate's schema output (the 'schema' artifact, a JSON with 'version' and 'columns') or a Great Expectations suite",
        )
    if isinstance(data, dict) and "columns" in data:
        return DatasetSchema.from_dict(data, where)
    if isinstance(data, list) and data and all(isinstance(item, dict) and {"code", "severity"} <= set(item) for item in data[:20]):
        raise SchemaError(
            "this is validate's anomalies output (a list of findings), not a schema or suite",
            where=where,
            fix="pass validate's schema output (the 'schema' artifact) or a Great Expectations suite",
        )
    shape = f"an object with fields {sorted(data)[:10]}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
    raise SchemaError(
        f"the reference is neither a kfp-mlops schema nor a Great Expectations suite (it is {shape})",
        where=where,
        fix='pass the schema artifact written by validate ({"version": 2, "columns": [...]}) or a GX 1.x suite ({"name": ..., "expectations": [...]})',
    )
