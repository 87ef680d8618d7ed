"""The monitoring report on hand-built results: verdicts first, drifted columns first, escaping, caps, metrics, Markdown.

The records are built directly (several models: drifted, fine, schema-broken, 200 columns,
NaNs, hostile names) so each check knows exactly what the page must say.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from pathlib import Path

import pytest

from kfp_mlops.components.monitor import drift
from kfp_mlops.components.monitor.report import MAX_CHARTS, fmt_score, fmt_threshold, method_words, summary_html, summary_markdown, write_summary
from kfp_mlops.components.monitor.report_metrics import MAX_METRIC_COLUMNS, metric_keys, sorted_columns, summary_metrics
from kfp_mlops.components.monitor.report_svg import LABEL_CHARS, LABEL_W, PLOT_W, share_chart, shorten
from kfp_mlops.components.monitor.results import CATEGORICAL, ERROR, NUMERIC, WARNING, ColumnDrift, Histogram, MonitorResult, PerformanceResult, QualityFinding

HOSTILE = "<script>alert(1)</script>"
LONG_CATEGORY = "a very long category label that goes on and on " * 2
NAN = math.nan


def numeric_histogram(shift: float) -> Histogram:
    """Twenty equal-width bins; ``shift`` moves the current side's mass to higher bins."""
    ref = [math.exp(-((i - 10) ** 2) / 18) for i in range(20)]
    cur = [math.exp(-((i - 10 - shift) ** 2) / 18) for i in range(20)]
    labels = tuple(f"[{i / 10:.4g}, {(i + 1) / 10:.4g})" for i in range(20))
    return Histogram(labels, tuple(v / sum(ref) for v in ref), tuple(v / sum(cur) for v in cur))


def category_histogram() -> Histogram:
    return Histogram(("red", LONG_CATEGORY, HOSTILE, "unseen"), (0.5, 0.3, 0.2, 0.0), (0.2, 0.3, 0.3, 0.2))


def column(name: str, *, drifted: bool, method: str = "ks", score: float | None = None, kind: str = NUMERIC, note: str = "", histogram: Histogram | None = None) -> ColumnDrift:
    threshold = drift.DEFAULT_THRESHOLDS[method]
    if score is None:
        p_value = method in drift.P_VALUE_METHODS
        score = (threshold / 50 if drifted else 0.6) if p_value else (threshold * 3 if drifted else threshold / 4)
    shown = histogram if histogram is not None else (category_histogram() if kind == CATEGORICAL else numeric_histogram(4.0 if drifted else 0.3))
    return ColumnDrift(name, kind, method, score, threshold, drifted, 5000, 1200, note, shown)


def performance(metric: str, *, estimated: float, realized: float = NAN, n_labelled: int = 0, alert_below: float = 0.8) -> PerformanceResult:
    lower, upper = (estimated - 0.02, estimated + 0.02) if math.isfinite(estimated) else (NAN, NAN)
    realized_alert = n_labelled >= 100 and realized < alert_below
    return PerformanceResult(metric, 0.9, estimated, lower, upper, realized, n_labelled, alert_below, estimated < alert_below or realized_alert, realized_alert)


def churn() -> MonitorResult:
    """Dataset drift (12 of 20 columns), prediction drift, quality findings and a performance alert: retrain."""
    columns = [column(f"stable_{i}", drifted=False) for i in range(8)]
    columns += [column(f"moved_{i}", drifted=True, method="wasserstein") for i in range(11)]
    columns.insert(3, column("plan", drifted=True, method="chisquare", kind=CATEGORICAL, note=f"40 values in 1 category the reference never had {HOSTILE}"))
    quality = [
        QualityFinding("age", "null_rate", WARNING, 0.01, 0.2, "age is null in 20% of rows (1% in the reference)."),
        QualityFinding("plan", "new_category", ERROR, NAN, 0.2, "plan has categories the model never saw."),
    ]
    return MonitorResult(
        "churn",
        "7",
        "s3://logs/churn/2026-11-28",
        1200,
        columns,
        column("score", drifted=True, method="ks"),
        quality,
        [performance("accuracy", estimated=0.71, realized=0.69, n_labelled=350), performance("roc_auc", estimated=0.84, realized=0.83, n_labelled=350)],
        drift_share=12 / 20,
        dataset_drift=True,
        drift_detected=True,
        retrain=True,
        reasons=["12 of 20 columns drifted (60%), at or above 50%.", "Estimated accuracy 0.71 is below the alert threshold 0.8."],
        warnings=["age is null far more often than in the reference."],
        seconds={"read": 1.25, "drift": 0.5},
    )


def hostile() -> MonitorResult:
    """Nothing drifted, no prediction, no usable scores (NaN estimates); every text hostile."""
    return MonitorResult(
        HOSTILE,
        "1|2\nthree",
        f"/data/{HOSTILE}",
        300,
        [column(HOSTILE, drifted=False, kind=CATEGORICAL, method="z", note=HOSTILE)],
        None,
        [],
        [performance("accuracy", estimated=NAN)],
        drift_share=0.0,
        reasons=[f"No drift in {HOSTILE}."],
        warnings=[HOSTILE],
    )


def wide() -> MonitorResult:
    """200 columns, 40 drifted (interleaved), one without values; a missing column makes it schema drift."""
    columns = [column(f"f{i:03d}", drifted=i % 5 == 0, method="ks" if i % 2 else "jensenshannon") for i in range(199)]
    columns.append(ColumnDrift("empty_col", NUMERIC, "ks", NAN, 0.05, False, 5000, 0, "no values in the current data to compare"))
    quality = [QualityFinding("", "empty", WARNING, NAN, NAN, "Few rows."), QualityFinding("income", "missing_column", ERROR, NAN, NAN, "income is missing.")]
    return MonitorResult(
        "wide",
        "3",
        "bq://project.table",
        90,
        columns,
        None,
        quality,
        [],
        drift_share=40 / 200,
        schema_drift=True,
        drift_detected=True,
        reasons=["income, a model input, is missing: the model cannot score these rows."],
    )


def section(page: str, index: int) -> str:
    match = re.search(rf'<section class="model" id="model-{index}">(.*?)</section>', page, re.DOTALL)
    assert match, f"no section {index}"
    return match.group(1)


def table_cells(part: str, heading: str) -> list[list[str]]:
    """The unescaped cell texts, row by row, of the first table after the heading."""
    body = re.search(rf"<h3>{heading}</h3>.*?<tbody>(.*?)</tbody>", part, re.DOTALL).group(1)
    return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)] for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)]


def drift_rows(part: str) -> list[tuple[str, str]]:
    """(column, verdict) per row of the section's column drift table."""
    return [(row[0], row[5]) for row in table_cells(part, "Column drift")]


@pytest.fixture(scope="module")
def results() -> list[MonitorResult]:
    return [churn(), hostile(), wide()]


@pytest.fixture(scope="module")
def page(results: list[MonitorResult]) -> str:
    return summary_html(results, title=f"Nightly {HOSTILE}")


def test_page_is_self_contained_and_escapes_everything(page: str) -> None:
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>")
    for outside in ("<script", "<link", "src=", "http://", "https://", "@import", "url("):
        assert outside not in page.lower()
    assert html.escape(HOSTILE) in page
    assert "<title>Nightly &lt;script&gt;" in page
    assert page.count(html.escape(HOSTILE)) >= 8  # title, model name, source, column, note, reason, warning, chart category


def test_summary_table_has_a_row_per_model_with_status_colours(page: str) -> None:
    summary = re.search(r"<h2>Summary</h2>.*?<tbody>(.*?)</tbody>", page, re.DOTALL).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", summary, re.DOTALL)
    assert len(rows) == 3
    churn_cells = re.findall(r"<td([^>]*)>(.*?)</td>", rows[0], re.DOTALL)
    texts = [html.unescape(text) for _, text in churn_cells]
    assert texts[:5] == ["churn", "7", "s3://logs/churn/2026-11-28", "1,200", "12 of 20 (60.0%)"]
    assert churn_cells[5] == (' class="bad"', "yes") and churn_cells[6] == (' class="good"', "no")
    assert texts[7] == "yes (K-S p-value 0.001)"
    assert texts[8] == "accuracy 0.71 [0.69, 0.73] vs 0.9\nroc_auc 0.84 [0.82, 0.86] vs 0.9" and "bad" in churn_cells[8][0]
    assert texts[9] == "accuracy 0.69 (n = 350)\nroc_auc 0.83 (n = 350)"
    assert churn_cells[10] == (' class="bad"', "yes")
    hostile_cells = [html.unescape(t) for t in re.findall(r"<td[^>]*>(.*?)</td>", rows[1], re.DOTALL)]
    assert hostile_cells[0] == HOSTILE and hostile_cells[7] == "not computed" and hostile_cells[8] == "accuracy \u2014 vs 0.9" and hostile_cells[9] == "no labels"
    assert "2 advised to retrain" not in page and "1 advised to retrain, 1 with schema drift" in page


def test_each_model_starts_with_its_verdict_and_reasons(page: str) -> None:
    verdicts = [("retrain", "Retrain", "12 of 20 columns drifted"), ("ok", "No drift", "No drift in &lt;script&gt;"), ("schema", "Schema drift", "income, a model input, is missing")]
    for index, (tone, word, reason) in enumerate(verdicts, start=1):
        part = section(page, index)
        assert f'<div class="decision {tone}"><div class="action">{word}</div>' in part
        assert part.index(reason) < part.index("<h3>Column drift</h3>")
    churn_part = section(page, 1)
    assert churn_part.index("Warnings") < churn_part.index("<h3>Column drift</h3>")
    assert "Current data: s3://logs/churn/2026-11-28, 1,200 rows; took 1.8 s (read 1.2 s, drift 0.5 s)." in churn_part


def test_drifted_columns_come_first_strongest_first(page: str, results: list[MonitorResult]) -> None:
    rows = drift_rows(section(page, 3))
    assert len(rows) == 200
    assert [v for _, v in rows[:40]] == ["drift"] * 40 and "drift" not in [v for _, v in rows[40:]]
    assert rows[-1] == ("empty_col", "no verdict")
    # Wasserstein at 3x its threshold beats chi-square at threshold / 50 on the common scale, and K-S p = 0.001 beats neither.
    churn_rows = drift_rows(section(page, 1))
    assert [c for c, _ in churn_rows[:12]] == [f"moved_{i}" for i in range(11)] + ["plan"]
    assert sorted_columns(results[0].columns)[11].column == "plan"


def test_column_table_says_method_score_and_threshold_in_words(page: str) -> None:
    part = section(page, 1)
    cells = {row[0]: row[1:] for row in table_cells(part, "Column drift")}
    assert cells["moved_0"] == ["numeric", "Wasserstein distance (normed)", "0.3", "\u2265 0.1", "drift", "5,000", "1,200", "\u2014"]
    assert cells["plan"][:5] == ["categorical", "chi-square p-value (two-sample)", "0.001", "p < 0.05", "drift"]
    assert cells["plan"][-1] == f"40 values in 1 category the reference never had {HOSTILE}"
    assert cells["stable_0"][1:5] == ["K-S p-value", "0.6", "p \u2264 0.05", "no drift"]
    assert "<td>no values in the current data to compare</td>" in section(page, 3)


def test_charts_are_capped_drifted_first_and_say_how_many_were_omitted(page: str) -> None:
    part = section(page, 3)
    assert part.count("<figure") == MAX_CHARTS
    assert part.count('<figure class="drifted">') == MAX_CHARTS
    assert f"Showing {MAX_CHARTS} of 199 column charts (drifted first); {199 - MAX_CHARTS} omitted." in part
    assert "1 column has nothing to chart" in part
    churn_part = section(page, 1)
    assert churn_part.count("<figure") == 21  # 20 columns and the prediction
    assert "omitted" not in churn_part
    assert "<h3>Prediction drift</h3>" in churn_part and "Not computed" in section(page, 2)
    charts = summary_html([wide()], max_charts=5)
    assert charts.count("<figure") == 5 and "194 omitted" in charts


def test_nan_reads_as_a_dash_and_never_as_nan(page: str) -> None:
    text = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert table_cells(section(page, 2), "Performance") == [["accuracy", "0.9", "\u2014", "\u2014", "\u2014", "0", "0.8", "no estimate"]]


def test_quality_errors_come_before_warnings(page: str) -> None:
    quality = re.search(r"<h3>Data quality</h3>.*?<tbody>(.*?)</tbody>", section(page, 3), re.DOTALL).group(1)
    severities = re.findall(r"<tr><td[^>]*>(\w+)</td>", quality)
    assert severities == ["error", "warning"]
    assert '<td class="muted">(whole table)</td>' in quality and "missing column" in quality
    assert "No data-quality findings." in section(page, 2)


def test_performance_table_shows_band_realized_and_alert(page: str) -> None:
    assert table_cells(section(page, 1), "Performance") == [
        ["accuracy", "0.9", "0.71", "[0.69, 0.73]", "0.69", "350", "0.8", "ALERT"],
        ["roc_auc", "0.9", "0.84", "[0.82, 0.86]", "0.83", "350", "0.8", "ok"],
    ]
    assert "Not estimated" in section(page, 3)


def test_share_chart_has_legend_axis_and_truncated_labels() -> None:
    svg = share_chart(category_histogram(), aria_label=HOSTILE)
    assert 'aria-label="&lt;script&gt;alert(1)&lt;/script&gt;"' in svg
    assert ">reference</text>" in svg and ">current</text>" in svg and "share of the side" in svg
    assert re.findall(r">(\d+%)</text>", svg) == ["0%", "20%", "40%", "60%"]
    short = shorten(LONG_CATEGORY)
    assert len(short) == LABEL_CHARS and short.endswith("\u2026")
    assert f">{html.escape(short)}</text>" in svg
    assert f"<title>{html.escape(LONG_CATEGORY)}: reference 30.0%, current 30.0%</title>" in svg
    # "red" reference 50% of a 60% axis.
    assert f'<rect x="{LABEL_W}" y="32.5" width="{PLOT_W * 0.5 / 0.6:.1f}"' in svg
    assert share_chart(Histogram((), (), ()), aria_label="x") == ""
    uneven = share_chart(Histogram(("a", "b"), (0.5, NAN), (0.5,)), aria_label="x")
    assert "reference \u2014, current \u2014" in uneven


def test_metrics_for_one_model_are_plain_finite_and_safe() -> None:
    m = summary_metrics([churn()])
    assert m["drift_share"] == pytest.approx(0.6) and m["drifted_columns"] == 12.0 and m["columns"] == 20.0 and m["rows"] == 1200.0
    assert (m["dataset_drift"], m["schema_drift"], m["retrain"], m["prediction_drift"]) == (1.0, 0.0, 1.0, 1.0)
    assert m["estimated_accuracy"] == pytest.approx(0.71) and m["estimated_roc_auc"] == pytest.approx(0.84)
    assert m["realized_accuracy"] == pytest.approx(0.69) and m["alert_accuracy"] == 1.0 and m["labelled_rows"] == 350.0
    assert m["prediction_drift_score"] == pytest.approx(0.001) and m["drift_score.moved_0"] == pytest.approx(0.3)
    assert (m["quality_errors"], m["quality_warnings"]) == (1.0, 1.0)
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert all(re.fullmatch(r"[A-Za-z0-9_.]+", k) for k in m)
    quiet = summary_metrics([hostile()])
    assert "estimated_accuracy" not in quiet and "realized_accuracy" not in quiet and "prediction_drift_score" not in quiet
    assert quiet["drift_score.script_alert_1_script"] == pytest.approx(0.6)


def test_metrics_for_several_models_are_prefixed_and_counted(results: list[MonitorResult]) -> None:
    m = summary_metrics(results)
    assert (m["models"], m["models_retrain"], m["models_drifted"], m["models_schema_drift"]) == (3.0, 1.0, 2.0, 1.0)
    assert m["churn.retrain"] == 1.0 and m["wide.schema_drift"] == 1.0 and m["script_alert_1_script.rows"] == 300.0
    assert len([k for k in m if k.startswith("wide.drift_score.")]) == MAX_METRIC_COLUMNS
    assert all(m[f"wide.drift_score.f{i:03d}"] for i in range(0, 199, 5))  # the 40 drifted columns made the cut
    assert "wide.drift_score.empty_col" not in m
    assert all(re.fullmatch(r"[A-Za-z0-9_.]+", k) and math.isfinite(v) for k, v in m.items())
    twins = summary_metrics([churn(), churn(), hostile()])
    assert {k.split(".")[0] for k in twins if "." in k} == {"churn_v7", "churn_v7_2", "script_alert_1_script"}
    assert summary_metrics([]) == {"models": 0.0, "models_retrain": 0.0, "models_drifted": 0.0, "models_schema_drift": 0.0, "models_failed": 0.0}
    assert metric_keys(["a b", "a-b", "", "é"], "column") == ["a_b", "a_b_2", "column", "column_2"]


def test_markdown_has_the_summary_table_and_per_model_findings(results: list[MonitorResult]) -> None:
    md = summary_markdown(results)
    lines = md.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| model |")))
    table = lines[start : start + 5]
    assert table[1] == "|" + "---|" * 11 and not lines[start + 5].startswith("|")
    for row in table:
        assert len(re.findall(r"(?<!\\)\|", row)) == 12, row
    assert "1\\|2; three" in table[3] and "accuracy 0\\.71 \\[0\\.69, 0\\.73\\] vs 0\\.9; roc\\_auc" in table[2]
    assert "<script>" not in md and "&lt;script&gt;" in md
    churn_part = md.split("## churn")[1].split("\n## ")[0]
    assert "**RETRAIN**" in churn_part and "### Drifted columns (12 of 20)" in churn_part
    drifted = [line for line in churn_part.splitlines() if line.startswith(("| moved", "| plan"))]
    assert len(drifted) == 12 and "stable\\_0" not in churn_part
    assert "### Data-quality errors (1; 1 warning in the HTML report)" in churn_part and "plan has categories" in churn_part and "age is null" not in churn_part.split("### Data")[1]
    assert "- accuracy: estimated 0\\.71 \\[0\\.69, 0\\.73\\], reference 0\\.9, realized 0\\.69 \\(n = 350\\), alert below 0\\.8: ALERT" in churn_part
    assert "Prediction drift: yes \\(K\\-S p\\-value 0\\.001" in churn_part
    assert "No column drifted\\." in md and "None\\." not in churn_part and "Prediction drift: not computed" in md
    assert summary_markdown([]).endswith("No model was monitored\\.\n")


def test_method_words_and_formats_cover_every_drift_method() -> None:
    for method in drift.METHODS:
        assert method_words(method) != method
    assert fmt_score(column("x", drifted=True, method="ks", score=1e-9)) == "< 0.0001"
    assert fmt_score(column("x", drifted=True, method="jensenshannon", score=0.123456)) == "0.123"
    assert fmt_threshold(column("x", drifted=False, method="z")) == "p < 0.05"
    assert method_words("custom") == "custom" and fmt_threshold(ColumnDrift("x", NUMERIC, "custom", 1.0, 2.0, False, 1, 1)) == "threshold 2"


def test_empty_page_and_write_summary(tmp_path: Path) -> None:
    assert "No model was monitored." in summary_html([])
    written = write_summary([churn()], html_path=tmp_path / "r.html", markdown_path=tmp_path / "r.md", title="T")
    assert written == summary_metrics([churn()])
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == summary_html([churn()], title="T")
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == summary_markdown([churn()], title="T")


def test_the_summary_colours_only_the_value_that_alerted() -> None:
    """A realized drop (labels show it) with a fine estimate: the realized cell is red, the estimate is not; and the other way round."""
    from kfp_mlops.components.monitor.report import _performance_lines

    def cells(p: PerformanceResult) -> tuple[str, str]:
        model = dataclasses.replace(churn(), performance=[p])
        estimated, realized = _performance_lines(model)
        return estimated.tone, realized.tone

    assert cells(performance("roc_auc", estimated=0.91, realized=0.6, n_labelled=500)) == ("lines", "bad lines")
    assert cells(performance("roc_auc", estimated=0.7, realized=0.9, n_labelled=500)) == ("bad lines", "lines")
    assert cells(performance("roc_auc", estimated=0.91, realized=0.6, n_labelled=10)) == ("lines", "lines"), "too few labels to alert"
