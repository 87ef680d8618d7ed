"""The A/B log reader against a direct computation on the same records, through the real log writer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.prediction_log import ErrorLogger, ErrorRecord, Outcome, PredictionLogger, PredictionRecord, write_feedback
from kfp_mlops.components.abtest.logs import read_experiment
from kfp_mlops.components.abtest.settings import AnalysisSettings

T0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)


def write_log(sink: str, rows: pd.DataFrame, outcomes: pd.DataFrame | None = None, errors: pd.DataFrame | None = None) -> None:
    """Write predictions, outcomes and errors the way the model server and /v1/feedback do."""
    with PredictionLogger(sink, batch_rows=4000, queue_size=len(rows) + 1) as logger:
        for r in rows.itertuples(index=False):
            assert logger.log(PredictionRecord(r.request_id, r.time.to_pydatetime(), r.arm, "m", r.version, "{}", r.prediction, 0.5, float(r.latency_ms), r.user))
    if outcomes is not None and len(outcomes):
        write_feedback(sink, [Outcome(o.request_id, o.outcome, o.time.to_pydatetime()) for o in outcomes.itertuples(index=False)])
    if errors is not None and len(errors):
        with ErrorLogger(sink) as logger:
            for e in errors.itertuples(index=False):
                assert logger.log(ErrorRecord(e.request_id, e.time.to_pydatetime(), e.arm, "m", "1", int(e.status), ""))


def synthetic(n: int = 3000, seed: int = 0, rates: tuple[float, float] = (0.7, 0.75), users: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Requests assigned per user; a share of them get an outcome, some twice (the later one wins)."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, n)
    arm = np.where(user % 2 == 0, "champion", "challenger")
    label = rng.integers(0, 2, n)
    right = rng.random(n) < np.where(arm == "champion", rates[0], rates[1])
    rows = pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "time": [T0 + timedelta(seconds=i) for i in range(n)], "arm": arm,
        "version": np.where(arm == "champion", "1", "2"), "prediction": np.where(right, label, 1 - label).astype(str),
        "latency_ms": rng.gamma(2.0, 3.0, n), "user": [f"u{u}" for u in user], "label": label.astype(str),
    })  # fmt: skip
    has = rng.random(n) < 0.8
    first = rows[has].assign(outcome=lambda d: np.where(rng.random(len(d)) < 0.1, "9", d.label), time=lambda d: d.time + timedelta(seconds=5))
    corrected = first[first.outcome == "9"].assign(outcome=lambda d: d.label, time=lambda d: d.time + timedelta(seconds=5))
    outcomes = pd.concat([first, corrected])[["request_id", "outcome", "time"]]
    return rows, outcomes


def _expected(rows: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    latest = outcomes.sort_values("time").groupby("request_id").outcome.last()
    joined = rows.assign(outcome=rows.request_id.map(latest))
    return joined.assign(m=np.where(joined.outcome.isna(), np.nan, (joined.prediction == joined.outcome).astype(float)))


def test_per_request_sums_equal_a_direct_computation_at_every_look(tmp_path):
    rows, outcomes = synthetic()
    write_log(str(tmp_path), rows, outcomes)
    data = read_experiment(str(tmp_path), AnalysisSettings(looks=10))
    expected = _expected(rows, outcomes)
    assert data.predictions == len(rows) and sorted(data.arms) == ["challenger", "champion"]
    for name, arm in data.arms.items():
        mine = expected[expected.arm == name]
        m = mine.m.dropna()
        assert arm.units[-1] == len(mine) and arm.metric.n[-1] == len(m)
        assert arm.metric.sum[-1] == pytest.approx(m.sum()) and arm.metric.sum_sq[-1] == pytest.approx((m**2).sum())
        assert arm.latency.sum[-1] == pytest.approx(mine.latency_ms.sum())
        assert arm.awaiting_outcome == int(mine.outcome.isna().sum())
        assert arm.versions == ["1" if name == "champion" else "2"]
        # look 5 of 10 covers the first half of the window
        cut = data.look_times[4]
        half = mine[mine.time < pd.Timestamp(cut)]
        assert arm.units[4] == len(half) and arm.metric.sum[4] == pytest.approx(half.m.sum())
    assert np.all(np.diff(data.arms["champion"].units) >= 0), "cumulative"


def test_per_user_sums_are_exact_although_users_span_looks(tmp_path):
    rows, outcomes = synthetic(seed=1)
    write_log(str(tmp_path), rows, outcomes)
    data = read_experiment(str(tmp_path), AnalysisSettings(unit="user", looks=7))
    expected = _expected(rows, outcomes)
    for name, arm in data.arms.items():
        for look in (2, 6):
            upto = expected[(expected.arm == name) & (expected.time < pd.Timestamp(data.look_times[look]))]
            per_user = upto.groupby("user").agg(num=("m", lambda s: s.sum(min_count=0)), den=("m", "count"))
            assert arm.units[look] == len(per_user)
            assert arm.metric.sum[look] == pytest.approx(per_user.num.sum())
            assert arm.metric.sum_sq[look] == pytest.approx((per_user.num**2).sum())
            assert arm.metric.den_sum[look] == pytest.approx(per_user.den.sum())
            assert arm.metric.den_sum_sq[look] == pytest.approx((per_user.den**2).sum())
            assert arm.metric.num_den_sum[look] == pytest.approx((per_user.num * per_user.den).sum())
    assert data.users_in_several_arms == 0


def test_cuped_covariate_is_each_users_pre_period_total(tmp_path):
    rng = np.random.default_rng(3)
    n, users = 4000, 400
    user = rng.integers(0, users, n)
    pre = rng.random(n) < 0.5  # half the requests happen in the day before the experiment
    times = [T0 + timedelta(seconds=int(i)) - (timedelta(days=1) if p else timedelta(0)) for i, p in zip(range(n), pre)]
    rows = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "time": times, "arm": np.where(user % 2 == 0, "champion", "challenger"),
                         "version": "1", "prediction": "0", "latency_ms": 5.0, "user": [f"u{u}" for u in user]})  # fmt: skip
    value = (rng.random(n) < 0.3).astype(int)
    outcomes = pd.DataFrame({"request_id": rows.request_id, "outcome": value.astype(str), "time": rows.time + timedelta(seconds=1)})
    write_log(str(tmp_path), rows, outcomes)
    data = read_experiment(str(tmp_path), AnalysisSettings(unit="user", metric="conversion", cuped_days=2, since=T0))
    frame = rows.assign(v=value)
    for name, arm in data.arms.items():
        mine = frame[frame.arm == name]
        during = mine[mine.time >= pd.Timestamp(T0)].groupby("user").v.sum()
        before = mine[mine.time < pd.Timestamp(T0)].groupby("user").v.sum().reindex(during.index, fill_value=0)
        assert arm.metric.n[-1] == len(during)
        assert arm.metric.sum[-1] == during.sum() and arm.metric.x_sum[-1] == before.sum()
        assert arm.metric.xy_sum[-1] == (during * before).sum() and arm.metric.x_sum_sq[-1] == (before**2).sum()


def test_errors_count_only_server_failures_in_the_window(tmp_path):
    rows, outcomes = synthetic(n=500)
    errors = pd.DataFrame({"request_id": ["e1", "e2", "e3", "e4"], "time": [T0 + timedelta(seconds=s) for s in (1, 2, 3, -3600)],
                           "arm": ["challenger", "challenger", "champion", "challenger"], "status": [503, 500, 400, 500]})  # fmt: skip
    write_log(str(tmp_path), rows, outcomes, errors)
    data = read_experiment(str(tmp_path), AnalysisSettings(since=T0))
    assert data.arms["challenger"].errors[-1] == 2, "a 4xx is the client's, and errors before the window do not count"
    assert data.arms["champion"].errors[-1] == 0
    assert data.arms["challenger"].requests[-1] == data.arms["challenger"].latency.n[-1] + 2
    assert data.arms["challenger"].units[-1] == data.arms["challenger"].requests[-1], "a failed request was assigned too (SRM)"


def test_outcomes_that_are_not_metric_values_are_counted_not_used(tmp_path):
    rows, _ = synthetic(n=400)
    outcomes = pd.DataFrame({"request_id": rows.request_id, "outcome": np.where(np.arange(400) % 4 == 0, "yes", "1"), "time": rows.time})
    write_log(str(tmp_path), rows, outcomes)
    data = read_experiment(str(tmp_path), AnalysisSettings(metric="conversion"))
    assert data.bad_outcomes == 100
    assert sum(a.metric.n[-1] for a in data.arms.values()) == 300
    zero = read_experiment(str(tmp_path), AnalysisSettings(metric="conversion", missing_outcome="zero"))
    assert sum(a.metric.n[-1] for a in zero.arms.values()) == 300, "an unusable outcome is not a missing one"


def test_an_empty_or_wrong_log_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no predictions are logged"):
        read_experiment(str(tmp_path), AnalysisSettings())
    rows, outcomes = synthetic(n=200)
    write_log(str(tmp_path), rows.assign(user=""), outcomes)
    with pytest.raises(DataError, match="X-Kfp-Mlops-Key"):
        read_experiment(str(tmp_path), AnalysisSettings(unit="user"))
    with pytest.raises(DataError, match="no predictions"):
        read_experiment(str(tmp_path), AnalysisSettings(since=T0 + timedelta(days=2)))
    (tmp_path / "predictions" / "date=2026-11-28" / "part-broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="could not be read") as caught:
        read_experiment(str(tmp_path), AnalysisSettings())
    assert "What to do" in str(caught.value)


def test_a_log_in_s3_is_read_the_same(tmp_path, s3_env):
    s3_env.create_bucket(Bucket="logs")
    rows, outcomes = synthetic(n=600, seed=4)
    write_log(str(tmp_path), rows, outcomes)
    write_log("s3://logs/app", rows, outcomes)
    local, remote = read_experiment(str(tmp_path), AnalysisSettings()), read_experiment("s3://logs/app", AnalysisSettings())
    for name in local.arms:
        assert remote.arms[name].metric.sum[-1] == local.arms[name].metric.sum[-1]
        assert remote.arms[name].units[-1] == local.arms[name].units[-1]


def test_cuped_from_the_log_narrows_the_interval_without_moving_the_estimate(tmp_path):
    """Users keep their habits: a user's conversions before the experiment predict those during it."""
    from kfp_mlops.components.abtest.analysis import analyze
    from kfp_mlops.components.abtest.stats.estimate import difference

    rng = np.random.default_rng(8)
    users = 1500
    propensity = rng.beta(1.0, 3.0, users)
    frames = []
    for start, lift in ((T0 - timedelta(days=1), 0.0), (T0, 0.03)):
        n = 12 * users
        user = rng.integers(0, users, n)
        challenger = user % 2 == 1
        value = rng.random(n) < np.clip(propensity[user] + np.where(challenger, lift, 0.0), 0, 1)
        frames.append(pd.DataFrame({"request_id": [f"{start.date()}-{i}" for i in range(n)], "time": [start + timedelta(seconds=int(s)) for s in rng.integers(0, 80_000, n)],
                                    "arm": np.where(challenger, "challenger", "champion"), "version": "1", "prediction": "0", "latency_ms": 5.0,
                                    "user": [f"u{u}" for u in user], "outcome": value.astype(int).astype(str)}))  # fmt: skip
    rows = pd.concat(frames, ignore_index=True)
    write_log(str(tmp_path), rows, rows[["request_id", "outcome", "time"]])
    settings = AnalysisSettings(unit="user", metric="conversion", since=T0, until=T0 + timedelta(days=1), cuped_days=1)
    data = read_experiment(str(tmp_path), settings)
    control, treatment = data.arms["champion"].metric, data.arms["challenger"].metric
    plain = difference(control, treatment, kind="mean")
    adjusted = difference(control, treatment, kind="mean", cuped=True)
    assert adjusted.variance[-1] < 0.8 * plain.variance[-1], "the pre-period explains part of each user's total"
    true_lift = 0.03 * 12  # conversions per user: 12 requests each, 3 points more likely
    assert abs(adjusted.effect[-1] - true_lift) < 3 * np.sqrt(adjusted.variance[-1])
    result = analyze(data, settings, {"champion": 50, "challenger": 50})
    primary = next(c for c in result.comparisons if c.role == "primary")
    assert primary.effect == pytest.approx(adjusted.effect[-1]), "the analysis uses the adjusted estimate"


def test_outcomes_that_are_no_label_do_not_count_as_misses(tmp_path):
    rows, _ = synthetic(n=300)
    odd = np.where(np.arange(300) % 3 == 0, "NaN", np.where(np.arange(300) % 3 == 1, "x" * 5000, rows.label))
    write_log(str(tmp_path), rows, pd.DataFrame({"request_id": rows.request_id, "outcome": odd, "time": rows.time}))
    data = read_experiment(str(tmp_path), AnalysisSettings())
    assert data.bad_outcomes == 200 and sum(a.metric.n[-1] for a in data.arms.values()) == 100
