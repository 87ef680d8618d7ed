"""gs:// sources through google-cloud-storage.

Credentials: Application Default Credentials (Workload Identity, a mounted
service-account key named by GOOGLE_APPLICATION_CREDENTIALS); with none, an
anonymous client reads public buckets. STORAGE_EMULATOR_HOST points the client
at an emulator.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from kfp_mlops.components._shared.errors import SourceAccessDeniedError, SourceError, SourceNotFoundError
from kfp_mlops.components._shared.redact import redact_text, redact_uri
from kfp_mlops.components._shared.storage import StagedFile, is_data_name, local_name, parse_object_uri


def _client():  # -> google.cloud.storage.Client
    import google.auth.exceptions
    from google.cloud import storage

    try:
        return storage.Client()
    except (google.auth.exceptions.DefaultCredentialsError, OSError):
        return storage.Client.create_anonymous_client()


def stage(uri: str, staging_dir: Path) -> list[StagedFile]:
    from google.api_core import exceptions as gexc

    ref = parse_object_uri(uri)
    client = _client()
    bucket = client.bucket(ref.bucket)
    try:
        if ref.single_object:
            names = [ref.key]
        else:
            names = [b.name for b in client.list_blobs(bucket, prefix=ref.prefix) if is_data_name(b.name) and (ref.pattern is None or fnmatch.fnmatchcase(b.name, ref.pattern))]
        staging_dir.mkdir(parents=True, exist_ok=True)
        staged = []
        for i, name in enumerate(sorted(names)):
            target = staging_dir / local_name(name, i)
            # download_to_filename streams in chunks and retries transient errors itself.
            bucket.blob(name).download_to_filename(str(target))
            staged.append(StagedFile(uri=f"gs://{ref.bucket}/{name}", path=target))
        return staged
    except gexc.NotFound as exc:
        what = "object" if _bucket_exists(bucket) else "bucket"
        raise SourceNotFoundError(f"GCS {what} not found", where=redact_uri(uri), fix=f"check the {what} name and the project it lives in") from exc
    except gexc.Forbidden as exc:
        raise SourceAccessDeniedError(
            "GCS denied access",
            where=redact_uri(uri),
            fix="grant the pipeline's service account storage.objects.get/list on the bucket",
        ) from exc
    except gexc.GoogleAPIError as exc:
        raise SourceError(f"GCS request failed: {redact_text(str(exc))}", where=redact_uri(uri), fix="retry; check the bucket") from exc


def _bucket_exists(bucket) -> bool:
    try:
        return bool(bucket.exists())
    except Exception:  # noqa: BLE001 - only refines an error message
        return True
