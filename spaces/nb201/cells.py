"""NAS-Bench-201 cells (Dong & Yang, ICLR 2020): arch strings, the reference search cell and
supernet, and the standalone network.

A cell has 4 nodes and 6 edges j<-i (i<j), each one of 5 ops. Arch strings are formatted
exactly as the benchmark writes them: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
The architecture tensor is ``alpha`` of shape (6, 5): rows in the edge order below,
columns in the official op order.
"""
from __future__ import annotations

import torch
from torch import nn

from spaces.base import Weights, input_key
from spaces.nb201.ops import OPS, PARAM_FREE_OPS, Macro, make_op

NUM_NODES = 4
# Edge order = order of the arch string: node 1 <- 0; node 2 <- 0, 1; node 3 <- 0, 1, 2.
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))
NUM_ARCHS = len(OPS) ** len(EDGES)  # 15,625


class ArchStringError(ValueError):
    """An NB201 arch string that does not parse; the message says what is wrong."""


def parse_arch(arch: str) -> tuple[str, ...]:
    """Arch string -> the 6 op names in edge order, validated."""
    if not isinstance(arch, str):
        raise ArchStringError(f"arch must be a string, got {type(arch).__name__}")
    nodes = arch.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ArchStringError(f"{arch!r}: expected {NUM_NODES - 1} nodes joined by '+', got {len(nodes)}")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise ArchStringError(f"{arch!r}: node {j} {node!r} must start and end with '|'")
        items = node[1:-1].split("|")
        if len(items) != j:
            raise ArchStringError(f"{arch!r}: node {j} must have {j} inputs, got {len(items)}")
        for i, item in enumerate(items):
            op, sep, src = item.partition("~")
            if not sep:
                raise ArchStringError(f"{arch!r}: {item!r} must be 'op~input'")
            if op not in OPS:
                raise ArchStringError(f"{arch!r}: unknown op {op!r}; valid: {', '.join(OPS)}")
            if src != str(i):
                raise ArchStringError(f"{arch!r}: node {j} input {i} names node {src!r}, expected {i}")
            ops.append(op)
    return tuple(ops)


def format_arch(ops) -> str:
    ops = list(ops)
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ArchStringError(f"need {len(EDGES)} ops from {OPS}, got {ops}")
    nodes, k = [], 0
    for j in range(1, NUM_NODES):
        nodes.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(j)) + "|")
        k += j
    return "+".join(nodes)


def arch_index_order(arch: str) -> int:
    """Position of `arch` in the lexicographic product of ops (NOT the benchmark index)."""
    idx = 0
    for op in parse_arch(arch):
        idx = idx * len(OPS) + OPS.index(op)
    return idx


class SearchCell(nn.Module):
    """Reference mixed cell: one module per op per edge, as the NB201 authors' code does.

    conv_bias (default False): a bias on each conv of the cell. The code behind the NB201
    paper's search results (D-X-Y/AutoDL-Projects, lib/models/cell_operations.py, Jan-Apr
    2020) had none; from commit b9a5d28 (2020-07-19, "Prototype generic nas model", no reason
    given) and in the `xautodl` package, a conv has a bias exactly when its BN is not affine
    (`bias=not affine`), i.e. in every search cell. With batch statistics the bias cancels in
    the BN (same function, different parameter count and initial RNG draws); with running
    statistics in eval mode (`track_running_stats=True`) it changes the output. The suite
    follows the paper-era code; `conv_bias=True` reproduces xautodl's search cells (its
    differential test, tests/spaces/test_xautodl_reference.py, uses it).
    """

    # Set by the supernet (track_active_only): with tracked statistics, in training mode, an
    # op whose mixing weight is exactly 0 leaves its BN running statistics unchanged.
    track_active_only = False

    def __init__(self, C: int, affine: bool = False, track: bool = False,
                 conv_bias: bool = False):
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, C, affine, track, conv_bias) for op in OPS) for _ in EDGES)

    def _run(self, op: nn.Module, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if not (self.track_active_only and self.training) or float(w) != 0.0:
            return op(h)
        bns = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats]
        saved = [b.momentum for b in bns]
        for b in bns:   # running = (1 - 0) * running + 0 * batch: unchanged
            b.momentum = 0.0
        try:
            return op(h)
        finally:
            for b, mom in zip(bns, saved):
                b.momentum = mom

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                edge_input: torch.Tensor | None = None) -> torch.Tensor:
        """weights (6, 5) scale each op's output; edge_input (6,), optional, scales each edge's
        input (spaces.base.input_key): edge k computes sum_o w[k, o] * op_o(m[k] * x_i)."""
        nodes = [x]
        k = 0
        for j in range(1, NUM_NODES):
            s = 0
            for i in range(j):
                w = weights[k]
                h = nodes[i] if edge_input is None else nodes[i] * edge_input[k]
                s = s + sum(w[o] * self._run(op, h, w[o]) for o, op in enumerate(self.edges[k]))
                k += 1
            nodes.append(s)
        return nodes[-1]


class Supernet(nn.Module):
    """The search model: every cell mixes all ops with the given weights['alpha'] (6x5)."""

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = False,
                 track_running_stats: bool = False, conv_bias: bool = False, cell_cls=SearchCell,
                 track_active_only: bool = False):
        """track_active_only: with track_running_stats, only ops whose mixing weight is nonzero
        update their cells' BN running statistics in training mode (a sampled one-hot cell
        then moves only the sampled ops' statistics, as AutoDL's RANDOM-NAS, whose search
        model runs only the sampled op of each edge: lib/models/cell_searchs/
        search_model_random.py, `forward_dynamic`). Gradients are unchanged."""
        super().__init__()
        for name, v in (("conv_bias", conv_bias), ("track_active_only", track_active_only)):
            if not isinstance(v, bool):
                raise ValueError(f"supernet.{name} must be true or false, got {v!r}")
        self.net = Macro(C, N, num_classes,
                         lambda c: cell_cls(c, affine, track_running_stats, conv_bias))
        self.set_track_active_only(track_active_only)

    def set_track_active_only(self, flag: bool) -> None:
        """See __init__'s track_active_only; a method that trains sampled cells (random-ws)
        calls it, so that it holds whatever the profile (only matters with tracking)."""
        for cell in self.net.cells:
            if hasattr(cell, "track_active_only"):
                cell.track_active_only = bool(flag)

    def forward(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        return self.net(x, *cell_arguments(weights))


def cell_arguments(weights: Weights) -> tuple[torch.Tensor, ...]:
    """What every search cell receives: the (6, 5) mixing weights and, when given, the (6,)
    per-edge input multipliers (weights[input_key('alpha')])."""
    m = weights.get(input_key("alpha"))
    return (weights["alpha"],) if m is None else (weights["alpha"], m)


class InferCell(nn.Module):
    """A fixed cell: each edge carries its single op (`none` edges contribute zero)."""

    def __init__(self, ops: tuple[str, ...], C: int):
        super().__init__()
        self.ops = nn.ModuleList(make_op(op, C, affine=True, track=True) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for j in range(1, NUM_NODES):
            s = 0
            for i in range(j):
                s = s + self.ops[k](nodes[i])
                k += 1
            nodes.append(s)
        return nodes[-1]


def network(arch: str, num_classes: int = 10, C: int = 16, N: int = 5) -> nn.Module:
    """The standalone network of `arch` exactly as the benchmark trained it (C=16, N=5)."""
    ops = parse_arch(arch)
    return Macro(C, N, num_classes, lambda c: InferCell(ops, c))
