"""What users see of a monitoring run: one HTML page, its Markdown twin and flat KFP metrics.

One page covers one or many models: a summary table across them first, then per model its
verdict and reasons, the per-column drift (drifted columns first) with share charts, the
prediction drift, the data-quality findings and the performance estimate. HTML and Markdown
draw from the same tables so they never disagree. Column names, categories, notes, sources
and model names come from users and data: html_table and html.escape escape them in HTML,
md_table and md_text in Markdown.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from kfp_mlops.components._shared.atomic import write_text_atomic
from kfp_mlops.components._shared.markdown import md_table, md_text
from kfp_mlops.components.abtest.report_charts import DASH, PAGE_CSS, Cell, Table, fmt_count, fmt_number, fmt_p, fmt_percent, html_table
from kfp_mlops.components.monitor.drift import P_VALUE_METHODS
from kfp_mlops.components.monitor.report_metrics import sorted_columns, summary_metrics
from kfp_mlops.components.monitor.report_svg import MONITOR_CSS, share_chart
from kfp_mlops.components.monitor.results import ERROR, WARNING, ColumnDrift, MonitorResult, PerformanceResult, QualityFinding

MAX_CHARTS = 30
MAX_MARKDOWN_COLUMNS = 50
# Per method: its score in words and how the score is compared with the threshold (drift.is_drift).
METHODS = {
    "ks": ("K-S p-value", "p \u2264"),
    "chisquare": ("chi-square p-value (two-sample)", "p <"),
    "chisquare_evidently": ("chi-square p-value (Evidently's form)", "p <"),
    "z": ("Z-test p-value", "p <"),
    "wasserstein": ("Wasserstein distance (normed)", "\u2265"),
    "jensenshannon": ("Jensen-Shannon distance", "\u2265"),
}
# Verdict of a model: (tone class, the big word, the headline).
VERDICTS = {
    "schema": ("schema", "Schema drift", "The inputs no longer match the model's contract: fix the data before anything else"),
    "retrain": ("retrain", "Retrain", "Retraining is advised"),
    "drift": ("drift", "Drift", "Drift detected; retraining is not advised yet"),
    "failed": ("schema", "Not monitored", "The monitor could not run for this model: see why below"),
    "ok": ("ok", "No drift", "No drift and no performance alert"),
}


def _cells(*values: object) -> list[Cell]:
    return [v if isinstance(v, Cell) else Cell(str(v)) for v in values]


def _yes_no(flag: bool) -> Cell:
    return Cell("yes", "bad") if flag else Cell("no", "good")


def verdict(result: MonitorResult) -> str:
    """schema, retrain, drift or ok: the one word that decides the model's colour and headline."""
    if result.failed:
        return "failed"
    if result.schema_drift:
        return "schema"
    if result.retrain:
        return "retrain"
    return "drift" if result.drift_detected or result.drifted_columns else "ok"


def method_words(method: str) -> str:
    """The method's score in words, e.g. "K-S p-value"."""
    return METHODS.get(method, (method, ""))[0]


def fmt_score(drift: ColumnDrift) -> str:
    """A p-value as p-values read (< 0.0001), a distance to 3 significant digits; a dash when NaN."""
    return fmt_p(drift.score) if drift.method in P_VALUE_METHODS else fmt_number(drift.score, 3)


def fmt_threshold(drift: ColumnDrift) -> str:
    """When the score means drift, e.g. "p ≤ 0.05" or "≥ 0.1"."""
    comparison = METHODS.get(drift.method, ("", "threshold"))[1]
    return f"{comparison} {fmt_number(drift.threshold)}"


# ----- the tables ----------------------------------------------------------------------


def _performance_lines(result: MonitorResult) -> tuple[Cell, Cell]:
    """(estimated vs reference, realized) cells of the summary: one line per metric."""
    if not result.performance:
        return Cell("not estimated", "muted"), Cell(DASH, "muted")
    estimated = [" ".join(t for t in (p.metric, fmt_number(p.estimated), _band(p), "vs", fmt_number(p.reference)) if t) for p in result.performance]
    realized = [f"{p.metric} {fmt_number(p.realized)} (n = {fmt_count(p.n_labelled)})" for p in result.performance if math.isfinite(p.realized)]
    # Each column is red only for the value that raised the alert: a realized drop leaves the estimate black.
    estimated_cls = "bad lines" if any(p.estimate_alert for p in result.performance) else "lines"
    realized_cls = "bad lines" if any(p.realized_alert for p in result.performance) else "lines"
    return Cell("\n".join(estimated), estimated_cls), Cell("\n".join(realized), realized_cls) if realized else Cell("no labels", "muted")


def _band(p: PerformanceResult, missing: str = "") -> str:
    return f"[{fmt_number(p.lower)}, {fmt_number(p.upper)}]" if math.isfinite(p.lower) or math.isfinite(p.upper) else missing


def _alert(p: PerformanceResult) -> Cell:
    if p.alert:
        return Cell("ALERT", "bad")
    return Cell("ok", "good") if math.isfinite(p.estimated) or math.isfinite(p.realized) else Cell("no estimate", "muted")


def summary_table(results: list[MonitorResult]) -> Table:
    """One row per model: the numbers that say whether to look closer."""
    header = ["model", "version", "source", "rows", "drifted columns", "dataset drift", "schema drift", "prediction drift", "estimated vs reference [band]", "realized", "retrain"]
    rows = []
    for r in results:
        share = Cell(f"{len(r.drifted_columns)} of {len(r.columns)} ({fmt_percent(r.drift_share, 1)})", "bad" if r.dataset_drift else "")
        if r.prediction is None:
            prediction = Cell("not computed", "muted")
        else:
            prediction = Cell(f"{'yes' if r.prediction.drifted else 'no'} ({method_words(r.prediction.method)} {fmt_score(r.prediction)})", "bad" if r.prediction.drifted else "good")
        estimated, realized = _performance_lines(r)
        rows.append(
            _cells(
                Cell(r.model_name, "name"),
                r.model_version,
                Cell(r.source, "name"),
                fmt_count(r.n_rows),
                share,
                _yes_no(r.dataset_drift),
                _yes_no(r.schema_drift),
                prediction,
                estimated,
                realized,
                _yes_no(r.retrain),
            )
        )
    return Table(header, rows)


def _drift_row(c: ColumnDrift) -> list[Cell]:
    if c.drifted:
        state = Cell("drift", "bad")
    else:
        state = Cell("no verdict", "muted") if not math.isfinite(c.score) else Cell("no drift")
    fixed = [Cell(text, "keep") for text in (c.kind, method_words(c.method), fmt_score(c), fmt_threshold(c))]
    return _cells(Cell(c.column, "name"), *fixed, Cell(state.text, f"{state.tone} keep".strip()), fmt_count(c.n_reference), fmt_count(c.n_current), c.note or DASH)


DRIFT_HEADER = ["column", "kind", "method", "score", "drift when", "verdict", "n reference", "n current", "note"]


def drift_table(result: MonitorResult) -> Table:
    """Every input column, drifted first."""
    notes = [
        (
            f"{len(result.drifted_columns)} of {len(result.columns)} columns drifted ({fmt_percent(result.drift_share, 1)}); "
            f"the dataset counts as drifted from {fmt_percent(result.drift_share_threshold, 0)}."
        )
    ]
    return Table(DRIFT_HEADER, [_drift_row(c) for c in sorted_columns(result.columns)], notes)


def quality_table(findings: list[QualityFinding]) -> Table:
    """Errors (schema drift) before warnings; reference and current are shares."""
    order = {ERROR: 0, WARNING: 1}
    rows = []
    for f in sorted(findings, key=lambda f: order.get(f.severity, 2)):
        tone = "bad" if f.severity == ERROR else "warn" if f.severity == WARNING else ""
        column = Cell(f.column) if f.column else Cell("(whole table)", "muted")
        rows.append(_cells(Cell(f.severity, tone), column, f.check.replace("_", " "), fmt_percent(f.reference, 1), fmt_percent(f.current, 1), f.message))
    return Table(["severity", "column", "check", "reference", "current", "finding"], rows)


def performance_table(performance: list[PerformanceResult]) -> Table:
    """Reference, estimate with its band, realized value and the alert per metric."""
    rows = [
        _cells(p.metric, fmt_number(p.reference), fmt_number(p.estimated), _band(p, DASH), fmt_number(p.realized), fmt_count(p.n_labelled), fmt_number(p.alert_below), _alert(p)) for p in performance
    ]
    notes = [
        (
            "The estimate needs no labels (confidence-based, with a \u00b13 standard-error band); it follows shifts in the inputs "
            "but cannot see the relation between inputs and label changing. Only the realized value, from labels, shows that."
        )
    ]
    return Table(["metric", "reference", "estimated", "band", "realized", "labelled rows", "alert below", "alert"], rows, notes)


# ----- HTML ----------------------------------------------------------------------------


def _figure(drift: ColumnDrift, label: str) -> str:
    esc = html.escape
    state = '<span class="bad">drift</span>' if drift.drifted else "no drift"
    how = f"{method_words(drift.method)} {fmt_score(drift)}, drift when {fmt_threshold(drift)}"
    svg = share_chart(drift.histogram, aria_label=f"Reference and current shares of {label}") if drift.histogram else ""
    return f'<figure class="{"drifted" if drift.drifted else ""}"><figcaption>{esc(label)}: {state} <span class="how">({esc(how)})</span></figcaption>{svg}</figure>'


def _charts(columns: list[ColumnDrift], limit: int) -> str:
    drawable = [c for c in sorted_columns(columns) if c.histogram and c.histogram.labels]
    shown = drawable[:limit]
    parts = ['<div class="charts">' + "".join(_figure(c, c.column) for c in shown) + "</div>"] if shown else []
    omitted = len(drawable) - len(shown)
    missing = len(columns) - len(drawable)
    notes = []
    if omitted:
        notes.append(f"Showing {len(shown)} of {len(drawable)} column charts (drifted first); {omitted} omitted. The table above lists every column.")
    if missing:
        notes.append(f"{missing} column{'s have' if missing != 1 else ' has'} nothing to chart (no values on one side).")
    if not columns:
        notes.append("No input column was compared.")
    # The notes first: a reader should know what is left out before scrolling through the charts.
    return "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes) + "".join(parts)


def _timing(seconds: dict[str, float]) -> str:
    phases = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items() if math.isfinite(value))
    return f"; took {sum(v for v in seconds.values() if math.isfinite(v)):.1f} s ({phases})" if phases else ""


def _model_html(result: MonitorResult, index: int, max_charts: int) -> str:
    esc = html.escape
    tone, word, headline = VERDICTS[verdict(result)]
    reasons = "".join(f"<li>{esc(r)}</li>" for r in result.reasons)
    parts = [
        f'<section class="model" id="model-{index}"><h2>{esc(result.model_name)} <span class="muted">version {esc(result.model_version)}</span></h2>',
        f'<div class="decision {tone}"><div class="action">{esc(word)}</div><div class="headline">{esc(headline)}</div>',
        f"<ul>{reasons}</ul></div>" if reasons else "</div>",
    ]
    if result.warnings:
        parts.append('<div class="warnings"><b>Warnings</b><ul>' + "".join(f"<li>{esc(w)}</li>" for w in result.warnings) + "</ul></div>")
    parts.append(f'<p class="note">Current data: {esc(result.source)}, {fmt_count(result.n_rows)} rows{esc(_timing(result.seconds))}.</p>')
    parts += [
        "<h3>Column drift</h3>",
        f'<div class="scroll">{html_table(drift_table(result))}</div>' if result.columns else "",
        "<h3>Reference and current distributions</h3>",
        _charts(result.columns, max_charts),
        "<h3>Prediction drift</h3>",
    ]
    if result.prediction is None:
        parts.append('<p class="note">Not computed: the current data has no usable prediction column.</p>')
    else:
        parts += [html_table(Table(DRIFT_HEADER, [_drift_row(result.prediction)])), '<div class="charts">' + _figure(result.prediction, result.prediction.column) + "</div>"]
    parts.append("<h3>Data quality</h3>")
    parts.append(html_table(quality_table(result.quality)) if result.quality else '<p class="note">No data-quality findings.</p>')
    parts.append("<h3>Performance</h3>")
    parts.append(html_table(performance_table(result.performance)) if result.performance else '<p class="note">Not estimated (no model scores in the data, or no performance reference).</p>')
    return "".join(parts) + "</section>"


def _overview(results: list[MonitorResult]) -> str:
    counts = {key: sum(verdict(r) == key for r in results) for key in VERDICTS}
    words = [f"{counts['retrain']} advised to retrain", f"{counts['schema']} with schema drift", f"{counts['drift']} drifted without a retrain advice", f"{counts['ok']} fine"]
    if counts["failed"]:
        words.append(f"{counts['failed']} not monitored")
    return f"{len(results)} model{'s' if len(results) != 1 else ''}: " + ", ".join(words) + "."


def summary_html(results: list[MonitorResult], *, title: str = "Model monitoring", max_charts: int = MAX_CHARTS) -> str:
    """The monitoring report of one or many models as one self-contained page (inline CSS and SVG, no script).

    Args:
        results: One record per monitored model, in the order to show them.
        title: The page's heading (escaped).
        max_charts: Column charts drawn per model at most, drifted columns first.

    Returns:
        The page as UTF-8 text; every string from users or data is HTML-escaped.
    """
    esc = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{PAGE_CSS}{MONITOR_CSS}</style></head><body><h1>{esc(title)}</h1>",
    ]
    if not results:
        parts.append('<p class="note">No model was monitored.</p>')
    else:
        parts += [f'<p class="note">{esc(_overview(results))}</p>', f"<h2>Summary</h2>{html_table(summary_table(results))}"]
        parts += [_model_html(r, i, max_charts) for i, r in enumerate(results, start=1)]
    return "".join(parts) + "</body></html>"


# ----- Markdown ------------------------------------------------------------------------


def _md(table: Table) -> str:
    return md_table(table.header, [[cell.text.replace("\n", "; ") for cell in row] for row in table.rows])


def _model_markdown(result: MonitorResult) -> list[str]:
    _, word, headline = VERDICTS[verdict(result)]
    lines = ["", f"## {md_text(result.model_name)} (version {md_text(result.model_version)})", "", f"**{md_text(word.upper())}**: {md_text(headline)}", ""]
    lines += [f"- {md_text(r)}" for r in result.reasons]
    lines += [f"- \u26a0 {md_text(w)}" for w in result.warnings]
    drifted = [c for c in sorted_columns(result.columns) if c.drifted]
    lines += ["", f"### Drifted columns ({len(drifted)} of {len(result.columns)})", ""]
    if drifted:
        lines.append(md_table(DRIFT_HEADER, [[cell.text for cell in _drift_row(c)] for c in drifted[:MAX_MARKDOWN_COLUMNS]]))
        if len(drifted) > MAX_MARKDOWN_COLUMNS:
            lines += ["", md_text(f"{len(drifted) - MAX_MARKDOWN_COLUMNS} more drifted columns are listed in the HTML report.")]
    else:
        lines.append("No column drifted\\.")
    p = result.prediction
    said = f"{'yes' if p.drifted else 'no'} ({method_words(p.method)} {fmt_score(p)}, drift when {fmt_threshold(p)})" if p else "not computed"
    lines += ["", md_text(f"Prediction drift: {said}")]
    errors = [f for f in result.quality if f.severity == ERROR]
    warnings = len(result.quality) - len(errors)
    lines += ["", f"### Data-quality errors ({len(errors)}; {warnings} warning{'' if warnings == 1 else 's'} in the HTML report)", ""]
    lines.append(_md(quality_table(errors)) if errors else "None\\.")
    lines += ["", "### Performance", ""]
    for p in result.performance:
        realized = f"realized {fmt_number(p.realized)} (n = {fmt_count(p.n_labelled)})" if math.isfinite(p.realized) else "no labels yet"
        lines.append(
            "- "
            + md_text(
                f"{p.metric}: estimated {' '.join(t for t in (fmt_number(p.estimated), _band(p)) if t)}, reference {fmt_number(p.reference)}, {realized}, "
                f"alert below {fmt_number(p.alert_below)}: {_alert(p).text}"
            )
        )
    if not result.performance:
        lines.append("Not estimated\\.")
    return lines


def summary_markdown(results: list[MonitorResult], *, title: str = "Model monitoring") -> str:
    """The summary table and, per model, its verdict, drifted columns, quality errors and performance, in Markdown.

    Args:
        results: One record per monitored model.
        title: The heading (escaped).

    Returns:
        Markdown for KFP's Markdown artifact (no charts); user text is escaped with md_text.
    """
    lines = [f"# {md_text(title)}", ""]
    if not results:
        return "\n".join(lines + ["No model was monitored\\."]) + "\n"
    lines += [md_text(_overview(results)), "", _md(summary_table(results))]
    for result in results:
        lines += _model_markdown(result)
    return "\n".join(lines) + "\n"


def write_summary(results: list[MonitorResult], *, html_path: Path, markdown_path: Path, title: str = "Model monitoring") -> dict[str, float]:
    """Write the HTML page and the Markdown atomically and return ``summary_metrics(results)``.

    Args:
        results: One record per monitored model.
        html_path: Where the page goes (KFP's HTML artifact path).
        markdown_path: Where the Markdown goes (KFP's Markdown artifact path).
        title: Heading of both.

    Returns:
        The flat metrics for KFP's Metrics artifact.
    """
    write_text_atomic(html_path, summary_html(results, title=title))
    write_text_atomic(markdown_path, summary_markdown(results, title=title))
    return summary_metrics(results)
