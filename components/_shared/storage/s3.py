"""s3:// sources through boto3 (AWS S3, MinIO, any S3-compatible store).

Credentials and endpoint come from boto3's own environment chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for MinIO, IRSA);
botocore retries throttling and 5xx in "standard" mode.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from kfp_mlops.components._shared.errors import SourceAccessDeniedError, SourceError, SourceNotFoundError
from kfp_mlops.components._shared.redact import redact_text, redact_uri
from kfp_mlops.components._shared.storage import StagedFile, is_data_name, local_name, parse_object_uri

DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
MISSING = {"NoSuchKey", "404", "NoSuchBucket", "NotFound"}


def _client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def stage(uri: str, staging_dir: Path) -> list[StagedFile]:
    import botocore.exceptions as bexc

    ref = parse_object_uri(uri)
    bucket = ref.bucket
    client = _client()
    try:
        if ref.single_object:
            keys = [ref.key]
        else:
            keys = []
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=ref.prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"]
                    if is_data_name(name) and (ref.pattern is None or fnmatch.fnmatchcase(name, ref.pattern)):
                        keys.append(name)
        staging_dir.mkdir(parents=True, exist_ok=True)
        staged = []
        for i, name in enumerate(sorted(keys)):
            target = staging_dir / local_name(name, i)
            client.download_file(bucket, name, str(target))
            staged.append(StagedFile(uri=f"s3://{bucket}/{name}", path=target))
        return staged
    except (bexc.ClientError, bexc.BotoCoreError) as exc:
        raise failure(exc, uri, action="read", permissions="s3:GetObject, s3:ListBucket", missing_fix="check the bucket and key") from exc


def failure(exc: Exception, uri: str, *, action: str, permissions: str, missing_fix: str) -> SourceError:
    """A boto3 failure as the project's error: missing, denied, unreachable or failed, with the URI redacted."""
    import botocore.exceptions as bexc

    shown = redact_uri(uri)
    if isinstance(exc, bexc.NoCredentialsError):
        return SourceAccessDeniedError("no S3 credentials in the environment", where=shown, fix="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (in a cluster: mount a Secret with kfp-kubernetes)")
    if isinstance(exc, bexc.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return SourceNotFoundError(f"S3 {what} not found ({code})", where=shown, fix=missing_fix)
        if code in DENIED:
            return SourceAccessDeniedError(f"S3 denied access to {action} ({code})", where=shown, fix=f"check the credentials in the environment and the bucket policy ({permissions})")
        return SourceError(f"S3 {action} failed ({code}): {redact_text(str(exc))}", where=shown, fix="retry; check the bucket")
    if isinstance(exc, (bexc.EndpointConnectionError, bexc.ConnectionClosedError)):
        return SourceError(f"S3 endpoint unreachable: {redact_text(str(exc))}", where=shown, fix="check AWS_ENDPOINT_URL and the network")
    return SourceError(f"S3 {action} failed: {redact_text(str(exc))}", where=shown, fix="check AWS_ENDPOINT_URL, the network and that the store is up")
