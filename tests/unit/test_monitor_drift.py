"""The drift part of the monitor: same tests, scores and verdicts as Evidently, real drift found, no false alarms.

Evidently 0.7's ``Report([DataDriftPreset()])`` on the full data is the reference
implementation (docs/monitor-research.md, sections 1-2). Our side never sees the full
data: the reference is a profile built in batches, the current data a sketch fed in
batches, so every agreement below also checks that profiling and sketching lose nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components.monitor.current import ColumnSketch, sketch_table
from kfp_mlops.components.monitor.drift import DEFAULT_THRESHOLDS, P_VALUE_METHODS, column_drift, drift_columns
from kfp_mlops.components.monitor.profile import ColumnProfile, profile_column
from kfp_mlops.components.monitor.results import CATEGORICAL, NUMERIC, ColumnDrift
from tests.unit import monitor_data as data

# Evidently's statistics of NaN/inf, chi-square's inf, and its dependencies' deprecations.
pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

WASSERSTEIN_TOLERANCE = 1e-4  # our Wasserstein comes from per-bin sums: near-exact, not exact


def assert_agrees(ours: ColumnDrift, theirs: data.EvidentlyColumn, where: str) -> None:
    """Same method, same score (exact tests to 1e-9), same verdict."""
    assert ours.method == theirs.method, f"{where}: we chose {ours.method}, Evidently {theirs.method}"
    if ours.method == "wasserstein":
        assert abs(ours.score - theirs.score) <= WASSERSTEIN_TOLERANCE, f"{where}: {ours.score!r} vs Evidently {theirs.score!r}"
        if abs(theirs.score - DEFAULT_THRESHOLDS["wasserstein"]) <= WASSERSTEIN_TOLERANCE:
            return  # within our tolerance of the threshold either verdict is right
    elif ours.method in P_VALUE_METHODS:
        # Evidently's Z p-value is 2 * (1 - cdf(|z|)): below ~1e-16 it rounds to 0, where ours (2 * sf) stays exact.
        floor = 1e-15 if ours.method == "z" else 1e-300
        assert math.isclose(ours.score, theirs.score, rel_tol=1e-9, abs_tol=floor), f"{where}: p {ours.score!r} vs Evidently {theirs.score!r}"
    else:
        assert abs(ours.score - theirs.score) <= 1e-9, f"{where}: JS {ours.score!r} vs Evidently {theirs.score!r}"
    assert ours.drifted == theirs.drifted, f"{where}: drifted {ours.drifted} vs Evidently {theirs.drifted} (score {ours.score})"


# Which branch of Evidently's choice each synthetic column should take: (small reference, large reference).
EXPECTED_METHODS = {
    "wide": ("ks", "wasserstein"),
    "ties": ("ks", "wasserstein"),
    "nanoseconds": ("ks", "wasserstein"),
    "five": ("chisquare_evidently", "jensenshannon"),
    "two": ("z", "jensenshannon"),
    "code": ("chisquare_evidently", "jensenshannon"),
    "code_pair": ("z", "jensenshannon"),
    "city": ("chisquare_evidently", "jensenshannon"),
    "flag": ("z", "jensenshannon"),
    "grade": ("chisquare_evidently", "jensenshannon"),
}

# (reference rows, current rows, shift, unseen values): references both sides of 1000 values,
# currents both sides of scipy's exact/asymptotic K-S switch at 10000.
GRID = [
    (300, 500, 0.15, False),
    (300, 10_000, 0.05, True),
    (1000, 10_001, 0.05, False),
    (300, 20_000, 0.03, True),
    (1010, 800, 0.1, False),  # 1010 rows, but "wide" keeps < 1000 values after NaN/inf: K-S there, distances elsewhere
    (1001, 3000, 0.1, True),
    (5000, 20_000, 0.08, False),
]


@pytest.mark.parametrize(("n_reference", "n_current", "shift", "unseen"), GRID, ids=[f"{r}x{c}{'-unseen' if u else ''}" for r, c, _, u in GRID])
def test_synthetic_columns_agree_with_evidently(n_reference, n_current, shift, unseen):
    rng = np.random.default_rng(n_reference * 7 + n_current)
    reference = data.synthetic_frame(rng, n_reference)
    current = data.synthetic_frame(rng, n_current, shift=shift, unseen=unseen)
    theirs = data.evidently_drift(reference, current, data.SYNTHETIC_KINDS)
    ours = data.our_drift(reference, current, data.SYNTHETIC_KINDS, batches=3)
    for name in data.SYNTHETIC_KINDS:
        assert_agrees(ours[name], theirs[name], f"{n_reference}x{n_current} {name}")
    for name, (small, large) in EXPECTED_METHODS.items():
        expected = small if ours[name].n_reference <= 1000 else large
        if unseen and name == "five":  # the new sixth value makes it a continuous column for Evidently
            expected = "ks" if expected == "chisquare_evidently" else "wasserstein"
        assert ours[name].method == expected, name
    assert ours["wide"].n_reference < n_reference, "NaN and inf are not values"
    if n_reference == 1010:  # the cleaned count, not the row count, picks the test
        assert (ours["wide"].method, ours["ties"].method) == ("ks", "wasserstein")
    if unseen:
        assert ours["city"].drifted and "never had" in ours["city"].note


@pytest.mark.parametrize("name", sorted(data.REAL_SPLITS))
def test_real_tables_split_by_an_attribute_agree_with_evidently(name, tmp_path):
    reference, current, kinds = data.REAL_SPLITS[name]()
    profiles = data.profiles_via_parquet(reference, kinds, tmp_path / "reference.parquet", batch_rows=64)
    theirs = data.evidently_drift(reference, current, kinds)
    ours = data.our_drift(reference, current, kinds, profiles=profiles, batches=4)
    for column in kinds:
        assert_agrees(ours[column], theirs[column], f"{name} {column}")
    drifted = {c for c, d in ours.items() if d.drifted}
    if name == "penguins_by_year":
        assert drifted == set(), "the same colonies measured in other years: no drift"
    else:
        assert drifted, "a split by species, origin, class, sex or year shows real drift"


def test_huge_magnitudes_beyond_the_reference_range_agree_with_evidently():
    """Epoch nanoseconds are past 2**53, where x - 1.0 == x: values below the reference minimum must stay below it."""
    rng = np.random.default_rng(5)
    base = 1.6e18 + np.round(rng.uniform(0, 1, 400) * 1e9)
    reference = pd.DataFrame({"t": base})
    kinds = {"t": NUMERIC}
    for current_values in (np.concatenate([np.full(100, 1.6e18 - 5e9), base]), np.concatenate([base, np.full(100, 1.6e18 + 5e9)])):
        current = pd.DataFrame({"t": current_values})
        assert_agrees(data.our_drift(reference, current, kinds)["t"], data.evidently_drift(reference, current, kinds)["t"], "nanoseconds")


def test_tied_numbers_get_the_exact_wasserstein_distance():
    """Counts, ratings, rounded amounts: when every current value is a reference value (or outside
    the reference range), each reference value is a bin edge and the distance is exact, rare values included."""
    rng = np.random.default_rng(12)
    reference = pd.DataFrame({"rounded": np.round(rng.normal(0, 2, 3000)), "count": rng.poisson(4, 3000).astype(float)})
    current = pd.DataFrame({"rounded": np.round(rng.normal(0.3, 2.2, 2000)), "count": rng.poisson(4.5, 2000).astype(float)})
    for name in reference:
        inside = current[name].between(reference[name].min(), reference[name].max())
        current[name] = current[name].where(current[name].isin(set(reference[name])) | ~inside)
    # A value the reference has once, right where F_ref - F_cur changes sign: no interpolation may guess there.
    # (This column is shorter; pandas pads it with NaN, which both sides drop.)
    levels = np.array([0, 1, 2, 3, 5.013, 10, 11, 12])
    reference = pd.concat([reference, pd.DataFrame({"rare_level": np.repeat(levels, [300, 300, 300, 101, 1, 300, 300, 400])})], axis=1)
    current = pd.concat([current, pd.DataFrame({"rare_level": np.repeat(levels, [290, 300, 300, 100, 20, 290, 300, 400])})], axis=1)
    kinds = {"rounded": NUMERIC, "count": NUMERIC, "rare_level": NUMERIC}
    theirs, ours = data.evidently_drift(reference, current, kinds), data.our_drift(reference, current, kinds)
    for name in kinds:
        assert ours[name].method == "wasserstein"
        assert abs(ours[name].score - theirs[name].score) <= 1e-12, name


def _sketch_fields(sketch: ColumnSketch) -> dict:
    return {f.name: getattr(sketch, f.name) for f in dataclasses.fields(sketch) if f.name != "profile"}


@pytest.mark.parametrize("n_reference", [800, 3000])
def test_merging_two_halves_equals_one_pass(n_reference):
    rng = np.random.default_rng(n_reference)
    kinds = dict(data.SYNTHETIC_KINDS, overflow=NUMERIC)
    reference = data.synthetic_frame(rng, n_reference).assign(overflow=rng.integers(0, 3, n_reference).astype(float))
    current = data.synthetic_frame(rng, 2001, shift=0.1, unseen=True).assign(overflow=rng.normal(size=2001))  # many new values
    profiles = data.profiles_of(reference, kinds, batch_rows=250)
    whole = data.sketches_of(profiles, current, batch_rows=700)
    first = data.sketches_of(profiles, current.iloc[:900], batch_rows=300)
    second = data.sketches_of(profiles, current.iloc[900:], batch_rows=500)
    for name in kinds:
        first[name].merge(second[name])
        merged, one_pass = _sketch_fields(first[name]), _sketch_fields(whole[name])
        for field, value in one_pass.items():
            if field == "unseen" and one_pass["unseen_overflow"]:
                continue  # past the tracking cap, which new values were named depends on the batch order
            if field == "bin_sums":
                np.testing.assert_allclose(merged[field], value, rtol=1e-12, atol=1e-9, err_msg=f"{name}.{field}")
            elif isinstance(value, np.ndarray):
                np.testing.assert_array_equal(merged[field], value, err_msg=f"{name}.{field}")
            else:
                assert merged[field] == value, f"{name}.{field}"
        a, b = column_drift(profiles[name], first[name]), column_drift(profiles[name], whole[name])
        assert (a.method, a.drifted, a.note) == (b.method, b.drifted, b.note), name
        # Sums added in another order round differently; at 1.6e18 that shows in the 11th digit.
        assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12), name
    assert whole["overflow"].unseen_overflow and first["overflow"].unseen_overflow


def test_half_a_standard_deviation_and_a_new_category_are_flagged_and_named():
    reference, current = data.known_drift_frames(np.random.default_rng(17), 5000, 5000, new_share=0.15)
    found = data.our_drift(reference, current, data.KNOWN_KINDS)
    assert sorted(c for c, d in found.items() if d.drifted) == ["income", "segment"]
    income, segment = found["income"], found["segment"]
    assert income.method == "wasserstein" and income.score >= 0.1
    assert income.score == pytest.approx(0.5, abs=0.05), "a shift of 0.5 sd is a normed Wasserstein of 0.5"
    assert segment.method == "jensenshannon" and segment.score >= 0.1 and re.search(r"in 1 categor.* the reference never had", segment.note)
    for name in ("age", "items", "channel"):
        assert found[name].score < 0.05, f"{name} did not change"


def test_small_reference_flags_the_same_changes_with_p_values():
    reference, current = data.known_drift_frames(np.random.default_rng(18), 500, 500, new_share=0.02)
    found = data.our_drift(reference, current, data.KNOWN_KINDS)
    assert found["income"].method == "ks" and found["income"].score < 1e-6 and found["income"].drifted
    # Evidently's chi-square: any category the reference lacks makes the statistic infinite.
    assert found["segment"].method == "chisquare_evidently" and found["segment"].score == 0.0 and found["segment"].drifted
    assert "never had" in found["segment"].note
    # The two-sample default weighs the evidence: 2% new rows in 500 is still clear, but not infinite.
    calibrated = data.our_drift(reference, current, data.KNOWN_KINDS, evidently_parity=False)["segment"]
    assert calibrated.method == "chisquare" and 0 < calibrated.score < 0.05 and calibrated.drifted


def test_one_new_row_in_a_hundred_is_not_drift_unless_evidently_parity_is_asked_for():
    reference = pd.DataFrame({"c": ["a", "b", "c"] * 133})
    current = pd.DataFrame({"c": ["a", "b", "c"] * 33 + ["z"]})  # the same shares, and one new value
    assert not data.our_drift(reference, current, {"c": CATEGORICAL}, evidently_parity=False)["c"].drifted
    assert data.our_drift(reference, current, {"c": CATEGORICAL})["c"].drifted


# No false alarms: random halves of one table, per column type.
LEVELS = {"four_numbers": 4, "categories": 6}
ALPHA = 0.05
MARGIN = 3 * math.sqrt(ALPHA * (1 - ALPHA) / data.TRIALS)


@pytest.mark.parametrize(("column_type", "method"), [("continuous", "ks"), ("binary_number", "z"), ("booleans", "z")])
def test_halves_of_one_table_drift_at_most_at_the_test_level(column_type, method):
    found = data.halves_verdicts(column_type, data.halves(column_type, 500, seed=len(column_type)))
    rate = sum(d.drifted for d in found) / data.TRIALS
    print(f"false alarms, {column_type} ({method}, 500 vs 500, {data.TRIALS} halves): {rate:.3f}")
    assert {d.method for d in found} == {method}
    assert rate <= ALPHA + MARGIN
    # A level-0.05 test silent in 200 null trials (chance 0.95**200 = 3e-5) is not testing anything.
    assert rate > 0


@pytest.mark.parametrize("column_type", sorted(LEVELS))
def test_the_default_two_sample_chi_square_on_halves_drifts_at_most_at_the_test_level(column_type):
    found = data.halves_verdicts(column_type, data.halves(column_type, 500, seed=len(column_type)))
    rate = sum(d.drifted for d in found) / data.TRIALS
    print(f"false alarms, {column_type} (two-sample chisquare, 500 vs 500, {data.TRIALS} halves): {rate:.3f}")
    assert {d.method for d in found} == {"chisquare"}
    assert 0 < rate <= ALPHA + MARGIN


@pytest.mark.parametrize("column_type", sorted(LEVELS))
def test_chi_square_on_halves_flags_as_often_as_evidentlys_goodness_of_fit_predicts(column_type):
    """Evidently's chi-square takes the reference shares as exact (f_exp = ref_count * n_cur / n_ref).

    They are a sample too, so with equal halves the statistic is about 2 * chi2(k - 1), and
    far more than 5% of no-drift halves are flagged. We reproduce Evidently, verdict for
    verdict; this test pins that known rate so a change of test is a deliberate one.
    """
    halves = data.halves(column_type, 500, seed=len(column_type))
    found = data.halves_verdicts(column_type, halves, evidently_parity=True)
    # Evidently on the first 100 splits at once, one column per split (its per-column cost is what is slow).
    trials = {f"trial_{i}": pair for i, pair in enumerate(halves[:100])}
    kinds = {name: data.POOLS[column_type][0] for name in trials}
    theirs = data.evidently_drift(pd.DataFrame({n: p[0] for n, p in trials.items()}), pd.DataFrame({n: p[1] for n, p in trials.items()}), kinds)
    assert [theirs[name].drifted for name in kinds] == [d.drifted for d in found[:100]]
    assert {d.method for d in found} == {"chisquare_evidently"}
    rate = sum(d.drifted for d in found) / data.TRIALS
    df = LEVELS[column_type] - 1
    predicted = stats.chi2.sf(stats.chi2.isf(ALPHA, df) / 2, df)
    print(f"false alarms, {column_type} (chisquare, 500 vs 500, {data.TRIALS} halves): {rate:.3f}, predicted {predicted:.3f}")
    assert abs(rate - predicted) <= 3 * math.sqrt(predicted * (1 - predicted) / data.TRIALS)
    assert rate > ALPHA + MARGIN


@pytest.mark.parametrize("column_type", sorted(data.POOLS))
def test_halves_of_2000_rows_almost_never_drift_with_distance_tests(column_type):
    found = data.halves_verdicts(column_type, data.halves(column_type, 2000, seed=len(column_type) + 100))
    rate = sum(d.drifted for d in found) / data.TRIALS
    largest = max(d.score for d in found)
    methods = {d.method for d in found}
    print(f"false alarms, {column_type} ({methods}, 2000 vs 2000, {data.TRIALS} halves): {rate:.3f}, largest score {largest:.4f}")
    assert methods == {"wasserstein" if column_type == "continuous" else "jensenshannon"}
    # Skewed numbers put about 0.25% of 2000-row halves past 0.1 (10,000 halves of one pool, offline).
    assert rate <= 0.005 + 3 * math.sqrt(0.005 * 0.995 / data.TRIALS)
    if column_type != "continuous":
        # For halves of n rows each, JS^2 is about chi2(k - 1) / (4 n): 0.07 is chi2 near 39, p < 1e-6.
        assert largest < 0.07


def test_halves_of_5000_rows_never_drift_with_wasserstein():
    """Offline, the largest normed Wasserstein of 2,000 such halves was 0.067."""
    found = data.halves_verdicts("continuous", data.halves("continuous", 5000, seed=7)[:50])
    assert max(d.score for d in found) < 0.1


# Edge cases.


def _profile(values, kind: str, name: str = "x") -> ColumnProfile:
    return profile_column(name, kind, [pa.array(values)])


def _drift(profile: ColumnProfile, *batches, method: str = "", threshold: float | None = None) -> ColumnDrift:
    sketch = ColumnSketch(profile)
    for batch in batches:
        sketch.add(pa.array(batch, from_pandas=False))
    return column_drift(profile, sketch, method=method, threshold=threshold)


@pytest.mark.parametrize("n_reference", [400, 2000])
def test_a_current_column_without_values_gives_no_verdict(n_reference):
    rng = np.random.default_rng(0)
    numbers = _profile(rng.normal(size=n_reference), NUMERIC)
    categories = _profile(rng.choice(["a", "b", "c"], n_reference), CATEGORICAL)
    for profile, empty in ((numbers, [None] * 50), (numbers, [math.nan, math.inf, -math.inf]), (categories, [None] * 50)):
        result = _drift(profile, empty, [])
        assert not result.drifted and math.isnan(result.score) and result.n_current == 0
        assert "no values in the current data" in result.note
    sketch = ColumnSketch(numbers)
    sketch.add(pa.array([math.nan, math.inf, 1.0, None], from_pandas=False))
    assert (sketch.count, sketch.nonfinite, sketch.null_count) == (1, 2, 3)


@pytest.mark.parametrize("n_reference", [400, 2000])
def test_constant_and_only_unseen_columns_agree_with_evidently(n_reference):
    rng = np.random.default_rng(n_reference)
    n_current = 700
    reference = pd.DataFrame(
        {
            "same_constant": np.full(n_reference, 5.0),
            "moved_constant": np.full(n_reference, 5.0),
            "constant_then_spread": np.full(n_reference, 5.0),
            "only_unseen": rng.choice(np.array(["a", "b"], dtype=object), n_reference),
            "one_category_replaced": np.full(n_reference, "a", dtype=object),
        }
    )
    current = pd.DataFrame(
        {
            "same_constant": np.full(n_current, 5.0),
            "moved_constant": np.full(n_current, 7.0),
            "constant_then_spread": rng.normal(5.0, 1.0, n_current),  # the std of the reference is 0: Evidently norms by 0.001
            "only_unseen": rng.choice(np.array(["y", "z"], dtype=object), n_current),
            "one_category_replaced": np.full(n_current, "z", dtype=object),
        }
    )
    kinds = {c: NUMERIC for c in ("same_constant", "moved_constant", "constant_then_spread")}
    kinds.update(only_unseen=CATEGORICAL, one_category_replaced=CATEGORICAL)
    theirs = data.evidently_drift(reference, current, kinds)
    ours = data.our_drift(reference, current, kinds)
    for name in kinds:
        assert_agrees(ours[name], theirs[name], name)
    assert [name for name in kinds if ours[name].drifted] == list(kinds)[1:]
    assert "never had" in ours["only_unseen"].note and "never had" in ours["one_category_replaced"].note


def test_forced_methods_and_thresholds():
    rng = np.random.default_rng(3)
    reference = {"x": rng.normal(size=3000), "y": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)}
    current = {"x": rng.normal(0.3, 1.0, 2000), "y": rng.normal(size=2000), "c": np.repeat(["a", "b"], 1000)}
    profiles = {name: _profile(values, CATEGORICAL if name == "c" else NUMERIC, name) for name, values in reference.items()}
    batches = [
        pa.record_batch({name: values[:1000] for name, values in current.items()}),
        pa.record_batch({name: values[1000:] for name, values in current.items()}),
    ]
    sketches = sketch_table(profiles, batches)
    found = {d.column: d for d in drift_columns(profiles, sketches, {"x": ("ks", None), "y": ("ks", None), "c": ("z", 0.01)})}
    # K-S on a reference without raw values runs on the profile's fine bins: approximate, but the same verdict.
    for name in ("x", "y"):
        full = stats.ks_2samp(reference[name], current[name]).pvalue
        assert found[name].method == "ks" and "approximate" in found[name].note
        assert found[name].drifted == (full <= 0.05) and 0.5 < found[name].score / full < 2, (name, found[name].score, full)
    assert found["c"].method == "z" and found["c"].threshold == 0.01
    loose = drift_columns(profiles, sketches, {"x": ("wasserstein", 0.5)})[0]
    assert (loose.method, loose.threshold, loose.drifted) == ("wasserstein", 0.5, False) and loose.score == pytest.approx(0.3, abs=0.06)
    with pytest.raises(ValueError, match="'x'"):
        drift_columns(profiles, sketches, {"x": ("chisquare", None)})


@pytest.mark.parametrize("n_reference", [600, 3000])
def test_profile_json_round_trip_gives_identical_verdicts(n_reference):
    rng = np.random.default_rng(n_reference)
    reference = data.synthetic_frame(rng, n_reference)
    current = data.synthetic_frame(rng, 1500, shift=0.1, unseen=True)
    profiles = data.profiles_of(reference, data.SYNTHETIC_KINDS, batch_rows=400)
    stored = json.loads(json.dumps({name: p.to_dict() for name, p in profiles.items()}))
    loaded = {name: ColumnProfile.from_dict(d, "profile.json") for name, d in stored.items()}
    before = data.our_drift(reference, current, data.SYNTHETIC_KINDS, profiles=profiles)
    after = data.our_drift(reference, current, data.SYNTHETIC_KINDS, profiles=loaded)
    for name in data.SYNTHETIC_KINDS:
        assert (after[name].method, after[name].score, after[name].drifted, after[name].note) == (
            before[name].method, before[name].score, before[name].drifted, before[name].note,
        ), name  # fmt: skip


def _valid_profiles() -> dict[str, dict]:
    rng = np.random.default_rng(9)
    numbers = rng.normal(size=2000)
    return {
        NUMERIC: _profile(numbers, NUMERIC).to_dict(),
        "small": _profile(numbers[:300], NUMERIC).to_dict(),
        CATEGORICAL: _profile(rng.choice(["a", "b", "c"], 2000), CATEGORICAL).to_dict(),
    }


HOSTILE = {
    "bins_do_not_add_up": (NUMERIC, lambda d: d["bin_counts"].__setitem__(0, d["bin_counts"][0] + 1), "add up"),
    "bins_unlike_edges": (NUMERIC, lambda d: d["bin_sums"].pop(), "do not match their edges"),
    "unknown_kind": (NUMERIC, lambda d: d.update(kind="ordinal"), "unknown kind"),
    "count_not_a_number": (NUMERIC, lambda d: d.update(count="many"), "malformed"),
    "edges_not_numbers": (NUMERIC, lambda d: d.update(edges=["low", "high"]), "malformed"),
    "edge_not_finite": (NUMERIC, lambda d: d["edges"].__setitem__(5, math.nan), "not finite"),
    "std_missing": (NUMERIC, lambda d: d.update(std=None), "not finite"),
    "std_negative": (NUMERIC, lambda d: d.update(std=-1.0), "negative"),
    "raw_not_numbers": ("small", lambda d: d["raw"].__setitem__(3, "oops"), "not numbers"),
    "raw_short": ("small", lambda d: d["raw"].pop(), "raw values do not match"),
    "counts_do_not_add_up": (CATEGORICAL, lambda d: d["counts"].update(a=d["counts"]["a"] + 1), "do not add up"),
    "negative_counts": (CATEGORICAL, lambda d: d["counts"].update(a=d["counts"]["a"] + d["counts"]["b"] + 5, b=-5), "negative"),
    "counts_a_list": (CATEGORICAL, lambda d: d.update(counts=[1, 2]), "malformed"),
    "name_missing": (CATEGORICAL, lambda d: d.pop("name"), "malformed"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_profiles_are_refused(case):
    which, spoil, message = HOSTILE[case]
    profile = copy.deepcopy(_valid_profiles()[which])
    ColumnProfile.from_dict(json.loads(json.dumps(profile)), "profile.json")  # valid before spoiling
    spoil(profile)
    with pytest.raises(DataError, match=message) as refused:
        ColumnProfile.from_dict(json.loads(json.dumps(profile)), "profile.json")
    assert refused.value.where.startswith("profile.json")
    with pytest.raises(DataError, match="not a JSON object"):
        ColumnProfile.from_dict([profile], "profile.json")
