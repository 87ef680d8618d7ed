"""One gate of an experiment: read the log, analyse, decide, and in apply mode act on it.

A gate may wait: it re-reads the log every ``poll_s`` until the decision is not
``continue`` or ``wait_s`` has passed. A rollout has several gates (one per canary
step). Each gate analyses everything since the rollout began: the earlier steps are
periods of the ``history`` (each at its own weights, combined stratified), the current
step the last period. The always-valid statistics make these repeated looks at a
growing sample safe, so the whole rollout keeps its false-claim rate at alpha. On
``continue`` in apply mode a gate may move the challenger to the next canary weight and
hands the next gate the history, its window start and its design.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from kfp_mlops.components._shared.errors import DataError, KfpMlopsError
from kfp_mlops.components.abtest.analysis import AnalysisResult, Decision, analyze_periods
from kfp_mlops.components.abtest.apply import Applied, TrafficTarget, apply_decision
from kfp_mlops.components.abtest.logs import read_experiment
from kfp_mlops.components.abtest.periods import Period
from kfp_mlops.components.abtest.settings import AnalysisInputError, AnalysisSettings, check_settings
from kfp_mlops.components.deploy.arms import DeployInputError, parse_arms

MODES = ("report", "apply")
INCONCLUSIVE = ("hold", "rollback")


@dataclass(frozen=True)
class GateRequest:
    """One gate.

    Attributes:
        model_name: Registered model name (promotion moves its @champion).
        log_sink: The deployment's prediction log.
        arms: The design: the deployed arms and weights, e.g. champion=90,challenger=10.
        settings: What to test and how strictly (alpha is the whole rollout's).
        mode: report (decide only) or apply (promote / roll back / move to the next step).
        traffic: Where the arms run (apply mode).
        history: JSON list of the earlier periods of this experiment: [{"since": ISO, "until": ISO, "arms": "champion=90,challenger=10"}].
        next_weight: apply: on continue, give the challenger this percent next (0 = stay).
        on_inconclusive: hold, or rollback when this gate is the last and nothing was shown.
        wait_s, poll_s: How long to wait for a decision, and how often to look.
    """

    model_name: str
    log_sink: str
    arms: str
    settings: AnalysisSettings
    mode: str = "report"
    traffic: TrafficTarget = TrafficTarget("local")
    history: str = ""
    next_weight: int = 0
    on_inconclusive: str = "hold"
    wait_s: float = 0.0
    poll_s: float = 60.0


@dataclass
class GateOutcome:
    result: AnalysisResult
    applied: Applied | None
    next_arms: str  # the design of the next gate ("" when the experiment ended)
    next_since: str  # ISO time the next gate's window starts ("" when it ended)
    next_history: str  # the history the next gate gets ("" when it ended)
    looks: int  # analyses run while waiting


def design_of(arms: str) -> dict[str, int]:
    """``champion=90,challenger=10`` -> {arm name: weight}; a version arm is named v<version>."""
    try:
        return {arm.name: arm.weight for arm in parse_arms(arms)}
    except DeployInputError as exc:
        raise AnalysisInputError(exc.problem, fix=exc.fix) from None


def check_gate(request: GateRequest) -> dict[str, int]:
    check_settings(request.settings)
    if request.mode not in MODES:
        raise AnalysisInputError(f"mode {request.mode!r} is not report or apply", fix="report to decide only; apply to promote or roll back as decided")
    if request.on_inconclusive not in INCONCLUSIVE:
        raise AnalysisInputError(f"on_inconclusive {request.on_inconclusive!r} is not hold or rollback", fix="rollback on the last canary step, hold otherwise")
    if not 0 <= request.next_weight < 100:
        raise AnalysisInputError(f"next_weight {request.next_weight} is not a percent below 100", fix="the challenger's percent in the next step; 0 = stay")
    if request.wait_s < 0 or request.poll_s <= 0:
        raise AnalysisInputError("wait and poll times must be positive", fix="e.g. wait_minutes=60")
    design = design_of(request.arms)
    if request.next_weight and len(design) != 2:
        raise AnalysisInputError(f"next_weight shifts traffic between two arms; the design has {len(design)}", fix="use next_weight with champion and one challenger")
    if request.mode == "apply" and request.traffic.target == "local" and not request.traffic.state_dir:
        raise AnalysisInputError("apply mode on the local target needs the deployment's state folder", fix="pass local_state_dir (the deploy step's) ")
    return design


MAX_PERIODS = 50


def parse_history(text: str, *, before: datetime | None = None) -> list[tuple[datetime, datetime, str]]:
    """The earlier periods: (since, until, arms) each, checked: in order, not overlapping, all before ``before``."""
    if not text.strip():
        return []
    try:
        items = json.loads(text)
        periods = [(_utc(item["since"]), _utc(item["until"]), str(item["arms"])) for item in items]
    except (ValueError, TypeError, KeyError) as exc:
        raise AnalysisInputError(f"history is not a list of {{since, until, arms}} periods ({exc})", fix="pass the previous gate's next_history output unchanged") from None
    fix = "pass the previous gate's next_history output unchanged"
    if len(periods) > MAX_PERIODS:
        raise AnalysisInputError(f"history has {len(periods)} periods, more than {MAX_PERIODS}", fix=fix)
    for number, (since, until, arms) in enumerate(periods):
        design_of(arms)
        if until <= since:
            raise AnalysisInputError(f"history period {number + 1} ends ({until.isoformat()}) before it starts", fix=fix)
        if number and since < periods[number - 1][1]:
            raise AnalysisInputError(f"history period {number + 1} starts before period {number} ends: periods may not overlap (each request counts once)", fix=fix)
    if periods and before is not None and periods[-1][1] > before:
        raise AnalysisInputError(f"the history's last period ends ({periods[-1][1].isoformat()}) after this window starts ({before.isoformat()})", fix=fix)
    if periods and before is None:
        raise AnalysisInputError("a history is given but not where this window starts (since)", fix="pass since: the previous gate's next_since")
    return periods


def run_gate(request: GateRequest, *, registry: Any = None, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> GateOutcome:
    """Analyse (waiting up to ``wait_s`` for a decision) and, in apply mode, act on the decision.

    In apply mode a gate that fails (bad input, an unreadable log, a refused promotion) first sends
    all traffic back to the control: a challenger is never left on traffic without a gate watching it.
    """
    design = check_gate(request)
    try:
        return _run_gate(request, design, registry, clock, sleep)
    except KfpMlopsError as exc:
        if request.mode != "apply":
            raise
        back = {name: (100 if name == request.settings.control else 0) for name in design}
        try:
            request.traffic.shift(back)
        except KfpMlopsError as shift_error:
            raise type(exc)(exc.problem, where=exc.where, fix=f"{exc.fix}; AND all traffic could not be sent back to {request.settings.control!r} ({shift_error.problem}): do it by hand") from exc
        raise type(exc)(exc.problem + f" (all traffic was sent back to {request.settings.control!r})", where=exc.where, fix=exc.fix) from exc


def _run_gate(request: GateRequest, design: dict[str, int], registry: Any, clock: Callable[[], float], sleep: Callable[[float], None]) -> GateOutcome:
    history = parse_history(request.history, before=request.settings.since)
    settings = request.settings
    deadline = clock() + request.wait_s
    looks = 0
    while True:
        looks += 1
        try:
            result = analyze_periods(_read_periods(request, history, design), settings)
        except DataError as exc:
            if clock() + request.poll_s > deadline or "no predictions" not in exc.problem:
                raise
            sleep(request.poll_s)  # no traffic in the window yet
            continue
        if result.decision.action != "continue" or clock() + request.poll_s > deadline:
            break
        sleep(request.poll_s)
    if result.decision.action == "continue" and request.on_inconclusive == "rollback" and not request.next_weight:
        challenger = next((n for n in design if n != settings.control), "")
        result.decision = Decision("rollback", challenger, ["this was the last step and no challenger was shown better (nor harmful): the champion keeps all traffic"])
    if request.mode != "apply":
        return GateOutcome(result, None, request.arms if result.decision.action == "continue" else "", "", "", looks)
    applied = apply_decision(result, registry=registry, model_name=request.model_name, traffic=request.traffic, design=design)
    if result.decision.action != "continue":
        return GateOutcome(result, applied, "", "", "", looks)
    if not request.next_weight:  # the same step goes on: the next gate continues this period
        since = settings.since.isoformat() if settings.since else ""
        return GateOutcome(result, applied, request.arms, since, request.history, looks)
    challenger = next(n for n in design if n != settings.control)
    weights = {settings.control: 100 - request.next_weight, challenger: request.next_weight}
    request.traffic.shift(weights)
    now = datetime.now(timezone.utc)
    since = settings.since or (result.data.first_time or now)
    past = [{"since": s.isoformat(), "until": u.isoformat(), "arms": a} for s, u, a in history] + [{"since": since.isoformat(), "until": now.isoformat(), "arms": request.arms}]
    applied = Applied("next-step", weights, notes=[f"{challenger!r} moves to {request.next_weight}% for the next step"])
    return GateOutcome(result, applied, ",".join(f"{n}={w}" for n, w in weights.items()), now.isoformat(), json.dumps(past), looks)


def _read_periods(request: GateRequest, history: list[tuple[datetime, datetime, str]], design: dict[str, int]) -> list[Period]:
    periods = []
    for since, until, arms in history:
        window = dataclasses.replace(request.settings, since=since, until=until)
        periods.append(Period(read_experiment(request.log_sink, window), design_of(arms)))
    periods.append(Period(read_experiment(request.log_sink, request.settings), design))
    return periods


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text} has no timezone")
    return value.astimezone(timezone.utc)
