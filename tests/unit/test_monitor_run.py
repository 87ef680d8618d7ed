"""The monitor end to end on a real registered model: profile stored by register, current data as a Dataset or logs.

Drift is found and named, schema drift and empty windows do not crash, a concept shift
is caught by the realized metric, many models share one summary, and a missing or
tampered profile is refused with how to fix it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components._shared.prediction_log import Outcome, PredictionLogger, PredictionRecord, write_feedback
from kfp_mlops.components.monitor.reference import ARTIFACT_DIR, FILE_NAME, SHA_TAG
from kfp_mlops.components.monitor.run import MonitorRequest, run_monitor
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import Registry
from kfp_mlops.components.train.core import TrainInputs, train_model
from kfp_mlops.demo import DemoSpec, iter_demo_batches
from tests.unit.test_model_safety import FAST
from tests.unit.test_train import KEYS, _splits

NAME = "churn"


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A trained and registered champion whose profile register built from the train split."""
    tmp = tmp_path_factory.mktemp("monitor")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=6_000)
    registry = Registry(uri)
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), FAST, model_dir=tmp / "model", tracking=TrackingSettings(uri, experiment="monitor"))
    register_model(tmp / "model", result.contract, paths["test"], registry=registry, name=NAME, thresholds=None, promote=True, tags={}, reference_path=paths["train"])
    registry.client.set_registered_model_tag(NAME, "team", "growth")
    return tmp, uri, registry, result.contract


def _current(folder: Path, *, drift: float = 0.0, rows: int = 4_000, seed: int = 11, transform=None) -> Path:
    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=rows, seed=seed, drift=drift))))
    if transform is not None:
        table = transform(table)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"current-{drift}-{seed}-{rows}.parquet"
    pq.write_table(table, path)
    return path


def _run(uri: str, tmp: Path, **changes):
    request = MonitorRequest(**{"model_names": NAME, "evidently_sample_rows": 0, **changes})
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    outcome = run_monitor(request, environment={"MLFLOW_TRACKING_URI": uri}, report_path=str(out / "report.html"), summary_path=str(out / "summary.md"), evidently_path=str(out / "evidently.html"))
    return outcome, out


def test_data_like_the_training_data_raises_nothing(watched):
    tmp, uri, _, _ = watched
    outcome, out = _run(uri, tmp, current_path=str(_current(tmp / "cur")))
    (result,) = outcome.results
    assert not outcome.retrain and not result.dataset_drift and not result.schema_drift, result.reasons
    assert result.drifted_columns == []
    # The score's reference is the small test split (K-S at alpha 0.05): chance alone fails 1 in 20, so only a strong move counts here.
    assert result.prediction is not None and result.prediction.method == "ks" and result.prediction.score > 0.001
    estimated = {p.metric: p for p in result.performance}
    assert estimated["accuracy"].lower <= estimated["accuracy"].realized <= estimated["accuracy"].upper
    assert outcome.metrics["retrain"] == 0.0 and "churn" in (out / "report.html").read_text()


def test_drifted_inputs_are_flagged_named_and_advise_retraining(watched):
    tmp, uri, _, _ = watched
    outcome, out = _run(uri, tmp, current_path=str(_current(tmp / "cur", drift=0.8)), evidently_sample_rows=500)
    (result,) = outcome.results
    assert outcome.drift_detected and outcome.retrain and result.dataset_drift
    assert {"amount", "score_a", "country"} <= set(result.drifted_columns)
    assert any("categories the reference never had" in q.message for q in result.quality if q.column == "country")
    assert any(c.column in r for r in result.reasons for c in result.columns if c.drifted)
    assert "Evidently" in (out / "evidently.html").read_text()[:200_000] or (out / "evidently.html").stat().st_size > 10_000


def test_a_shifted_feature_at_a_set_effect_size_is_the_one_flagged(watched):
    tmp, uri, _, _ = watched
    shift = lambda t: t.set_column(
        t.schema.get_field_index("tenure_days"), "tenure_days", pc.add(t.column("tenure_days"), pa.scalar(0.5 * float(np.nanstd(t.column("tenure_days").to_numpy(zero_copy_only=False)))))
    )  # noqa: E731
    outcome, _ = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=shift)))
    (result,) = outcome.results
    assert result.drifted_columns == ["tenure_days"], result.drifted_columns
    assert not result.dataset_drift


def test_a_concept_shift_with_unchanged_inputs_is_caught_by_the_realized_metric(watched):
    tmp, uri, _, _ = watched
    flip = lambda t: t.set_column(t.schema.get_field_index("label"), "label", pc.subtract(pa.scalar(1, t.schema.field("label").type), t.column("label")))  # noqa: E731
    outcome, _ = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=flip)))
    (result,) = outcome.results
    assert result.drifted_columns == []
    accuracy = next(p for p in result.performance if p.metric == "accuracy")
    assert accuracy.lower <= accuracy.reference <= accuracy.upper  # the estimate cannot see a concept shift...
    assert accuracy.realized < accuracy.alert_below and accuracy.alert  # ...the labels do
    assert outcome.retrain and any("performance alert" in r for r in result.reasons)


def test_missing_columns_are_schema_drift_not_a_crash(watched):
    tmp, uri, _, _ = watched
    outcome, _ = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=lambda t: t.drop_columns(["amount", "plan"]))))
    (result,) = outcome.results
    assert result.schema_drift and outcome.drift_detected and not outcome.retrain
    assert {q.column for q in result.quality if q.check == "missing_column"} == {"amount", "plan"}
    assert result.prediction is None and "amount" not in [c.column for c in result.columns]


def test_a_retyped_all_null_or_constant_column_is_reported(watched):
    tmp, uri, _, _ = watched

    def damage(t: pa.Table) -> pa.Table:
        t = t.set_column(t.schema.get_field_index("age"), "age", pa.array(["x"] * t.num_rows))
        t = t.set_column(t.schema.get_field_index("score_b"), "score_b", pa.nulls(t.num_rows, pa.float64()))
        return t.set_column(t.schema.get_field_index("device"), "device", pa.array(["ios"] * t.num_rows))

    outcome, _ = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=damage)))
    checks = {(q.column, q.check) for q in outcome.results[0].quality}
    assert {("age", "wrong_type"), ("score_b", "all_null"), ("device", "constant")} <= checks
    assert outcome.drift_detected and not outcome.retrain


def test_a_changed_null_rate_is_named(watched):
    tmp, uri, _, _ = watched

    def holes(t: pa.Table) -> pa.Table:
        amount = t.column("amount").to_numpy(zero_copy_only=False)
        mask = np.random.default_rng(2).random(t.num_rows) < 0.3
        return t.set_column(t.schema.get_field_index("amount"), "amount", pa.array(amount, mask=mask))

    outcome, _ = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=holes)))
    (finding,) = [q for q in outcome.results[0].quality if q.check == "null_rate"]
    assert finding.column == "amount" and finding.reference == 0.0 and 0.27 < finding.current < 0.33
    assert "amount" in finding.message and not outcome.results[0].schema_drift


def test_an_empty_window_reports_no_rows(watched):
    tmp, uri, _, _ = watched
    outcome, out = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=lambda t: t.slice(0, 0))))
    (result,) = outcome.results
    assert result.n_rows == 0 and not outcome.retrain and any("no current rows" in r for r in result.reasons)
    assert (out / "summary.md").read_text()


def test_prediction_logs_over_a_window_with_late_labels(watched, tmp_path):
    tmp, uri, registry, contract = watched
    sink = tmp_path / "logs"
    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=1500, seed=5, drift=0.8))))
    names = contract.feature_names
    now = datetime.now(timezone.utc)
    logger = PredictionLogger(str(sink), queue_size=5000)
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        logger.log(PredictionRecord(f"r{i}", now - timedelta(minutes=30), "champion", NAME, "1", json.dumps({n: row[n] for n in names}), str(int(row["label"])), 0.3 + 0.4 * (i % 2), 1.0, ""))
    logger.close()
    write_feedback(str(sink), [Outcome(f"r{i}", str(int(r["label"])), now) for i, r in enumerate(rows[:1000])])
    outcome, _ = _run(uri, tmp_path, log_sink=str(sink), window_hours=2)
    (result,) = outcome.results
    assert result.n_rows == 1500 and result.dataset_drift
    assert next(p for p in result.performance if p.metric == "accuracy").n_labelled == 1000
    empty, _ = _run(uri, tmp_path, log_sink=str(sink), window_hours=1, window_end=(now - timedelta(hours=5)).isoformat())
    assert empty.results[0].n_rows == 0 and not empty.retrain


def test_many_models_by_tag_share_one_summary(watched):
    tmp, uri, registry, _ = watched
    outcome, out = _run(uri, tmp, model_names="", model_tag="team=growth", current_path=str(_current(tmp / "cur", drift=0.8)))
    assert [r.model_name for r in outcome.results] == [NAME]
    twice, _ = _run(uri, tmp, model_names=f"{NAME},{NAME}", current_path=str(_current(tmp / "cur")))
    assert len(twice.results) == 1  # a name given twice is watched once
    assert outcome.metrics["drift_share"] >= 0.5 and outcome.metrics["retrain"] == 1.0


def test_a_missing_or_tampered_profile_is_refused_with_how_to_make_one(watched, tmp_path):
    tmp, uri, registry, _ = watched
    current = str(_current(tmp / "cur"))
    version = registry.alias(NAME, "champion")
    registry.client.delete_model_version_tag(NAME, version.version, SHA_TAG)
    try:
        with pytest.raises(DataError, match="no reference profile") as caught:
            _run(uri, tmp_path, current_path=current)
        assert "kfp-mlops profile" in str(caught.value)
    finally:
        registry.set_version_tag(NAME, version.version, SHA_TAG, "0" * 64)
    with pytest.raises(DataError, match="does not match the hash"):
        _run(uri, tmp_path, current_path=current)
    stored = next(Path(tmp).rglob(f"{ARTIFACT_DIR}/*/{FILE_NAME}"))
    from kfp_mlops.components.monitor.reference import sha256

    registry.set_version_tag(NAME, version.version, SHA_TAG, sha256(stored.read_bytes()))
    _run(uri, tmp_path, current_path=current)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({}, "exactly one source"),
        ({"current_path": "x", "log_sink": "y"}, "exactly one source"),
        ({"current_path": "x", "column_methods": "{"}, "not valid JSON"),
        ({"current_path": "x", "column_methods": '{"amount": "psi"}'}, "unknown drift method"),
        ({"current_path": "x", "column_methods": '{"amount": {"method": "ks", "threshold": -1}}'}, "positive number"),
        ({"current_path": "x", "drift_share": 0}, "drift_share"),
        ({"log_sink": "y", "window_end": "2026-01-01T00:00:00"}, "no timezone"),
        ({"log_sink": "y", "window_hours": 0}, "window_hours"),
        ({"current_path": "x", "model_tag": "team"}, "key=value"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_read(tmp_path, changes, message):
    with pytest.raises(DataError, match=message):
        run_monitor(MonitorRequest(**changes), environment={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'none.db'}"}, report_path=str(tmp_path / "r"), summary_path=str(tmp_path / "s"))
    assert not (tmp_path / "r").exists()


def test_an_override_naming_a_column_the_model_lacks_is_refused(watched, tmp_path):
    tmp, uri, _, _ = watched
    with pytest.raises(DataError, match="does not use"):
        _run(uri, tmp_path, current_path=str(_current(tmp / "cur")), column_methods='{"nope": "ks"}')


def test_data_in_the_evidently_page_cannot_run_script_and_a_failing_page_does_not_fail_the_run(watched):
    tmp, uri, _, _ = watched
    attack = "</script><script>document.title='PWNED'</script>"

    def hostile(t: pa.Table) -> pa.Table:
        country = pa.array([attack if i % 2 else c for i, c in enumerate(t.column("country").to_pylist())])
        t = t.set_column(t.schema.get_field_index("country"), "country", country)
        return t.set_column(t.schema.get_field_index("score_b"), "score_b", pa.nulls(t.num_rows, pa.float64()))  # Evidently raises on an empty column

    outcome, out = _run(uri, tmp, current_path=str(_current(tmp / "cur", rows=1500, transform=hostile)), evidently_sample_rows=400)
    page = (out / "evidently.html").read_text()
    assert "<script>document.title" not in page and "PWNED" in page  # shown as text, not run
    assert "<script>document.title" not in (out / "report.html").read_text()
    assert any(q.check == "all_null" for q in outcome.results[0].quality)


def test_a_user_column_named_like_the_model_output_is_data_not_a_score(watched):
    tmp, uri, _, _ = watched
    noise = lambda t: t.append_column("score", pa.array(np.random.default_rng(1).random(t.num_rows)))  # noqa: E731
    outcome, _ = _run(uri, tmp, current_path=str(_current(tmp / "cur", transform=noise)))
    (result,) = outcome.results
    assert not outcome.retrain and not any(p.alert for p in result.performance), result.reasons
    assert result.prediction is not None and result.prediction.score > 0.001  # the model's own scores


def test_a_run_registered_under_two_names_keeps_one_profile_per_version(watched, tmp_path):
    from kfp_mlops.components.monitor.backfill import profile_registered_version

    tmp, uri, registry, contract = watched
    from kfp_mlops.components.register.registry import hash_tags

    copy = registry.register("churn-copy", contract.mlflow_model_uri, contract.mlflow_run_id, hash_tags(dict(contract.files)))
    registry.set_alias("churn-copy", "champion", copy.version)
    data = tmp / "data"
    with pytest.raises(DataError, match="already has a reference profile"):
        profile_registered_version(registry, NAME, "champion", reference_path=data / "train.parquet", test_path=data / "test.parquet")
    with pytest.raises(DataError, match="no rows"):
        empty = tmp_path / "empty.parquet"
        pq.write_table(pq.read_table(data / "train.parquet").slice(0, 0), empty)
        profile_registered_version(registry, "churn-copy", "champion", reference_path=empty, test_path=data / "test.parquet")
    profile_registered_version(registry, "churn-copy", "champion", reference_path=data / "train.parquet", test_path=data / "test.parquet")
    outcome, _ = _run(uri, tmp_path, model_names=f"{NAME},churn-copy,nosuch", current_path=str(_current(tmp / "cur")))
    assert [r.model_name for r in outcome.results] == [NAME, "churn-copy", "nosuch"]
    assert not outcome.results[0].failed and not outcome.results[1].failed  # neither profile overwrote the other
    assert outcome.results[2].failed and "nosuch" in outcome.results[2].reasons[0] and outcome.metrics["models_failed"] == 1.0


@pytest.mark.parametrize(
    "methods, message",
    [
        ('{"country": "ks"}', "needs numbers"),
        ('{"amount": "chisquare"}', "needs few distinct values"),
        ('{"amount": {"method": "ks", "threshold": 5}}', "below 1"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_a_forced_method_that_cannot_fit_its_column_is_refused_before_reading(watched, tmp_path, methods, message):
    tmp, uri, _, _ = watched
    with pytest.raises(DataError, match=message):
        _run(uri, tmp_path, current_path=str(tmp_path / "never-read.parquet"), column_methods=methods)


def test_a_missing_log_sink_is_an_error_and_unusable_logged_scores_are_counted(watched, tmp_path):
    tmp, uri, _, contract = watched
    with pytest.raises(DataError, match="log sink does not exist"):
        _run(uri, tmp_path, log_sink=str(tmp_path / "nope"))
    sink = tmp_path / "logs"
    rows = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=400, seed=6)))).to_pylist()
    now = datetime.now(timezone.utc)
    with PredictionLogger(str(sink), queue_size=1000) as logger:
        for i, row in enumerate(rows):
            logger.log(
                PredictionRecord(f"q{i}", now - timedelta(minutes=5), "champion", NAME, "1", json.dumps({n: row[n] for n in contract.feature_names}), "1", float("nan") if i % 4 == 0 else 0.7, 1.0, "")
            )
    write_feedback(str(sink), [Outcome(f"q{i}", str(int(r["label"])), now) for i, r in enumerate(rows)])
    outcome, _ = _run(uri, tmp_path, log_sink=str(sink), window_hours=1)
    (result,) = outcome.results
    assert result.n_rows == 400 and any("100 rows had no usable model output" in w for w in result.warnings), result.warnings


def test_a_test_split_too_small_to_calibrate_still_gives_a_profile_without_the_estimate(watched):
    from kfp_mlops.components.monitor.reference import build_profile

    tmp, _, _, contract = watched
    rng = np.random.default_rng(3)
    profile = build_profile(contract, reference_path=tmp / "data" / "train.parquet", test_y=rng.integers(0, 2, 30), test_predictions=rng.random(30))
    assert profile.performance is None and "at least" in profile.source["performance_note"]
    assert profile.columns and profile.score.count == 30
