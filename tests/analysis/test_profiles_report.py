"""The report compares methods only within one profile, and under `paper` (each method's own
protocol) says the protocols differ and shows no pairwise test; `fair` runs are ranked."""
from __future__ import annotations

import json

import pytest

from analysis.report import build, schedule_differences
from tests.analysis.test_analysis_tables import nb201, write_run


def _results(tmp_path, profiles=("fair", "paper")):
    from benchmark.harness.config import resolve_config
    r = tmp_path / "results"
    accs = {"darts": [54.3, 55.0, 56.0], "sdarts-rs": [90.0, 91.0, 93.0]}
    seed = 0
    for profile in profiles:
        for method, values in accs.items():
            cfg = resolve_config("nb201", method, 0, profile).to_json()
            for acc in values:
                d = write_run(r, "nb201", method, seed, nb201(acc), epochs=cfg["epochs"])
                (d / "config.json").write_text(json.dumps({**cfg, "seed": seed, "data_md5": "x"}))
                seed += 1
    return r


@pytest.mark.slow
def test_fair_is_ranked_paper_says_the_protocols_differ(tmp_path):
    out = tmp_path / "rep"
    md = build(_results(tmp_path), out).read_text()
    fair = md[md.index("methods compared within profile `fair`"):]
    fair = fair[:fair.index("####") if "####" in fair else len(fair)]
    paper = md[md.index("methods compared within profile `paper`"):]
    paper = paper[:paper.index("## ")]
    assert "| rank |" in fair and "− " in fair and "Welch" in fair   # ranks and pairwise tests
    assert "The protocols differ" in paper and "each method runs its own paper protocol" in paper
    assert "| rank |" not in paper and " − " not in paper               # no ranking, no pairwise test
    assert (out / "tables" / "nb201_fair_pairwise.csv").exists()
    assert not (out / "tables" / "nb201_paper_pairwise.csv").exists()
    # one trajectory figure per profile
    assert (out / "figures" / "nb201_fair_trajectory_test.png").exists()
    assert (out / "figures" / "nb201_paper_trajectory_test.png").exists()
    # the generated paper-vs-fair table
    assert "What each method's `paper` profile changes against `fair`" in md
    assert "supernet.track_running_stats: True (fair False)" in md


def test_schedule_differences_ignore_the_update_rule_only():
    import pandas as pd

    from benchmark.harness.config import resolve_config
    def cfg(m, p):
        return json.dumps(resolve_config("nb201", m, 0, p).to_json())
    fair = pd.DataFrame({"config": [cfg("darts", "fair"), cfg("sdarts-rs", "fair"), cfg("random-ws", "fair")]})
    assert schedule_differences(fair) == []
    paper = pd.DataFrame({"config": [cfg("darts", "paper"), cfg("sdarts-rs", "paper")]})
    assert "split" in schedule_differences(paper) and "epochs" in schedule_differences(paper)
