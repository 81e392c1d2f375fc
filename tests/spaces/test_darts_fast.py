"""The fast DARTS search network (spaces/darts/fast.py) computes the reference's function:
logits, every weight gradient and the alpha gradients agree in float64 to 1e-12, in train and
eval mode, through normal and reduction cells, and the BN running statistics evolve alike."""
from __future__ import annotations

import copy
import types

import pytest
import torch
import torch.nn.functional as F

import spaces.darts.fast as fast_mod
from spaces.darts.fast import FastSearchCell, FastSearchNetwork
from spaces.base import input_key
from spaces.darts.ops import OPS
from spaces.darts.search_network import SearchCell, SearchNetwork

# float64 convolutions are slow on a CPU: the equality tests take minutes, so the whole file is
# outside the edit-test loop (the full suite runs it)
pytestmark = pytest.mark.slow

TOL = 1e-12  # relative to the scale of the quantity (its largest entry, at least 1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max().clamp(min=1.0)).item()


@pytest.fixture
def f64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _pair(C=4, layers=3, **kw):
    torch.manual_seed(0)
    ref = SearchNetwork(C, layers)
    torch.manual_seed(0)
    return ref, FastSearchNetwork(C, layers, **kw)


def _weights(seed, grad=True):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.softmax(3 * torch.randn(14, len(OPS), generator=g), -1).requires_grad_(grad)
            for k in ("normal", "reduce")}


def _grad_network(fast: FastSearchNetwork) -> SearchNetwork:
    """The fast network's weight gradients, unpacked into the reference layout."""
    g = copy.deepcopy(fast)
    for p, q in zip(g.parameters(), fast.parameters()):
        p.data = q.grad.clone() if q.grad is not None else torch.zeros_like(q)
    return g.to_reference()


def _stats(net: SearchNetwork) -> dict:
    return {k: v for k, v in net.state_dict().items() if "running" in k}


def _multipliers(seed):
    """Per-edge input multipliers of both cell types (BayesNAS's edge switches): mostly in
    (0.5, 1.5), plus the cases the fast path treats apart: negative (ReLU does not commute),
    exactly 0 (ReLU's and max pooling's derivative conventions), exactly 1."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in ("normal", "reduce"):
        m = 0.5 + torch.rand(14, generator=g)
        m[0], m[3], m[5], m[9], m[12] = -1.3, -0.7, 0.0, 1.0, -0.2
        out[input_key(k)] = m.requires_grad_()
    return out


def _compare(ref, fast, x, seed, mode, multipliers=False):
    """Largest differences of logits, alpha grads, weight grads, running stats (and multiplier
    grads) after one forward/backward in `mode`."""
    ref.train(mode == "train")
    fast.train(mode == "train")
    wr, wf = _weights(seed), _weights(seed)
    mr, mf = (_multipliers(seed), _multipliers(seed)) if multipliers else ({}, {})
    out_r, out_f = ref(x, {**wr, **mr}), fast(x, {**wf, **mf})
    up = torch.randn(out_r.shape, generator=torch.Generator().manual_seed(seed))
    (out_r * up).sum().backward()
    (out_f * up).sum().backward()
    d = {"logits": _rel(out_r, out_f), "alpha": max(_rel(wr[k].grad, wf[k].grad) for k in wr)}
    if multipliers:
        d["multipliers"] = max(_rel(mr[k].grad, mf[k].grad) for k in mr)
        assert min(mr[k].grad.abs().max().item() for k in mr) > 1e-3
    grads = dict(_grad_network(fast).named_parameters())
    d["weights"] = max(_rel(p.grad, grads[n]) for n, p in ref.named_parameters())
    sr, sf = _stats(ref), _stats(fast.to_reference())
    d["stats"] = max(_rel(sr[k], sf[k]) for k in sr)
    assert min(wr[k].grad.abs().max().item() for k in wr) > 1e-3  # the check has something to see
    return d


def _run_checks(C=4, layers=3, multipliers=False):
    ref, fast = _pair(C, layers)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    out = []
    for i, mode in enumerate(("train", "eval")):  # eval after the running statistics moved
        ref.zero_grad()
        fast.zero_grad()
        out.append((mode, _compare(ref, fast, x, 10 + i, mode, multipliers)))
    return out


def test_same_seed_same_initial_weights_and_layout():
    ref, fast = _pair(16, 8)
    back = fast.to_reference()
    for (n, p), (_, q) in zip(ref.state_dict().items(), back.state_dict().items()):
        assert torch.equal(p, q), n
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in ref.parameters()) == 1_930_618


def test_fast_equals_reference_in_float64(f64):
    """Logits, alpha and weight gradients, BN running statistics: train, then eval; layers=3
    has a normal cell and two reduction cells (one after a reduction: FactorizedReduce
    preprocessing), so stride-2 edges, FactorizedReduce skips and stride-1 edges all count."""
    for mode, d in _run_checks():
        for what, v in d.items():
            assert v < TOL, (mode, what, v)


@pytest.mark.parametrize("plant", ["avg_pool_counts_padding", "bn_eps", "bn_momentum", "dil_padding"])
def test_a_planted_error_in_one_op_is_caught(f64, monkeypatch, plant):
    """The equality check is not vacuous: one wrong detail of one fast op fails it."""
    if plant == "avg_pool_counts_padding":
        real = F.avg_pool2d
        fake = types.SimpleNamespace(**{n: getattr(F, n) for n in dir(F) if not n.startswith("__")})
        fake.avg_pool2d = lambda *a, **k: real(*a, **{**k, "count_include_pad": True})
        monkeypatch.setattr(fast_mod, "F", fake)
    elif plant == "bn_eps":
        monkeypatch.setattr(fast_mod, "EPS", 1e-3)
    elif plant == "bn_momentum":  # only the running statistics (and so eval mode) see it
        monkeypatch.setattr(fast_mod, "MOMENTUM", 0.2)
    elif plant == "dil_padding":  # dil_conv_5x5 with the 3x3 kernel's dilation... as sep: dilation 1
        real = F.conv2d
        fake = types.SimpleNamespace(**{n: getattr(F, n) for n in dir(F) if not n.startswith("__")})

        def conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
            if dilation == 2 and w.shape[-1] == 5:
                padding, dilation = 2, 1
            return real(x, w, b, stride, padding, dilation, groups)
        fake.conv2d = conv
        monkeypatch.setattr(fast_mod, "F", fake)
    worst = max(v for _, d in _run_checks() for v in d.values())
    assert worst > 1e-6, worst


def test_fast_equals_reference_with_input_multipliers_in_float64(f64):
    """BayesNAS's edge switches (spaces.base.input_key): edge e computes
    sum_o w[e, o] op_o(m[e] h). Logits, alpha, multiplier and weight gradients and BN running
    statistics agree to 1e-12 in train and then eval mode, through the normal and both
    reduction cells, with negative, zero and unit multipliers among the positive ones."""
    for mode, d in _run_checks(multipliers=True):
        assert set(d) == {"logits", "alpha", "multipliers", "weights", "stats"}
        for what, v in d.items():
            assert v < TOL, (mode, what, v)


@pytest.mark.parametrize("plant", ["kernel_scaled_whatever_the_sign", "kernel_scaled_at_zero",
                                   "pool_bn_as_scaled_bn", "max_pool_shared_for_non_positive",
                                   "max_pool_shared_at_zero"])
def test_a_planted_error_in_the_multiplier_path_is_caught(f64, monkeypatch, plant):
    """Each shortcut of the multiplier path, made wrong, fails the equality check: putting
    m into the conv kernel for m < 0 (ReLU(m h) != m ReLU(h)) or at m = 0 (same value, but
    the reference's gradient of m is 0 there), normalising the pool as m * BN(pool(h)) (BN
    removes the scale), sharing the max pool for m < 0 or at m = 0 (gradient again)."""
    if plant == "kernel_scaled_whatever_the_sign":
        monkeypatch.setattr(fast_mod, "_kernel_scalable", lambda m: [True] * len(m))
    elif plant == "kernel_scaled_at_zero":
        monkeypatch.setattr(fast_mod, "_kernel_scalable", lambda m: (m.detach() >= 0).tolist())
    elif plant == "pool_bn_as_scaled_bn":
        monkeypatch.setattr(fast_mod, "_pool_bn_factor", lambda a, var: a * torch.rsqrt(var + fast_mod.EPS))
    elif plant == "max_pool_shared_for_non_positive":
        monkeypatch.setattr(fast_mod, "_pool_shareable", lambda m: True)
    else:
        monkeypatch.setattr(fast_mod, "_pool_shareable", lambda m: bool(m.detach() >= 0))
    worst = max(v for _, d in _run_checks(multipliers=True) for v in d.values())
    assert worst > 1e-6, worst


def _ref_cell_with_ops(edge_ops, C=4):
    """A reference reduction cell whose edge k keeps only the ops edge_ops[k] (in that order):
    its MixedOp then mixes columns 0 .. len-1 of row k, as a per-edge op list would."""
    torch.manual_seed(3)
    cell = SearchCell(4, 4, C, C, C, reduction=True, reduction_prev=False)
    for k, mixed in enumerate(cell.edges):
        mixed.ops = torch.nn.ModuleList(mixed.ops[OPS.index(o)] for o in edge_ops[k])
    return cell


def test_per_edge_op_lists(f64):
    """Generic over the op list of each edge (op-set variants: 7 ops without `none`, two ops
    per edge...): each op is batched over the edges that have it."""
    lists = [OPS[1:], ("skip_connect", "sep_conv_3x3"), ("max_pool_3x3", "dil_conv_5x5", "avg_pool_3x3"),
             ("sep_conv_5x5", "none"), ("dil_conv_3x3",)]
    edge_ops = [lists[k % len(lists)] for k in range(14)]
    ref = _ref_cell_with_ops(edge_ops)
    fast = FastSearchCell(copy.deepcopy(ref), 4, edge_ops)
    g = torch.Generator().manual_seed(1)
    s0, s1 = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    w = torch.rand(14, len(OPS), generator=g)
    wr, wf = w.clone().requires_grad_(), w.clone().requires_grad_()
    out_r, out_f = ref(s0, s1, wr), fast(s0, s1, wf)
    assert out_r.shape == out_f.shape
    up = torch.randn(out_r.shape, generator=g)
    (out_r * up).sum().backward()
    (out_f * up).sum().backward()
    assert _rel(out_r, out_f) < TOL
    assert _rel(wr.grad, wf.grad) < TOL


def test_zero_weights_are_skipped_with_zero_gradients_as_the_reference(f64):
    """A one-hot sample (random search): same logits and weight gradients; the unsampled
    parameters get zero gradients (so SGD's weight decay and momentum act on them as in the
    reference); their BN running statistics stay put (skip_zero), or move as the reference's
    (skip_zero=False)."""
    from spaces.darts import DartsSpace
    w = DartsSpace().sample_weights(torch.Generator().manual_seed(0))
    w = {k: v.double() for k, v in w.items()}
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for skip in (True, False):
        ref, fast = _pair(skip_zero=skip)
        out_r, out_f = ref(x, w), fast(x, w)
        assert _rel(out_r, out_f) < TOL
        out_r.sum().backward()
        out_f.sum().backward()
        assert all(p.grad is not None for p in fast.parameters())
        grads = dict(_grad_network(fast).named_parameters())
        assert max(_rel(p.grad, grads[n]) for n, p in ref.named_parameters()) < TOL
        sr, sf = _stats(ref), _stats(fast.to_reference())
        moved = max((sr[k] - sf[k]).abs().max().item() for k in sr)
        assert (moved > 1e-3) if skip else (moved < TOL), (skip, moved)


def test_skip_zero_computes_less():
    """With one-hot weights the fast network runs only the sampled ops' convolutions."""
    from spaces.darts import DartsSpace
    w = DartsSpace().sample_weights(torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 8, 8)
    counts = {}
    for skip in (True, False):
        _, fast = _pair(skip_zero=skip)
        n = 0
        real = F.conv2d

        def conv(*a, **k):
            nonlocal n
            n += 1
            return real(*a, **k)
        fake = types.SimpleNamespace(**{m: getattr(F, m) for m in dir(F) if not m.startswith("__")})
        fake.conv2d = conv
        old, fast_mod.F = fast_mod.F, fake
        try:
            fast(x, w)
        finally:
            fast_mod.F = old
        counts[skip] = n
    assert counts[True] < counts[False] / 2, counts


def test_a_state_of_one_impl_is_refused_by_the_other_naming_both():
    ref, fast = _pair()
    with pytest.raises(ValueError, match="impl=fast, this network is impl=reference"):
        ref.load_state_dict(fast.state_dict())
    with pytest.raises(ValueError, match="impl=reference, this network is impl=fast"):
        fast.load_state_dict(ref.state_dict())
    fast.load_state_dict(fast.state_dict())  # its own loads
    ref.load_state_dict(ref.state_dict())


def test_space_builds_and_checks_the_impl():
    from spaces.darts import DartsSpace, PROFILES
    s = DartsSpace()
    assert all(p["supernet"]["impl"] == "fast" for p in PROFILES.values())  # the default since its speed was measured
    assert isinstance(s.supernet(C=4, layers=3, impl="fast"), FastSearchNetwork)
    assert type(s.supernet(C=4, layers=3, impl="reference")) is SearchNetwork
    s.check_supernet({"C": 4, "impl": "fast", "channels_last": False, "skip_zero": False})
    with pytest.raises(ValueError, match="supernet.impl must be one of 'reference', 'fast'"):
        s.check_supernet({"impl": "slow"})
    with pytest.raises(ValueError, match="supernet.channels_last: no such supernet argument"):
        s.check_supernet({"impl": "reference", "channels_last": True})


def _method_steps(method: str, impl: str, steps: int = 2, options: dict | None = None, **sets):
    """`steps` search steps of `method` (smoke profile, C=4, 3 cells, float64, fixed batches)
    through the suite's loop and hooks, then its epoch_end; returns the method's state, the
    step rows, the epoch_end output and the supernet's state in the reference layout."""
    import dataclasses
    from benchmark.harness.config import resolve_config
    from benchmark.harness.loop import search_step
    from methods.base import StepContext
    from methods.registry import get_method
    from spaces import get_space
    # bayesnas: the DARTS search network's procedure (its smoke profile runs the one-shot network)
    cfg = resolve_config("darts", method, 0, "smoke",
                         sets=["method.procedure=darts-protocol"] if method == "bayesnas" else None)
    cfg = dataclasses.replace(cfg, supernet={**cfg.supernet, "impl": impl, **sets},
                              method_options={**cfg.method_options, **(options or {})})
    space = get_space("darts")
    torch.manual_seed(0)
    net = space.supernet(**cfg.supernet)
    m = get_method(method)(space, net, cfg, torch.Generator().manual_seed(0), "cpu")
    opt = torch.optim.SGD(net.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    g = torch.Generator().manual_seed(7)
    batches = [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(10, (4,), generator=g)) for _ in range(2 * steps)]

    def eval_batches(n):
        gen = torch.Generator().manual_seed(9)
        while True:
            yield torch.randn(4, 3, 8, 8, generator=gen), torch.randint(10, (4,), generator=gen)
    ctx = StepContext(net, opt, 1, cfg.epochs, cfg.grad_clip, 32, 32, eval_batches)
    net.train()
    rows = [search_step(m, batches[2 * i], batches[2 * i + 1], ctx, cfg.arch_first) for i in range(steps)]
    end = m.epoch_end(1, ctx)
    state = {k: v for k, v in (net if impl == "reference" else net.to_reference()).state_dict().items()
             if not k.endswith("num_batches_tracked")}  # unused with momentum 0.1; fast keeps none
    return m.state_dict(), rows, end, state


def _close(a, b, path=""):
    """Recursive comparison of nested states/records: tensors and floats to 1e-9 relative."""
    if isinstance(a, torch.Tensor):
        if a.is_floating_point():
            assert _rel(a.double(), b.double()) < 1e-9, path
        else:
            assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, path


@pytest.mark.slow
@pytest.mark.parametrize("method", ["darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "bayesnas",
                                    "balenas", "balenas-tf", "random-ws"])
def test_every_method_steps_alike_on_both_impls_in_float64(f64, method):
    """Two search steps and the epoch end of every method, through its hooks (it never learns
    which impl runs): method state (alpha, ...), step rows, epoch-end output and every weight
    and BN statistic agree to 1e-9 between the impls in float64. skip_zero=false: with it on,
    ops with an exactly zero weight keep their BN statistics (see FastSearchNetwork). BayesNAS
    runs with its default switch placement: edge switches as per-edge input multipliers, its
    curvature (a batched reverse pass) through them."""
    ref = _method_steps(method, "reference")
    fast = _method_steps(method, "fast", skip_zero=False)
    for state in (ref[0], fast[0]):   # random-ws' per-parameter flags follow each impl's own
        flags = state.pop("has_grad", None)   # parameter layout (packed in fast): not comparable;
        assert flags is None or all(flags)    # with every op computed, every parameter has a grad
    for part, a, b in zip(("method", "rows", "epoch_end", "supernet"), ref, fast):
        _close(a, b, part)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "bayesnas",
                                    "balenas", "balenas-tf", "random-ws"])
def test_every_method_smoke_search_gives_the_same_records_on_both_impls_in_float64(f64, method, tmp_path):
    """The issue's done-when: a smoke search (the harness's whole epoch: data, steps, eval,
    derivation, records) of every method on the DARTS space gives the same records with either
    impl, in float64 (every float to 1e-9, genotypes and everything else equal; only the
    wall-clock `timing` differs). skip_zero=false, as above."""
    from tests.e2e import run_tiny
    sets = ["train_subset=8", "batch_size=8", "supernet.C=2"]
    if method == "balenas-tf":
        sets += ["method.num_candidates=2", "method.proxy_batch_size=4"]
    if method == "random-ws":
        sets += ["method.num_candidates=2", "method.valid_batch_size=4"]
    if method == "bayesnas":   # its DARTS-protocol adaptation: the authors' procedure runs its own
        sets += ["method.procedure=darts-protocol"]   # one-shot network (impl=oneshot), not these two
    ref = run_tiny(method, tmp_path / "ref", sets + ["supernet.impl=reference"], epochs=1, space="darts")
    fast = run_tiny(method, tmp_path / "fast", sets + ["supernet.impl=fast", "supernet.skip_zero=false"],
                    epochs=1, space="darts")
    assert len(ref) == len(fast) == 2  # epoch 0 (the initial architecture) and epoch 1
    for a, b in zip(ref, fast):
        assert set(a) == set(b)
        assert a["genotype"] == b["genotype"]
        a, b = ({k: v for k, v in r.items() if k != "timing"} for r in (a, b))
        _close(a, b)
