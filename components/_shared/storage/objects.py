"""Write, list and read whole objects: a local folder, s3:// or gs://.

``stage_sources`` (this package) reads a user's data; this module is the small
read/write primitive for what kfp-mlops itself keeps under a prefix, such as the
prediction log. Credentials come from the environment the way each client
library takes them (see ``s3.py`` and ``gcs.py``); every URI in an error is
redacted.

A client is made per call unless one is passed in (``client_for(uri)``): a
caller that writes often (the prediction log's writer thread) makes one and
reuses it. Local writes are atomic (a hidden temporary file beside the target,
then a rename), so a killed process never leaves a partial file under its final
name; readers skip the hidden temporaries.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kfp_mlops.components._shared.errors import (
    SourceAccessDeniedError,
    SourceError,
    SourceNotFoundError,
    UnsupportedSourceError,
)
from kfp_mlops.components._shared.redact import redact_text, redact_uri
from kfp_mlops.components._shared.storage import parse_object_uri
from kfp_mlops.components._shared.storage.local import to_path

OBJECT_SCHEMES = ("s3", "gs")
TEMP_SUFFIX = ".tmp"
# Bounded so a store that is down stalls a writer for seconds, not minutes.
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
RETRY_WINDOW_S = 30.0


def scheme_of(uri: str) -> str:
    """``""`` for a local path or file:// URI, else the lower-case scheme.

    Raises:
        UnsupportedSourceError: a scheme this module cannot write (http, ftp, ...).
    """
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) <= 1 or scheme == "file":  # a one-letter "scheme" is a Windows drive
        return ""
    if scheme not in OBJECT_SCHEMES:
        raise UnsupportedSourceError(
            f"cannot write to a {scheme}:// URI",
            where=redact_uri(uri),
            fix="use a local folder (/path or file:///path), s3://BUCKET/PREFIX or gs://BUCKET/PREFIX",
        )
    return scheme


def client_for(uri: str) -> Any:
    """A client for ``uri``'s store to pass to the other functions (None for local paths)."""
    scheme = scheme_of(uri)
    if scheme == "s3":
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"mode": "standard", "max_attempts": 3},
        )
        return boto3.client("s3", config=config)
    if scheme == "gs":
        from kfp_mlops.components._shared.storage import gcs

        return gcs._client()
    return None


def put_object(uri: str, data: bytes, *, client: Any = None) -> None:
    """Write ``data`` as the object (or file) ``uri``, replacing one that exists.

    Raises:
        SourceNotFoundError: the bucket does not exist.
        SourceAccessDeniedError: the credentials may not write there.
        SourceError: the store failed or is unreachable.
    """
    scheme = scheme_of(uri)
    if scheme == "":
        _put_local(Path(to_path(uri)), data, uri)
    elif scheme == "s3":
        ref = parse_object_uri(uri)
        _s3_call(uri, "write", lambda c: c.put_object(Bucket=ref.bucket, Key=ref.key, Body=data), client)
    else:
        ref = parse_object_uri(uri)

        def upload(c: Any) -> None:
            from google.cloud.storage.retry import DEFAULT_RETRY

            # Rewriting the same bytes is harmless, so the upload may be retried (the library
            # retries uploads only when told to); bounded so a store that is down stalls briefly.
            blob = c.bucket(ref.bucket).blob(ref.key)
            blob.upload_from_string(
                data,
                content_type="application/octet-stream",
                retry=DEFAULT_RETRY.with_timeout(RETRY_WINDOW_S),
                timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            )

        _gcs_call(uri, "write", upload, client)


def list_objects(prefix_uri: str, *, client: Any = None) -> list[str]:
    """URIs of every object under the folder ``prefix_uri``, sorted; [] when there are none.

    ``prefix_uri`` names a folder: ``s3://b/logs`` lists ``s3://b/logs/...``, not
    ``s3://b/logs-old/...``. Local results are plain paths, or file:// URIs when
    the prefix was one. Hidden temporaries are included: callers filter names.
    """
    scheme = scheme_of(prefix_uri)
    if scheme == "":
        root = Path(to_path(prefix_uri))
        if not root.is_dir():
            return []
        as_uri = prefix_uri.lower().startswith("file://")
        files = sorted(str(p) for p in root.rglob("*") if p.is_file())
        return [f"file://{f}" if as_uri else f for f in files]
    ref = parse_object_uri(prefix_uri)
    prefix = ref.key if not ref.key or ref.key.endswith("/") else ref.key + "/"
    if scheme == "s3":

        def list_s3(c: Any) -> list[str]:
            keys: list[str] = []
            for page in c.get_paginator("list_objects_v2").paginate(Bucket=ref.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
            return keys

        names = _s3_call(prefix_uri, "list", list_s3, client)
    else:
        names = _gcs_call(prefix_uri, "list", lambda c: [b.name for b in c.list_blobs(ref.bucket, prefix=prefix)], client)
    return sorted(f"{scheme}://{ref.bucket}/{name}" for name in names if not name.endswith("/"))


def get_object(uri: str, *, client: Any = None) -> bytes:
    """The bytes of the object (or file) ``uri``.

    Raises:
        SourceNotFoundError: no such object, file or bucket.
        SourceAccessDeniedError: the credentials may not read it.
        SourceError: the store failed or is unreachable.
    """
    scheme = scheme_of(uri)
    if scheme == "":
        path = Path(to_path(uri))
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise SourceNotFoundError("file does not exist", where=redact_uri(uri), fix="check the path") from exc
        except PermissionError as exc:
            raise SourceAccessDeniedError("file is not readable", where=redact_uri(uri), fix="fix its permissions") from exc
    ref = parse_object_uri(uri)
    if scheme == "s3":
        return _s3_call(uri, "read", lambda c: c.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read(), client)
    return _gcs_call(uri, "read", lambda c: c.bucket(ref.bucket).blob(ref.key).download_as_bytes(), client)


def _put_local(target: Path, data: bytes, uri: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600: a log of predictions may hold personal data.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    except PermissionError as exc:
        raise SourceAccessDeniedError("folder is not writable", where=str(target.parent), fix="fix its permissions or choose another folder") from exc
    except OSError as exc:
        raise SourceError(f"cannot create a file ({exc.strerror})", where=str(target.parent), fix="check the folder and the disk") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_name, target)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise SourceError(f"writing failed ({exc.strerror})", where=redact_uri(uri), fix="check free disk space and the folder") from exc


def _s3_call(uri: str, action: str, call: Any, client: Any) -> Any:
    import botocore.exceptions as bexc

    from kfp_mlops.components._shared.storage import s3

    try:
        return call(client if client is not None else client_for(uri))
    except (bexc.ClientError, bexc.BotoCoreError) as exc:
        raise s3.failure(exc, uri, action=action, permissions="s3:PutObject, s3:GetObject, s3:ListBucket", missing_fix="check the bucket and object names; create the bucket first") from exc


def _gcs_call(uri: str, action: str, call: Any, client: Any) -> Any:
    import requests
    from google.api_core import exceptions as gexc

    shown = redact_uri(uri)
    try:
        return call(client if client is not None else client_for(uri))
    except gexc.NotFound as exc:
        raise SourceNotFoundError(f"GCS {action} failed: not found", where=shown, fix="check the bucket and object names; create the bucket first") from exc
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise SourceAccessDeniedError(
            f"GCS denied {action} access",
            where=shown,
            fix="grant the service account storage.objects.create/get/list on the bucket (or set GOOGLE_APPLICATION_CREDENTIALS)",
        ) from exc
    except (gexc.GoogleAPIError, requests.RequestException) as exc:
        raise SourceError(f"GCS {action} failed: {redact_text(str(exc))}", where=shown, fix="retry; check the bucket and the network") from exc
