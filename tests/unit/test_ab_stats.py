"""A/B statistics core: exact values against scipy, statsmodels, gbstats' published tests and hand-worked examples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from kfp_mlops.components.abtest.stats import group_sequential
from kfp_mlops.components.abtest.stats.estimate import (
    Estimate,
    difference,
    estimable,
    fixed_interval,
)
from kfp_mlops.components.abtest.stats.group_sequential import (
    obrien_fleming_bounds,
    obrien_fleming_spending,
)
from kfp_mlops.components.abtest.stats.moments import Moments
from kfp_mlops.components.abtest.stats.multiple import benjamini_hochberg, holm
from kfp_mlops.components.abtest.stats.power import (
    expected_duration_s,
    fixed_sample_size,
    proportion_sd,
    sequential_power,
    sequential_sample_size,
)
from kfp_mlops.components.abtest.stats.sequential import (
    mixture_half_width,
    mixture_interval,
    mixture_p_value,
)
from kfp_mlops.components.abtest.stats.srm import (
    srm_chi_square,
    srm_log_bayes_factor,
    srm_sequential,
)


def _arms(seed: int = 0, n_c: int = 40, n_t: int = 55):
    rng = np.random.default_rng(seed)
    return rng.normal(5.0, 2.0, n_c), rng.normal(5.8, 3.5, n_t)


# --- Moments -----------------------------------------------------------------------------


def test_moments_of_matches_numpy_and_partial_aggregates_add_up():
    rng = np.random.default_rng(1)
    y, d, x = rng.normal(3, 1, 100), rng.integers(1, 5, 100).astype(float), rng.normal(0, 1, 100)
    whole = Moments.of(y, denominators=d, covariate=x)
    assert whole.mean == pytest.approx(y.mean()) and whole.variance == pytest.approx(y.var(ddof=1))
    parts = Moments.of(y[:30], d[:30], x[:30]) + Moments.of(y[30:], d[30:], x[30:]).merged(Moments.of(y[:0], d[:0], x[:0]))
    for name in ("n", "sum", "sum_sq", "den_sum", "den_sum_sq", "num_den_sum", "x_sum", "x_sum_sq", "xy_sum"):
        assert getattr(parts, name) == pytest.approx(getattr(whole, name)), name


def test_moments_batch_shape_and_incomplete_groups():
    batch = Moments.of(np.arange(24.0).reshape(2, 3, 4))
    assert batch.mean.shape == (2, 3) and batch.mean[1, 2] == pytest.approx(np.arange(24.0)[20:].mean())
    with pytest.raises(ValueError, match="den_sum_sq, num_den_sum missing"):
        Moments(n=3, sum=1, sum_sq=1, den_sum=2)
    with pytest.raises(ValueError, match="x_sum"):
        Moments.of([1.0, 2.0]) + Moments.of([1.0, 2.0], covariate=[0.0, 1.0])


def test_moments_of_fewer_than_two_units_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(Moments(n=1, sum=2.0, sum_sq=4.0).variance)
        assert np.isnan(Moments(n=0, sum=0.0, sum_sq=0.0).mean)
        assert Moments(n=3, sum=3.0, sum_sq=3.0).variance == 0.0  # constant metric, clipped at 0


# --- Estimates ---------------------------------------------------------------------------


def test_welch_matches_scipy_statistic_p_value_and_interval():
    a, b = _arms()
    est = difference(Moments.of(a), Moments.of(b), kind="mean")
    reference = stats.ttest_ind_from_stats(b.mean(), b.std(ddof=1), b.size, a.mean(), a.std(ddof=1), a.size, equal_var=False)
    low, high, p = fixed_interval(est, 0.05)
    assert est.effect / est.standard_error == pytest.approx(reference.statistic, rel=1e-10)
    assert p == pytest.approx(reference.pvalue, rel=1e-10)
    interval = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (low, high) == pytest.approx((interval.low, interval.high), rel=1e-10)
    assert est.dof == pytest.approx(stats.ttest_ind(b, a, equal_var=False).df, rel=1e-10)
    one_low, one_high, one_p = fixed_interval(est, 0.05, "greater")
    assert one_p == pytest.approx(stats.ttest_ind(b, a, equal_var=False, alternative="greater").pvalue, rel=1e-10)
    assert np.isinf(one_high) and one_low > low


def test_two_proportion_z_by_hand():
    est = difference(Moments.binary(120, 2000), Moments.binary(150, 2100), kind="proportion")
    p_c, p_t = 120 / 2000, 150 / 2100
    se = np.sqrt(p_c * (1 - p_c) / 2000 + p_t * (1 - p_t) / 2100)
    low, high, p = fixed_interval(est, 0.05)
    assert est.effect == pytest.approx(p_t - p_c) and est.standard_error == pytest.approx(se)
    assert p == pytest.approx(2 * stats.norm.sf(abs(p_t - p_c) / se))
    assert (low, high) == pytest.approx((p_t - p_c - 1.959963984540054 * se, p_t - p_c + 1.959963984540054 * se))
    assert np.isinf(est.dof)
    _, upper, p_less = fixed_interval(est, 0.05, "less")
    assert p_less == pytest.approx(stats.norm.cdf((p_t - p_c) / se)) and upper == pytest.approx(p_t - p_c + 1.6448536269514722 * se)


def test_relative_lift_delta_method():
    est = difference(Moments.binary(120, 2000), Moments.binary(150, 2100), kind="proportion", relative=True)
    c, t = 0.06, 150 / 2100
    v_c, v_t = c * (1 - c) / 2000, t * (1 - t) / 2100
    assert est.effect == pytest.approx(t / c - 1)
    assert est.variance == pytest.approx(v_t / c**2 + t**2 * v_c / c**4)


def test_ratio_delta_method_matches_a_bootstrap():
    rng = np.random.default_rng(7)

    def users(n: int, rate: float):
        requests = rng.poisson(4.0, n) + 1.0
        return rng.binomial(requests.astype(int), rng.beta(rate * 20, (1 - rate) * 20, n)).astype(float), requests

    (y_c, d_c), (y_t, d_t) = users(1500, 0.10), users(1500, 0.12)
    est = difference(Moments.of(y_c, d_c), Moments.of(y_t, d_t), kind="ratio")
    assert est.effect == pytest.approx(y_t.sum() / d_t.sum() - y_c.sum() / d_c.sum())
    draws = []
    for _ in range(2000):
        i, j = rng.integers(0, 1500, 1500), rng.integers(0, 1500, 1500)
        draws.append(y_t[j].sum() / d_t[j].sum() - y_c[i].sum() / d_c[i].sum())
    assert est.variance == pytest.approx(np.var(draws), rel=0.12)
    relative = difference(Moments.of(y_c, d_c), Moments.of(y_t, d_t), kind="ratio", relative=True)
    assert relative.effect == pytest.approx((y_t.sum() / d_t.sum()) / (y_c.sum() / d_c.sum()) - 1)


def test_cuped_equals_ancova_and_needs_its_covariate():
    rng = np.random.default_rng(3)
    x_c, x_t = rng.normal(10, 2, 300), rng.normal(10, 2, 340)
    y_c, y_t = 1.5 * x_c + rng.normal(0, 1, 300), 1.5 * x_t + 0.4 + rng.normal(0, 1, 340)
    est = difference(Moments.of(y_c, covariate=x_c), Moments.of(y_t, covariate=x_t), kind="mean", cuped=True)
    # ANCOVA y ~ 1 + treated + x: its treated coefficient is CUPED with the within-arm pooled slope.
    design = np.column_stack([np.ones(640), np.r_[np.zeros(300), np.ones(340)], np.r_[x_c, x_t]])
    coefficients = np.linalg.lstsq(design, np.r_[y_c, y_t], rcond=None)[0]
    assert est.effect == pytest.approx(coefficients[1], rel=1e-10)
    plain = difference(Moments.of(y_c), Moments.of(y_t), kind="mean")
    assert est.variance < 0.5 * plain.variance
    with pytest.raises(ValueError, match="control arm's x_sum, x_sum_sq, xy_sum"):
        difference(Moments.of(y_c), Moments.of(y_t, covariate=x_t), kind="mean", cuped=True)
    with pytest.raises(ValueError, match="not ratio"):
        difference(Moments.of(y_c, x_c, x_c), Moments.of(y_t, x_t, x_t), kind="ratio", cuped=True)
    with pytest.raises(ValueError, match="den_sum"):
        difference(Moments.of(y_c), Moments.of(y_t), kind="ratio")
    constant = difference(Moments.of(y_c, covariate=np.ones(300)), Moments.of(y_t, covariate=np.ones(340)), kind="mean", cuped=True)
    assert (constant.effect, constant.variance) == pytest.approx((plain.effect, plain.variance))


def test_degenerate_inputs_are_nan_and_not_estimable_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = [
            difference(Moments.of([1.0]), Moments.of([1.0, 2.0, 3.0]), kind="mean"),  # n < 2
            difference(Moments.binary(0, 500), Moments.binary(0, 500), kind="proportion"),  # no variance
            difference(Moments.binary(0, 500), Moments.binary(3, 500), kind="proportion", relative=True),  # zero baseline
            difference(Moments.of([2.0, 2.0]), Moments.of([2.0, 2.0, 2.0]), kind="mean"),
        ]
        for est in cases:
            assert np.isnan(est.effect) and np.isnan(est.variance) and not estimable(est)
            assert all(np.isnan(v) for v in fixed_interval(est, 0.05))
            assert all(np.isnan(v) for v in mixture_interval(est, 0.05)) and np.isnan(mixture_p_value(est))
    usable = difference(Moments.binary(0, 500), Moments.binary(3, 500), kind="proportion")
    assert estimable(usable) and usable.effect == pytest.approx(0.006)


def test_difference_is_vectorized_over_batch_dimensions():
    rng = np.random.default_rng(5)
    values_c, values_t = rng.normal(1, 1, (3, 4, 50)), rng.normal(1.2, 1, (3, 4, 60))
    batch = difference(Moments.of(values_c), Moments.of(values_t), kind="mean", relative=True)
    single = difference(Moments.of(values_c[2, 1]), Moments.of(values_t[2, 1]), kind="mean", relative=True)
    assert batch.effect.shape == (3, 4) and batch.n_total.shape == (3, 4)
    assert (batch.effect[2, 1], batch.variance[2, 1], batch.dof[2, 1]) == pytest.approx((single.effect, single.variance, single.dof))
    with pytest.raises(ValueError, match="kind"):
        difference(Moments.of(values_c), Moments.of(values_t), kind="median")


# --- Always-valid sequence: GrowthBook gbstats' published values -------------------------


def test_mixture_reproduces_gbstats_means():
    control, treatment = Moments(n=3000, sum=1396.87, sum_sq=52377.9767), Moments(n=3461, sum=2422.7, sum_sq=134698.29)
    est = difference(control, treatment, kind="mean", relative=True)
    lower, upper = mixture_interval(est, 0.05, tuning=1000)
    assert np.round([est.effect, lower, upper], 5).tolist() == [0.50336, -0.55844, 1.56516]
    assert mixture_p_value(est, tuning=1000) == 1.0


def test_mixture_reproduces_gbstats_proportions():
    est = difference(Moments.binary(1396, 3000), Moments.binary(2422, 3461), kind="proportion", relative=True)
    lower, upper = mixture_interval(est, 0.05, tuning=5000)
    assert np.round([est.effect, lower, upper], 5).tolist() == [0.50386, 0.40098, 0.60675]


def test_mixture_p_value_is_the_level_where_the_sequence_first_excludes_zero():
    rng = np.random.default_rng(2)
    est = Estimate(effect=rng.normal(0, 0.05, 2000), variance=rng.uniform(1e-4, 1e-3, 2000), n_total=rng.integers(100, 50_000, 2000).astype(float), dof=np.full(2000, np.inf))
    for sides in ("two", "greater", "less"):
        p = mixture_p_value(est, 5000, alpha=0.05, sides=sides)
        lower, upper = mixture_interval(est, 0.05, 5000, sides)
        assert np.all((p >= 0) & (p <= 1))
        assert np.array_equal(p <= 0.05, (lower > 0) | (upper < 0))
    two_low, two_high = mixture_interval(est, 0.10, 5000)
    low, _ = mixture_interval(est, 0.05, 5000, "greater")
    _, high = mixture_interval(est, 0.05, 5000, "less")
    assert np.allclose(low, two_low) and np.allclose(high, two_high)


def test_mixture_is_wider_than_the_fixed_interval():
    n = np.array([100.0, 1000.0, 5000.0, 1e5, 1e7])
    assert np.all(mixture_half_width(1.0, n, 0.05) > 1.96)
    assert np.isnan(mixture_half_width(1.0, 0.0, 0.05))


# --- Group-sequential --------------------------------------------------------------------


def test_obrien_fleming_bounds_match_published_tables():
    assert np.round(obrien_fleming_bounds(np.arange(1, 6) / 5, 0.05), 3).tolist() == [4.877, 3.357, 2.680, 2.290, 2.031]
    assert np.round(obrien_fleming_bounds([0.5, 1.0], 0.05), 3).tolist() == [2.963, 1.969]
    # One-sided at 0.025 spends per side exactly what two-sided 0.05 does.
    assert np.allclose(obrien_fleming_bounds(np.arange(1, 6) / 5, 0.025, "greater"), obrien_fleming_bounds(np.arange(1, 6) / 5, 0.05), atol=1e-4)
    assert obrien_fleming_bounds([1.0], 0.05)[0] == pytest.approx(1.959964, abs=1e-6)
    assert obrien_fleming_spending([1.0], 0.05)[0] == pytest.approx(0.05)


def test_obrien_fleming_bounds_are_cached_and_checked():
    fractions = (0.2, 0.45, 0.7, 1.0)
    first = obrien_fleming_bounds(fractions, 0.05)
    hits = group_sequential._bounds.cache_info().hits
    assert np.array_equal(obrien_fleming_bounds(np.array(fractions), 0.05), first)
    assert group_sequential._bounds.cache_info().hits == hits + 1
    for bad in ([0.5, 0.5, 1.0], [0.0, 1.0], [0.5, 1.2], []):
        with pytest.raises(ValueError, match="fractions"):
            obrien_fleming_bounds(bad, 0.05)


# --- Sample-ratio mismatch ---------------------------------------------------------------


def test_srm_chi_square_matches_scipy_and_normalizes_shares():
    counts = np.array([[5030, 4970, 10100], [480, 520, 1000]])
    statistic, p = srm_chi_square(counts, [1, 1, 2])
    for row, s, q in zip(counts, statistic, p):
        reference = stats.chisquare(row, f_exp=row.sum() * np.array([0.25, 0.25, 0.5]))
        assert (s, q) == pytest.approx((reference.statistic, reference.pvalue))
    assert srm_chi_square([0, 0], [1, 1])[1] == 1.0
    with pytest.raises(ValueError, match="shares"):
        srm_chi_square([10, 10], [1, 0])


def test_srm_bayes_factor_is_dirichlet_multinomial_over_multinomial():
    counts, shares = np.array([530, 470, 1020]), np.array([0.25, 0.25, 0.5])
    expected = stats.dirichlet_multinomial.logpmf(counts, 100 * shares, counts.sum()) - stats.multinomial.logpmf(counts, counts.sum(), shares)
    assert srm_log_bayes_factor(counts, shares, 100.0) == pytest.approx(expected, rel=1e-9)


def test_srm_52_48_at_20000_users_is_caught_by_both():
    _, p_chi = srm_chi_square([10_400, 9_600], [0.5, 0.5])
    p_sequential = srm_sequential(np.array([[[10_400, 9_600]]]), [0.5, 0.5])[0, -1]
    assert p_chi < 0.001 and p_chi == pytest.approx(1.54e-8, rel=0.01)
    assert p_sequential < 0.05 and p_sequential == pytest.approx(1.72e-6, rel=0.01)


def test_srm_sequential_p_values_never_go_back_up():
    looks = np.array([[50, 50], [120, 80], [160, 140], [300, 300]])  # cumulative
    p = srm_sequential(looks, [1, 1])
    assert p.shape == (4,) and np.all(np.diff(p) <= 0) and p[0] == 1.0
    assert p[-1] == p[1] < 1.0  # the 120/80 look's evidence is kept


# --- Multiple testing --------------------------------------------------------------------


def test_holm_and_bh_hand_worked():
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    with_missing = holm([0.01, np.nan, 0.04])
    assert np.isnan(with_missing[1]) and with_missing[[0, 2]] == pytest.approx([0.02, 0.04])
    assert benjamini_hochberg([0.01, np.nan, 0.04])[[0, 2]] == pytest.approx([0.02, 0.04])
    assert np.isnan(holm([np.nan, np.nan])).all()


def test_holm_and_bh_match_statsmodels_row_by_row():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 0.2, (50, 7)) ** 2
    p[::5, 3] = np.nan
    ours_holm, ours_bh = holm(p), benjamini_hochberg(p)
    for row, h, b in zip(p, ours_holm, ours_bh):
        keep = ~np.isnan(row)
        assert h[keep] == pytest.approx(multitest.multipletests(row[keep], method="holm")[1])
        assert b[keep] == pytest.approx(multitest.multipletests(row[keep], method="fdr_bh")[1])
        assert np.isnan(h[~keep]).all() and np.isnan(b[~keep]).all()


# --- Power -------------------------------------------------------------------------------


def test_fixed_sample_size_matches_statsmodels():
    power_module = pytest.importorskip("statsmodels.stats.power")
    sd = proportion_sd(0.05)
    total = fixed_sample_size(0.005, sd)
    per_arm = power_module.NormalIndPower().solve_power(effect_size=0.005 / sd, alpha=0.05, power=0.8, ratio=1.0)
    assert total == np.ceil(2 * per_arm) or total == np.ceil(2 * per_arm) + 1
    one_sided = fixed_sample_size(0.005, sd, sides="greater")
    assert one_sided < total and np.isinf(fixed_sample_size(-0.005, sd, sides="greater"))
    assert np.isinf(fixed_sample_size(0.0, sd))
    # Unequal split: N (z_a + z_b)^2 (sd_c^2 / 0.8 + sd_t^2 / 0.2) / effect^2.
    assert fixed_sample_size(1.0, 2.0, 3.0, share_treatment=0.2) == np.ceil(7.848879734349088 * (4 / 0.8 + 9 / 0.2))


def test_sequential_sample_size_is_the_smallest_n_with_enough_power():
    n = sequential_sample_size([0.005, 0.01], proportion_sd(0.05), tuning=20_000)
    assert np.all(n > fixed_sample_size([0.005, 0.01], proportion_sd(0.05)))
    power = sequential_power(n, [0.005, 0.01], proportion_sd(0.05), tuning=20_000)
    below = sequential_power(n - 1, [0.005, 0.01], proportion_sd(0.05), tuning=20_000)
    assert np.all(power >= 0.8) and np.all(below < 0.8)
    assert np.isinf(sequential_sample_size(0.0, 1.0))


def test_expected_duration():
    seconds = expected_duration_s([1000, 100, 1000, 1000], [100, 200, 0, 100], [60, 60, 60, 0])
    assert seconds.tolist() == [540.0, 0.0, np.inf, np.inf]
