"""A deployment's prediction log as per-arm sufficient statistics at each look, streamed by DuckDB.

The analysis never holds the log in memory: DuckDB scans only the columns it needs from
the Parquet parts (predictions, feedback, errors), joins the latest outcome per request,
and returns, per arm and time bucket, the increments of the sums the tests need. Summed
over buckets they are the cumulative statistics at every look, which is what the
confidence sequence over time and the sequential SRM test consume.

Per-user units: a user's metric is the sum over their requests (numerator) and the
number of their outcomes (denominator). Its square changes whenever a later bucket adds
to it, so each (arm, user, bucket) row contributes the *change* of the user's squares
(cumulative^2 - previous^2); summing those increments gives the exact per-look sums.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from kfp_mlops.components._shared import prediction_log_io as plio
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.storage import objects
from kfp_mlops.components.abtest.settings import AnalysisSettings
from kfp_mlops.components.abtest.stats.moments import Moments

MEMORY_LIMIT = os.environ.get("KFP_MLOPS_ANALYSIS_MEMORY", "1GB")
ERROR_STATUS = 500  # 4xx are the client's mistakes, not the arm's
MAX_OUTCOME_CHARS = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class ArmData:
    """One arm's cumulative statistics at each look (arrays of length ``looks``)."""

    name: str
    units: np.ndarray  # assigned units (requests, failed ones included, or users): the SRM counts
    metric: Moments  # the primary metric over units with an outcome
    latency: Moments  # per request, milliseconds
    requests: np.ndarray  # predictions + server errors
    errors: np.ndarray  # server errors (status >= 500)
    p95_latency_ms: float
    awaiting_outcome: int  # requests of the window with no outcome yet
    versions: list[str] = field(default_factory=list)


@dataclass
class ExperimentData:
    arms: dict[str, ArmData]
    look_times: list[datetime]  # the end of each look's bucket
    first_time: datetime | None
    last_time: datetime | None
    predictions: int
    outcomes: int
    bad_outcomes: int  # outcomes that are not values of the metric (text where a number is needed, not 0/1)
    users_in_several_arms: int = 0
    requests_without_key: int = 0


def read_experiment(sink: str, settings: AnalysisSettings) -> ExperimentData:
    """The per-arm statistics of ``settings``' window of the log under ``sink``.

    Raises:
        DataError: no predictions in the window, a unit=user log without routing keys, unreadable parts.
        SourceError: the store could not be listed or read.
    """
    import duckdb

    checked = plio.parse_sink(sink)
    pre_since = settings.since - timedelta(days=settings.cuped_days) if settings.cuped_days and settings.since else settings.since
    with tempfile.TemporaryDirectory(prefix="abtest-") as scratch:
        files = {
            kind: _local_parts(checked, kind, pre_since if kind != plio.ERRORS else settings.since, settings.until, Path(scratch) / kind) for kind in (plio.PREDICTIONS, plio.FEEDBACK, plio.ERRORS)
        }
        if not files[plio.PREDICTIONS]:
            raise DataError(
                f"no predictions are logged under {checked.shown} in the window {_window(settings)}",
                fix="check log_sink (the deployment's prediction log) and the window, and that traffic reached the endpoint",
            )
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": str(Path(scratch) / "spill"), "threads": os.cpu_count() or 1})
        try:
            return _aggregate(con, files, settings)
        except duckdb.Error as exc:
            raise DataError(f"the prediction log could not be read ({exc})", where=checked.shown, fix="a part file is damaged or not a kfp-mlops log: move it out of the sink") from exc
        finally:
            con.close()


def _window(settings: AnalysisSettings) -> str:
    since = settings.since.isoformat() if settings.since else "the start"
    until = settings.until.isoformat() if settings.until else "now"
    return f"[{since}, {until})"


def _local_parts(sink: plio.Sink, kind: str, since: datetime | None, until: datetime | None, scratch: Path) -> list[str]:
    """Local paths of ``kind``'s parts: the files themselves, or copies of the objects in ``scratch``."""
    client = objects.client_for(sink.root)
    uris = plio.part_uris(sink, kind, since=since, until=until, client=client)
    if not sink.scheme:
        return [str(Path(u)) for u in uris]
    scratch.mkdir(parents=True, exist_ok=True)

    def fetch(item: tuple[int, str]) -> str:
        target = scratch / f"{item[0]:07d}.parquet"
        target.write_bytes(objects.get_object(item[1], client=client))
        return str(target)

    with ThreadPoolExecutor(plio.READ_THREADS) as pool:
        return list(pool.map(fetch, enumerate(uris)))


def _metric_sql(settings: AnalysisSettings) -> tuple[str, str]:
    """(value of the metric for one joined request or NULL, whether its outcome is unusable)."""
    pred, out = "try_cast(p.prediction AS DOUBLE)", "try_cast(f.outcome AS DOUBLE)"
    metric = settings.metric
    if metric == "accuracy":
        # Labels compare as numbers when both read as numbers ("1" == "1.0"), else as text.
        value = f"CASE WHEN {pred} IS NOT NULL AND {out} IS NOT NULL THEN ({pred} = {out})::DOUBLE ELSE (p.prediction = f.outcome)::DOUBLE END"
        bad = f"coalesce(NOT isfinite({out}), false)"  # "NaN" or "inf" is no label
    elif metric == "conversion":
        value, bad = f"CASE WHEN {out} IN (0, 1) THEN {out} END", f"NOT coalesce({out} IN (0, 1), false)"
    elif metric == "mean_outcome":
        value, bad = f"CASE WHEN isfinite({out}) THEN {out} END", f"NOT coalesce(isfinite({out}), false)"
    else:
        diff = f"({pred} - {out})"
        value = f"abs({diff})" if metric == "absolute_error" else f"{diff} * {diff}"
        value, bad = f"CASE WHEN isfinite({value}) THEN {value} END", f"NOT coalesce(isfinite({value}), false)"
    missing = "0.0" if settings.missing_outcome == "zero" else "NULL"
    bad = f"(length(f.outcome) > {MAX_OUTCOME_CHARS} OR {bad})"  # the feedback endpoint refuses longer ones; a table may not
    return f"CASE WHEN f.outcome IS NULL THEN {missing} WHEN {bad} THEN NULL ELSE {value} END", f"(f.outcome IS NOT NULL AND {bad})"


def _aggregate(con: Any, files: dict[str, list[str]], settings: AnalysisSettings) -> ExperimentData:
    since_us = _us(settings.since) if settings.since else None
    until_us = _us(settings.until) if settings.until else None
    con.execute(f"CREATE VIEW p_all AS SELECT request_id, epoch_us(time) AS t, arm, model_version, prediction, latency_ms, routing_key FROM read_parquet({_list(files[plio.PREDICTIONS])})")
    in_window = " AND ".join(c for c in (f"t >= {since_us}" if since_us is not None else "", f"t < {until_us}" if until_us is not None else "") if c) or "true"
    con.execute(f"CREATE VIEW p AS SELECT * FROM p_all WHERE {in_window}")
    low, high, rows = con.execute("SELECT min(t), max(t), count(*) FROM p").fetchone()
    if not rows:
        raise DataError(f"no predictions are logged in the window {_window(settings)}", fix="widen the window or wait for traffic")
    start = since_us if since_us is not None else low
    end = until_us if until_us is not None else high + 1
    looks = int(settings.looks)
    width = max(1, -(-(end - start) // looks))
    bucket = f"least({looks - 1}, greatest(0, (t - {start}) // {width}))::INTEGER"
    if files[plio.FEEDBACK]:
        con.execute(f"CREATE VIEW f AS SELECT request_id, arg_max(outcome, time) AS outcome FROM read_parquet({_list(files[plio.FEEDBACK])}) GROUP BY request_id")
    else:
        con.execute("CREATE VIEW f AS SELECT NULL::VARCHAR AS request_id, NULL::VARCHAR AS outcome WHERE false")
    value, bad = _metric_sql(settings)
    # Per-request units read the join once (a view streams it); per-user units read it twice, so it is kept.
    kind = "VIEW" if settings.unit == "request" else "TEMP TABLE"
    con.execute(f"CREATE {kind} j AS SELECT p.arm, p.routing_key AS u, {bucket} AS b, p.latency_ms, {value} AS m, f.outcome IS NOT NULL AS has, {bad} AS bad FROM p LEFT JOIN f USING (request_id)")
    # One pass over the joined requests for everything counted per request.
    per_request = con.execute(
        "SELECT arm, b, count(*), count(latency_ms), sum(latency_ms), sum(latency_ms * latency_ms), count(*) FILTER (WHERE NOT has), "
        "count(m), sum(m), sum(m * m), count(*) FILTER (WHERE coalesce(u, '') = ''), count(*) FILTER (WHERE has), count(*) FILTER (WHERE bad) "
        "FROM j GROUP BY ALL"
    ).fetchall()
    names = sorted({row[0] for row in per_request})
    index = {name: i for i, name in enumerate(names)}
    shape = (len(names), looks)

    def grid(rows_: list[tuple], columns: int) -> np.ndarray:
        out = np.zeros((columns, *shape))
        for row in rows_:
            out[:, index[row[0]], row[1]] = [0.0 if v is None else float(v) for v in row[2 : 2 + columns]]
        return np.cumsum(out, axis=2)

    counted = grid(per_request, 11)
    requests, m = counted[:5], counted[5:8]
    without_key, outcomes, bad_outcomes = (int(counted[k][:, -1].sum()) for k in (8, 9, 10))
    several = 0
    if settings.unit == "request":
        units = requests[0]
        metric_parts = {"n": m[0], "sum": m[1], "sum_sq": m[2]}
    else:
        if without_key == rows:
            raise DataError(
                "unit=user needs the splitter's routing key, and no request in the window carries one", fix="send each user's id in the X-Kfp-Mlops-Key header, or analyse with unit=request"
            )
        units, metric_parts = _per_user(con, lambda query, columns: grid(con.execute(query).fetchall(), columns), settings)
        several = con.execute("SELECT count(*) FROM (SELECT u FROM w GROUP BY u HAVING count(DISTINCT arm) > 1)").fetchone()[0]
    errors = np.zeros(shape)
    if files[plio.ERRORS]:
        con.execute(f"CREATE VIEW e_all AS SELECT epoch_us(time) AS t, arm, status FROM read_parquet({_list(files[plio.ERRORS])})")
        for arm, b, count in con.execute(f"SELECT arm, {bucket} AS b, count(*) FROM e_all WHERE {in_window} AND status >= {ERROR_STATUS} GROUP BY ALL").fetchall():
            if arm in index:
                errors[index[arm], b] = count
        errors = np.cumsum(errors, axis=1)
    if settings.unit == "request":
        units = units + errors  # a failed request was assigned too: the SRM counts it
    p95 = dict(con.execute("SELECT arm, approx_quantile(latency_ms, 0.95) FROM p GROUP BY arm").fetchall())
    versions: dict[str, list[str]] = {}
    for arm, version in con.execute("SELECT arm, model_version FROM p GROUP BY ALL ORDER BY ALL").fetchall():
        versions.setdefault(arm, []).append(version)
    arms = {}
    for name, i in index.items():
        arms[name] = ArmData(
            name=name,
            units=units[i],
            metric=Moments(**{key: value[i] for key, value in metric_parts.items()}),
            latency=Moments(n=requests[1][i], sum=requests[2][i], sum_sq=requests[3][i]),
            requests=requests[0][i] + errors[i],
            errors=errors[i],
            p95_latency_ms=float(p95.get(name) or 0.0),
            awaiting_outcome=int(requests[4][i][-1]),
            versions=versions.get(name, []),
        )
    look_times = [_time(min(start + width * (k + 1), end)) for k in range(looks)]
    return ExperimentData(arms, look_times, _time(low), _time(high), int(rows), outcomes, bad_outcomes, int(several), without_key)


def _per_user(con: Any, grid: Any, settings: AnalysisSettings) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Units (users) and the metric's sums per look under per-user assignment (see the module docstring)."""
    covariate = "0.0"
    if settings.cuped_days and settings.since is not None:
        value, _ = _metric_sql(settings)
        con.execute(
            f"CREATE TEMP TABLE pre AS SELECT p.routing_key AS u, sum({value}) AS x FROM p_all p LEFT JOIN f USING (request_id) "
            f"WHERE p.t < {_us(settings.since)} AND p.t >= {_us(settings.since - timedelta(days=settings.cuped_days))} GROUP BY ALL"
        )
        covariate = "coalesce(pre.x, 0.0)"
    pre_join = "LEFT JOIN pre USING (u)" if covariate != "0.0" else ""
    con.execute(
        f"""CREATE TEMP TABLE w AS
        WITH ub AS (SELECT arm, u, b, count(m) AS d, coalesce(sum(m), 0) AS s FROM j WHERE coalesce(u, '') <> '' GROUP BY ALL)
        SELECT arm, u, b, s, d, {covariate} AS x,
            sum(s) OVER (PARTITION BY arm, u ORDER BY b) AS cs,
            sum(d) OVER (PARTITION BY arm, u ORDER BY b) AS cd,
            row_number() OVER (PARTITION BY arm, u ORDER BY b) = 1 AS first
        FROM ub {pre_join}"""
    )
    g = grid(
        """SELECT arm, b, count(*) FILTER (WHERE first), sum(s), sum(cs * cs - (cs - s) * (cs - s)),
            sum(d), sum(cd * cd - (cd - d) * (cd - d)), sum(cs * cd - (cs - s) * (cd - d)),
            sum(CASE WHEN first THEN x ELSE 0 END), sum(CASE WHEN first THEN x * x ELSE 0 END), sum(x * s)
        FROM w GROUP BY ALL""",
        9,
    )
    users = g[0]
    if settings.cuped_days:
        # The per-user total of the outcome is the unit's value; its pre-period total the covariate.
        return users, {"n": users, "sum": g[1], "sum_sq": g[2], "x_sum": g[6], "x_sum_sq": g[7], "xy_sum": g[8]}
    return users, {"n": users, "sum": g[1], "sum_sq": g[2], "den_sum": g[3], "den_sum_sq": g[4], "num_den_sum": g[5]}


def _list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _us(value: datetime) -> int:
    return int((value - _EPOCH) // timedelta(microseconds=1))


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))
