"""How the A/B report looks: its chart, the way its numbers read, its tables and style sheet.

The chart is a challenger's primary-metric interval over time, as inline SVG. No JavaScript and no external resources: the page must render inside the Kubeflow UI's
sandboxed iframe and on a cluster without internet. Early looks of a confidence sequence
are much wider than late ones; the vertical range is therefore taken from what decides
the experiment (the effects, zero, the minimum effect and the last interval) and wider
or unbounded intervals are cut at the chart's edge, marked and said so in a note.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

WIDTH, HEIGHT = 760, 330
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 16, 92  # room for y tick labels, x ticks, the axis title and the legend
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BAND, LINE, ZERO, THRESHOLD, AXIS, MUTED = "#c7d2fe", "#4338ca", "#6b7280", "#059669", "#9ca3af", "#4b5563"
# How far beyond the deciding range (in multiples of its span) wide early intervals are still drawn.
OVERSHOOT = 1.5
_TIME_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
_DAY = timedelta(days=1)
DASH = "\u2014"


@dataclass(frozen=True)
class ChartResult:
    """The chart (empty when there is too little to draw) and a note for the reader (may be empty)."""

    svg: str
    note: str


def interval_chart(
    points: list[tuple[datetime, float, float, float]],
    *,
    threshold: float,
    band_label: str,
    aria_label: str,
) -> ChartResult:
    """The effect and its interval at each look, with the zero line and the minimum-effect line.

    Args:
        points: (look time, effect, lower, upper) per look; non-finite effects are skipped,
            non-finite bounds count as unbounded.
        threshold: The minimum effect worth promoting, signed in the better direction; 0 draws no line.
        band_label: The legend's words for the shaded band (its kind and level).
        aria_label: What the chart shows, for screen readers (escaped here).

    Returns:
        The SVG and a note; with fewer than two usable looks the SVG is empty and the note says why.
    """
    usable = [p for p in points if math.isfinite(p[1])]
    if not usable:
        return ChartResult("", "No look has an estimable interval yet (too few units or no variation), so there is nothing to chart.")
    if len(usable) == 1:
        time, effect, lower, upper = usable[0]
        return ChartResult("", f"Only one look so far ({fmt_when(time)}): effect {effect:+.4g}, interval [{_bound(lower)}, {_bound(upper)}]. The chart needs two looks.")
    times = [p[0] for p in usable]
    effects = [p[1] for p in usable]
    lows = [p[2] if math.isfinite(p[2]) else -math.inf for p in usable]
    highs = [p[3] if math.isfinite(p[3]) else math.inf for p in usable]
    y_low, y_high = _visible_range(effects, lows, highs, threshold)
    ticks = nice_ticks(y_low, y_high)
    y_low, y_high = min(y_low, ticks[0]), max(y_high, ticks[-1])
    xs = _x_positions(times)
    y_of = lambda v: TOP + PLOT_H * (y_high - v) / (y_high - y_low)  # noqa: E731
    clip = lambda v: min(max(v, y_low), y_high)  # noqa: E731

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(aria_label)}" class="chart">']
    decimals = _decimals(ticks[1] - ticks[0] if len(ticks) > 1 else abs(ticks[0]) or 1.0)
    for value in ticks:
        y = y_of(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="#eef0f3"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{MUTED}">{_tick_label(value, decimals)}</text>')
    upper_edge = " ".join(f"{x:.1f},{y_of(clip(h)):.1f}" for x, h in zip(xs, highs))
    lower_edge = " ".join(f"{x:.1f},{y_of(clip(lo)):.1f}" for x, lo in reversed(list(zip(xs, lows))))
    parts.append(f'<polygon points="{upper_edge} {lower_edge}" fill="{BAND}" fill-opacity="0.75" stroke="none"/>')
    if y_low <= 0.0 <= y_high:
        parts.append(f'<line x1="{LEFT}" y1="{y_of(0.0):.1f}" x2="{LEFT + PLOT_W}" y2="{y_of(0.0):.1f}" stroke="{ZERO}" stroke-width="1.2"/>')
    if threshold and y_low <= threshold <= y_high:
        y = y_of(threshold)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="{THRESHOLD}" stroke-width="1.5" stroke-dasharray="6 4"/>')
    parts.append(f'<polyline fill="none" stroke="{LINE}" stroke-width="2" points="{" ".join(f"{x:.1f},{y_of(e):.1f}" for x, e in zip(xs, effects))}"/>')
    parts += [f'<circle cx="{x:.1f}" cy="{y_of(e):.1f}" r="2.6" fill="{LINE}"/>' for x, e in zip(xs, effects)]
    clipped = 0
    for x, lo, hi in zip(xs, lows, highs):
        if hi > y_high:
            parts.append(_edge_marker(x, TOP, up=True))
        if lo < y_low:
            parts.append(_edge_marker(x, TOP + PLOT_H, up=False))
        clipped += hi > y_high or lo < y_low
    parts.append(f'<line x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{LEFT + PLOT_W}" y2="{TOP + PLOT_H}" stroke="{AXIS}"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}" stroke="{AXIS}"/>')
    parts += _x_axis(times, xs)
    parts.append(f'<text x="16" y="{TOP + PLOT_H / 2:.1f}" transform="rotate(-90 16 {TOP + PLOT_H / 2:.1f})" text-anchor="middle" font-size="11" fill="{MUTED}">effect (challenger - control)</text>')
    parts += _legend(band_label, threshold, shown=bool(threshold) and y_low <= threshold <= y_high)
    parts.append("</svg>")
    note = ""
    if clipped:
        note = f"At {clipped} of {len(usable)} looks the interval reaches beyond the chart (early looks are wide, or a bound is unbounded); the band is cut at the edge there, marked with a triangle."
    return ChartResult("".join(parts), note)


def _visible_range(effects: list[float], lows: list[float], highs: list[float], threshold: float) -> tuple[float, float]:
    """The deciding range, widened to take in the other intervals up to OVERSHOOT spans more."""
    deciding = [*effects, 0.0, threshold]
    deciding += [v for v in (lows[-1], highs[-1]) if math.isfinite(v)]
    core_low, core_high = min(deciding), max(deciding)
    span = core_high - core_low or max(abs(core_high), 1e-9)
    finite_lows = [v for v in lows if math.isfinite(v)]
    finite_highs = [v for v in highs if math.isfinite(v)]
    low = max(core_low - OVERSHOOT * span, min([core_low, *finite_lows]))
    high = min(core_high + OVERSHOOT * span, max([core_high, *finite_highs]))
    if not high - low > 1e-12 * max(abs(low), abs(high), 1.0):
        # Every value equal (no spread yet): show a unit-sized window around it.
        half = 0.5 * max(abs(low), 1.0)
        return low - half, high + half
    pad = 0.04 * (high - low)
    return low - pad, high + pad


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    span = high - low
    if not (math.isfinite(span) and span > 0):
        return [low]
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 5.0, 10.0) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    count = math.ceil((high - first) / step - 1e-9)
    return [first + k * step for k in range(count + 1)]


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(abs(step)))) if step else 0


def _tick_label(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0.0 else text.replace("-", "\u2212")


def _bound(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "unbounded"


def _x_positions(times: list[datetime]) -> list[float]:
    start, span = times[0], (times[-1] - times[0]).total_seconds()
    if span <= 0:
        # All looks at one instant: space them evenly rather than stack them.
        return [LEFT + PLOT_W * k / max(len(times) - 1, 1) for k in range(len(times))]
    return [LEFT + PLOT_W * (t - start).total_seconds() / span for t in times]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _time_label(moment: datetime, span_s: float, step_s: float) -> str:
    """HH:MM within a day; beyond, the date at midnight (or for day-sized steps) and HH:MM between."""
    if span_s > _DAY.total_seconds() and (step_s >= _DAY.total_seconds() or (moment.hour, moment.minute) == (0, 0)):
        return moment.strftime("%b %d")
    return moment.strftime("%H:%M")


def _x_axis(times: list[datetime], xs: list[float]) -> list[str]:
    start, end = _utc(times[0]), _utc(times[-1])
    span = (end - start).total_seconds()
    ticks: list[tuple[float, str]] = []
    if span >= 120:
        step = next((s for s in _TIME_STEPS_S if s >= span / 6), _TIME_STEPS_S[-1])
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        moment = epoch + timedelta(seconds=math.ceil((start - epoch).total_seconds() / step) * step)
        while moment <= end:
            ticks.append((LEFT + PLOT_W * (moment - start).total_seconds() / span, _time_label(moment, span, step)))
            moment += timedelta(seconds=step)
    if len(ticks) < 2:
        # A window of seconds, or looks at one instant: label the first and last look.
        ticks = [(xs[0], start.strftime("%H:%M:%S")), (xs[-1], end.strftime("%H:%M:%S"))]
    parts = []
    for x, label in ticks:
        parts.append(f'<line x1="{x:.1f}" y1="{TOP + PLOT_H}" x2="{x:.1f}" y2="{TOP + PLOT_H + 5}" stroke="{AXIS}"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + PLOT_H + 18}" text-anchor="middle" font-size="11" fill="{MUTED}">{html.escape(label)}</text>')
    days = start.strftime("%Y-%m-%d") if start.date() == end.date() else f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    parts.append(f'<text x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H + 38}" text-anchor="middle" font-size="11" fill="{MUTED}">look time (UTC, {days})</text>')
    return parts


def _edge_marker(x: float, y: float, *, up: bool) -> str:
    tip, base = (y - 1, y + 7) if up else (y + 1, y - 7)
    return f'<polygon points="{x:.1f},{tip:.1f} {x - 4:.1f},{base:.1f} {x + 4:.1f},{base:.1f}" fill="{LINE}" fill-opacity="0.55"/>'


def _legend(band_label: str, threshold: float, *, shown: bool) -> list[str]:
    y = HEIGHT - 18
    items = [
        (f'<rect x="{{x}}" y="{y - 9}" width="18" height="10" fill="{BAND}"/>', band_label),
        (f'<line x1="{{x}}" y1="{y - 4}" x2="{{x18}}" y2="{y - 4}" stroke="{LINE}" stroke-width="2"/>', "effect"),
        (f'<line x1="{{x}}" y1="{y - 4}" x2="{{x18}}" y2="{y - 4}" stroke="{ZERO}" stroke-width="1.2"/>', "no difference"),
    ]
    if shown:
        items.append((f'<line x1="{{x}}" y1="{y - 4}" x2="{{x18}}" y2="{y - 4}" stroke="{THRESHOLD}" stroke-width="1.5" stroke-dasharray="6 4"/>', f"minimum effect ({threshold:+g})"))
    parts, x = [], float(LEFT)
    for swatch, label in items:
        parts.append(swatch.format(x=f"{x:.1f}", x18=f"{x + 18:.1f}"))
        parts.append(f'<text x="{x + 24:.1f}" y="{y}" font-size="11" fill="#1f2937">{html.escape(label)}</text>')
        x += 24 + 6.2 * len(label) + 18  # ~6.2 px per character at 11 px
    return parts


# ----- how the report's numbers read (tables and chart alike) --------------------------


def fmt_number(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits; a dash when not finite."""
    return f"{value:.{digits}g}" if math.isfinite(value) else DASH


def fmt_signed(value: float) -> str:
    """An effect with its sign, to 4 significant digits; a dash when not finite."""
    return f"{value:+.4g}" if math.isfinite(value) else DASH


def fmt_count(value: float) -> str:
    """A count with thousands separators; a dash when not finite."""
    return f"{value:,.0f}" if math.isfinite(value) else DASH


def fmt_percent(value: float, digits: int = 2) -> str:
    """A share (0.0123) as a percent (1.23%); a dash when not finite."""
    return f"{100 * value:.{digits}f}%" if math.isfinite(value) else DASH


def fmt_ms(value: float) -> str:
    """Milliseconds to one decimal; a dash when not finite."""
    return f"{value:.1f} ms" if math.isfinite(value) else DASH


def formatter(template: str, scale: float = 1.0) -> Callable[[float], str]:
    """A formatter filling ``template`` with ``scale * value``; a dash when not finite."""
    return lambda value: template.format(scale * value) if math.isfinite(value) else DASH


def fmt_p(value: float) -> str:
    """A p-value to 3 significant digits, tiny ones as < 0.0001; a dash when not finite."""
    if not math.isfinite(value):
        return DASH
    return "< 0.0001" if value < 1e-4 else f"{value:.3g}"


def fmt_p_is(value: float) -> str:
    """ "p = 0.23" or "p < 0.0001"."""
    shown = fmt_p(value)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


def fmt_duration(seconds: float) -> str:
    """Seconds in the unit a person plans with; inf means no traffic to extrapolate from."""
    if math.isnan(seconds):
        return "unknown"
    if math.isinf(seconds):
        return "no traffic"
    if seconds <= 0:
        return "none: enough units already"
    for limit, size, unit in ((90, 1, "seconds"), (90 * 60, 60, "minutes"), (48 * 3600, 3600, "hours")):
        if seconds < limit:
            if size == 1:
                return f"{seconds:.0f} {unit if round(seconds) != 1 else 'second'}"
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds / 86400:.1f} days"


def fmt_when(value: datetime | None) -> str:
    """A timestamp to the second, in UTC; a dash when unknown."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else DASH


# ----- the page's tables and style ---------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A table cell; ``tone`` (good, bad, muted) only colours it in HTML."""

    text: str
    tone: str = ""


@dataclass(frozen=True)
class Table:
    """A titled block of the report: header, rows, and sentences shown below it."""

    header: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


PAGE_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1f2937;line-height:1.45}"
    "h1{font-size:20px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}h3{font-size:14px;margin:16px 0 4px;overflow-wrap:anywhere}"
    ".decision{border-radius:10px;padding:18px 22px;border:2px solid}.decision .action{font-size:34px;font-weight:800;letter-spacing:.04em;text-transform:uppercase}"
    ".decision .headline{font-size:20px;font-weight:600;overflow-wrap:anywhere}.decision ul{margin:8px 0 0}"
    ".promote{background:#ecfdf5;border-color:#059669;color:#064e3b}.rollback{background:#fef2f2;border-color:#dc2626;color:#7f1d1d}"
    ".continue{background:#eff6ff;border-color:#2563eb;color:#1e3a8a}.blocked{background:#fff7ed;border-color:#ea580c;color:#7c2d12}"
    ".applied{margin-top:12px;padding:10px 14px;background:rgba(255,255,255,.7);border-radius:6px;color:#1f2937}"
    ".banner{background:#dc2626;color:#fff;font-weight:700;padding:12px 16px;border-radius:8px;margin:8px 0}"
    ".warnings{background:#fffbeb;border:1px solid #f59e0b;border-radius:8px;padding:10px 16px}.warnings li{overflow-wrap:anywhere}"
    "table{border-collapse:collapse;margin:6px 0;font-size:13px}td,th{padding:5px 10px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}td{overflow-wrap:anywhere}"
    "th{background:#f9fafb;font-weight:600}th.n{text-align:right}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".good{color:#047857;font-weight:700}.bad{color:#b91c1c;font-weight:700}.muted{color:#6b7280}.note{color:#4b5563;font-size:13px;margin:8px 0}"
    ".chart{max-width:100%;height:auto}"
)

_NUMBER = r"[<+\-\u2212]?\s?\d[\d.,]*(?:e[+-]?\d+)?(?:%| ms| pp)?"
_NUMERIC_CELL = re.compile(rf"^(?:{_NUMBER}|\[{_NUMBER}, {_NUMBER}\]|{DASH})$")


def _numeric_columns(table: Table) -> set[int]:
    """Columns whose every cell is a number (or a dash): right-aligned so digits line up."""
    columns = range(1, len(table.header))
    return {i for i in columns if table.rows and all(_NUMERIC_CELL.match(row[i].text) for row in table.rows) and any(row[i].text != DASH for row in table.rows)}


def _tag(name: str, classes: str, text: str) -> str:
    attribute = f' class="{classes}"' if classes else ""
    return f"<{name}{attribute}>{html.escape(text)}</{name}>"


def html_table(table: Table) -> str:
    """``table`` as an HTML table, every cell escaped, number columns right-aligned, notes below."""
    numeric = _numeric_columns(table)
    head = "".join(_tag("th", "n" if i in numeric else "", h) for i, h in enumerate(table.header))
    body = []
    for row in table.rows:
        cells = []
        for index, cell in enumerate(row):
            cells.append(_tag("td", " ".join(c for c in (cell.tone, "n" if index in numeric else "") if c), cell.text))
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"
