"""Label-free performance estimation (CBPE) and realized performance, on simulated classifiers.

The simulated world: x ~ N(mu, sd), true P(y=1 | x) = sigmoid(A + B x). The model is under-confident
(its score is sigmoid(0.6 (A + B x)), as from an over-regularized fit): ranking and decision boundary
are right, the probabilities are not, so the calibration step matters.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, auc, f1_score, roc_auc_score

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.monitor.performance import (
    PerformanceReference,
    PerformanceSketch,
    estimate,
    fit_reference,
)

A, B = -1.0, 2.0


def _binary_world(rng: np.random.Generator, n: int, mu: float = 0.0, sd: float = 1.0, a: float = A, b: float = B):
    """Labels from sigmoid(a + b x); the model always scores as if (A, B) held, under-confidently."""
    x = rng.normal(mu, sd, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(a + b * x)))).astype(int)
    scores = 1.0 / (1.0 + np.exp(-0.6 * (A + B * x)))
    return y, scores, (scores >= 0.5).astype(int)


def _by_metric(results):
    return {r.metric: r for r in results}


def _sketch(reference, scores, predicted, y=None, batches=1):
    sketch = PerformanceSketch(reference)
    for part in np.array_split(np.arange(len(scores)), batches):
        sketch.add(scores[part], predicted[part], None if y is None else y[part])
    return sketch


def _nannyml_estimates(p: np.ndarray, scores: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """A direct full-array transcription of NannyML's CBPE formulas (estimate_roc_auc and the expected confusion matrix)."""
    tp, fp = np.sum(p[predicted == 1]), np.sum(1 - p[predicted == 1])
    fn, tn = np.sum(p[predicted == 0]), np.sum(1 - p[predicted == 0])
    order = np.argsort(scores)[::-1]
    cumulative_tp = np.cumsum(p[order])
    cumulative_fp = 1 + np.arange(len(p)) - cumulative_tp
    cumulative_tp = np.round(np.r_[0, cumulative_tp], 5)
    cumulative_fp = np.round(np.r_[0, cumulative_fp], 5)
    return {
        "accuracy": (tp + tn) / len(p),
        "f1": tp / (tp + 0.5 * (fp + fn)),
        "roc_auc": auc(cumulative_fp / cumulative_fp[-1], cumulative_tp / cumulative_tp[-1]),
    }


def test_binned_estimate_equals_the_full_array_formulas():
    rng = np.random.default_rng(3)
    y_ref, s_ref, p_ref = _binary_world(rng, 5000)
    reference = fit_reference("binary", y_ref, s_ref, p_ref)
    assert reference.calibrated
    _, scores, predicted = _binary_world(rng, 30_000, mu=0.6)
    calibrated = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(s_ref, y_ref).predict(scores)
    expected = _nannyml_estimates(calibrated, scores, predicted)
    results = _by_metric(estimate(reference, _sketch(reference, scores, predicted, batches=7)))
    for metric, value in expected.items():
        assert results[metric].estimated == pytest.approx(value, abs=1e-6), metric
    # With the reference term off the band is NannyML's: estimate ± 3 std / sqrt(n * fraction).
    nannyml_band = _by_metric(estimate(reference, _sketch(reference, scores, predicted), reference_error=False))
    auc_ref = next(m for m in reference.metrics if m.metric == "roc_auc")
    half = 3 * auc_ref.std / math.sqrt(len(scores) * auc_ref.fraction)
    assert nannyml_band["roc_auc"].upper - nannyml_band["roc_auc"].estimated == pytest.approx(half, rel=1e-9)


def test_seven_merged_batches_equal_one_batch_and_missing_values_are_handled():
    rng = np.random.default_rng(4)
    reference = fit_reference("binary", *_binary_world(rng, 3000))
    y, scores, predicted = _binary_world(rng, 7000, mu=0.4)
    labels = y.astype(float)
    labels[rng.random(7000) < 0.4] = np.nan
    scores[:5] = np.nan  # rows without a score are skipped, not counted
    whole = _sketch(reference, scores, predicted, labels)
    merged = PerformanceSketch(reference)
    for index, part in enumerate(np.array_split(np.arange(7000), 7)):
        piece = PerformanceSketch(reference)
        batch_labels = labels[part]
        if index % 2:  # missing labels as a mask over a placeholder 0 in some batches, as NaN in others
            batch_labels = np.ma.masked_array(np.nan_to_num(batch_labels, nan=0.0), mask=np.isnan(batch_labels))
        piece.add(scores[part], predicted[part], batch_labels)
        merged.merge(piece)
    assert (merged.n, merged.n_skipped, merged.n_labelled) == (whole.n, whole.n_skipped, whole.n_labelled)
    assert (whole.n, whole.n_skipped, whole.n_labelled) == (6995, 5, int(np.isfinite(labels[5:]).sum()))
    for name in ("labelled_confusion", "rows_per_bin", "positives_per_bin", "negatives_per_bin"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name)), name
    for name in ("expected_confusion", "p_per_bin"):
        assert np.allclose(getattr(merged, name), getattr(whole, name), rtol=1e-12, atol=1e-9), name
    for left, right in zip(estimate(reference, merged), estimate(reference, whole)):
        assert left.estimated == pytest.approx(right.estimated, abs=1e-12) and left.realized == pytest.approx(right.realized, abs=1e-12)
    # Memory is the bins, not the rows.
    assert merged.rows_per_bin.size == len(reference.score_edges) + 1 < 5000


def test_realized_metrics_match_sklearn():
    rng = np.random.default_rng(5)
    reference = fit_reference("binary", *_binary_world(rng, 4000))
    y, scores, predicted = _binary_world(rng, 50_000, mu=1.2, sd=0.7)
    results = _by_metric(estimate(reference, _sketch(reference, scores, predicted, y, batches=5)))
    assert results["roc_auc"].realized == pytest.approx(roc_auc_score(y, scores), abs=1e-3)
    assert results["accuracy"].realized == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert results["f1"].realized == pytest.approx(f1_score(y, predicted), abs=1e-12)
    assert results["accuracy"].n_labelled == 50_000


def test_band_covers_realized_metrics_under_covariate_shift():
    rng = np.random.default_rng(7)
    trials, covered, calibrated_runs = 200, np.zeros(2), 0
    uncalibrated_covered = 0
    for _ in range(trials):
        reference = fit_reference("binary", *_binary_world(rng, 2000))
        calibrated_runs += reference.calibrated
        y, scores, predicted = _binary_world(rng, 2000, mu=0.8)
        results = _by_metric(estimate(reference, _sketch(reference, scores, predicted)))
        realized = (accuracy_score(y, predicted), roc_auc_score(y, scores))
        covered += [results[m].lower <= value <= results[m].upper for m, value in zip(("accuracy", "roc_auc"), realized)]
        raw = dataclasses.replace(reference, calibration_x=(), calibration_p=())
        raw_accuracy = _by_metric(estimate(raw, _sketch(raw, scores, predicted)))["accuracy"]
        uncalibrated_covered += raw_accuracy.lower <= realized[0] <= raw_accuracy.upper
    rates = covered / trials
    print(f"coverage over {trials} trials: accuracy {rates[0]:.3f}, roc_auc {rates[1]:.3f}; raw scores: accuracy {uncalibrated_covered / trials:.3f}")
    assert calibrated_runs >= 0.95 * trials
    assert rates[0] >= 0.90 and rates[1] >= 0.90
    # The under-confident scores taken at face value miss nearly always: the calibration step matters.
    assert uncalibrated_covered / trials < 0.2


def test_band_keeps_covering_windows_much_larger_than_the_reference():
    rng = np.random.default_rng(8)
    trials, ours, nannyml = 30, 0, 0
    for _ in range(trials):
        reference = fit_reference("binary", *_binary_world(rng, 2000))
        y, scores, predicted = _binary_world(rng, 200_000, mu=0.8)
        sketch, realized = _sketch(reference, scores, predicted), roc_auc_score(y, scores)
        wide = _by_metric(estimate(reference, sketch))["roc_auc"]
        narrow = _by_metric(estimate(reference, sketch, reference_error=False))["roc_auc"]
        ours += wide.lower <= realized <= wide.upper
        nannyml += narrow.lower <= realized <= narrow.upper
    print(f"200k-row windows, roc_auc coverage: with the reference term {ours / trials:.2f}, NannyML's band {nannyml / trials:.2f}")
    assert ours / trials >= 0.85 and nannyml / trials <= 0.5


def test_a_shift_that_lowers_performance_alerts_and_random_halves_do_not():
    rng = np.random.default_rng(9)
    reference = fit_reference("binary", *_binary_world(rng, 4000))
    # Inputs crowd around the decision boundary x = -A/B, where no model can be accurate; no labels yet.
    _, scores, predicted = _binary_world(rng, 3000, mu=-A / B, sd=0.25)
    results = _by_metric(estimate(reference, _sketch(reference, scores, predicted)))
    assert results["accuracy"].alert and results["roc_auc"].alert
    assert results["accuracy"].estimated < results["accuracy"].alert_below and math.isnan(results["accuracy"].realized)

    trials, alerts = 100, 0
    for _ in range(trials):
        y, scores, predicted = _binary_world(rng, 4000)
        half = rng.permutation(4000)
        fitted, current = half[:2000], half[2000:]
        reference = fit_reference("binary", y[fitted], scores[fitted], predicted[fitted])
        sketch = _sketch(reference, scores[current], predicted[current], y[current])
        alerts += any(r.alert for r in estimate(reference, sketch))
    print(f"false alert rate on random halves: {alerts / trials:.3f}")
    assert alerts / trials <= 0.05


def test_concept_shift_leaves_the_estimate_but_the_realized_metric_alerts():
    rng = np.random.default_rng(10)
    reference = fit_reference("binary", *_binary_world(rng, 4000))
    # Same inputs and scores; the label depends far less on x than the model believes.
    y, scores, predicted = _binary_world(rng, 4000, a=A, b=0.4)
    results = _by_metric(estimate(reference, _sketch(reference, scores, predicted, y)))
    for metric in ("accuracy", "roc_auc"):
        result = results[metric]
        assert abs(result.estimated - result.reference) < 0.02, metric  # CBPE cannot see it
        assert result.estimated >= result.alert_below, metric
        assert result.realized < result.lower and result.realized < result.alert_below, metric
        assert result.alert, metric
    without_labels = _by_metric(estimate(reference, _sketch(reference, scores, predicted)))
    assert not any(r.alert for r in without_labels.values())


def _multiclass_world(rng: np.random.Generator, n: int, shift: float = 0.0):
    """Three classes, softmax of linear logits; the model is overconfident (logits doubled)."""
    weights = np.array([[1.5, 0.0], [-0.8, 1.2], [-0.8, -1.2]])
    x = rng.normal(0.0, 1.0, (n, 2)) + [shift, 0.0]
    logits = x @ weights.T
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) > np.cumsum(truth, axis=1)).sum(axis=1)
    model = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)
    return y, model.max(axis=1), model.argmax(axis=1)


def test_multiclass_confidence_based_accuracy_within_its_band():
    rng = np.random.default_rng(11)
    trials, covered = 100, 0
    for _ in range(trials):
        reference = fit_reference("multiclass", *_multiclass_world(rng, 2000))
        assert [m.metric for m in reference.metrics] == ["accuracy"] and reference.calibrated
        y, confidence, predicted = _multiclass_world(rng, 2000, shift=0.7)
        result = estimate(reference, _sketch(reference, confidence, predicted))[0]
        covered += result.lower <= accuracy_score(y, predicted) <= result.upper
    print(f"multiclass accuracy coverage: {covered / trials:.2f}")
    assert covered / trials >= 0.90


def test_no_current_rows_gives_nan_estimates_and_no_alert():
    reference = fit_reference("binary", *_binary_world(np.random.default_rng(12), 500))
    results = estimate(reference, PerformanceSketch(reference))
    assert [r.metric for r in results] == ["accuracy", "roc_auc", "f1"]
    assert all(math.isnan(r.estimated) and math.isnan(r.lower) and math.isnan(r.realized) and not r.alert for r in results)


def test_reference_round_trips_through_json():
    reference = fit_reference("binary", *_binary_world(np.random.default_rng(13), 1000))
    again = PerformanceReference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert again == reference


def _good_dict() -> dict:
    return fit_reference("binary", *_binary_world(np.random.default_rng(14), 300)).to_dict()


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d.update(version=True), "version"),
        (lambda d: d.update(task="regression"), "task"),
        (lambda d: d.update(n_rows=10), "n_rows"),
        (lambda d: d.update(n_rows="300"), "n_rows"),
        (lambda d: d["metrics"].pop(), "metrics"),
        (lambda d: d["metrics"].__setitem__(0, "accuracy"), "metrics"),
        (lambda d: d["metrics"][1].update(value=float("nan")), "value"),
        (lambda d: d["metrics"][1].update(std=True), "std"),
        (lambda d: d["metrics"][0].update(fraction=0), "fraction"),
        (lambda d: d["metrics"][2].update(alert_below=1.5), "alert_below"),
        (lambda d: d.update(calibration_x=d["calibration_x"][::-1]), "calibration_x"),
        (lambda d: d.update(calibration_p=d["calibration_p"][:-1]), "calibration_p"),
        (lambda d: d.update(calibration_p=[1.0] + d["calibration_p"][1:]), "calibration_p"),
        (lambda d: d.update(calibration_x="0.1,0.2"), "calibration_x"),
        (lambda d: d.update(score_edges=[]), "score_edges"),
        (lambda d: d.update(score_edges=[0.1, "0.2"]), "score_edges"),
        (lambda d: d.update(score_edges=[0.1, 1e300]), "score_edges"),
    ],
)
def test_malformed_reference_dicts_are_refused_naming_the_field(mutate, named):
    data = _good_dict()
    mutate(data)
    with pytest.raises(DataError) as caught:
        PerformanceReference.from_dict(data, where="profile.json")
    assert named in str(caught.value) and "profile.json" in str(caught.value)


def test_non_object_reference_is_refused():
    for data in (None, [], "x", 3):
        with pytest.raises(DataError, match="not a JSON object"):
            PerformanceReference.from_dict(data)


def test_unusable_reference_rows_are_refused_with_a_fix():
    rng = np.random.default_rng(15)
    y, scores, predicted = _binary_world(rng, 500)
    with pytest.raises(DataError, match="at least 100"):
        fit_reference("binary", y[:50], scores[:50], predicted[:50])
    with pytest.raises(DataError, match="one class"):
        fit_reference("binary", np.ones(500, dtype=int), scores, predicted)
    with pytest.raises(DataError, match="outside"):
        fit_reference("binary", y, scores * 3 - 1, predicted)
    with pytest.raises(DataError, match="other than 0 or 1"):
        fit_reference("binary", y + 1, scores, predicted)
    with pytest.raises(DataError, match="missing"):
        fit_reference("binary", np.where(y == 1, np.nan, 0.0), scores, predicted)
    with pytest.raises(DataError, match="What to do"):
        fit_reference("ranking", y, scores, predicted)


def test_current_batches_outside_the_contract_are_refused():
    rng = np.random.default_rng(16)
    reference = fit_reference("binary", *_binary_world(rng, 500))
    y, scores, predicted = _binary_world(rng, 200)
    sketch = PerformanceSketch(reference)
    with pytest.raises(DataError, match="logits"):
        sketch.add(scores * 10, predicted)
    with pytest.raises(DataError, match="labels other than"):
        sketch.add(scores, predicted, y * 2)
    with pytest.raises(DataError, match="differ in length"):
        sketch.add(scores, predicted[:-1])
    with pytest.raises(DataError, match="not numbers"):
        sketch.add(scores, np.array(["yes"] * 200))
    assert sketch.n == 0  # a refused batch leaves no partial counts
