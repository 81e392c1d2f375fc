"""`supernet.conv_bias`: xautodl's search-cell conv bias as an option (default off, as the code
behind the NB201 paper). Under batch statistics the bias cancels; with running statistics in
eval mode it does not."""
from __future__ import annotations

import pytest
import torch

from spaces.nb201 import EDGES, NB201Space, Supernet
from spaces.nb201.fast import FastSupernet


def _count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("cls", [Supernet, FastSupernet])
def test_parameter_count(cls):
    # N=1: one cell per stage, at C, 2C, 4C channels; 2 convs (1x1, 3x3) per edge.
    C = 8
    extra = len(EDGES) * 2 * (C + 2 * C + 4 * C)
    assert _count(cls(C=C, N=1, conv_bias=True)) - _count(cls(C=C, N=1)) == extra
    assert _count(cls(C=C, N=1, conv_bias=True)) == _count(Supernet(C=C, N=1, conv_bias=True))


def test_default_is_no_bias_and_matches_xautodl_count_with_bias():
    assert all(m.bias is None for m in Supernet(C=4, N=1).modules() if isinstance(m, torch.nn.Conv2d))
    darts = pytest.importorskip("xautodl.models.cell_searchs.search_model_darts",
                                reason="xautodl (test-only) is not installed: "
                                "pip install --no-deps -r requirements-test.txt")
    theirs = darts.TinyNetworkDarts(8, 2, 4, 10, ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                  "avg_pool_3x3"], False, False)
    n_theirs = _count(theirs) - theirs.arch_parameters.numel()
    assert _count(Supernet(C=8, N=2, conv_bias=True)) == n_theirs
    assert _count(Supernet(C=8, N=2)) < n_theirs


def test_bad_value_is_rejected():
    with pytest.raises(ValueError, match="supernet.conv_bias"):
        Supernet(C=4, N=1, conv_bias="yes")


def _pair(cls, track):
    """Two supernets with the same weights, one with random conv biases, one without."""
    torch.manual_seed(0)
    plain = cls(C=4, N=1, track_running_stats=track)
    torch.manual_seed(0)
    biased = cls(C=4, N=1, track_running_stats=track, conv_bias=True)
    with torch.no_grad():
        sd = biased.state_dict()
        for k, v in plain.state_dict().items():
            sd[k].copy_(v)
        for k, v in sd.items():
            if k not in plain.state_dict():
                assert "bias" in k
                v.uniform_(-1, 1)
    return plain, biased


@pytest.mark.parametrize("cls", [Supernet, FastSupernet])
def test_batch_statistics_cancel_the_bias(cls):
    plain, biased = _pair(cls, track=False)
    x = torch.randn(4, 3, 16, 16)
    w = {"alpha": torch.softmax(torch.randn(len(EDGES), 5), -1)}
    for mode in (True, False):  # without running statistics eval mode also uses the batch's
        plain.train(mode), biased.train(mode)
        torch.testing.assert_close(plain(x, w), biased(x, w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [Supernet, FastSupernet])
def test_running_statistics_keep_the_bias(cls):
    """SDARTS' NB201 profile tracks running statistics: after training steps, eval-mode
    outputs depend on the bias (and the fast supernet still equals the reference)."""
    plain, biased = _pair(cls, track=True)
    ref = Supernet(C=4, N=1, track_running_stats=True, conv_bias=True)
    with torch.no_grad():  # the reference layout of the same weights and biases
        ref_sd = ref.state_dict()
        for k, v in biased.state_dict().items():
            if k in ref_sd and ref_sd[k].shape == v.shape:
                ref_sd[k].copy_(v)
        for f, r in zip(biased.net.cells, ref.net.cells):
            if hasattr(f, "copy_to"):
                f.copy_to(r)
    x = torch.randn(4, 3, 16, 16)
    w = {"alpha": torch.softmax(torch.randn(len(EDGES), 5), -1)}
    with torch.no_grad():
        plain(x, w), biased(x, w), ref(x, w)  # train mode: updates the running statistics
    for net in (plain, biased, ref):
        net.eval()
    assert (plain(x, w) - biased(x, w)).abs().max() > 1e-3
    torch.testing.assert_close(biased(x, w), ref(x, w), rtol=1e-4, atol=1e-5)


def test_space_passes_the_option_to_both_impls():
    space = NB201Space()
    for impl in ("reference", "fast"):
        net = space.supernet(C=4, N=1, conv_bias=True, impl=impl)
        assert _count(net) == _count(Supernet(C=4, N=1, conv_bias=True))
