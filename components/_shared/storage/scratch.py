"""The staging folder of a step's remote downloads, and what a killed attempt left in it.

A step killed by SIGKILL (OOM killer, a preempted node, a user's Ctrl-\\) runs no
cleanup: its staging folder, with a half-downloaded ``.part`` file, stays on disk.
On a cluster the pod's disk goes with the pod, but locally (kfp.local, the CLI) a
retry runs on the same disk. The folder's name is therefore derived from the
step's output path, so that a retry (same output path) finds its predecessor's
folder without any record of it and empties it first. (The ``.tmp`` files of
atomic outputs are removed by ``atomic_path`` itself.)
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
    everything beside the output may be kept or uploaded by the orchestrator.
    """
    key = hashlib.sha256(str(Path(output_path).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"{STAGING_PREFIX}{key}"


def clear_staging(output_path: str | os.PathLike[str]) -> bool:
    """Remove the staging folder an earlier attempt writing ``output_path`` left; True if there was one."""
    staging = staging_dir_for(output_path)
    if not (staging.exists() or staging.is_symlink()):
        return False
    if staging.is_dir() and not staging.is_symlink():
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.unlink(missing_ok=True)
    log.info("removed the staging folder of an earlier, interrupted attempt: %s", staging)
    return True
