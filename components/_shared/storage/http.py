"""http(s):// sources: one URL, streamed to disk, 5xx and connection failures retried.

User info in the URL (``https://user:pass@host/...``) is sent as basic auth (requests
takes it from the URL) and a signed URL's query is sent as is; neither ever appears
in a message, a log line or the returned ``StagedFile.uri``.
"""

from __future__ import annotations

import os
from pathlib import Path

import requests

from kfp_mlops.components._shared.errors import SourceAccessDeniedError, SourceError, SourceNotFoundError
from kfp_mlops.components._shared.redact import redact_text, redact_uri
from kfp_mlops.components._shared.retry import TransientError, call_with_retry
from kfp_mlops.components._shared.storage import StagedFile, local_name

CHUNK_BYTES = 1 << 20
TIMEOUT_S = (10, 60)  # connect, read


def _download(uri: str, target: Path) -> None:
    shown = redact_uri(uri)
    try:
        with requests.get(uri, stream=True, timeout=TIMEOUT_S) as resp:
            status = resp.status_code
            if status == 404 or status == 410:
                raise SourceNotFoundError(f"HTTP {status}: no such file", where=shown, fix="check the URL")
            if status in (401, 403):
                raise SourceAccessDeniedError(
                    f"HTTP {status}: access denied",
                    where=shown,
                    fix="check the credentials or the signature of the URL (a signed URL may have expired), or use a URL that needs none",
                )
            if status == 429 or status >= 500:
                raise TransientError(f"HTTP {status}")
            if status >= 400:
                raise SourceError(f"HTTP {status}: {redact_text(str(resp.reason))}", where=shown, fix="check the URL")
            tmp = target.with_name(target.name + ".part")
            try:
                with tmp.open("wb") as out:
                    for chunk in resp.iter_content(CHUNK_BYTES):
                        out.write(chunk)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if exc.filename is None and exc.errno is not None:
                    # A full disk says which disk: the staging folder, not the output.
                    raise OSError(exc.errno, os.strerror(exc.errno), str(tmp)) from exc
                raise
            tmp.replace(target)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientError(type(exc).__name__) from exc


def stage(uri: str, staging_dir: Path) -> list[StagedFile]:
    shown = redact_uri(uri)
    staging_dir.mkdir(parents=True, exist_ok=True)
    # Named after the redacted URL: a URL without a path would otherwise put its user info in a file name.
    target = staging_dir / local_name(shown.split("?", 1)[0], 0)
    try:
        call_with_retry(lambda: _download(uri, target), what=f"download {shown}")
    except (requests.RequestException, TransientError) as exc:
        raise SourceError(f"download kept failing after retries ({redact_text(str(exc))})", where=shown, fix="check that the server is up and retry") from exc
    return [StagedFile(uri=shown, path=target)]
