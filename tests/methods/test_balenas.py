import torch

from benchmark.harness.config import resolve_config
from methods.balenas import Balenas
from spaces.nb201 import NB201Space
from tests.e2e import check_layout, run_tiny


def _method(sets=()):
    space = NB201Space()
    cfg = resolve_config("nb201", "balenas", 0, "smoke", sets=list(sets))
    return Balenas(space, space.supernet(C=4, N=1), cfg, torch.Generator().manual_seed(0)), cfg


def test_defaults_from_author_code():
    m, cfg = _method()
    g = m.arch_optimizer.param_groups[0]
    assert (g["lr"], g["betas"], g["prior_prec"], g["num_samples"]) == (3e-4, (0.5, 0.999), 1.0, 1)
    assert g["train_set_size"] == cfg.train_subset      # the architecture split as used
    assert torch.allclose(m.sigmas()["alpha"], torch.ones(6, 5))
    assert resolve_config("nb201", "balenas", 0, "paper").arch_first is True


def test_arch_step_samples_then_updates_mu_only():
    m, _ = _method()
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g))
    seen = []
    real_loss = m.loss

    def spy(weights, b, params=None):
        seen.append(m.alphas["alpha"].detach().clone())
        return real_loss(weights, b, params)
    m.loss = spy
    mu0 = m.alphas["alpha"].detach().clone()
    w0 = [p.detach().clone() for p in m.supernet.parameters()]

    class Ctx:
        w_optimizer = None
    row = m.arch_step(batch, batch, Ctx())
    assert len(seen) == 1 and (seen[0] - mu0).abs().max() > 0.1   # evaluated at a sample, sigma=1
    mu1 = m.alphas["alpha"].detach()
    assert 0 < (mu1 - mu0).abs().max() <= 3e-4 * 1.01               # an Adam-sized step of mu
    assert all(torch.equal(a, b) for a, b in zip(w0, m.supernet.parameters()))
    assert set(row) == {"valid_loss", "valid_acc"}


def test_balenas_end_to_end(tmp_path):
    recs = run_tiny("balenas", tmp_path)
    check_layout(recs)
    assert set(recs[-1]["arch"]) >= {"mu", "sigma", "weights"}
    from spaces.nb201 import NB201Space
    mu = torch.tensor(recs[-1]["arch"]["mu"]["alpha"])
    assert recs[-1]["genotype"] == NB201Space().derive({"alpha": mu})   # argmax of mu
