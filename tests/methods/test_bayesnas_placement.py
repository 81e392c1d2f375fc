"""BayesNAS' edge switch multiplies the edge's INPUT (BayesNAS/BayesNAS search/OneShot.py line
62, `x = x * self.switch_all`), not every op's output; clipping off as in their lib.py."""
import pytest
import torch

from methods.bayesnas import BayesNAS
from spaces.base import input_key

CONV1X1 = 2   # NB201 column of nor_conv_1x1 (ReLU-Conv-BN)


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def _method(space_name, placement, **supernet):
    from benchmark.harness.config import resolve_config
    from spaces import get_space
    space = get_space(space_name)
    cfg = resolve_config(space_name, "bayesnas", 0, "smoke",
                         sets=[f"method.switch_placement={placement}"])
    torch.manual_seed(0)
    net = space.supernet(**supernet).double()
    m = BayesNAS(space, net, cfg, torch.Generator().manual_seed(0))
    for d in (m.edge_sw, m.op_sw):
        for v in d.values():
            v.data = v.data.double()
    for k in m.mask:
        m.mask[k] = m.mask[k].double()
    return m


def _edge_grad(m, x, y, key, row):
    nll, _ = m.loss(m.mixing_weights(), (x, y))
    (g,) = torch.autograd.grad(nll, m.edge_sw[key])
    return g.reshape(-1)[row]


def test_edge_switch_gradient_on_a_relu_conv_bn_edge_depends_on_placement():
    """Edge 1<-0 carries only nor_conv_1x1 (ReLU-Conv-BN, batch statistics): on its input
    the BN cancels the switch's scale, so the switch gets (almost) no gradient and no
    curvature; on the op's output it gets the whole edge's gradient."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=g)
    grads, curv = {}, {}
    for placement in ("input", "output"):
        m = _method("nb201", placement, C=4, N=1, impl="reference")
        with torch.no_grad():
            m.op_sw["alpha"][0].zero_()
            m.op_sw["alpha"][0, CONV1X1] = 1.0
        grads[placement] = _edge_grad(m, x, y, "alpha", 0).item()
        curv[placement] = m.curvature((x[:4], y[:4]))[0]["alpha"][0].item()
    assert abs(grads["output"]) > 1e-4
    # what is left on the input is the BN's eps (var + eps is not scale-free)
    assert abs(grads["input"]) < 1e-3 * abs(grads["output"])
    assert curv["output"] > 1e-6 and curv["input"] < 1e-3 * curv["output"]


def test_input_placement_feeds_the_switch_to_every_op_of_the_edge():
    """Where the edge has a skip, the input switch scales its output linearly: the weights
    carry op switches on outputs and the edge switch as the space's input multiplier."""
    m = _method("nb201", "input", C=4, N=1, impl="reference")
    w = m.mixing_weights()
    assert set(w) == {"alpha", input_key("alpha")}
    assert w[input_key("alpha")] is m.edge_sw["alpha"]
    assert torch.equal(w["alpha"], m.op_sw["alpha"] * m.mask["alpha"])
    out = _method("nb201", "output", C=4, N=1, impl="reference").mixing_weights()
    assert set(out) == {"alpha"}


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_nb201_input_multiplier_is_the_edge_input(impl):
    """Both supernets: m_e = c scales edge e's input; m = 1 gives the plain forward; fast
    equals reference (float64) with multipliers, values and gradients."""
    from spaces.nb201 import NB201Space
    space = NB201Space()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 32, 32, generator=g, dtype=torch.float64)
    w = torch.softmax(torch.randn(6, 5, generator=g, dtype=torch.float64), -1)
    m = (torch.rand(6, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    torch.manual_seed(3)
    net = space.supernet(C=4, N=1, impl=impl).double()
    torch.manual_seed(3)
    ref = space.supernet(C=4, N=1, impl="reference").double()
    a = net(x, {"alpha": w, input_key("alpha"): m})
    b = ref(x, {"alpha": w, input_key("alpha"): m})
    assert torch.allclose(a, b, atol=1e-12)
    (ga,) = torch.autograd.grad(a.sum(), m)
    (gb,) = torch.autograd.grad(b.sum(), m)
    assert torch.allclose(ga, gb, atol=1e-10) and ga.abs().sum() > 0
    ones = torch.ones(6, dtype=torch.float64)
    assert torch.allclose(net(x, {"alpha": w, input_key("alpha"): ones}), net(x, {"alpha": w}), atol=1e-12)


def test_nb1shot1_block_input_switch():
    """1Shot1: the `ops` row switch multiplies the choice block's input. With only the
    3x3 ConvBnRelu op on, the BN cancels it; on the output placement it does not."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=g)
    grads = {}
    for placement in ("input", "output"):
        m = _method("nb1shot1-s1", placement, C=2, layers=3)
        assert (input_key("ops") in m.mixing_weights()) == (placement == "input")
        with torch.no_grad():
            m.op_sw["ops"][0].copy_(torch.tensor([0.0, 1.0, 0.0]))   # conv3x3-bn-relu only
        grads[placement] = _edge_grad(m, x, y, "ops", 0).item()
    assert abs(grads["output"]) > 1e-5
    assert abs(grads["input"]) < 1e-3 * abs(grads["output"])


def test_no_gradient_clipping_by_default(monkeypatch):
    """The authors' switch training does not clip (lib.py train_switch)."""
    from methods.base import StepContext
    calls = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(a))
    g = torch.Generator().manual_seed(5)
    batch = (torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64), torch.tensor([1, 2]))
    for clip, expected in ((None, 0), (True, 1)):
        from benchmark.harness.config import resolve_config
        from spaces.nb201 import NB201Space
        space = NB201Space()
        sets = [] if clip is None else ["method.clip_gradients=true"]
        cfg = resolve_config("nb201", "bayesnas", 0, "smoke", sets=sets)
        net = space.supernet(C=2, N=1, impl="reference").double()
        m = BayesNAS(space, net, cfg, torch.Generator().manual_seed(0))
        m.edge_sw["alpha"].data = m.edge_sw["alpha"].data.double()
        m.op_sw["alpha"].data = m.op_sw["alpha"].data.double()
        m.mask["alpha"] = m.mask["alpha"].double()
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        calls.clear()
        m.weight_step(batch, StepContext(net, opt, 1, 1, 5.0, 2, 2))
        assert len(calls) == expected


def test_darts_space_edge_input_multiplier():
    """The DARTS search network: input_key('normal'/'reduce') (14,) multiplies each edge's
    input; ones give the plain forward; BayesNAS passes its edge switches there."""
    from spaces import get_space
    space = get_space("darts")
    assert set(space.input_scaled) == {"normal", "reduce"}
    torch.manual_seed(0)
    net = space.supernet(C=4, layers=3).double()
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)
    w = {k: torch.softmax(torch.randn(14, 8, generator=g, dtype=torch.float64), -1) for k in ("normal", "reduce")}
    ones = {input_key(k): torch.ones(14, dtype=torch.float64) for k in w}
    net.train()
    assert torch.allclose(net(x, {**w, **ones}), net(x, w), atol=1e-12)
    m = (torch.rand(14, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    out = net(x, {**w, input_key("normal"): m})
    (gm,) = torch.autograd.grad(out.sum(), m)
    assert gm.abs().sum() > 0
    b = _method("darts", "input", C=4, layers=3)
    assert set(b.mixing_weights()) == {"normal", "reduce", input_key("normal"), input_key("reduce")}
