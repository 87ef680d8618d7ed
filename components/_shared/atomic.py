"""Atomic outputs: a failed step leaves no half-written artifact behind.

Outputs are private to the user that wrote them (files 0600, folders 0700): an
artifact can hold a feature repo's settings, a model or a tracking database, and
other accounts on a shared node have no business reading them.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it into place on success.

    On any exception the temporary file or folder is removed and ``final_path``
    is left as it was (absent, for a fresh artifact).
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        make_private(tmp)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(final: Path) -> None:
    """Remove what a killed attempt at writing ``final`` left (its ``.<name>.*.tmp`` siblings).

    A retried step writes the same output path; the killed attempt never reached its
    cleanup, so the retry does it.
    """
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def make_private(path: Path) -> None:
    """chmod ``path`` (and, for a folder, everything in it) to owner-only."""
    if not path.exists() or path.is_symlink():
        return
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for name in files:
                file = os.path.join(root, name)
                if not os.path.islink(file):
                    os.chmod(file, 0o600)
            os.chmod(root, 0o700)
    else:
        os.chmod(path, 0o600)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
