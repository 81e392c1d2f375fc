"""The Hessian stability diagnostic against exact eigenvalues."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.harness.config import resolve_config
from benchmark.harness.hessian import dominant_eigenvalue, hessian_max_eig


def _quadratic(eigs, seed=0):
    """A = Q diag(eigs) Q^T; f(x) = 0.5 x^T A x + b^T x, split over two tensors (3 + rest)."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x1 = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(n - 3, generator=g, dtype=torch.float64, requires_grad=True)
    def loss():
        x = torch.cat([x1, x2])
        return 0.5 * x @ a @ x + b @ x
    return loss, [x1, x2], a


@pytest.mark.parametrize("eigs", [[5.0, -2.0, 1.0, 0.5, 0.1], [-6.0, 3.0, 1.0, 2.0], [2.0, 1.0, 0.2, 0.1]])
def test_power_iteration_matches_exact_eigenvalue(eigs):
    loss, params, a = _quadratic(eigs)
    exact = np.linalg.eigvalsh(a.numpy())
    dominant = exact[np.argmax(np.abs(exact))]
    est = dominant_eigenvalue(loss, params, iters=200, tol=1e-10, generator=torch.Generator().manual_seed(1))
    assert est == pytest.approx(dominant, rel=1e-6)
    assert all(p.grad is None for p in params)


class _TinyMethod:
    """The three hooks the diagnostic uses, on a supernet with BN running statistics."""
    def __init__(self):
        torch.manual_seed(0)
        self.alpha = (0.1 * torch.randn(2, 3)).requires_grad_()
        self.supernet = nn.ModuleDict({"ops": nn.ModuleList(nn.Linear(4, 4) for _ in range(3)),
                                       "bn": nn.BatchNorm1d(4), "head": nn.Linear(4, 3)})
    def arch_parameters(self):
        return [self.alpha]
    def mixing_weights(self):
        return {"alpha": torch.softmax(self.alpha, -1)}
    def loss(self, weights, batch):
        x, y = batch
        w = weights["alpha"]
        for row in w:  # two mixed layers
            x = torch.tanh(sum(wi * op(x) for wi, op in zip(row, self.supernet["ops"])))
        logits = self.supernet["head"](self.supernet["bn"](x))
        return F.cross_entropy(logits, y), logits


@pytest.mark.slow
def test_hessian_max_eig_on_a_mixed_net_matches_full_hessian_and_leaves_state():
    m = _TinyMethod()
    g = torch.Generator().manual_seed(2)
    batch = (torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))
    def f(alpha):
        return m.loss({"alpha": torch.softmax(alpha, -1)}, batch)[0]
    h = torch.autograd.functional.hessian(f, m.alpha.detach()).reshape(6, 6).double().numpy()
    exact = np.linalg.eigvalsh((h + h.T) / 2)
    dominant = exact[np.argmax(np.abs(exact))]
    before = {k: b.clone() for k, b in m.supernet.named_buffers()}
    rng_before = torch.get_rng_state()
    est = hessian_max_eig(m, batch, seed=0, iters=300)
    assert est == pytest.approx(dominant, rel=1e-3, abs=1e-6)
    for k, b in m.supernet.named_buffers():
        assert torch.equal(b, before[k]), k           # BN statistics restored
    assert torch.equal(torch.get_rng_state(), rng_before)  # no global RNG consumed
    assert m.alpha.grad is None and all(p.grad is None for p in m.supernet.parameters())


def test_hessian_every_is_a_config_field_off_in_smoke():
    assert resolve_config("nb201", "darts", 0, "smoke").hessian_every == 0
    assert resolve_config("nb201", "darts", 0, "paper").hessian_every > 0
    assert resolve_config("nb201", "darts", 0, "smoke", sets=["hessian_every=2"]).hessian_every == 2
