"""One-shot model of the NAS-Bench-1Shot1 search spaces (after the reference model_search.py).

The model owns no architecture parameters: forward(x, weights) takes already-normalized
mixing weights, so methods may pass softmaxed, perturbed, sampled or one-hot weights.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from spaces.base import input_key
from spaces.nb1shot1.nb101 import CONV1X1, CONV3X3, MAXPOOL3X3

# Mixed-op order of the reference code (differs from NB101's hash-label order).
PRIMITIVES = [MAXPOOL3X3, CONV3X3, CONV1X1]
# The reference passes TF's BN decay 0.997 to torch's BatchNorm2d, where momentum is the
# weight of the NEW batch: running statistics ~ the last batch. Kept for fidelity (it only
# matters for eval-mode forwards); set to 0.003 for TF-equivalent averaging.
BN_MOMENTUM, BN_EPS = 0.997, 1e-5


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU())


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


def _primitive(name: str, c: int) -> nn.Module:
    return {MAXPOOL3X3: lambda: nn.MaxPool2d(3, 1, 1), CONV3X3: lambda: ConvBnRelu(c, c, 3),
            CONV1X1: lambda: ConvBnRelu(c, c, 1)}[name]()


class MixedOp(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.ops = nn.ModuleList(_primitive(p, c) for p in PRIMITIVES)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        # Every op runs even at weight 0 (as in the reference): BN statistics and weight decay
        # of unused ops then behave the same as there.
        return sum(w[i] * op(x) for i, op in enumerate(self.ops))


class Cell(nn.Module):
    """Choice block b sees [proj_b(s0), block_1, .., block_{b-1}]; the inputs are weighted
    (if node b+1 has an input choice) and summed, then (if weights carry input_key('ops'), a
    (steps,) tensor) multiplied by that block's input multiplier, then go through the mixed op. The cell output
    is w_out[0] * proj_out(s0) + concat_b(w_out[b] * block_b) with C * steps channels."""

    def __init__(self, steps: int, c_in: int, c: int, input_nodes: list[int]):
        super().__init__()
        self.steps, self.input_nodes = steps, input_nodes
        self.proj = nn.ModuleList([ConvBnRelu(c_in, c, 1) for _ in range(steps)]
                                  + [ConvBnRelu(c_in, c * steps, 1)])
        self.blocks = nn.ModuleList(MixedOp(c) for _ in range(steps))

    def forward(self, s0: Tensor, weights: dict[str, Tensor]) -> Tensor:
        w_ops, w_out = weights['ops'], weights['output'].reshape(-1)
        m = weights.get(input_key('ops'))  # optional (steps,) multipliers of each block's input
        states: list[Tensor] = []
        for b in range(self.steps):
            inputs = [self.proj[b](s0), *states]
            node = b + 1
            if node in self.input_nodes:
                w_in = weights[f'input{node}'].reshape(-1)
                inputs = [w_in[i] * t for i, t in enumerate(inputs)]
            h = sum(inputs) if m is None else sum(inputs) * m[b]
            states.append(self.blocks[b](h, w_ops[b]))
        out = torch.cat([w_out[b + 1] * s for b, s in enumerate(states)], 1)
        return w_out[0] * self.proj[-1](s0) + out


class SuperNet(nn.Module):
    """Stem 3x3 ConvBnRelu 3->C; `layers` cells with MaxPool(2, 2, padding=1) and channel
    doubling before cells layers//3 and 2*layers//3; 1x1 ReLUConvBN (affine=False) from
    C*steps back to C; global average pool; linear classifier."""

    def __init__(self, steps: int, input_nodes: list[int], C: int = 16, layers: int = 9,
                 num_classes: int = 10):
        super().__init__()
        self.layers = layers
        self.stem = ConvBnRelu(3, C, 3)
        self.down_at = {layers // 3, 2 * layers // 3}
        cells, c_prev, c = [], C, C
        for i in range(layers):
            if i in self.down_at:
                c *= 2
            cells.append(Cell(steps, c_prev if i == 0 else c_prev * steps, c, input_nodes))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        self.pool = nn.MaxPool2d(2, 2, padding=1)
        self.postprocess = ReLUConvBN(c * steps, c)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        s = self.stem(x)
        for i, cell in enumerate(self.cells):   # one set of weights shared by all cells
            if i in self.down_at:
                s = self.pool(s)
            s = cell(s, weights)
        s = self.postprocess(s)
        return self.classifier(s.mean((2, 3)))
