"""The training report: learning curves as inline SVG and the test metrics, one HTML page."""

from __future__ import annotations

import html
import math

WIDTH, HEIGHT, PAD = 520, 260, 44
COLORS = ("#4f46e5", "#f59e0b", "#10b981", "#ef4444")


def _chart(title: str, series: dict[str, list[float]]) -> str:
    values = [v for vs in series.values() for v in vs if v == v]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1.0
    n = max(len(vs) for vs in series.values())
    x = lambda i: PAD + (WIDTH - 2 * PAD) * (i / max(n - 1, 1))  # noqa: E731
    y = lambda v: HEIGHT - PAD - (HEIGHT - 2 * PAD) * ((v - lo) / (hi - lo))  # noqa: E731
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">']
    parts.append(f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">{html.escape(title)}</text>')
    parts.append(f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#9ca3af"/>')
    parts.append(f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#9ca3af"/>')
    decimals = max(2, 2 - int(math.floor(math.log10(hi - lo))))  # enough digits to tell the ticks apart
    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        parts.append(f'<text x="{PAD - 6}" y="{y(v) + 4}" text-anchor="end" font-size="11" fill="#6b7280">{v:.{decimals}f}</text>')
    for i in range(n):
        parts.append(f'<text x="{x(i)}" y="{HEIGHT - PAD + 16}" text-anchor="middle" font-size="11" fill="#6b7280">{i}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#6b7280">epoch</text>')
    for k, (name, vs) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vs) if v == v)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>' for i, v in enumerate(vs) if v == v]
        parts.append(f'<rect x="{WIDTH - PAD - 130}" y="{PAD + 16 * k - 10}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{WIDTH - PAD - 115}" y="{PAD + 16 * k}" font-size="12">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


MAX_FEATURE_ROWS = 200


def _features_table(features: list[tuple[str, str, str, str]], limit: int = MAX_FEATURE_ROWS) -> str:
    """name, kind, treatment, why: one row each; a long list says how many rows it leaves out."""
    if not features:
        return ""
    head = "<tr><th>feature</th><th>kind</th><th>treatment</th><th>why this kind</th></tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in features[:limit])
    more = f"<p>... and {len(features) - limit:,} more features (all of them are in preprocessing.json).</p>" if len(features) > limit else ""
    return f"<h2>Features ({len(features):,})</h2><table>{head}{body}</table>{more}"


def render(
    history: list[dict[str, float]],
    test_metrics: dict[str, float],
    *,
    task: str,
    metric: str,
    best_epoch: int,
    summary: dict[str, str],
    features: list[tuple[str, str, str, str]] | None = None,
) -> str:
    losses = {"train loss": [h["train_loss"] for h in history]}
    if "val_log_loss" in history[0]:
        losses["validation log loss"] = [h["val_log_loss"] for h in history]
    if "val_rmse" in history[0]:
        losses = {"train loss (standardized)": losses["train loss"]}
    quality = {f"validation {metric}": [h[f"val_{metric}"] for h in history]}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in test_metrics.items())
    facts = "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(v)}</li>" for k, v in summary.items())
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Training report</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#1f2937}h1{font-size:22px}"
        "table{border-collapse:collapse}td,th{padding:4px 12px;border-bottom:1px solid #eee;text-align:left}.charts{display:flex;flex-wrap:wrap;gap:16px}</style></head><body>"
        f"<h1>Training report ({html.escape(task)})</h1><ul>{facts}<li><b>best epoch:</b> {best_epoch}</li></ul>"
        f'<div class="charts">{_chart("Loss", losses)}{_chart("Validation " + metric, quality)}</div>'
        f"<h2>Test metrics</h2><table>{rows}</table>{_features_table(features or [])}</body></html>"
    )
