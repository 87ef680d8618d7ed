"""Per-column drift from a reference profile and a current sketch, with Evidently's tests and verdicts.

Evidently 0.7's ``DataDriftPreset`` picks a test per column by type, reference size and
the distinct values of reference and current together (docs/monitor-research.md 1.1);
``default_method`` makes the same choice and each test below reproduces its score:
K-S, chi-square and Z exactly, Jensen-Shannon on value counts exactly, the normed
Wasserstein distance from per-bin sums to about 1e-5. A user may force a method and a
threshold per column.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.spatial import distance

from kfp_mlops.components.monitor.current import ColumnSketch
from kfp_mlops.components.monitor.profile import FEW_VALUES, RAW_LIMIT, ColumnProfile
from kfp_mlops.components.monitor.results import NUMERIC, ColumnDrift, Histogram

METHODS = ("ks", "chisquare", "chisquare_evidently", "z", "wasserstein", "jensenshannon")
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "chisquare_evidently": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1}
P_VALUE_METHODS = ("ks", "chisquare", "chisquare_evidently", "z")
_KS_EXACT_LIMIT = 10_000  # scipy's ks_2samp 'auto' is exact up to this many values per side
_DISPLAY_BINS = 20
_DISPLAY_CATEGORIES = 12


def default_method(profile: ColumnProfile, sketch: ColumnSketch, *, evidently_parity: bool = False) -> str:
    """Evidently's default test for this column (legacy stattests registry, _get_default_stattest).

    Where Evidently picks chi-square, its statistic takes the reference shares as exact
    (expected = reference count x n_cur / n_ref): on two halves of the same data it is about
    (1 + n_cur/n_ref) times a chi-square variable, so it flags ~30% of equal halves at alpha
    0.05 and any category the reference lacks, however rare. The default is the two-sample
    test on the same counts (calibrated); ``evidently_parity`` gives Evidently's exact verdicts.
    """
    n_values = sketch.distinct_union()
    if profile.count <= RAW_LIMIT:
        if profile.kind == NUMERIC and n_values > FEW_VALUES:
            return "ks"
        if n_values > 2:
            return "chisquare_evidently" if evidently_parity else "chisquare"
        return "z"
    if profile.kind == NUMERIC and n_values > FEW_VALUES:
        return "wasserstein"
    return "jensenshannon"


def is_drift(method: str, score: float, threshold: float) -> bool:
    """Evidently's comparison: p <= threshold for K-S, p < threshold for chi-square and Z, distance >= threshold."""
    if method == "ks":
        return score <= threshold
    if method in P_VALUE_METHODS:
        return score < threshold
    return score >= threshold


def column_drift(profile: ColumnProfile, sketch: ColumnSketch, *, method: str = "", threshold: float | None = None, evidently_parity: bool = False) -> ColumnDrift:
    """The drift verdict of one column; no values on either side is no verdict (not drifted, with a note)."""
    chosen = method or default_method(profile, sketch, evidently_parity=evidently_parity)
    limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else threshold
    common = dict(column=profile.name, kind=profile.kind, method=chosen, threshold=limit, n_reference=profile.count, n_current=sketch.count)
    if not profile.count or not sketch.count:
        side = "reference" if not profile.count else "current"
        return ColumnDrift(score=math.nan, drifted=False, note=f"no values in the {side} data to compare", **common)
    score, note = _score(chosen, profile, sketch)
    if sketch.unseen and profile.kind != NUMERIC:
        note = _join(note, f"{sum(sketch.unseen.values())} values in {len(sketch.unseen)} categories the reference never had")
    return ColumnDrift(score=score, drifted=is_drift(chosen, score, limit), note=note, histogram=histogram(profile, sketch), **common)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _score(method: str, profile: ColumnProfile, sketch: ColumnSketch) -> tuple[float, str]:
    if method == "ks":
        return ks_p_value(profile, sketch)
    if method == "wasserstein":
        return wasserstein_normed(profile, sketch), ""
    counts = _value_counts(profile, sketch)
    if counts is None:
        if method == "jensenshannon" and profile.kind == NUMERIC:
            return _binned_jensen_shannon(profile, sketch), "binned on the profile's fine bins (Evidently uses Sturges bins)"
        raise ValueError(f"{method} needs value counts, and column {profile.name!r} has more than {FEW_VALUES} distinct values")
    reference, current, unseen = counts
    if method == "chisquare":
        table = np.array([np.append(reference, 0.0), np.append(current, unseen)])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 1.0, ""  # one value on both sides
        return float(stats.chi2_contingency(table, correction=False).pvalue), ""
    if method == "chisquare_evidently":
        if unseen:
            return 0.0, "values the reference never had make the chi-square statistic infinite"
        expected = reference * (current.sum() / reference.sum())
        return float(stats.chisquare(current, expected).pvalue), ""
    if method == "z":
        return _z_p_value(reference, np.append(current, unseen)), ""
    return float(distance.jensenshannon(np.append(reference, 0.0) / reference.sum(), np.append(current, unseen) / (current.sum() + unseen))), ""


def _value_counts(profile: ColumnProfile, sketch: ColumnSketch) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Reference and current counts over the reference values, and the current count of unseen values."""
    if not profile.counts or sketch.unseen_overflow:
        return None
    keys = list(profile.counts)
    reference = np.array([profile.counts[k] for k in keys], dtype=float)
    current = np.array([sketch.counts.get(k, 0) for k in keys], dtype=float)
    return reference, current, float(sum(sketch.unseen.values()))


def _z_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """Pooled two-proportion Z over the union of at most two values (the reference's missing second value counts 0)."""
    reference = np.pad(reference, (0, len(current) - len(reference)))
    present = (reference + current) > 0
    reference, current = reference[present], current[present]
    if len(reference) < 2:
        return 1.0  # both sides constant and equal
    # Share of "not the first value": which value is first does not change |z|.
    n1, n2 = reference.sum(), current.sum()
    p1, p2 = 1 - reference[0] / n1, 1 - current[0] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * stats.norm.sf(abs((p1 - p2) / spread)))


def ks_p_value(profile: ColumnProfile, sketch: ColumnSketch) -> tuple[float, str]:
    """Two-sample K-S p-value as scipy's ks_2samp(method='auto') gives it on the full data."""
    n1, n2 = profile.count, sketch.count
    if profile.raw:
        reference = np.asarray(profile.raw, dtype=float)
        points = sketch.points
        if max(n1, n2) <= _KS_EXACT_LIMIT:
            # Same D and sizes as the real sample: each bucket's count placed inside its bucket.
            return float(stats.ks_2samp(reference, _stand_in_sample(points, sketch.buckets)).pvalue), ""
        d = _ks_statistic_from_buckets(reference, points, sketch.buckets)
        return _ks_asymptotic(d, n1, n2), ""
    d = _ks_statistic_from_bins(profile, sketch)
    return _ks_asymptotic(d, n1, n2), "approximate: K-S on the profile's bins (the reference kept no raw values)"


def _stand_in_sample(points: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    # nextafter, not +-1: past 2**53 (epoch nanoseconds) u - 1.0 == u and the tails would merge into the ends.
    below, above = np.nextafter(points[0], -np.inf), np.nextafter(points[-1], np.inf)
    gaps = np.concatenate([[below], (points[:-1] + points[1:]) / 2, [above]])
    spots = np.empty(len(buckets))
    spots[0::2], spots[1::2] = gaps, points
    return np.repeat(spots, buckets)


def _ks_statistic_from_buckets(reference: np.ndarray, points: np.ndarray, buckets: np.ndarray) -> float:
    ref_at = np.searchsorted(np.sort(reference), points, side="right") / len(reference)  # F_ref(u_i)
    ref_before = np.concatenate([[0.0], ref_at[:-1]])  # F_ref just below u_i
    cum = np.cumsum(buckets) / buckets.sum()
    return float(max(np.abs(ref_at - cum[1::2]).max(), np.abs(ref_before - cum[0::2][:-1]).max()))


def _ks_statistic_from_bins(profile: ColumnProfile, sketch: ColumnSketch) -> float:
    ref = np.cumsum(profile.bin_counts) / profile.count
    cur = np.cumsum(sketch.bin_counts) / sketch.count
    return float(np.abs(ref - cur).max())


def _ks_asymptotic(d: float, n1: int, n2: int) -> float:
    big, small = max(n1, n2), min(n1, n2)
    return float(np.clip(stats.kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))


def wasserstein_normed(profile: ColumnProfile, sketch: ColumnSketch) -> float:
    """W1(reference, current) / max(std_ref, 0.001), from per-bin counts and sums.

    On a bin [a, b) the integral of F is exact from its count and sum; |F_ref - F_cur| is
    exact unless the difference changes sign inside the bin, where it is taken as linear.
    A side whose values in the bin all sit at a (tied data: every reference value is an
    edge when there are few) has F flat on [a, b), so its value right at a is known.
    """
    edges = np.asarray(profile.edges)
    n1, n2 = profile.count, sketch.count
    rc, rs = np.asarray(profile.bin_counts, float), np.asarray(profile.bin_sums)
    cc, cs = sketch.bin_counts.astype(float), sketch.bin_sums
    # Tails beyond the reference range: F_ref is 0 below it and 1 above it.
    total = (cc[0] * edges[0] - cs[0]) / n2 + ((cs[-1] - cc[-1] * edges[-1]) / n2 - (rs[-1] - rc[-1] * edges[-1]) / n1)
    if len(edges) > 1:
        a, b = edges[:-1], edges[1:]
        inner = slice(1, len(edges))
        ref_start, ref_end = np.cumsum(rc)[:-2] / n1, np.cumsum(rc)[1:-1] / n1  # F_ref just below a, just below b
        cur_start, cur_end = np.cumsum(cc)[:-2] / n2, np.cumsum(cc)[1:-1] / n2
        d_start, d_end = ref_start - cur_start, ref_end - cur_end
        signed = (b - a) * d_start + (rc[inner] * b - rs[inner]) / n1 - (cc[inner] * b - cs[inner]) / n2
        slack = 1e-9 * (b - a) + 1e-12 * np.abs(a)  # rounding of the sums, not a real offset from a
        ref_at_a = rs[inner] - rc[inner] * a <= rc[inner] * slack
        cur_at_a = cs[inner] - cc[inner] * a <= cc[inner] * slack
        d_at_a = np.where(ref_at_a, ref_end, ref_start) - np.where(cur_at_a, cur_end, cur_start)
        crosses = np.sign(d_at_a) * np.sign(d_end) < 0
        magnitude = np.abs(d_at_a) + np.abs(d_end)
        linear = np.divide((b - a) * (d_at_a**2 + d_end**2), 2 * magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
        total += float(np.where(crosses, linear, np.abs(signed)).sum())
    return float(total / max(profile.std, 0.001))


def _binned_jensen_shannon(profile: ColumnProfile, sketch: ColumnSketch) -> float:
    return float(distance.jensenshannon(np.asarray(profile.bin_counts, float) / profile.count, sketch.bin_counts / sketch.count))


def histogram(profile: ColumnProfile, sketch: ColumnSketch) -> Histogram:
    """Reference and current shares on a few readable bins (equal-width for numbers, top categories)."""
    if profile.kind == NUMERIC and profile.edges:
        return _numeric_histogram(profile, sketch)
    keys = sorted(set(profile.counts) | set(sketch.counts), key=lambda k: -(profile.counts.get(k, 0) / max(profile.count, 1) + sketch.counts.get(k, 0) / max(sketch.count, 1)))
    shown, rest = keys[:_DISPLAY_CATEGORIES], keys[_DISPLAY_CATEGORIES:]
    ref = [profile.counts.get(k, 0) / max(profile.count, 1) for k in shown]
    cur = [sketch.counts.get(k, 0) / max(sketch.count, 1) for k in shown]
    labels = [k or "(other)" for k in shown]
    if rest:
        labels.append("other")
        ref.append(sum(profile.counts.get(k, 0) for k in rest) / max(profile.count, 1))
        cur.append(sum(sketch.counts.get(k, 0) for k in rest) / max(sketch.count, 1))
    if sketch.unseen:
        labels.append("unseen")
        ref.append(0.0)
        cur.append(sum(sketch.unseen.values()) / max(sketch.count, 1))
    return Histogram(tuple(labels), tuple(ref), tuple(cur))


def _numeric_histogram(profile: ColumnProfile, sketch: ColumnSketch) -> Histogram:
    edges = np.asarray(profile.edges)
    display = np.linspace(edges[0], edges[-1], _DISPLAY_BINS + 1) if len(edges) > 1 else np.array([edges[0], edges[0]])
    shown = len(display) - 1
    # Fine bin 0 is below the reference; fine bin i >= 1 starts at edges[i-1] and goes to the
    # display bin holding that start (the last one is open above: it holds the maximum and beyond).
    slot = np.concatenate([[0], np.clip(np.searchsorted(display, edges, side="right"), 1, shown)])
    ref = np.bincount(slot, weights=np.asarray(profile.bin_counts, float), minlength=shown + 1) / profile.count
    cur = np.bincount(slot, weights=sketch.bin_counts.astype(float), minlength=shown + 1) / max(sketch.count, 1)
    labels = [f"< {display[0]:.4g}"] + [f"[{lo:.4g}, {hi:.4g})" for lo, hi in zip(display[:-2], display[1:-1])] + [f">= {display[-2]:.4g}"]
    if ref[0] == 0 and cur[0] == 0:
        labels, ref, cur = labels[1:], ref[1:], cur[1:]
    return Histogram(tuple(labels), tuple(ref.tolist()), tuple(cur.tolist()))


def drift_columns(
    profiles: dict[str, ColumnProfile], sketches: dict[str, ColumnSketch], overrides: dict[str, tuple[str, float | None]] | None = None, *, evidently_parity: bool = False
) -> list[ColumnDrift]:
    """Drift of every profiled column that the current data has, in profile order."""
    overrides = overrides or {}
    found = []
    for name, profile in profiles.items():
        if name in sketches:
            method, threshold = overrides.get(name, ("", None))
            found.append(column_drift(profile, sketches[name], method=method, threshold=threshold, evidently_parity=evidently_parity))
    return found
