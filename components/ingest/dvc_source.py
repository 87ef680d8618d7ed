"""dvc:// sources: one file of a DVC repository, read at a git revision (the grammar: ``dvc_uri``).

Every read is the read a pod on a cluster makes from a fresh clone: the revision's
committed files and .dvc/config only, the data streamed from that config's default DVC
remote. A local folder is read through a bare copy of its refs and commits
(``_local_copy``), so neither its ``.dvc/cache``, its uncommitted ``.dvc/config`` or
``config.local``, nor its working tree count: data added but never pushed fails here as
it would there. ``HEAD`` is the commit the repository's HEAD names: a hosted
repository's default branch, the branch checked out in a local folder.

The bytes stream from the DVC remote (``DVCFileSystem.open``, the reader behind
``dvc.api.open``) into the staging folder in 1 MiB chunks, like every other remote
source, and are checked against the md5 DVC recorded. One repository object serves the
md5, the commit and the bytes, so all three come from the same commit even when a
branch moves meanwhile. A path git tracks as a symbolic link is refused: its bytes are
the link's target name, and following it could leave the repository.

git takes its credentials from the environment (an ssh key, a credential helper), the
DVC remote from its own (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from kfp_mlops.components._shared.errors import KfpMlopsError, UnsupportedSourceError
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.components._shared.split_artifact import DataVersion
from kfp_mlops.components._shared.storage import StagedFile, local_name
from kfp_mlops.components.ingest.dvc_errors import DISK_ERRNOS, LEGACY_HASHES, DvcNotFoundError, DvcSourceError, absent_from_remote, translated
from kfp_mlops.components.ingest.dvc_uri import DvcRef, is_dvc, is_local, parse

__all__ = ["DvcRef", "is_dvc", "parse", "stage", "summary_line"]

CHUNK_BYTES = 1 << 20
INSTALL = 'pip install "kfp-mlops[dvc]"'


def stage(ref: DvcRef, staging_dir: Path, *, check_file: Callable[[str], object] | None = None) -> tuple[StagedFile, DataVersion]:
    """Stream the file ``ref`` names into ``staging_dir``; its ``DataVersion`` beside it.

    ``check_file`` gets the path once it is known to be one regular file, before any byte
    is read (ingest checks that it can tell the format); its ``KfpMlopsError`` passes through.

    Raises:
        UnsupportedSourceError: DVC or the remote's DVC plugin is not installed; the path is a folder or a symbolic link.
        DvcNotFoundError: no such repository, revision or file, or the remote lacks the file's data (exit 2).
        DvcSourceError: no DVC repository or no default remote at that revision, a remote
            folder missing here, or bytes that do not match DVC's md5 (exit 2).
        SourceError: the repository or its remote cannot be reached (exit 3).
        OSError: the staging disk is full or read-only (``errno`` ENOSPC, EDQUOT or EROFS).
    """
    repo_class, filesystem_class, clean_repos = _dvc()
    staging_dir.mkdir(parents=True, exist_ok=True)
    target = staging_dir / local_name(ref.path, 0)
    scratch = staging_dir / "dvc"
    scratch.mkdir(exist_ok=True)
    # DVC's index database per clone goes there too.
    config = {"core": {"site_cache_dir": str(scratch / "site-cache")}}
    try:
        with translated(ref), _temporary_files_in(scratch):
            source = _local_copy(ref, scratch / "local-copy.git") if is_local(ref.repo) else ref.repo
            with repo_class.open(source, rev=ref.rev, subrepos=True, uninitialized=True, config=config) as repo:
                fs = filesystem_class(repo=repo, subrepos=True)
                md5, hash_name = _recorded_md5(fs, repo, ref)
                if check_file is not None:
                    _checked_with_hint(check_file, ref)
                commit = repo.get_rev()
                _copy(fs, repo, ref, target, md5, hash_name)
    finally:
        clean_repos()  # forgets the clones DVC keeps for the process's life, and removes them
    return StagedFile(uri=ref.recorded_source, path=target), DataVersion(repo=ref.shown_repo, path=ref.path, rev=ref.rev, commit=commit, md5=md5)


def _dvc() -> tuple[Any, Any, Any]:
    try:
        from dvc.fs.dvc import DVCFileSystem
        from dvc.repo import Repo
        from dvc.repo.open_repo import clean_repos
    except ImportError as exc:
        raise UnsupportedSourceError(f"dvc:// sources need DVC, which is not installed ({exc})", fix=f"install it: {INSTALL} (the data image has it)") from exc
    return Repo, DVCFileSystem, clean_repos


def _local_copy(ref: DvcRef, copy: Path) -> str:
    """A bare copy of a local repository's refs and commits, which DVC reads as it reads a clone.

    DVC reads a working copy with its own cache, its uncommitted config and config.local,
    and, with no default remote, a remote it makes up onto that cache. A bare repository
    has none of these: DVC reads the revision from git's objects alone and the data from
    the remote committed there. Branches stay branches, so every revision a clone of the
    folder would find is found. dulwich (DVC's git layer) copies without the git program.
    """
    from dulwich.client import LocalGitClient
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo as GitRepo

    if not os.path.exists(ref.repo):
        raise DvcNotFoundError("no repository at this path", where=ref.shown, fix="check the path (a relative path starts from the working directory)")
    try:
        with GitRepo.init_bare(str(copy), mkdir=True) as bare:
            fetched = LocalGitClient().fetch(ref.repo, bare)
            for name, sha in fetched.refs.items():
                if name != b"HEAD" and not name.endswith(b"^{}") and sha is not None:
                    bare.refs[name] = sha
            head = fetched.symrefs.get(b"HEAD")
            if head:
                bare.refs.set_symbolic_ref(b"HEAD", head)
            elif fetched.refs.get(b"HEAD"):
                # A detached HEAD stays detached (assigning through refs would move the branch HEAD points to).
                (copy / "HEAD").write_bytes(fetched.refs[b"HEAD"] + b"\n")
    except (NotGitRepository, NotADirectoryError) as exc:
        raise DvcNotFoundError("not a git repository (no .git folder, and not a bare repository)", where=ref.shown, fix="point the source at the git repository that holds the .dvc files") from exc
    return str(copy)


@contextlib.contextmanager
def _temporary_files_in(folder: Path) -> Iterator[None]:
    """DVC clones into the system temp folder and leaves a failed clone there; put them in ``folder``.

    ``folder`` lies in the staging folder, which ingest removes even after a killed attempt.
    The setting is the process's for the duration: a step reads one source at a time.
    """
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def _checked_with_hint(check_file: Callable[[str], object], ref: DvcRef) -> None:
    try:
        check_file(ref.path)
    except KfpMlopsError as exc:
        if not ref.split_at_last_at:
            raise
        raise type(exc)(exc.problem, where=exc.where, fix=f"{exc.fix}{ref.rev_hint()}") from exc


def _recorded_md5(fs: Any, repo: Any, ref: DvcRef) -> tuple[str, str]:
    """The md5 DVC recorded for the file (from its .dvc file or dvc.lock) and the hash's name; empty for a file git tracks."""
    try:
        info = fs.info(ref.path)
    except FileNotFoundError as exc:
        raise DvcNotFoundError(
            f"no file {ref.path!r} in the repository at {ref.rev!r}",
            where=ref.shown,
            fix=f"check the path (from the repository's root, case-sensitive) and the revision: git ls-tree -r REV, or dvc list REPO --rev REV{ref.rev_hint()}",
        ) from exc
    if info.get("type") != "file":
        raise UnsupportedSourceError(f"{ref.path!r} is a folder; a dvc:// source is one file", where=ref.shown, fix="name one file inside it (dvc list REPO PATH --rev REV lists them)")
    dvc_info = info.get("dvc_info") or {}
    if not dvc_info:
        if getattr(repo, "dvc_dir", None) is None:
            raise DvcSourceError(
                "not a DVC repository at this revision (no .dvc folder)",
                where=ref.shown,
                fix="point the source at the repository that holds the .dvc files (dvc init there), or read the file through its own URL",
            )
        _refuse_symlink(fs, info, ref)
        return "", ""  # tracked by git itself: the commit names its bytes
    entry = dvc_info.get("entry")
    hash_info = getattr(entry, "hash_info", None)
    return str(dvc_info.get("md5") or getattr(hash_info, "value", "") or ""), str(getattr(hash_info, "name", "") or "md5")


def _refuse_symlink(fs: Any, info: dict[str, Any], ref: DvcRef) -> None:
    """A symbolic link git tracks reads as its target's name; name the target instead of reading it."""
    mode = (info.get("fs_info") or {}).get("mode")
    if mode is None or not stat.S_ISLNK(int(mode)):
        return
    with fs.open(ref.path, mode="rb") as link:
        pointed = link.read(4096).decode("utf-8", errors="replace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(ref.path), pointed))
    inside = not posixpath.isabs(pointed) and resolved != ".." and not resolved.startswith("../")
    fix = f"name the file it points to: {resolved}" if inside else "copy the file into the repository (dvc add it), or read it through its own URL"
    raise UnsupportedSourceError(
        f"{ref.path!r} is a symbolic link to {redact_text(pointed)[:200]!r}{'' if inside else ', outside the repository'}; ingest does not follow links",
        where=ref.shown,
        fix=fix,
    )


def _copy(fs: Any, repo: Any, ref: DvcRef, target: Path, md5: str, hash_name: str) -> None:
    """Stream the file to ``target`` (through a .part file), checking the bytes against DVC's md5."""
    part = target.with_name(target.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with part.open("wb") as out:
            try:
                source = fs.open(ref.path, mode="rb")
            except FileNotFoundError as exc:
                raise absent_from_remote(repo, ref, md5, hash_name) from exc
            with source:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
    except OSError as exc:
        part.unlink(missing_ok=True)
        if exc.errno in DISK_ERRNOS and not exc.filename:
            # A full disk says which disk: the staging folder, not the output.
            raise OSError(exc.errno, os.strerror(exc.errno), str(part)) from exc
        raise
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if md5 and hash_name not in LEGACY_HASHES and digest.hexdigest() != md5:
        part.unlink(missing_ok=True)
        raise DvcSourceError(
            f"the bytes read from the DVC remote have md5 {digest.hexdigest()}, not the {md5} DVC recorded: the remote's copy is damaged or was overwritten",
            where=ref.shown,
            fix="push the data again from a clone with a good cache (dvc push), then run again",
        )
    part.replace(target)


def summary_line(version: DataVersion) -> str:
    """The dataset summary's Markdown line naming the data's revision (``md_code`` keeps it on one line)."""
    from kfp_mlops.components._shared.markdown import md_code

    md5 = f", DVC md5 {md_code(version.md5)}" if version.md5 else " (tracked by git itself, not DVC)"
    # The repository too: where the source line shows the path alone (a URI that would be ambiguous), only this names it.
    return f"- **Data version:** {md_code(version.path)} at {md_code(version.rev)} of {md_code(version.repo)}, commit {md_code(version.commit)}{md5}"
