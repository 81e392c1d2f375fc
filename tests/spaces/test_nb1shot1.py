import numpy as np
import pytest
import torch

from spaces import nb101
from spaces.nb1shot1 import SPACES, count_architectures
from spaces.nb1shot1.model import PRIMITIVES

ALL = list(SPACES.values())


@pytest.mark.parametrize('space', ALL, ids=lambda s: s.name)
def test_supernet_forward_backward(space):
    torch.manual_seed(0)
    net = space.supernet(C=4, layers=3, num_classes=10)
    alphas = {k: torch.randn(s, requires_grad=True) for k, s in space.arch_shapes().items()}
    w = space.normalize(alphas)
    for v in w.values():
        assert torch.allclose(v.sum(-1), torch.ones(()))
    out = net(torch.randn(2, 3, 16, 16), w)
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas.values())
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert not any('alpha' in n for n, _ in net.named_parameters())


def test_supernet_full_depth_downsampling():
    space = SPACES['nb1shot1-s3']
    net = space.supernet(C=4, layers=9)
    w = space.sample_weights(torch.Generator().manual_seed(0))
    assert net(torch.randn(1, 3, 32, 32), w).shape == (1, 10)
    assert net.pool.padding == 1 and net.down_at == {3, 6}   # 32 -> 17 -> 9 pixels
    assert net.cells[3].proj[0][0].in_channels == 4 * 5 and net.cells[3].proj[0][0].out_channels == 8


def test_arch_shapes():
    assert SPACES['nb1shot1-s1'].arch_shapes() == {'ops': (4, 3), 'output': (5,), 'input3': (3,),
                                                   'input4': (4,)}
    assert set(SPACES['nb1shot1-s2'].arch_shapes()) == {'ops', 'output', 'input2', 'input3', 'input4'}
    assert SPACES['nb1shot1-s3'].arch_shapes()['input5'] == (5,)
    assert SPACES['nb1shot1-s3'].arch_shapes()['ops'] == (5, 3)


@pytest.mark.parametrize('space', ALL, ids=lambda s: s.name)
def test_derive_valid_specs(space):
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        scores = {k: torch.randn(s, generator=g) for k, s in space.arch_shapes().items()}
        geno = space.derive(scores)
        assert space.encode(*space.parse(geno)) == geno
        info = space.genotype_info(geno)
        nb101.validate(info['matrix'], info['ops'])        # NB101 domain: 7 vertices, <= 9 edges
        assert len(info['ops']) == 7 and np.asarray(info['matrix']).sum() <= 9
        assert info['module_hash'] == nb101.module_hash(info['pruned_matrix'], info['pruned_ops'])
        ops, parents = space.parse(geno)
        assert ops == [PRIMITIVES[i] for i in scores['ops'].argmax(-1).tolist()]
        assert parents[-1] == tuple(sorted(scores['output'].argsort(descending=True)[
            :space.num_parents[-1]].tolist()))


@pytest.mark.parametrize('name', ['nb1shot1-s1', 'nb1shot1-s2'])
def test_padding_spaces_1_2(name):
    space = SPACES[name]
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        scores = {k: torch.randn(s, generator=g) for k, s in space.arch_shapes().items()}
        geno = space.derive(scores)
        info = space.genotype_info(geno)
        m = np.asarray(info['matrix'])
        assert m.shape == (7, 7)
        assert info['ops'][5] == 'conv1x1-bn-relu' and info['ops'][6] == 'output'
        assert m[5].sum() == 0 and m[:, 5].sum() == 0      # dummy vertex unconnected
        # pruning keeps exactly input, output and the blocks on a path to the output
        reach = space.reaches_output(space.parse(geno)[1])
        assert len(info['pruned_ops']) == 2 + sum(reach[1:-1])


def test_space3_no_padding_and_example():
    space = SPACES['nb1shot1-s3']
    geno = ('conv3x3-bn-relu<0|conv1x1-bn-relu<1|maxpool3x3<2|conv3x3-bn-relu<0,3'
            '|conv3x3-bn-relu<1,4|output<2,5')
    info = space.genotype_info(geno)
    assert info['ops'] == ['input', 'conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3',
                           'conv3x3-bn-relu', 'conv3x3-bn-relu', 'output']
    assert info['loose_ends'] == 0 and info['param_free_ops'] == 1
    assert space.param_free_ops(geno) == 1
    net = space.network(geno, num_classes=5)
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 5)


def test_loose_end_pruned():
    space = SPACES['nb1shot1-s1']
    # block 4 (maxpool) feeds nothing: a loose end removed by pruning.
    geno = 'conv3x3-bn-relu<0|conv1x1-bn-relu<0,1|conv3x3-bn-relu<1,2|maxpool3x3<0,3|output<2,3'
    info = space.genotype_info(geno)
    assert info['loose_ends'] == 1 and 'maxpool3x3' not in info['pruned_ops']
    assert space.param_free_ops(geno) == 0


@pytest.mark.parametrize('bad', [
    'conv3x3-bn-relu<0|conv1x1-bn-relu<0,1|conv3x3-bn-relu<1,2|maxpool3x3<0,3',          # no output
    'conv3x3-bn-relu<0|conv1x1-bn-relu<0|conv3x3-bn-relu<1,2|maxpool3x3<0,3|output<2,3',  # k wrong
    'conv3x3-bn-relu<0|conv1x1-bn-relu<0,1|conv3x3-bn-relu<1,3|maxpool3x3<0,3|output<2,3',  # future
    'conv3x3-bn-relu<0|conv1x1-bn-relu<0,1|conv3x3-bn-relu<2,1|maxpool3x3<0,3|output<2,3',  # order
    'conv5x5<0|conv1x1-bn-relu<0,1|conv3x3-bn-relu<1,2|maxpool3x3<0,3|output<2,3',       # op
])
def test_parse_rejects(bad):
    with pytest.raises(ValueError):
        SPACES['nb1shot1-s1'].parse(bad)


@pytest.mark.parametrize('space', ALL, ids=lambda s: s.name)
def test_sample_weights(space):
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        w = space.sample_weights(g)
        assert {k: tuple(v.shape) for k, v in w.items()} == space.arch_shapes()
        assert torch.all(w['ops'].sum(-1) == 1)
        assert w['output'].sum() == space.num_parents[-1]
        seen.add(space.derive(w))
    assert len(seen) > 40     # genuinely random


@pytest.mark.slow
def test_counts():
    r1 = count_architectures(SPACES['nb1shot1-s1'], hashes=True)
    assert (r1['configurations'], r1['graphs'], r1['graphs_no_loose_ends']) == (14580, 180, 38)
    assert r1['distinct_hashes'] == 2685
    # configurations = prod C(i, k_i) * 3^steps, checked by formula
    from math import comb, prod
    for s in ALL:
        r = count_architectures(s, hashes=False)
        n = prod(comb(i, k) for i, k in enumerate(s.num_parents, 1))
        assert r['graphs'] == n and r['configurations'] == n * 3 ** s.steps
    assert count_architectures(SPACES['nb1shot1-s2'], False)['graphs_no_loose_ends'] == 138
    assert count_architectures(SPACES['nb1shot1-s3'], False)['graphs_no_loose_ends'] == 445


@pytest.mark.slow
def test_distinct_hashes_bruteforce_small():
    # Cross-check the deduplicated hash count against hashing every configuration (space 1).
    s = SPACES['nb1shot1-s1']
    import itertools
    hashes = set()
    for parents in s.iter_parents():
        for ops in itertools.product(PRIMITIVES, repeat=s.steps):
            hashes.add(nb101.module_hash(*s.nb101_spec(list(ops), parents)))
    assert len(hashes) == count_architectures(s)['distinct_hashes']


def test_reference_enumeration_counts():
    """The set automl/nasbench-1shot1's `generate_search_space_without_loose_ends` walks (the
    one its test_min_error is a minimum over), re-stated in spaces.nb1shot1.reference_wirings."""
    from spaces.nb1shot1 import reference_wirings
    want = {'nb1shot1-s1': (49, 2487, 66, 3702), 'nb1shot1-s2': (65, 3609, 190, 12474),
            'nb1shot1-s3': (234, 24066, 876, 135900)}
    for name, (wirings, archs, pruned, pruned_archs) in want.items():
        s = SPACES[name]
        r = count_architectures(s, hashes=False)
        assert (r['reference_wirings'], r['reference_architectures']) == (wirings, archs)
        assert (r['pruned_wirings'], r['pruned_architectures']) == (pruned, pruned_archs)
        # Every wiring the reference emits is a pruned wiring some configuration has: each
        # used block has all k_i parents, lies on a path to the output, at most 9 edges.
        pruned_set = set()
        for parents in s.iter_parents():
            reach = s.reaches_output(parents)
            pruned_set.add(frozenset((p, node) for node, ps in enumerate(parents, 1)
                                     if reach[node] for p in ps))
        ref = list(reference_wirings(s))
        assert len(set(ref)) == len(ref) and set(ref) <= pruned_set
        assert len(pruned_set) == pruned


def test_reference_enumeration_misses_a_known_wiring():
    # Space 1, every block used: 1<-0, 2<-0,1, 3<-0,2, 4<-0,2, out<-3,4. A configuration
    # has it, with no loose end; the reference's depth-first walk never emits it.
    from spaces.nb1shot1 import reference_wirings
    s = SPACES['nb1shot1-s1']
    w = frozenset({(0, 1), (0, 2), (1, 2), (0, 3), (2, 3), (0, 4), (2, 4), (3, 5), (4, 5)})
    assert s.reaches_output(((0,), (0, 1), (0, 2), (0, 2), (3, 4))) == [True] * 6
    assert w not in set(reference_wirings(s))
