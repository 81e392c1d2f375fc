"""NAS-Bench-201 building blocks, laid out as the benchmark's networks were.

`nor_conv_kxk` = ReLU -> Conv(k, no bias) -> BN; the reduction block is a basic ResNet
block with stride 2 and an avg-pool + 1x1 conv shortcut (NB201 paper, Sec. 2).
"""
from __future__ import annotations

import torch
from torch import nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PARAM_FREE_OPS = frozenset({"none", "skip_connect", "avg_pool_3x3"})


def bn(c: int, affine: bool, track: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, affine=affine, track_running_stats=track)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, affine: bool, track: bool,
                 conv_bias: bool = False):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=conv_bias),
            bn(c_out, affine, track),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int, affine: bool, track: bool, conv_bias: bool = False) -> nn.Module:
    """A stride-1, C->C cell operation (reduction happens only in the ResNet blocks).

    conv_bias: give the convolutions a bias (see `spaces.nb201.SearchCell` for when)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, affine, track, conv_bias)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, affine, track, conv_bias)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}; valid: {', '.join(OPS)}")


class ResNetBlock(nn.Module):
    """The benchmark's reduction block: two ReLU-Conv-BN, shortcut avgpool(2) + 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine, track)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine, track)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Macro(nn.Module):
    """Stem, 3 stages of N cells joined by ResNet blocks, BN-ReLU, pooling, classifier.

    `make_cell(C)` builds one cell of C channels; `forward(x, *cell_args)` passes the extra
    arguments (the supernet's mixing weights) to every cell.
    """

    def __init__(self, C: int, N: int, num_classes: int, make_cell, block_affine: bool = True,
                 block_track: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        self.is_cell: list[bool] = []
        channels = [C] * N + [C * 2] + [C * 2] * N + [C * 4] + [C * 4] * N
        reduction = [False] * N + [True] + [False] * N + [True] + [False] * N
        c_prev = C
        for c, red in zip(channels, reduction):
            layers.append(ResNetBlock(c_prev, c, block_affine, block_track) if red else make_cell(c))
            self.is_cell.append(not red)
            c_prev = c
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor, *cell_args) -> torch.Tensor:
        x = self.stem(x)
        for layer, is_cell in zip(self.cells, self.is_cell):
            x = layer(x, *cell_args) if is_cell else layer(x)
        x = self.lastact(x)
        # The global average. On CUDA as a mean: adaptive_avg_pool2d's CUDA backward has no
        # deterministic kernel for every memory layout (the fast supernet is channels_last),
        # so --deterministic would refuse it; the mean's is deterministic. On the CPU the
        # pooling module as before (the same average; records made with it stay bitwise).
        x = x.mean((2, 3)) if x.is_cuda else self.pool(x).flatten(1)
        return self.classifier(x)
