"""Integers beyond the int64 range: kept exactly, as text.

pyarrow's CSV and JSON readers infer int64 for whole numbers and fall back to
float64 when one does not fit. A float64 holds 15-17 significant digits, so
20-digit ids such as ``12345678901234567890`` and ``12345678901234567891`` become
the same number: distinct keys collapse silently. Ingest therefore keeps such a
column exactly, as text (the digits as written), and says so in the dataset's
summary and metadata. Text rather than decimal: ids are compared and joined, not
added, and every later step (validate, Feast, training) handles text keys, while
decimal columns are poorly supported downstream.

A column only turns to text when every value in the first block is a whole number
and at least one is beyond int64; a float column with one huge value stays float.
"""

from __future__ import annotations

import re
from typing import Collection

import pyarrow as pa
import pyarrow.compute as pc

INT64_BOUND = 2.0**63  # as float64: any integer outside int64 rounds to at least this magnitude
INTEGER_TEXT = r"^\s*[-+]?\d+\s*$"
JSON_EXACT = pa.decimal128(38, 0)  # what JSON integers are read as before they become text
WHY = "integers beyond the int64 range, kept exactly as text"


def float_overflow_candidates(batch: pa.RecordBatch, skip: Collection[str] = ()) -> list[str]:
    """Float columns of ``batch`` holding a finite whole number too large for int64."""
    found = []
    for name, column in zip(batch.schema.names, batch.columns):
        if name in skip or not pa.types.is_floating(column.type):
            continue
        magnitude = pc.abs(column.filter(pc.is_finite(column)))
        big = pc.greater_equal(magnitude, INT64_BOUND)
        if pc.any(big).as_py() and pc.all(pc.equal(pc.floor(magnitude), magnitude)).as_py():
            found.append(name)
    return found


def all_integer_text(column: pa.Array) -> bool:
    """True when every present value of a text column is a whole number as digits."""
    present = column.drop_null()
    return len(present) > 0 and bool(pc.all(pc.match_substring_regex(present, INTEGER_TEXT)).as_py())


def is_big_integer_text(value: str) -> bool:
    """``value`` is a whole number written out that int64 cannot hold."""
    if not re.match(INTEGER_TEXT, value):
        return False
    return not -(2**63) <= int(value) < 2**63


def decimals_to_text(batch: pa.RecordBatch, columns: Collection[str]) -> pa.RecordBatch:
    """``batch`` with the named (decimal) columns as their exact digits."""
    if not columns:
        return batch
    arrays = [c.cast(pa.string()) if n in columns else c for n, c in zip(batch.schema.names, batch.columns)]
    fields = [f.with_type(pa.string()) if f.name in columns else f for f in batch.schema]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
