"""The statistical gate: intervals that cover, chance is not blessed, an equal model is not promoted."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pytest

from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components.register import stats
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import CHAMPION, Registry
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.loop import TrainConfig
from kfp_mlops.components.train.metrics import roc_auc
from tests.unit.test_train import KEYS, _splits

DRAWS = 2000


def _coverage(hit, draws: int = DRAWS) -> float:
    return sum(hit(np.random.default_rng(seed)) for seed in range(draws)) / draws


def test_delong_interval_covers_the_true_auc_about_95_percent():
    shift = 0.8
    true_auc = NormalDist().cdf(shift / np.sqrt(2))  # two unit normals shifted by `shift`

    def hit(rng) -> bool:
        y = (rng.random(300) < 0.4).astype(int)
        interval = stats.auc_interval(y, rng.normal(y * shift, 1.0))
        return interval.low <= true_auc <= interval.high

    assert 0.93 <= _coverage(hit) <= 0.97


def test_paired_delong_covers_a_zero_difference_and_matches_the_point_auc():
    def hit(rng) -> bool:
        y = (rng.random(300) < 0.4).astype(int)
        base = rng.normal(y * 0.8, 1.0)
        a, b = base + rng.normal(0, 0.5, 300), base + rng.normal(0, 0.5, 300)  # equally good, correlated
        return stats.auc_difference(y, a, b).low <= 0 <= stats.auc_difference(y, a, b).high

    assert 0.93 <= _coverage(hit, 1000) <= 0.97
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.3).astype(int)
    s = np.round(rng.normal(y, 1.0), 1)  # ties
    assert stats.auc_interval(y, s).estimate == pytest.approx(roc_auc(y, s), abs=1e-12)


def test_bootstrap_rmse_difference_covers_about_95_percent():
    def hit(rng) -> bool:
        y = rng.normal(0, 1, 200)
        a, b = y + rng.normal(0, 1, 200), y + rng.normal(0, 1, 200)  # the same true RMSE
        interval = stats.rmse_difference(y, a, b, samples=300)
        return interval.low <= 0 <= interval.high

    assert 0.91 <= _coverage(hit, 300) <= 0.98


def test_accuracy_interval_covers_about_95_percent():
    def hit(rng) -> bool:
        return stats.share_interval(rng.random(400) < 0.7).low <= 0.7 <= stats.share_interval(rng.random(400) < 0.7).high

    assert 0.93 <= _coverage(hit) <= 0.97


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate")
    return tmp, f"sqlite:///{tmp / 'mlflow.db'}"


def _train(tmp, uri, paths, key, **config):
    config = {"hidden": (16,), "max_epochs": 3, **config}
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), TrainConfig(**config), model_dir=tmp / key, tracking=TrackingSettings(uri, experiment="gate"))
    return tmp / key, result.contract


def test_a_chance_level_model_on_a_few_hundred_rows_is_not_blessed(workspace):
    tmp, uri = workspace
    noise = lambda t: t.set_column(t.schema.get_field_index("label"), "label", pa.array(np.random.default_rng(4).integers(0, 2, t.num_rows)))  # noqa: E731
    paths = _splits(tmp / "noise", rows=2_000, transform=noise)  # 300 test rows, labels unrelated to the features
    model_dir, contract = _train(tmp, uri, paths, "chance")
    result = register_model(model_dir, contract, paths["test"], registry=Registry(uri), name="chance", thresholds=None, promote=True, tags={})
    check = result.gate.checks[0]
    assert not result.gate.blessed and check.kind == "beats chance" and "DeLong" in check.note
    assert Registry(uri).alias("chance", CHAMPION) is None, "nothing promoted"


def test_an_equal_model_is_not_promoted_and_a_better_one_is(workspace):
    tmp, uri = workspace
    paths = _splits(tmp / "data", rows=8_000)
    registry = Registry(uri)
    weak = {"hidden": (4,), "max_epochs": 1, "learning_rate": 0.0003}
    first = register_model(*_train(tmp, uri, paths, "first", **weak), paths["test"], registry=registry, name="equal", thresholds=None, promote=True, tags={})
    assert first.gate.blessed and first.promoted, first.gate.checks
    retrained = register_model(*_train(tmp, uri, paths, "retrained", **weak), paths["test"], registry=registry, name="equal", thresholds=None, promote=True, tags={})
    gain = next(c for c in retrained.gate.checks if c.kind == "beats champion")
    assert retrained.new_metrics == retrained.champion_metrics, "the same seed and data give the same model"
    assert not retrained.gate.blessed and not gain.passed and "[0.0000, 0.0000]" in gain.note
    assert registry.alias("equal", CHAMPION).version == "1"
    better = register_model(*_train(tmp, uri, paths, "better", hidden=(64, 32), max_epochs=15, patience=5), paths["test"], registry=registry, name="equal", thresholds=None, promote=True, tags={})
    assert better.new_metrics["roc_auc"] > better.champion_metrics["roc_auc"] + 0.05, (better.new_metrics, better.champion_metrics)
    assert better.gate.blessed and better.promoted and registry.alias("equal", CHAMPION).version == "3"


def test_a_perfect_score_on_few_rows_is_not_certainty():
    from kfp_mlops.components.register.stats import share_interval

    perfect = share_interval(np.ones(51))
    assert perfect.estimate == 1.0 and 0.92 < perfect.low < 0.94 and perfect.high <= 1.0, "Wilson: 51 of 51 right is about [0.93, 1]"
    none = share_interval(np.zeros(51))
    assert none.low == 0.0 and 0.06 < none.high < 0.08
