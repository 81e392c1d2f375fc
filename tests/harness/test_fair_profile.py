"""The `fair` profile: one schedule per space for every method; only the update rule's
settings (method options, step order) differ. `paper` stays each method's own."""
from __future__ import annotations

import pytest

from benchmark.harness.config import FAIR_METHOD_KEYS, PROFILES, paper_vs_fair, resolve_config
from methods.registry import available as methods
from spaces import available as spaces

OWN = ("method", "seed", "profile", *FAIR_METHOD_KEYS)


def _schedule(space: str, method: str, profile: str) -> dict:
    return {k: v for k, v in resolve_config(space, method, 0, profile).to_json().items() if k not in OWN}


@pytest.mark.parametrize("space", spaces())
def test_every_method_shares_one_schedule_under_fair(space):
    first = _schedule(space, "darts", "fair")
    for m in methods():
        assert _schedule(space, m, "fair") == first, m
    # the schedule is the space's DARTS protocol: darts' own paper config
    assert first == _schedule(space, "darts", "paper")


def test_fair_keeps_the_update_rules_settings_and_drops_the_schedule_overrides():
    paper, fair = (resolve_config("darts", "random-ws", 0, p) for p in ("paper", "fair"))
    assert fair.method_options == paper.method_options and paper.method_options   # its own options
    assert (paper.epochs, fair.epochs) == (100, 50)
    for space in spaces():
        for m in methods():   # the step order is the method's, in every profile
            assert resolve_config(space, m, 0, "fair").arch_first == resolve_config(space, m, 0, "paper").arch_first
    sd = resolve_config("nb201", "sdarts-rs", 0, "fair")
    assert (sd.epochs, sd.split, sd.w_nesterov, sd.supernet["track_running_stats"]) == (50, "official", True, False)


def test_paper_stays_each_methods_own():
    sd = resolve_config("nb201", "sdarts-rs", 0, "paper")
    assert (sd.epochs, sd.split, sd.w_weight_decay, sd.supernet["track_running_stats"]) == \
        (100, "contiguous", 3e-4, True)
    assert resolve_config("nb201", "random-ws", 0, "paper").epochs == 250
    assert set(paper_vs_fair("nb201", "sdarts-rs")) == {
        "epochs", "split", "supernet.track_running_stats", "w_nesterov", "w_weight_decay"}
    assert paper_vs_fair("nb201", "darts") == {}
    assert "fair" in PROFILES
