"""Statistics against hand-computed values and numpy/scipy oracles on fixed data."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from scipy import stats as sps

from jaxopt_lab.compare import stats
from jaxopt_lab.compare.results import Results

INF = math.inf


def test_median_with_misses():
    assert stats.median_inf([1, 2, 3, INF]) == 2.5  # type 7: halfway between 2 and 3
    assert stats.median_inf([1, 2, INF]) == 2.0  # 1 of 3 misses
    assert stats.median_inf([1, INF, INF]) == INF  # more than half miss
    assert stats.median_inf([1, 2, INF, INF]) == INF  # half of an even n: upper middle is inf
    assert stats.median_inf([INF]) == INF
    assert stats.median_inf([3, np.nan, 1]) == 3.0  # NaN counts as a miss


def test_quantiles_match_numpy_without_misses():
    x = np.array([7.0, 1.0, 4.0, 9.0, 2.0, 8.0, 3.0])
    for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert stats.quantile_inf(x, q) == pytest.approx(np.quantile(x, q))
    q25, q75, width = stats.iqr_inf([1, 2, 3, 4, 5])
    assert (q25, q75, width) == (2.0, 4.0, 2.0)
    q25, q75, width = stats.iqr_inf([1, 2, 3, INF, INF])  # q75 at index 3 = inf
    assert (q25, q75, width) == (2.0, INF, INF)
    two_d = np.array([[1.0, 2.0, 3.0], [4.0, INF, 6.0]])
    np.testing.assert_array_equal(stats.quantile_inf(two_d, 0.5, axis=-1), [2.0, 6.0])
    np.testing.assert_array_equal(stats.quantile_inf(two_d, [0.0, 1.0], axis=-1),
                                  [[1.0, 4.0], [3.0, INF]])


def test_wilson_interval_hand_values():
    lo, hi = stats.wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.277533, abs=1e-6)
    lo, hi = stats.wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.277533, abs=1e-6)
    # general formula against scipy's normal quantile
    k, n, conf = 37, 120, 0.9
    z = sps.norm.ppf(0.95)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert stats.wilson_interval(k, n, conf) == pytest.approx((c - h, c + h), rel=1e-9)
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="n"):
        stats.wilson_interval(0, 0)


def test_bootstrap_median_ci():
    key = jax.random.key(0)
    x = np.arange(1.0, 42.0)
    lo, hi = stats.bootstrap_median_ci(x, key, n_boot=500)
    assert lo < 21.0 < hi and (lo, hi) == stats.bootstrap_median_ci(x, key, n_boot=500)
    # oracle: the same resampling indices, numpy medians and percentiles
    words = np.asarray(jax.random.key_data(key)).tolist()
    idx = np.random.default_rng(words).integers(0, x.size, size=(500, x.size))
    meds = np.median(x[idx], axis=1)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(meds, [0.025, 0.975])))
    assert stats.bootstrap_median_ci([5.0] * 9, key) == (5.0, 5.0)
    lo, hi = stats.bootstrap_median_ci([1.0, 2.0, INF, INF, INF], key, n_boot=200)
    assert hi == INF


def test_performance_profile_hand_example():
    costs = {"a": [1.0, 2.0, INF, INF], "b": [2.0, 2.0, 4.0, INF]}
    prof = stats.performance_profile(costs, [1.0, 2.0, 4.0])
    # best = [1, 2, 4, inf]; r_a = [1, 1, inf, inf]; r_b = [2, 1, 1, inf]
    np.testing.assert_allclose(prof["a"], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(prof["b"], [0.5, 0.75, 0.75])
    zero = stats.performance_profile({"a": [0.0], "b": [3.0]}, [1.0, 100.0])
    np.testing.assert_allclose(zero["a"], [1.0, 1.0])
    np.testing.assert_allclose(zero["b"], [0.0, 0.0])
    with pytest.raises(ValueError, match="taus"):
        stats.performance_profile(costs, [0.5])
    with pytest.raises(ValueError, match="same number"):
        stats.performance_profile({"a": [1.0], "b": [1.0, 2.0]}, [1.0])


def _fixed_results():
    esc = np.array([[1.0, 2.0, 3.0, INF], [5.0, INF, INF, INF]], np.float32)
    hit = np.array([[4.0, 4.0, INF, INF], [1.0, 2.0, 3.0, 4.0]], np.float32)
    m = {"escape_step": esc, "hit_step": hit,
         "final_value": np.zeros((2, 4), np.float32), "final_grad_norm": np.ones((2, 4)),
         "nonfinite": np.array([[False, False, False, True], [False] * 4])}
    return Results(["sgd"], {"sgd": [{"learning_rate": 0.1}, {"learning_rate": 0.2}]},
                   {"sgd": m}, {}, {})


def test_summarize_fixed_data_and_records_agree():
    res = _fixed_results()
    rows = stats.summarize(res)
    assert [r["label"] for r in rows] == ["sgd(learning_rate=0.1)", "sgd(learning_rate=0.2)"]
    r0, r1 = rows
    assert r0["n"] == 4 and r0["escape_median"] == 2.5 and r0["escape_rate"] == 0.75
    assert r0["escape_q25"] == 1.75 and r0["escape_q75"] == INF and r0["escape_iqr"] == INF
    assert r0["hit_median"] == INF and r0["success_rate"] == 0.5
    assert (r0["success_lo"], r0["success_hi"]) == stats.wilson_interval(2, 4)
    assert r0["nonfinite_rate"] == 0.25
    assert r1["escape_median"] == INF and r1["hit_median"] == 2.5 and r1["hit_iqr"] == 1.5
    from_records = stats.summarize(res.records())
    assert from_records == rows and res.summary_table() == rows
    with_ci = stats.summarize(res, key=jax.random.key(1), n_boot=100)
    assert with_ci[1]["hit_median_lo"] <= 2.5 <= with_ci[1]["hit_median_hi"]
    costs = stats.profile_costs({"p1": rows, "p2": rows[::-1]}, "hit_median")
    np.testing.assert_array_equal(costs["sgd(learning_rate=0.2)"], [2.5, 2.5])


def test_logrank_hand_example():
    # A = [1, 2, miss], B = [3, miss, miss]; risk sets by hand:
    # t=1: n=6, nA=3, d=1 -> E=0.5,  V=0.25;  t=2: n=5, nA=2, d=1 -> E=0.4, V=0.24
    # t=3: n=4, nA=1, d=1 (in B) -> E=0.25, V=0.1875;  O_A = 2
    chi2, p = stats.logrank_test([1, 2, INF], [3, INF, INF])
    expected = (2 - 1.15) ** 2 / 0.6775
    assert chi2 == pytest.approx(expected)
    assert p == pytest.approx(sps.chi2.sf(expected, df=1))
    assert stats.logrank_test([INF, INF], [INF]) == (0.0, 1.0)
    chi2, p = stats.logrank_test(np.arange(1, 41.0), np.full(40, INF))
    assert p < 1e-6  # every A run escapes, no B run does


def test_success_curve_is_the_ecdf_of_escapes():
    curve = stats.success_curve([0, 2, 2, INF, 7], num_steps=4)
    np.testing.assert_allclose(curve, [0.2, 0.2, 0.6, 0.6, 0.6])  # 7 lies past the budget
