"""The fast NB201 supernet computes the reference's function: outputs and gradients (of the
weights and of the mixing weights) agree to 1e-5 on the CPU, in train and eval mode."""
from __future__ import annotations

import copy

import pytest
import torch

from spaces.nb201 import EDGES, SearchCell, Supernet
from spaces.nb201.fast import FastSearchCell, FastSupernet
from spaces.nb201.ops import OPS


def _weights(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(len(EDGES), len(OPS), generator=g), -1).requires_grad_()


def _grads(model, x, w):
    out = model(x, w)
    # A non-uniform upstream gradient so every output element matters.
    loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum()
    loss.backward()
    return out.detach(), w.grad.clone()


@pytest.mark.parametrize("affine,track", [(False, False), (False, True), (True, True)])  # search, SDARTS, standalone-like
def test_cell_matches_reference(affine, track):
    torch.manual_seed(0)
    ref = SearchCell(4, affine, track)
    torch.manual_seed(0)
    fast = FastSearchCell(4, affine, track)
    if affine:  # make gamma/beta non-trivial so their mapping is tested
        with torch.no_grad():
            for p in ref.parameters():
                p.add_(0.1 * torch.randn_like(p))
        fast.copy_from(ref)
    x = torch.randn(3, 4, 6, 6)
    w_ref, w_fast = _weights(1), _weights(1)
    out_r, gw_r = _grads(ref, x, w_ref)
    out_f, gw_f = _grads(fast, x, w_fast)
    assert torch.allclose(out_r, out_f, atol=1e-5, rtol=1e-5)
    assert torch.allclose(gw_r, gw_f, atol=1e-5, rtol=1e-5)
    assert gw_r.abs().sum() > 0
    # Weight gradients: unpack the fast cell's grads into the reference layout and compare.
    as_grads = copy.deepcopy(fast)
    for p, q in zip(as_grads.parameters(), fast.parameters()):
        p.data = q.grad.clone()
    grad_cell = SearchCell(4, affine, track)
    as_grads.copy_to(grad_cell)
    for (name, p), (_, g) in zip(ref.named_parameters(), grad_cell.named_parameters()):
        assert torch.allclose(p.grad, g, atol=1e-5, rtol=1e-5), name
    if track:  # running statistics moved identically; eval mode then agrees as well
        ref.eval()
        fast.eval()
        with torch.no_grad():
            assert torch.allclose(ref(x, w_ref), fast(x, w_fast), atol=1e-5, rtol=1e-5)


def test_supernet_same_seed_same_function():
    """Built from one seed, the two supernets start identical (the fast one packs a
    reference cell's draws) and agree in logits and in every gradient."""
    torch.manual_seed(3)
    ref = Supernet(C=4, N=1)
    torch.manual_seed(3)
    fast = FastSupernet(C=4, N=1)
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in fast.parameters())
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    results = []
    for model in (ref, fast):
        w = _weights(2)
        loss = torch.nn.functional.cross_entropy(model(x, {"alpha": w}), y)
        loss.backward()
        shared = {n: p.grad for n, p in model.named_parameters() if ".edges." not in n
                  and "conv1." not in n and "conv3." not in n and "bn_" not in n}
        results.append((loss.detach(), w.grad, shared))
    (l_r, g_r, s_r), (l_f, g_f, s_f) = results
    assert torch.allclose(l_r, l_f, atol=1e-5)
    assert torch.allclose(g_r, g_f, atol=1e-5)
    assert s_r.keys() == s_f.keys() and len(s_r) > 5
    for n in s_r:
        assert torch.allclose(s_r[n], s_f[n], atol=1e-5), n


def test_space_selects_fast_and_rejects_unknown():
    from spaces.nb201 import NB201Space
    assert isinstance(NB201Space().supernet(C=4, N=1, impl="fast"), FastSupernet)
    with pytest.raises(ValueError, match="valid: reference, fast"):
        NB201Space().supernet(C=4, N=1, impl="quick")


def test_functional_call_swaps_fast_parameters():
    """DARTS 2nd order runs the supernet through torch.func.functional_call: packed
    parameters must be real inputs of the forward, not cached copies."""
    torch.manual_seed(0)
    net = FastSupernet(C=4, N=1)
    x, w = torch.randn(2, 3, 8, 8), {"alpha": _weights(0).detach()}
    params = {n: torch.zeros_like(p) if "conv3" in n else p for n, p in net.named_parameters()}
    assert not torch.allclose(net(x, w), torch.func.functional_call(net, params, (x, w)))
