"""The validation report as one self-contained HTML page.

Every piece of user data (column names, values, messages) goes through
``html.escape``: a column named ``<script>`` shows as text. The source URI is
redacted: user info and signatures of a URL never reach the page.
"""

from __future__ import annotations

import html
import re
from typing import Iterable, Sequence

from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components.validate.checks import Anomaly
from kfp_mlops.components.validate.statistics import ColumnStats, DatasetStats

TOP_VALUES = 8
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2937;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.sub{color:#6b7280;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#6b7280;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #f0f0f0;vertical-align:top}
th{background:#f9fafb}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;border-radius:4px;padding:1px 6px;font-size:12px;font-weight:600}
.error{background:#fee2e2;color:#991b1b}.warning{background:#fef3c7;color:#92400e}.info{background:#e0f2fe;color:#075985}
.ok{background:#dcfce7;color:#166534}
.bar{background:#e5e7eb;height:8px;border-radius:4px;width:120px;display:inline-block;vertical-align:middle;margin-right:6px}
.bar i{display:block;height:8px;border-radius:4px;background:#6366f1}
.vals{color:#374151;font-size:12px}.nowrap{white-space:nowrap}code{background:#f3f4f6;padding:0 3px;border-radius:3px}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: frozenset[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(\+00:00|Z)?$")


def _fmt(value: object) -> str:
    if isinstance(value, str) and (m := ISO_TIME.match(value)):
        return _e(f"{m.group(1)} {m.group(2)}" + (" UTC" if m.group(4) else ""))
    if isinstance(value, float):
        return _e(f"{value:,.4g}")
    if isinstance(value, int):
        return _e(f"{value:,}")
    return _e(value)


def _null_bar(st: ColumnStats) -> str:
    share = st.null_fraction
    return f'<span class="nowrap"><span class="bar"><i style="width:{share * 100:.1f}%"></i></span>{share:.1%}</span>'


def _top_values(st: ColumnStats) -> str:
    if st.distinct_capped:
        return '<span class="vals">many distinct values</span>'
    if not st.value_counts:
        return ""
    total = sum(st.value_counts.values())
    top = sorted(st.value_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]
    parts = [f"<code>{_e(k)}</code> {v / total:.1%}" for k, v in top]
    more = len(st.value_counts) - len(top)
    return '<span class="vals">' + ", ".join(parts) + (f" … +{more}" if more > 0 else "") + "</span>"


def render_report(stats: DatasetStats, anomalies: list[Anomaly], *, title: str, source: str, mode: str) -> str:
    """The whole HTML page; ``source`` is shown redacted (no user info or credential parameters)."""
    source = redact_uri(source)
    counts = {sev: sum(a.severity == sev for a in anomalies) for sev in ("error", "warning", "info")}
    cards = [
        ("rows", f"{stats.rows:,}"),
        ("columns", f"{len(stats.columns):,}"),
        ("errors", str(counts["error"])),
        ("warnings", str(counts["warning"])),
        ("duplicate keys", f"{stats.duplicate_keys:,}"),
    ]
    card_html = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
    if anomalies:
        anomaly_html = _table(
            ["severity", "column", "check", "finding", "what to do"],
            [[f'<span class="sev {_e(a.severity)}">{_e(a.severity)}</span>', _e(a.column), _e(a.code), _e(a.message), _e(a.fix)] for a in anomalies],
        )
    else:
        anomaly_html = '<p><span class="sev ok">no anomalies</span></p>'
    column_rows = [
        [
            f"<b>{_e(st.name)}</b>",
            _e(st.type),
            _null_bar(st),
            _fmt(st.min),
            _fmt(st.max),
            _fmt(st.mean),
            _fmt(st.std),
            _top_values(st),
        ]
        for st in stats.columns
    ]
    columns_html = _table(["column", "type", "nulls", "min", "max", "mean", "std", "top values"], column_rows, numeric=frozenset({3, 4, 5, 6}))
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{_e(title)}</h1><div class="sub">{_e(mode)} · source <code>{_e(source)}</code></div>'
        f'<div class="cards">{card_html}</div>'
        f"<h2>Anomalies</h2>{anomaly_html}"
        f"<h2>Columns</h2>{columns_html}"
        "</body></html>"
    )
