"""The DARTS-space table's two rows per method: "all searches" and "selected (DARTS
protocol)" (analysis/darts_space.py, selection.json of benchmark/retrain/select.py)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import collect as C, darts_space as D, tables as T
from benchmark.retrain.profiles import SELECT
from spaces.darts import DARTS_V1, DARTS_V2
from tests.analysis.test_analysis_darts import _retrain, _search, _write


def _selection(root, method, winner, accs, settings=None):
    cands = [{"run": f"seed-{k}", "search_seed": k, "search_run": str(root / "darts" / method / f"seed-{k}"),
              "selection_acc": a, "selected_on": "held-out training images 45000-49999 (the last 5000)"}
             for k, a in enumerate(accs)]
    _write(root / "darts" / method / "selection.json",
           {"protocol": "selected", "candidates": cands, "winner": cands[winner],
            "settings": settings or {**SELECT, "profile": "select", "seed": 0}})


@pytest.fixture
def results(tmp_path):
    runs = [_search(tmp_path, "darts-2nd", k, [DARTS_V2, g], wall=3600.0, device="cuda:0", paper=True)
            for k, g in enumerate((DARTS_V1, DARTS_V2, DARTS_V1))]
    for k, r in enumerate(runs):   # all searches: 3 search runs x retraining seed 0
        _retrain(r / "retrain" / "seed-0", 0, 3.0 + k / 10, epochs=600)
        _retrain(r / "retrain-select" / "seed-0", 0, np.nan, epochs=100, valid_on="holdout", holdout=5000,
                 profile="select")
    for s, e in ((1, 2.6), (2, 3.4)):   # the winner (seed-1) retrained with two more seeds
        _retrain(runs[1] / "retrain" / f"seed-{s}", s, e, epochs=600)
    _selection(tmp_path, "darts-2nd", 1, [96.0, 97.0, 95.5])
    return tmp_path


def test_all_searches_and_selected_rows_beside_published_rows_of_their_protocol(results):
    _, runs = C.collect(results)
    retrains = D.collect_retrains(results)
    pub = T.load_published()
    pub = pub.assign(protocol=np.where(pub.method == "darts-2nd", "selected", ""))   # after the CSV gets the column
    num, disp = D.darts_table(retrains, runs, pub, "darts", "cifar10")
    rows = num.set_index("protocol")
    every, sel = rows.loc["all-searches"], rows.loc["selected"]
    # all searches: 3 search runs x seed 0 (the winner's extra final seeds are not counted there)
    assert (every["n"], every["search_seeds"], every["retrain_seeds"]) == (3, 3, 1)
    assert every["test_error.mean"] == pytest.approx(3.1)
    # selected: the winner's (seed-1) three retrainings 3.1, 2.6, 3.4
    assert (sel["n"], sel["search_seeds"], sel["retrain_seeds"]) == (3, 1, 3)
    assert sel["test_error.mean"] == pytest.approx((3.1 + 2.6 + 3.4) / 3)
    assert sel["test_error.std"] == pytest.approx(np.std([3.1, 2.6, 3.4], ddof=1))
    assert sel["selected_run"] == "seed-1" and sel["candidates"] == 3
    # the selection trainings (valid_on set) count in no row
    assert num.n.sum() == 6
    methods, prots = list(disp.method), list(disp.protocol)
    i_sel = prots.index("selected (DARTS protocol)")
    assert methods[i_sel] == "darts-2nd" and disp["search × retrain seeds"][i_sel] == "1 of 3 × 3"
    assert methods[i_sel + 1] == "↳ published: DARTS (2nd order) + cutout"   # beside the selected row
    assert prots[i_sel + 1] == "selected (DARTS protocol)"
    i_all = prots.index("all searches")
    assert i_all < i_sel and not methods[i_all + 1].startswith("↳")   # no all-searches published row
    assert "97.00%" in disp.source[i_sel] and "seed-1" in disp.source[i_sel]


def test_without_a_protocol_column_published_rows_stay_beside_all_searches(results):
    """Before published.csv has the `protocol` column; and a selection not made under the
    `select` profile meets no published row."""
    _, runs = C.collect(results)
    retrains = D.collect_retrains(results)
    pub = T.load_published()
    num, disp = D.darts_table(retrains, runs, pub.drop(columns=["protocol"], errors="ignore"), "darts", "cifar10")
    methods = list(disp.method)
    assert methods[methods.index("darts-2nd") + 1] == "↳ published: DARTS (2nd order) + cutout"
    _selection(results, "darts-2nd", 1, [96.0, 97.0, 95.5], settings={**SELECT, "profile": "select", "epochs": 10})
    pub2 = pub.assign(protocol=np.where(pub.method == "darts-2nd", "selected", ""))
    _, disp2 = D.darts_table(retrains, runs, pub2, "darts", "cifar10")
    assert "↳ published: DARTS (2nd order) + cutout" not in list(disp2.method)


def test_no_selection_no_selected_row(results):
    (results / "darts" / "darts-2nd" / "selection.json").unlink()
    _, runs = C.collect(results)
    num, _ = D.darts_table(D.collect_retrains(results), runs, T.load_published(), "darts", "cifar10")
    assert list(num.protocol) == ["all-searches"] and num.n.iloc[0] == 5   # every retraining counts
    assert isinstance(num, pd.DataFrame)


def _both_tables(results):
    from analysis import verdicts as V
    _, runs = C.collect(results)
    runs = C.configurations(runs)
    retrains = D.label_retrains(D.collect_all_retrains(results), runs)
    num, disp = D.darts_table(retrains, runs, T.load_published(), "darts", "cifar10")
    ours = V.ours_from_retrains(retrains, runs)
    return num, disp, ours, V.verdicts(ours, T.load_published(), {"x"})


def test_the_verdicts_count_as_the_darts_table(results):
    from analysis import verdicts as V
    """Same retrainings, same split: the selection trainings in neither, the winner's extra
    final seeds only in `selected`; each protocol's mean and n agree, and the DARTS paper's
    selected number meets our selected row, not all searches."""
    num, _, ours, table = _both_tables(results)
    assert set(ours.protocol) == {"all-searches", "selected"}
    for _, row in num.iterrows():
        v = ours[(ours.row == row.method) & (ours.protocol == row.protocol)].value
        assert len(v) == row.n and v.mean() == pytest.approx(row["test_error.mean"])
    assert len(ours) == 6   # 3 all searches + 3 selected; no selection training (valid_on set)
    t = table[(table.method == "darts-2nd") & (table.metric == "cifar10_test_error")]
    paper = t[t.published_label == "DARTS (2nd order) + cutout"].iloc[0]
    assert paper.protocol == "selected" and paper.n == 3
    assert paper.our_mean == pytest.approx((3.1 + 2.6 + 3.4) / 3)
    assert paper.verdict == "reproduced"   # 3.03 ± 0.40·t/√3 holds 2.76
    li = t[t.published_label == "DARTS (2nd order), re-run by Li & Talwalkar"].iloc[0]
    assert li.protocol == "selected" and li.n == 3
    # the paper's cost in its two conventions, each said in the verdict table's display
    cost = V.display(table[(table.method == "darts-2nd") & (table.metric == "search_gpu_days")
                           & (table.published_label == "DARTS (2nd order) + cutout")])
    assert sorted(cost["published value"]) == ["1.00 (one search)", "4.00 (4 searches)"]


def test_a_selection_off_the_select_profile_gets_no_verdict(results):
    _selection(results, "darts-2nd", 1, [96.0, 97.0, 95.5],
               settings={**SELECT, "profile": "select-smoke", "epochs": 2})
    num, disp, ours, table = _both_tables(results)
    sel = ours[ours.protocol == "selected"]
    assert len(sel) == 3 and not sel.paper.any()
    t = table[(table.method == "darts-2nd") & (table.protocol == "selected")
              & (table.metric == "cifar10_test_error")]
    assert (t.verdict == "").all()
    assert t.why.str.contains("not the paper profile").all() and t.why.str.contains("select-smoke").all()
    every = table[(table.method == "darts-2nd") & (table.protocol == "all-searches")]
    assert (every.n.dropna() <= 3).all()
    assert not any(m.startswith("↳ published: DARTS (2nd order) + cutout") for m in disp.method)


def test_seed_counts_say_n_where_not_every_pair_was_retrained(results):
    (results / "darts" / "darts-2nd" / "selection.json").unlink()
    _, runs = C.collect(results)
    _, disp = D.darts_table(D.collect_retrains(results), runs, T.load_published(), "darts", "cifar10")
    row = disp[(disp.method == "darts-2nd") & (disp.protocol == "all searches")].iloc[0]
    assert row["search × retrain seeds"] == "3 × 3 (n=5)"   # 3 runs x seed 0, the winner x seeds 1, 2
