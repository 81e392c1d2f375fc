import numpy as np
import pytest
import torch

from spaces import nb101
from spaces.nb101 import CONV1X1, CONV3X3, MAXPOOL3X3, SpecError

INCEPTION_M = [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
               [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
               [0, 0, 0, 0, 0, 0, 0]]
INCEPTION_OPS = ['input', CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, 'output']


def permute(matrix, ops, perm):
    """Relabel interior vertices: new vertex i is old vertex perm[i]."""
    m = np.asarray(matrix)
    return m[np.ix_(perm, perm)], [ops[p] for p in perm]


def test_inception_parameter_count():
    net = nb101.network(INCEPTION_M, INCEPTION_OPS)
    assert nb101.count_parameters(net) == 2_694_282


def test_network_forward_shape():
    m = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    net = nb101.network(m, ['input', MAXPOOL3X3, 'output'], num_classes=7)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_inception_known_hash():
    # NB101 hash of the README's Inception-like cell as used in public NB101-based code.
    assert nb101.module_hash(INCEPTION_M, INCEPTION_OPS) == '28cfc7874f6d200472e1a9dcd8650aa0'


def test_hash_isomorphic_equal_and_numpy_ints():
    h = nb101.module_hash(INCEPTION_M, INCEPTION_OPS)
    # Topological orders of the same DAG: swap the independent vertices 1, 2 and 5.
    for perm in ([0, 2, 1, 3, 4, 5, 6], [0, 5, 2, 3, 4, 1, 6], [0, 3, 4, 1, 2, 5, 6]):
        m, o = permute(INCEPTION_M, INCEPTION_OPS, perm)
        assert np.all(np.triu(m) == m)
        assert nb101.module_hash(m, o) == h
    # numpy int32/int64 inputs and python lists give the same hash (numpy-2 str() trap).
    assert nb101.module_hash(np.array(INCEPTION_M, dtype=np.int32), INCEPTION_OPS) == h
    assert nb101.module_hash(np.array(INCEPTION_M, dtype=np.int64), tuple(INCEPTION_OPS)) == h


def test_hash_numpy2_trap_would_change_it():
    # Guard that the test above can fail: formatting numpy ints gives a different md5.
    import hashlib
    a = hashlib.md5(str((np.int64(1), np.int64(2), -1)).encode()).hexdigest()
    b = hashlib.md5(str((1, 2, -1)).encode()).hexdigest()
    assert (a == b) == (np.__version__ < '2')


def test_hash_near_isomorphic_differ():
    h = nb101.module_hash(INCEPTION_M, INCEPTION_OPS)
    ops2 = list(INCEPTION_OPS)
    ops2[1] = CONV3X3  # one op changed
    assert nb101.module_hash(INCEPTION_M, ops2) != h
    m2 = np.array(INCEPTION_M)
    m2[1, 4] = 1  # one extra edge
    assert nb101.module_hash(m2, INCEPTION_OPS) != h
    m3 = np.array(INCEPTION_M)
    m3[0, 5], m3[2, 5] = 0, 1  # same degrees per vertex class, different wiring
    assert nb101.module_hash(m3, INCEPTION_OPS) != h


def test_hash_labels_follow_available_ops_order():
    m = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    h = nb101.module_hash(m, ['input', CONV3X3, 'output'])
    assert h == nb101.graph_hash(np.array(m), [-1, 0, -2])
    assert h != nb101.graph_hash(np.array(m), [-1, 1, -2])


def test_pruning():
    # vertex 2 is a dead end (no path to output), vertex 3 unreachable from input.
    m = np.zeros((6, 6), dtype=int)
    m[0, 1] = m[1, 5] = m[0, 2] = m[3, 4] = m[4, 5] = 1
    ops = ['input', CONV3X3, CONV1X1, MAXPOOL3X3, CONV1X1, 'output']
    pm, po = nb101.prune(m, ops)
    assert pm.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert po == ['input', CONV3X3, 'output']
    assert nb101.module_hash(m, ops) == nb101.module_hash(pm, po)
    with pytest.raises(SpecError, match='not reachable'):
        nb101.prune([[0, 0], [0, 0]], ['input', 'output'])


@pytest.mark.parametrize('matrix,ops,msg', [
    ([[0, 1], [1, 0]], ['input', 'output'], 'upper triangular'),
    ([[0, 1], [0, 0]], ['input', CONV3X3], "end with 'output'"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ['input', 'conv5x5', 'output'], 'unknown op'),
    ([[0, 2], [0, 0]], ['input', 'output'], '0 or 1'),
    ([[0, 1], [0, 0]], ['input', CONV3X3, 'output'], '2 vertices but 3 ops'),
    (np.triu(np.ones((8, 8), int), 1), ['input'] + [CONV3X3] * 6 + ['output'], '8 vertices'),
    (np.triu(np.ones((7, 7), int), 1), ['input'] + [CONV3X3] * 5 + ['output'], '21 edges'),
])
def test_validation_errors(matrix, ops, msg):
    with pytest.raises(SpecError, match=msg):
        nb101.validate(matrix, ops)


def test_vertex_channels_split_and_truncation():
    # Output fed by 3 vertices: 128 -> 43, 43, 42; vertex 1 feeds only vertex 2 -> max.
    m = np.zeros((5, 5), int)
    m[0, 1] = m[1, 2] = m[2, 4] = m[0, 3] = m[3, 4] = m[1, 4] = 1
    assert nb101.vertex_channels(64, 128, m) == [64, 43, 43, 42, 128]
