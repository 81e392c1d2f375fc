"""Seed statistics of a final metric between methods: Welch t, Mann-Whitney U, bootstrap CI.

Every pair of methods gets the mean difference (a - b), Welch's t-test, the two-sided
Mann-Whitney U test (scipy), and a percentile bootstrap 95% CI of the difference of means
(independent resampling of each method's seeds). Where a test is undefined the row says
why in `note` instead of showing a number (e.g. both methods have zero spread, as DARTS'
collapse to the same cell in every seed, or fewer than 2 seeds).
"""
from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

COLUMNS = ["a", "b", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high",
           "welch_t", "welch_p", "mwu_u", "mwu_p", "note"]


def bootstrap_diff_ci(a: np.ndarray, b: np.ndarray, confidence: float = 0.95,
                      n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) - mean(b) (scipy.stats.bootstrap, unpaired)."""
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # every resample gives the same difference
        d = float(a[0] - b[0])
        return d, d
    res = sps.bootstrap((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                        vectorized=True, paired=False, confidence_level=confidence,
                        n_resamples=n_resamples, method="percentile",
                        rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare(a_name: str, a, b_name: str, b, seed: int = 0) -> dict:
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update(a=a_name, b=b_name, n_a=len(a), n_b=len(b), note="")
    if len(a) == 0 or len(b) == 0:
        row["note"] = "undefined: a method has no scored final value"
        return row
    row.update(mean_a=a.mean(), mean_b=b.mean(), diff=a.mean() - b.mean())
    notes = []
    if len(a) < 2 or len(b) < 2:
        notes.append("tests undefined: fewer than 2 seeds in a method")
        row["note"] = "; ".join(notes)
        return row
    row["ci_low"], row["ci_high"] = bootstrap_diff_ci(a, b, seed=seed)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        notes.append("Welch t undefined: both methods have zero spread (identical values in every "
                     "seed)" + ("; the difference is exact" if a[0] != b[0] else "; no difference"))
    else:
        with warnings.catch_warnings():  # scipy warns on a zero-spread sample; the test is defined
            warnings.simplefilter("ignore", RuntimeWarning)
            t = sps.ttest_ind(a, b, equal_var=False)
        row.update(welch_t=float(t.statistic), welch_p=float(t.pvalue))
    if np.ptp(np.concatenate([a, b])) == 0:
        notes.append("Mann-Whitney U undefined: all values are identical")
    else:
        u = sps.mannwhitneyu(a, b, alternative="two-sided")
        row.update(mwu_u=float(u.statistic), mwu_p=float(u.pvalue))
    row["note"] = "; ".join(notes)
    return row


def pairwise(values: dict[str, np.ndarray], seed: int = 0) -> pd.DataFrame:
    """All pairs (a, b) of methods, in sorted order."""
    rows = [compare(a, values[a], b, values[b], seed) for a, b in combinations(sorted(values), 2)]
    return pd.DataFrame(rows, columns=COLUMNS)


def rank_summary(values: dict[str, np.ndarray], higher_is_better: bool = True,
                 alpha: float = 0.05) -> pd.DataFrame:
    """Methods ranked by mean (1 = best; ties share the mean rank), with std, median, n, and how
    many other methods each one beats with Mann-Whitney p < alpha."""
    pw = pairwise(values)
    rows = []
    for m, v in values.items():
        v = np.asarray(v, float)
        v = v[np.isfinite(v)]
        wins = 0
        for _, r in pw.iterrows():
            if m in (r.a, r.b) and np.isfinite(r.mwu_p) and r.mwu_p < alpha:
                better_a = (r["diff"] > 0) == higher_is_better
                wins += int((r.a == m) == better_a)
        rows.append({"method": m, "n": len(v), "mean": v.mean() if len(v) else np.nan,
                     "std": v.std(ddof=1) if len(v) > 1 else np.nan,
                     "median": np.median(v) if len(v) else np.nan, "significant_wins": wins})
    df = pd.DataFrame(rows, columns=["method", "n", "mean", "std", "median", "significant_wins"])
    key = df["mean"] if higher_is_better else -df["mean"]
    df.insert(0, "rank", key.rank(ascending=False, method="average"))
    return df.sort_values(["rank", "method"]).reset_index(drop=True)


def format_pairwise(pw: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Display strings: numbers where defined, 'undefined' where a note says so."""
    def num(v, d=digits):
        return "undefined" if v is None or not np.isfinite(v) else f"{v:.{d}f}"
    def p(v):
        return "undefined" if v is None or not np.isfinite(v) else f"{v:.3g}"
    return pd.DataFrame({
        "a − b": [f"{a} − {b}" for a, b in zip(pw.a, pw.b)],
        "n": [f"{na}/{nb}" for na, nb in zip(pw.n_a, pw.n_b)],
        "diff": [num(v) for v in pw["diff"]],
        "95% bootstrap CI": [("undefined" if not np.isfinite(lo) else f"[{lo:.{digits}f}, {hi:.{digits}f}]")
                             for lo, hi in zip(pw.ci_low, pw.ci_high)],
        "Welch t (p)": [("undefined" if not np.isfinite(t) else f"{t:.2f} ({p(pv)})")
                        for t, pv in zip(pw.welch_t, pw.welch_p)],
        "Mann-Whitney U (p)": [("undefined" if not np.isfinite(u) else f"{u:.1f} ({p(pv)})")
                               for u, pv in zip(pw.mwu_u, pw.mwu_p)],
        "note": [n or "" for n in pw.note]})
