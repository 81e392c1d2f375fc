"""The DARTS evaluation network for CIFAR (quark0/darts cnn/model.py `NetworkCIFAR`).

Stem: 3x3 conv to 3C channels + BN. Then `layers` cells; the cells at layers//3 and
2*layers//3 are reduction cells (channels doubled, resolution halved). A cell's two inputs
(the outputs of the two previous cells) are preprocessed to C channels: c_{k-2} by a
FactorizedReduce when the previous cell reduced, else by ReLU-1x1 conv-BN; c_{k-1} by
ReLU-1x1 conv-BN. In a reduction cell the ops reading the two cell inputs have stride 2.
The cell's output concatenates its 4 intermediate nodes (4C channels). Global average
pooling and a linear classifier follow the last cell.

Auxiliary head (AuxiliaryHeadCIFAR, for 8x8 inputs): on the output of cell 2*layers//3,
ReLU -> 5x5 average pool stride 3 -> 1x1 conv to 128 -> BN -> ReLU -> 2x2 conv to 768 -> BN ->
ReLU -> linear. It runs only in training mode.

Drop path (cnn/utils.py `drop_path`, cnn/model.py `Cell.forward`): in training mode and when
`drop_path_prob` > 0, the output of every op except an identity `skip_connect` is multiplied
per sample by Bernoulli(1 - p) / (1 - p). `drop_path_prob` is a plain attribute (0 until set);
the authors' train.py sets it each epoch to 0.2 * epoch / epochs.

All BN layers are affine with running statistics. `forward` returns (logits, logits_aux);
logits_aux is None in eval mode or without the head. `count_parameters` counts as the
authors' utils.count_parameters_in_MB does (names containing 'auxiliary' excluded).
"""
from __future__ import annotations

import torch
from torch import nn

from spaces.darts.genotype import Genotype, parse_genotype
from spaces.darts.ops import FactorizedReduce, ReLUConvBN, make_op


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability p and rescale the kept ones by 1/(1-p)."""
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class EvalCell(nn.Module):
    """A fixed cell of a genotype: each intermediate node sums two ops of earlier nodes."""

    def __init__(self, pairs: list[tuple[str, int]], concat: list[int], c_pp: int, c_p: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, C) if reduction_prev else ReLUConvBN(c_pp, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, C, 1, 1, 0)
        self.indices = [j for _, j in pairs]
        self.concat = list(concat)
        self.multiplier = len(self.concat)
        self.ops = nn.ModuleList(make_op(op, C, 2 if reduction and j < 2 else 1, affine=True)
                                 for op, j in pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(len(self.ops) // 2):
            s = 0
            for k in (2 * i, 2 * i + 1):
                op = self.ops[k]
                h = op(states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                s = s + h
            states.append(s)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    def __init__(self, genotype: Genotype, C: int = 36, layers: int = 20, num_classes: int = 10,
                 auxiliary: bool = True, stem_multiplier: int = 3):
        super().__init__()
        if layers < 3:
            raise ValueError(f"layers must be >= 3 (two reduction cells and a normal one), got {layers}")
        self.layers, self.auxiliary = layers, auxiliary
        self.drop_path_prob = 0.0
        self.aux_at = 2 * layers // 3
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        c_aux = None
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            pairs, concat = (genotype.reduce, genotype.reduce_concat) if reduction else \
                (genotype.normal, genotype.normal_concat)
            cell = EvalCell(pairs, concat, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_at:
                c_aux = c_p
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_at and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, logits_aux


def network(genotype: str, C: int = 36, layers: int = 20, num_classes: int = 10,
            auxiliary: bool = True, bn_init: str = "ones") -> NetworkCIFAR:
    """The evaluation network of `genotype` (defaults: the DARTS CIFAR-10 setting).

    bn_init: "ones" (PyTorch >= 0.4: every BN weight 1) or "uniform" (PyTorch 0.3, which the
    DARTS authors ran: `BatchNorm.reset_parameters` drew the weight U[0, 1)); with "uniform" the
    affine BN weights are redrawn from the global generator after the network is built."""
    if bn_init not in ("ones", "uniform"):
        raise ValueError(f"bn_init must be 'ones' or 'uniform', got {bn_init!r}")
    net = NetworkCIFAR(parse_genotype(genotype), C, layers, num_classes, auxiliary)
    if bn_init == "uniform":
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d) and m.affine:
                    m.weight.uniform_(0.0, 1.0)
    return net


def count_parameters(model: nn.Module) -> int:
    """Parameters as the DARTS authors count them: auxiliary-head parameters excluded."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)
