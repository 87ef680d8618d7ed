"""A model names the exact data revision it was trained on: the training pipeline on a DVC-tracked real table at a git tag."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.dvc_repos import building_env, commit_tagged, git, init_dvc_repo

pytest.importorskip("dvc", reason="DVC is an extra: pip install -c constraints.txt -e '.[all,test]'")
CLI = str(Path(sys.executable).with_name("kfp-mlops"))
pytestmark = pytest.mark.filterwarnings("ignore:.*_NoneStep.value will soon raise:DeprecationWarning")


def test_training_on_a_dvc_revision_tags_the_mlflow_run_with_it(tmp_path):
    from dvc.repo import Repo
    from sklearn.datasets import load_breast_cancer

    from kfp_mlops.components.register.registry import Registry

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    work, remote = tmp_path / "work", tmp_path / "remote"
    committed: dict[str, bytes] = {}
    with pytest.MonkeyPatch.context() as env:
        building_env(env, tmp_path)
        init_dvc_repo(work, remote)
        for tag, rows in (("v1", frame.iloc[:400]), ("v2", frame)):
            rows.to_csv(work / "data" / "bc.csv", index=False)
            with Repo(str(work)) as repo:
                repo.add([str(work / "data" / "bc.csv")])
                repo.push()
            commit_tagged(work, tag)
            committed[tag] = (work / "data" / "bc.csv").read_bytes()
        v1_commit = git(work, "rev-parse", "v1^{commit}")
        git(tmp_path, "clone", "-q", "--bare", str(work), "repo.git")

    wd = tmp_path / "wd"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "site-cache")}
    args = ["run", "training", "--source-uri", f"dvc://{tmp_path / 'repo.git'}#data/bc.csv@v1", "--label-column", "target", "--deploy-target", "none", "--max-epochs", "3", "--workdir", str(wd)]
    done = subprocess.run([CLI, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "400 rows" in done.stdout, "v1 has 400 rows (v2 has 569)"

    registry = Registry(f"sqlite:///{wd / 'mlflow' / 'mlflow.db'}")
    version = registry.version("kfp-mlops-model", "1")
    tags = registry.client.get_run(version.run_id).data.tags
    assert tags["dataset.dvc.md5"] == hashlib.md5(committed["v1"]).hexdigest()
    assert tags["dataset.dvc.commit"] == v1_commit and tags["dataset.dvc.rev"] == "v1" and tags["dataset.dvc.path"] == "data/bc.csv"
    assert tags["dataset.fingerprint"], "our content fingerprint beside DVC's md5"
