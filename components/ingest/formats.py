"""File formats ingest reads, each as a stream of Arrow record batches.

pyarrow errors are translated into ``DataError`` naming the file, the column and,
where it can be found, the line (``csv_errors``). Compressed files are decoded by
what their bytes say (``compression``); integers too long for int64 are kept
exactly as text (``bigints``).
"""

from __future__ import annotations

import codecs
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError, UnsupportedSourceError
from kfp_mlops.components.ingest import bigints
from kfp_mlops.components.ingest.compression import SUFFIXES, codec_of, corrupt, open_stream
from kfp_mlops.components.ingest.csv_errors import csv_error, encoding_error, locate_value
from kfp_mlops.components.ingest.temporal import TEMPORAL_FIX_EXAMPLES, describe, is_temporal, parse_text

FORMATS = ("csv", "parquet", "jsonl")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
COMPRESSIONS = tuple(SUFFIXES)
PARQUET_BATCH_ROWS = 65_536
# Large enough that one cell of a few MB parses; small enough to keep memory flat.
CSV_BLOCK_BYTES = 4 << 20
LIKELY_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class CsvOptions:
    """CSV dialect.

    Attributes:
        delimiter: One character separating fields (``\\t`` for TSV).
        header: Whether the first line holds column names; if not, columns are f0, f1, ...
        encoding: Text encoding of the file (utf-8, latin-1, cp1252, utf-16, ...).
        column_types: Type names forcing a column's type, e.g. {"zip": "string"}; ``timestamp``
            (UTC) and ``date`` parse ISO 8601 text and four-digit years, naming the row of
            a value that does not parse.
    """

    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    column_types: dict[str, str] = field(default_factory=dict)


@dataclass
class ReadNotes:
    """What the readers decided on their own, for the dataset's summary and metadata.

    Attributes:
        integer_text_columns: Columns of whole numbers beyond int64, kept exactly as text.
    """

    integer_text_columns: list[str] = field(default_factory=list)


def detect_format(name: str, override: str = "") -> str:
    """The format of ``name`` from its extension, or ``override`` when given."""
    if override.strip():
        fmt = override.strip().lower().replace("ndjson", "jsonl").replace("json", "jsonl").replace("jsonll", "jsonl")
        if fmt not in FORMATS:
            raise UnsupportedSourceError(f"unknown file format {override!r}", fix=f"use one of {', '.join(FORMATS)}")
        return fmt
    lower = name.lower()
    if lower.startswith(("http://", "https://")):
        # A signed URL's query ("data.csv?X-Amz-Signature=...") is not part of the extension.
        lower = lower.split("?", 1)[0].split("#", 1)[0]
    for comp in COMPRESSIONS:
        if lower.endswith(comp):
            lower = lower[: -len(comp)]
    suffix = Path(lower).suffix
    if suffix not in EXTENSIONS:
        raise UnsupportedSourceError(
            f"cannot tell the format from the extension {suffix or '(none)'!r}",
            where=name,
            fix=f"name files .csv/.parquet/.jsonl or pass the format explicitly ({', '.join(FORMATS)})",
        )
    return EXTENSIONS[suffix]


def arrow_type(name: str) -> pa.DataType:
    """Parse a type name such as ``int64``, ``string``, ``timestamp[us, tz=UTC]``."""
    aliases = {"str": "string", "int": "int64", "float": "float64", "double": "float64", "bool": "bool", "date": "date32", "timestamp": "timestamp[us, tz=UTC]", "datetime": "timestamp[us, tz=UTC]"}
    name = aliases.get(name.strip(), name.strip())
    try:
        if name.startswith("timestamp"):
            inner = name[name.index("[") + 1 : name.rindex("]")] if "[" in name else "us"
            unit, _, tz = inner.partition(",")
            return pa.timestamp(unit.strip(), tz=tz.split("=", 1)[-1].strip() or None)
        return pa.type_for_alias(name)
    except (ValueError, KeyError) as exc:
        raise DataError(f"unknown column type {name!r}", fix="use string, int64, float64, bool, date or timestamp (or an Arrow name such as timestamp[ms, tz=UTC])") from exc


def check_csv_options(opts: CsvOptions) -> CsvOptions:
    """``opts`` checked before any data is read, with ``\t`` typed as two characters read as a tab.

    Raises:
        DataError: a delimiter, encoding or column type that cannot work.
    """
    # The parameter's documentation says "\t for TSV"; typed into a form, that arrives as backslash + t.
    delimiter = {"\\t": "\t", "tab": "\t"}.get(opts.delimiter, opts.delimiter)
    if len(delimiter) != 1:
        raise DataError(f"CSV delimiter must be one character, got {opts.delimiter!r}", fix="pass e.g. ',' ';' or '\\t'")
    if delimiter in '\r\n"':
        raise DataError(f"{delimiter!r} cannot be the CSV delimiter (it ends lines or quotes cells)", fix="pass e.g. ',' ';' or '\\t'")
    try:
        codecs.lookup(opts.encoding)
    except (LookupError, TypeError) as exc:
        raise DataError(f"unknown encoding {opts.encoding!r}", fix="use a Python codec name such as utf-8, latin-1 or cp1252") from exc
    if not isinstance(opts.column_types, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in opts.column_types.items()):
        raise DataError(
            f"column types must map column names to type names, got {opts.column_types!r}"[:300],
            fix='pass a JSON object such as {"zip": "string", "amount": "float64"}',
        )
    for type_name in opts.column_types.values():
        arrow_type(type_name)
    return replace(opts, delimiter=delimiter) if delimiter != opts.delimiter else opts


def read_batches(
    path: Path,
    uri: str,
    fmt: str,
    csv_options: CsvOptions,
    schema: pa.Schema | None = None,
    notes: ReadNotes | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of one file; ``schema`` (from the first file) fixes the types of later files.

    ``notes`` collects what the reader decided on its own (pass the same object for every
    file of a source).
    """
    notes = notes if notes is not None else ReadNotes()
    if path.stat().st_size == 0:
        raise DataError("file is empty", where=uri, fix="check that the export that wrote it finished")
    codec = codec_of(path, uri)
    if fmt == "parquet":
        if codec is not None:
            raise DataError(
                f"the Parquet file is {codec}-compressed as a whole",
                where=uri,
                fix="decompress it first (Parquet compresses its pages itself), or pass the right format",
            )
        yield from _parquet_batches(path, uri)
    elif fmt == "jsonl":
        yield from _jsonl_batches(path, uri, schema, codec, notes)
    else:
        yield from _csv_batches(path, uri, check_csv_options(csv_options), schema, codec, notes)


def _parquet_batches(path: Path, uri: str) -> Iterator[pa.RecordBatch]:
    try:
        # pre_buffer caches every row group read so far (memory grows with the file): off.
        reader = pq.ParquetFile(str(path), pre_buffer=False)
        yield from reader.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"not a readable Parquet file ({exc})",
            where=uri,
            fix="the file is truncated or corrupt: re-export it, or pass the right format",
        ) from exc


def _jsonl_batches(path: Path, uri: str, schema: pa.Schema | None, codec: str | None, notes: ReadNotes) -> Iterator[pa.RecordBatch]:
    exact: dict[str, pa.DataType] = {}
    if schema is not None:
        # Integers kept as text in the first file are numbers in JSON: read them exactly, then as text.
        exact = {f.name: (bigints.JSON_EXACT if f.name in notes.integer_text_columns else f.type) for f in schema}
    as_text = [n for n in notes.integer_text_columns if n in exact]
    try:
        reader = _open_json(path, codec, exact)
        first = _next_batch(reader)
        if schema is None and first is not None:
            big = _json_big_integer_columns(path, uri, codec, first)
            if big:
                notes.integer_text_columns.extend(big)
                as_text = big
                reader = _open_json(path, codec, {name: bigints.JSON_EXACT for name in big})
                first = _next_batch(reader)
        batches = itertools.chain([first] if first is not None else [], reader)
        for batch in batches:
            yield bigints.decimals_to_text(batch, as_text)
    except pa.ArrowInvalid as exc:
        raise DataError(f"invalid JSON Lines ({exc})", where=uri, fix="each line must be one JSON object with the same fields") from exc
    except OSError as exc:
        if codec is None:
            raise
        raise corrupt(codec, uri, exc) from exc


def _open_json(path: Path, codec: str | None, types: dict[str, pa.DataType]) -> pajson.JSONStreamingReader:
    parse = pajson.ParseOptions(explicit_schema=pa.schema(types)) if types else pajson.ParseOptions()
    return pajson.open_json(open_stream(path, codec), read_options=pajson.ReadOptions(block_size=CSV_BLOCK_BYTES), parse_options=parse)


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _json_big_integer_columns(path: Path, uri: str, codec: str | None, first: pa.RecordBatch) -> list[str]:
    candidates = bigints.float_overflow_candidates(first)
    if not candidates:
        return []
    try:
        _next_batch(_open_json(path, codec, {name: bigints.JSON_EXACT for name in candidates}))
    except pa.ArrowInvalid as exc:
        if "requires precision" in str(exc):
            raise DataError(
                f"integers with more than 38 digits in column(s) {candidates} cannot be read exactly from JSON",
                where=uri,
                fix='write them as JSON strings upstream ("id": "123...")',
            ) from exc
        return []  # fractions too: a float column with large values, not integers
    return candidates


def _csv_batches(path: Path, uri: str, opts: CsvOptions, schema: pa.Schema | None, codec: str | None, notes: ReadNotes) -> Iterator[pa.RecordBatch]:
    column_types = {name: arrow_type(t) for name, t in opts.column_types.items()}
    # Dates and times forced by column_types are read as text and parsed here, so that a
    # value that does not parse is reported with its row (Arrow's reader names neither).
    temporal = {name: t for name, t in column_types.items() if is_temporal(t)}
    if schema is not None:
        column_types = {f.name: f.type for f in schema}
    column_types.update({name: pa.string() for name in temporal})
    rows_before = 0
    # Known before the reader opens when a later file is read with the first file's columns.
    names: list[str] | None = schema.names if schema is not None else None
    try:
        reader = _open_csv(path, opts, codec, column_types)
        _check_header(reader.schema, uri, opts)
        names = reader.schema.names
        first = None
        if schema is None:
            _check_forced_columns(opts, names, uri)
            first = _next_batch(reader)
            big = _csv_big_integer_columns(path, opts, codec, first) if first is not None else []
            if big:
                notes.integer_text_columns.extend(big)
                column_types.update({name: pa.string() for name in big})
                reader = _open_csv(path, opts, codec, column_types)
                first = None
        for batch in itertools.chain([first] if first is not None else [], reader):
            _check_utf8(batch, path, uri, opts, codec)
            yield _parse_temporal(batch, temporal, rows_before, path, uri, opts, codec)
            rows_before += batch.num_rows
    except UnicodeError as exc:
        raise encoding_error(path, uri, opts.encoding, codec) from exc
    except pa.ArrowInvalid as exc:
        message = str(exc)
        raise csv_error(message, path, uri, delimiter=opts.delimiter, header=opts.header, encoding=opts.encoding, codec=codec, names=names, block_mib=CSV_BLOCK_BYTES >> 20) from exc
    except OSError as exc:
        if codec is None:
            raise
        raise corrupt(codec, uri, exc) from exc


def _parse_temporal(batch: pa.RecordBatch, temporal: dict[str, pa.DataType], rows_before: int, path: Path, uri: str, opts: CsvOptions, codec: str | None) -> pa.RecordBatch:
    if not temporal:
        return batch
    columns = list(batch.columns)
    for name, target in temporal.items():
        index = batch.schema.get_field_index(name)
        parsed, bad = parse_text(columns[index], target)
        if bad is not None:
            value = columns[index][bad].as_py()
            line = locate_value(path, index, value, delimiter=opts.delimiter, header=opts.header, encoding=opts.encoding, codec=codec)
            raise DataError(
                f"column {name!r} holds {value[:60]!r} at row {rows_before + bad + 1}, which is not a {describe(target)} (column_types makes it one)",
                where=f"{uri}, line {line}" if line else uri,
                fix=f'write {TEMPORAL_FIX_EXAMPLES} there, or empty the cell (a missing value); or read the column as text: column_types {{"{name}": "string"}} (--column-types)',
            )
        columns[index] = parsed
    fields = [pa.field(f.name, temporal[f.name]) if f.name in temporal else f for f in batch.schema]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def _open_csv(path: Path, opts: CsvOptions, codec: str | None, column_types: dict[str, pa.DataType], include: list[str] | None = None) -> pacsv.CSVStreamingReader:
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=opts.encoding, autogenerate_column_names=not opts.header)
    parse = pacsv.ParseOptions(delimiter=opts.delimiter)
    convert = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True, include_columns=include or [])
    return pacsv.open_csv(open_stream(path, codec), read_options=read, parse_options=parse, convert_options=convert)


def _csv_big_integer_columns(path: Path, opts: CsvOptions, codec: str | None, first: pa.RecordBatch) -> list[str]:
    candidates = bigints.float_overflow_candidates(first, skip=opts.column_types)
    if not candidates:
        return []
    # The same first block as text: only columns written as whole numbers throughout become text.
    text = _next_batch(_open_csv(path, opts, codec, {name: pa.string() for name in candidates}, include=candidates))
    if text is None:
        return []
    return [name for name in candidates if bigints.all_integer_text(text.column(name))]


def _check_forced_columns(opts: CsvOptions, names: list[str], uri: str) -> None:
    unknown = [name for name in opts.column_types if name not in names]
    if unknown:
        raise DataError(
            f"column types name column(s) {unknown} that the file does not have; columns are {names[:30]}",
            where=uri,
            fix="correct the column names in column types (they are case-sensitive)",
        )


def _check_header(schema: pa.Schema, uri: str, opts: CsvOptions) -> None:
    if len(schema) == 1:
        only = schema.names[0]
        other = [d for d in LIKELY_DELIMITERS if d != opts.delimiter and d in only]
        if other:
            raise DataError(
                f"the header parsed as a single column {only[:80]!r} that contains {other[0]!r}",
                where=uri,
                fix=f"the delimiter is probably {other[0]!r}: pass it as the CSV delimiter",
            )


def _check_utf8(batch: pa.RecordBatch, path: Path, uri: str, opts: CsvOptions, codec: str | None) -> None:
    # pyarrow reads non-UTF-8 text silently as binary instead of failing.
    for name, column in zip(batch.schema.names, batch.columns):
        if pa.types.is_binary(column.type) and opts.column_types.get(name) != "binary":
            raise encoding_error(path, uri, opts.encoding, codec, column=name)
