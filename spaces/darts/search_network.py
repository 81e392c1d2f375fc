"""The DARTS search network (quark0/darts cnn/model_search.py `Network`).

Every edge j -> node is a mixed op: sum_o w[e, o] * op_o(x) over the edge's ops, built with BN
affine=False; pooling ops are followed by an affine-free BN inside the mixed op (the authors'
MixedOp), `skip_connect` at stride 2 is a FactorizedReduce. A cell preprocesses its two inputs
as the evaluation cell does (affine-free BN), has 4 intermediate nodes each fed by every earlier
node (14 edges), and outputs the concatenation of the last `multiplier` (= 4) nodes.
Macro: 3x3 stem conv to stem_multiplier * C channels + BN, `layers` cells with reductions at
layers//3 and 2*layers//3, global average pooling, linear.

The ops of every edge are data: `edge_ops` {"normal": 14 op tuples, "reduce": 14 op tuples}
(spaces/darts/op_sets.py; default the 8 DARTS ops on every edge), the same data the fast network
takes; an edge's MixedOp builds its ops in the tuple's order, as SmoothDARTS's MixedOp builds
its per-edge `PRIMITIVES` (sota/cnn/model_search.py lines 14-26 and 44-54).

`forward(x, weights)` takes ALREADY NORMALISED mixing weights {"normal": (14, n),
"reduce": (14, n)} (n = ops per edge; 8 in the DARTS op set): normal cells mix with weights["normal"], reduction cells with
weights["reduce"] (the authors apply softmax(alpha) inside forward; here the method does,
see spaces/base.py). Optional weights[input_key("normal")] / [input_key("reduce")], each a
(14,) tensor, multiply each edge's input (spaces.base.input_key; BayesNAS' edge switch).
BN layers keep running statistics (PyTorch's default, as the authors).
Defaults C=16, layers=8 are the authors' train_search.py settings.

`skip_zero` (False): when the mixing weights need no gradient (random search's one-hot
samples), an op whose weight is exactly 0 is not run, nor an edge whose weights are all 0, as
the proxyless branch of Li & Talwalkar's DARTS fork runs its discrete architectures
(liamcli/darts, branch `proxyless`, commit 2383602, cnn/model_search.py line 22 `if w > 0`,
line 54 `if sum(weights[offset+j]) > 0`). The output is the same; what changes is that a
skipped op's BN running statistics do not move in that step (train mode), and its parameters
get no gradient from it (autograd never reaches them: `.grad` stays None, or stays as the
optimizer's zero_grad left it). The fast network's `skip_zero` (spaces/darts/fast.py) skips
the same ops with the same outputs and statistics, but hands the skipped parameters zero
gradients. Default False: every op runs, as quark0/darts and the master branch of Li &
Talwalkar's fork (cnn/model_search.py line 22).
"""
from __future__ import annotations

import torch
from torch import nn

from spaces.base import Weights, input_key
from spaces.darts.op_sets import OP_SETS, check_op_set
from spaces.darts.ops import OPS, FactorizedReduce, ReLUConvBN, make_op


class MixedOp(nn.Module):
    def __init__(self, C: int, stride: int, names: tuple[str, ...] = OPS):
        super().__init__()
        ops = []
        for name in names:
            op = make_op(name, C, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, w: torch.Tensor, nonzero: list[bool] | None = None) -> torch.Tensor:
        """nonzero (optional): run only the ops it marks (SearchNetwork's skip_zero)."""
        if nonzero is None:
            return sum(w[o] * op(x) for o, op in enumerate(self.ops))
        return sum(w[o] * op(x) for o, op in enumerate(self.ops) if nonzero[o])


class SearchCell(nn.Module):
    def __init__(self, steps: int, multiplier: int, c_pp: int, c_p: int, C: int, reduction: bool,
                 reduction_prev: bool, edge_ops=None):
        super().__init__()
        self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
        n_edges = sum(i + 2 for i in range(steps))
        self.edge_ops = [tuple(OPS)] * n_edges if edge_ops is None else [tuple(e) for e in edge_ops]
        self.preprocess0 = (FactorizedReduce(c_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(MixedOp(C, 2 if reduction and j < 2 else 1, self.edge_ops[k])
                                   for k, j in enumerate(j for i in range(steps) for j in range(i + 2)))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_input: torch.Tensor | None = None, skip_zero: bool = False) -> torch.Tensor:
        """weights (14, n) scale the op outputs; edge_input (14,), optional, multiplies each
        edge's input (edge e computes sum_o w[e, o] * op_o(m[e] * h)); skip_zero: ops (and
        edges) of weight exactly 0 are not run (SearchNetwork's skip_zero)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        if skip_zero:
            return self._forward_nonzero(states, weights, edge_input)
        offset = 0
        for _ in range(self.steps):
            if edge_input is None:
                s = sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            else:
                s = sum(self.edges[offset + j](h * edge_input[offset + j], weights[offset + j])
                        for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier:], dim=1)

    def _forward_nonzero(self, states: list[torch.Tensor], weights: torch.Tensor,
                         edge_input: torch.Tensor | None) -> torch.Tensor:
        nonzero = (weights != 0).tolist()
        offset = 0
        for _ in range(self.steps):
            terms = []
            for j, h in enumerate(states):
                e = offset + j
                if any(nonzero[e]):
                    terms.append(self.edges[e](h if edge_input is None else h * edge_input[e],
                                               weights[e], nonzero[e]))
            if terms:
                s = sum(terms)
            else:   # every in-edge skipped: the node is exactly zero
                B, C, H, W = states[0].shape
                if self.reduction:   # the stride-2 ops' output size
                    H, W = (H + 1) // 2, (W + 1) // 2
                s = states[0].new_zeros(B, C, H, W)
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier:], dim=1)


class SearchNetwork(nn.Module):
    impl = "reference"  # `supernet.impl`; spaces/darts/fast.py's network says "fast"

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, edge_ops=None, skip_zero: bool = False):
        super().__init__()
        self.skip_zero = skip_zero   # see the module docstring
        if layers < 3:
            raise ValueError(f"supernet.layers must be >= 3 (two reduction cells and a normal one), got {layers}")
        if C < 1 or C % 2:
            raise ValueError(f"supernet.C must be a positive even number (FactorizedReduce halves it), got {C}")
        if steps != 4 or multiplier != 4:
            raise ValueError("the DARTS space has steps=4 and multiplier=4 (14 edges per cell)")
        self.C, self.steps, self.multiplier, self.stem_multiplier = C, steps, multiplier, stem_multiplier
        self.edge_ops = check_op_set(OP_SETS["darts"] if edge_ops is None else edge_ops)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev,
                                         self.edge_ops["reduce" if reduction else "normal"]))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's, but a state of the other impl is refused, naming both: the reference
        stores weights per edge and op (`cells.N.edges.K.ops...`), the fast network packed per
        wave of edges (`cells.N.waves.W...`). Convert with FastSearchNetwork.load_reference /
        to_reference (spaces/darts/fast.py)."""
        theirs = ("fast" if any(".waves." in k for k in state_dict)
                  else "reference" if any(".edges." in k for k in state_dict) else None)
        if theirs is not None and theirs != self.impl:
            raise ValueError(f"this state is of the DARTS search network with supernet.impl={theirs}, "
                             f"this network is impl={self.impl}: the two store their weights "
                             f"differently; run with --set supernet.impl={theirs}, or convert "
                             "with spaces.darts.fast.FastSearchNetwork.load_reference / to_reference")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        skip = {name: self.skip_zero and not weights[name].requires_grad for name in ("normal", "reduce")}
        for cell in self.cells:
            name = "reduce" if cell.reduction else "normal"
            m = weights.get(input_key(name))   # optional (14,) edge-input multipliers
            if skip[name]:
                s0, s1 = s1, cell(s0, s1, weights[name], m, skip_zero=True)
            elif m is None:
                s0, s1 = s1, cell(s0, s1, weights[name])
            else:
                s0, s1 = s1, cell(s0, s1, weights[name], m)
        return self.classifier(self.global_pooling(s1).flatten(1))
