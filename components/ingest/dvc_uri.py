"""The dvc:// grammar: which file of which repository at which revision a source names.

The source is ``dvc://<repo>#<path>@<rev>``, or the repository and the revision as
separate parameters with the source naming the path (``parse``):

- ``<repo>`` is what ``git clone`` takes: a local folder (a bare repository too),
  file://, https://, ssh:// or scp-like ``git@host:org/repo.git``. Everything between
  ``dvc://`` and the one ``#`` is the repository, so an ssh user's ``@`` is fine; a
  second ``#`` makes the split ambiguous and is refused (pass the parts separately).
  A local folder is recorded as an absolute path, so that the lineage names it from anywhere.
- ``<path>`` is relative to the repository's root and never leaves it (no ``..``).
- ``<rev>`` is a tag, branch or commit (``HEAD``: the commit the repository's HEAD names),
  everything after the last ``@``: a path may hold ``@``, a revision in the URI may not.

Credentials never travel in the URL (a URL is a pipeline parameter, shown with the
run): a password, an http(s) user or a token parameter is refused before anything is
contacted.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, urlsplit

from kfp_mlops.components._shared.errors import UnsupportedSourceError
from kfp_mlops.components._shared.redact import SECRET_QUERY_KEYS, redact_text, redact_uri
from kfp_mlops.components._shared.storage import GLOB_CHARS

SCHEME = "dvc://"
URI_EXAMPLE = "dvc:///srv/git/data.git#data/train.csv@v1"
SEPARATE_PARAMETERS = "pass the file's path as source_uri, the repository as dvc_repo and the revision as dvc_rev"
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
        repo: The repository as given (an ssh user at most, never a password); a local
            folder as an absolute path.
        path: The file's path from the repository's root, normalized.
        rev: The revision asked for.
        split_at_last_at: The path came from a dvc:// URI and its file name holds '@': the
            user may have meant part of it as the revision.
    """

    repo: str
    path: str
    rev: str
    split_at_last_at: bool = field(default=False, compare=False)

    @property
    def shown_repo(self) -> str:
        """The repository without user info: safe in messages and metadata."""
        return shown_repo(self.repo)

    @property
    def uri(self) -> str:
        """The source as a dvc:// URI, redacted; ambiguous when the repository holds '#' or the revision '@'."""
        return f"{SCHEME}{self.shown_repo}#{self.path}@{self.rev}"

    @property
    def round_trips(self) -> bool:
        """Whether ``parse(self.uri)`` names this same file again."""
        try:
            back = parse(self.uri)
        except UnsupportedSourceError:
            return False
        return (back.repo, back.path, back.rev) == (self.shown_repo, self.path, self.rev)

    @property
    def recorded_source(self) -> str:
        """What ingest records as the source: the dvc:// URI when it reads back to this file, else the path alone.

        The dataset's metadata always holds ``dvc_repo``, ``dvc_path`` and ``dvc_rev``: passed
        back as dvc_repo, source_uri and dvc_rev they name the same file whatever they hold.
        """
        return self.uri if self.round_trips else self.path

    @property
    def shown(self) -> str:
        """The source for messages: the URI, or its parts where the URI would be ambiguous."""
        return self.uri if self.round_trips else f"{self.shown_repo} (path {self.path!r}, revision {self.rev!r})"

    def rev_hint(self) -> str:
        """For a revision or path that was not found: how a revision holding '@' is passed (a parenthesis, or empty)."""
        if not self.split_at_last_at:
            return ""
        at = self.path.index("@", self.path.rfind("/") + 1)
        meant_path, meant_rev = self.path[:at], f"{self.path[at + 1 :]}@{self.rev}"
        return f" (in a dvc:// URI the revision is what follows the last '@', so this read {self.path!r} at {self.rev!r}; if you meant {meant_path!r} at {meant_rev!r}, {SEPARATE_PARAMETERS})"


def is_dvc(source_uri: str, repo: str = "") -> bool:
    """True when the source is read from a DVC repository."""
    return bool(repo.strip()) or source_uri.strip().lower().startswith(SCHEME)


def is_local(repo: str) -> bool:
    """True for a folder on this machine (given as a path, not a URL)."""
    return "://" not in repo and not _SCP_LIKE.match(repo)


def shown_repo(repo: str) -> str:
    """``repo`` without secrets, for URLs and scp-like ``user:password@host:path`` alike.

    An ssh user name is kept (it is no secret, and the repository cannot be cloned again without it).
    """
    if "://" in repo:
        with contextlib.suppress(ValueError):
            parts = urlsplit(repo)
            if parts.scheme.lower() in ("ssh", "git+ssh") and parts.password is None and not _secret_query(parts.query):
                return repo
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
            fix=f"write dvc://REPO#PATH@REV, e.g. {URI_EXAMPLE}; for a repository URL or path holding '#', {SEPARATE_PARAMETERS}",
        )
    repo_part, target = rest.split("#")
    path, at, rev_part = target.rpartition("@")
    if not at:
        raise UnsupportedSourceError(
            "the dvc:// URI names no revision",
            where=shown,
            fix="end it with @REV: a tag, branch or commit (@HEAD for the commit the repository's HEAD names), e.g. #data/train.csv@v1",
        )
    ref = _checked(repo_part, path, rev_part)
    file_name = ref.path.rsplit("/", 1)[-1]
    return DvcRef(repo=ref.repo, path=ref.path, rev=ref.rev, split_at_last_at="@" in file_name)


def _checked(repo: str, path: str, rev: str) -> DvcRef:
    if not repo:
        raise UnsupportedSourceError("no DVC repository given", fix=f"write the source as {URI_EXAMPLE}")
    _refuse_credentials(repo)
    if not rev:
        raise UnsupportedSourceError("no git revision given", where=shown_repo(repo), fix="name a tag, branch or commit (HEAD for the commit the repository's HEAD names)")
    if _NOT_A_REV.search(rev):
        raise UnsupportedSourceError(f"{rev[:100]!r} is not a git revision", where=shown_repo(repo), fix="name a tag, branch or commit, e.g. v1, main or a commit sha")
    if is_local(repo):
        # The lineage must name the folder from anywhere, not from the directory this step ran in.
        repo = os.path.abspath(repo)
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
        found = found or _secret_query(parts.query)
    else:
        match = _SCP_LIKE.match(repo)
        found = bool(match and match.group("user") and ":" in match.group("user"))
    if found:
        raise UnsupportedSourceError(
            "the DVC repository URL holds credentials, which would be shown with the run's parameters and logs",
            where=shown_repo(repo),
            fix=_CREDENTIALS_FIX,
        )


def _secret_query(query: str) -> bool:
    return any(SECRET_QUERY_KEYS.match(key) for key, _ in parse_qsl(query))


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
