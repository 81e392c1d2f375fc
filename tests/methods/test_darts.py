"""DARTS: the second-order gradient against the exact hypergradient; weights stay untouched."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.harness.config import resolve_config
from methods.base import StepContext
from methods.darts import Darts, Darts2nd, unrolled_arch_grad
from spaces.base import softmax_last


class ToySpace:
    """Two mixed edges over three small ops: enough curvature to test the math exactly."""
    name, benchmark = "toy", "none"

    def arch_shapes(self):
        return {"alpha": (2, 3)}

    def normalize(self, alphas):
        return softmax_last(alphas)

    def derive(self, scores):
        return ",".join(str(int(i)) for i in scores["alpha"].argmax(-1))


class ToyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.ops = nn.ModuleList(nn.ModuleList([nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.Tanh()),
                                                nn.Identity()]) for _ in range(2))
        self.head = nn.Linear(4, 3)

    def forward(self, x, weights):
        w = weights["alpha"]
        for e, ops in enumerate(self.ops):
            x = sum(w[e, o] * op(x) for o, op in enumerate(ops))
        return self.head(torch.tanh(x))


def _setup(cls, momentum_steps=2):
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    try:
        cfg = resolve_config("nb201", cls.name, 0, "smoke")
        net = ToyNet()
        m = cls(ToySpace(), net, cfg, torch.Generator().manual_seed(0))
        with torch.no_grad():
            m.alphas["alpha"].normal_(0, 0.5)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2 + momentum_steps)]
        ctx = StepContext(net, opt, 1, 1, 5.0, 8, 8)
        for b in batches[2:]:  # fill the momentum buffers, as in a running search
            m.weight_step(b, ctx)
        return m, net, opt, batches[0], batches[1], ctx
    finally:
        torch.set_default_dtype(torch.float32)


def _exact_hypergradient(m, net, opt, train, valid):
    """d/d alpha of L_val(w'(alpha), alpha), w' = w - xi (grad_w L_train + mu buf + wd w)."""
    g = opt.param_groups[0]
    xi, mu, wd = g["lr"], g["momentum"], g["weight_decay"]
    names = [n for n, _ in net.named_parameters()]
    w = [p.detach() for p in net.parameters()]
    alpha = m.alphas["alpha"]
    wreq = [t.clone().requires_grad_() for t in w]
    lt, _ = m.loss(m.space.normalize({"alpha": alpha}), train, dict(zip(names, wreq)))
    gw = torch.autograd.grad(lt, wreq, create_graph=True)
    wp = {n: t - xi * (gi + wd * t + mu * opt.state[p]["momentum_buffer"])
          for n, t, gi, p in zip(names, w, gw, net.parameters())}
    lv, _ = m.loss(m.space.normalize({"alpha": alpha}), valid, wp)
    return torch.autograd.grad(lv, alpha)[0]


def test_second_order_gradient_matches_exact_hypergradient():
    torch.set_default_dtype(torch.float64)
    try:
        m, net, opt, train, valid, _ = _setup(Darts2nd)
        exact = _exact_hypergradient(m, net, opt, train, valid)
        approx = unrolled_arch_grad(m, train, valid, opt)[0][0]
        first = torch.autograd.grad(m.loss(m.mixing_weights(), valid)[0], m.alphas["alpha"])[0]
    finally:
        torch.set_default_dtype(torch.float32)
    torch.testing.assert_close(approx, exact, rtol=1e-4, atol=1e-7)
    # and the second-order term is not negligible here, so the test can tell them apart
    assert (exact - first).abs().max() > 100 * (approx - exact).abs().max()


def test_second_order_matches_finite_differences_of_the_unrolled_loss():
    torch.set_default_dtype(torch.float64)
    try:
        m, net, opt, train, valid, _ = _setup(Darts2nd)
        approx = unrolled_arch_grad(m, train, valid, opt)[0][0]
        alpha = m.alphas["alpha"]
        eps, fd = 1e-6, torch.zeros_like(alpha)
        for idx in [(0, 0), (0, 2), (1, 1)]:
            vals = []
            for s in (1, -1):
                with torch.no_grad():
                    alpha[idx] += s * eps
                a = alpha.detach().clone().requires_grad_()
                m.alphas["alpha"] = a
                vals.append(_unrolled_loss(m, net, opt, train, valid))
                m.alphas["alpha"] = alpha
                with torch.no_grad():
                    alpha[idx] -= s * eps
            fd[idx] = (vals[0] - vals[1]) / (2 * eps)
            assert abs(fd[idx] - approx[idx]) < 1e-4 * max(1.0, abs(float(fd[idx])))
    finally:
        torch.set_default_dtype(torch.float32)


def _unrolled_loss(m, net, opt, train, valid) -> float:
    g = opt.param_groups[0]
    names = [n for n, _ in net.named_parameters()]
    w = [p.detach().clone().requires_grad_() for p in net.parameters()]
    lt, _ = m.loss(m.eval_weights(), train, dict(zip(names, w)))
    gw = torch.autograd.grad(lt, w)
    wp = {n: t.detach() - g["lr"] * (gi + g["weight_decay"] * t.detach() + g["momentum"] * opt.state[p]["momentum_buffer"])
          for n, t, gi, p in zip(names, w, gw, net.parameters())}
    return float(m.loss(m.eval_weights(), valid, wp)[0])


def test_arch_steps_never_touch_weights():
    for cls in (Darts, Darts2nd):
        m, net, opt, train, valid, ctx = _setup(cls)
        before = [p.detach().clone() for p in net.parameters()]
        a0 = m.alphas["alpha"].detach().clone()
        m.arch_step(train, valid, ctx)
        assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
        assert not torch.equal(a0, m.alphas["alpha"])
        # and a weight step does not move alpha
        a1 = m.alphas["alpha"].detach().clone()
        m.weight_step(train, ctx)
        assert torch.equal(a1, m.alphas["alpha"])


def test_step_order_follows_the_sources():
    assert resolve_config("nb201", "darts", 0, "paper").arch_first is False     # AutoDL DARTS-V1
    assert resolve_config("nb201", "darts-2nd", 0, "paper").arch_first is True  # AutoDL DARTS-V2
