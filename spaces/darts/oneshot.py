"""The BayesNAS one-shot network on the DARTS op set (`supernet.impl=oneshot`), written after
the authors' search network (github BayesNAS/BayesNAS, search/OneShot.py; line numbers below
are of that file). It differs from the DARTS search network (search_network.py) in its wiring,
its ops, its macro structure and in that every cell has its own weights:

- Wiring (NormalCell lines 189-241, ReductCell lines 244-295): 8 fixed edges per cell, each
  intermediate node fed by exactly 2 of them, not 14. In DARTS genotype node ids (0 = c_{k-2},
  the input `x_` of their cells; 1 = c_{k-1}, their "closer source" `x`):
  normal: 2<-0, 2<-1, 3<-0, 3<-1, 4<-0, 4<-1, 5<-1, 5<-2 (node 5's `in1_3` is applied to
  `x_in0`, line 231, i.e. to c_{k-1}, despite its name: kept as the code runs);
  reduce: 2<-0, 2<-1, 3<-0, 3<-2, 4<-0, 4<-2, 5<-0, 5<-2. `EDGES` gives their rows in the
  DARTS (14, n) architecture tensors; the other 6 rows are not read. The cell outputs the
  concatenation of its 4 nodes (lines 238, 292).
- Ops (Selection, lines 8-186): the 7 non-`none` DARTS ops, pre-activation and with affine BN:
  sep_conv_kxk = 2 x [BN, ReLU, zero pad k//2, depthwise kxk (stride on the first), 1x1];
  dil_conv_kxk = BN, ReLU, zero pad, a FULL (not depthwise) kxk conv with dilation 2, 1x1;
  max/avg_pool_3x3 = zero pad 1 then the pool (so the average counts the padding, and no BN
  follows); skip_connect = identity, at stride 2 BN then a 1x1 conv with stride 2. No `none`:
  the edge's input multiplier (the authors' `switch_all`, line 62) plays its part.
- Macro (NetWork, lines 328-421): a 3x3 stem conv to 3C channels (no BN); 8 cells N N R N N
  R N N (C, C, 2C, 2C, 2C, 4C, 4C, 4C channels per node); before each cell its two inputs are
  brought to the cell's width by BN, ReLU, 1x1 conv (CReduct, lines 298-325; after a
  reduction the older input first takes a 1x1 conv with stride 2); the first cell takes the
  stem as both inputs; head BN, ReLU, global average pool, linear. (The authors return
  log_softmax and train with nll_loss, the same loss as cross-entropy on these logits.)
  Default C = 36 (line 333).

`edge_ops` (the space's op set, spaces/darts/op_sets.py; default the 8 DARTS ops on every edge)
gives each edge's ops in column order; an op set with an op the authors' Selection does not
build (`noise`) is refused. `forward(x, weights)`: weights["normal"] of shape (6, 14, n) (one
(14, n) tensor per normal cell, in depth order) or (14, n) (shared by all normal cells);
weights["reduce"] (2, 14, n) or (14, n); optional weights[input_key(name)] of shape (cells, 14)
or (14,) multiply each edge's input. Column `none` is not read. `CELLS` gives the cells per tensor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spaces.base import Weights, input_key
from spaces.darts.ops import OPS

# rows of the DARTS (14, n) tensors: EDGE_LIST order, row(dst, src) = offset[dst] + src
_OFFSET = {2: 0, 3: 2, 4: 5, 5: 9}
_NORMAL = [(2, 0), (2, 1), (3, 0), (3, 1), (4, 0), (4, 1), (5, 1), (5, 2)]
_REDUCE = [(2, 0), (2, 1), (3, 0), (3, 2), (4, 0), (4, 2), (5, 0), (5, 2)]
EDGES = {"normal": [_OFFSET[d] + s for d, s in _NORMAL], "reduce": [_OFFSET[d] + s for d, s in _REDUCE]}
CELLS = {"normal": 6, "reduce": 2}
LAYOUT = "NNRNNRNN"  # OneShot.py lines 337-369


class _Pre(nn.Sequential):
    """[1x1 conv stride 2,] BN, ReLU, 1x1 conv (CReduct)."""

    def __init__(self, c_in: int, c_out: int, size_reduct: bool = False):
        mods = [nn.Conv2d(c_in, c_in, 1, stride=2, bias=False)] if size_reduct else []
        super().__init__(*mods, nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False))


class _Sep(nn.Module):
    def __init__(self, C: int, k: int, stride: int):
        super().__init__()
        self.k = k
        self.bn0, self.bn1 = nn.BatchNorm2d(C), nn.BatchNorm2d(C)
        self.dw0 = nn.Conv2d(C, C, k, stride=stride, groups=C, bias=False)
        self.pw0 = nn.Conv2d(C, C, 1, bias=False)
        self.dw1 = nn.Conv2d(C, C, k, stride=1, groups=C, bias=False)
        self.pw1 = nn.Conv2d(C, C, 1, bias=False)

    def forward(self, x):
        p = [self.k // 2] * 4
        x = self.pw0(self.dw0(F.pad(F.relu(self.bn0(x)), p)))
        return self.pw1(self.dw1(F.pad(F.relu(self.bn1(x)), p)))


class _Dil(nn.Module):
    def __init__(self, C: int, k: int, stride: int):
        super().__init__()
        self.pad = k - 1
        self.bn = nn.BatchNorm2d(C)
        self.conv = nn.Conv2d(C, C, k, stride=stride, dilation=2, bias=False)  # full, not depthwise
        self.pw = nn.Conv2d(C, C, 1, bias=False)

    def forward(self, x):
        return self.pw(self.conv(F.pad(F.relu(self.bn(x)), [self.pad] * 4)))


class _Pool(nn.Module):
    def __init__(self, kind: str, stride: int):
        super().__init__()
        self.pool = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(3, stride=stride)

    def forward(self, x):
        return self.pool(F.pad(x, [1] * 4))


class _Skip(nn.Module):
    def __init__(self, C: int, stride: int):
        super().__init__()
        self.reduce = stride == 2
        if self.reduce:
            self.bn = nn.BatchNorm2d(C)
            self.conv = nn.Conv2d(C, C, 1, stride=2, bias=False)

    def forward(self, x):
        return self.conv(self.bn(x)) if self.reduce else x


def _make(name: str, C: int, stride: int) -> nn.Module:
    if name.startswith("sep_conv"):
        return _Sep(C, int(name[-1]), stride)
    if name.startswith("dil_conv"):
        return _Dil(C, int(name[-1]), stride)
    if name.endswith("pool_3x3"):
        return _Pool(name[:3], stride)
    return _Skip(C, stride)


# the ops a Selection builds (the DARTS names of its Sep_3, Sep_5, Dil_3, Dil_5, Max_Pool,
# Avg_Pool, Ident), and `none`, which it has no module for (its edge switch stands for it)
ONESHOT_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
               "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


class Edge(nn.Module):
    """sum_o w[o] * op_o(m * x) over the edge's non-`none` ops (Selection.forward); `ops` the
    edge's op names in column order."""

    def __init__(self, C: int, stride: int, ops: tuple[str, ...] = OPS):
        super().__init__()
        unknown = [o for o in ops if o not in ONESHOT_OPS]
        if unknown:
            raise ValueError(f"supernet.impl=oneshot builds the BayesNAS authors' ops only "
                             f"({', '.join(ONESHOT_OPS)}), not {', '.join(unknown)}")
        self.cols = [o for o, name in enumerate(ops) if name != "none"]
        self.ops = nn.ModuleList(_make(ops[o], C, stride) for o in self.cols)

    def forward(self, x, w, m=None):
        if m is not None:
            x = x * m
        return sum(w[o] * op(x) for o, op in zip(self.cols, self.ops))


class OneShotCell(nn.Module):
    def __init__(self, C: int, reduction: bool, edge_ops=None):
        super().__init__()
        self.reduction = reduction
        self.wiring = _REDUCE if reduction else _NORMAL
        self.rows = EDGES["reduce" if reduction else "normal"]
        ops = edge_ops or (OPS,) * 14
        self.edges = nn.ModuleList(Edge(C, 2 if reduction and src < 2 else 1, tuple(ops[row]))
                                   for (_, src), row in zip(self.wiring, self.rows))

    def forward(self, s0, s1, w, m=None):
        states = [s0, s1]
        for dst in (2, 3, 4, 5):
            s = 0
            for e, ((d, src), row) in enumerate(zip(self.wiring, self.rows)):
                if d == dst:
                    s = s + self.edges[e](states[src], w[row], None if m is None else m[row])
            states.append(s)
        return torch.cat(states[2:], dim=1)


class OneShotNetwork(nn.Module):
    impl = "oneshot"
    cells_per_tensor = CELLS   # read by a method that keeps one switch set per cell
    edge_rows = EDGES          # the rows of the (14, n) tensors this network reads

    def __init__(self, C: int = 36, layers: int = 8, num_classes: int = 10, stem_multiplier: int = 3,
                 edge_ops: dict | None = None):
        super().__init__()
        if layers != 8:
            raise ValueError(f"supernet.layers must be 8 for impl=oneshot (the authors' N N R N N R N N), got {layers}")
        if C < 1:
            raise ValueError(f"supernet.C must be >= 1, got {C}")
        stem = stem_multiplier * C
        self.stem = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        self.pre0, self.pre1, self.cells = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c_pp, c_p, c, prev_reduced = stem, stem, C, False
        for kind in LAYOUT:
            reduction = kind == "R"
            if reduction:
                c *= 2
            self.pre0.append(_Pre(c_p, c))                                   # the closer input
            self.pre1.append(_Pre(c_pp, c, size_reduct=prev_reduced))       # the older input
            kind_name = "reduce" if reduction else "normal"
            self.cells.append(OneShotCell(c, reduction, (edge_ops or {}).get(kind_name)))
            c_pp, c_p, prev_reduced = c_p, 4 * c, reduction
        self.head_bn = nn.BatchNorm2d(c_p)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        seen = {"normal": 0, "reduce": 0}
        for pre0, pre1, cell in zip(self.pre0, self.pre1, self.cells):
            name = "reduce" if cell.reduction else "normal"
            i = seen[name]
            seen[name] += 1
            w, m = weights[name], weights.get(input_key(name))
            w = w[i] if w.dim() == 3 else w
            if m is not None and m.dim() == 2:
                m = m[i]
            s0, s1 = s1, cell(pre1(s0), pre0(s1), w, m)  # (older, closer)
        out = F.adaptive_avg_pool2d(F.relu(self.head_bn(s1)), 1).flatten(1)
        return self.classifier(out)
