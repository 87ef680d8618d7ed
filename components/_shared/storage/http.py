"""http(s):// sources: one URL, streamed to disk, 5xx and connection failures retried."""

from __future__ import annotations

from pathlib import Path

import requests

from kfp_mlops.components._shared.errors import SourceAccessDeniedError, SourceError, SourceNotFoundError
from kfp_mlops.components._shared.retry import TransientError, call_with_retry
from kfp_mlops.components._shared.storage import StagedFile, local_name

CHUNK_BYTES = 1 << 20
TIMEOUT_S = (10, 60)  # connect, read


def _download(uri: str, target: Path) -> None:
    try:
        with requests.get(uri, stream=True, timeout=TIMEOUT_S) as resp:
            status = resp.status_code
            if status == 404 or status == 410:
                raise SourceNotFoundError(f"HTTP {status}: no such file", where=uri, fix="check the URL")
            if status in (401, 403):
                raise SourceAccessDeniedError(
                    f"HTTP {status}: access denied",
                    where=uri,
                    fix="use a URL that needs no credentials, or a signed URL",
                )
            if status == 429 or status >= 500:
                raise TransientError(f"HTTP {status}")
            if status >= 400:
                raise SourceError(f"HTTP {status}: {resp.reason}", where=uri, fix="check the URL")
            tmp = target.with_name(target.name + ".part")
            with tmp.open("wb") as out:
                for chunk in resp.iter_content(CHUNK_BYTES):
                    out.write(chunk)
            tmp.replace(target)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientError(type(exc).__name__) from exc


def stage(uri: str, staging_dir: Path) -> list[StagedFile]:
    staging_dir.mkdir(parents=True, exist_ok=True)
    target = staging_dir / local_name(uri.split("?", 1)[0], 0)
    try:
        call_with_retry(lambda: _download(uri, target), what=f"download {uri}")
    except (requests.RequestException, TransientError) as exc:
        raise SourceError(
            f"download kept failing after retries ({exc})", where=uri, fix="check that the server is up and retry"
        ) from exc
    return [StagedFile(uri=uri, path=target)]
