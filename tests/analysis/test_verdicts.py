"""A verdict per published number (analysis/verdicts.py): known values give known verdicts,
on frames and through a tiny results folder and the report; a wrong interval is caught."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import report as R, tables as T, verdicts as V
from tests.analysis.test_analysis_tables import nb201, write_run

OFFICIAL = "0" * 32


def _published(tmp_path: Path) -> pd.DataFrame:
    """Three published means (one with std and run count), through the real loader."""
    rows = [dict(space="nb201", method="m", label="M", metric="acc", mean="2.50", std="0.50",
                 source="Paper, Table 1", protocol="search-runs", search_runs=3),
            dict(space="nb201", method="m", label="M", metric="acc2", mean="54.30", std="",
                 source="Paper, Table 1", protocol="search-runs", search_runs=""),
            dict(space="nb201", method="gdas", label="G", metric="acc", mean="9", std="",
                 source="Paper, Table 1", protocol="search-runs", context="true")]
    path = tmp_path / "pub.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return T.load_published(path)


def _ours(row: str, metric: str, values, profile="paper", paper=True, md5=OFFICIAL) -> pd.DataFrame:
    return pd.DataFrame({"space": "nb201", "method": "m", "row": row, "metric": metric,
                         "protocol": "search-runs", "value": values, "profile": profile,
                         "paper": paper, "data_md5": md5, "differs": ""})


def _check_known_verdicts(tmp_path: Path) -> None:
    pub = _published(tmp_path)
    ours = pd.concat([
        _ours("inside", "acc", [0.0, 1.0, 2.0]),          # mean 1, s 1: t interval 1 ± 2.48
        _ours("outside", "acc", [4.0, 4.1, 4.2]),          # far above 2.5
        _ours("few", "acc", [2.5, 2.6]),                    # n = 2
        _ours("smoke", "acc", [2.5, 2.5, 2.5], profile="smoke", paper=False),
        _ours("copy", "acc", [2.5, 2.5, 2.5], md5="2700e052a187fe08aea1c2285b8e2706"),
        _ours("rounded", "acc2", [54.3, 54.3, 54.3]),     # zero spread, the published 54.30
    ], ignore_index=True)
    t = V.verdicts(ours, pub, {OFFICIAL}).set_index(["published_label", "metric", "our_row"], drop=False)
    inside = t.loc[("M", "acc", "inside")]
    assert inside.verdict == "reproduced"
    lo, hi = sps.t.interval(0.95, 2, loc=1.0, scale=1.0 / np.sqrt(3))
    assert (inside.ci_low, inside.ci_high) == pytest.approx((lo, hi))
    assert inside.difference == pytest.approx(-1.5) and inside.ci_method == "t"
    w = sps.ttest_ind_from_stats(1.0, 1.0, 3, 2.5, 0.5, 3, equal_var=False)
    assert inside.welch_p == pytest.approx(w.pvalue)
    assert t.loc[("M", "acc", "outside")].verdict == "differs: ours higher"
    few = t.loc[("M", "acc", "few")]
    assert few.verdict == "too few seeds" and few.n == 2
    smoke = t.loc[("M", "acc", "smoke")]
    assert smoke.verdict == "" and "not the paper profile" in smoke.why
    copy = t.loc[("M", "acc", "copy")]
    assert copy.verdict == "" and "not the official data" in copy.why
    rounded = t.loc[("M", "acc2", "rounded")]
    assert rounded.verdict == "reproduced" and rounded.our_std == 0.0
    ctx = t[t.published_label == "G"].iloc[0]
    assert ctx.verdict == "" and ctx.why.startswith("context")


def test_known_values_give_known_verdicts(tmp_path):
    _check_known_verdicts(tmp_path)


def test_a_planted_wrong_interval_is_caught(tmp_path, monkeypatch):
    """The normal 1.96·s/√n interval instead of Student's t: 'inside' turns into 'differs'."""
    def normal(values, confidence=0.95):
        v = np.asarray(values, float)
        half = 1.96 * v.std(ddof=1) / np.sqrt(len(v))
        return v.mean() - half, v.mean() + half
    monkeypatch.setattr(V, "t_interval", normal)
    with pytest.raises(AssertionError):
        _check_known_verdicts(tmp_path)


@pytest.mark.slow
def test_the_report_opens_with_published_vs_reproduced(tmp_path, monkeypatch):
    """A tiny results folder: darts under the exact paper profile on 'official' data (its md5
    documented for this test), and under smoke; the report's first table holds every
    published NB201 number with its verdict or why not."""
    from benchmark.harness.config import resolve_config
    monkeypatch.setitem(R.OFFICIAL_DATA_MD5, OFFICIAL, "official (test)")
    r = tmp_path / "results"
    paper = resolve_config("nb201", "darts", 0, "paper").to_json()
    for seed, acc in enumerate([54.30, 54.30, 54.30]):
        d = write_run(r, "nb201", "darts", seed, nb201(acc), epochs=paper["epochs"], md5=OFFICIAL)
        (d / "config.json").write_text(json.dumps({**paper, "seed": seed, "data_md5": OFFICIAL}))
    for seed, acc in enumerate([90.0, 91.0, 92.0]):
        write_run(r, "nb201", "darts-2nd", seed, nb201(acc))          # smoke profile
    out = tmp_path / "rep"
    md = R.build(r, out).read_text()
    assert md.index("## Published vs reproduced") < md.index("## Runs")
    table = pd.read_csv(out / "tables" / "published_vs_reproduced.csv", keep_default_na=False)
    got = table[(table.method == "darts") & (table.metric == "cifar10_test")
                & (table.published_label == "DARTS-V1 (1st order)")]
    assert list(got.verdict) == ["reproduced"]
    smoke = table[(table.method == "darts-2nd") & (table.metric == "cifar10_test")]
    assert list(smoke.verdict) == [""] and "not the paper profile (profile smoke)" in smoke.why.iloc[0]
    # every published NB201 number is a line of the table
    pub = T.load_published()
    want = set(zip(pub[pub.space == "nb201"].label, pub[pub.space == "nb201"].metric))
    assert want == set(zip(table.published_label, table.metric))
    assert (out / "tables" / "published_vs_reproduced.tex").exists()
    assert (out / "tables" / "published_vs_reproduced_all.csv").exists()


@pytest.mark.slow
def test_darts_space_rows_meet_published_rows_of_the_same_protocol(tmp_path, monkeypatch):
    """All searches x retrainings of a paper random-ws grid (protocol `all-searches`) meet Li &
    Talwalkar's 6-run average (2.92, `all-searches`), not the one-cell `selected` 2.85."""
    from analysis import collect as C, darts_space as D
    from spaces.darts import DARTS_V2
    from tests.analysis.test_analysis_darts import _retrain, _search
    r = tmp_path / "results"
    for seed, err in enumerate([2.8, 2.9, 3.0]):
        run = _search(r, "random-ws", seed, [DARTS_V2] * 3, wall=60.0, device="cpu", paper=True)
        _retrain(run / "retrain" / "seed-0", 0, err, epochs=600)
    _, runs = C.collect(r)
    runs = C.configurations(runs)
    ours = V.ours_from_retrains(D.label_retrains(D.collect_all_retrains(r), runs), runs)
    assert set(ours.protocol) == {"all-searches"} and len(ours) == 3
    t = V.verdicts(ours, T.load_published(), {"x"})
    rs = t[(t.method == "random-ws") & (t.space == "darts") & (t.metric == "cifar10_test_error")]
    six = rs[rs.protocol == "all-searches"].iloc[0]
    assert six.published == pytest.approx(2.92) and six.n == 3 and six.our_mean == pytest.approx(2.9)
    assert six.verdict == "reproduced"        # 2.9 ± t(0.975, 2)·0.1/√3 holds 2.92
    sel = rs[rs.protocol == "selected"].iloc[0]
    assert sel.why.startswith("no selected row of ours (ours: all-searches)") and sel.verdict == ""
    assert "python -m benchmark.retrain select" in sel.why   # says how to get the row
    cost = t[(t.method == "random-ws") & (t.space == "darts") & (t.metric == "search_gpu_days")].iloc[0]
    assert cost.why.startswith("no search_gpu_days value of ours")   # we ran it; costs are not tested
    best = t[(t.method == "random-ws") & (t.metric == "cifar10_test_error_best")].iloc[0]
    assert best.protocol == "best" and best.why.startswith("a best single run")
