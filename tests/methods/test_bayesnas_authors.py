"""BayesNAS on the DARTS space: the `paper` profile is the authors' procedure (BayesNAS/BayesNAS
search/main.py, dataloader.py, lib.py, Algorithm.py, OneShot.py); `method.procedure=darts-protocol`
is the suite's earlier adaptation under DARTS's protocol (docs/reference/methods.md#bayesnas)."""
import numpy as np
import pytest
import torch

from benchmark.harness.config import resolve_config
from benchmark.harness.data import make_split
from methods.base import StepContext
from methods.bayesnas import BayesNAS
from spaces import get_space
from spaces.darts import PROFILES as DARTS_PROFILES


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def test_paper_profile_is_the_authors_procedure():
    """main.py lines 13-17 (batch 18, lr 0.1, wd 1e-4, momentum 0.9), 27 (epochs = 1: one
    weights epoch, then one switch epoch), no scheduler; dataloader.py lines 107-112 (10%/90%);
    OneShot.py (C = 36, 8 cells)."""
    cfg = resolve_config("darts", "bayesnas", 0, "paper")
    assert (cfg.epochs, cfg.batch_size, cfg.split, cfg.train_subset) == (2, 18, "random-10-90", None)
    assert (cfg.w_lr, cfg.w_lr_min, cfg.w_momentum, cfg.w_nesterov, cfg.w_weight_decay) == (0.1, 0.1, 0.9, False, 1e-4)
    assert cfg.supernet == {"C": 36, "layers": 8, "impl": "oneshot"}
    assert cfg.method_options == {} and cfg.hessian_every == 0   # procedure "auto"
    assert BayesNAS.procedure_of("auto", "darts", "paper") == "authors"
    smoke = resolve_config("darts", "bayesnas", 0, "smoke")
    assert smoke.supernet["impl"] == "oneshot" and BayesNAS.procedure_of("auto", "darts", "smoke") == "authors"
    assert smoke.epochs == 2 and smoke.split == "random-10-90"


def test_fair_profile_runs_the_darts_protocol():
    """`fair` (one DARTS schedule for every method) keeps none of the authors' fields, and the
    procedure follows it; elsewhere "auto" is the darts-protocol too."""
    from benchmark.harness.config import space_profile
    cfg = resolve_config("darts", "bayesnas", 0, "fair")
    base = space_profile("darts", "fair")
    assert (cfg.epochs, cfg.batch_size, cfg.split, cfg.supernet) == (
        base["epochs"], base["batch_size"], base["split"], base["supernet"])
    assert cfg.method_options.get("procedure", "auto") == "auto"
    assert BayesNAS.procedure_of("auto", "darts", "fair") == "darts-protocol"
    assert BayesNAS.procedure_of("auto", "nb201", "paper") == "darts-protocol"
    assert BayesNAS.procedure_of("authors", "nb201", "paper") == "authors"


@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_darts_protocol_variant_is_the_space_profile(profile):
    """One --set gives back the DARTS protocol for every field the authors' procedure sets;
    the user's own --set of a field still wins; other methods on the DARTS space unchanged."""
    cfg = resolve_config("darts", "bayesnas", 0, profile, sets=["method.procedure=darts-protocol"])
    base = DARTS_PROFILES[profile]
    for key in ("epochs", "batch_size", "split", "train_subset", "w_lr", "w_lr_min", "w_nesterov",
                "w_weight_decay", "hessian_every", "supernet"):
        assert getattr(cfg, key) == base[key], key
    mine = resolve_config("darts", "bayesnas", 0, profile,
                          sets=["method.procedure=darts-protocol", "epochs=3", "batch_size=7"])
    assert (mine.epochs, mine.batch_size) == (3, 7)
    other = resolve_config("darts", "darts", 0, profile)
    assert other.supernet == base["supernet"] and other.epochs == base["epochs"]


def test_split_random_10_90_is_two_independent_draws():
    """A random 10% and the 90% left by a second, independent random_split: they overlap."""
    a, b, source = make_split("random-10-90", 50000, 3, None)
    assert (len(a), len(b), source) == (5000, 45000, "random-10-90:seed=3")
    assert 0 < len(np.intersect1d(a, b)) < 5000
    a2, b2, _ = make_split("random-10-90", 50000, 3, None)
    assert (a == a2).all() and (b == b2).all()


def _tiny(procedure="auto"):
    space = get_space("darts")
    cfg = resolve_config("darts", "bayesnas", 0, "smoke", sets=[f"method.procedure={procedure}",
                                                                 "supernet.C=2"])
    torch.manual_seed(0)
    net = space.supernet(**cfg.supernet)
    m = BayesNAS(space, net, cfg, torch.Generator().manual_seed(0))
    w_opt = torch.optim.SGD(net.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    return m, cfg, StepContext(net, w_opt, 1, cfg.epochs, cfg.grad_clip, 16, 16)


def _batch(seed, n=8):  # the smoke profile's batch size
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.slow
def test_authors_phases_weights_epoch_then_switch_epoch_and_one_update():
    """Epoch 1 (lib.py `train`): weights only, switches stay 1, no update; epoch 2 (lib.py
    `train_switch`): switches train and the one update follows; only epoch 2 runs on the
    architecture half (the 90%)."""
    m, cfg, ctx = _tiny()
    assert m.cells == {"normal": 6, "reduce": 2} and m.procedure == "authors"
    assert m.edge_sw["normal"].shape == (6, 14) and m.op_sw["reduce"].shape == (2, 14, 8)
    assert [m.trains_on_arch_half(e) for e in (1, 2)] == [False, True]
    gamma0 = {k: v.clone() for k, v in m.gamma_op.items()}
    m.weight_step(_batch(0), ctx)
    assert all((v == 1).all() for v in m.op_sw.values()) and all((v == 1).all() for v in m.edge_sw.values())
    assert m.epoch_end(1, ctx) == {"bayesnas_phase": "weights"}
    assert all(torch.equal(gamma0[k], m.gamma_op[k]) for k in gamma0)
    ctx.epoch = 2
    m.weight_step(_batch(1), ctx)
    assert any((v != 1).any() for v in m.op_sw.values())
    d = m.epoch_end(2, ctx)
    assert d["bayesnas_update"] and d["bayesnas_phase"] == "switch"
    for k in m.gamma_op:  # gamma and omega shared by the cells of a type after the update
        assert torch.equal(m.gamma_op[k], m.gamma_op[k][:1].expand_as(m.gamma_op[k]))
        assert torch.equal(m.omega_edge[k], m.omega_edge[k][:1].expand_as(m.omega_edge[k]))
    g = get_space("darts").genotype_info(m.derive())   # each node: the network's 2 edges
    normal_edges = {(k // 2 + 2, src) for k, (_, src) in enumerate(g["normal"])}
    assert normal_edges == {(2, 0), (2, 1), (3, 0), (3, 1), (4, 0), (4, 1), (5, 1), (5, 2)}
    reduce_edges = {(k // 2 + 2, src) for k, (_, src) in enumerate(g["reduce"])}
    assert reduce_edges == {(2, 0), (2, 1), (3, 0), (3, 2), (4, 0), (4, 2), (5, 0), (5, 2)}


def test_group_update_is_the_authors_formula():
    """Algorithm.py lines 339-362 by hand: c_i = 1/(1/g_i + H_i/lam); omega = sqrt(sum_i
    |-c_i/g_L^2 + 1/g_L|) with g_L the last cell's gamma; gamma = ||s||_2/omega; and with one
    cell it is the shared-switch update."""
    s = torch.tensor([[0.5], [2.0], [1.5]])
    gamma = torch.tensor([[0.2], [0.4], [0.8]])
    h = torch.tensor([[3.0], [1.0], [0.5]])
    lam = 0.01
    c = 1 / (1 / gamma + h / lam)
    omega = torch.sqrt(torch.sum(torch.abs(-c / gamma[2] ** 2 + 1 / gamma[2]), dim=0))
    g_new, o_new = BayesNAS.group_update(s, gamma, h, lam)
    assert torch.allclose(o_new, omega.expand(3, 1))
    assert torch.allclose(g_new, (s.norm(dim=0) / omega).expand(3, 1))
    g1, o1 = BayesNAS.group_update(s[:1], gamma[:1], h[:1], lam)
    g_ref, o_ref = BayesNAS.hard_update(s[0], gamma[0], h[0], lam)
    assert torch.allclose(g1[0], g_ref) and torch.allclose(o1[0], o_ref)


def test_cutout_masks_a_clipped_16_square_with_zeros():
    """dataloader.py `cutout(16, 1, False)` after normalisation: centre in [0, 32], the square
    [c-8, c+8) clipped, set to 0."""
    m, _, _ = _tiny()
    x = torch.ones(64, 3, 32, 32)
    out = m.cutout(x)
    zero = (out[:, 0] == 0)
    for i in range(64):
        rows, cols = zero[i].any(1).nonzero().flatten(), zero[i].any(0).nonzero().flatten()
        assert 8 <= len(rows) <= 16 and 8 <= len(cols) <= 16
        assert zero[i].sum() == len(rows) * len(cols)  # one rectangle
        assert (out[i, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] == 0).all()
    assert (zero.sum((1, 2)) < 256).any()  # some clipped at a border


@pytest.mark.slow
def test_switch_epoch_runs_over_the_architecture_half(tmp_path, monkeypatch):
    """The loop hands the switch epoch the batches of the other split part (the authors' 90%):
    with parts of 8 and 24 images and batch 8, epoch 1 has 1 step and epoch 2 has 3."""
    import benchmark.harness.worker as worker
    from tests.e2e import run_tiny
    monkeypatch.setattr(worker, "make_split", lambda kind, n, seed, f: (
        np.arange(8), np.arange(8, 32), "random-10-90:seed=0"))
    steps = {}
    real = BayesNAS.weight_step

    def counting(self, batch, ctx):
        steps[ctx.epoch] = steps.get(ctx.epoch, 0) + 1
        return real(self, batch, ctx)
    monkeypatch.setattr(BayesNAS, "weight_step", counting)
    rec = run_tiny("bayesnas", tmp_path, space="darts", epochs=2,
                   sets=["train_subset=24", "supernet.C=2", "method.curvature_batch_size=1"])
    assert steps == {1: 1, 2: 3}
    assert rec[1]["diagnostics"] == {"bayesnas_phase": "weights"}
    assert rec[2]["diagnostics"]["bayesnas_update"] is True


def test_reverse_curvature_in_chunks_equals_forward_mode(monkeypatch):
    """The batched reverse pass in chunks of REVERSE_CHUNK logits (memory bound) gives the
    forward-mode GGN diagonal."""
    import methods.bayesnas as B
    g = torch.Generator().manual_seed(0)
    W, X, V = torch.randn(30, 5, generator=g), torch.randn(6, 30, generator=g), torch.randn(5, 10, generator=g)

    def fn(t):
        return torch.tanh(X @ (W * t.view(30, 1))) @ V
    theta = torch.rand(30, generator=g)
    p = torch.softmax(fn(theta), -1)
    monkeypatch.setattr(B, "REVERSE_CHUNK", 7)   # 60 logits in 9 passes
    chunked = B._ggn_diagonal_reverse(fn, theta, p, "sum")
    forward = B.ggn_diagonal(fn, theta, None, "sum", mode="forward")
    assert torch.allclose(chunked, forward, rtol=1e-4, atol=1e-6)


def test_bad_procedure_is_refused_naming_the_option():
    from benchmark.harness.config import ConfigError
    with pytest.raises(ConfigError, match="method.procedure must be one of 'auto', 'authors', 'darts-protocol'"):
        resolve_config("darts", "bayesnas", 0, "smoke", sets=["method.procedure=paper"])
    with pytest.raises(ConfigError, match="method.cutout"):
        resolve_config("darts", "bayesnas", 0, "smoke", sets=["method.cutout=40"])


def test_authors_procedure_drops_the_last_partial_batch():
    """dataloader.py lines 120, 129: drop_last=True (5000 images at batch 18 leave 14)."""
    m, cfg, ctx = _tiny()
    before = [p.detach().clone() for p in m.supernet.parameters()]
    x, y = _batch(0, n=cfg.batch_size - 1)
    assert m.weight_step((x, y), ctx) == {}
    assert all(torch.equal(a, b) for a, b in zip(before, m.supernet.parameters()))
