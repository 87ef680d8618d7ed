"""Register core: evaluate the new model and the champion on the same test set, gate, register, alias.

Order matters for "no model registered from bad data": both models are evaluated and
the gate decided before anything is written to the registry. A retried step finds the
version its run registered and does not create another.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.markdown import md_table
from kfp_mlops.components.register.evaluate import Incomparable, load, score
from kfp_mlops.components.register.gate import GateResult, Threshold, decide
from kfp_mlops.components.register.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry, Version

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


def register_model(
    model_uri: str,
    run_id: str,
    test_path: str | Path,
    label: str,
    *,
    registry: Registry,
    name: str,
    thresholds: list[Threshold] | None,
    promote: bool,
    tags: dict[str, str],
) -> RegisterResult:
    if not MODEL_NAME.match(name or ""):
        raise DataError(f"invalid model name {name!r}", fix="use letters, digits, '.', '_' and '-' (starting with a letter or digit)")
    started = time.perf_counter()
    frame = pq.read_table(str(test_path)).to_pandas()
    if label not in frame.columns:
        raise DataError(f"label column {label!r} is not in the test split", where=str(test_path), fix="pass the label the model was trained on")
    try:
        new_metrics = score(load(model_uri, "new"), frame, label)
    except Incomparable as exc:
        raise DataError(f"the new model cannot score its own test split: {exc}", fix="check that the test split comes from the same featurize step") from exc
    gate_thresholds = thresholds if thresholds else default_thresholds(new_metrics)
    champion = registry.alias(name, CHAMPION)
    if champion is not None and champion.run_id == run_id:  # a retry after this run's own promotion
        champion = registry.alias(name, PREVIOUS)
    champion_metrics, reason = None, ""
    if champion is not None:
        try:
            champion_metrics = score(load(f"models:/{name}/{champion.version}", "champion"), frame, label)
        except (Incomparable, DataError) as exc:
            reason = str(exc)
    evaluated = time.perf_counter()
    gate = decide(new_metrics, champion_metrics if champion_metrics is not None else ({} if champion else None), gate_thresholds, comparable=not reason)
    version = registry.register(name, model_uri, run_id, {**tags, "blessed": str(gate.blessed).lower(), **{f"test_{k}": f"{v:.6g}" for k, v in new_metrics.items()}})
    registry.set_alias(name, CHALLENGER, version.version)
    result = RegisterResult(version, gate, new_metrics, champion_metrics, champion.version if champion else None, reason)
    if gate.blessed and promote:
        result.previous = registry.promote(name, version.version)
        result.promoted = True
    result.seconds = {"evaluate": evaluated - started, "register": time.perf_counter() - evaluated}
    return result


def _rows(result: RegisterResult) -> list[list[str]]:
    rows = []
    for metric, value in result.new_metrics.items():
        champ = (result.champion_metrics or {}).get(metric)
        rules = [c for c in result.gate.checks if c.metric == metric]
        rule_text = "; ".join(f"{c.kind} {c.bound:g}: {'pass' if c.passed else 'FAIL'}{(' (' + c.note + ')') if c.note else ''}" for c in rules)
        rows.append([metric, f"{value:.4f}", "" if champ is None else f"{champ:.4f}", rule_text])
    return rows


def comparison_markdown(result: RegisterResult) -> str:
    verdict = "BLESSED" if result.gate.blessed else "NOT blessed"
    lines = [
        f"# {verdict}: {result.version.name} version {result.version.version}",
        "",
        f"- Compared against: {result.gate.against}" + (f" (version {result.champion_version})" if result.champion_version else "") + (f": {result.incomparable_reason}" if result.incomparable_reason else ""),
        f"- Aliases: challenger -> {result.version.version}" + (f"; champion -> {result.version.version}" + (f"; previous -> {result.previous}" if result.previous else "") if result.promoted else ""),
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
