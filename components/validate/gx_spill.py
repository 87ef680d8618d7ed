"""Exact quantiles and exact uniqueness in bounded memory: values spill to temporary files.

Both are exact where a sketch would be approximate, at the price of temporary disk
(8 bytes per value for a quantile column, 12 per row for a uniqueness check) and a
read of those files after the pass. The dataset itself is read once.

* Quantiles: each value is stored as a 64-bit key whose unsigned order is the value's
  order. An order statistic is found by radix selection: count keys by their top 16
  bits, keep the one bucket that holds the wanted rank, repeat on the next 16 bits,
  until the candidates fit in memory (``IN_MEMORY_KEYS``). At most four reads.
* Uniqueness: 64-bit hashes of values (or of rows of several columns), partitioned by
  their top bits into files, so one partition at a time is sorted. Exact up to hash
  collisions: for 100 million distinct values, a chance of about 1 in 3,700 that two
  different values are counted as one repeated value.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components.validate.statistics import column_hash

IN_MEMORY_KEYS = 4_000_000  # 32 MB of keys sorted in memory at once
CHUNK_KEYS = 1 << 20
SIGN = np.uint64(1 << 63)
RADIX_BITS = 16


def _float_keys(values: np.ndarray) -> np.ndarray:
    bits = values.astype(np.float64, copy=False).view(np.uint64)
    return np.where(bits & SIGN, ~bits, bits | SIGN)


def _float_values(keys: np.ndarray) -> np.ndarray:
    return np.where(keys & SIGN, keys ^ SIGN, ~keys).view(np.float64)


class QuantileSpill:
    """All non-missing values of one numeric column, for exact order statistics at the end."""

    def __init__(self, folder: Path, name: str, value_type: pa.DataType) -> None:
        self.path = folder / f"{name}.keys"
        # Keys: unsigned integers are their own keys; signed ones flip the sign bit; the rest go through float64.
        self.kind = "unsigned" if pa.types.is_unsigned_integer(value_type) else "signed" if pa.types.is_integer(value_type) else "float"
        self.count = 0
        self.path.touch()

    def add(self, present: pa.Array) -> None:
        """Values without nulls and NaN."""
        if not len(present):
            return
        if self.kind == "unsigned":
            keys = present.cast(pa.uint64()).to_numpy(zero_copy_only=False)
        elif self.kind == "signed":
            keys = present.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64) ^ SIGN
        else:
            floats = present.cast(pa.float64()).to_numpy(zero_copy_only=False)
            keys = _float_keys(floats + 0.0)  # -0.0 and 0.0 are one value
        # Opened per batch, not kept open: a suite may name thousands of columns.
        with open(self.path, "ab") as out:
            keys.tofile(out)
        self.count += len(keys)

    def order_statistics(self, ranks: list[int]) -> list[float | int]:
        """The values at 0-based ``ranks`` of the sorted column."""
        found = {rank: self._select(rank) for rank in sorted(set(ranks))}
        return [found[r] for r in ranks]

    def _chunks(self):
        with open(self.path, "rb") as source:
            while True:
                chunk = np.fromfile(source, dtype=np.uint64, count=CHUNK_KEYS)
                if not len(chunk):
                    return
                yield chunk

    def _select(self, rank: int) -> float | int:
        prefix, bits, count = np.uint64(0), 0, self.count
        while True:
            if bits >= 64:
                return self._value(prefix)  # every key left is this one
            if count <= IN_MEMORY_KEYS:
                candidates = np.concatenate([c[self._matching(c, prefix, bits)] for c in self._chunks()] or [np.empty(0, np.uint64)])
                key = np.partition(candidates, rank)[rank]
                return self._value(key)
            shift = np.uint64(64 - bits - RADIX_BITS)
            histogram = np.zeros(1 << RADIX_BITS, dtype=np.int64)
            for chunk in self._chunks():
                inside = chunk[self._matching(chunk, prefix, bits)]
                histogram += np.bincount(((inside >> shift) & np.uint64((1 << RADIX_BITS) - 1)).astype(np.int64), minlength=1 << RADIX_BITS)
            cumulative = np.cumsum(histogram)
            bucket = int(np.searchsorted(cumulative, rank, side="right"))
            rank -= int(cumulative[bucket - 1]) if bucket else 0
            count = int(histogram[bucket])
            prefix = (prefix << np.uint64(RADIX_BITS)) | np.uint64(bucket)
            bits += RADIX_BITS

    @staticmethod
    def _matching(chunk: np.ndarray, prefix: np.uint64, bits: int) -> np.ndarray:
        if bits == 0:
            return np.ones(len(chunk), dtype=bool)
        return (chunk >> np.uint64(64 - bits)) == prefix

    def _value(self, key: np.uint64) -> float | int:
        keys = np.array([key], dtype=np.uint64)
        if self.kind == "unsigned":
            return int(keys[0])
        if self.kind == "signed":
            return int((keys ^ SIGN).view(np.int64)[0])
        return float(_float_values(keys)[0])


def _hashable(column: pa.Array) -> pa.Array:
    """One form per value, as pandas compares them: decoded categories, NaN as missing, -0.0 as 0.0."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_floating(column.type):
        column = pc.add(pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column), pa.scalar(0.0, column.type))
    return column


def missing_mask(column: pa.Array) -> np.ndarray:
    """Null, or NaN (pandas, and so GX, calls both missing)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    missing = pc.is_null(column, nan_is_null=pa.types.is_floating(column.type))
    return missing.to_numpy(zero_copy_only=False)


class UniqueSpill:
    """Rows that repeat a value (of one column or of a tuple of columns), per check, exactly.

    Checks share one set of partition files: the check's number is mixed into each
    hash and stored beside it.
    """

    MULT = np.uint64(0x9E3779B97F4A7C15)
    PARTITIONS = 64
    SHIFT = np.uint64(58)

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "unique"
        self.folder.mkdir()
        self.hash_files = [open(self.folder / f"{i:02d}.hash", "wb") for i in range(self.PARTITIONS)]
        self.check_files = [open(self.folder / f"{i:02d}.check", "wb") for i in range(self.PARTITIONS)]

    def add(self, check: int, columns: list[pa.Array], keep: np.ndarray) -> None:
        """Rows where ``keep`` is true take part in check number ``check``."""
        if not keep.any():
            return
        seed = ((check + 1) * int(self.MULT)) & 0xFFFF_FFFF_FFFF_FFFF  # each check's hashes apart from the others'
        h = np.full(int(keep.sum()), seed, dtype=np.uint64)
        mask = pa.array(keep)
        with np.errstate(over="ignore"):
            for column in columns:
                values = _hashable(column).filter(mask)
                h = (h ^ column_hash(values)) * self.MULT
                h ^= h >> np.uint64(29)
                # A separate round for "is null": a value whose hash equals the null marker stays apart from null.
                h = (h ^ values.is_null().to_numpy(zero_copy_only=False).astype(np.uint64)) * self.MULT
        part = (h >> self.SHIFT).astype(np.uint8)
        order = np.argsort(part, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=self.PARTITIONS))])
        hashes, checks = h[order], np.full(len(h), check, dtype=np.uint32)
        for i in np.flatnonzero(np.diff(bounds)):
            hashes[bounds[i] : bounds[i + 1]].tofile(self.hash_files[i])
            checks[bounds[i] : bounds[i + 1]].tofile(self.check_files[i])

    def rows_repeating(self) -> dict[int, int]:
        """Per check: how many rows share their value with another row (every one of them, as GX counts)."""
        found: dict[int, int] = {}
        for hash_file, check_file in zip(self.hash_files, self.check_files):
            hash_file.close()
            check_file.close()
            hashes = np.fromfile(hash_file.name, dtype=np.uint64)
            if len(hashes) < 2:
                continue
            order = np.argsort(hashes, kind="stable")
            ordered, checks = hashes[order], np.fromfile(check_file.name, dtype=np.uint32)[order]
            same_as_next = ordered[1:] == ordered[:-1]
            repeated = np.zeros(len(ordered), dtype=bool)
            repeated[1:] |= same_as_next
            repeated[:-1] |= same_as_next
            for check, n in zip(*np.unique(checks[repeated], return_counts=True)):
                found[int(check)] = found.get(int(check), 0) + int(n)
        return found

    def close(self) -> None:
        for f in (*self.hash_files, *self.check_files):
            f.close()


class SpillFolder:
    """The temporary folder of one validation's spills, removed when done (or failed)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kfp-mlops-gx-")
        self.path = Path(self._dir.name)

    def cleanup(self) -> None:
        self._dir.cleanup()
