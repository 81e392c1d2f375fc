import pytest
import torch

from benchmark.harness.config import resolve_config
from methods.sdarts import clip_simplex, epsilon, pgd_attack, SdartsOptions
from tests.e2e import check_layout, run_tiny


def test_clip_keeps_rows_on_simplex():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(50, 5, generator=g) * 0.7
    w[3] = -torch.rand(5, generator=g)          # a row with no positive entry
    w[3, 2] = -0.01                             # its argmax
    out = clip_simplex(w)
    assert (out >= 0).all() and (out <= 1).all()
    assert torch.allclose(out.sum(-1), torch.ones(50))
    assert torch.equal(out[3], torch.tensor([0, 0, 1.0, 0, 0]))
    p = torch.softmax(torch.randn(4, 5, generator=g), -1)
    assert torch.allclose(clip_simplex(p), p)   # already on the simplex: unchanged


def test_epsilon_ramp():
    o = SdartsOptions()
    assert abs(epsilon(o, 1, 100) - 0.03) < 1e-12
    assert abs(epsilon(o, 51, 100) - (0.03 + 0.27 * 0.5)) < 1e-12


def test_pgd_raises_loss_and_stays_in_ball():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(32, 6, 5, 3, generator=g)   # logits = sum_e,o w[e,o] * feats[:, e, o]
    y = torch.randint(0, 3, (32,), generator=g)

    def loss_fn(w):
        logits = torch.einsum("neoc,eo->nc", feats, w["alpha"])
        return torch.nn.functional.cross_entropy(logits, y)
    abar0 = {"alpha": torch.softmax(torch.randn(6, 5, generator=g), -1)}
    eps = 0.2
    abar, info = pgd_attack(loss_fn, abar0, eps, 7, g)
    assert loss_fn(abar).item() > loss_fn(abar0).item()
    # In the ball after every projection; the SDARTS clip's renormalisation that follows may
    # move a coordinate a little past eps, never far.
    assert info["projected_deviation"] <= eps + 1e-6
    assert (abar["alpha"] - abar0["alpha"]).abs().max().item() <= 1.5 * eps
    assert torch.allclose(abar["alpha"].sum(-1), torch.ones(6))


def test_paper_profile_follows_sdarts_code_smoke_stays_small():
    cfg = resolve_config("nb201", "sdarts-adv", 0, "paper")
    assert (cfg.epochs, cfg.w_weight_decay, cfg.w_nesterov, cfg.split, cfg.arch_first) == \
        (100, 3e-4, False, "contiguous", True)
    assert cfg.supernet["track_running_stats"] is True and cfg.supernet["C"] == 16
    smoke = resolve_config("nb201", "sdarts-rs", 0, "smoke")
    assert smoke.epochs == 2 and smoke.supernet["C"] == 4
    # the dotted override changes one supernet argument; the profile's others stay
    assert cfg.supernet == {**resolve_config("nb201", "darts", 0, "paper").supernet,
                            "track_running_stats": True}


@pytest.mark.parametrize("method", ["sdarts-rs", "sdarts-adv"])
@pytest.mark.parametrize("space", ["nb1shot1-s1", "nb1shot1-s2", "nb1shot1-s3"])
def test_1shot1_paper_profile_runs_100_epochs(space, method):
    """SmoothDARTS' 1Shot1 train_search.py defaults to 100 epochs; the rest is 1Shot1's."""
    cfg, base = resolve_config(space, method, 0, "paper"), resolve_config(space, "darts", 0, "paper")
    assert cfg.epochs == 100 and base.epochs == 50
    assert (cfg.w_weight_decay, cfg.split, cfg.supernet, cfg.arch_first) == \
        (base.w_weight_decay, base.split, base.supernet, True)
    assert resolve_config(space, method, 0, "smoke").epochs == 2


def test_sdarts_rs_end_to_end(tmp_path):
    check_layout(run_tiny("sdarts-rs", tmp_path))


def test_sdarts_adv_end_to_end(tmp_path):
    check_layout(run_tiny("sdarts-adv", tmp_path))


def _linear_attack(monkeypatch, eps, steps):
    """PGD from abar0 itself (the random start patched to zero) on a loss linear in abar whose
    gradient sign is +-1 per entry with rows summing to 0, so no clip acts: the iterates are
    abar0 + k * step * sign until the eps ball stops them."""
    import methods.sdarts as sd
    monkeypatch.setattr(sd, "_uniform", lambda like, eps, gen: torch.zeros_like(like))
    abar0 = {"alpha": torch.tensor([[0.5, 0.5], [0.3, 0.7]], dtype=torch.float64)}
    c = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    seen = []

    def loss_fn(w):
        seen.append(w["alpha"].detach().clone())
        return (c * w["alpha"]).sum()
    abar, info = pgd_attack(loss_fn, abar0, eps, steps, torch.Generator().manual_seed(0))
    return abar0["alpha"], c, seen, abar, info


def test_pgd_step_size_is_two_eps_over_steps(monkeypatch):
    """SDARTS code: step size 2*eps/steps (Linf_PGD_alpha), sign of the gradient, projection."""
    eps, steps = 0.07, 7
    abar0, c, seen, abar, info = _linear_attack(monkeypatch, eps, steps)
    assert torch.equal(seen[0], abar0)                     # the (zero) random start
    step = 2 * eps / steps                                 # 0.02
    assert torch.allclose(seen[1] - seen[0], step * c, atol=1e-12)
    assert torch.allclose(seen[2] - seen[0], 2 * step * c, atol=1e-12)
    # after 4 steps (0.08 > eps) the projection holds the iterate on the ball's surface
    assert torch.allclose(abar["alpha"], abar0 + eps * c, atol=1e-12)
    assert info["loss_adv"] > info["loss_clean"]


def test_pgd_keeps_the_clean_weights_when_the_attack_cannot_raise_the_loss():
    """A loss whose maximum is abar0: every perturbation lowers it, so the attack must hand
    back abar0 itself (the SDARTS code's fallback)."""
    abar0 = {"alpha": torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(4)), -1)}

    def loss_fn(w):
        return -((w["alpha"] - abar0["alpha"]) ** 2).sum()
    abar, info = pgd_attack(loss_fn, abar0, 0.2, 7, torch.Generator().manual_seed(5))
    assert torch.equal(abar["alpha"], abar0["alpha"])
    assert info["loss_adv"] == info["loss_clean"] == 0.0
