"""One process at a time across processes on this machine: an exclusive ``flock`` on a lock file.

Used where local runs share a folder: a local deployment's state, a sqlite MLflow store's
schema, the demo data of a workdir.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import IO, Iterator


def acquire(lock_file: Path) -> IO[str]:
    """The open lock file, locked exclusively (waits for the holder); closing it releases the lock."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = open(lock_file, "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``lock_file`` for the block."""
    with acquire(lock_file):
        yield
