import pytest
import torch
import torch.nn.functional as F

from methods.bayesnas import BayesNAS, ggn_diagonal
from tests.e2e import check_layout, run_tiny


def _linear_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(16, 7, 4, generator=g, dtype=torch.float64)   # logits = feats @ theta
    y = torch.randint(0, 4, (16,), generator=g)
    theta = torch.randn(7, generator=g, dtype=torch.float64)
    return feats, y, theta


def test_ggn_equals_exact_hessian_when_logits_linear():
    feats, y, theta = _linear_problem()
    fn = lambda t: torch.einsum("nkc,k->nc", feats, t)  # noqa: E731
    exact = torch.autograd.functional.hessian(lambda t: F.cross_entropy(fn(t), y), theta).diagonal()
    ours = ggn_diagonal(fn, theta, y)
    assert torch.allclose(ours, exact, rtol=1e-8, atol=1e-10)


def test_curvature_non_negative_on_a_nonlinear_network():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(32, 5, generator=g)
    y = torch.randint(0, 3, (32,), generator=g)
    w1, w2 = torch.randn(5, 8, generator=g), torch.randn(8, 3, generator=g)
    # Switch-like gates on hidden units: logits nonlinear in theta; exact Hessian may be < 0.
    fn = lambda t: torch.tanh((x @ w1) * t) @ w2 * t[:3].sum()  # noqa: E731
    theta = torch.randn(8, generator=g)
    h = ggn_diagonal(fn, theta, y)
    assert (h >= 0).all() and h.sum() > 0
    exact = torch.autograd.functional.hessian(lambda t: F.cross_entropy(fn(t), y), theta).diagonal()
    assert (exact < 0).any()  # the case the GGN guards against


def test_hard_update_formula():
    s, gamma, h = torch.tensor([0.5, 1.0]), torch.tensor([0.2, 0.8]), torch.tensor([0.03, 0.0])
    new_gamma, omega = BayesNAS.hard_update(s, gamma, h, lam=0.01)
    ht = h[0] / 0.01
    c = 1 / (1 / gamma[0] + ht)
    om = (1 / gamma[0] - c / gamma[0] ** 2).abs().sqrt()
    assert torch.isclose(omega[0], om) and torch.isclose(new_gamma[0], 0.5 / om)
    assert torch.isfinite(new_gamma).all()          # zero curvature: no division by zero


def test_derivation_rule_on_nb201():
    from benchmark.harness.config import resolve_config
    from spaces.nb201 import NB201Space, parse_arch
    space = NB201Space()
    cfg = resolve_config("nb201", "bayesnas", 0, "smoke", sets=["method.threshold=0.5"])
    m = BayesNAS(space, space.supernet(C=4, N=1), cfg, torch.Generator().manual_seed(0))
    m.gamma_edge["alpha"] = torch.tensor([0.1, 0.9, 0.9, 0.9, 0.9, 0.9])
    m.gamma_op["alpha"] = torch.zeros(6, 5)
    m.gamma_op["alpha"][:, 3] = 1.0       # nor_conv_3x3 everywhere
    m.gamma_op["alpha"][:, 0] = 5.0       # `none` column ignored by the op argmax
    ops = parse_arch(m.derive())
    assert ops[0] == "none" and all(o == "nor_conv_3x3" for o in ops[1:])



def test_bayesnas_on_a_space_without_none_uses_the_spaces_rule():
    """1Shot1 (no `none` op): nothing masked; op argmax and top-k parents by gamma."""
    from benchmark.harness.config import resolve_config
    from spaces import get_space
    space = get_space("nb1shot1-s1")
    cfg = resolve_config("nb1shot1-s1", "bayesnas", 0, "smoke")
    m = BayesNAS(space, space.supernet(C=2, layers=3), cfg, torch.Generator().manual_seed(0))
    assert all(bool((v == 1).all()) for v in m.mask.values())
    for k, v in m.gamma_op.items():
        m.gamma_op[k] = torch.arange(v.numel(), dtype=torch.float).view_as(v)  # last entry best
    ops, parents = space.parse(m.derive())
    assert all(o == "conv1x1-bn-relu" for o in ops)       # the last op column everywhere
    assert parents[-1] == (3, 4)                           # output: the two highest-gamma inputs
    x = torch.randn(2, 3, 32, 32)
    assert m.supernet(x, m.mixing_weights()).shape == (2, 10)


@pytest.mark.slow
def test_bayesnas_end_to_end(tmp_path):
    recs = run_tiny("bayesnas", tmp_path, ["method.curvature_batch_size=4"])
    check_layout(recs)
    assert recs[-1]["diagnostics"]["bayesnas_update"] is True
    assert all(v >= 0 for row in recs[-1]["diagnostics"]["curvature_op"]["alpha"] for v in row)
    assert recs[-1]["arch"]["edge_switch"]["alpha"] != [1.0] * 6   # switches trained


def test_smoke_profile_small_curvature_batch_paper_full():
    from benchmark.harness.config import resolve_config
    assert resolve_config("nb201", "bayesnas", 0, "smoke").method_options == {"curvature_batch_size": 8}
    assert resolve_config("nb201", "bayesnas", 0, "paper").method_options == {}


def test_reverse_mode_curvature_equals_forward_mode():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (4,), generator=g)
    w1 = torch.randn(5, 40, generator=g, dtype=torch.float64)
    w2 = torch.randn(40, 3, generator=g, dtype=torch.float64)
    fn = lambda t: torch.tanh((x @ w1) * t) @ w2 * t[:3].sum()  # noqa: E731
    theta = torch.randn(40, generator=g, dtype=torch.float64)
    fwd = ggn_diagonal(fn, theta, y, mode="forward")
    rev = ggn_diagonal(fn, theta, y, mode="reverse")
    assert fwd.abs().sum() > 0 and torch.allclose(fwd, rev, rtol=1e-10, atol=1e-12)
    assert torch.equal(ggn_diagonal(fn, theta, y), rev)  # 12 logits < 40 switches: reverse


def test_curvature_scale_sum_is_batch_times_mean_and_default_is_sum():
    """H(sum) = B * H(mean), in ggn_diagonal and in the method; the default is the authors'
    sum over the batch (BayesNAS search/Algorithm.py, hessian_control_scalar)."""
    from benchmark.harness.config import resolve_config
    from spaces.nb201 import NB201Space
    feats, y, theta = _linear_problem()
    fn = lambda t: torch.tanh(torch.einsum("nkc,k->nc", feats, t))  # noqa: E731
    mean, total = ggn_diagonal(fn, theta, y, "mean"), ggn_diagonal(fn, theta, y, "sum")
    assert torch.allclose(total, len(y) * mean, rtol=1e-12) and (mean > 0).all()

    assert BayesNAS.Options().curvature_scale == "sum"
    space = NB201Space()
    g = torch.Generator().manual_seed(5)
    batch = (torch.randn(3, 3, 32, 32, generator=g), torch.randint(0, 10, (3,), generator=g))
    h, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # 30 small JVPs: thread start-up dominates on a shared CPU
    try:
        for scale in ("sum", "mean"):
            torch.manual_seed(0)
            cfg = resolve_config("nb201", "bayesnas", 0, "smoke", sets=[f"method.curvature_scale={scale}"])
            net = space.supernet(C=2, N=1, impl="reference")
            m = BayesNAS(space, net, cfg, torch.Generator().manual_seed(0))
            h[scale] = m.curvature(batch)
    finally:
        torch.set_num_threads(threads)
    for part in (0, 1):   # edge switches, op switches
        s, mn = h["sum"][part]["alpha"], h["mean"][part]["alpha"]
        assert torch.allclose(s, 3 * mn, rtol=1e-5, atol=1e-10) and s.abs().sum() > 0
    default = resolve_config("nb201", "bayesnas", 0, "paper")
    assert BayesNAS.Options(**default.method_options).curvature_scale == "sum"


def test_curvature_scale_rejects_unknown_values():
    import pytest
    from benchmark.harness.config import resolve_config
    with pytest.raises(ValueError, match="curvature_scale"):
        resolve_config("nb201", "bayesnas", 0, "smoke", sets=["method.curvature_scale=max"])


def test_update_applies_the_child_gamma_rule():
    """gamma_op <- (1/gamma_op' + 1/gamma_edge')^-1 after both HARD updates, from a known H."""
    from benchmark.harness.config import resolve_config
    from spaces.nb201 import NB201Space
    space = NB201Space()
    cfg = resolve_config("nb201", "bayesnas", 0, "smoke")
    m = BayesNAS(space, space.supernet(C=2, N=1), cfg, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        m.edge_sw["alpha"].copy_(torch.rand(6, generator=g) + 0.5)
        m.op_sw["alpha"].copy_(torch.rand(6, 5, generator=g) + 0.5)
    h_edge = {"alpha": torch.rand(6, generator=g) * 3}
    h_op = {"alpha": torch.rand(6, 5, generator=g) * 3}
    m.curvature = lambda batch: (h_edge, h_op)
    m.last_batch = (torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))
    s_e, s_o = m.edge_sw["alpha"].detach().clone(), m.op_sw["alpha"].detach().clone()
    ge0, go0 = m.gamma_edge["alpha"].clone(), m.gamma_op["alpha"].clone()
    lam_o, lam_c = m.opts.lambda_origin, m.opts.lambda_child

    def hard(s, gamma, h, lam):   # written out again: C, omega, gamma = |s| / omega
        c = 1 / (1 / gamma + h / lam)
        omega = (1 / gamma - c / gamma ** 2).abs().sqrt()
        return s.abs() / omega, omega
    ge, om_e = hard(s_e, ge0, h_edge["alpha"], lam_o)
    go, om_o = hard(s_o, go0, h_op["alpha"], lam_c)
    m.epoch_end(1, None)
    assert torch.allclose(m.gamma_edge["alpha"], ge) and torch.allclose(m.omega_edge["alpha"], om_e)
    assert torch.allclose(m.omega_op["alpha"], om_o)
    child = 1 / (1 / go + 1 / ge.unsqueeze(-1))
    assert torch.allclose(m.gamma_op["alpha"], child)
    assert not torch.allclose(child, go, rtol=1e-2)   # the rule matters in this case
