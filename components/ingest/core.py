"""Ingest core: stream any supported source into one Parquet file, with checks and metadata.

Plain Python, no KFP: the component wrapper calls ``ingest`` with plain paths.
Memory stays bounded whatever the input size: batches stream from the reader
through the checks and the fingerprint into a ``ParquetWriter``.

What the result holds is safe to show: the source URI and file names are redacted
(no user info, no signatures), and user data in the Markdown summary is escaped.
Columns are flat: nested values (struct, list, map) are refused, since no later step
can use them. Integers beyond int64 are kept exactly, as text (see ``bigints``).
Each run first removes what a killed earlier run for the same output left.
The entity and event-time columns are given, found by their usual names, or generated
(``keys``); an event-time column of dates or years becomes a UTC timestamp (``temporal``).
A dvc:// source is one file of a DVC repository at a git revision (``dvc_source``); its
revision, commit and DVC md5 join the metadata as a ``DataVersion``.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfp_mlops.components._shared.atomic import atomic_path
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.prefetch import prefetch
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components._shared.split_artifact import DataVersion
from kfp_mlops.components._shared.storage import StagedFile, stage_sources
from kfp_mlops.components._shared.storage.scratch import clear_staging, staging_dir_for
from kfp_mlops.components.ingest import bigints, dvc_source
from kfp_mlops.components.ingest.fingerprint import Fingerprint
from kfp_mlops.components.ingest.formats import CsvOptions, ReadNotes, check_csv_options, detect_format, read_batches
from kfp_mlops.components.ingest.keys import INGESTED_AT_COLUMN, ROW_ID_COLUMN, KeyColumns, check_names, resolve_keys
from kfp_mlops.components.ingest.temporal import EventTime, plan_event_time

log = logging.getLogger(__name__)

__all__ = ["INGESTED_AT_COLUMN", "ROW_ID_COLUMN", "IngestOptions", "IngestResult", "ingest"]

ROW_GROUP_ROWS = 262_144
NUMERIC_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
# Errors where the disk, not the data, is at fault (exit_on_error turns them into exit 3).
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@dataclass(frozen=True)
class IngestOptions:
    """How to read a source.

    Attributes:
        file_format: csv, parquet or jsonl; empty to detect from the extension.
        csv: CSV dialect (delimiter, header, encoding, forced column types).
        entity_column: Entity key column; ``auto`` for ``entity_id`` if present, else a
            generated ``row_id``; empty to always generate ``row_id``.
        timestamp_column: Event time column; ``auto`` for ``event_timestamp`` if present,
            else no event time (an ``ingested_at`` column); empty for no event time.
        max_cell_bytes: Longest text cell accepted; longer ones are reported as bad data.
    """

    file_format: str = ""
    csv: CsvOptions = field(default_factory=CsvOptions)
    entity_column: str = ""
    timestamp_column: str = ""
    max_cell_bytes: int = 100_000


@dataclass(frozen=True)
class IngestResult:
    """What ingest wrote.

    Attributes:
        path: The Parquet file.
        rows: Row count.
        columns: Column name to Arrow type name, in order.
        fingerprint: Content hash (same data, same fingerprint).
        source_uri: The source as given, redacted (no user info or credential parameters); for DVC data
            the dvc:// URI when it reads back to the same file, else the file's path (data_version names the rest).
        files: The source files read, in order (redacted likewise).
        entity_column: The entity key column in the output (given or generated).
        timestamp_column: The event time column in the output (given or generated).
        bytes_read: Size of the source files.
        seconds: Wall time.
        integer_text_columns: Columns of integers beyond int64, kept exactly as text.
        entity_generated: The entity column was generated (one row per entity).
        timestamp_generated: The event time column was generated (the rows have no event time).
        notes: What ingest chose about the key columns and why.
        data_version: For a dvc:// source, the repository, path, revision, commit and DVC md5.
    """

    path: Path
    rows: int
    columns: dict[str, str]
    fingerprint: str
    source_uri: str
    files: list[str]
    entity_column: str
    timestamp_column: str
    bytes_read: int
    seconds: float
    integer_text_columns: tuple[str, ...] = ()
    entity_generated: bool = False
    timestamp_generated: bool = False
    notes: tuple[str, ...] = ()
    data_version: DataVersion | None = None

    def metadata(self) -> dict[str, object]:
        """Artifact metadata for KFP (JSON-serializable)."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "fingerprint": self.fingerprint,
            "source_uri": self.source_uri,
            "files": self.files,
            "entity_column": self.entity_column,
            "timestamp_column": self.timestamp_column,
            "integer_text_columns": list(self.integer_text_columns),
            "entity_generated": self.entity_generated,
            "timestamp_generated": self.timestamp_generated,
            "notes": list(self.notes),
            "format": "parquet",
            **(self.data_version.to_metadata() if self.data_version is not None else {}),
        }

    def summary_markdown(self) -> str:
        """A Markdown summary for the Kubeflow UI."""
        from kfp_mlops.components._shared.markdown import md_code, md_table, md_text

        lines = [
            "# Ingested dataset",
            "",
            f"- **Source:** {md_code(_one_line(redact_uri(self.source_uri)))} ({len(self.files)} file(s), {self.bytes_read / 1e6:,.1f} MB)",
            f"- **Rows:** {self.rows:,}",
            f"- **Entity column:** {md_code(_one_line(self.entity_column))}; **timestamp column:** {md_code(_one_line(self.timestamp_column))}",
            f"- **Fingerprint:** {md_code(self.fingerprint)}",
            *([dvc_source.summary_line(self.data_version)] if self.data_version is not None else []),
            f"- **Throughput:** {self.bytes_read / 1e6 / max(self.seconds, 1e-9):,.1f} MB/s",
        ]
        if self.integer_text_columns:
            names = ", ".join(md_code(_one_line(n)) for n in self.integer_text_columns)
            lines.append(f"- **Kept as text:** {names} ({bigints.WHY}; as numbers they would lose digits)")
        lines += [f"- {md_text(_one_line(note))}" for note in self.notes]
        lines += ["", md_table(["column", "type"], [[_one_line(name), _one_line(typ)] for name, typ in self.columns.items()])]
        return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    # A line break in a column name would end the table row (or a code span) and start new Markdown.
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)


def ingest(source_uri: str, output_path: str | Path, *, options: IngestOptions = IngestOptions(), staging_dir: str | Path | None = None, dvc_repo: str = "", dvc_rev: str = "") -> IngestResult:
    """Read ``source_uri`` (file, prefix, glob or dvc:// file) into a Parquet file at ``output_path``.

    On any error nothing is left at ``output_path``, nor in a staging folder ingest chose.
    Remote files are staged in ``staging_dir`` (default: a folder in the system temp
    folder named after ``output_path``, so that a retry finds and removes what a
    killed attempt left there and beside the output). With ``dvc_repo``, ``source_uri``
    is a file's path in that DVC repository, read at ``dvc_rev``.

    Raises:
        SourceError: the source cannot be reached or read (subclasses say why).
        DataError: the data or an option is unusable as given.
        OSError: the disk is full or read-only (``errno`` ENOSPC, EDQUOT or EROFS), naming the output.
    """
    started = time.perf_counter()
    options = _checked(options)
    dvc_ref = None
    if dvc_source.is_dvc(source_uri, dvc_repo) or dvc_rev.strip():
        dvc_ref = dvc_source.parse(source_uri, repo=dvc_repo, rev=dvc_rev)
    output = Path(output_path)
    if staging_dir is None:
        clear_staging(output)  # a killed attempt's downloads (atomic_path clears its .tmp output)
    staging = Path(staging_dir) if staging_dir else staging_dir_for(output)
    try:
        data_version = None
        if dvc_ref is not None:
            # The format comes from the path in the repository (the staged copy's name is not the source's),
            # checked once the path is known to be a file: a folder or a missing file is named as such.
            staged, data_version = dvc_source.stage(dvc_ref, staging, check_file=lambda path: detect_format(path, options.file_format))
            options = replace(options, file_format=detect_format(dvc_ref.path, options.file_format))
            files = [staged]
        else:
            files = stage_sources(source_uri, staging)
        notes = ReadNotes()
        try:
            with atomic_path(output) as tmp:
                rows, schema, fingerprint, keys = _convert(files, tmp, options, notes)
        except OSError as exc:
            if exc.errno in DISK_ERRNOS and not exc.filename:
                # pyarrow's write errors carry no file name; say which output could not be written.
                raise OSError(exc.errno, exc.strerror, str(output)) from exc
            raise
        return IngestResult(
            path=output,
            rows=rows,
            columns={f.name: str(f.type) for f in schema},
            fingerprint=fingerprint,
            source_uri=dvc_ref.recorded_source if dvc_ref is not None else redact_uri(source_uri),
            files=[dvc_ref.recorded_source] if dvc_ref is not None else [redact_uri(f.uri) for f in files],
            entity_column=keys.entity,
            timestamp_column=keys.timestamp,
            bytes_read=sum(f.path.stat().st_size for f in files),
            seconds=time.perf_counter() - started,
            integer_text_columns=tuple(notes.integer_text_columns),
            entity_generated=keys.entity_generated,
            timestamp_generated=keys.timestamp_generated,
            notes=keys.notes,
            data_version=data_version,
        )
    finally:
        if staging_dir is None:
            shutil.rmtree(staging, ignore_errors=True)


def _checked(options: IngestOptions) -> IngestOptions:
    """``options`` checked before anything is downloaded or read."""
    if options.file_format:
        detect_format("", options.file_format)
    if not isinstance(options.max_cell_bytes, int) or options.max_cell_bytes < 1:
        raise DataError(f"the cell limit must be a positive number of bytes, got {options.max_cell_bytes!r}", fix="pass e.g. 100000")
    check_names(options.entity_column, options.timestamp_column)
    return replace(options, csv=check_csv_options(options.csv))


class _Writer:
    """Buffers batches into large row groups, adds generated columns, converts the event time, fingerprints."""

    def __init__(self, path: Path, schema: pa.Schema, add_row_id: bool, ingested_at: dt.datetime | None, event_time: EventTime | None = None) -> None:
        self.add_row_id = add_row_id
        self.ingested_at = ingested_at
        self.event_time = event_time
        out_schema = schema
        if event_time is not None:
            index = schema.get_field_index(event_time.column)
            out_schema = out_schema.set(index, pa.field(event_time.column, pa.timestamp("us", tz="UTC")))
        if add_row_id:
            out_schema = out_schema.append(pa.field(ROW_ID_COLUMN, pa.int64(), nullable=False))
        if ingested_at is not None:
            out_schema = out_schema.append(pa.field(INGESTED_AT_COLUMN, pa.timestamp("us", tz="UTC"), nullable=False))
        self.schema = out_schema
        self.writer = pq.ParquetWriter(str(path), out_schema)
        self.fingerprint = Fingerprint(schema)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch, where: str) -> None:
        # The fingerprint is of the data as read: the same source, the same fingerprint.
        self.fingerprint.update(batch)
        columns = list(batch.columns)
        if self.event_time is not None:
            index = batch.schema.get_field_index(self.event_time.column)
            columns[index] = self.event_time.convert(columns[index], self.rows, where)
        if self.add_row_id:
            columns.append(pa.array(np.arange(self.rows, self.rows + batch.num_rows, dtype=np.int64)))
        if self.ingested_at is not None:
            columns.append(pa.array(np.full(batch.num_rows, np.datetime64(self.ingested_at.replace(tzinfo=None), "us"))).cast(self.schema.field(INGESTED_AT_COLUMN).type))
        self.pending.append(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self.pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending), row_group_size=max(self.pending_rows, 1))
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _convert(files: list[StagedFile], target: Path, options: IngestOptions, notes: ReadNotes) -> tuple[int, pa.Schema, str, KeyColumns]:
    first_fmt = detect_format(files[0].uri, options.file_format)
    writer: _Writer | None = None
    schema: pa.Schema | None = None
    keys: KeyColumns | None = None
    try:
        for staged in files:
            fmt = detect_format(staged.uri, options.file_format)
            if fmt != first_fmt:
                raise DataError(f"mixes {first_fmt} and {fmt} files", where=staged.uri, fix="point the source at files of one format")
            for batch in prefetch(read_batches(staged.path, staged.uri, fmt, options.csv, schema, notes)):
                if schema is None:
                    schema = batch.schema
                    _check_schema(schema, staged.uri)
                    keys = resolve_keys(schema, options.entity_column, options.timestamp_column, staged.uri)
                    _check_mixed_types(batch, staged.uri, options, writer_rows=0)
                    event_time = None if keys.timestamp_generated else plan_event_time(keys.timestamp, batch.column(keys.timestamp), staged.uri)
                    if event_time is not None:
                        keys = replace(keys, notes=(*keys.notes, event_time.note))
                    for note in keys.notes:
                        log.info("%s", note)
                    ingested_at = dt.datetime.now(dt.timezone.utc) if keys.timestamp_generated else None
                    writer = _Writer(target, schema, add_row_id=keys.entity_generated, ingested_at=ingested_at, event_time=event_time)
                elif batch.schema != schema:
                    batch = _conform(batch, schema, staged.uri)
                assert writer is not None  # made with the schema, from the first batch
                _check_cells(batch, staged.uri, options, writer.rows)
                writer.write(batch, staged.uri)
            if schema is None:
                # A file with a header (or Parquet schema) but no rows yields no batch at all.
                raise DataError("file has a header but no data rows", where=staged.uri, fix="check that the export wrote its rows")
        if writer is None or writer.rows == 0:
            raise DataError("no data rows", where=files[0].uri, fix="check that the export wrote its rows")
        writer.close()
        log.info("ingested %d rows from %d file(s)", writer.rows, len(files))
        assert keys is not None  # resolved with the schema
        return writer.rows, writer.schema, writer.fingerprint.hexdigest(), keys
    except BaseException:
        if writer is not None:
            writer.writer.close()
        raise


def _check_schema(schema: pa.Schema, uri: str) -> None:
    nested = [f"{f.name!r} ({f.type})"[:200] for f in schema if pa.types.is_nested(f.type)]
    if nested:
        raise DataError(
            f"column(s) holding nested values (struct, list or map): {', '.join(nested[:20])}",
            where=uri,
            fix="flatten them upstream into one scalar column per field (e.g. address.city), or serialize them to JSON text; then ingest again",
        )
    names = schema.names
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        raise DataError(f"duplicate column names {dupes}", where=uri, fix="rename the columns so that each name is unique")
    empty = [i for i, n in enumerate(names) if not n.strip()]
    if empty:
        raise DataError(f"column(s) at position {empty} have no name", where=uri, fix="give every column a header")


def _check_mixed_types(batch: pa.RecordBatch, uri: str, options: IngestOptions, writer_rows: int) -> None:
    """Text columns whose values are mostly numbers hide a typo or a unit in a numeric column."""
    for name, column in zip(batch.schema.names, batch.columns):
        if not pa.types.is_string(column.type) or name in options.csv.column_types:
            continue
        present = column.drop_null()
        if len(present) == 0:
            continue
        numeric = pc.match_substring_regex(present, NUMERIC_PATTERN)
        n_numeric = pc.sum(numeric).as_py() or 0
        if n_numeric * 2 >= len(present) and n_numeric < len(present):
            bad_index = pc.index(pc.and_(column.is_valid(), pc.invert(pc.match_substring_regex(column, NUMERIC_PATTERN).fill_null(True))), True).as_py()
            value = column[bad_index].as_py()
            raise DataError(
                f"column {name!r} mixes numbers and text: {n_numeric} of {len(present)} values are numbers, but row {writer_rows + bad_index + 1} holds {value[:50]!r}",
                where=uri,
                fix=f'clean the column, or keep it as text with column types {{"{name}": "string"}}',
            )


def _check_cells(batch: pa.RecordBatch, uri: str, options: IngestOptions, rows_before: int) -> None:
    for name, column in zip(batch.schema.names, batch.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        lengths = pc.binary_length(column)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > options.max_cell_bytes:
            row = pc.index(lengths, longest).as_py() + rows_before + 1
            raise DataError(
                f"column {name!r} row {row} holds a {longest:,}-byte value, over the {options.max_cell_bytes:,}-byte cell limit",
                where=uri,
                fix="check that row's quoting; keep large text outside the table, or raise the cell limit",
            )


def _conform(batch: pa.RecordBatch, schema: pa.Schema, uri: str) -> pa.RecordBatch:
    if batch.schema.names != schema.names:
        raise DataError(
            f"columns {batch.schema.names[:20]} differ from the first file's {schema.names[:20]}",
            where=uri,
            fix="every file of one source must have the same columns in the same order",
        )
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column types differ from the first file's ({exc})", where=uri, fix="make the files' column types agree") from exc
