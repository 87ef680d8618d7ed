"""Local scratch space of a step, and what a killed attempt of it left behind.

A step killed by SIGKILL (OOM killer, a preempted node, a user's Ctrl-\\) runs no
cleanup: a half-downloaded ``.part`` file, the staging folder it sits in and the
``.<name>.*.tmp`` file of an atomic output stay on disk. On a cluster the pod's
disk goes with the pod, but locally (kfp.local, the CLI) a retry of the step runs
on the same disk, so every attempt first removes what an earlier attempt of the
same step (the same output path) left.

The staging folder's name is derived from the output path so that a retry finds
its predecessor's folder without any record of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

STAGING_PREFIX = "kfp-mlops-staging-"


def staging_dir_for(output_path: str | os.PathLike[str]) -> Path:
    """The staging folder for remote downloads of the step that writes ``output_path``.

    It lies in the system temp folder (``TMPDIR``), not beside the output, because
    the output's folder is uploaded or kept by the orchestrator.
    """
    key = hashlib.sha256(str(Path(output_path).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"{STAGING_PREFIX}{key}"


def atomic_leftovers(output_path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files or folders of ``atomic_path`` for ``output_path`` that an earlier attempt left."""
    final = Path(output_path)
    if not final.parent.is_dir():
        return []
    return sorted(final.parent.glob(f".{_glob_escape(final.name)}.*.tmp"))


def clear_leftovers(output_path: str | os.PathLike[str], *, staging: bool = True) -> list[Path]:
    """Remove what a killed attempt writing ``output_path`` left; returns what was removed.

    Args:
        output_path: The step's output file or folder.
        staging: Also remove ``staging_dir_for(output_path)`` (False when the caller chose
            its own staging folder, which is the caller's to manage).
    """
    candidates = atomic_leftovers(output_path) + ([staging_dir_for(output_path)] if staging else [])
    removed = []
    for path in candidates:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path)
    if removed:
        log.info("removed %d leftover(s) of an earlier, interrupted attempt: %s", len(removed), ", ".join(str(p) for p in removed))
    return removed


def _glob_escape(name: str) -> str:
    # An output named "data[1]" must not match as a character class.
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
