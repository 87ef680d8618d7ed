"""Register core: evaluate the new model and the champion on the same test set, gate, register, alias.

Both models are scored through the serving transform (hash-checked files, nothing
unpickled, no model code run). The champion is read, the gate decided, the version
registered and the aliases moved under the model's promotion lock, so two concurrent
registers cannot both gate against "no champion". A retried step finds the version
its run registered and does not create another.
"""

from __future__ import annotations

import html
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.markdown import md_table, md_text
from kfp_mlops.components._shared.model_artifact import CONTRACT_FILE, ModelArtifact
from kfp_mlops.components.register.evaluate import Incomparable, score, score_champion
from kfp_mlops.components.register.gate import GateResult, Threshold, decide
from kfp_mlops.components.register.registry import CHALLENGER, CHAMPION, LOCK_PREFIX, PREVIOUS, Registry, Version, hash_tags
from kfp_mlops.components.train.serving import ServingTransform

# MLflow's registered_models.name is VARCHAR(256) on SQL stores.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")


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


def default_thresholds(metrics: dict[str, float]) -> list[Threshold]:
    """Better than chance and no worse than the champion."""
    if "roc_auc" in metrics:
        return [Threshold("roc_auc", min=0.5, delta=0.0)]
    return [Threshold("rmse", delta=0.0)]


def check_model_name(name: str) -> None:
    if not MODEL_NAME.match(name or ""):
        raise DataError(f"invalid model name {name[:300]!r}", fix="use at most 256 letters, digits, '.', '_' and '-', starting with a letter or digit")
    if name.startswith(LOCK_PREFIX):
        raise DataError(f"model names starting with {LOCK_PREFIX!r} are reserved for kfp-mlops promotion locks", fix="choose another model name")


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
) -> RegisterResult:
    """Score, then under the promotion lock: read the champion, gate, register, move aliases."""
    check_model_name(name)
    if not contract.mlflow_model_uri or not contract.mlflow_run_id:
        raise DataError("the model was not logged to MLflow (no run id or model URI in its contract)", where=str(model_dir), fix="train with an MLflow tracking URI")
    started = time.perf_counter()
    table = read_test(test_path)
    new = ServingTransform.load(model_dir, expected_hashes=contract.files)
    try:
        new_metrics = score(new, table, str(test_path))
    except DataError as exc:
        raise DataError(f"the new model cannot score its test split: {exc.problem}", where=str(test_path), fix="pass the test split from the same featurize step as the training data") from exc
    gate_thresholds = thresholds if thresholds else default_thresholds(new_metrics)
    decide(new_metrics, None, gate_thresholds)  # thresholds naming metrics this model lacks fail before the registry is touched
    with registry.lock(name):
        champion = registry.alias(name, CHAMPION)
        if champion is not None and champion.run_id == contract.mlflow_run_id:  # a retry after this run's own promotion
            champion = registry.alias(name, PREVIOUS)
        champion_metrics, reason = None, ""
        if champion is not None:
            try:
                champion_metrics = _score_registered(registry, name, champion.version, table, str(test_path))
            except (Incomparable, DataError) as exc:
                reason = exc.problem if isinstance(exc, DataError) else str(exc)
        evaluated = time.perf_counter()
        gate = decide(new_metrics, champion_metrics if champion_metrics is not None else ({} if champion else None), gate_thresholds, comparable=not reason)
        version_tags = {**tags, **hash_tags(dict(contract.files)), "blessed": str(gate.blessed).lower(), **{f"test_{k}": f"{v:.6g}" for k, v in new_metrics.items()}}
        version = registry.register(name, contract.mlflow_model_uri, contract.mlflow_run_id, version_tags)
        registry.set_alias(name, CHALLENGER, version.version)
        result = RegisterResult(version, gate, new_metrics, champion_metrics, champion.version if champion else None, reason)
        if gate.blessed and promote:
            result.previous = registry.promote_locked(name, version.version)
            result.promoted = True
    result.seconds = {"evaluate": evaluated - started, "register": time.perf_counter() - evaluated}
    return result


def _score_registered(registry: Registry, name: str, version: str, table: pa.Table, where: str) -> dict[str, float]:
    """A registered version's metrics: its files downloaded, checked against the hashes the registry recorded."""
    expected = registry.recorded_hashes(name, version)
    with tempfile.TemporaryDirectory(prefix="champion-") as scratch:
        local = registry.download(name, version, Path(scratch))
        folders = [p.parent for p in local.rglob(CONTRACT_FILE)]
        if len(folders) != 1:
            raise Incomparable(f"version {version} holds no kfp-mlops model folder")
        transform = ServingTransform.load(folders[0], expected_hashes=expected)
        return score_champion(transform, table, where)


def _rows(result: RegisterResult) -> list[list[str]]:
    rows = []
    for metric, value in result.new_metrics.items():
        champ = (result.champion_metrics or {}).get(metric)
        rules = [c for c in result.gate.checks if c.metric == metric]
        rule_text = "; ".join(f"{c.kind} {c.bound:g}: {'pass' if c.passed else 'FAIL'}{(' (' + c.note + ')') if c.note else ''}" for c in rules)
        rows.append([metric, f"{value:.4f}", "" if champ is None else f"{champ:.4f}", rule_text])
    return rows


def comparison_text(result: RegisterResult) -> str:
    """One plain line for the step's log."""
    verdict = "BLESSED" if result.gate.blessed else "NOT blessed"
    against = result.gate.against + (f" (version {result.champion_version})" if result.champion_version else "") + (f": {result.incomparable_reason}" if result.incomparable_reason else "")
    checks = "; ".join(f"{c.metric} {c.kind} {c.bound:g}: {'pass' if c.passed else 'FAIL'}" for c in result.gate.checks)
    promoted = f"; champion -> {result.version.version}" if result.promoted else ""
    return f"{verdict}: {result.version.name} version {result.version.version}. Compared against: {against}. Checks: {checks}. Aliases: challenger -> {result.version.version}{promoted}"


def comparison_markdown(result: RegisterResult) -> str:
    verdict = "BLESSED" if result.gate.blessed else "NOT blessed"
    against = md_text(result.gate.against) + (f" (version {md_text(result.champion_version)})" if result.champion_version else "") + (f": {md_text(result.incomparable_reason)}" if result.incomparable_reason else "")
    aliases = f"challenger -> {md_text(result.version.version)}"
    if result.promoted:
        aliases += f"; champion -> {md_text(result.version.version)}" + (f"; previous -> {md_text(result.previous)}" if result.previous else "")
    lines = [
        f"# {verdict}: {md_text(result.version.name)} version {md_text(result.version.version)}",
        "",
        f"- Compared against: {against}",
        f"- Aliases: {aliases}",
        "",
        md_table(["metric", "new", "champion", "thresholds"], _rows(result)),
    ]
    return "\n".join(lines) + "\n"


def comparison_html(result: RegisterResult) -> str:
    e = html.escape
    head = "".join(f"<th>{h}</th>" for h in ("metric", "new model", "champion", "thresholds"))
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in _rows(result))
    color = "#166534" if result.gate.blessed else "#991b1b"
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Model gate</title><style>body{font-family:system-ui,sans-serif;margin:24px}'
        "table{border-collapse:collapse}td,th{padding:6px 12px;border-bottom:1px solid #e5e7eb;text-align:left}</style></head><body>"
        f'<h1 style="color:{color}">{"Blessed" if result.gate.blessed else "Not blessed"}: {e(result.version.name)} v{e(result.version.version)}</h1>'
        f"<p>Compared against: {e(result.gate.against)}{e(' (version ' + result.champion_version + ')') if result.champion_version else ''} {e(result.incomparable_reason)}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
