"""The demo data generator and the installable distribution."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from kfp_mlops.demo import CHUNK_ROWS, DemoSpec, iter_demo_batches, write_demo_dataset

REPO = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_is_deterministic_and_sized(tmp_path):
    rows = CHUNK_ROWS + 1234  # spans two chunks
    a = write_demo_dataset(tmp_path / "a.csv", DemoSpec(rows=rows, seed=3))
    b = write_demo_dataset(tmp_path / "b.csv", DemoSpec(rows=rows, seed=3))
    c = write_demo_dataset(tmp_path / "c.csv", DemoSpec(rows=rows, seed=4))
    assert _digest(a) == _digest(b) != _digest(c)
    assert sum(1 for _ in a.open()) == rows + 1


def test_demo_has_entities_time_features_and_a_label_with_signal(tmp_path):
    table = pq.read_table(write_demo_dataset(tmp_path / "d.parquet", DemoSpec(rows=50_000)))
    assert {"entity_id", "event_timestamp", "amount", "country", "device", "plan", "label"} <= set(table.schema.names)
    ts = table.column("event_timestamp").to_numpy()
    assert (np.diff(ts.astype("int64")) >= 0).all(), "events arrive in time order"
    label = table.column("label").to_numpy()
    assert 0.2 < label.mean() < 0.8
    score = table.column("score_a").to_numpy()
    assert np.corrcoef(score, label)[0, 1] > 0.2, "the label depends on the features"
    assert table.column("tenure_days").null_count > 0


def test_demo_drift_shifts_distributions_and_adds_categories():
    base = next(iter_demo_batches(DemoSpec(rows=20_000)))
    drifted = next(iter_demo_batches(DemoSpec(rows=20_000, drift=1.0)))
    assert drifted.column("score_a").to_numpy().mean() - base.column("score_a").to_numpy().mean() > 1.0
    new = set(drifted.column("country").to_pylist()) - set(base.column("country").to_pylist())
    assert new == {"NG", "VN"}


def test_wheel_installs_only_the_kfp_mlops_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("kfp_mlops-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"kfp_mlops"}
    for module in ("kfp_mlops/components/ingest/component.py", "kfp_mlops/components/_shared/storage/s3.py", "kfp_mlops/pipelines/cli.py"):
        assert module in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kfp-mlops = kfp_mlops.pipelines.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert any(r.replace(" ", "") in ("kfp<3,>=2.14", "kfp>=2.14,<3") for r in core), core
    assert not [r for r in core if "==" in r], "exact pins stay in constraints.txt, so the package fits an existing KFP environment"
    assert any(r.startswith("torch==2.13.0") for r in requires), "torch stays pinned: a range would pull a CUDA build"
