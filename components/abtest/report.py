"""The A/B analysis report: one self-contained HTML page, its Markdown twin, and flat metrics.

The decision comes first, then everything a reviewer needs to trust or challenge it: the
design, the arms, the sample-ratio check, every comparison of the family, the primary
intervals over time, the power and the warnings. Both renderers draw from the same tables
so the HTML page and the Markdown summary never disagree. Arm names, versions and
warnings come from users and logs: they are escaped in HTML (html.escape) and Markdown (md_text).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path

from kfp_mlops.components._shared.atomic import write_text_atomic
from kfp_mlops.components._shared.markdown import md_table, md_text
from kfp_mlops.components.abtest.analysis import PRIMARY, AnalysisResult, Comparison
from kfp_mlops.components.abtest.apply import Applied
from kfp_mlops.components.abtest.report_charts import (
    DASH,
    PAGE_CSS,
    Cell,
    Table,
    fmt_count,
    fmt_duration,
    fmt_ms,
    fmt_number,
    fmt_p,
    fmt_p_is,
    fmt_percent,
    fmt_signed,
    fmt_when,
    formatter,
    html_table,
    interval_chart,
)
from kfp_mlops.components.abtest.report_metrics import arm_facts, arm_metric, arm_names, metrics

HEADLINES = {
    "promote": "Promote {arm}",
    "rollback": "Roll back {arm}",
    "continue": "Continue: keep collecting data",
    "blocked": "Blocked: the traffic split cannot be trusted",
}
CORRECTIONS = {"holm": "Holm (bounds the chance of any false claim)", "bh": "Benjamini-Hochberg (bounds the share of false claims)", "none": "none"}


def _cells(*values: object) -> list[Cell]:
    return [v if isinstance(v, Cell) else Cell(str(v)) for v in values]


# ----- what each section shows ------------------------------------------------------


def _design(result: AnalysisResult) -> Table:
    s, data = result.settings, result.data
    shares = ", ".join(f"{name}{' (control)' if name == s.control else ''} {fmt_percent(share, 0)}" for name, share in result.srm.expected_shares.items())
    span = (data.last_time - data.first_time).total_seconds() if data.first_time and data.last_time else float("nan")
    window = f"{fmt_when(data.first_time)} .. {fmt_when(data.last_time)} ({fmt_duration(span) if span > 0 else 'one instant'}, {len(data.look_times)} looks)"
    unit = "request: each request assigned at random" if s.unit == "request" else "user: sticky routing key, per-request outcomes by the delta method"
    if s.method == "always-valid":
        method = f"always-valid confidence sequence (normal mixture), tightest at N* = {s.tuning:,.0f} units: safe to look at any time"
    else:
        method = "fixed-horizon: valid only at one look planned in advance, at the planned sample size"
    direction = "higher is better" if s.spec.higher_is_better else "lower is better"
    ceiling = f"{s.max_p95_latency_ms:g} ms" if s.max_p95_latency_ms else "none"
    rows = [
        ("arms and expected shares", shares),
        ("window", window),
        ("unit", unit),
        ("metric", f"{s.metric}: {s.spec.description} ({direction})"),
        ("outcomes missing", "counted as 0" if s.missing_outcome == "zero" else "left out"),
        ("method", method),
        ("alpha (whole experiment)", f"{s.alpha:g}"),
        ("correction", CORRECTIONS.get(s.correction, s.correction)),
        ("family size", f"{result.family_size} hypotheses (per challenger: {s.metric} better, {s.metric} worse, latency harm, 5xx harm)"),
        (
            "per-interval level",
            "each interval at its test's level: "
            + {"holm": "alpha / (family - rank + 1), Holm's step", "bh": "alpha x rank / family, Benjamini-Hochberg's step"}.get(s.correction, "alpha")
            + " (the comparisons table gives each)",
        ),
        ("minimum effect", f"{s.min_effect:g}" + (" (any proven improvement)" if not s.min_effect else f" in {s.metric} units")),
        ("guardrails", f"mean latency +{s.latency_margin:.0%} and +{s.latency_floor_ms:g} ms, 5xx rate +{s.error_margin:g}, p95 latency ceiling {ceiling}"),
        ("fewest units per arm", f"{int(s.min_units):,}"),
        ("SRM threshold", f"p < {s.srm_alpha:g}" + (f" / {result.srm.periods} steps = {s.srm_alpha / result.srm.periods:.2g} per step" if result.srm.periods > 1 else "")),
    ]
    if s.cuped_days:
        rows.insert(5, ("CUPED", f"each user's outcomes in the {s.cuped_days:g} days before the window as covariate"))
    return Table(["setting", "value"], [_cells(k, v) for k, v in rows])


def _arms(result: AnalysisResult) -> Table:
    s = result.settings
    header = ["arm", "role", "units", s.metric, "requests", "5xx rate", "mean latency", "p95 latency", "awaiting outcome", "model versions"]
    rows = []
    for name in arm_names(result):
        arm = result.data.arms.get(name)
        facts = arm_facts(arm)
        role = "control" if name == s.control else ("challenger" if result.srm.expected_shares.get(name, 0) > 0 else "weight 0")
        versions = ", ".join(arm.versions) if arm and arm.versions else DASH
        rows.append(
            _cells(
                name,
                role,
                fmt_count(facts["units"]),
                fmt_number(arm_metric(arm)),
                fmt_count(facts["requests"]),
                fmt_percent(facts["error_rate"]),
                fmt_ms(facts["mean_latency_ms"]),
                fmt_ms(facts["p95_latency_ms"]),
                fmt_count(facts["awaiting"]),
                versions,
            )
        )
    return Table(header, rows)


def _srm(result: AnalysisResult) -> Table:
    srm = result.srm
    total = sum(srm.counts.values())
    rows = []
    for name in dict.fromkeys([*srm.expected_shares, *srm.counts]):
        share = srm.expected_shares.get(name, 0.0)
        count = srm.counts.get(name, 0)
        rows.append(_cells(name, fmt_percent(share, 1), fmt_count(share * total), fmt_count(count), fmt_percent(count / total if total else float("nan"), 1)))
    threshold = result.settings.srm_alpha / max(srm.periods, 1)
    scope = f" (the smallest of {srm.periods} steps, each tested against its own weights)" if srm.periods > 1 else ""
    notes = [f"chi-square {fmt_p_is(srm.chi_square_p)}, sequential {fmt_p_is(srm.sequential_p)}{scope}; a mismatch is flagged below p = {threshold:.2g}"]
    return Table(["arm", "expected share", "expected units", "observed units", "observed share"], rows, notes)


def _formats_for(comparison: Comparison) -> tuple[Callable[[float], str], Callable[[float], str], Callable[[float], str]]:
    """(value, effect, interval bound) formatters in the units of the comparison's question."""
    if comparison.metric == "latency":
        return fmt_ms, formatter("{:+.2f} ms"), formatter("{:.2f} ms")
    if comparison.metric == "error_rate":
        return fmt_percent, formatter("{:+.2f} pp", scale=100.0), formatter("{:.2f} pp", scale=100.0)
    return fmt_number, fmt_signed, fmt_number


def _verdict(comparison: Comparison) -> Cell:
    if not comparison.estimable:
        return Cell("not enough data", "muted")
    if comparison.significant:
        return Cell("yes: better", "good") if comparison.role == PRIMARY else Cell("yes: harm", "bad")
    return Cell("no", "muted")


def _comparisons(result: AnalysisResult) -> Table:
    header = ["challenger", "metric", "question", "control", "challenger value", "effect", "interval", "level", "p", "adjusted p", "significant"]
    rows = []
    for c in result.comparisons:
        value, effect, bound = _formats_for(c)
        interval = f"[{bound(c.lower)}, {bound(c.upper)}]" if math.isfinite(c.lower) or math.isfinite(c.upper) else DASH
        rows.append(
            _cells(
                c.challenger,
                f"{c.metric} ({c.role})",
                c.question,
                value(c.control_value),
                value(c.challenger_value),
                effect(c.effect),
                interval,
                f"{c.level:.3g}",
                fmt_p(c.p_value),
                fmt_p(c.adjusted_p),
                _verdict(c),
            )
        )
    notes = [
        f"Effects are challenger minus control. Each interval is drawn at the level its test used, so it excludes the question's threshold exactly when the test rejects there; p-values count only on the side the question names, adjusted by {CORRECTIONS.get(result.settings.correction, result.settings.correction)}."
    ]
    return Table(header, rows, notes)


def _power(result: AnalysisResult) -> Table | None:
    check = result.power
    if check is None:
        return None
    method = "always-valid" if result.settings.method == "always-valid" else "fixed horizon"
    rows = [
        (
            "minimum detectable effect",
            f"{fmt_number(check.mde)} ({result.settings.metric} units, power {result.settings.power:.0%}, at the primary test's level {check.level:.3g})"
            + ("" if result.settings.min_effect else "; min_effect is 0, so 10% of the control's value is assumed"),
        ),
        ("units needed, fixed horizon", fmt_count(check.units_needed)),
        ("units needed, always-valid", fmt_count(check.units_needed_sequential)),
        ("units so far", fmt_count(check.units_so_far)),
        (f"time still needed ({method})", "none: decided" if result.decision.action != "continue" else fmt_duration(check.remaining_s)),
    ]
    return Table(["quantity", "value"], [_cells(k, v) for k, v in rows])


def _headline(result: AnalysisResult) -> str:
    decision = result.decision
    return HEADLINES.get(decision.action, decision.action).format(arm=decision.challenger)


def _applied_lines(applied: Applied | None) -> list[str]:
    if applied is None:
        return ["Nothing was applied by this run: the decision is reported only."]
    lines = [f"action taken: {applied.action}"]
    if applied.weights:
        lines.append("weights after: " + ", ".join(f"{name} {weight}%" for name, weight in applied.weights.items()))
    if applied.promoted_version:
        lines.append(f"promoted version: {applied.promoted_version}" + (f" (replaced {applied.replaced_version})" if applied.replaced_version else ""))
    return lines + list(applied.notes)


def _primary_charts(result: AnalysisResult) -> list[tuple[str, str, str]]:
    """(caption, svg, note) per challenger, for the primary comparison."""
    s = result.settings
    threshold = s.min_effect if s.spec.higher_is_better else -s.min_effect
    kind = "always-valid" if s.method == "always-valid" else "fixed-horizon"
    out = []
    for c in (c for c in result.comparisons if c.role == PRIMARY):
        caption = f"{c.challenger} vs {s.control}: {s.metric} difference over time"
        chart = interval_chart(c.over_time, threshold=threshold, band_label=f"{kind} {100 * (1 - c.level):.3g}% interval", aria_label=caption)
        note = chart.note
        if s.method == "fixed-horizon" and chart.svg:
            note = (note + " " if note else "") + "Fixed-horizon intervals are valid only at the planned look; earlier looks are shown for orientation."
        out.append((caption, chart.svg, note))
    return out


# ----- HTML --------------------------------------------------------------------------


def render_html(result: AnalysisResult, applied: Applied | None) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG, no script, no links).

    Args:
        result: The analysis to report.
        applied: What the apply step did with the decision, or None when it was not applied.

    Returns:
        The page, UTF-8 text; every user-controlled string is HTML-escaped.
    """
    decision = result.decision
    esc = html.escape
    reasons = "".join(f"<li>{esc(r)}</li>" for r in decision.reasons)
    applied_items = "".join(f"<li>{esc(line)}</li>" for line in _applied_lines(applied))
    tone = decision.action if decision.action in HEADLINES else "continue"
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>A/B analysis: {esc(decision.action)}</title><style>{PAGE_CSS}</style></head><body>",
        f"<h1>A/B analysis of {esc(result.settings.metric)}</h1>",
        f'<section class="decision {tone}"><div class="action">{esc(decision.action)}</div><div class="headline">{esc(_headline(result))}</div>',
        f'<ul>{reasons}</ul><div class="applied"><b>Applied</b><ul>{applied_items}</ul></div></section>',
    ]
    if result.srm.mismatch:
        parts.append(f'<div class="banner">Sample-ratio mismatch: {esc(_SRM_BANNER)}</div>')
    if result.warnings:
        parts.append('<h2>Warnings</h2><div class="warnings"><ul>' + "".join(f"<li>{esc(w)}</li>" for w in result.warnings) + "</ul></div>")
    else:
        parts.append('<p class="note">No warnings.</p>')
    parts += ["<h2>Design and settings</h2>", html_table(_design(result)), "<h2>Arms</h2>", html_table(_arms(result))]
    parts += ["<h2>Sample-ratio check</h2>", html_table(_srm(result))]
    parts += ["<h2>Comparisons</h2>", html_table(_comparisons(result)), "<h2>Primary metric over time</h2>"]
    charts = _primary_charts(result)
    if not charts:
        parts.append('<p class="note">No challenger receives traffic, so there is nothing to chart.</p>')
    for caption, svg, note in charts:
        parts.append(f"<h3>{esc(caption)}</h3>{svg}")
        if note:
            parts.append(f'<p class="note">{esc(note)}</p>')
    parts.append("<h2>Power</h2>")
    power = _power(result)
    parts.append(html_table(power) if power else f'<p class="note">{esc(_NO_POWER)}</p>')
    parts.append("</body></html>")
    return "".join(parts)


_SRM_BANNER = "the arms did not get the traffic shares they were designed to get (an arm failing, a routing bug). No comparison below can be trusted."
_NO_POWER = "Not computed: the control arm has no spread in the metric yet (fewer than two units with an outcome, or all equal)."


# ----- Markdown ----------------------------------------------------------------------


def _md_table(table: Table) -> str:
    text = md_table(table.header, [[cell.text for cell in row] for row in table.rows])
    return text + "".join(f"\n\n{md_text(n)}" for n in table.notes)


def render_markdown(result: AnalysisResult, applied: Applied | None) -> str:
    """The report's decision and tables as Markdown, for KFP's Markdown artifact (no chart).

    Args:
        result: The analysis to report.
        applied: What the apply step did with the decision, or None when it was not applied.

    Returns:
        Markdown text; every user-controlled string is escaped with md_text.
    """
    decision = result.decision
    lines = [f"# A/B analysis: {md_text(decision.action.upper())}", "", f"**{md_text(_headline(result))}**", ""]
    lines += [f"- {md_text(r)}" for r in decision.reasons]
    lines += ["", "**Applied**", ""] + [f"- {md_text(line)}" for line in _applied_lines(applied)]
    if result.srm.mismatch:
        lines += ["", f"> **{md_text('Sample-ratio mismatch:')}** {md_text(_SRM_BANNER)}"]
    if result.warnings:
        lines += ["", "## Warnings", ""] + [f"- \u26a0 {md_text(w)}" for w in result.warnings]
    else:
        lines += ["", "No warnings\\."]
    sections = [("Design and settings", _design(result)), ("Arms", _arms(result)), ("Sample-ratio check", _srm(result)), ("Comparisons", _comparisons(result))]
    for title, table in sections:
        lines += ["", f"## {md_text(title)}", "", _md_table(table)]
    lines += ["", "## Primary metric over time", ""]
    for caption, svg, note in _primary_charts(result):
        lines.append(f"- {md_text(caption)}: " + md_text("charted in the HTML report" if svg else note))
    power = _power(result)
    lines += ["", "## Power", "", _md_table(power) if power else md_text(_NO_POWER)]
    return "\n".join(lines) + "\n"


def write_report(result: AnalysisResult, applied: Applied | None, *, html_path: Path, markdown_path: Path) -> dict[str, float]:
    """Write the HTML page and the Markdown summary atomically and return ``metrics(result)``.

    Args:
        result: The analysis.
        applied: What the apply step did, or None.
        html_path: Where the HTML page goes (KFP's HTML artifact path).
        markdown_path: Where the Markdown goes (KFP's Markdown artifact path).

    Returns:
        The flat metrics for KFP's Metrics artifact.
    """
    write_text_atomic(html_path, render_html(result, applied))
    write_text_atomic(markdown_path, render_markdown(result, applied))
    return metrics(result)
