"""Seed statistics against scipy, and the explicit 'undefined' cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats as S


def test_pairwise_matches_scipy():
    a = np.array([93.1, 92.5, 94.0, 93.7, 92.9])
    b = np.array([54.3, 60.2, 88.1, 70.4])
    row = S.pairwise({"m1": a, "m2": b}).iloc[0]
    t = sps.ttest_ind(a, b, equal_var=False)
    u = sps.mannwhitneyu(a, b, alternative="two-sided")
    assert (row.a, row.b) == ("m1", "m2")
    assert row["diff"] == pytest.approx(a.mean() - b.mean())
    assert row.welch_t == pytest.approx(t.statistic) and row.welch_p == pytest.approx(t.pvalue)
    assert row.mwu_u == pytest.approx(u.statistic) and row.mwu_p == pytest.approx(u.pvalue)
    assert row.ci_low < row["diff"] < row.ci_high
    assert row.note == ""


def test_bootstrap_ci_covers_known_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(5.0, 1.0, 40), rng.normal(2.0, 1.0, 40)
    lo, hi = S.bootstrap_diff_ci(a, b)
    assert lo < a.mean() - b.mean() < hi
    assert 2.0 < lo and hi < 4.0  # a 3-unit shift, CI width about 2*1.96*sqrt(2/40)
    assert S.bootstrap_diff_ci(a, b, seed=3) != S.bootstrap_diff_ci(a, b, seed=4)
    assert S.bootstrap_diff_ci(a, b, seed=3) == S.bootstrap_diff_ci(a, b, seed=3)


def test_zero_spread_says_why():
    row = S.compare("darts", [54.3, 54.3, 54.3], "darts-2nd", [54.3, 54.3, 54.3])
    assert np.isnan(row["welch_t"]) and np.isnan(row["mwu_u"])
    assert "both methods have zero spread" in row["note"] and "all values are identical" in row["note"]
    assert row["diff"] == 0.0 and row["ci_low"] == row["ci_high"] == 0.0
    # Both constant but different: Welch undefined, Mann-Whitney defined, CI exact.
    row = S.compare("darts", [54.3] * 3, "other", [90.0] * 3)
    assert np.isnan(row["welch_t"]) and np.isfinite(row["mwu_p"])
    assert "difference is exact" in row["note"]
    assert row["ci_low"] == row["ci_high"] == pytest.approx(54.3 - 90.0)
    shown = S.format_pairwise(S.pairwise({"darts": [54.3] * 3, "other": [90.0] * 3}))
    assert shown.iloc[0]["Welch t (p)"] == "undefined"


def test_too_few_seeds_and_missing():
    row = S.compare("a", [1.0], "b", [2.0, 3.0])
    assert "fewer than 2 seeds" in row["note"] and np.isnan(row["welch_p"])
    row = S.compare("a", [np.nan], "b", [2.0, 3.0])
    assert "no scored final value" in row["note"]


def test_rank_summary():
    vals = {"low": np.array([1.0, 1.1, 0.9, 1.0, 1.05]), "high": np.array([5.0, 5.2, 4.9, 5.1, 5.0]),
            "mid": np.array([3.0, 3.1, 2.9, 3.0, 3.05])}
    r = S.rank_summary(vals)
    assert list(r.method) == ["high", "mid", "low"] and list(r["rank"]) == [1.0, 2.0, 3.0]
    assert list(r.significant_wins) == [2, 1, 0]  # 5 vs 5 separated: MWU p = 0.0079
    r = S.rank_summary(vals, higher_is_better=False)  # e.g. regret
    assert list(r.method) == ["low", "mid", "high"] and list(r.significant_wins) == [2, 1, 0]
