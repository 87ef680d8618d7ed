"""Local paths and file:// URIs: a file, a folder (its data files, recursively) or a glob."""

from __future__ import annotations

import glob
from pathlib import Path
from urllib.parse import unquote, urlparse

from kfp_mlops.components._shared.errors import SourceAccessDeniedError, SourceNotFoundError
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components._shared.storage import GLOB_CHARS, StagedFile, is_data_name


def to_path(uri: str) -> str:
    """The filesystem path of a local path or file:// URI."""
    if uri.lower().startswith("file://"):
        return unquote(urlparse(uri).path)
    return uri


def resolve(uri: str) -> list[StagedFile]:
    path = to_path(uri)
    if GLOB_CHARS & set(path):
        matches = sorted(p for p in glob.glob(path, recursive=True) if Path(p).is_file())
        return [StagedFile(uri=m, path=Path(m)) for m in matches if is_data_name(m)]
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and is_data_name(f.name))
        return [StagedFile(uri=str(f), path=f) for f in files]
    if not p.exists():
        raise SourceNotFoundError("file does not exist", where=redact_uri(uri), fix="check the path (relative paths start from the working directory)")
    try:
        with p.open("rb"):
            pass
    except PermissionError as exc:
        raise SourceAccessDeniedError("file is not readable", where=redact_uri(uri), fix="fix its permissions") from exc
    return [StagedFile(uri=redact_uri(uri), path=p)]
