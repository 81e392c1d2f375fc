"""Operations of the DARTS CNN search space (Liu, Simonyan & Yang, ICLR 2019).

Definitions follow the authors' code (github quark0/darts, cnn/operations.py):
- `sep_conv_kxk`: two stacks of ReLU -> depthwise kxk conv -> pointwise 1x1 conv -> BN; only the
  first depthwise conv carries the stride; padding k//2.
- `dil_conv_kxk`: one stack ReLU -> depthwise kxk conv, dilation 2 -> 1x1 conv -> BN; padding
  k-1 (2 for 3x3, 4 for 5x5) so the size is kept.
- `skip_connect`: identity at stride 1, FactorizedReduce at stride 2 (ReLU, two 1x1 convs with
  stride 2, the second one on the input shifted by one pixel, concatenated, BN).
- pools: 3x3, padding 1; the average pool excludes padding from its count.
- `none`: zeros, subsampled by the stride.
- `noise` (RobustDARTS space s4; SmoothDARTS sota/cnn/operations.py lines 6 and 25-38, `NoiseOp`
  with mean 0, std 1): a fresh standard-normal tensor of the input's shape subsampled by the
  stride, independent of the input's values (no gradient flows to the input); drawn from the
  global torch generator (the harness seeds it), as the authors draw it with `normal_`.
All convolutions have no bias. `affine` switches the BN scale and shift (False in the search
network's mixed ops and cell preprocessing, True in the evaluation network).
"""
from __future__ import annotations

import torch
from torch import nn

# Column order of every architecture tensor (the authors' PRIMITIVES).
OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NONE = OPS.index("none")
# Ops without trainable weights at stride 1 (the collapse signal counts these; `none` never
# appears in a derived cell).
PARAM_FREE_OPS = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})
# Every op name a DARTS-space network can build: the 8 of OPS and RobustDARTS's `noise` (only its
# space s4 offers it; see spaces/darts/op_sets.py).
KNOWN_OPS: tuple[str, ...] = OPS + ("noise",)


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias) -> BN; the cells' 1x1 preprocessing of their two inputs."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU -> depthwise conv (dilated) -> 1x1 conv -> BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_in, k, stride=stride, padding=padding, dilation=dilation,
                                   groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class SepConv(nn.Sequential):
    """Two DilConv-like stacks without dilation; the stride is applied by the first only."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, affine: bool = True):
        super().__init__(DilConv(c_in, c_in, k, stride, padding, 1, affine),
                         DilConv(c_in, c_out, k, 1, padding, 1, affine))


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class Noise(nn.Module):
    """Standard-normal noise shaped as the (strided) input; the input's values are not used."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return torch.randn(x.shape, device=x.device, dtype=x.dtype)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs, each giving half the channels."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """One cell operation, C -> C channels, resolution divided by `stride` (1 or 2)."""
    if name == "none":
        return Zero(stride)
    if name == "noise":
        return Noise(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(C, C, k, stride, k // 2, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(C, C, k, stride, k - 1, 2, affine)
    raise ValueError(f"unknown DARTS op {name!r}; valid: {', '.join(KNOWN_OPS)}")
