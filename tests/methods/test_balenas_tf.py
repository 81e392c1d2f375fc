import pytest
import torch

from benchmark.harness.config import resolve_config
from methods.balenas_tf import BalenasTF
from spaces.nb201 import NB201Space
from tests.e2e import check_layout, run_tiny


def test_candidates_unique_and_seeded():
    space = NB201Space()
    cfg = resolve_config("nb201", "balenas-tf", 0, "smoke", sets=["method.num_candidates=30"])
    a = BalenasTF(space, space.supernet(C=4, N=1), cfg, torch.Generator().manual_seed(0))
    b = BalenasTF(space, space.supernet(C=4, N=1), cfg, torch.Generator().manual_seed(0))
    ga, drawn = a.sample_candidates()
    assert drawn == 30 and len(ga) == len(set(ga)) and 1 < len(ga) <= 30
    assert ga == b.sample_candidates()[0]
    with torch.no_grad():  # sigma -> tiny: every draw derives argmax(mu)
        a.alphas["alpha"].copy_(torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4, 3]), 5) * 5.0)
    a.arch_optimizer.state[a.alphas["alpha"]]["exp_avg_sq"].fill_(1e6)
    assert a.sample_candidates()[0] == [a.derive()]


@pytest.mark.slow
def test_balenas_tf_end_to_end_selects_best_candidate(tmp_path):
    recs = run_tiny("balenas-tf", tmp_path, ["method.num_candidates=4", "method.proxy_batch_size=16"])
    check_layout(recs)
    d = recs[-1]["diagnostics"]
    assert d["tf_proxy"] == "naswot" and d["tf_sampled"] == 4 and d["tf_unique"] == len(d["tf_candidates"])
    best = max(d["tf_candidates"], key=lambda r: r["score"])
    assert d["selected_genotype"] == best["genotype"] and d["selected_score"] == best["score"]
    mu = torch.tensor(recs[-1]["arch"]["mu"]["alpha"])
    assert recs[-1]["genotype"] == NB201Space().derive({"alpha": mu})   # record stays argmax(mu)
    import json
    done = json.loads((tmp_path / "nb201/balenas-tf/seed-0/done.json").read_text())
    assert done["genotype"] == d["selected_genotype"]
    assert recs[-1]["selected_genotype"] == d["selected_genotype"]        # scored as the answer
    assert recs[-1]["selected_benchmark"]["cifar10_test"] > 0  # the method's answer is the proxy pick
