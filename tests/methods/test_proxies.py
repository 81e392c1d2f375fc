import math

import pytest
import torch
from torch import nn

from methods import proxies


def _codes_net():
    """Linear(identity) -> ReLU: the ReLU input is the input itself, so the codes are known."""
    lin = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
    return nn.Sequential(lin, nn.ReLU())


def test_naswot_known_log_determinant():
    # codes: s1 = (1,0,1), s2 = (1,1,0), s3 = (0,0,0); K_ij = units where samples agree.
    x = torch.tensor([[1.0, -1.0, 2.0], [0.5, 3.0, -1.0], [-1.0, -2.0, -0.5]])
    k = torch.tensor([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]], dtype=torch.float64)
    assert k[0, 2] == 1 and k[1, 2] == 1        # (1,0,1) vs (0,0,0): agree on unit 2 only
    expected = math.log(torch.linalg.det(k).item())   # det = 20
    assert proxies.score("naswot", _codes_net(), x, torch.zeros(3, dtype=torch.long)) == pytest.approx(expected)
    assert expected == pytest.approx(math.log(20))


def test_naswot_sums_over_relus_and_leaves_network_clean():
    net = nn.Sequential(_codes_net(), nn.ReLU())   # second ReLU sees the same codes' positives
    x = torch.tensor([[1.0, -1.0, 2.0], [0.5, 3.0, -1.0]])
    # ReLU 1 codes (1,0,1),(1,1,0): K1 = [[3,1],[1,3]]; ReLU 2 input = relu(x): same codes.
    assert proxies.score("naswot", net, x, None) == pytest.approx(math.log(36 - 4))
    assert all(not m._forward_pre_hooks for m in net.modules())


def test_synflow_and_grad_norm_known_values_and_errors():
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-2.0, 3.0]]))
    x = torch.randn(4, 2)
    # R = sum |w| * 1 -> dR/dw = 1 each -> score = |w1| + |w2|.
    assert proxies.score("synflow", lin, x, None) == pytest.approx(5.0)
    assert lin.weight[0, 0].item() == -2.0          # the caller's network is unchanged
    net = nn.Linear(2, 3)
    y = torch.tensor([0, 1, 2, 0])
    loss = nn.functional.cross_entropy(net(x), y)
    gw, gb = torch.autograd.grad(loss, [net.weight, net.bias])
    # conv and linear WEIGHTS only (zero-cost-nas p_utils.py): the bias does not count
    assert proxies.score("grad_norm", net, x, y) == pytest.approx(gw.norm().item(), rel=1e-5)
    assert gb.norm() > 0
    with pytest.raises(ValueError, match="naswot"):
        proxies.score("nope", net, x, y)


def test_synflow_turns_bn_off_and_sums_conv_and_linear_weights_only():
    """zero-cost-nas synflow: bn=False, |w * dR/dw| over Conv2d/Linear weights; a bias and a
    BN layer neither count nor (BN) act."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1, bias=True), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[1].weight.fill_(2.0)      # an affine BN that would scale the signal if it were kept
        net[1].bias.fill_(0.5)
    w1 = net[0].weight.detach().double().abs().reshape(3, 2).requires_grad_()
    b1 = net[0].bias.detach().double().abs()
    w2 = net[3].weight.detach().double().abs().requires_grad_()
    r = (w2 @ (w1 @ torch.ones(2, dtype=torch.float64) + b1)).sum()    # no BN, input of ones
    g1, g2 = torch.autograd.grad(r, [w1, w2])
    expected = ((w1 * g1).abs().sum() + (w2 * g2).abs().sum()).item()
    x = torch.randn(4, 2, 1, 1)
    assert proxies.score("synflow", net, x, None) == pytest.approx(expected, rel=1e-12)
    assert isinstance(net[1], nn.BatchNorm2d) and net[1].weight[0] == 2.0   # caller's net untouched
