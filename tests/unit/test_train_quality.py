"""The trainer's quality levers: integer categories, the schedule and early stopping, the embedding and
ensemble nets (exported, loaded weights-only, scoring like training), and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.model_artifact import MODEL_FILE, PREPROCESSING_FILE
from kfp_mlops.components.train.core import TrainInputs, tensors, train_model, write_report
from kfp_mlops.components.train.loop import TrainConfig, TrainError, learning_rate_at, predict
from kfp_mlops.components.train.preprocessing import Preprocessing, fit, parse_columns
from kfp_mlops.components.train.report import _features_table
from kfp_mlops.components.train.serving import ServingTransform, load_program


def _hourly(rows: int, seed: int = 0) -> pa.Table:
    """Demand by hour and weekday (non-monotone in the hour), a count, a measurement and a text column."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows)
    weekday = rng.integers(0, 7, rows)
    num_items = rng.integers(0, 10, rows)
    temperature = rng.normal(15, 8, rows)
    city = rng.choice(["oslo", "rome", "lima"], rows)
    demand = 50 * np.exp(-((hour - 8) ** 2) / 4) + 40 * np.exp(-((hour - 18) ** 2) / 6) + 10 * (weekday < 5) + 0.5 * temperature + 2 * num_items + rng.normal(0, 3, rows)
    return pa.table({"hour": hour, "weekday": weekday, "num_items": num_items, "temperature": temperature, "city": city, "flag": rng.integers(0, 2, rows), "demand": demand})


def _write(table: pa.Table, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    n = table.num_rows
    cuts = [0, int(n * 0.7), int(n * 0.85), n]
    paths = {}
    for name, lo, hi in zip(("train", "validation", "test"), cuts, cuts[1:]):
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table.slice(lo, hi - lo), paths[name])
    return paths


def _inputs(paths: dict[str, Path], label: str = "demand", **kw) -> TrainInputs:
    return TrainInputs(paths["train"], paths["validation"], paths["test"], label, **kw)


def test_low_cardinality_integers_are_categorical_unless_named_like_a_count():
    prep = fit(_hourly(2_000), label="demand", exclude=set())
    kinds = {c.name: ("categorical", c.reason) for c in prep.categorical} | {c.name: ("numeric", c.reason) for c in prep.numeric}
    assert kinds["hour"][0] == "categorical" and "24 distinct values" in kinds["hour"][1]
    assert kinds["weekday"][0] == "categorical"
    assert kinds["num_items"] == ("numeric", "integer with 10 values, named like a count")
    assert kinds["temperature"][0] == "numeric" and kinds["flag"][0] == "numeric"  # a float; a 0/1 flag
    assert kinds["city"] == ("categorical", "text")
    hour = next(c for c in prep.categorical if c.name == "hour")
    assert sorted(hour.vocabulary, key=int) == [str(h) for h in range(24)]


def test_kind_overrides_are_recorded_and_checked(tmp_path):
    table = _hourly(1_000)
    prep = fit(table, label="demand", exclude=set(), numeric_columns=parse_columns('["hour"]', "numeric_columns"), categorical_columns=parse_columns("num_items, temperature", "categorical_columns"))
    assert {c.name for c in prep.numeric} >= {"hour"} and {c.name for c in prep.categorical} >= {"num_items", "temperature", "weekday"}
    assert next(c for c in prep.numeric if c.name == "hour").reason == "requested (numeric_columns)"
    prep.save(tmp_path / PREPROCESSING_FILE)
    loaded = Preprocessing.load(tmp_path / PREPROCESSING_FILE)
    assert loaded == prep, "the kinds and their reasons travel in preprocessing.json"
    with pytest.raises(DataError) as raised:
        fit(table, label="demand", exclude=set(), categorical_columns=("hours", "city"), numeric_columns=("weekdays", "city"))
    message = str(raised.value)
    assert "['hours', 'weekdays']" in message, "every missing name in one error"
    assert "['city'] are named both categorical and numeric" in message and "'city' is string, not a number" in message
    with pytest.raises(DataError, match="not a JSON list"):
        parse_columns("[hour", "categorical_columns")
    with pytest.raises(DataError, match=r"\['demand'\] are the label"):
        fit(table, label="demand", exclude=set(), numeric_columns=("demand",))


def test_integer_categories_serve_like_training_with_floats_nulls_and_unseen_values(tmp_path):
    paths = _write(_hourly(3_000), tmp_path / "data")
    result = train_model(_inputs(paths), TrainConfig(hidden=(32,), max_epochs=3, ensemble_size=2), model_dir=tmp_path / "model")
    prep = result.preprocessing
    assert "hour" in [c.name for c in prep.categorical]
    probe = pq.read_table(paths["test"]).slice(0, 6).to_pandas()
    probe["hour"] = probe["hour"].astype("float64")  # an integer column with nulls reaches pandas as float
    probe.loc[0, "hour"] = np.nan
    probe.loc[1, "hour"] = 99.0  # never seen: the unknown bucket
    table = pa.Table.from_pandas(probe, preserve_index=False)
    _, categorical = prep.encode_features(table)
    j = [c.name for c in prep.categorical].index("hour")
    assert categorical[0, j] == 0 and categorical[1, j] == 0
    assert categorical[2, j] == 1 + prep.categorical[j].vocabulary.index(str(int(probe.loc[2, "hour"])))
    transform = ServingTransform.load(tmp_path / "model")
    served = transform.predict_frame(probe[prep.feature_names])["prediction"].to_numpy()
    trained = predict(result.fit.net, prep, tensors(table, prep, "probe"), torch.device("cpu"))
    assert np.abs(served - trained).max() < 1e-4 * max(1.0, np.abs(trained).max())
    assert np.isfinite(served).all()


def test_more_epochs_train_longer_while_the_validation_metric_improves(tmp_path):
    paths = _write(_hourly(2_000, seed=1), tmp_path / "data")
    runs = {}
    for epochs in (3, 9):
        config = TrainConfig(hidden=(32,), max_epochs=epochs, patience=50, ensemble_size=2, learning_rate=3e-3)
        runs[epochs] = train_model(_inputs(paths), config, model_dir=tmp_path / f"m{epochs}").fit
    short, long = runs[3], runs[9]
    assert len(short.history) == 3 and len(long.history) == 9 and not long.stopped_early
    assert long.history[-1]["train_loss"] < short.history[-1]["train_loss"]
    assert long.history[long.best_epoch]["val_rmse"] < short.history[short.best_epoch]["val_rmse"]
    # the cosine decay spans max_epochs: at the same step, a longer run keeps a higher learning rate
    assert learning_rate_at(TrainConfig(max_epochs=20), 50, 10) > learning_rate_at(TrainConfig(max_epochs=10), 50, 10)
    assert learning_rate_at(TrainConfig(max_epochs=10), 0, 10) == pytest.approx(1e-4), "warm-up over the first epoch"
    assert learning_rate_at(TrainConfig(max_epochs=10, lr_schedule="constant"), 80, 10) == 1e-3


def test_early_stopping_restores_the_best_epoch(tmp_path):
    paths = _write(_hourly(1_500, seed=2), tmp_path / "data")
    config = TrainConfig(hidden=(64,), max_epochs=60, patience=2, learning_rate=0.05, ensemble_size=1, lr_schedule="constant")
    result = train_model(_inputs(paths), config, model_dir=tmp_path / "m")
    fit_result = result.fit
    assert fit_result.stopped_early and len(fit_result.history) < 60
    assert len(fit_result.history) == fit_result.best_epoch + 1 + config.patience
    best = fit_result.history[fit_result.best_epoch]["val_rmse"]
    assert best == min(h["val_rmse"] for h in fit_result.history)
    prep = result.preprocessing
    val = tensors(pq.read_table(paths["validation"]), prep, "validation")
    out = predict(fit_result.net, prep, val, torch.device("cpu"))
    y = val.y.numpy() * prep.label_std + prep.label_mean
    assert float(np.sqrt(np.mean((out - y) ** 2))) == pytest.approx(best, rel=1e-5), "the returned weights are the best epoch's"


@pytest.mark.parametrize(("embedding", "task", "ensemble"), [("piecewise", "multiclass", 4), ("periodic", "binary", 3), ("none", "regression", 1)])
def test_embedding_and_ensemble_nets_export_load_weights_only_and_score_like_training(tmp_path, embedding, task, ensemble):
    table = _hourly(1_200, seed=3)
    demand = table.column("demand").to_numpy()
    if task == "multiclass":
        table = table.set_column(table.schema.get_field_index("demand"), "demand", pa.array(np.digitize(demand, np.quantile(demand, [0.33, 0.66]))))
    elif task == "binary":
        table = table.set_column(table.schema.get_field_index("demand"), "demand", pa.array((demand > np.median(demand)).astype(np.int64)))
    nulls = pa.array(np.where(np.arange(table.num_rows) % 9 == 0, np.nan, table.column("temperature").to_numpy()), from_pandas=True)
    table = table.set_column(table.schema.get_field_index("temperature"), "temperature", nulls)
    paths = _write(table, tmp_path / "data")
    config = TrainConfig(hidden=(16, 16), max_epochs=2, numeric_embedding=embedding, ensemble_size=ensemble, numeric_bins=8)
    result = train_model(_inputs(paths), config, model_dir=tmp_path / "model")
    assert result.preprocessing.task == task
    program = load_program(tmp_path / "model" / MODEL_FILE)  # restricted loading, no pickle
    test = pq.read_table(paths["test"])
    transform = ServingTransform.load(tmp_path / "model")
    served = transform.predict_table(test)
    trained = predict(result.fit.net, result.preprocessing, tensors(test, result.preprocessing, "test"), torch.device("cpu"))
    numeric, categorical = result.preprocessing.encode_features(test)
    with torch.no_grad():
        direct = program(torch.from_numpy(numeric), torch.from_numpy(categorical)).numpy()
    assert np.abs(served - trained).max() < 1e-6 * max(1.0, float(np.abs(trained).max()))
    assert np.array_equal(served, direct)
    if task == "multiclass":
        assert served.shape == (test.num_rows, 3) and np.allclose(served.sum(axis=1), 1, atol=1e-5)


def test_new_settings_are_refused_up_front_with_their_names():
    with pytest.raises(TrainError) as raised:
        TrainConfig(numeric_embedding="fourier", numeric_bins=1, ensemble_size=-1, lr_schedule="step")
    message = str(raised.value)
    for name in ("numeric_embedding 'fourier'", "numeric_bins 1", "ensemble_size -1", "lr_schedule 'step'"):
        assert name in message
    assert raised.value.exit_code == 2


def test_report_names_label_rows_and_every_feature_with_its_treatment(tmp_path):
    paths = _write(_hourly(1_000), tmp_path / "data")
    result = train_model(_inputs(paths), TrainConfig(hidden=(16,), max_epochs=2, ensemble_size=2), model_dir=tmp_path / "model")
    write_report(result, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "demand (regression" in page and "metrics in label units" in page
    assert "train 700, validation 150, test 150" in page
    for name in ("hour", "weekday", "num_items", "temperature", "city", "flag"):
        assert f"<td>{name}</td>" in page
    assert "piecewise-linear embedding" in page and "+ unknown (nulls, unseen values)" in page and "named like a count" in page
    assert "ensemble=2" in page
    rows = [(f"f{i}", "numeric", "standardized", "number") for i in range(250)]
    table = _features_table(rows, limit=200)
    assert table.count("<tr>") == 201 and "... and 50 more features" in table


def test_the_automatic_budget_shrinks_only_on_large_training_splits():
    """patience=0 and ensemble_size=0: 16 epochs and 8 members on the small tables of the quality benchmark; on a large
    split (many optimizer steps per epoch) about 1,000 steps of patience, at least 4 epochs, and a plain MLP."""
    from kfp_mlops.components.train.loop import resolve_budget

    auto = TrainConfig()
    assert (auto.patience, auto.ensemble_size) == (0, 0)
    small = resolve_budget(auto, 5_600)  # sf_temps' training split: 22 steps of 256 rows per epoch
    assert (small.patience, small.ensemble_size) == (16, 8)
    assert resolve_budget(auto, 300).patience == 16, "a tiny split takes small batches, still 16 epochs"
    large = resolve_budget(auto, 70_000)  # the 100k demo's training split: 274 steps per epoch
    assert (large.patience, large.ensemble_size) == (4, 1)
    assert resolve_budget(auto, 30_000).patience == 9
    assert resolve_budget(TrainConfig(patience=16, ensemble_size=8), 70_000) == TrainConfig(patience=16, ensemble_size=8), "explicit settings are kept"
    assert resolve_budget(large, 300) == large, "resolving twice changes nothing"
