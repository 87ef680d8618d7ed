"""DVC's and git's failures as the project's errors, each with the exit code that tells what helps.

Exit 2 (fix something, then run again): no such repository, revision or file, no DVC
repository or no default remote at that revision, a remote whose DVC plugin is not
installed, data that was never pushed, a remote folder that does not exist here, a
remote copy whose bytes are not what DVC recorded. Exit 3 (the same step may succeed
when retried): a git host or a remote that cannot be reached, or a failure DVC does not
explain.

A damaged remote copy is exit 2: DVC stores objects under their md5, so a retry reads
the same wrong bytes; fsspec's clients raise on a transfer cut short instead of
returning fewer bytes, so a mismatch is not a network hiccup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import Any, Iterator

from kfp_mlops.components._shared.errors import KfpMlopsError, SourceError, SourceNotFoundError, UnsupportedSourceError
from kfp_mlops.components._shared.redact import redact_text, redact_uri
from kfp_mlops.components.ingest.dvc_uri import DvcRef

# The staging disk full or read-only: re-raised as they are, for exit_on_error to name.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# DVC 2 hashed text files after converting line ends: such an md5 is not the md5 of the bytes.
LEGACY_HASHES = ("md5-dos2unix",)
_PLUGIN = re.compile(r"requires '(?P<package>[A-Za-z0-9_.-]+)' to be installed")


class DvcSourceError(SourceError):
    """The repository's DVC settings at that revision, or the data its remote holds, are wrong: a retry reads the same."""

    exit_code = 2


class DvcNotFoundError(SourceNotFoundError):
    """No such repository, revision or file, or no copy of the file's data on the remote."""

    exit_code = 2


@contextlib.contextmanager
def translated(ref: DvcRef) -> Iterator[None]:
    """Turn what DVC and git raise into the project's errors, naming the source without credentials."""
    from dvc.config import ConfigError, NoRemoteError
    from dvc.scm import CloneError, RevError, SCMError
    from dvc_objects.fs.errors import RemoteMissingDepsError

    where = ref.shown
    try:
        yield
    except (KfpMlopsError, KeyboardInterrupt):
        raise
    except OSError as exc:
        if exc.errno in DISK_ERRNOS:
            raise
        raise SourceError(f"reading from the DVC repository failed: {redact_text(str(exc))[:300]}", where=where, fix="check the repository and its DVC remote, then retry") from exc
    except ImportError as exc:
        raise _missing_plugin(ref, str(exc), _PLUGIN.search(str(exc))) from exc
    except RemoteMissingDepsError as exc:
        missing = ", ".join(exc.missing_deps) or "its client library"
        raise _missing_plugin(ref, f"the {exc.protocol} filesystem lacks {missing}", None, package=f"dvc-{exc.protocol}") from exc
    except RevError as exc:
        raise DvcNotFoundError(
            f"the repository has no revision {ref.rev!r}",
            where=where,
            fix=f"name a tag, branch or commit that exists (git ls-remote {ref.shown_repo} lists them); was the tag pushed?{ref.rev_hint()}",
        ) from exc
    except CloneError as exc:
        raise SourceError(
            f"cannot clone the repository ({redact_text(str(exc.__cause__ or exc))[:300]})",
            where=where,
            fix="check the URL, the network, and git's credentials in the environment (an ssh key or a credential helper, never the URL)",
        ) from exc
    except SCMError as exc:
        raise DvcNotFoundError(f"not a git repository ({redact_text(str(exc))[:300]})", where=where, fix="point the source at the git repository that holds the .dvc files") from exc
    except NoRemoteError as exc:
        raise no_remote(ref) from exc
    except ConfigError as exc:
        raise DvcSourceError(
            f"the repository's DVC configuration is not usable at this revision ({redact_text(str(exc))[:300]})",
            where=where,
            fix="fix .dvc/config in the repository (dvc remote list, dvc config --list), commit it, and name the new commit",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any other DVC failure, named for the user without a traceback
        raise SourceError(f"DVC failed: {type(exc).__name__}: {redact_text(str(exc))[:300]}", where=where, fix="check the repository and its DVC configuration at this revision") from exc


def _missing_plugin(ref: DvcRef, detail: str, match: re.Match[str] | None, package: str = "") -> UnsupportedSourceError:
    package = match.group("package") if match else package
    if not package:
        return UnsupportedSourceError(f"DVC cannot load a module it needs ({detail[:300]})", where=ref.shown, fix='reinstall DVC: pip install "kfp-mlops[dvc]"')
    return UnsupportedSourceError(
        f"the repository's DVC remote needs the DVC plugin {package}, which is not installed here ({detail[:300]})",
        where=ref.shown,
        fix=(
            f"install it where this step runs: pip install {package} (for the cluster, an image built on the kfp-mlops "
            "image with that line, named by the compile-time image option); or keep the data on a remote this image "
            "reads (a local or mounted folder, http(s))"
        ),
    )


def no_remote(ref: DvcRef) -> DvcSourceError:
    return DvcSourceError(
        "the file is tracked by DVC, but the repository names no default DVC remote to read it from",
        where=ref.shown,
        fix="add one in the repository (dvc remote add -d NAME URL), commit .dvc/config, dvc push, and name the new commit",
    )


def absent_from_remote(repo: Any, ref: DvcRef, md5: str, hash_name: str) -> SourceError:
    """Why DVC found no copy of the file's data: no remote, a remote out of reach, or a file never pushed."""
    from dvc.config import NoRemoteError

    try:
        remote = repo.cloud.get_remote()
    except NoRemoteError:
        return no_remote(ref)
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
            return DvcSourceError(
                f"the DVC remote {shown} is a local folder that does not exist here",
                where=ref.shown,
                fix="mount the remote's folder into the step at that path, or use a remote the step can reach; "
                "a relative remote path in .dvc/config is resolved inside the fresh clone, so use an absolute path or a URL",
            )
        if remote.fs.protocol in ("http", "https"):
            # fsspec's http open reports a refused connection as a missing file; a ranged read tells them apart.
            try:
                remote.fs.fs.cat_file(object_path, start=0, end=1)
            except FileNotFoundError:
                pass
            except Exception as exc:  # noqa: BLE001 - any connection failure
                return SourceError(f"{unreachable} ({redact_text(str(exc))[:200]})", where=ref.shown, fix=unreachable_fix)
        return DvcNotFoundError(
            f"the DVC remote {shown} does not hold this file's data (md5 {md5}): it was tracked but never pushed there",
            where=ref.shown,
            fix=f"run dvc push in a clone at {ref.rev} that has the data in its cache (or point the repository's default remote at the store that has it), then run again",
        )
    except Exception as exc:  # noqa: BLE001 - any connection or permission failure of the remote's client
        return SourceError(f"{unreachable} ({type(exc).__name__}: {redact_text(str(exc))[:200]})", where=ref.shown, fix=unreachable_fix)
    return SourceError("DVC could not read the file although its remote holds the data", where=ref.shown, fix="retry; check the remote's settings in .dvc/config")
