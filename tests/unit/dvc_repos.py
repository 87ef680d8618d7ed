"""A real git + DVC repository with a local folder remote, for the dvc:// ingest tests.

Two tagged revisions (v1, v2) of a CSV and a Parquet file, pushed to a folder remote;
then the working copy and its cache are deleted, so every read clones the bare repository
and streams from the remote, as in a pod. Branches off v2 hold the broken cases: a file
never pushed, no remote, a remote folder that is gone, an http remote nobody serves, a
remote whose copy is damaged, remotes whose DVC plugin is not installed, and odd paths
(symbolic links, a DVC-tracked folder, an .xlsx file). A branch named feat@x off v1 holds
a revision that a dvc:// URI cannot name.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.services import free_port

QUIET = {"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false"}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
}  # fmt: skip


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    return done.stdout.strip()


def rows_csv(rows: int, seed: int) -> bytes:
    lines = ["entity_id,amount,label"] + [f"{i},{(i * 7919 + seed) % 1000 / 10:.1f},{(i + seed) % 2}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def set_remote(work: Path, url: str | None) -> None:
    remote = f"[core]\n    remote = store\n['remote \"store\"']\n    url = {url}\n" if url else ""
    (work / ".dvc" / "config").write_text(remote)


@dataclass(frozen=True)
class DvcRepo:
    bare: Path
    files: dict[tuple[str, str], bytes]  # (tag, file name) -> the bytes committed
    plain_git: Path
    not_git: Path
    odd: Path  # a copy of the bare repository under a folder holding '#' and '@'

    def uri(self, path: str, rev: str) -> str:
        return f"dvc://{self.bare}#{path}@{rev}"


def init_dvc_repo(work: Path, remote: Path) -> None:
    from dvc.repo import Repo

    (work / "data").mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    Repo.init(str(work)).close()
    set_remote(work, str(remote))


def building_env(env: pytest.MonkeyPatch, root: Path) -> None:
    """While a test builds a repository: DVC's scratch for working copies in the test's folder, not /var/tmp."""
    env.setenv("DVC_NO_ANALYTICS", "1")
    env.setenv("DVC_SITE_CACHE_DIR", str(root / "site-cache"))


def commit_tagged(work: Path, tag: str, *, branch_from: str = "") -> None:
    if branch_from:
        git(work, "checkout", "-q", "-b", f"branch-{tag}", branch_from)
    git(work, "add", "-A")
    git(work, "commit", "-qm", tag)
    git(work, "tag", tag)


def build_dvc_repo(root: Path) -> DvcRepo:
    """The repository described above, built under ``root``."""
    work, remote = root / "work", root / "remote"
    with pytest.MonkeyPatch.context() as env:
        building_env(env, root)
        init_dvc_repo(work, remote)
        files = _tag_good_revisions(work)
        _tag_broken_remotes(work, root, remote, damage=hashlib.md5(files[("v2", "train.csv")]).hexdigest())
        _tag_odd_paths(work)
        files[("feat@x", "train.csv")] = _branch_named_with_at(work)
        git(work, "checkout", "-q", "-f", "main")
        git(root, "clone", "-q", "--bare", str(work), "repo.git")
    shutil.rmtree(work)  # no working copy and no cache: only the bare repository and the remote remain
    plain = root / "plain"
    plain.mkdir()
    git(plain, "init", "-q", "-b", "main")
    (plain / "train.csv").write_text("entity_id,x\n1,2\n")
    commit_tagged(plain, "v1")
    (root / "not-git").mkdir()
    odd = root / "team#1@x" / "data.git"
    shutil.copytree(root / "repo.git", odd)
    return DvcRepo(bare=root / "repo.git", files=files, plain_git=plain, not_git=root / "not-git", odd=odd)


def _add(work: Path, *paths: str, push: bool = True) -> None:
    from dvc.repo import Repo

    with Repo(str(work)) as repo:
        repo.add([str(work / path) for path in paths])
        if push:
            repo.push()


def _tag_good_revisions(work: Path) -> dict[tuple[str, str], bytes]:
    files: dict[tuple[str, str], bytes] = {}
    for tag, rows, seed in (("v1", 60, 1), ("v2", 90, 2)):
        csv = rows_csv(rows, seed)
        (work / "data" / "train.csv").write_bytes(csv)
        pq.write_table(pacsv.read_csv(io.BytesIO(csv)), work / "data" / "train.parquet")
        if tag == "v1":
            (work / "data" / "small.csv").write_bytes(b"entity_id,x\n1,2\n")  # tracked by git itself
        _add(work, "data/train.csv", "data/train.parquet")
        commit_tagged(work, tag)
        files.update({(tag, name): (work / "data" / name).read_bytes() for name in ("train.csv", "train.parquet")})
    return files


def _tag_broken_remotes(work: Path, root: Path, remote: Path, *, damage: str) -> None:
    """Each a tag on a branch off v2; ``damage`` is the md5 whose copy a damaged remote holds wrong."""
    (work / "data" / "train.csv").write_bytes(rows_csv(5, 3))
    _add(work, "data/train.csv", push=False)  # committed, never pushed
    commit_tagged(work, "unpushed", branch_from="v2")
    damaged = root / "damaged-remote"
    shutil.copytree(remote, damaged)
    (damaged / "files" / "md5" / damage[:2] / damage[2:]).write_bytes(b"entity_id,amount,label\n1,2,3\n")
    urls = {
        "no-remote": None, "gone-remote": str(root / "gone"), "http-remote": f"http://127.0.0.1:{free_port()}/store",
        "s3-remote": "s3://bucket/store", "gs-remote": "gs://bucket/store", "damaged-remote": str(damaged),
    }  # fmt: skip
    for tag, url in urls.items():
        git(work, "checkout", "-q", "-f", "v2")
        set_remote(work, url)
        commit_tagged(work, tag, branch_from="v2")


def _tag_odd_paths(work: Path) -> None:
    git(work, "checkout", "-q", "-f", "v2")
    git(work, "checkout", "-q", "-b", "branch-odd-paths")
    (work / "dirdata").mkdir()
    (work / "dirdata" / "part.csv").write_bytes(rows_csv(3, 1))
    (work / "data" / "notes.xlsx").write_text("entity_id,x\n1,2\n")
    os.symlink("small.csv", work / "data" / "link.csv")
    os.symlink("/etc/hostname", work / "data" / "outside.csv")
    _add(work, "dirdata")
    commit_tagged(work, "odd-paths")
    shutil.rmtree(work / "dirdata")  # git ignores it on this branch only


def _branch_named_with_at(work: Path) -> bytes:
    """A branch off v1 that a dvc:// URI cannot name (its revision is what follows the last '@')."""
    git(work, "checkout", "-q", "-f", "v1")
    git(work, "checkout", "-q", "-b", "feat@x")
    data = rows_csv(40, 6)
    (work / "data" / "train.csv").write_bytes(data)
    _add(work, "data/train.csv")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "feat@x")
    return data
