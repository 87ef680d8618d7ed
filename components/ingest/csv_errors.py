"""pyarrow's CSV errors as ``DataError`` naming the file, the column and, where found, the line.

Locating a line re-reads the file with Python's csv module, which is slow, so it
happens only after a failure; when the file cannot be re-read (a corrupt stream,
a line Python's csv module rejects) the message goes without the line number.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import Callable

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.ingest import bigints
from kfp_mlops.components.ingest.compression import open_stream


def encoding_error(path: Path, uri: str, encoding: str, codec: str | None, column: str = "") -> DataError:
    line = _first_undecodable_line(path, encoding, codec)
    where = f"{uri}, line {line}" if line else uri
    if column:
        where += f", column {column!r}"
    return DataError(
        f"bytes that are not valid {encoding}",
        where=where,
        fix="pass the file's real encoding (for example latin-1 or cp1252; utf-16 files need their byte-order mark), or re-export it as UTF-8",
    )


def _first_undecodable_line(path: Path, encoding: str, codec: str | None) -> int | None:
    try:
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        newlines = 0
        with open_stream(path, codec) as raw:
            while True:
                chunk = raw.read(1 << 20)
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as exc:
                    return newlines + exc.object[: exc.start].count(b"\n") + 1
                if not chunk:
                    return None
                newlines += chunk.count(b"\n")
    except (OSError, LookupError, UnicodeError):
        return None


def csv_error(message: str, path: Path, uri: str, *, delimiter: str, header: bool, encoding: str, codec: str | None, names: list[str] | None, block_mib: int) -> DataError:
    """The ``DataError`` for pyarrow's ``ArrowInvalid`` ``message`` about one CSV file."""
    locate = lambda predicate: _first_line(path, delimiter, header, encoding, codec, predicate)  # noqa: E731
    if "Empty CSV file" in message:
        return DataError("file has no header line", where=uri, fix="check that the export finished")
    if "straddles" in message:
        return DataError(
            f"a cell is larger than {block_mib} MiB (or a quote is never closed, so the rest of the file reads as one cell)",
            where=uri,
            fix="check quoting around that cell; store large text outside the table",
        )
    counts = re.search(r"Expected (\d+) columns", message)
    if counts:
        expected = int(counts.group(1))
        line = locate(lambda row: len(row) != expected)
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
            line = locate(lambda row: len(row) > col_no and row[col_no] == bad)
        where = f"{uri}, line {line}" if line else uri
        if bad is not None and "to int64" in message and bigints.is_big_integer_text(bad):
            return DataError(
                f"column {column!r} holds the integer {bad[:40]}, beyond the int64 range that earlier rows set for it",
                where=where,
                fix=f'keep the column exactly as text: column types {{"{column}": "string"}}',
            )
        return DataError(
            f"column {column!r} mixes types: {message.split(': ', 1)[-1][:200]} after earlier rows set its type",
            where=where,
            fix=f'clean the column, or force its type, e.g. column types {{"{column}": "string"}}',
        )
    return DataError(f"cannot parse CSV ({message[:300]})", where=uri, fix="check the delimiter, header and encoding")


def locate_value(path: Path, column: int, value: str, *, delimiter: str, header: bool, encoding: str, codec: str | None) -> int | None:
    """1-based line of the first data row whose ``column`` holds ``value`` (after trimming spaces), or None."""
    return _first_line(path, delimiter, header, encoding, codec, lambda row: len(row) > column and row[column].strip() == value.strip())


def _column_number(message: str) -> int | None:
    marker = "CSV column #"
    if marker not in message:
        return None
    digits = message.split(marker, 1)[1].split(":", 1)[0]
    return int(digits) if digits.isdigit() else None


def _first_line(path: Path, delimiter: str, header: bool, encoding: str, codec: str | None, predicate: Callable[[list[str]], bool]) -> int | None:
    """1-based line number of the first data row matching ``predicate``, or None if not found."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        with open_stream(path, codec) as raw:
            line_no = 0
            pending = ""
            while True:
                chunk = raw.read(1 << 20)
                text = decoder.decode(chunk, final=not chunk)
                lines = (pending + text).split("\n")
                pending = lines.pop() if chunk else ""
                if not chunk and pending:
                    lines.append(pending)
                for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter):
                    line_no += 1
                    if line_no == 1 and header:
                        continue
                    if predicate(row):
                        return line_no
                if not chunk:
                    return None
    except (OSError, LookupError, UnicodeError, csv.Error):
        return None
