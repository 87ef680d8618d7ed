"""Register: the gate, the registry's aliases and idempotency, evaluation against the champion, bad input."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.gate import Threshold, decide, parse_thresholds
from kfp_mlops.components.register.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry, lock_name
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.components.train.loop import TrainConfig
from tests.unit.test_train import KEYS, _splits

FAST = TrainConfig(hidden=(16,), max_epochs=2, batch_size=256, patience=2)


def test_gate_bounds_and_deltas():
    t = parse_thresholds('{"roc_auc": {"min": 0.7, "delta": 0.01}, "log_loss": {"max": 0.6, "delta": 0.0}}')
    good = decide({"roc_auc": 0.80, "log_loss": 0.50}, {"roc_auc": 0.78, "log_loss": 0.52}, t)
    assert good.blessed and good.against == "champion"
    worse = decide({"roc_auc": 0.785, "log_loss": 0.53}, {"roc_auc": 0.78, "log_loss": 0.52}, t)
    failed = {(c.metric, c.kind) for c in worse.checks if not c.passed}
    assert not worse.blessed and failed == {("roc_auc", "delta"), ("log_loss", "delta")}, "lower is better for log loss"
    first = decide({"roc_auc": 0.72, "log_loss": 0.58}, None, t)
    assert first.blessed and first.against == "no champion", "without a champion the bounds decide"
    assert not decide({"roc_auc": 0.65, "log_loss": 0.5}, None, t).blessed
    relative = decide({"roc_auc": 0.80}, {"roc_auc": 0.78}, [Threshold("roc_auc", delta=0.05, relative=True)])
    assert not relative.blessed, "+2.6% is short of +5%"
    incomparable = decide({"roc_auc": 0.6}, {}, [Threshold("roc_auc", min=0.5, delta=0.1)], comparable=False)
    assert incomparable.blessed and incomparable.against == "incomparable champion"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"roc_auc": 0.7}', "must be an object"),
        ('{"roc_auc": {"minimum": 1}}', "must be an object"),
        ('{"roc_auc": {"min": null}}', "must be a finite number"),
        ('{"roc_auc": {"relative": true}}', "sets no bound"),
        ('{"roc_auc": {}}', "sets no bound"),
        ('{"roc_auc": {"min": "0.7"}}', "must be a finite number"),
        ('{"roc_auc": {"min": true}}', "must be a finite number"),
        ('{"roc_auc": {"delta": 0.01, "relative": "false"}}', "must be true or false"),
        ('{"roc_auc": {"min": 0.9}, "roc_auc": {"min": 0.1}}', "repeat the keys"),
        ('{"roc_auc": {"min": 0.9, "min": 0.1}}', "repeat the keys"),
        ('{"roc_auc": {"min": NaN}}', "contain NaN"),
        ('{"roc_auc": {"max": Infinity}}', "contain Infinity"),
        ('{"roc_auc": {"min": 0.9, "max": 0.1}}', "above max"),
        ('{"auc": {"min": 0.7}}', "unknown metric"),
        ("[]", "non-empty JSON object"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_thresholds(text, message):
    with pytest.raises(DataError, match=message):
        parse_thresholds(text)


def test_thresholds_naming_unknown_metrics():
    with pytest.raises(DataError, match="does not produce: \\['rmse'\\]"):
        decide({"roc_auc": 0.8}, None, [Threshold("rmse", max=1.0)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two models from one MLflow tracking database, plus one trained on other features."""
    tmp = tmp_path_factory.mktemp("register")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=6_000)
    runs = {}
    for key, config in (("a", FAST), ("b", TrainConfig(hidden=(16,), max_epochs=2, learning_rate=0.03, seed=3))):
        result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), config, model_dir=tmp / key, tracking=TrackingSettings(uri, experiment="register"))
        runs[key] = (tmp / key, result.contract, result.test_metrics)
    narrow = {n: tmp / f"narrow-{n}.parquet" for n in paths}
    for n, p in paths.items():
        pq.write_table(pq.read_table(p).drop_columns(["amount", "country"]).append_column("extra_feature", pa.array([1.0] * pq.read_metadata(p).num_rows)), narrow[n])
    other = train_model(TrainInputs(narrow["train"], narrow["validation"], narrow["test"], "label", KEYS), FAST, model_dir=tmp / "other", tracking=TrackingSettings(uri, experiment="register"))
    runs["other"] = (tmp / "other", other.contract, other.test_metrics)
    return uri, paths, narrow, runs


def _register(trained, key, name, **kw):
    uri, paths, narrow, runs = trained
    model_dir, contract, _ = runs[key]
    test = narrow["test"] if key == "other" else paths["test"]
    return register_model(model_dir, contract, test, registry=Registry(uri), name=name, thresholds=kw.pop("thresholds", None), promote=kw.pop("promote", True), tags={"kfp.run_id": "r1"})


def test_first_model_becomes_champion_then_the_next_is_gated(trained):
    registry = Registry(trained[0])
    first = _register(trained, "a", "gated")
    assert first.gate.blessed and first.promoted and first.version.version == "1"
    assert registry.alias("gated", CHAMPION).version == "1" and registry.alias("gated", CHALLENGER).version == "1"
    second = _register(trained, "b", "gated", thresholds=[Threshold("roc_auc", delta=0.5)])
    assert not second.gate.blessed and second.champion_version == "1" and second.champion_metrics is not None
    assert registry.alias("gated", CHAMPION).version == "1", "an unblessed model never becomes champion"
    assert registry.alias("gated", CHALLENGER).version == "2"
    promoted = _register(trained, "b", "gated", thresholds=[Threshold("roc_auc", min=0.5)])
    assert promoted.version.version == "2" and not promoted.version.created, "a retry registers nothing new"
    assert registry.alias("gated", CHAMPION).version == "2" and registry.alias("gated", PREVIOUS).version == "1"
    registry.promote("gated", registry.alias("gated", PREVIOUS).version)  # rollback is one call
    assert registry.alias("gated", CHAMPION).version == "1" and registry.alias("gated", PREVIOUS).version == "2"


def test_retry_of_the_same_step_creates_no_second_version(trained):
    a = _register(trained, "a", "retried")
    b = _register(trained, "a", "retried")
    assert a.version.version == b.version.version == "1" and a.version.created and not b.version.created
    assert b.gate.blessed, "a retry after its own promotion is not gated against itself"
    versions = Registry(trained[0]).client.search_model_versions("name='retried'")
    assert len(versions) == 1


def test_champion_trained_on_other_inputs_is_kept_unless_replacement_is_asked(trained):
    _register(trained, "other", "changed")
    result = _register(trained, "a", "changed")
    assert result.gate.against == "incomparable champion" and "trained on other inputs" in result.incomparable_reason
    assert "extra_feature" in result.incomparable_reason and "amount" in result.incomparable_reason, "both input sets are named"
    assert not result.gate.blessed and not result.promoted
    assert Registry(trained[0]).alias("changed", CHAMPION).version == "1", "never replaced silently"
    uri, paths, _, runs = trained
    replaced = register_model(runs["a"][0], runs["a"][1], paths["test"], registry=Registry(uri), name="changed", thresholds=None, promote=True, tags={}, replace_incomparable=True)
    assert replaced.gate.blessed and replaced.promoted and Registry(uri).alias("changed", CHAMPION).version == "2"


def test_bad_model_name_and_corrupt_model_register_nothing(trained, tmp_path):
    uri, paths, _, runs = trained
    with pytest.raises(DataError, match="invalid model name"):
        _register(trained, "a", "bad name/with slash")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(runs["a"][0], corrupt)
    (corrupt / "model.pt2").write_bytes(b"not a model")
    with pytest.raises(DataError, match="does not match the hash"):
        register_model(corrupt, runs["a"][1], paths["test"], registry=Registry(uri), name="corrupt", thresholds=None, promote=True, tags={})
    with pytest.raises(DataError, match="does not produce"):
        _register(trained, "a", "unknown-metric", thresholds=[Threshold("rmse", max=1.0)])
    names = {m.name for m in Registry(uri).client.search_registered_models()}
    assert not names & {"corrupt", "unknown-metric"}, "nothing registered from bad input"


def test_promotion_waits_for_the_lock_and_breaks_stale_ones(trained):
    import threading
    import time as _time

    uri, _, _, runs = trained
    registry = Registry(uri)
    name = "locked"
    versions = [registry.register(name, runs[k][1].mlflow_model_uri, runs[k][1].mlflow_run_id, {}).version for k in ("a", "b", "other")]
    registry.promote(name, versions[0])
    replaced = []
    with registry.lock(name):
        waiter = threading.Thread(target=lambda: replaced.append(Registry(uri).promote(name, versions[1])))
        waiter.start()
        _time.sleep(1.0)
        assert waiter.is_alive(), "the second promotion waits while the lock is held"
        registry.set_alias(name, PREVIOUS, versions[0])  # what the holder's own promotion does
        registry.set_alias(name, CHAMPION, versions[2])
    waiter.join(30)
    assert replaced == [versions[2]], "the waiting promotion sees the holder's champion, so no alias is lost"
    assert registry.alias(name, CHAMPION).version == versions[1] and registry.alias(name, PREVIOUS).version == versions[2]
    registry.client.create_registered_model(lock_name(name), tags={"kfp_mlops.lock": "1", "kfp_mlops.lock_owner": "crashed", "kfp_mlops.lock_time": str(_time.time() - 3600)})
    assert registry.promote(name, versions[0]) == versions[1], "a lock left by a crashed step is broken after it goes stale"
