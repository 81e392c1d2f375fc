import torch

from benchmark.harness.config import resolve_config
from methods.random_ws import RandomWS
from spaces.nb201 import NB201Space
from tests.e2e import check_layout, run_tiny


def test_profiles():
    cfg = resolve_config("nb201", "random-ws", 0, "paper")
    assert cfg.epochs == 250 and cfg.method_options == {}
    m = RandomWS.Options()
    assert (m.num_candidates, m.valid_batch_size) == (100, 512)
    assert resolve_config("nb201", "random-ws", 0, "smoke").epochs == 2


def test_weight_step_uses_one_hot_samples():
    space = NB201Space()
    cfg = resolve_config("nb201", "random-ws", 0, "smoke")
    m = RandomWS(space, space.supernet(C=4, N=1), cfg, torch.Generator().manual_seed(0))
    ws = [m.weight_step_weights(None, None)["alpha"] for _ in range(20)]
    for w in ws:
        assert torch.equal(w.sum(-1), torch.ones(6)) and set(w.unique().tolist()) <= {0.0, 1.0}
    assert len({tuple(w.argmax(-1).tolist()) for w in ws}) > 10


def test_random_ws_end_to_end_selects_the_best_candidate(tmp_path):
    recs = run_tiny("random-ws", tmp_path)
    check_layout(recs)
    d = recs[-1]["diagnostics"]
    assert recs[-1]["genotype"] == d["selected_genotype"] and d["candidates"] == 8
    assert 0.0 <= d["selected_valid_acc"] <= 1.0
