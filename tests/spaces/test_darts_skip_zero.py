"""The reference DARTS search network's `skip_zero` (random search with weight sharing as the
proxyless branch of Li & Talwalkar's DARTS fork runs a sampled cell: only its ops) and the
space's samples over all 8 ops (their darts_wrapper_discrete.py `sample_arch`)."""
from __future__ import annotations

import pytest
import torch

from spaces.darts import DartsSpace
from spaces.darts.ops import NONE, OPS
from spaces.darts.search_network import SearchNetwork

SPACE = DartsSpace()
SEP3 = OPS.index("sep_conv_3x3")


def _net(skip_zero: bool, C: int = 4) -> SearchNetwork:
    torch.manual_seed(0)
    return SearchNetwork(C, 3, skip_zero=skip_zero)


def _stats(net) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}


def _sample(seed: int, include_none: bool = True) -> dict:
    return SPACE.sample_weights(torch.Generator().manual_seed(seed), include_none=include_none)


def test_samples_draw_among_all_8_ops_when_asked():
    """include_none=True: ops among all 8 (darts_wrapper_discrete.py line 266); still 2
    distinct inputs per node with weight 1 each. The default keeps the 7 non-`none` ops."""
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(len(OPS))
    for _ in range(100):
        w = SPACE.sample_weights(g, include_none=True)
        for cell in ("normal", "reduce"):
            seen += w[cell].sum(0)
            start = 0
            for i in range(4):
                block = w[cell][start:start + i + 2]
                assert block.sum() == 2 and (block.sum(1) <= 1).all()
                start += i + 2
    assert seen[NONE] > 0 and (seen > 0).all()
    g = torch.Generator().manual_seed(0)
    assert all(SPACE.sample_weights(g)[c][:, NONE].sum() == 0 for _ in range(100) for c in ("normal", "reduce"))


def test_skip_zero_same_function_and_gradients_of_the_ops_that_run():
    """A one-hot sample: the same logits as every op running; the ops that ran get the same
    gradients; a skipped op's parameters get none (autograd never reaches them)."""
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    w = _sample(3)
    full, skip = _net(False), _net(True)
    a, b = full(x, w), skip(x, w)
    assert torch.allclose(a, b, atol=1e-6)
    a.sum().backward()
    b.sum().backward()
    grads = dict(full.named_parameters())
    skipped = 0
    for name, p in skip.named_parameters():
        if p.grad is None:
            skipped += 1
            assert grads[name].grad.abs().max() == 0, name   # a zero-weight op's gradient is 0
        else:
            assert torch.allclose(p.grad, grads[name].grad, atol=1e-5), name
    assert skipped > 0
    edge, cell = 0, skip.cells[0]   # a normal cell: edge 0's unsampled conv has no gradient
    o = next(o for o in range(len(OPS)) if w["normal"][edge, o] == 0 and list(cell.edges[edge].ops[o].parameters()))
    assert all(p.grad is None for p in cell.edges[edge].ops[o].parameters())


def test_skip_zero_leaves_the_statistics_of_unsampled_ops():
    """Train mode, one step: with skip_zero the BN running statistics of the ops the sample
    does not hold stay where they were, those of the sampled ops move; without it (every op
    runs, as quark0/darts and the fork's master) every op's move."""
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    w = _sample(3)
    for skip_zero in (True, False):
        net = _net(skip_zero)
        before = _stats(net)
        net.train()
        net(x, w)
        after = _stats(net)
        for c, cell in enumerate(net.cells):
            ww = w["reduce" if cell.reduction else "normal"]
            for e in range(14):
                for o in (SEP3, OPS.index("max_pool_3x3")):   # a conv's last BN, the pool's BN
                    key = (f"cells.{c}.edges.{e}.ops.{o}.1.3" if o == SEP3
                           else f"cells.{c}.edges.{e}.ops.{o}.1")
                    # mean and variance (a node fed only by `none` is zero: its mean stays 0)
                    moved = any(not torch.equal(before[f"{key}.running_{s}"], after[f"{key}.running_{s}"])
                                for s in ("mean", "var"))
                    assert moved == (bool(ww[e, o]) or not skip_zero), (skip_zero, c, e, o)


def test_weights_that_need_a_gradient_are_never_skipped():
    """A method differentiating the weights (DARTS) gets every op, skip_zero or not."""
    x = torch.randn(2, 3, 8, 8)
    w = {k: v.requires_grad_() for k, v in _sample(3).items()}
    net = _net(True)
    before = _stats(net)
    net.train()
    net(x, w).sum().backward()
    after = _stats(net)
    bns = {k.rsplit(".", 1)[0] for k in before}
    assert all(any(not torch.equal(before[f"{b}.{s}"], after[f"{b}.{s}"]) for s in ("running_mean", "running_var"))
               for b in bns)
    assert all(p.grad is not None for p in net.parameters())
    assert w["normal"].grad is not None


POOL_BN = (".ops.1.1.", ".ops.2.1.")   # the BN after max_pool_3x3 / avg_pool_3x3 of an edge


def _ref_and_fast(seed: int):
    from spaces.darts.fast import FastSearchNetwork
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    w = _sample(seed)
    ref = _net(True)
    torch.manual_seed(0)
    fast = FastSearchNetwork(4, 3, skip_zero=True, channels_last=False)
    ref.train()
    fast.train()
    out = ref(x, w), fast(x, w)
    return out, _stats(ref), _stats(fast.to_reference())


def test_reference_and_fast_skip_zero_agree():
    """The fast network's skip_zero (spaces/darts/fast.py) skips the same ops: the same logits
    and the same BN statistics of every conv op after a training step. (Its skipped
    parameters get zero gradients where the reference's get none: see the module docstring of
    spaces/darts/search_network.py; its pools' BN: the next test.)"""
    (a, b), sr, sf = _ref_and_fast(5)
    assert torch.allclose(a, b, atol=1e-5)
    conv = [k for k in sr if not any(p in k for p in POOL_BN)]
    assert max((sr[k] - sf[k]).abs().max().item() for k in conv) < 1e-5


def test_reference_and_fast_skip_zero_agree_on_pool_statistics():
    """The fast network keeps pool-BN statistics per edge: with skip_zero, an unsampled edge's
    pool BN does not move when another out-edge of its source ran that pool."""
    _, sr, sf = _ref_and_fast(5)
    pools = [k for k in sr if any(p in k for p in POOL_BN)]
    assert max((sr[k] - sf[k]).abs().max().item() for k in pools) < 1e-5


def test_a_node_whose_inputs_are_all_skipped_is_zero():
    """All-zero weights (no op runs): the cells still produce their shapes (zeros)."""
    w = {k: torch.zeros(14, len(OPS)) for k in ("normal", "reduce")}
    x = torch.randn(2, 3, 8, 8)
    out = _net(True)(x, w)
    assert out.shape == (2, 10)
    assert torch.allclose(out, _net(False)(x, w), atol=1e-6)
