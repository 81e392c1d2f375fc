"""The NB201 cell space: arch strings, derivation, supernet, standalone networks."""
from __future__ import annotations

import pytest
import torch

from spaces import get_space
from spaces.nb201 import EDGES, OPS, ArchStringError, format_arch, network, parse_arch

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_round_trip_every_op_on_every_edge():
    for k in range(len(EDGES)):
        for op in OPS:
            ops = ["nor_conv_3x3"] * len(EDGES)
            ops[k] = op
            s = format_arch(ops)
            assert parse_arch(s) == tuple(ops)
            assert format_arch(parse_arch(s)) == s
    assert format_arch(parse_arch(BEST)) == BEST


@pytest.mark.parametrize("bad,needle", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 nodes"),
    ("|conv~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "unknown op 'conv'"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "expected 0"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "2 inputs"),
    ("nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "start and end"),
    ("|nor_conv_3x3|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "op~input"),
])
def test_validation_names_the_problem(bad, needle):
    with pytest.raises(ArchStringError, match=needle):
        parse_arch(bad)


def test_derive_is_per_edge_argmax_including_none():
    space = get_space("nb201")
    alpha = torch.zeros(6, 5)
    chosen = [0, 3, 1, 4, 2, 0]
    for e, o in enumerate(chosen):
        alpha[e, o] = 1.0
    g = space.derive({"alpha": alpha})
    assert parse_arch(g) == tuple(OPS[o] for o in chosen)
    assert space.param_free_ops(g) == 4  # none, skip, pool, none


@pytest.mark.parametrize("arch,params", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 1_531_546),
])
def test_standalone_parameter_count_matches_benchmark(arch, params):
    assert sum(p.numel() for p in network(arch).parameters()) == params


def test_standalone_param_count_ignores_parameter_free_cells():
    # With only parameter-free ops, the cells add nothing: stem + 2 ResNet blocks + BN + linear.
    free = network(format_arch(["skip_connect"] * 6))
    conv1 = network(format_arch(["nor_conv_1x1"] + ["skip_connect"] * 5))
    per_cell_1x1 = [16 * 16 + 32] * 5 + [32 * 32 + 64] * 5 + [64 * 64 + 128] * 5
    assert sum(p.numel() for p in conv1.parameters()) - sum(p.numel() for p in free.parameters()) == sum(per_cell_1x1)
    assert network(BEST, num_classes=100).classifier.out_features == 100


def test_supernet_forward_backward_reaches_weights_and_mixing_weights():
    space = get_space("nb201")
    net = space.supernet(C=4, N=1)
    alpha = (1e-3 * torch.randn(6, 5)).requires_grad_()
    x = torch.randn(3, 3, 32, 32)
    out = net(x, space.normalize({"alpha": alpha}))
    assert out.shape == (3, 10)
    out.logsumexp(1).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    # BN in the search cells is affine-free and uses batch statistics.
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) and not m.affine]
    assert bns and all(not m.track_running_stats for m in bns)


def test_one_hot_weights_equal_the_standalone_cell():
    """A supernet mixing with one-hot weights computes that cell (same conv weights)."""
    space = get_space("nb201")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    w = space.sample_weights(gen)
    assert torch.all(w["alpha"].sum(1) == 1)
    arch = space.derive(w)
    net = space.supernet(C=4, N=1, affine=True, track_running_stats=True).eval()
    std = network(arch, C=4, N=1).eval()
    # copy the chosen op of every edge into the standalone cell
    sd = {}
    for k, v in net.state_dict().items():
        parts = k.split(".")[1:]  # drop the supernet's "net." prefix
        if len(parts) > 3 and parts[2] == "edges":
            edge, op = int(parts[3]), int(parts[4])
            if op != int(w["alpha"][edge].argmax()):
                continue
            parts = parts[:2] + ["ops", str(edge)] + parts[5:]
        sd[".".join(parts)] = v
    std.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x, w), std(x), rtol=1e-5, atol=1e-5)
