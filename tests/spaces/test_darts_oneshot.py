"""BayesNAS's one-shot network on the DARTS op set (spaces/darts/oneshot.py, supernet.impl=oneshot),
after BayesNAS/BayesNAS search/OneShot.py. Its function was compared with the authors' NetWork
(parameters copied over, random per-cell switches, train mode): outputs equal to 5e-7; the
repository cannot import their code, so these tests pin the facts that comparison rests on."""
import pytest
import torch

from spaces import get_space
from spaces.base import input_key
from spaces.darts.oneshot import CELLS, EDGES, OneShotNetwork
from spaces.darts.ops import NONE, OPS


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def _weights(per_cell: bool, g: torch.Generator) -> dict:
    out = {}
    for k, n in CELLS.items():
        shape = (n, 14) if per_cell else (14,)
        out[k] = torch.rand(*shape, 8, generator=g) + 0.5
        out[input_key(k)] = torch.rand(*shape, generator=g) + 0.5
    return out


@pytest.mark.slow
def test_parameter_count_is_the_authors():
    """26,910,838 weights (switches excluded) at C=36: the count of the authors' NetWork
    (search/OneShot.py, num_classes=10), measured on their code."""
    net = get_space("darts").supernet(impl="oneshot", C=36, layers=8)
    assert isinstance(net, OneShotNetwork)
    assert sum(p.numel() for p in net.parameters()) == 26_910_838


def test_wiring_reads_only_its_eight_edges_per_cell_and_no_none():
    """Normal: 2<-0, 2<-1, 3<-0, 3<-1, 4<-0, 4<-1, 5<-1, 5<-2; reduce: 2<-0, 2<-1, 3<-0, 3<-2,
    4<-0, 4<-2, 5<-0, 5<-2 (OneShot.py lines 207-236, 262-290; node 5's `in1_3` takes x_in0)."""
    space = get_space("darts")
    labels = space.arch_labels()
    assert [labels["normal"][r] for r in EDGES["normal"]] == [
        "2<-0", "2<-1", "3<-0", "3<-1", "4<-0", "4<-1", "5<-1", "5<-2"]
    assert [labels["reduce"][r] for r in EDGES["reduce"]] == [
        "2<-0", "2<-1", "3<-0", "3<-2", "4<-0", "4<-2", "5<-0", "5<-2"]
    torch.manual_seed(0)
    net = OneShotNetwork(C=2)
    w = {k: v.requires_grad_() for k, v in _weights(True, torch.Generator().manual_seed(0)).items()}
    net(torch.randn(2, 3, 32, 32), w).sum().backward()
    for k in CELLS:
        read = (w[k].grad.abs().sum(dim=(0, 2)) > 0).nonzero().flatten().tolist()
        assert read == sorted(EDGES[k])
        assert w[k].grad[..., NONE].abs().sum() == 0
        assert (w[k].grad[:, EDGES[k]][..., [o for o in range(len(OPS)) if o != NONE]] != 0).all()


def test_per_cell_weights_and_shared_weights():
    """Each cell reads its own (14, 8) slice; a (14, 8) tensor is shared by every cell."""
    torch.manual_seed(0)
    net = OneShotNetwork(C=2).eval()
    x = torch.randn(2, 3, 32, 32)
    shared = _weights(False, torch.Generator().manual_seed(1))
    per_cell = {k: v.unsqueeze(0).expand(CELLS[k.split(":")[0]], *v.shape).clone() for k, v in shared.items()}
    with torch.no_grad():
        assert torch.allclose(net(x, shared), net(x, per_cell), atol=1e-6)
        per_cell["normal"][3, EDGES["normal"][0]] *= 2.0   # only normal cell 3 (the 5th cell)
        assert not torch.allclose(net(x, shared), net(x, per_cell), atol=1e-6)


def test_macro_structure():
    """Stem conv 3C (no BN), 8 cells N N R N N R N N, widths C, C, 2C, 2C, 2C, 4C, 4C, 4C;
    dil convs are full convolutions; pools are not followed by BN."""
    net = OneShotNetwork(C=4)
    assert net.stem.out_channels == 12
    assert [c.reduction for c in net.cells] == [False, False, True, False, False, True, False, False]
    assert net.classifier.in_features == 4 * 16
    dil = net.cells[0].edges[0].ops[OPS.index("dil_conv_3x3") - 1]
    assert dil.conv.groups == 1 and dil.conv.dilation == (2, 2)
    # the older input after a reduction: a 1x1 conv with stride 2 first (CReduct size_reduct)
    assert net.pre1[3][0].stride == (2, 2) and net.pre1[6][0].stride == (2, 2)


@pytest.mark.parametrize("bad, word", [({"layers": 5}, "layers"), ({"C": 0}, "C")])
def test_check_supernet_refuses(bad, word):
    with pytest.raises(ValueError, match=word):
        get_space("darts").check_supernet({"impl": "oneshot", **bad})


def test_op_sets_of_the_authors_ops_only():
    """The space's op set gives each edge's columns (`s5`: the 7 ops without `none`, the
    authors' own set); an op set with an op their Selection does not build is refused at
    planning (`darts-s4`: `noise`)."""
    space = get_space("darts").for_supernet({"op_set": "s5"})
    space.check_supernet({"impl": "oneshot", "op_set": "s5"})
    net = space.supernet(impl="oneshot", op_set="s5", C=2)
    w = {k: torch.ones(n, 14, 7) for k, n in CELLS.items()}
    assert net(torch.randn(2, 3, 32, 32), w).shape == (2, 10)
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in get_space("darts").supernet(impl="oneshot", C=2).parameters())
    with pytest.raises(ValueError, match="noise"):
        get_space("darts-s4").check_supernet({"impl": "oneshot", "layers": 8})
