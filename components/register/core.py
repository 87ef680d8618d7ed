"""Register core: evaluate the new model and the champion on the same test set, gate, register, alias.

Both models are scored through the serving transform (hash-checked files, nothing
unpickled, no model code run). The champion is read, the gate decided, the version
registered and the aliases moved under the model's promotion lock, so two concurrent
registers cannot both gate against "no champion". A retried step finds the version
its run registered and does not create another.
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.markdown import md_table, md_text
from kfp_mlops.components._shared.model_artifact import ModelArtifact
from kfp_mlops.components.monitor.reference import build_profile
from kfp_mlops.components.monitor.store import save_profile
from kfp_mlops.components.register.decision import gate
from kfp_mlops.components.register.evaluate import (
    Incomparable,
    Scored,
    score,
    score_champion,
)
from kfp_mlops.components.register.gate import GateResult, Threshold, decide
from kfp_mlops.components.register.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Registry,
    Version,
    check_model_name,
    hash_tags,
)
from kfp_mlops.components.train.serving import ServingTransform


@dataclass
class RegisterResult:
    version: Version
    gate: GateResult
    new_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    champion_version: str | None
    incomparable_reason: str = ""
    promoted: bool = False
    previous: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def aliases_after(self) -> tuple[str, ...]:
        """The aliases on the new version after this step (a new version has no others)."""
        return ("challenger", "champion") if self.promoted else ("challenger",)


def read_test(test_path: str | Path) -> pa.Table:
    try:
        return pq.read_table(str(test_path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the test split ({exc})", where=str(test_path), fix="pass the featurize step's test output") from exc


def register_model(
    model_dir: str | Path,
    contract: ModelArtifact,
    test_path: str | Path,
    *,
    registry: Registry,
    name: str,
    thresholds: list[Threshold] | None,
    promote: bool,
    tags: dict[str, str],
    replace_incomparable: bool = False,
    reference_path: str | Path | None = None,
) -> RegisterResult:
    """Score, then under the promotion lock: read the champion, gate, register, move aliases.

    The version gets its reference profile for monitoring: inputs from ``reference_path``
    (the training split; the test split when None), score and calibration from the test split.
    """
    check_model_name(name)
    if not contract.mlflow_model_uri or not contract.mlflow_run_id:
        raise DataError("the model was not logged to MLflow (no run id or model URI in its contract)", where=str(model_dir), fix="train with an MLflow tracking URI")
    started = time.perf_counter()
    table = read_test(test_path)
    new = ServingTransform.load(model_dir, expected_hashes=contract.files)
    try:
        new_scored = score(new, table, str(test_path))
    except DataError as exc:
        raise DataError(f"the new model cannot score its test split: {exc.problem}", where=str(test_path), fix="pass the test split from the same featurize step as the training data") from exc
    new_metrics = new_scored.metrics
    decide(new_metrics, None, thresholds or [])  # thresholds naming metrics this model lacks fail before the registry is touched
    profile = build_profile(contract, reference_path=reference_path or test_path, test_y=new_scored.y, test_predictions=new_scored.predictions, test_path=test_path)
    with registry.lock(name):
        champion = registry.alias(name, CHAMPION)
        if champion is not None and champion.run_id == contract.mlflow_run_id:  # a retry after this run's own promotion
            champion = registry.alias(name, PREVIOUS)
        champion_scored, reason = None, ""
        if champion is not None:
            try:
                champion_scored = _score_registered(registry, name, champion.version, table, str(test_path), new.contract)
            except (Incomparable, DataError) as exc:
                reason = exc.problem if isinstance(exc, DataError) else str(exc)
        evaluated = time.perf_counter()
        decision = gate(new_scored, champion_scored, had_champion=champion is not None, thresholds=thresholds or [], incomparable_reason=reason, replace_incomparable=replace_incomparable)
        version_tags = {**tags, **hash_tags(dict(contract.files)), "blessed": str(decision.blessed).lower(), **{f"test_{k}": f"{v:.6g}" for k, v in new_metrics.items()}}
        version = registry.register(name, contract.mlflow_model_uri, contract.mlflow_run_id, version_tags)
        registry.set_alias(name, CHALLENGER, version.version)
        save_profile(registry, version, profile)
        champion_metrics = champion_scored.metrics if champion_scored is not None else None
        result = RegisterResult(version, decision, new_metrics, champion_metrics, champion.version if champion else None, reason)
        if decision.blessed and promote:
            result.previous = registry.promote_locked(name, version.version)
            result.promoted = True
    result.seconds = {"evaluate": evaluated - started, "register": time.perf_counter() - evaluated}
    return result


def _score_registered(registry: Registry, name: str, version: str, table: pa.Table, where: str, new: ModelArtifact) -> Scored:
    """A registered version's scores: its files downloaded, checked against the hashes the registry recorded."""
    from kfp_mlops.components.serve.model_source import (
        ModelReferenceError,
        load_registered_version,
    )

    with tempfile.TemporaryDirectory(prefix="champion-") as scratch:
        try:
            transform = load_registered_version(registry, name, version, Path(scratch))
        except ModelReferenceError as exc:
            raise Incomparable(f"version {version} holds no kfp-mlops model folder") from exc
        old = transform.contract
        if (old.label, old.task, sorted(old.feature_names)) != (new.label, new.task, sorted(new.feature_names)):
            raise Incomparable(
                f"it was trained on other inputs: champion {old.task} on {old.label!r} from {sorted(old.feature_names)[:20]}, new {new.task} on {new.label!r} from {sorted(new.feature_names)[:20]}"
            )
        return score_champion(transform, table, where)


def _metric_rows(result: RegisterResult) -> list[list[str]]:
    return [[metric, f"{value:.4f}", "" if result.champion_metrics is None else f"{result.champion_metrics.get(metric, float('nan')):.4f}"] for metric, value in result.new_metrics.items()]


def _check_rows(result: RegisterResult) -> list[list[str]]:
    return [[f"{c.metric}: {c.kind}", f"{c.bound:g}", "pass" if c.passed else "FAIL", c.note] for c in result.gate.checks]


def _aliases(result: RegisterResult) -> str:
    after = f"challenger -> {result.version.version}"
    if result.promoted:
        after += f"; champion -> {result.version.version}" + (f"; previous -> {result.previous}" if result.previous else "")
    elif result.champion_version:
        after += f"; champion stays {result.champion_version}"
    return after + ("" if result.promoted else " (not promoted" + ("" if result.gate.blessed else ": not blessed") + ")")


def comparison_text(result: RegisterResult) -> str:
    """One plain line for the step's log."""
    verdict = "BLESSED" if result.gate.blessed else "NOT blessed"
    against = result.gate.against + (f" (version {result.champion_version})" if result.champion_version else "") + (f": {result.incomparable_reason}" if result.incomparable_reason else "")
    checks = "; ".join(
        f"{c.metric} {c.kind}: {'pass' if c.passed else 'FAIL'} ({c.note})" if c.note else f"{c.metric} {c.kind} {c.bound:g}: {'pass' if c.passed else 'FAIL'}" for c in result.gate.checks
    )
    return f"{verdict}: {result.version.name} version {result.version.version}. Compared against: {against}. Checks: {checks}. Aliases: {_aliases(result)}"


def comparison_markdown(result: RegisterResult) -> str:
    verdict = "BLESSED" if result.gate.blessed else "NOT blessed"
    against = (
        md_text(result.gate.against)
        + (f" (version {md_text(result.champion_version)})" if result.champion_version else "")
        + (f": {md_text(result.incomparable_reason)}" if result.incomparable_reason else "")
    )
    lines = [
        f"# {verdict}: {md_text(result.version.name)} version {md_text(result.version.version)}",
        "",
        f"- Compared against: {against}",
        f"- Aliases after this step: {md_text(_aliases(result))}",
        "",
        md_table(["metric", "new", "champion"], _metric_rows(result)),
        "",
        md_table(["check", "bound", "result", "evidence"], _check_rows(result)),
    ]
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def comparison_html(result: RegisterResult) -> str:
    e = html.escape
    color = "#166534" if result.gate.blessed else "#991b1b"
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Model gate</title><style>body{font-family:system-ui,sans-serif;margin:24px}'
        "table{border-collapse:collapse;margin:12px 0}td,th{padding:6px 12px;border-bottom:1px solid #e5e7eb;text-align:left}</style></head><body>"
        f'<h1 style="color:{color}">{"Blessed" if result.gate.blessed else "Not blessed"}: {e(result.version.name)} v{e(result.version.version)}</h1>'
        f"<p>Compared against: {e(result.gate.against)}{e(' (version ' + result.champion_version + ')') if result.champion_version else ''} {e(result.incomparable_reason)}</p>"
        f"<p><b>Aliases after this step:</b> {e(_aliases(result))}</p>"
        f"<h2>Metrics on the test split</h2>{_html_table(['metric', 'new model', 'champion'], _metric_rows(result))}"
        f"<h2>Gate</h2>{_html_table(['check', 'bound', 'result', 'evidence'], _check_rows(result))}</body></html>"
    )
