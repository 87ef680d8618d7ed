"""How the monitoring report looks: the per-column share charts (inline SVG) and the page's extra style.

Each chart is a horizontal grouped bar chart, one row per display bin, reference and current
share side by side. Horizontal because bin and category labels are text of any length: they
read left to right, truncated to fit, the full label kept in a tooltip (an SVG ``<title>``,
which needs no JavaScript). Nothing here loads anything: the page must render inside the
Kubeflow UI's sandboxed iframe and on a cluster without internet.
"""

from __future__ import annotations

import html
import math

from kfp_mlops.components.abtest.report_charts import nice_ticks
from kfp_mlops.components.monitor.results import Histogram

WIDTH = 520
LABEL_W, RIGHT, TOP, BOTTOM = 168, 20, 30, 44  # room for bin labels, the last tick label, the legend, x ticks and axis title
PLOT_W = WIDTH - LABEL_W - RIGHT
BAR_H, ROW_GAP = 5, 5  # each row: reference bar, current bar, gap
ROW_H = 2 * BAR_H + ROW_GAP
LABEL_CHARS = 24  # ~6.2 px per character at 11 px: fits LABEL_W with a margin
REFERENCE, CURRENT, GRID, AXIS, MUTED, TEXT = "#9ca3af", "#2563eb", "#eef0f3", "#9ca3af", "#4b5563", "#1f2937"
ELLIPSIS = "\u2026"

# Added to the A/B report's PAGE_CSS: verdict colours for a model, an amber tone for warnings,
# cell classes and the grid the charts sit in. PAGE_CSS lets cells break anywhere so that long
# names fit; that also lets a crowded table squeeze a name to a few letters a line, so names get
# a minimum width, short fixed words (a method) stay on one line, multi-line cells break at spaces.
MONITOR_CSS = (
    ".decision{margin:8px 0}.ok{background:#ecfdf5;border-color:#059669;color:#064e3b}"
    ".drift{background:#fffbeb;border-color:#d97706;color:#78350f}.retrain{background:#fef2f2;border-color:#dc2626;color:#7f1d1d}"
    ".schema{background:#fff7ed;border-color:#ea580c;color:#7c2d12}.decision .action{font-size:28px}"
    ".warn{color:#b45309;font-weight:700}.lines{white-space:pre-line;overflow-wrap:normal}.keep{white-space:nowrap}.name{min-width:8em}"
    ".model{margin-top:36px;padding-top:4px;border-top:3px solid #d1d5db}.model>h2{font-size:20px;border:0;margin-top:8px}"
    ".scroll{overflow-x:auto}.charts{display:flex;flex-wrap:wrap;gap:12px}"
    "figure{margin:0;padding:8px 10px;border:1px solid #e5e7eb;border-radius:8px;width:520px;max-width:100%}"
    "figure.drifted{border-color:#dc2626;border-width:2px}figcaption{font-size:13px;font-weight:600;overflow-wrap:anywhere;margin-bottom:2px}"
    "figcaption .how{font-weight:400;color:#4b5563}"
)


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis when longer."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + ELLIPSIS


def _share(value: float) -> float:
    """A share for drawing: missing or impossible values draw as no bar."""
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0


def _percent(value: float, decimals: int = 1) -> str:
    return f"{100 * value:.{decimals}f}%" if math.isfinite(value) else "\u2014"


def share_chart(histogram: Histogram, *, aria_label: str) -> str:
    """Reference and current share per bin as grouped horizontal bars, with legend and a share axis.

    Args:
        histogram: Bin labels and the two sides' shares; bins missing on one side count as no bar.
        aria_label: What the chart shows, for screen readers (escaped here).

    Returns:
        The SVG element; empty when the histogram has no bins.
    """
    rows = len(histogram.labels)
    if not rows:
        return ""
    reference = [histogram.reference[i] if i < len(histogram.reference) else math.nan for i in range(rows)]
    current = [histogram.current[i] if i < len(histogram.current) else math.nan for i in range(rows)]
    peak = max([_share(v) for v in reference + current] + [0.0])
    ticks = nice_ticks(0.0, peak, target=4) if peak > 0 else [0.0, 1.0]
    x_max = ticks[-1] if ticks[-1] > 0 else 1.0

    def x_of(value: float) -> float:
        return LABEL_W + PLOT_W * _share(value) / x_max

    plot_h = rows * ROW_H
    height = TOP + plot_h + BOTTOM
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{html.escape(aria_label)}" class="chart">']
    step = ticks[1] - ticks[0] if len(ticks) > 1 else x_max
    decimals = max(0, -math.floor(math.log10(100 * step))) if step > 0 else 0
    for value in ticks:
        x = LABEL_W + PLOT_W * value / x_max
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="{GRID}"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 15}" text-anchor="middle" font-size="10" fill="{MUTED}">{_percent(value, decimals)}</text>')
    for index, label in enumerate(histogram.labels):
        y = TOP + index * ROW_H + ROW_GAP / 2
        tip = f"{label}: reference {_percent(reference[index])}, current {_percent(current[index])}"
        parts.append(f"<g><title>{html.escape(tip)}</title>")
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + BAR_H + 3:.1f}" text-anchor="end" font-size="11" fill="{TEXT}">{html.escape(shorten(label))}</text>')
        parts.append(f'<rect x="{LABEL_W}" y="{y:.1f}" width="{x_of(reference[index]) - LABEL_W:.1f}" height="{BAR_H}" fill="{REFERENCE}"/>')
        parts.append(f'<rect x="{LABEL_W}" y="{y + BAR_H:.1f}" width="{x_of(current[index]) - LABEL_W:.1f}" height="{BAR_H}" fill="{CURRENT}"/></g>')
    parts.append(f'<line x1="{LABEL_W}" y1="{TOP}" x2="{LABEL_W}" y2="{TOP + plot_h}" stroke="{AXIS}"/>')
    parts.append(f'<line x1="{LABEL_W}" y1="{TOP + plot_h}" x2="{LABEL_W + PLOT_W}" y2="{TOP + plot_h}" stroke="{AXIS}"/>')
    parts.append(f'<text x="{LABEL_W + PLOT_W / 2:.1f}" y="{height - 8}" text-anchor="middle" font-size="11" fill="{MUTED}">share of the side\'s non-null values</text>')
    parts += _legend()
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> list[str]:
    y = 14
    parts = []
    for x, colour, label in ((LABEL_W, REFERENCE, "reference"), (LABEL_W + 110, CURRENT, "current")):
        parts.append(f'<rect x="{x}" y="{y - 9}" width="14" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="{y}" font-size="11" fill="{TEXT}">{label}</text>')
    return parts
