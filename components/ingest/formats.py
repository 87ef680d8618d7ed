"""File formats ingest reads, each as a stream of Arrow record batches.

pyarrow errors are translated into ``DataError`` naming the file, the column and,
where it can be found, the line. Locating a line re-reads the file with Python's
csv module, which is slow, so it happens only after a failure.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError, UnsupportedSourceError

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
COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")
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
        column_types: Arrow type names forcing a column's type, e.g. {"zip": "string"}.
    """

    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    column_types: dict[str, str] = field(default_factory=dict)


def detect_format(name: str, override: str = "") -> str:
    """The format of ``name`` from its extension, or ``override`` when given."""
    if override:
        fmt = override.lower().replace("ndjson", "jsonl").replace("json", "jsonl").replace("jsonll", "jsonl")
        if fmt not in FORMATS:
            raise UnsupportedSourceError(f"unknown file format {override!r}", fix=f"use one of {', '.join(FORMATS)}")
        return fmt
    lower = name.lower()
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
    aliases = {"str": "string", "int": "int64", "float": "float64", "double": "float64", "bool": "bool"}
    name = aliases.get(name.strip(), name.strip())
    try:
        if name.startswith("timestamp"):
            inner = name[name.index("[") + 1 : name.rindex("]")] if "[" in name else "us"
            unit, _, tz = inner.partition(",")
            return pa.timestamp(unit.strip(), tz=tz.split("=", 1)[-1].strip() or None)
        return pa.type_for_alias(name)
    except (ValueError, KeyError) as exc:
        raise DataError(f"unknown column type {name!r}", fix="use Arrow names: string, int64, float64, bool, timestamp[us, tz=UTC]") from exc


def _open_stream(path: Path) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="detect")


def read_batches(path: Path, uri: str, fmt: str, csv_options: CsvOptions, schema: pa.Schema | None = None) -> Iterator[pa.RecordBatch]:
    """Yield record batches of one file; ``schema`` (from the first file) fixes the types of later files."""
    if path.stat().st_size == 0:
        raise DataError("file is empty", where=uri, fix="check that the export that wrote it finished")
    if fmt == "parquet":
        yield from _parquet_batches(path, uri)
    elif fmt == "jsonl":
        yield from _jsonl_batches(path, uri, schema)
    else:
        yield from _csv_batches(path, uri, csv_options, schema)


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


def _jsonl_batches(path: Path, uri: str, schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
    parse = pajson.ParseOptions(explicit_schema=schema) if schema is not None else pajson.ParseOptions()
    try:
        reader = pajson.open_json(_open_stream(path), read_options=pajson.ReadOptions(block_size=CSV_BLOCK_BYTES), parse_options=parse)
        yield from reader
    except pa.ArrowInvalid as exc:
        raise DataError(f"invalid JSON Lines ({exc})", where=uri, fix="each line must be one JSON object with the same fields") from exc


def _csv_batches(path: Path, uri: str, opts: CsvOptions, schema: pa.Schema | None) -> Iterator[pa.RecordBatch]:
    if len(opts.delimiter) != 1:
        raise DataError(f"CSV delimiter must be one character, got {opts.delimiter!r}", fix="pass e.g. ',' ';' or '\\t'")
    column_types = {name: arrow_type(t) for name, t in opts.column_types.items()}
    if schema is not None:
        column_types = {f.name: f.type for f in schema}
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, encoding=opts.encoding, autogenerate_column_names=not opts.header)
    parse = pacsv.ParseOptions(delimiter=opts.delimiter)
    convert = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
    names: list[str] | None = None
    try:
        reader = pacsv.open_csv(_open_stream(path), read_options=read, parse_options=parse, convert_options=convert)
        _check_header(reader.schema, uri, opts)
        names = reader.schema.names
        for batch in reader:
            _check_utf8(batch, path, uri, opts)
            yield batch
    except LookupError as exc:
        raise DataError(f"unknown encoding {opts.encoding!r}", where=uri, fix="use a Python codec name such as utf-8 or latin-1") from exc
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, uri, opts) from exc
    except pa.ArrowInvalid as exc:
        raise _csv_error(str(exc), path, uri, opts, names) from exc


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


def _check_utf8(batch: pa.RecordBatch, path: Path, uri: str, opts: CsvOptions) -> None:
    # pyarrow reads non-UTF-8 text silently as binary instead of failing.
    for name, column in zip(batch.schema.names, batch.columns):
        if pa.types.is_binary(column.type) and opts.column_types.get(name) != "binary":
            raise _encoding_error(path, uri, opts, column=name)


def _encoding_error(path: Path, uri: str, opts: CsvOptions, column: str = "") -> DataError:
    line = _first_undecodable_line(path, opts.encoding)
    where = f"{uri}, line {line}" if line else uri
    if column:
        where += f", column {column!r}"
    return DataError(
        f"bytes that are not valid {opts.encoding}",
        where=where,
        fix="pass the file's real encoding (for example latin-1 or cp1252), or re-export it as UTF-8",
    )


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    newlines = 0
    with pa.input_stream(str(path), compression="detect") as raw:
        while True:
            chunk = raw.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return newlines + exc.object[: exc.start].count(b"\n") + 1
            if not chunk:
                return None
            newlines += chunk.count(b"\n")


def _csv_error(message: str, path: Path, uri: str, opts: CsvOptions, names: list[str] | None) -> DataError:
    if "Empty CSV file" in message:
        return DataError("file has no header line", where=uri, fix="check that the export finished")
    if "straddles" in message:
        return DataError(
            f"a cell is larger than {CSV_BLOCK_BYTES >> 20} MiB (or a quote is never closed, so the rest of the file reads as one cell)",
            where=uri,
            fix="check quoting around that cell; store large text outside the table",
        )
    counts = re.search(r"Expected (\d+) columns", message)
    if counts:
        expected = int(counts.group(1))
        line = _first_line(path, opts, lambda row: len(row) != expected)
        return DataError(
            f"malformed CSV line ({message.split(': ', 1)[-1][:200]})",
            where=f"{uri}, line {line}" if line else uri,
            fix="fix or drop that line; check quoting and the delimiter",
        )
    if "conversion error" in message and names:
        col_no = _column_number(message)
        column = names[col_no] if col_no is not None and col_no < len(names) else "?"
        bad = message.rsplit("invalid value ", 1)[-1].strip("'") if "invalid value" in message else None
        line = None
        if bad is not None and col_no is not None:
            line = _first_line(path, opts, lambda row: len(row) > col_no and row[col_no] == bad)
        return DataError(
            f"column {column!r} mixes types: {message.split(': ', 1)[-1][:200]} after earlier rows set its type",
            where=f"{uri}, line {line}" if line else uri,
            fix=f'clean the column, or force its type, e.g. column types {{"{column}": "string"}}',
        )
    return DataError(f"cannot parse CSV ({message[:300]})", where=uri, fix="check the delimiter, header and encoding")


def _column_number(message: str) -> int | None:
    marker = "CSV column #"
    if marker not in message:
        return None
    digits = message.split(marker, 1)[1].split(":", 1)[0]
    return int(digits) if digits.isdigit() else None


def _first_line(path: Path, opts: CsvOptions, predicate: Callable[[list[str]], bool]) -> int | None:
    """1-based line number of the first data row matching ``predicate``."""
    decoder = codecs.getincrementaldecoder(opts.encoding)("strict")
    with pa.input_stream(str(path), compression="detect") as raw:
        line_no = 0
        pending = ""
        while True:
            chunk = raw.read(1 << 20)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                return None
            lines = (pending + text).split("\n")
            pending = lines.pop() if chunk else ""
            if not chunk and pending:
                lines.append(pending)
            for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=opts.delimiter):
                line_no += 1
                if line_no == 1 and opts.header:
                    continue
                if predicate(row):
                    return line_no
            if not chunk:
                return None
