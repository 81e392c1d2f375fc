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
