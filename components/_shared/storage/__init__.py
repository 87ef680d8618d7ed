"""Read sources from anywhere a pipeline's data lives, one adapter per system.

``stage_sources(uri, staging_dir)`` turns a URI (a file, a prefix or a glob) into
local files: local paths are used in place, remote objects are streamed to
``staging_dir`` (bounded memory, retried on transient failures). Credentials are
never arguments: each adapter takes them from the environment the way its client
library does (in a cluster, a Kubernetes Secret mounted by kfp-kubernetes). The one
exception is user info or a signature in an http(s) URL, which the http adapter
uses to download; every URI an adapter hands back or puts in an error is redacted
(``redact_uri``), so a caller can log and store it as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from kfp_mlops.components._shared.errors import SourceNotFoundError, UnsupportedSourceError
from kfp_mlops.components._shared.redact import redact_uri

SCHEMES = ("file", "http", "https", "gs", "s3")
GLOB_CHARS = frozenset("*?[")
HIDDEN_PREFIXES = (".", "_")  # Spark/Hadoop markers such as _SUCCESS and .crc files


@dataclass(frozen=True)
class StagedFile:
    """A source file available on local disk.

    Attributes:
        uri: Where it came from, as the user wrote it but redacted (safe in messages and metadata).
        path: Local path to read.
    """

    uri: str
    path: Path


def split_pattern(key: str) -> tuple[str, str | None]:
    """Split an object key into the listing prefix and a glob pattern (or None)."""
    first_glob = next((i for i, ch in enumerate(key) if ch in GLOB_CHARS), None)
    if first_glob is None:
        return key, None
    return key[:first_glob], key


@dataclass(frozen=True)
class ObjectRef:
    """A bucket URI split for listing.

    Attributes:
        bucket: Bucket name.
        key: Object key or prefix as written.
        prefix: What to list by (the key up to its first glob character).
        pattern: The glob the listed names must match, or None.
    """

    bucket: str
    key: str
    prefix: str
    pattern: str | None

    @property
    def single_object(self) -> bool:
        """True when the URI names one object rather than a prefix or a glob."""
        return self.pattern is None and bool(self.key) and not self.key.endswith("/")


def parse_object_uri(uri: str) -> ObjectRef:
    """Split ``scheme://bucket/key`` for the object-store adapters."""
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise SourceNotFoundError("no bucket in URI", where=redact_uri(uri), fix=f"write it as {parsed.scheme}://BUCKET/PATH")
    if "@" in parsed.netloc:
        # The object-store clients would read "key:secret@bucket" as a bucket name.
        raise UnsupportedSourceError(
            "credentials in an object-store URI are not supported",
            where=redact_uri(uri),
            fix="remove them from the URI and provide them through the environment (a Kubernetes Secret in a cluster)",
        )
    key = parsed.path.lstrip("/")
    prefix, pattern = split_pattern(key)
    return ObjectRef(bucket=parsed.netloc, key=key, prefix=prefix, pattern=pattern)


def is_data_name(name: str) -> bool:
    """False for hidden and marker files that sit beside data files."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return bool(base) and not base.startswith(HIDDEN_PREFIXES)


def stage_sources(uri: str, staging_dir: Path) -> list[StagedFile]:
    """Resolve ``uri`` to a sorted, non-empty list of local files.

    Raises:
        UnsupportedSourceError: the scheme is not one of ``SCHEMES``.
        SourceNotFoundError: nothing exists at ``uri``.
        SourceAccessDeniedError: the environment's credentials may not read it.
        SourceError: the source kept failing after retries.
    """
    if not uri or not uri.strip():
        raise UnsupportedSourceError("no source URI given", fix="pass a local path, file://, http(s)://, gs:// or s3:// URI")
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) <= 1:  # a bare path (a one-letter "scheme" is a Windows drive)
        scheme = ""
    if scheme in ("", "file"):
        from kfp_mlops.components._shared.storage import local

        files = local.resolve(uri)
    elif scheme in ("http", "https"):
        from kfp_mlops.components._shared.storage import http

        files = http.stage(uri, staging_dir)
    elif scheme == "gs":
        from kfp_mlops.components._shared.storage import gcs

        files = gcs.stage(uri, staging_dir)
    elif scheme == "s3":
        from kfp_mlops.components._shared.storage import s3

        files = s3.stage(uri, staging_dir)
    else:
        raise UnsupportedSourceError(
            f"unsupported URI scheme {scheme!r}",
            where=redact_uri(uri),
            fix=f"use one of: a local path, {', '.join(s + '://' for s in SCHEMES)}",
        )
    if not files:
        raise SourceNotFoundError("no data files match", where=redact_uri(uri), fix="check the path, prefix or glob")
    return files


def local_name(uri: str, index: int) -> str:
    """A collision-free local file name for the index-th object of a listing, keeping its extension."""
    base = uri.rstrip("/").rsplit("/", 1)[-1] or "object"
    return f"{index:05d}-{base}"
