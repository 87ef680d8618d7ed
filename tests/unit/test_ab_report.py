"""The A/B report on real analyses: decision first, every section, escaping, charts, metrics, Markdown.

Each experiment is built from cumulative per-look sums (what the log reader hands the
analysis) and analysed by ``analysis.analyze``; nothing in the report is mocked.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from kfp_mlops.components.abtest import analysis
from kfp_mlops.components.abtest.apply import Applied
from kfp_mlops.components.abtest.logs import ArmData, ExperimentData
from kfp_mlops.components.abtest.report import metrics, render_html, render_markdown, write_report
from kfp_mlops.components.abtest.report_charts import fmt_duration, interval_chart
from kfp_mlops.components.abtest.settings import AnalysisSettings
from kfp_mlops.components.abtest.stats.moments import Moments
from kfp_mlops.components.abtest.stats.sequential import MIN_UNITS_PER_ARM

START = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
HOSTILE = "<script>alert(1)</script>"
LOOKS = 12
ENOUGH = max(5000, 2 * MIN_UNITS_PER_ARM)  # units per arm well past the fewest a decision needs


def _arm(name: str, units: float, accuracy: float, *, latency_ms: float = 50.0, error_rate: float = 0.0, version: str = "1", looks: int = LOOKS) -> ArmData:
    """An arm whose units arrive evenly over the looks, with the given accuracy, latency and 5xx rate."""
    cumulative = np.round(np.linspace(units / looks, units, looks))
    correct = np.round(cumulative * accuracy)
    errors = np.round(cumulative * error_rate)
    latency = Moments(n=cumulative, sum=cumulative * latency_ms, sum_sq=cumulative * (latency_ms**2 + (0.2 * latency_ms) ** 2))
    return ArmData(name, cumulative, Moments.binary(correct, cumulative), latency, cumulative + errors, errors, 1.6 * latency_ms, int(0.05 * units), [version])


def _data(arms: list[ArmData], *, span: timedelta = timedelta(hours=6), looks: int = LOOKS) -> ExperimentData:
    times = [START + span * (k + 1) / looks for k in range(looks)]
    units = int(sum(a.units[-1] for a in arms))
    return ExperimentData({a.name: a for a in arms}, times, START, times[-1], units, units, 0)


def _promote() -> analysis.AnalysisResult:
    arms = [_arm("champion", ENOUGH, 0.80), _arm("challenger", ENOUGH, 0.85, version="2"), _arm(HOSTILE, ENOUGH, 0.81, version="3")]
    return analysis.analyze(_data(arms), AnalysisSettings(), {"champion": 34, "challenger": 33, HOSTILE: 33})


def _rollback() -> analysis.AnalysisResult:
    arms = [_arm("champion", ENOUGH, 0.80), _arm("challenger", ENOUGH, 0.70, latency_ms=80.0, error_rate=0.01, version="2")]
    return analysis.analyze(_data(arms), AnalysisSettings(), {"champion": 50, "challenger": 50})


def _blocked() -> analysis.AnalysisResult:
    arms = [_arm("champion", ENOUGH, 0.80), _arm("challenger", 0.8 * ENOUGH, 0.80, version="2")]
    return analysis.analyze(_data(arms), AnalysisSettings(), {"champion": 50, "challenger": 50})


def _continue() -> analysis.AnalysisResult:
    arms = [_arm("champion", 100, 0.80), _arm("challenger", 100, 0.85, version="2")]
    return analysis.analyze(_data(arms), AnalysisSettings(), {"champion": 50, "challenger": 50})


CASES = {"promote": _promote, "rollback": _rollback, "blocked": _blocked, "continue": _continue}
PROMOTED = Applied("promoted", {"champion": 0, "challenger": 100, HOSTILE: 0}, "2", "1", ["fraud@champion -> version 2 (was 1, now @previous)"])


@pytest.fixture(scope="module")
def results() -> dict[str, analysis.AnalysisResult]:
    return {name: build() for name, build in CASES.items()}


def test_the_cases_reach_the_decisions_they_stand_for(results):
    assert {name: r.decision.action for name, r in results.items()} == {name: name for name in CASES}
    assert results["promote"].decision.challenger == "challenger"
    assert results["rollback"].decision.challenger == "challenger"


@pytest.mark.parametrize("case", list(CASES))
def test_the_page_leads_with_the_decision_and_its_reasons(results, case):
    result = results[case]
    page = render_html(result, PROMOTED if case == "promote" else None)
    decision_at = page.index(f'class="decision {case}"')
    assert decision_at < page.index("Design and settings") < page.index("Arms</h2>") < page.index("Sample-ratio check")
    assert page.index("Sample-ratio check") < page.index("Comparisons</h2>") < page.index("Primary metric over time") < page.index("Power</h2>")
    assert f'<div class="action">{case}</div>' in page
    for reason in result.decision.reasons:
        assert html.escape(reason) in page


def test_a_promotion_shows_what_was_applied(results):
    page = render_html(results["promote"], PROMOTED)
    assert "Promote challenger" in page
    assert "action taken: promoted" in page
    assert html.escape(f"weights after: champion 0%, challenger 100%, {HOSTILE} 0%") in page
    assert html.escape("fraud@champion -> version 2 (was 1, now @previous)") in page
    assert "Nothing was applied" in render_html(results["promote"], None)


def test_the_design_states_method_tuning_correction_and_per_interval_level(results):
    page = render_html(results["promote"], None)
    assert "N* = 5,000 units" in page
    assert "8 hypotheses" in page and "alpha / (family - rank + 1)" in page  # two challengers x four hypotheses, Holm's steps
    levels = sorted(c.level for c in results["promote"].comparisons)
    assert levels[0] == pytest.approx(0.05 / 8) and levels[-1] == pytest.approx(0.05), "Holm: alpha / 8 for the smallest p ... alpha for the largest"
    assert "Holm" in page and "2026-11-28 09:00:00 UTC .. 2026-11-28 15:00:00 UTC" in page
    assert html.escape(AnalysisSettings().spec.description) in page


def test_a_harmful_challenger_is_shown_as_harm_on_every_guardrail_it_broke(results):
    result = results["rollback"]
    page = render_html(result, None)
    harmed = [c for c in result.comparisons if c.role == "guardrail" and c.significant]
    assert {c.metric for c in harmed} == {"accuracy", "latency", "error_rate"}
    assert page.count('class="bad n"') + page.count('class="bad"') == len(harmed)
    assert "+30.00 ms" in page  # latency effect in milliseconds (80 ms against 50 ms)
    assert "Roll back challenger" in page


def test_a_sample_ratio_mismatch_raises_a_red_banner(results):
    page = render_html(results["blocked"], None)
    assert page.count('class="banner"') == 1
    assert "p &lt; 0.0001" in page  # both SRM p-values are far below the threshold
    for case in ("promote", "rollback", "continue"):
        assert 'class="banner"' not in render_html(results[case], None)
    markdown = render_markdown(results["blocked"], None)
    assert "> **Sample\\-ratio mismatch:**" in markdown


def test_too_little_data_says_how_long_is_left(results):
    result = results["continue"]
    page = render_html(result, None)
    assert result.power is not None and 0 < result.power.remaining_s < math.inf
    assert fmt_duration(result.power.remaining_s) in page and ("hours" in page or "days" in page)
    assert "collecting data" in page


@pytest.mark.parametrize("case", list(CASES))
def test_one_chart_per_challenger(results, case):
    result = results[case]
    challengers = {c.challenger for c in result.comparisons}
    page = render_html(result, None)
    assert page.count("<svg") == len(challengers) == page.count("</svg>")
    assert "nan" not in re.sub(r"<[^>]*>", " ", "".join(re.findall(r"<svg.*?</svg>", page))).lower().split()


def test_a_hostile_arm_name_is_escaped_everywhere(results):
    result = results["promote"]
    page = render_html(result, PROMOTED)
    markdown = render_markdown(result, PROMOTED)
    assert "<script" not in page.lower() and "<script" not in markdown.lower()
    assert html.escape(HOSTILE) in page
    assert html.escape(HOSTILE, quote=False) in markdown.replace("\\", "")


@pytest.mark.parametrize("case", list(CASES))
def test_the_page_is_self_contained(results, case):
    page = render_html(results[case], PROMOTED if case == "promote" else None)
    lowered = page.lower()
    assert "<script" not in lowered
    assert not re.search(r"https?://", lowered)
    for external in ("src=", "href=", "@import", "url(", "<link", "<img", "<iframe"):
        assert external not in lowered
    assert page.startswith("<!doctype html>") and page.endswith("</html>")


@pytest.mark.parametrize("case", list(CASES))
def test_metrics_are_finite_floats_with_safe_keys(results, case):
    result = results[case]
    values = metrics(result)
    assert values and all(type(v) is float and math.isfinite(v) for v in values.values())
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", key) for key in values)
    for key in (
        "srm_chi_square_p",
        "srm_sequential_p",
        "units_champion",
        "accuracy_champion",
        "effect_challenger",
        "lower_challenger",
        "upper_challenger",
        "adjusted_p_challenger",
        "p95_latency_ms_challenger",
        "error_rate_challenger",
        "units_needed",
    ):
        assert key in values, key
    primary = next(c for c in result.comparisons if c.challenger == "challenger" and c.role == "primary")
    assert values["effect_challenger"] == pytest.approx(primary.effect)
    assert values["adjusted_p_challenger"] == pytest.approx(primary.adjusted_p)
    assert values["units_champion"] == result.data.arms["champion"].units[-1]
    assert values[f"decision_{case}"] == 1.0


def test_metrics_sanitize_arm_names_and_leave_out_nan(results):
    values = metrics(results["promote"])
    assert values["units_script_alert_1_script"] == ENOUGH
    # No 5xx anywhere: the error-rate interval is NaN, and KFP's Metrics would reject it.
    assert "guardrail_error_rate_lower_challenger" not in values
    assert values["guardrail_error_rate_adjusted_p_challenger"] == 1.0


def test_colliding_sanitized_arm_names_get_distinct_keys():
    arms = [_arm("champion", 2000, 0.8), _arm("canary-a", 2000, 0.8, version="2"), _arm("canary_a", 2000, 0.8, version="3")]
    values = metrics(analysis.analyze(_data(arms), AnalysisSettings(), {"champion": 34, "canary-a": 33, "canary_a": 33}))
    assert values["units_canary_a"] == values["units_canary_a_2"] == 2000.0


def _markdown_tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.parametrize("case", list(CASES))
def test_markdown_tables_are_well_formed(results, case):
    markdown = render_markdown(results[case], PROMOTED if case == "promote" else None)
    tables = _markdown_tables(markdown)
    assert len(tables) == 5  # design, arms, SRM, comparisons, power
    for table in tables:
        # A cell's own pipes are escaped (\|), so unescaped pipes delimit cells.
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
        assert len(widths) == 1, table
        assert re.fullmatch(r"\|(---\|)+", table[1])
        assert all(line.endswith("|") for line in table)
    assert markdown.startswith(f"# A/B analysis: {case.upper()}")


def test_markdown_keeps_a_pipe_in_an_arm_name_inside_its_cell():
    arms = [_arm("champion", 2000, 0.8), _arm("canary|2", 2000, 0.8, version="2")]
    markdown = render_markdown(analysis.analyze(_data(arms), AnalysisSettings(), {"champion": 50, "canary|2": 50}), None)
    arm_rows = [line for line in markdown.splitlines() if line.startswith("| canary")]
    assert arm_rows and all("canary\\|2" in row for row in arm_rows)
    for table in _markdown_tables(markdown):
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) == 1


def test_one_look_gives_a_note_instead_of_a_chart():
    arms = [_arm("champion", ENOUGH, 0.8, looks=1), _arm("challenger", ENOUGH, 0.82, version="2", looks=1)]
    result = analysis.analyze(_data(arms, looks=1), AnalysisSettings(), {"champion": 50, "challenger": 50})
    page = render_html(result, None)
    assert "<svg" not in page
    assert "Only one look so far" in page


def test_no_traffic_time_is_said_in_words():
    arms = [_arm("champion", 300, 0.8), _arm("challenger", 300, 0.8, version="2")]
    data = _data(arms)
    data.last_time = data.first_time  # every request at one instant: no rate to extrapolate
    result = analysis.analyze(data, AnalysisSettings(), {"champion": 50, "challenger": 50})
    assert result.power is not None and math.isinf(result.power.remaining_s)
    assert "no traffic" in render_html(result, None)
    assert "remaining_s" not in metrics(result)


def test_fixed_horizon_lower_is_better_metric_draws_the_minimum_effect_below_zero():
    def regression_arm(name: str, mean_error: float, version: str) -> ArmData:
        arm = _arm(name, ENOUGH, 0.8, version=version)
        n = arm.units
        errors = Moments(n=n, sum=n * mean_error, sum_sq=n * (mean_error**2 + 0.3**2))
        return ArmData(name, n, errors, arm.latency, arm.requests, arm.errors, arm.p95_latency_ms, 0, [version])

    settings = AnalysisSettings(metric="absolute_error", method="fixed-horizon", min_effect=0.01)
    result = analysis.analyze(_data([regression_arm("champion", 0.50, "1"), regression_arm("challenger", 0.45, "2")]), settings, {"champion": 50, "challenger": 50})
    page = render_html(result, None)
    assert result.decision.action == "promote"
    assert "minimum effect (-0.01)" in page
    assert "fixed-horizon: valid only at one look" in page and "Fixed-horizon intervals are valid only at the planned look" in page
    assert "(lower is better)" in page


def test_chart_needs_two_looks_and_says_why():
    assert interval_chart([], threshold=0.0, band_label="b", aria_label="a").svg == ""
    one = interval_chart([(START, 0.1, 0.0, 0.2)], threshold=0.0, band_label="b", aria_label="a")
    assert one.svg == "" and "Only one look so far" in one.note and "[0, 0.2]" in one.note


def test_chart_clips_unbounded_and_unknown_bounds_and_says_so():
    points = [(START, 0.1, -math.inf, math.inf), (START + timedelta(minutes=10), 0.05, math.nan, 0.2), (START + timedelta(minutes=20), 0.04, 0.01, 0.07)]
    chart = interval_chart(points, threshold=0.0, band_label="b", aria_label="a")
    numbers = re.findall(r'\s(?:x|y|x1|x2|y1|y2|cx|cy)="([^"]+)"', chart.svg) + " ".join(re.findall(r'points="([^"]+)"', chart.svg)).replace(",", " ").split()
    assert numbers and all(math.isfinite(float(v)) for v in numbers)
    assert "At 2 of 3 looks the interval reaches beyond the chart" in chart.note


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (timedelta(hours=6), ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]),
        (timedelta(days=3), ["12:00", "Nov 29", "12:00", "Nov 30", "12:00", "Dec 01"]),
        (timedelta(days=20), ["Dec 03", "Dec 10", "Dec 17"]),
        (timedelta(seconds=40), ["09:00:00", "09:00:40"]),
    ],
)
def test_chart_time_axis_reads_as_clock_times_or_dates(span, labels):
    points = [(START + span * k / 10, 0.05, 0.0, 0.1) for k in range(11)]
    chart = interval_chart(points, threshold=0.0, band_label="b", aria_label="a")
    ticks = re.findall(r'font-size="11" fill="#4b5563">([^<]+)</text>', chart.svg)
    axis_titles = ("look time", "effect (challenger - control)")
    assert [t for t in ticks if not re.fullmatch(r"[\u2212\d.]+", t) and not t.startswith(axis_titles)] == labels


def test_write_report_writes_both_files_and_returns_the_metrics(results, tmp_path: Path):
    result = results["rollback"]
    applied = Applied("rolled-back", {"champion": 100, "challenger": 0}, notes=["all traffic back to 'champion'"])
    html_path, markdown_path = tmp_path / "out" / "report.html", tmp_path / "out" / "summary.md"
    returned = write_report(result, applied, html_path=html_path, markdown_path=markdown_path)
    assert returned == metrics(result)
    assert html_path.read_text(encoding="utf-8") == render_html(result, applied)
    assert markdown_path.read_text(encoding="utf-8") == render_markdown(result, applied)
    assert sorted(p.name for p in html_path.parent.iterdir()) == ["report.html", "summary.md"]  # no temporaries left
