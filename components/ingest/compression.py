"""Compressed source files: the codec is what the bytes say, checked against the name.

pyarrow picks a decompressor from the file extension alone, so a ``.csv.gz`` that
is really plain text (a failed export, an error page saved under the data's name)
or a truncated download used to surface as an ``OSError`` traceback. Here the
first bytes decide: a name that promises compression the bytes do not have is bad
data, and a compressed file whose name does not say so (a URL the user cannot
rename) is read decompressed.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from kfp_mlops.components._shared.errors import DataError, SourceAccessDeniedError

# Suffix -> pyarrow codec name.
SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
TOOLS = {"gzip": "gzip -t", "bz2": "bzip2 -t", "zstd": "zstd -t", "lz4": "lz4 -t"}


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    # "BZh" + block size digit + block or end-of-stream magic: plain text starting "BZh" is not bz2.
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"):
        return "bz2"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    return None


def named_codec(name: str) -> str | None:
    """The codec the name's last suffix promises, or None."""
    return SUFFIXES.get(Path(name.split("?", 1)[0]).suffix.lower())


def codec_of(path: Path, uri: str) -> str | None:
    """The codec of the file at ``path`` (None: not compressed).

    Raises:
        DataError: the name promises a codec the bytes do not have.
        SourceAccessDeniedError: the file may not be read.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(10)
    except PermissionError as exc:
        raise SourceAccessDeniedError("file is not readable", where=uri, fix="fix its permissions, or run the step as a user that may read it") from exc
    found = _sniff(head)
    promised = named_codec(path.name)
    if promised is not None and found != promised:
        actual = f"{found}-compressed" if found else "not compressed"
        suffix = Path(path.name).suffix
        raise DataError(
            f"the name ends in {suffix} but the file is {actual} (it starts with {head[:6]!r})",
            where=uri,
            fix=f"if it is plain text, remove the {suffix} suffix; otherwise re-export or re-download it "
            "(an interrupted or failed export, or an error page saved under the data's name, looks like this)",
        )
    return found


def open_stream(path: Path, codec: str | None) -> pa.NativeFile:
    """A byte stream of the file's content, decompressed."""
    return pa.input_stream(str(path), compression=codec)


def corrupt(codec: str, uri: str, exc: BaseException) -> DataError:
    """The error for a compressed stream that ends early or does not decode."""
    return DataError(
        f"the {codec} data is truncated or corrupt ({exc})",
        where=uri,
        fix=f"re-download or re-export the file (`{TOOLS.get(codec, codec)}` on the file checks it)",
    )
