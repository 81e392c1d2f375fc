"""Where the source's weight-step clip covers `model.parameters()` including the architecture
parameter (AutoDL DARTS-V2, SmoothDARTS nasbench201), the norm includes its gradient."""
import pytest
import torch
from torch import nn

from benchmark.harness.config import resolve_config
from methods.base import StepContext
from methods.registry import get_method


def _setup(method_name, space_name, **supernet):
    from spaces import get_space
    space = get_space(space_name)
    cfg = resolve_config(space_name, method_name, 0, "smoke")
    torch.manual_seed(0)
    net = space.supernet(**supernet)
    m = get_method(method_name)(space, net, cfg, torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1)
    b = lambda: (torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g))  # noqa: E731
    return m, net, opt, b(), b()


def _captured_clip(monkeypatch):
    seen = []
    real = nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        params = list(params)
        seen.append([(p, None if p.grad is None else p.grad.clone()) for p in params])
        return real(params, max_norm, *a, **k)
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    return seen


def test_darts_2nd_on_nb201_clips_with_alpha_grad_of_both_steps(monkeypatch):
    torch.set_num_threads(1)
    m, net, opt, tb, vb = _setup("darts-2nd", "nb201", C=2, N=1, impl="reference")
    seen = _captured_clip(monkeypatch)
    ctx = StepContext(net, opt, 1, 1, 5.0, 4, 4)
    m.arch_step(tb, vb, ctx)
    arch_grad = m.alphas["alpha"].grad.clone()
    w = {k: v.detach().clone() for k, v in net.state_dict().items()}
    m.weight_step(tb, ctx)
    (params,) = seen
    alpha = [g for p, g in params if p is m.alphas["alpha"]]
    assert len(params) == len(list(net.parameters())) + 1 and len(alpha) == 1
    # the train loss' gradient w.r.t. alpha at the pre-step weights, on top of the arch step's
    net.load_state_dict(w)
    a = m.alphas["alpha"].detach().clone().requires_grad_()
    loss = nn.functional.cross_entropy(net(tb[0], {"alpha": torch.softmax(a, -1)}), tb[1])
    (d,) = torch.autograd.grad(loss, a)
    assert torch.allclose(alpha[0], arch_grad + d, atol=1e-6) and d.abs().sum() > 0


def test_sdarts_on_nb201_clips_with_the_mixing_weights_gradient(monkeypatch):
    m, net, opt, tb, vb = _setup("sdarts-rs", "nb201", C=2, N=1, impl="reference")
    seen = _captured_clip(monkeypatch)
    m.weight_step(tb, StepContext(net, opt, 1, 1, 5.0, 4, 4))
    (params,) = seen
    extra = params[len(list(net.parameters())):]
    assert len(extra) == 1 and extra[0][0].shape == (6, 5) and extra[0][1].abs().sum() > 0


@pytest.mark.parametrize("method_name", ["darts-2nd", "sdarts-rs", "darts"])
def test_1shot1_clips_the_weights_only(monkeypatch, method_name):
    """1Shot1's and SmoothDARTS' 1Shot1 code keep the alphas outside model.parameters()."""
    m, net, opt, tb, vb = _setup(method_name, "nb1shot1-s1", C=2, layers=3)
    seen = _captured_clip(monkeypatch)
    m.weight_step(tb, StepContext(net, opt, 1, 1, 5.0, 4, 4))
    (params,) = seen
    assert len(params) == len(list(net.parameters()))
