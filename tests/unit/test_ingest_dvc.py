"""ingest of dvc:// sources on a real git + DVC repository with a local folder remote.

The repository is built once per module: two tagged revisions (v1, v2) of a CSV and a
Parquet file, pushed to a folder remote; then the working copy and its cache are deleted,
so every read clones the bare repository and streams from the remote, as in a pod.
Branches off v2 hold the broken cases: a file never pushed, no remote, a remote folder
that is gone, an http remote nobody serves, a remote whose copy is damaged.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.entry import exit_on_error
from kfp_mlops.components._shared.errors import KfpMlopsError, SourceError, SourceNotFoundError, UnsupportedSourceError
from kfp_mlops.components._shared.mlflow_adapter import MlflowRun, TrackingSettings, client
from kfp_mlops.components._shared.split_artifact import DataVersion, SplitInfo
from kfp_mlops.components._shared.storage.scratch import staging_dir_for
from kfp_mlops.components.ingest import dvc_source
from kfp_mlops.components.ingest.core import IngestOptions, ingest
from tests.services import free_port

QUIET = {"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false"}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
}  # fmt: skip
KEYS = IngestOptions(entity_column="entity_id", timestamp_column="")
# DVC 3.67 calls a pygtrie accessor that pygtrie now deprecates; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:.*_NoneStep.value will soon raise:DeprecationWarning")


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch):
    for key, value in QUIET.items():
        monkeypatch.setenv(key, value)


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


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> DvcRepo:
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("dvc")
    work, remote = root / "work", root / "remote"
    with pytest.MonkeyPatch.context() as env:
        building_env(env, root)
        init_dvc_repo(work, remote)
        files: dict[tuple[str, str], bytes] = {}
        for tag, rows, seed in (("v1", 60, 1), ("v2", 90, 2)):
            csv = rows_csv(rows, seed)
            (work / "data" / "train.csv").write_bytes(csv)
            pq.write_table(pacsv.read_csv(io.BytesIO(csv)), work / "data" / "train.parquet")
            if tag == "v1":
                (work / "data" / "small.csv").write_bytes(b"entity_id,x\n1,2\n")  # tracked by git itself
            with Repo(str(work)) as repo:
                repo.add([str(work / "data" / "train.csv"), str(work / "data" / "train.parquet")])
                repo.push()
            commit_tagged(work, tag)
            files.update({(tag, name): (work / "data" / name).read_bytes() for name in ("train.csv", "train.parquet")})
        # The broken cases, each a tag on a branch off v2.
        (work / "data" / "train.csv").write_bytes(rows_csv(5, 3))
        with Repo(str(work)) as repo:
            repo.add([str(work / "data" / "train.csv")])  # committed, never pushed
        commit_tagged(work, "unpushed", branch_from="v2")
        for tag, url in (("no-remote", None), ("gone-remote", str(root / "gone")), ("http-remote", f"http://127.0.0.1:{free_port()}/store")):
            git(work, "checkout", "-q", "-f", "v2")
            set_remote(work, url)
            commit_tagged(work, tag, branch_from="v2")
        damaged = root / "damaged-remote"
        shutil.copytree(remote, damaged)
        md5 = hashlib.md5(files[("v2", "train.csv")]).hexdigest()
        (damaged / "files" / "md5" / md5[:2] / md5[2:]).write_bytes(b"entity_id,amount,label\n1,2,3\n")
        git(work, "checkout", "-q", "-f", "v2")
        set_remote(work, str(damaged))
        commit_tagged(work, "damaged-remote", branch_from="v2")
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


def _errors(repo: DvcRepo) -> dict[str, tuple[str, type, str]]:
    """id -> (source, error class, what the message says)."""
    uri = repo.uri
    return {
        "unknown rev": (uri("data/train.csv", "v9"), SourceNotFoundError, "no revision 'v9'"),
        "missing path": (uri("data/nope.csv", "v1"), SourceNotFoundError, "no file 'data/nope.csv'"),
        "escapes with ..": (uri("../outside.csv", "v1"), UnsupportedSourceError, "leaves the repository"),
        "escapes inside": (uri("data/../../outside.csv", "v1"), UnsupportedSourceError, "leaves the repository"),
        "absolute path": (f"dvc://{repo.bare}#/etc/hosts.csv@v1", UnsupportedSourceError, "leaves the repository"),
        "pointer file": (uri("data/train.csv.dvc", "v1"), UnsupportedSourceError, "name the file it tracks: data/train.csv"),
        "folder": (uri("data", "v1"), UnsupportedSourceError, "is a folder"),
        "no revision": (f"dvc://{repo.bare}#data/train.csv", UnsupportedSourceError, "names no revision"),
        "no path": (f"dvc://{repo.bare}", UnsupportedSourceError, "no '#'"),
        "not a DVC repo": (f"dvc://{repo.plain_git}#train.csv@v1", SourceError, "not a DVC repository"),
        "not a git repo": (f"dvc://{repo.not_git}#train.csv@v1", SourceNotFoundError, "not a git repository"),
        "no repo": (f"dvc://{repo.not_git}-missing#train.csv@v1", SourceNotFoundError, "no repository at this path"),
        "no remote": (uri("data/train.csv", "no-remote"), SourceError, "names no default DVC remote"),
        "remote folder gone": (uri("data/train.csv", "gone-remote"), SourceError, "cannot be reached: the folder does not exist"),
        "remote unreachable": (uri("data/train.csv", "http-remote"), SourceError, "cannot be reached (Cannot connect"),
        "never pushed": (uri("data/train.csv", "unpushed"), SourceNotFoundError, "never pushed"),
        "damaged remote": (uri("data/train.csv", "damaged-remote"), SourceError, "DVC recorded: the remote's copy is damaged"),
    }


ERROR_IDS = list(_errors(DvcRepo(Path("/r"), {}, Path("/p"), Path("/n"), Path("/o"))))


@pytest.mark.parametrize("case", ERROR_IDS)
def test_each_failure_is_a_clear_error_exits_non_zero_and_leaves_nothing(case, dvc_repo, tmp_path, capsys):
    source, error, says = _errors(dvc_repo)[case]
    output = tmp_path / "out" / "dataset.parquet"
    options = IngestOptions(file_format="csv") if case == "folder" else KEYS
    raised: list[KfpMlopsError] = []
    # The step's own exit: the message alone and a non-zero code.
    with pytest.raises(SystemExit) as exited, exit_on_error("ingest"):
        try:
            ingest(source, output, options=options)
        except KfpMlopsError as exc:
            raised.append(exc)
            raise
    assert type(raised[0]) is error, f"{case}: {type(raised[0]).__name__}: {raised[0]}"
    assert says in str(raised[0]) and "What to do:" in str(raised[0])
    assert exited.value.code == error.exit_code != 0
    assert says in capsys.readouterr().err
    # Nothing half-written: no output, no temporary beside it, no staging folder.
    assert not output.exists() and list(output.parent.glob("*")) == []
    assert not staging_dir_for(output).exists()


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
