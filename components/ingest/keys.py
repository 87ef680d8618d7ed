"""Which columns are the entity key and the event time: given, found by their usual name, or generated.

``auto`` (the pipelines' default) takes ``entity_id`` / ``event_timestamp`` when the data
has them and generates the column otherwise; an empty name always generates it; any
other name must exist. A generated entity key gives every row its own ``row_id`` (one row
per entity); a generated event time is the ingestion time, the same for every row, which
is no event time at all: featurize then splits the rows at random. Every choice is
returned as a note for the log, the summary and the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.ingest.temporal import is_temporal

AUTO = "auto"
ROW_ID_COLUMN = "row_id"
INGESTED_AT_COLUMN = "ingested_at"
USUAL_ENTITY = "entity_id"
USUAL_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class KeyColumns:
    """The entity and event-time columns of the output.

    Attributes:
        entity: Entity key column (given, found or ``row_id``).
        timestamp: Event time column (given, found or ``ingested_at``).
        entity_generated: ``row_id`` was added: one entity per row.
        timestamp_generated: ``ingested_at`` was added: the rows have no event time.
        notes: What was chosen and why, one sentence each.
    """

    entity: str
    timestamp: str
    entity_generated: bool
    timestamp_generated: bool
    notes: tuple[str, ...]


def check_names(entity: str, timestamp: str) -> None:
    """Refuse one column named as both keys (before anything is read)."""
    if entity and entity != AUTO and entity == timestamp:
        raise DataError(
            f"{entity!r} is given as both the entity and the timestamp column",
            fix="name the entity key column (--entity-column) and the event time column (--timestamp-column) separately, or pass auto or '' for one of them",
        )


def resolve_keys(schema: pa.Schema, entity: str, timestamp: str, where: str) -> KeyColumns:
    """The key columns for data with ``schema``; every named column that is missing is reported at once."""
    names = schema.names
    missing = [f"{role} column {column!r}" for role, column in (("entity", entity), ("timestamp", timestamp)) if column and column != AUTO and column not in names]
    if missing:
        raise DataError(
            f"{' and '.join(missing)} not found; the columns are {names[:40]}",
            where=where,
            fix="pass existing columns as --entity-column / --timestamp-column (pipeline parameters entity_column / timestamp_column), "
            f"or auto to use {USUAL_ENTITY} / {USUAL_TIMESTAMP} when present and generate them otherwise",
        )
    notes: list[str] = []
    entity_out, entity_generated = _one(names, entity, USUAL_ENTITY, ROW_ID_COLUMN, "entity", "--entity-column", where, notes)
    if entity_generated:
        notes[-1] += ": one entity per row, so each row's features are its own columns"
    ts_out, ts_generated = _one(names, timestamp, USUAL_TIMESTAMP, INGESTED_AT_COLUMN, "timestamp", "--timestamp-column", where, notes)
    if ts_generated:
        temporal = [f.name for f in schema if is_temporal(f.type)]
        hint = f"; the data has date/time column(s) {temporal[:5]}: pass one as --timestamp-column to split by time" if temporal else ""
        notes[-1] += f": the ingestion time, the same for every row, so the rows have no event time and featurize splits them at random{hint}"
    return KeyColumns(entity_out, ts_out, entity_generated, ts_generated, tuple(notes))


def _one(names: list[str], given: str, usual: str, generated: str, role: str, flag: str, where: str, notes: list[str]) -> tuple[str, bool]:
    if given and given != AUTO:
        notes.append(f"{role} column {given!r} (given)")
        return given, False
    if given == AUTO and usual in names:
        notes.append(f"{role} column {usual!r} (found by its usual name; {flag} {AUTO})")
        return usual, False
    if generated in names:
        raise DataError(
            f"the data already has a {generated!r} column, the name of the {role} column ingest would generate",
            where=where,
            fix=f"pass it as the {role} column ({flag} {generated}), or rename it",
        )
    why = f"{flag} {AUTO} and the data has no {usual!r} column" if given == AUTO else f"{flag} is empty"
    notes.append(f"{role} column {generated!r} generated ({why})")
    return generated, True
