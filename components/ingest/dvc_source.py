"""dvc:// sources: one file of a DVC repository, read at a git revision.

The source is ``dvc://<repo>#<path>@<rev>``, or the repository and the revision as
separate parameters with the source naming the path (``parse``):

- ``<repo>`` is what ``git clone`` takes: a local folder (a bare repository too),
  file://, https://, ssh:// or scp-like ``git@host:org/repo.git``. Everything between
  ``dvc://`` and the one ``#`` is the repository, so an ssh user's ``@`` is fine; a
  second ``#`` makes the split ambiguous and is refused (pass the parts separately).
- ``<path>`` is relative to the repository's root and never leaves it (no ``..``).
- ``<rev>`` is a tag, branch or commit (``HEAD``: the default branch's latest commit),
  everything after the last ``@``: a path may hold ``@``, a revision in the URI may not.

The bytes stream from the DVC remote (``DVCFileSystem.open``, the reader behind
``dvc.api.open``) into the staging folder in 1 MiB chunks, like every other remote
source, and are checked against the md5 DVC recorded. One repository object serves the
md5, the commit and the bytes, so all three come from the same commit even when a
branch moves meanwhile.

Credentials never travel in the URL (a URL is a pipeline parameter, shown with the
run): a password, an http(s) user or a token parameter is refused before anything is
contacted. git takes its credentials from the environment (an ssh key, a credential
helper), the DVC remote from its own (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, ...).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

from kfp_mlops.components._shared.errors import KfpMlopsError, SourceError, SourceNotFoundError, UnsupportedSourceError
from kfp_mlops.components._shared.redact import SECRET_QUERY_KEYS, redact_text, redact_uri
from kfp_mlops.components._shared.split_artifact import DataVersion
from kfp_mlops.components._shared.storage import GLOB_CHARS, StagedFile, local_name

SCHEME = "dvc://"
CHUNK_BYTES = 1 << 20
INSTALL = 'pip install "kfp-mlops[dvc]"'
URI_EXAMPLE = "dvc:///srv/git/data.git#data/train.csv@v1"
# DVC 2 hashed text files after converting line ends: such an md5 is not the md5 of the bytes.
LEGACY_HASHES = ("md5-dos2unix",)
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^@/:]+):")
# Whitespace, control characters, ':' (rev:path reads a blob), '..' (a range) and a leading '-' (an option).
_NOT_A_REV = re.compile(r"[\x00-\x20\x7f:\\]|\.\.|^-")
_CREDENTIALS_FIX = (
    "remove them from the URL. git takes credentials from the environment: an ssh key, or a git credential "
    "helper (e.g. a .git-credentials file mounted from a Kubernetes Secret); the DVC remote takes its own "
    "(AWS_*, GOOGLE_APPLICATION_CREDENTIALS, ...)"
)


@dataclass(frozen=True)
class DvcRef:
    """One file of a DVC repository at a revision.

    Attributes:
        repo: The repository as given (an ssh user at most, never a password).
        path: The file's path from the repository's root, normalized.
        rev: The revision asked for.
    """

    repo: str
    path: str
    rev: str

    @property
    def shown_repo(self) -> str:
        """The repository without user info: safe in messages and metadata."""
        return shown_repo(self.repo)

    @property
    def uri(self) -> str:
        """The source as a dvc:// URI, redacted."""
        return f"{SCHEME}{self.shown_repo}#{self.path}@{self.rev}"


def is_dvc(source_uri: str, repo: str = "") -> bool:
    """True when the source is read from a DVC repository."""
    return bool(repo.strip()) or source_uri.strip().lower().startswith(SCHEME)


def shown_repo(repo: str) -> str:
    """``repo`` without user info, for URLs and scp-like ``user:password@host:path`` alike."""
    if "://" in repo:
        return redact_uri(repo)
    match = _SCP_LIKE.match(repo)
    if match and match.group("user") and ":" in match.group("user"):
        return repo[match.start("host") :]
    return repo


def parse(source_uri: str, *, repo: str = "", rev: str = "") -> DvcRef:
    """The file that a dvc:// URI, or a path with ``repo`` and ``rev``, names.

    Raises:
        UnsupportedSourceError: an ambiguous or incomplete source, a path leaving the
            repository, or credentials in the repository URL (checked first, before
            anything is contacted).
    """
    source = source_uri.strip()
    if repo.strip():
        if source.lower().startswith(SCHEME) or "://" in source:
            raise UnsupportedSourceError(
                "with a DVC repository given (dvc_repo), the source must be the file's path inside it, not a URI",
                where=redact_text(source),
                fix="pass e.g. data/train.csv as the source, or leave dvc_repo empty and pass the whole dvc:// URI",
            )
        return _checked(repo.strip(), source, rev.strip())
    if rev.strip():
        raise UnsupportedSourceError(
            "a DVC revision (dvc_rev) was given without a DVC repository (dvc_repo)",
            fix=f"pass dvc_repo too, or write the source as {URI_EXAMPLE} and leave dvc_rev empty",
        )
    shown = redact_text(source)
    rest = source[len(SCHEME) :]
    if rest.count("#") != 1:
        problem = "has no '#' between the repository and the file's path" if "#" not in rest else "has more than one '#', so where the repository ends is ambiguous"
        raise UnsupportedSourceError(
            f"the dvc:// URI {problem}",
            where=shown,
            fix=f"write dvc://REPO#PATH@REV, e.g. {URI_EXAMPLE}; for a repository URL or path holding '#', pass the repository, path and revision separately (dvc_repo, source_uri, dvc_rev)",
        )
    repo_part, target = rest.split("#")
    path, at, rev_part = target.rpartition("@")
    if not at:
        raise UnsupportedSourceError(
            "the dvc:// URI names no revision",
            where=shown,
            fix="end it with @REV: a tag, branch or commit (@HEAD for the default branch's latest commit), e.g. #data/train.csv@v1",
        )
    return _checked(repo_part, path, rev_part)


def _checked(repo: str, path: str, rev: str) -> DvcRef:
    if not repo:
        raise UnsupportedSourceError("no DVC repository given", fix=f"write the source as {URI_EXAMPLE}")
    _refuse_credentials(repo)
    if not rev:
        raise UnsupportedSourceError("no git revision given", where=shown_repo(repo), fix="name a tag, branch or commit (HEAD for the default branch's latest commit)")
    if _NOT_A_REV.search(rev):
        raise UnsupportedSourceError(f"{rev[:100]!r} is not a git revision", where=shown_repo(repo), fix="name a tag, branch or commit, e.g. v1, main or a commit sha")
    return DvcRef(repo=repo, path=_inside_repo(path, repo), rev=rev)


def _refuse_credentials(repo: str) -> None:
    found = False
    if "://" in repo:
        try:
            parts = urlsplit(repo)
            user, password = parts.username, parts.password
        except ValueError as exc:
            raise UnsupportedSourceError(f"the DVC repository is not a valid URL ({exc})", where=shown_repo(repo), fix="check the URL") from exc
        # A token often travels as the user name of an https URL; an ssh user name is no secret.
        found = password is not None or (bool(user) and parts.scheme.lower() in ("http", "https"))
        found = found or any(SECRET_QUERY_KEYS.match(key) for key, _ in parse_qsl(parts.query))
    else:
        match = _SCP_LIKE.match(repo)
        found = bool(match and match.group("user") and ":" in match.group("user"))
    if found:
        raise UnsupportedSourceError(
            "the DVC repository URL holds credentials, which would be shown with the run's parameters and logs",
            where=shown_repo(repo),
            fix=_CREDENTIALS_FIX,
        )


def _inside_repo(path: str, repo: str) -> str:
    raw = path.strip()
    where = shown_repo(repo)
    if not raw:
        raise UnsupportedSourceError("no file path inside the DVC repository given", where=where, fix=f"name one file, e.g. {URI_EXAMPLE}")
    if raw.startswith(("/", "\\")) or ".." in PurePosixPath(raw.replace("\\", "/")).parts:
        raise UnsupportedSourceError(
            f"the path {raw[:200]!r} leaves the repository (an absolute path or '..')",
            where=where,
            fix="give the file's path from the repository's root, e.g. data/train.csv",
        )
    normalized = posixpath.normpath(raw)
    if normalized == ".":
        raise UnsupportedSourceError("the path names the repository's root, not a file", where=where, fix="name one file, e.g. data/train.csv")
    if GLOB_CHARS & set(normalized):
        raise UnsupportedSourceError(
            f"the path {normalized[:200]!r} is a pattern; a dvc:// source is one file",
            where=where,
            fix="name one file (merge the files upstream into one, or read them from object storage with a glob)",
        )
    if normalized.endswith(".dvc"):
        raise UnsupportedSourceError(
            f"the path {normalized[:200]!r} names DVC's pointer file, not the data",
            where=where,
            fix=f"name the file it tracks: {normalized[: -len('.dvc')]}",
        )
    return normalized


def stage(ref: DvcRef, staging_dir: Path) -> tuple[StagedFile, DataVersion]:
    """Stream the file ``ref`` names into ``staging_dir``; its ``DataVersion`` beside it.

    Raises:
        UnsupportedSourceError: DVC is not installed.
        SourceNotFoundError: no such repository, revision or file, or the remote lacks the file's data.
        SourceError: the repository or its remote cannot be reached, the repository is no
            DVC repository or names no remote, or the bytes do not match DVC's md5.
        OSError: the staging disk is full or read-only (``errno`` ENOSPC, EDQUOT or EROFS).
    """
    repo_class, filesystem_class, clean_repos = _dvc()
    staging_dir.mkdir(parents=True, exist_ok=True)
    target = staging_dir / local_name(ref.path, 0)
    if _is_local(ref.repo) and not os.path.exists(ref.repo):
        raise SourceNotFoundError("no repository at this path", where=ref.uri, fix="check the path (relative paths start from the working directory)")
    scratch = staging_dir / "dvc"
    scratch.mkdir(exist_ok=True)
    # DVC's index database per clone goes there too.
    config = {"core": {"site_cache_dir": str(scratch / "site-cache")}}
    try:
        with _translated(ref), _temporary_files_in(scratch), repo_class.open(ref.repo, rev=ref.rev, subrepos=True, uninitialized=True, config=config) as repo:
            fs = filesystem_class(repo=repo, subrepos=True)
            md5, hash_name = _recorded_md5(fs, repo, ref)
            commit = repo.get_rev()
            _copy(fs, repo, ref, target, md5, hash_name)
    finally:
        clean_repos()  # forgets the clones DVC keeps for the process's life, and removes them
    return StagedFile(uri=ref.uri, path=target), DataVersion(repo=ref.shown_repo, path=ref.path, rev=ref.rev, commit=commit, md5=md5)


def _dvc() -> tuple[Any, Any, Any]:
    try:
        from dvc.fs.dvc import DVCFileSystem
        from dvc.repo import Repo
        from dvc.repo.open_repo import clean_repos
    except ImportError as exc:
        raise UnsupportedSourceError(f"dvc:// sources need DVC, which is not installed ({exc})", fix=f"install it: {INSTALL} (the data image has it)") from exc
    return Repo, DVCFileSystem, clean_repos


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


@contextlib.contextmanager
def _translated(ref: DvcRef) -> Iterator[None]:
    """DVC's and git's failures as the project's errors, naming the source without credentials."""
    from dvc.config import NoRemoteError
    from dvc.scm import CloneError, RevError, SCMError

    where = ref.uri
    try:
        yield
    except (KfpMlopsError, KeyboardInterrupt):
        raise
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise
        raise SourceError(f"reading from the DVC repository failed: {redact_text(str(exc))[:300]}", where=where, fix="check the repository and its DVC remote, then retry") from exc
    except RevError as exc:
        raise SourceNotFoundError(
            f"the repository has no revision {ref.rev!r}",
            where=where,
            fix=f"name a tag, branch or commit that exists (git ls-remote {ref.shown_repo} lists them); was the tag pushed?",
        ) from exc
    except CloneError as exc:
        raise SourceError(
            f"cannot clone the repository ({redact_text(str(exc.__cause__ or exc))[:300]})",
            where=where,
            fix="check the URL, the network, and git's credentials in the environment (an ssh key or a credential helper, never the URL)",
        ) from exc
    except SCMError as exc:
        raise SourceNotFoundError(f"not a git repository ({redact_text(str(exc))[:300]})", where=where, fix="point the source at the git repository that holds the .dvc files") from exc
    except NoRemoteError as exc:
        raise _no_remote(ref) from exc
    except Exception as exc:  # noqa: BLE001 - any other DVC failure, named for the user without a traceback
        raise SourceError(f"DVC failed: {type(exc).__name__}: {redact_text(str(exc))[:300]}", where=where, fix="check the repository and its DVC configuration at this revision") from exc


def _is_local(repo: str) -> bool:
    return "://" not in repo and not _SCP_LIKE.match(repo)


def _no_remote(ref: DvcRef) -> SourceError:
    return SourceError(
        "the file is tracked by DVC, but the repository names no default DVC remote to read it from",
        where=ref.uri,
        fix="add one in the repository (dvc remote add -d NAME URL), commit .dvc/config, dvc push, and name the new commit",
    )


def _recorded_md5(fs: Any, repo: Any, ref: DvcRef) -> tuple[str, str]:
    """The md5 DVC recorded for the file (from its .dvc file or dvc.lock) and the hash's name; empty for a file git tracks."""
    try:
        info = fs.info(ref.path)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(
            f"no file {ref.path!r} in the repository at {ref.rev!r}",
            where=ref.uri,
            fix="check the path (from the repository's root, case-sensitive) and the revision: git ls-tree -r REV, or dvc list REPO --rev REV",
        ) from exc
    if info.get("type") != "file":
        raise UnsupportedSourceError(f"{ref.path!r} is a folder; a dvc:// source is one file", where=ref.uri, fix="name one file inside it")
    dvc_info = info.get("dvc_info") or {}
    if not dvc_info:
        if getattr(repo, "dvc_dir", None) is None:
            raise SourceError(
                "not a DVC repository at this revision (no .dvc folder)",
                where=ref.uri,
                fix="point the source at the repository that holds the .dvc files (dvc init there), or read the file through its own URL",
            )
        return "", ""  # tracked by git itself: the commit names its bytes
    entry = dvc_info.get("entry")
    hash_info = getattr(entry, "hash_info", None)
    return str(dvc_info.get("md5") or getattr(hash_info, "value", "") or ""), str(getattr(hash_info, "name", "") or "md5")


def _copy(fs: Any, repo: Any, ref: DvcRef, target: Path, md5: str, hash_name: str) -> None:
    """Stream the file to ``target`` (through a .part file), checking the bytes against DVC's md5."""
    part = target.with_name(target.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with part.open("wb") as out:
            try:
                source = fs.open(ref.path, mode="rb")
            except FileNotFoundError as exc:
                raise _absent_from_remote(repo, ref, md5, hash_name) from exc
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
        raise SourceError(
            f"the bytes read from the DVC remote have md5 {digest.hexdigest()}, not the {md5} DVC recorded: the remote's copy is damaged or was overwritten",
            where=ref.uri,
            fix="push the data again from a clone with a good cache (dvc push), then run again",
        )
    part.replace(target)


def _absent_from_remote(repo: Any, ref: DvcRef, md5: str, hash_name: str) -> SourceError:
    """Why DVC found no copy of the file's data: no remote, a remote out of reach, or a file never pushed."""
    from dvc.config import NoRemoteError

    try:
        remote = repo.cloud.get_remote()
    except NoRemoteError:
        return _no_remote(ref)
    shown = redact_uri(str(remote.path))
    odb = remote.legacy_odb if hash_name in LEGACY_HASHES else remote.odb
    object_path = odb.oid_to_path(md5)
    unreachable = f"the DVC remote {shown} cannot be reached"
    unreachable_fix = "check the remote's URL in .dvc/config, the network, and the remote's credentials in the environment"
    try:
        with remote.fs.open(object_path, mode="rb") as probe:
            probe.read(1)
    except FileNotFoundError:
        if remote.fs.protocol == "local" and not os.path.isdir(remote.path):
            return SourceError(f"{unreachable}: the folder does not exist here", where=ref.uri, fix="mount the remote's folder into the step, or use a remote the step can reach")
        if remote.fs.protocol in ("http", "https"):
            # fsspec's http open reports a refused connection as a missing file; a ranged read tells them apart.
            try:
                remote.fs.fs.cat_file(object_path, start=0, end=1)
            except FileNotFoundError:
                pass
            except Exception as exc:  # noqa: BLE001 - any connection failure
                return SourceError(f"{unreachable} ({redact_text(str(exc))[:200]})", where=ref.uri, fix=unreachable_fix)
        return SourceNotFoundError(
            f"the DVC remote {shown} does not hold this file's data (md5 {md5}): it was tracked but never pushed there",
            where=ref.uri,
            fix=f"run dvc push in a clone at {ref.rev} that has the data in its cache (or point the repository's default remote at the store that has it), then run again",
        )
    except Exception as exc:  # noqa: BLE001 - any connection or permission failure of the remote's client
        return SourceError(f"{unreachable} ({type(exc).__name__}: {redact_text(str(exc))[:200]})", where=ref.uri, fix=unreachable_fix)
    return SourceError("DVC could not read the file although its remote holds the data", where=ref.uri, fix="retry; check the remote's settings in .dvc/config")


def summary_line(version: DataVersion) -> str:
    """The dataset summary's Markdown line naming the data's revision (``md_code`` keeps it on one line)."""
    from kfp_mlops.components._shared.markdown import md_code

    md5 = f", DVC md5 {md_code(version.md5)}" if version.md5 else " (tracked by git itself, not DVC)"
    return f"- **Data version:** {md_code(version.path)} at {md_code(version.rev)}, commit {md_code(version.commit)}{md5}"
