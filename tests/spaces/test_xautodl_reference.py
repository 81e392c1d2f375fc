"""Differential tests against `xautodl`, the NAS-Bench-201 authors' package (test-only).

The suite's NB201 models are checked against the authors' own modules with the same weights
copied in: the search supernet (reference and fast) against `TinyNetworkDarts`, the
standalone network against `TinyNetwork`, and 20 DARTS-V1 / DARTS-V2 search steps through
the suite's loop against a loop written here around xautodl's model in the authors' update
order (D-X-Y/AutoDL-Projects, exps/NAS-Bench-201-algos/DARTS-V1.py and DARTS-V2.py).

Weights are mapped between the two models by walking both structures side by side (stem,
each cell's edge "j<-i" and op, each ResNet block's conv_a/conv_b/downsample, last BN,
classifier); every parameter is mapped exactly once. xautodl's search cells carry a conv bias
(`bias=not affine`, since mid-2020); the suite's default has none (spaces.nb201.SearchCell),
so with `conv_bias=False` those biases are held at zero on xautodl's side, and with
`conv_bias=True` they are mapped too.
"""
from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from torch import nn

pytest.importorskip(
    "xautodl", reason="xautodl (the NB201 authors' package, test-only) is not installed: "
    "pip install --no-deps -r requirements-test.txt")

from xautodl.models.cell_infers.tiny_network import TinyNetwork  # noqa: E402
from xautodl.models.cell_searchs.genotypes import Structure  # noqa: E402
from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts  # noqa: E402

from benchmark.harness.config import resolve_config  # noqa: E402
from benchmark.harness.loop import search_step  # noqa: E402
from methods.base import StepContext  # noqa: E402
from methods.registry import get_method  # noqa: E402
from spaces.nb201 import EDGES, OPS, NB201Space, Supernet, network  # noqa: E402
from spaces.nb201.fast import FastSearchCell, FastSupernet  # noqa: E402


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _single_thread():
    """One thread: bit-level comparisons do not depend on the core count, and it is quicker
    on a shared CPU."""
    with one_thread():
        yield


# ----- weight mapping ---------------------------------------------------------------------------
def _leaf_pairs(ours: nn.Module, theirs: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """Corresponding leaf modules (conv, BN, linear) of two structurally equal blocks."""
    a = [m for m in ours.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    b = [m for m in theirs.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    assert [type(m) for m in a] == [type(m) for m in b], (ours, theirs)
    for x, y in zip(a, b):
        if isinstance(x, nn.Conv2d):
            assert (x.in_channels, x.out_channels, x.kernel_size, x.stride, x.padding) == \
                   (y.in_channels, y.out_channels, y.kernel_size, y.stride, y.padding)
        elif isinstance(x, nn.BatchNorm2d):
            assert (x.num_features, x.affine, x.track_running_stats, x.eps, x.momentum) == \
                   (y.num_features, y.affine, y.track_running_stats, y.eps, y.momentum)
    return list(zip(a, b))


def _module_pairs(ours_macro: nn.Module, theirs: nn.Module, cell_pairs) -> list:
    """(our module, their module) per block; `cell_pairs(our_cell, their_cell)` maps a cell."""
    pairs = [(ours_macro.stem, theirs.stem)]
    assert len(ours_macro.cells) == len(theirs.cells)
    for our_layer, their_layer, is_cell in zip(ours_macro.cells, theirs.cells, ours_macro.is_cell):
        if is_cell:
            pairs += cell_pairs(our_layer, their_layer)
        else:
            pairs += [(our_layer.conv_a, their_layer.conv_a), (our_layer.conv_b, their_layer.conv_b),
                      (our_layer.downsample, their_layer.downsample)]
    return pairs + [(ours_macro.lastact, theirs.lastact), (ours_macro.classifier, theirs.classifier)]


def _search_cell_pairs(ours, theirs):
    assert list(theirs.op_names) == list(OPS)
    pairs = []
    for k, (j, i) in enumerate(EDGES):
        for o in range(len(OPS)):
            pairs.append((ours.edges[k][o], theirs.edges[f"{j}<-{i}"][o]))
    return pairs


def _infer_cell_pairs(ours, theirs):
    assert len(ours.ops) == len(theirs.layers) == len(EDGES)
    return [(ours.ops[k], theirs.layers[k]) for k in range(len(EDGES))]


def tensor_map(ours: nn.Module, theirs: nn.Module, cell_pairs):
    """Map every parameter and buffer of `ours` (a suite model holding `.net`, or a Macro) to
    its counterpart in the xautodl model. Returns (pairs of (our name, their name), their
    tensors with no counterpart). Asserts each tensor on either side is used at most once and
    every one of ours exactly once."""
    macro = ours.net if hasattr(ours, "net") else ours
    our_names = {id(t): n for n, t in ours.state_dict(keep_vars=True).items()}
    their_names = {id(t): n for n, t in theirs.state_dict(keep_vars=True).items()}
    pairs, unmatched = [], []
    for a, b in _module_pairs(macro, theirs, cell_pairs):
        for x, y in _leaf_pairs(a, b):
            theirs_local = dict(y.named_parameters(recurse=False)) | dict(y.named_buffers(recurse=False))
            ours_local = dict(x.named_parameters(recurse=False)) | dict(x.named_buffers(recurse=False))
            for name, t in theirs_local.items():
                if name in ours_local:
                    assert ours_local[name].shape == t.shape
                    pairs.append((our_names[id(ours_local[name])], their_names[id(t)]))
                else:
                    unmatched.append(their_names[id(t)])
            assert set(ours_local) <= set(theirs_local), (x, y)
    ours_used = [a for a, _ in pairs]
    theirs_used = [b for _, b in pairs] + unmatched
    assert len(set(ours_used)) == len(ours_used) and len(set(theirs_used)) == len(theirs_used)
    assert sorted(ours_used) == sorted(ours.state_dict()), "a tensor of ours is not mapped"
    rest = set(theirs.state_dict()) - set(theirs_used)
    assert rest <= {"arch_parameters"}, rest
    return pairs, unmatched


@torch.no_grad()
def copy_into_xautodl(ours, theirs, cell_pairs, conv_bias_required: bool = False):
    pairs, unmatched = tensor_map(ours, theirs, cell_pairs)
    src, dst = ours.state_dict(), theirs.state_dict(keep_vars=True)
    for a, b in pairs:
        dst[b].copy_(src[a])
    for b in unmatched:  # only the search cells' conv biases (ours has conv_bias=False)
        assert b.endswith(".bias") and ".edges." in b and not conv_bias_required, b
        dst[b].zero_()
    return pairs, unmatched


def fast_from_reference(fast: FastSupernet, ref: Supernet) -> None:
    fast.load_reference(ref)


def _xautodl_search(C, N, conv_bias_zero_frozen: bool):
    net = TinyNetworkDarts(C, N, 4, 10, list(OPS), affine=False, track_running_stats=False)
    if conv_bias_zero_frozen:
        for name, p in net.named_parameters():
            if ".edges." in name and name.endswith(".bias"):
                p.requires_grad_(False)
    return net


def _grads_by_name(model) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


# ----- 1. search supernet == TinyNetworkDarts -------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("conv_bias", [False, True])
def test_supernet_matches_tinynetworkdarts(impl, conv_bias):
    """Same logits and the same gradients for every weight and for alpha (C=16, N=5; float64,
    small 16x16 inputs so the double-precision CPU convolutions stay quick)."""
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        ref = Supernet(C=16, N=5, conv_bias=conv_bias)
        theirs = _xautodl_search(16, 5, conv_bias_zero_frozen=not conv_bias)
        pairs, unmatched = copy_into_xautodl(ref, theirs, _search_cell_pairs)
        assert bool(unmatched) != conv_bias  # without our bias, exactly their cell biases are left
        ours = ref
        if impl == "fast":
            ours = FastSupernet(C=16, N=5, conv_bias=conv_bias, channels_last=False)
            fast_from_reference(ours, ref)
        alpha = (0.3 * torch.randn(len(EDGES), len(OPS))).requires_grad_()
        with torch.no_grad():
            theirs.arch_parameters.copy_(alpha)
        x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 10, (2,))

    logits = ours(x, {"alpha": torch.softmax(alpha, -1)})
    nn.functional.cross_entropy(logits, y).backward()
    _, their_logits = theirs(x)
    nn.functional.cross_entropy(their_logits, y).backward()

    torch.testing.assert_close(logits, their_logits, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha.grad, theirs.arch_parameters.grad, rtol=1e-9, atol=1e-12)
    # Weight gradients: bring xautodl's into our layout through the same mapping.
    their_g = _grads_by_name(theirs)
    g_ref = copy.deepcopy(ref)
    with torch.no_grad():
        sd = g_ref.state_dict(keep_vars=True)
        for a, b in pairs:
            if isinstance(sd[a], nn.Parameter):
                sd[a].copy_(their_g[b])
    if impl == "fast":
        g_ours = copy.deepcopy(ours)
        fast_from_reference(g_ours, g_ref)
    else:
        g_ours = g_ref
    expected = dict(g_ours.named_parameters())
    n = 0
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, expected[name].detach(), rtol=1e-8, atol=1e-11,
                                   msg=lambda m, name=name: f"{name}: {m}")
        n += 1
    assert n == len(list(ours.parameters())) > 0


def test_mapping_is_structural():
    """The mapping is by structure: a mismatch in op order or channel count is caught."""
    ours = Supernet(C=8, N=1)
    theirs = TinyNetworkDarts(8, 1, 4, 10, list(reversed(OPS)), affine=False, track_running_stats=False)
    with pytest.raises(AssertionError):
        tensor_map(ours, theirs, _search_cell_pairs)
    theirs = TinyNetworkDarts(12, 1, 4, 10, list(OPS), affine=False, track_running_stats=False)
    with pytest.raises(AssertionError):
        tensor_map(ours, theirs, _search_cell_pairs)
    # Every tensor mapped once: ours without bias leaves exactly their cell conv biases
    # (3 cells x 6 edges x 2 convs = 36).
    theirs = TinyNetworkDarts(8, 1, 4, 10, list(OPS), affine=False, track_running_stats=False)
    pairs, unmatched = tensor_map(ours, theirs, _search_cell_pairs)
    assert len(unmatched) == 3 * len(EDGES) * 2
    pairs_b, unmatched_b = tensor_map(Supernet(C=8, N=1, conv_bias=True), theirs, _search_cell_pairs)
    assert unmatched_b == [] and len(pairs_b) == len(pairs) + len(unmatched)


# ----- 2. standalone network == TinyNetwork ---------------------------------------------------
def test_standalone_network_matches_tinynetwork():
    """Several random cells: same outputs in train mode and, after it, in eval mode."""
    g = torch.Generator().manual_seed(3)
    space = NB201Space()
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(4):
        arch = space.derive(space.sample_weights(g))
        ours = network(arch, num_classes=10, C=8, N=1)
        theirs = TinyNetwork(8, 1, Structure.str2structure(arch), 10)
        pairs, unmatched = copy_into_xautodl(ours, theirs, _infer_cell_pairs, conv_bias_required=True)
        assert unmatched == []
        with torch.no_grad():  # non-trivial BN state, so eval mode tests the running statistics
            for name, t in ours.state_dict().items():
                if name.endswith(("running_var", "weight")) and t.dtype.is_floating_point:
                    t.uniform_(0.5, 1.5)
                elif name.endswith(("running_mean", "bias")):
                    t.uniform_(-0.2, 0.2)
            copy_into_xautodl(ours, theirs, _infer_cell_pairs, conv_bias_required=True)
        ours.train(), theirs.train()
        torch.testing.assert_close(ours(x), theirs(x)[1], rtol=1e-5, atol=1e-5, msg=arch)
        ours.eval(), theirs.eval()  # running statistics, updated identically by the train pass
        torch.testing.assert_close(ours(x), theirs(x)[1], rtol=1e-5, atol=1e-5, msg=arch)


# ----- 3. DARTS-V1 / V2: 20 steps through the suite's loop vs the authors' order -------------
def _batches(n, bs, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    def one():
        return torch.randn(bs, 3, size, size, generator=g), torch.randint(0, 10, (bs,), generator=g)
    return [(one(), one()) for _ in range(n)]


def _ours_search(method_name, C, N, impl="reference"):
    cfg = resolve_config("nb201", method_name, 0, "paper")
    space = NB201Space()
    torch.manual_seed(0)
    supernet = space.supernet(C=C, N=N, affine=False, track_running_stats=False, impl=impl)
    method = get_method(method_name)(space, supernet, cfg, torch.Generator().manual_seed(1))
    w_opt = torch.optim.SGD(supernet.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay)
    ctx = StepContext(supernet, w_opt, 1, cfg.epochs, cfg.grad_clip, 100, 100)
    return cfg, supernet, method, ctx


def _authors_optimizers(theirs, cfg):
    """DARTS.config (SGD, lr 0.025, momentum 0.9, Nesterov, wd 5e-4) and the scripts' Adam."""
    weights = [p for n, p in theirs.named_parameters() if n != "arch_parameters" and p.requires_grad]
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    a_opt = torch.optim.Adam([theirs.arch_parameters], lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    # The suite's NB201 paper profile must carry the same protocol values.
    assert (cfg.w_lr, cfg.w_momentum, cfg.w_nesterov, cfg.w_weight_decay, cfg.grad_clip) == \
           (0.025, 0.9, True, 5e-4, 5.0)
    assert (cfg.a_lr, tuple(cfg.a_betas), cfg.a_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
    return weights, w_opt, a_opt


def _authors_weight_step(theirs, w_opt, base):
    """DARTS-V1.py/V2.py: zero the weights' grads, backward, clip the norm of *all* the
    network's gradients (alpha's included, as `network.parameters()` holds it) at 5, step."""
    w_opt.zero_grad()
    _, logits = theirs(base[0])
    nn.functional.cross_entropy(logits, base[1]).backward()
    nn.utils.clip_grad_norm_(theirs.parameters(), 5)
    w_opt.step()


def _authors_v1(theirs, w_opt, a_opt, batches):
    for base, arch in batches:  # weight step first, then the architecture step
        _authors_weight_step(theirs, w_opt, base)
        a_opt.zero_grad()
        _, logits = theirs(arch[0])
        nn.functional.cross_entropy(logits, arch[1]).backward()
        a_opt.step()


def _authors_v2(theirs, weights, w_opt, a_opt, batches):
    """DARTS-V2.py `backward_step_unrolled`, then the weight step (architecture step first)."""
    ce = nn.functional.cross_entropy
    for base, arch in batches:
        a_opt.zero_grad()
        lr, wd, mom = (w_opt.param_groups[0][k] for k in ("lr", "weight_decay", "momentum"))
        _, logits = theirs(base[0])
        dw = torch.autograd.grad(ce(logits, base[1]), weights)
        with torch.no_grad():
            new = []
            for p, g in zip(weights, dw):
                buf = w_opt.state.get(p, {}).get("momentum_buffer")
                m = buf * mom if buf is not None else torch.zeros_like(p)
                new.append(p - lr * (m + g + wd * p))
        unrolled = copy.deepcopy(theirs)
        u_weights = [p for n, p in unrolled.named_parameters() if n != "arch_parameters" and p.requires_grad]
        with torch.no_grad():
            for p, v in zip(u_weights, new):
                p.copy_(v)
        unrolled.zero_grad()
        _, ul = unrolled(arch[0])
        ce(ul, arch[1]).backward()
        dalpha = unrolled.arch_parameters.grad
        vec = [p.grad for p in u_weights]
        R = 1e-2 / torch.cat([v.flatten() for v in vec]).norm()
        grads, saved = [], [p.detach().clone() for p in weights]
        for sign in (1.0, -1.0):  # w + R v, then w - R v
            with torch.no_grad():
                for p, w0, v in zip(weights, saved, vec):
                    p.copy_(w0 + sign * R * v)
            _, lg = theirs(base[0])
            grads.append(torch.autograd.grad(ce(lg, base[1]), [theirs.arch_parameters])[0])
        with torch.no_grad():
            # The script restores w in place (+R v, -2R v, +R v), which leaves last-bit changes
            # in the weights; Adam's sign-like early steps amplify those into visibly different
            # alphas within a few steps, so the test restores w exactly and compares the math.
            for p, w0 in zip(weights, saved):
                p.copy_(w0)
        implicit = (grads[0] - grads[1]) / (2 * R)
        theirs.arch_parameters.grad = dalpha - lr * implicit
        a_opt.step()
        _authors_weight_step(theirs, w_opt, base)


@pytest.mark.slow
@pytest.mark.parametrize("method_name", ["darts", "darts-2nd"])
def test_darts_search_steps_match_authors_loop(method_name):
    """20 steps from identical weights and batches end with the same alpha (C=8, N=1, 16x16
    inputs, CPU, one thread; xautodl's cell conv biases held at zero).

    DARTS-V1 in float32: bit-identical. DARTS-V2 in float64, to 1e-9: its steps are
    computed in a different order (functional copies vs the script's deep-copied model), so
    float32 agrees to ~1e-9 after two steps, and Adam's sign-like early steps amplify that to
    ~1e-3 within 20 (measured), which would hide the comparison of the math."""
    steps = 20
    dtype = torch.float32 if method_name == "darts" else torch.float64
    with one_thread(), default_dtype(dtype):
        cfg, supernet, method, ctx = _ours_search(method_name, 8, 1)
        assert cfg.arch_first == (method_name == "darts-2nd")  # V1 weights first, V2 arch first
        theirs = _xautodl_search(8, 1, conv_bias_zero_frozen=True)
        copy_into_xautodl(supernet, theirs, _search_cell_pairs)
        with torch.no_grad():
            theirs.arch_parameters.copy_(method.alphas["alpha"])
        start = method.alphas["alpha"].detach().clone()
        weights, w_opt, a_opt = _authors_optimizers(theirs, cfg)
        batches = [((tx.to(dtype), ty), (vx.to(dtype), vy))
                   for (tx, ty), (vx, vy) in _batches(steps, 8, seed=5, size=16)]
        supernet.train(), theirs.train()
        for train_b, valid_b in batches:
            search_step(method, train_b, valid_b, ctx, cfg.arch_first)
        if method_name == "darts":
            _authors_v1(theirs, w_opt, a_opt, batches)
        else:
            _authors_v2(theirs, weights, w_opt, a_opt, batches)
    ours_a, theirs_a = method.alphas["alpha"].detach(), theirs.arch_parameters.detach()
    assert ours_a.dtype == dtype
    assert (ours_a - start).abs().max() > 1e-3  # the steps moved alpha
    if method_name == "darts":
        assert torch.equal(ours_a, theirs_a), (ours_a - theirs_a).abs().max()
    else:
        torch.testing.assert_close(ours_a, theirs_a, rtol=0, atol=1e-9)


# ----- 4. fast == reference in float64 --------------------------------------------------------
def test_fast_matches_reference_float64():
    """Logits and alpha gradients to 1e-12 (C=16, N=5; 16x16 inputs keep float64 quick)."""
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        ref = Supernet(C=16, N=5)
        fast = FastSupernet(C=16, N=5, channels_last=False)
        fast_from_reference(fast, ref)
        x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 10, (2,))
        alpha = 0.3 * torch.randn(len(EDGES), len(OPS))
    grads, outs = [], []
    for net in (ref, fast):
        a = alpha.clone().requires_grad_()
        logits = net(x, {"alpha": torch.softmax(a, -1)})
        nn.functional.cross_entropy(logits, y).backward()
        grads.append(a.grad)
        outs.append(logits.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("method_name", ["darts", "darts-2nd"])
def test_fast_matches_reference_search_float64(method_name):
    """The same alpha after K=5 search steps through the loop, float64 (C=8, N=1)."""
    batches = _batches(5, 8, seed=7)
    alphas = []
    with default_dtype(torch.float64), one_thread():
        for impl in ("reference", "fast"):
            cfg, supernet, method, ctx = _ours_search(method_name, 8, 1, impl=impl)
            supernet.train()
            for tb, vb in batches:
                search_step(method, (tb[0].double(), tb[1]), (vb[0].double(), vb[1]), ctx, cfg.arch_first)
            alphas.append(method.alphas["alpha"].detach().clone())
    assert alphas[0].dtype == torch.float64
    assert not torch.allclose(alphas[0], torch.zeros_like(alphas[0]), atol=1e-4)
    torch.testing.assert_close(alphas[0], alphas[1], rtol=0, atol=1e-12)
