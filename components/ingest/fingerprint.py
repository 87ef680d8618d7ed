"""A content fingerprint of tabular data that does not depend on how it was chunked.

The same rows in the same order with the same schema give the same fingerprint,
whether they arrived as one batch or thousands, from CSV or from Parquet with the
same types. Per column, a running hash takes the value bytes (for strings, their
lengths and the concatenated UTF-8 bytes, hashed
separately so that batch boundaries do not matter) and the global positions of nulls;
the final digest combines the schema, the row count and every column's digest.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Fingerprint:
    """Feed record batches in order with ``update``; read ``hexdigest()`` at the end."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._values = [hashlib.sha256() for _ in schema]
        self._lengths = [hashlib.sha256() for _ in schema]
        self._nulls = [hashlib.sha256() for _ in schema]
        self._rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        for i, column in enumerate(batch.columns):
            self._update_column(i, column)
        self._rows += batch.num_rows

    def _update_column(self, i: int, column: pa.Array) -> None:
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if column.null_count:
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            positions = np.flatnonzero(~valid).astype(np.int64) + self._rows
            self._nulls[i].update(positions.tobytes())
        t = column.type
        if pa.types.is_null(t):
            return
        if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
            lengths = pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            self._lengths[i].update(lengths.tobytes())
            offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if "large" in str(t) else np.int32)
            start, end = offsets[column.offset], offsets[column.offset + len(column)]
            data = column.buffers()[2]
            if data is not None and end > start:
                self._values[i].update(memoryview(data)[start:end])
            return
        if column.null_count:
            column = _nulls_as_zero(column)
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype == object:  # nested types: rare in tabular data, hash their text form
            self._values[i].update(repr(values.tolist()).encode())
        else:
            self._values[i].update(np.ascontiguousarray(values).view(np.uint8).data)

    def hexdigest(self) -> str:
        final = hashlib.sha256()
        final.update(str(self._schema.remove_metadata()).encode())
        final.update(self._rows.to_bytes(8, "little"))
        for hashers in zip(self._values, self._lengths, self._nulls):
            for hasher in hashers:
                final.update(hasher.digest())
        return final.hexdigest()


def _nulls_as_zero(column: pa.Array) -> pa.Array:
    """Nulls as the type's zero (False, 0, the epoch); a date has no cast from an integer, so it is
    filled through the integer of its width, which gives the same bytes."""
    t = column.type
    if pa.types.is_boolean(t):
        return column.fill_null(False)
    try:
        return column.fill_null(pa.scalar(0).cast(t))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        as_int = pa.int32() if t.bit_width == 32 else pa.int64()
        return column.view(as_int).fill_null(0).view(t)
