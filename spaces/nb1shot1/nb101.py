"""NAS-Bench-101 cell specs: validation, pruning, module hash and the standalone network.

A spec is an upper-triangular 0/1 adjacency matrix (row = source, column = destination)
plus an op label per vertex; vertex 0 is 'input', the last is 'output'.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

INPUT, OUTPUT = 'input', 'output'
CONV3X3, CONV1X1, MAXPOOL3X3 = 'conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3'
# Order fixes the hash labels (index in this list), as in the official config.
AVAILABLE_OPS = [CONV3X3, CONV1X1, MAXPOOL3X3]
MAX_VERTICES, MAX_EDGES = 7, 9


class SpecError(ValueError):
    """An NB101 cell spec is malformed or outside the benchmark's domain."""


def _as_matrix(matrix) -> np.ndarray:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise SpecError(f'adjacency matrix must be square, got shape {m.shape}')
    if not np.isin(m, (0, 1)).all():
        raise SpecError('adjacency matrix entries must be 0 or 1')
    return m.astype(np.int64)


def validate(matrix, ops: Sequence[str], *, check_limits: bool = True) -> None:
    """Raise SpecError with a precise reason if (matrix, ops) is not an NB101 spec."""
    m = _as_matrix(matrix)
    n = m.shape[0]
    if len(ops) != n:
        raise SpecError(f'{n} vertices but {len(ops)} ops')
    if n < 2:
        raise SpecError('a cell needs at least input and output vertices')
    if np.any(np.tril(m)):
        raise SpecError('adjacency matrix must be strictly upper triangular (a DAG in topological order)')
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise SpecError(f"ops must start with '{INPUT}' and end with '{OUTPUT}', got {list(ops)}")
    for i, op in enumerate(ops[1:-1], 1):
        if op not in AVAILABLE_OPS:
            raise SpecError(f'vertex {i}: unknown op {op!r}; expected one of {AVAILABLE_OPS}')
    if check_limits:
        if n > MAX_VERTICES:
            raise SpecError(f'{n} vertices > {MAX_VERTICES}')
        if int(m.sum()) > MAX_EDGES:
            raise SpecError(f'{int(m.sum())} edges > {MAX_EDGES}')


def prune(matrix, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Remove vertices not on an input->output path (as the official ModelSpec does).

    Raises SpecError if the output is unreachable from the input.
    """
    m = _as_matrix(matrix)
    n = m.shape[0]
    fwd, stack = {0}, [0]
    while stack:
        v = stack.pop()
        for w in np.nonzero(m[v])[0].tolist():
            if w not in fwd:
                fwd.add(w)
                stack.append(w)
    bwd, stack = {n - 1}, [n - 1]
    while stack:
        v = stack.pop()
        for w in np.nonzero(m[:, v])[0].tolist():
            if w not in bwd:
                bwd.add(w)
                stack.append(w)
    keep = sorted(fwd & bwd)
    if 0 not in keep or n - 1 not in keep:
        raise SpecError('output is not reachable from input')
    return m[np.ix_(keep, keep)].copy(), [ops[i] for i in keep]


def graph_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
    """Iterated-md5 graph fingerprint of the official graph_util.hash_module."""
    m = np.asarray(matrix)
    n = m.shape[0]
    # .tolist() gives Python ints: str((np.int64(1), ...)) differs under numpy >= 2.
    in_deg = m.sum(axis=0).tolist()
    out_deg = m.sum(axis=1).tolist()
    labels = [int(x) for x in labels]
    hashes = [hashlib.md5(str(h).encode('utf-8')).hexdigest()
              for h in zip(out_deg, in_deg, labels)]
    ins = [[w for w in range(n) if m[w, v]] for v in range(n)]
    outs = [[w for w in range(n) if m[v, w]] for v in range(n)]
    for _ in range(n):
        hashes = [hashlib.md5((''.join(sorted(hashes[w] for w in ins[v])) + '|'
                               + ''.join(sorted(hashes[w] for w in outs[v])) + '|'
                               + hashes[v]).encode('utf-8')).hexdigest()
                  for v in range(n)]
    return hashlib.md5(str(sorted(hashes)).encode('utf-8')).hexdigest()


def module_hash(matrix, ops: Sequence[str]) -> str:
    """NB101 module hash of a spec (pruned first, like the official API)."""
    validate(matrix, ops, check_limits=False)
    m, o = prune(matrix, ops)
    labels = [-1] + [AVAILABLE_OPS.index(op) for op in o[1:-1]] + [-2]
    return graph_hash(m, labels)


def vertex_channels(in_channels: int, out_channels: int, matrix: np.ndarray) -> list[int]:
    """Channels per vertex (official compute_vertex_channels): the output's channels are
    split among the vertices feeding it (remainder to the first ones); other vertices take
    the max of their successors."""
    m = np.asarray(matrix)
    n = m.shape[0]
    ch = [0] * n
    ch[0], ch[n - 1] = in_channels, out_channels
    if n == 2:
        return ch
    in_deg = m[1:].sum(axis=0)
    interior, correction = divmod(out_channels, int(in_deg[n - 1]))
    for v in range(1, n - 1):
        if m[v, n - 1]:
            ch[v] = interior + (1 if correction else 0)
            correction -= 1 if correction else 0
    for v in range(n - 3, 0, -1):
        if not m[v, n - 1]:
            for dst in range(v + 1, n - 1):
                if m[v, dst]:
                    ch[v] = max(ch[v], ch[dst])
    return ch


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int):
        # TF defaults of the official builder: BN momentum 0.997 (torch: 1 - 0.997), eps 1e-5.
        super().__init__(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.003), nn.ReLU())


def _op(name: str, c: int) -> nn.Module:
    if name == CONV3X3:
        return ConvBnRelu(c, c, 3)
    if name == CONV1X1:
        return ConvBnRelu(c, c, 1)
    return nn.MaxPool2d(3, 1, 1)


class Cell(nn.Module):
    """One NB101 module: 1x1 projections on input edges, channel truncation elsewhere,
    concat of the vertices feeding the output, plus projected input if connected."""

    def __init__(self, matrix: np.ndarray, ops: Sequence[str], c_in: int, c_out: int):
        super().__init__()
        self.m = np.asarray(matrix)
        n = self.m.shape[0]
        self.ch = vertex_channels(c_in, c_out, self.m)
        # Includes the input->output projection (t = n - 1) when that edge exists.
        self.proj = nn.ModuleDict({str(t): ConvBnRelu(c_in, self.ch[t], 1)
                                   for t in range(1, n) if self.m[0, t]})
        self.ops = nn.ModuleDict({str(t): _op(ops[t], self.ch[t]) for t in range(1, n - 1)})

    def forward(self, x: Tensor) -> Tensor:
        n = self.m.shape[0]
        tensors = [x]
        concat = []
        for t in range(1, n - 1):
            add_in = [tensors[s][:, :self.ch[t]] for s in range(1, t) if self.m[s, t]]
            if self.m[0, t]:
                add_in.append(self.proj[str(t)](x))
            h = add_in[0] if len(add_in) == 1 else sum(add_in)
            tensors.append(self.ops[str(t)](h))
            if self.m[t, n - 1]:
                concat.append(tensors[t])
        if not concat:
            return self.proj[str(n - 1)](x)
        out = concat[0] if len(concat) == 1 else torch.cat(concat, 1)
        if self.m[0, n - 1]:
            out = out + self.proj[str(n - 1)](x)
        return out


class Network(nn.Module):
    """Standalone NB101 network: 3x3 stem (128 ch), 3 stacks x 3 cells, 2x2 max-pool and
    channel doubling between stacks, global average pool, linear classifier."""

    def __init__(self, matrix, ops: Sequence[str], num_classes: int = 10,
                 stem_channels: int = 128, num_stacks: int = 3, cells_per_stack: int = 3):
        super().__init__()
        validate(matrix, ops)
        m, o = prune(matrix, ops)
        self.stem = ConvBnRelu(3, stem_channels, 3)
        layers: list[nn.Module] = []
        c_in = c = stem_channels
        for s in range(num_stacks):
            if s > 0:
                layers.append(nn.MaxPool2d(2, 2))
                c *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell(m, o, c_in, c))
                c_in = c
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        return self.classifier(x.mean((2, 3)))


def network(matrix, ops: Sequence[str], num_classes: int = 10) -> nn.Module:
    return Network(matrix, ops, num_classes)


@torch.no_grad()
def he_init(net: nn.Module) -> nn.Module:
    """The initialisation NASWOT gives NB101 networks (BayesWatch/nas-without-training
    nas_101_api/model.py lines 75-91): conv weights N(0, 2 / (k * k * out_channels)), conv
    biases 0; BN weight 1, bias 0; linear weights N(0, 0.01^2), bias 0. In place."""
    import math
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            if m.weight is not None:
                m.weight.fill_(1)
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0, 0.01)
            m.bias.zero_()
    return net


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters as NB101 counts them (BN moving statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
