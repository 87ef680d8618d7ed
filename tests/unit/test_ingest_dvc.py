"""ingest of dvc:// sources on a real git + DVC repository with a local folder remote.

The repository (``tests/unit/dvc_repos.py``) is built once per module and read as a pod
reads it: a bare repository cloned afresh, the data streamed from a folder remote. A
working copy, as on a laptop, is built per test where one is needed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.entry import exit_on_error
from kfp_mlops.components._shared.errors import KfpMlopsError, SourceError, UnsupportedSourceError
from kfp_mlops.components._shared.mlflow_adapter import MlflowRun, TrackingSettings, client
from kfp_mlops.components._shared.split_artifact import DataVersion, SplitInfo
from kfp_mlops.components._shared.storage.scratch import staging_dir_for
from kfp_mlops.components.ingest import dvc_source
from kfp_mlops.components.ingest.core import IngestOptions, IngestResult, ingest
from kfp_mlops.components.ingest.dvc_errors import DvcNotFoundError, DvcSourceError
from tests.unit.dvc_repos import QUIET, DvcRepo, build_dvc_repo, building_env, commit_tagged, git, init_dvc_repo, rows_csv, set_remote

__all__ = ["building_env", "commit_tagged", "git", "init_dvc_repo"]  # tests/component/test_dvc_pipeline.py builds its repository with them

KEYS = IngestOptions(entity_column="entity_id", timestamp_column="")
# DVC 3.67 calls a pygtrie accessor that pygtrie now deprecates; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:.*_NoneStep.value will soon raise:DeprecationWarning")


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    for key, value in QUIET.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> DvcRepo:
    return build_dvc_repo(tmp_path_factory.mktemp("dvc"))


def test_each_revision_reads_its_own_rows_md5_and_fingerprint(dvc_repo, tmp_path):
    seen = {}
    for tag in ("v1", "v2"):
        for name in ("train.csv", "train.parquet"):
            uri = dvc_repo.uri(f"data/{name}", tag)
            result = ingest(uri, tmp_path / f"{tag}-{name}.parquet", options=KEYS)
            expected = pacsv.read_csv(io.BytesIO(dvc_repo.files[(tag, "train.csv")]))
            assert pq.read_table(result.path).select(expected.column_names).equals(expected)
            data = dvc_repo.files[(tag, name)]
            version = result.data_version
            assert version == DataVersion(repo=str(dvc_repo.bare), path=f"data/{name}", rev=tag, commit=git(dvc_repo.bare, "rev-parse", f"{tag}^{{commit}}"), md5=hashlib.md5(data).hexdigest())
            # The fingerprint is the same file's as read from a local copy of the same bytes.
            local = tmp_path / f"local-{tag}-{name}"
            local.write_bytes(data)
            assert result.fingerprint == ingest(str(local), tmp_path / f"local-{tag}-{name}.parquet", options=KEYS).fingerprint
            meta = json.loads(json.dumps(result.metadata()))  # as KFP stores it
            assert meta["source_uri"] == uri and meta["files"] == [uri] and meta["rows"] == expected.num_rows
            assert {k: meta[k] for k in ("dvc_repo", "dvc_path", "dvc_rev", "dvc_commit", "dvc_md5")} == version.to_metadata()
            summary = result.summary_markdown()
            assert version.commit in summary and version.md5 in summary
            seen[(tag, name)] = result
    for name in ("train.csv", "train.parquet"):
        v1, v2 = seen[("v1", name)], seen[("v2", name)]
        assert v1.rows == 60 and v2.rows == 90
        assert v1.fingerprint != v2.fingerprint and v1.data_version.md5 != v2.data_version.md5 and v1.data_version.commit != v2.data_version.commit
    assert seen[("v1", "train.csv")].fingerprint == seen[("v1", "train.parquet")].fingerprint  # the same rows, two formats


def test_separate_parameters_read_a_repository_whose_path_holds_hash_and_at(dvc_repo, tmp_path):
    with pytest.raises(UnsupportedSourceError, match="more than one '#'") as caught:
        ingest(f"dvc://{dvc_repo.odd}#data/train.csv@v1", tmp_path / "a.parquet")
    assert "dvc_repo" in str(caught.value)
    result = ingest("data/train.parquet", tmp_path / "b.parquet", dvc_repo=str(dvc_repo.odd), dvc_rev="v1", options=KEYS)
    assert result.rows == 60 and result.data_version.md5 == hashlib.md5(dvc_repo.files[("v1", "train.parquet")]).hexdigest()
    assert result.data_version.repo == str(dvc_repo.odd)


def test_head_and_a_commit_sha_resolve_to_that_commit(dvc_repo, tmp_path):
    head = ingest(dvc_repo.uri("data/train.csv", "HEAD"), tmp_path / "head.parquet", options=KEYS)
    assert head.data_version.commit == git(dvc_repo.bare, "rev-parse", "main") and head.rows == 90
    sha = git(dvc_repo.bare, "rev-parse", "v1^{commit}")
    pinned = ingest(dvc_repo.uri("data/train.csv", sha), tmp_path / "sha.parquet", options=KEYS)
    assert pinned.data_version.commit == sha and pinned.rows == 60


def test_a_file_git_tracks_itself_is_read_with_its_commit_and_no_dvc_md5(dvc_repo, tmp_path):
    result = ingest(dvc_repo.uri("data/small.csv", "v1"), tmp_path / "small.parquet", options=KEYS)
    assert result.rows == 1 and result.data_version.md5 == "" and result.data_version.commit
    assert "tracked by git itself" in result.summary_markdown()


def _read_back(metadata: dict, output: Path) -> IngestResult:
    """Ingest again from what a dataset's metadata records, as a user or a later run would."""
    if metadata["source_uri"].startswith("dvc://"):
        return ingest(metadata["source_uri"], output, options=KEYS)
    return ingest(metadata["source_uri"], output, dvc_repo=metadata["dvc_repo"], dvc_rev=metadata["dvc_rev"], options=KEYS)


def _lineage_cases(repo: DvcRepo) -> dict[str, tuple[dict, bool]]:
    """id -> (ingest's arguments, whether the recorded source is a dvc:// URI)."""
    return {
        "plain URI": ({"source_uri": repo.uri("data/train.csv", "v1")}, True),
        "parts that make a plain URI": ({"source_uri": "data/train.csv", "dvc_repo": str(repo.bare), "dvc_rev": "v2"}, True),
        "repository holding '#'": ({"source_uri": "data/train.parquet", "dvc_repo": str(repo.odd), "dvc_rev": "v1"}, False),
        "revision holding '@'": ({"source_uri": "data/train.csv", "dvc_repo": str(repo.bare), "dvc_rev": "feat@x"}, False),
    }


@pytest.mark.parametrize("case", list(_lineage_cases(DvcRepo(Path("/r"), {}, Path("/p"), Path("/n"), Path("/o")))))
def test_the_recorded_source_reads_back_to_the_same_data(case, dvc_repo, tmp_path):
    arguments, recorded_as_uri = _lineage_cases(dvc_repo)[case]
    result = ingest(output_path=tmp_path / "first.parquet", options=KEYS, **arguments)
    metadata = json.loads(json.dumps(result.metadata()))  # as KFP stores it
    assert metadata["source_uri"].startswith("dvc://") is recorded_as_uri and metadata["files"] == [metadata["source_uri"]]
    if not recorded_as_uri:
        assert metadata["source_uri"] == metadata["dvc_path"]  # the parts travel in dvc_repo and dvc_rev
    assert f"of `{metadata['dvc_repo']}`" in result.summary_markdown()  # the summary names the repository either way
    again = _read_back(metadata, tmp_path / "again.parquet")
    assert (again.fingerprint, again.data_version) == (result.fingerprint, result.data_version)
    # The parts alone always name the file, whatever they hold.
    parts = ingest(metadata["dvc_path"], tmp_path / "parts.parquet", dvc_repo=metadata["dvc_repo"], dvc_rev=metadata["dvc_rev"], options=KEYS)
    assert parts.fingerprint == result.fingerprint


def test_a_revision_holding_at_is_read_through_dvc_rev(dvc_repo, tmp_path):
    result = ingest("data/train.csv", tmp_path / "feat.parquet", dvc_repo=str(dvc_repo.bare), dvc_rev="feat@x", options=KEYS)
    assert result.rows == 40 and result.data_version.md5 == hashlib.md5(dvc_repo.files[("feat@x", "train.csv")]).hexdigest()
    assert result.data_version.commit == git(dvc_repo.bare, "rev-parse", "refs/heads/feat@x")


def test_a_relative_repository_path_is_recorded_absolute(dvc_repo, tmp_path, monkeypatch):
    monkeypatch.chdir(dvc_repo.bare.parent)
    result = ingest(f"dvc://{dvc_repo.bare.name}#data/train.csv@v1", tmp_path / "relative.parquet", options=KEYS)
    assert result.data_version.repo == str(dvc_repo.bare) and result.source_uri == dvc_repo.uri("data/train.csv", "v1")
    monkeypatch.chdir(tmp_path)  # read back from elsewhere
    assert _read_back(json.loads(json.dumps(result.metadata())), tmp_path / "again.parquet").fingerprint == result.fingerprint


def test_an_ssh_user_is_recorded_so_the_repository_can_be_cloned_again():
    for uri in ("dvc://ssh://git@git.example.com/org/data.git#data/train.csv@v1", "dvc://git@git.example.com:org/data.git#data/train.csv@v1"):
        ref = dvc_source.parse(uri)
        assert ref.recorded_source == uri and ref.shown_repo == ref.repo


@pytest.fixture
def working_repo(dvc_repo, tmp_path, monkeypatch) -> Path:
    """A working copy of the repository, on a branch of its own, as on a laptop.

    The branch's last commit tracks data/local.csv, which is in this copy's .dvc/cache and
    was never pushed; data/train.csv there was pushed. Uncommitted changes sit on top:
    data/train.csv changed again and .dvc/config.local pointing the remote at this copy's cache.
    """
    from dvc.repo import Repo

    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(dvc_repo.bare), "work")
    git(work, "checkout", "-q", "-b", "laptop")
    building_env(monkeypatch, tmp_path)
    (work / "data" / "train.csv").write_bytes(rows_csv(30, 4))
    with Repo(str(work)) as repo:
        repo.add([str(work / "data" / "train.csv")])
        repo.push()
    (work / "data" / "local.csv").write_bytes(rows_csv(4, 7))
    with Repo(str(work)) as repo:
        repo.add([str(work / "data" / "local.csv")])  # in this copy's cache only
    git(work, "add", "-A")
    git(work, "commit", "-qm", "laptop work")
    (work / "data" / "train.csv").write_bytes(rows_csv(7, 9))
    with Repo(str(work)) as repo:
        repo.add([str(work / "data" / "train.csv")])  # not committed
    (work / ".dvc" / "config.local").write_text(f"['remote \"store\"']\n    url = {work / '.dvc' / 'cache'}\n")
    return work


def test_a_local_working_repository_is_read_like_a_fresh_clone(working_repo, tmp_path, capsys):
    # HEAD names the branch checked out there, as it does for a clone of the folder; its last commit, not the uncommitted change.
    head = ingest(f"dvc://{working_repo}#data/train.csv@HEAD", tmp_path / "head.parquet", options=KEYS)
    assert head.rows == 30 and head.data_version.commit == git(working_repo, "rev-parse", "laptop")
    assert head.data_version.repo == str(working_repo)
    # Data in the folder's own cache, never pushed, fails as it would from a cluster; config.local does not count.
    raised, code = _fails_cleanly(f"dvc://{working_repo}#data/local.csv@HEAD", tmp_path / "out" / "local.parquet", capsys, options=KEYS)
    assert type(raised) is DvcNotFoundError and "never pushed" in str(raised) and code == 2
    # Other branches of the folder are found as a clone of it finds them.
    assert ingest(f"dvc://{working_repo}#data/train.csv@main", tmp_path / "main.parquet", options=KEYS).rows == 90


def test_a_local_working_repository_without_a_committed_remote_names_the_missing_remote(tmp_path, capsys, monkeypatch):
    from dvc.repo import Repo

    work = tmp_path / "work"
    building_env(monkeypatch, tmp_path)
    init_dvc_repo(work, tmp_path / "remote")
    set_remote(work, None)  # DVC itself would read such a folder from its own cache
    (work / "data" / "train.csv").write_bytes(rows_csv(5, 1))
    with Repo(str(work)) as repo:
        repo.add([str(work / "data" / "train.csv")])
    commit_tagged(work, "v1")
    raised, code = _fails_cleanly(f"dvc://{work}#data/train.csv@v1", tmp_path / "out" / "dataset.parquet", capsys, options=KEYS)
    assert type(raised) is DvcSourceError and "names no default DVC remote" in str(raised) and code == 2


def _errors(repo: DvcRepo) -> dict[str, tuple[str, type, str, int]]:
    """id -> (source, error class, what the message says, exit code).

    Exit 2 for what a fix, not a retry, cures; exit 3 only where the same step may succeed
    when retried (a remote that cannot be reached).
    """
    uri = repo.uri
    return {
        "unknown rev": (uri("data/train.csv", "v9"), DvcNotFoundError, "no revision 'v9'", 2),
        "missing path": (uri("data/nope.csv", "v1"), DvcNotFoundError, "no file 'data/nope.csv'", 2),
        "escapes with ..": (uri("../outside.csv", "v1"), UnsupportedSourceError, "leaves the repository", 2),
        "escapes inside": (uri("data/../../outside.csv", "v1"), UnsupportedSourceError, "leaves the repository", 2),
        "absolute path": (f"dvc://{repo.bare}#/etc/hosts.csv@v1", UnsupportedSourceError, "leaves the repository", 2),
        "pointer file": (uri("data/train.csv.dvc", "v1"), UnsupportedSourceError, "name the file it tracks: data/train.csv", 2),
        "folder": (uri("data", "v1"), UnsupportedSourceError, "is a folder", 2),
        "DVC-tracked folder": (uri("dirdata", "odd-paths"), UnsupportedSourceError, "'dirdata' is a folder; a dvc:// source is one file", 2),
        "unknown format": (uri("data/notes.xlsx", "odd-paths"), UnsupportedSourceError, "cannot tell the format from the extension '.xlsx'", 2),
        "symlink inside": (
            uri("data/link.csv", "odd-paths"),
            UnsupportedSourceError,
            "symbolic link to 'small.csv'; ingest does not follow links\nWhat to do: name the file it points to: data/small.csv",
            2,
        ),
        "symlink outside": (uri("data/outside.csv", "odd-paths"), UnsupportedSourceError, "symbolic link to '/etc/hostname', outside the repository", 2),
        "revision holding @": (uri("data/train.csv@feat", "x"), DvcNotFoundError, "if you meant 'data/train.csv' at 'feat@x', pass the file's path as source_uri", 2),
        "no revision": (f"dvc://{repo.bare}#data/train.csv", UnsupportedSourceError, "names no revision", 2),
        "no path": (f"dvc://{repo.bare}", UnsupportedSourceError, "no '#'", 2),
        "not a DVC repo": (f"dvc://{repo.plain_git}#train.csv@v1", DvcSourceError, "not a DVC repository", 2),
        "not a git repo": (f"dvc://{repo.not_git}#train.csv@v1", DvcNotFoundError, "not a git repository", 2),
        "no repo": (f"dvc://{repo.not_git}-missing#train.csv@v1", DvcNotFoundError, "no repository at this path", 2),
        "no remote": (uri("data/train.csv", "no-remote"), DvcSourceError, "names no default DVC remote", 2),
        "remote folder gone": (uri("data/train.csv", "gone-remote"), DvcSourceError, "is a local folder that does not exist here", 2),
        "remote unreachable": (uri("data/train.csv", "http-remote"), SourceError, "cannot be reached (Cannot connect", 3),
        "never pushed": (uri("data/train.csv", "unpushed"), DvcNotFoundError, "never pushed", 2),
        "damaged remote": (uri("data/train.csv", "damaged-remote"), DvcSourceError, "DVC recorded: the remote's copy is damaged", 2),
    }


ERROR_IDS = list(_errors(DvcRepo(Path("/r"), {}, Path("/p"), Path("/n"), Path("/o"))))


def _fails_cleanly(source: str, output: Path, capsys, **kwargs) -> tuple[KfpMlopsError, int]:
    """Run ingest as the step does; return the error it raised and the exit code, checking that nothing is left."""
    raised: list[KfpMlopsError] = []
    with pytest.raises(SystemExit) as exited, exit_on_error("ingest"):
        try:
            ingest(source, output, **kwargs)
        except KfpMlopsError as exc:
            raised.append(exc)
            raise
    assert "What to do:" in str(raised[0])
    assert str(raised[0]).splitlines()[0] in capsys.readouterr().err  # the message alone, no traceback
    # Nothing half-written: no output, no temporary beside it, no staging folder.
    assert not output.exists() and list(output.parent.glob("*")) == []
    assert not staging_dir_for(output).exists()
    return raised[0], int(exited.value.code)


@pytest.mark.parametrize("case", ERROR_IDS)
def test_each_failure_is_a_clear_error_with_the_exit_code_that_says_what_helps(case, dvc_repo, tmp_path, capsys):
    source, error, says, exit_code = _errors(dvc_repo)[case]
    options = IngestOptions(file_format="csv") if case == "folder" else KEYS
    raised, code = _fails_cleanly(source, tmp_path / "out" / "dataset.parquet", capsys, options=options)
    assert type(raised) is error, f"{case}: {type(raised).__name__}: {raised}"
    assert says in str(raised), str(raised)
    assert code == error.exit_code == exit_code


@pytest.mark.parametrize(("scheme", "package"), [("s3", "dvc-s3"), ("gs", "dvc-gs")])
def test_a_remote_whose_dvc_plugin_is_missing_names_the_package_and_exits_2(scheme, package, dvc_repo, tmp_path, capsys):
    if importlib.util.find_spec(package.replace("-", "_")) is not None:
        pytest.skip(f"{package} is installed here: the remote would be contacted, not refused")
    raised, code = _fails_cleanly(dvc_repo.uri("data/train.csv", f"{scheme}-remote"), tmp_path / "out" / "dataset.parquet", capsys, options=KEYS)
    assert type(raised) is UnsupportedSourceError and code == 2
    assert f"needs the DVC plugin {package}" in str(raised) and f"pip install {package}" in raised.fix


CREDENTIAL_SOURCES = {
    "https user and password": ("dvc://https://alice:s3cret-pw@git.example.com/org/data.git#data/train.csv@v1", ""),
    "https token as user": ("dvc://https://ghp_s3cretToken@git.example.com/org/data.git#data/train.csv@v1", ""),
    "ssh password": ("dvc://ssh://git:s3cret-pw@git.example.com/org/data.git#data/train.csv@v1", ""),
    "scp-like password": ("dvc://git:s3cret-pw@git.example.com:org/data.git#data/train.csv@v1", ""),
    "token parameter": ("dvc://https://git.example.com/org/data.git?token=s3cret#data/train.csv@v1", ""),
    "separate parameter": ("data/train.csv", "https://alice:s3cret-pw@git.example.com/org/data.git"),
}


@pytest.mark.parametrize("case", list(CREDENTIAL_SOURCES))
def test_credentials_in_the_repository_url_are_refused_and_never_shown(case, tmp_path, capsys, caplog):
    source, repo = CREDENTIAL_SOURCES[case]
    output = tmp_path / "dataset.parquet"
    caplog.set_level("DEBUG")
    with pytest.raises(SystemExit) as exited, exit_on_error("ingest"):
        ingest(source, output, dvc_repo=repo, dvc_rev="v1" if repo else "")  # refused before git.example.com is contacted
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "holds credentials" in err and "credential helper" in err
    for text in (out, err, caplog.text):
        assert "s3cret" not in text
    assert not output.exists() and not staging_dir_for(output).exists()


def test_the_uri_grammar():
    scp = dvc_source.parse("dvc://git@github.com:org/repo.git#data/train.csv@v1")
    assert (scp.repo, scp.path, scp.rev) == ("git@github.com:org/repo.git", "data/train.csv", "v1")
    assert scp.uri == "dvc://git@github.com:org/repo.git#data/train.csv@v1"  # an ssh user is no secret
    at = dvc_source.parse("dvc://https://host/org/repo.git#data/user@2024.csv@release/2024-01")
    assert (at.repo, at.path, at.rev) == ("https://host/org/repo.git", "data/user@2024.csv", "release/2024-01")
    assert dvc_source.parse("dvc://ssh://git@host/org/repo.git#./data//x.parquet@main").path == "data/x.parquet"
    separate = dvc_source.parse("data/a#b.csv", repo="/srv/git/x#y.git", rev="tag@1")
    assert (separate.repo, separate.path, separate.rev) == ("/srv/git/x#y.git", "data/a#b.csv", "tag@1")
    for bad, says in (("dvc:///r.git#x.csv@-x", "not a git revision"), ("dvc:///r.git#x.csv@a..b", "not a git revision"), ("dvc:///r.git#data/*.csv@v1", "is a pattern")):
        with pytest.raises(UnsupportedSourceError, match=says):
            dvc_source.parse(bad)
    with pytest.raises(UnsupportedSourceError, match="without a DVC repository"):
        dvc_source.parse("data/x.csv", rev="v1")
    with pytest.raises(UnsupportedSourceError, match="not a URI"):
        dvc_source.parse("dvc:///r.git#x.csv@v1", repo="/r.git")


def _lineage_tags_of(result) -> tuple[SplitInfo, dict[str, str]]:
    """The tags train gives its run, from the contract as it travels: dataset metadata -> split metadata -> train."""
    dataset_metadata = json.loads(json.dumps(result.metadata()))
    split_metadata = SplitInfo(entity_column="entity_id", label_column="label", fingerprint=dataset_metadata["fingerprint"], data_version=DataVersion.from_metadata(dataset_metadata)).to_metadata()
    split = SplitInfo.from_metadata(json.loads(json.dumps(split_metadata)))
    return split, split.lineage_tags()


def test_the_split_contract_carries_the_data_version_into_the_lineage_tags(dvc_repo, tmp_path):
    result = ingest(dvc_repo.uri("data/train.csv", "v2"), tmp_path / "dataset.parquet", options=KEYS)
    split, tags = _lineage_tags_of(result)
    version = result.data_version
    assert split.data_version == version and split.fingerprint == result.fingerprint
    assert tags == {
        "dataset.fingerprint": result.fingerprint, "dataset.dvc.repo": str(dvc_repo.bare), "dataset.dvc.path": "data/train.csv",
        "dataset.dvc.rev": "v2", "dataset.dvc.commit": version.commit, "dataset.dvc.md5": version.md5,
    }  # fmt: skip
    # Data from anywhere else carries the fingerprint alone, and its split metadata is as before.
    plain = SplitInfo(entity_column="entity_id", fingerprint="abc")
    assert not any(k.startswith("dvc_") for k in plain.to_metadata()) and plain.lineage_tags() == {"dataset.fingerprint": "abc"}
    assert SplitInfo.from_metadata(plain.to_metadata()).data_version is None


@pytest.mark.slow  # MLflow's sqlite schema takes ~10 s to create on 2 busy cores
def test_the_data_version_reaches_the_mlflow_run_tags(dvc_repo, tmp_path):
    result = ingest(dvc_repo.uri("data/train.csv", "v1"), tmp_path / "dataset.parquet", options=KEYS)
    _, tags = _lineage_tags_of(result)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with MlflowRun(TrackingSettings(uri, experiment="dvc", tags=tuple(tags.items()))) as run:
        run_id = run.run_id
    recorded = client(uri).get_run(run_id).data.tags
    assert {k: recorded.get(k) for k in tags} == tags
    assert recorded["dataset.dvc.commit"] == git(dvc_repo.bare, "rev-parse", "v1^{commit}") and recorded["dataset.dvc.md5"] == result.data_version.md5


def test_without_dvc_installed_a_dvc_source_names_the_extra(dvc_repo, tmp_path):
    program = (
        "import sys; sys.modules['dvc'] = None  # as if DVC were not installed\n"
        "from kfp_mlops.components._shared.entry import exit_on_error\n"
        "from kfp_mlops.components.ingest.core import ingest\n"
        f"with exit_on_error('ingest'): ingest({dvc_repo.uri('data/train.csv', 'v1')!r}, {str(tmp_path / 'out.parquet')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env={**os.environ, **QUIET}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert 'pip install "kfp-mlops[dvc]"' in done.stderr and not (tmp_path / "out.parquet").exists()


def _peak_rss_growth(action) -> int:
    process = psutil.Process()
    base = process.memory_info().rss
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return peak[0] - base


def test_a_large_file_streams_through_bounded_memory(dvc_repo, tmp_path):
    from dvc.repo import Repo

    work, remote = tmp_path / "work", tmp_path / "remote"
    block = rows_csv(20_000, 5).split(b"\n", 1)[1]
    big = work / "data" / "big.csv"
    with pytest.MonkeyPatch.context() as env:
        building_env(env, tmp_path)
        init_dvc_repo(work, remote)
        with big.open("wb") as out:
            out.write(b"entity_id,amount,label\n")
            while out.tell() < 50_000_000:
                out.write(block)
        with Repo(str(work)) as repo:
            repo.add([str(big)])
            repo.push()
    size, md5 = big.stat().st_size, hashlib.md5(big.read_bytes()).hexdigest()
    commit_tagged(work, "big")
    git(tmp_path, "clone", "-q", "--bare", str(work), "big.git")
    shutil.rmtree(work)
    # A first small read loads DVC's modules, so that the measure is of the read alone.
    dvc_source.stage(dvc_source.parse(dvc_repo.uri("data/train.csv", "v1")), tmp_path / "warm")
    staged = []
    growth = _peak_rss_growth(lambda: staged.append(dvc_source.stage(dvc_source.parse(f"dvc://{tmp_path / 'big.git'}#data/big.csv@big"), tmp_path / "staging")))
    file, version = staged[0]
    assert file.path.stat().st_size == size and version.md5 == md5
    assert growth < size / 5, f"peak RSS grew {growth / 1e6:.1f} MB reading a {size / 1e6:.0f} MB file"


def test_moto_s3_still_serves_beside_dvc_and_its_antlr_pin(s3_env, tmp_path):
    assert importlib.metadata.version("antlr4-python3-runtime").startswith("4.9.")
    from omegaconf import OmegaConf  # DVC's params parsing, whose grammar needs antlr 4.9

    assert OmegaConf.create({"a": "${b}", "b": 7}).a == 7
    s3_env.create_bucket(Bucket="data")
    s3_env.put_object(Bucket="data", Key="train.csv", Body=rows_csv(10, 1))
    assert ingest("s3://data/train.csv", tmp_path / "s3.parquet", options=KEYS).rows == 10
