"""A faster NB201 search cell with the same math as the reference `SearchCell`.

Per source node i (edges i->j for every j > i):
  * ReLU(x_i) and avgpool(x_i) are computed once and shared by all outgoing edges;
  * the 1x1 convolutions of all those edges are one conv call (weights stacked along the
    output channels), likewise the 3x3 ones;
  * BatchNorm is per channel, so one batch_norm over the stacked channels is exact; the
    mixing weight of each conv op is folded into the BN scale (w * gamma, w * beta), which
    saves a multiply pass and lets BN's backward produce the mixing weight's gradient;
  * `none` contributes exactly zero and is skipped (its weight gets a zero gradient).

Parameters are created by building a reference `SearchCell` first and packing its tensors,
so for the same seed the fast and the reference supernet start from identical weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spaces.nb201.cells import EDGES, NUM_NODES, SearchCell, Supernet, cell_arguments
from spaces.nb201.ops import OPS

_SKIP, _C1, _C3, _POOL = (OPS.index(o) for o in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                  "avg_pool_3x3"))
# For each source node i: the edge indices (into EDGES) of i -> j, j = i+1 .. NUM_NODES-1.
OUT_EDGES: tuple[tuple[int, ...], ...] = tuple(
    tuple(k for k, (j, src) in enumerate(EDGES) if src == i) for i in range(NUM_NODES - 1))


class FastSearchCell(nn.Module):
    """Mixed NB201 cell; `forward(x, weights)` with weights of shape (6, 5) as the reference."""

    track_active_only = False  # as SearchCell's (set by the supernet)

    def __init__(self, C: int, affine: bool = False, track: bool = False,
                 conv_bias: bool = False):
        super().__init__()
        self.C, self.affine, self.track, self.conv_bias = C, affine, track, conv_bias
        self.eps, self.momentum = 1e-5, 0.1
        self.conv1 = nn.ParameterList()
        self.conv3 = nn.ParameterList()
        self.conv1_bias = nn.ParameterList() if conv_bias else None
        self.conv3_bias = nn.ParameterList() if conv_bias else None
        self.bn_weight = nn.ParameterList() if affine else None
        self.bn_bias = nn.ParameterList() if affine else None
        for i, edges in enumerate(OUT_EDGES):
            n = 2 * len(edges) * C  # [1x1 of each edge | 3x3 of each edge]
            self.conv1.append(nn.Parameter(torch.empty(len(edges) * C, C, 1, 1)))
            self.conv3.append(nn.Parameter(torch.empty(len(edges) * C, C, 3, 3)))
            if conv_bias:
                self.conv1_bias.append(nn.Parameter(torch.empty(len(edges) * C)))
                self.conv3_bias.append(nn.Parameter(torch.empty(len(edges) * C)))
            if affine:
                self.bn_weight.append(nn.Parameter(torch.ones(n)))
                self.bn_bias.append(nn.Parameter(torch.zeros(n)))
            if track:
                self.register_buffer(f"running_mean{i}", torch.zeros(n))
                self.register_buffer(f"running_var{i}", torch.ones(n))
                self.register_buffer(f"num_batches{i}", torch.zeros((), dtype=torch.long))
        # Same RNG draws, in the same order, as the reference cell's construction.
        self.copy_from(SearchCell(C, affine, track, conv_bias))

    # ----- layout mapping -------------------------------------------------------------------
    @torch.no_grad()
    def copy_from(self, ref: SearchCell) -> None:
        """Pack a reference cell's parameters (and BN buffers) into this layout."""
        for i, edges in enumerate(OUT_EDGES):
            c1 = [ref.edges[k][_C1] for k in edges]
            c3 = [ref.edges[k][_C3] for k in edges]
            self.conv1[i].copy_(torch.cat([m[1].weight for m in c1]))
            self.conv3[i].copy_(torch.cat([m[1].weight for m in c3]))
            if self.conv_bias:
                self.conv1_bias[i].copy_(torch.cat([m[1].bias for m in c1]))
                self.conv3_bias[i].copy_(torch.cat([m[1].bias for m in c3]))
            bns = [m[2] for m in c1 + c3]
            if self.affine:
                self.bn_weight[i].copy_(torch.cat([b.weight for b in bns]))
                self.bn_bias[i].copy_(torch.cat([b.bias for b in bns]))
            if self.track:
                getattr(self, f"running_mean{i}").copy_(torch.cat([b.running_mean for b in bns]))
                getattr(self, f"running_var{i}").copy_(torch.cat([b.running_var for b in bns]))
                getattr(self, f"num_batches{i}").copy_(bns[0].num_batches_tracked)

    @torch.no_grad()
    def copy_to(self, ref: SearchCell) -> None:
        """Unpack this cell's parameters into a reference cell (the inverse of copy_from)."""
        C = self.C
        for i, edges in enumerate(OUT_EDGES):
            mods = [ref.edges[k][_C1] for k in edges] + [ref.edges[k][_C3] for k in edges]
            for e, k in enumerate(edges):
                ref.edges[k][_C1][1].weight.copy_(self.conv1[i][e * C:(e + 1) * C])
                ref.edges[k][_C3][1].weight.copy_(self.conv3[i][e * C:(e + 1) * C])
                if self.conv_bias:
                    ref.edges[k][_C1][1].bias.copy_(self.conv1_bias[i][e * C:(e + 1) * C])
                    ref.edges[k][_C3][1].bias.copy_(self.conv3_bias[i][e * C:(e + 1) * C])
            for m, b in enumerate(mods):
                sl = slice(m * C, (m + 1) * C)
                if self.affine:
                    b[2].weight.copy_(self.bn_weight[i][sl])
                    b[2].bias.copy_(self.bn_bias[i][sl])
                if self.track:
                    b[2].running_mean.copy_(getattr(self, f"running_mean{i}")[sl])
                    b[2].running_var.copy_(getattr(self, f"running_var{i}")[sl])
                    b[2].num_batches_tracked.copy_(getattr(self, f"num_batches{i}"))

    # ----- compute ----------------------------------------------------------------------------
    def _convs(self, i: int, x: torch.Tensor, weights: torch.Tensor,
               edge_input: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Mixing-weighted BN(conv(ReLU x_i)) of each edge leaving node i: (1x1 + 3x3) terms.

        BN runs once per conv call over the stacked channels ([edge 0 | edge 1 | ...], each C
        wide). `split` (not slicing) keeps the backward to one concatenation per tensor.
        With per-edge input multipliers m the edges no longer share ReLU(x_i): the inputs
        ReLU(m_e x_i) are stacked along the channels and one grouped conv (a group per edge,
        the same stacked weight layout) computes every edge's conv.
        """
        edges, C = OUT_EDGES[i], self.C
        E = len(edges)
        groups = 1
        if edge_input is None:
            r = F.relu(x)
        else:
            r = torch.cat([F.relu(x * edge_input[k]) for k in edges], dim=1)
            groups = E
        w = weights[list(edges)][:, [_C1, _C3]].t().repeat_interleave(C, dim=1)  # (2, E*C)
        scale = [w[0], w[1]]
        bias: list[torch.Tensor | None] = [None, None]
        if self.affine:
            g, b = self.bn_weight[i], self.bn_bias[i]
            n = E * C
            scale = [scale[0] * g[:n], scale[1] * g[n:]]
            bias = [w[0] * b[:n], w[1] * b[n:]]
        use_batch_stats = self.training or not self.track
        if self.track and self.training:
            getattr(self, f"num_batches{i}").add_(1)
        # track_active_only: only channels of ops with a nonzero weight keep the new statistics
        keep = (w != 0) if (self.track and self.training and self.track_active_only) else None
        outs = []
        b1, b3 = (self.conv1_bias[i], self.conv3_bias[i]) if self.conv_bias else (None, None)
        for m, y in enumerate((F.conv2d(r, self.conv1[i], b1, groups=groups),
                               F.conv2d(r, self.conv3[i], b3, padding=1, groups=groups))):
            sl = slice(m * E * C, (m + 1) * E * C)
            rm = getattr(self, f"running_mean{i}")[sl] if self.track else None
            rv = getattr(self, f"running_var{i}")[sl] if self.track else None
            if keep is not None:
                old_rm, old_rv = rm.clone(), rv.clone()
            outs.append(F.batch_norm(y, rm, rv, scale[m], bias[m], use_batch_stats,
                                     self.momentum, self.eps).split(C, dim=1))
            if keep is not None:
                with torch.no_grad():
                    rm.copy_(torch.where(keep[m], rm, old_rm))
                    rv.copy_(torch.where(keep[m], rv, old_rv))
        return tuple(a + b for a, b in zip(*outs))

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                edge_input: torch.Tensor | None = None) -> torch.Tensor:
        """As SearchCell.forward: edge_input (6,), optional, multiplies each edge's input.
        Skip and average pooling are linear, so their terms take m_e as a factor."""
        nodes = [x]
        partial: list[torch.Tensor | int] = [0] * NUM_NODES  # running sums of node inputs
        for i, edges in enumerate(OUT_EDGES):
            xi = nodes[i]
            convs = self._convs(i, xi, weights, edge_input)
            pooled = F.avg_pool2d(xi, 3, stride=1, padding=1, count_include_pad=False)
            for conv, k in zip(convs, edges):
                j, w = EDGES[k][0], weights[k]
                if edge_input is None:
                    partial[j] = partial[j] + (conv + w[_SKIP] * xi + w[_POOL] * pooled)
                else:
                    m = edge_input[k]
                    partial[j] = partial[j] + (conv + (w[_SKIP] * m) * xi + (w[_POOL] * m) * pooled)
            nodes.append(partial[i + 1])
        return nodes[-1]


class FastSupernet(Supernet):
    """The NB201 supernet with fast cells; CUDA-only extras: bf16 autocast, torch.compile.

    channels_last: convolution inputs in NHWC (oneDNN and cuDNN prefer it).
    bf16: autocast the forward pass to bfloat16 on CUDA (changes rounding: not exact).
    compile: torch.compile each cell's forward on CUDA (first steps pay the compile time).
    On CPU `bf16` and `compile` are ignored, so a config runs anywhere.
    """

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = False,
                 track_running_stats: bool = False, conv_bias: bool = False,
                 channels_last: bool = True, bf16: bool = False, compile: bool = False,
                 track_active_only: bool = False):
        super().__init__(C, N, num_classes, affine, track_running_stats, conv_bias,
                         cell_cls=FastSearchCell, track_active_only=track_active_only)
        self.channels_last, self.bf16, self.compile = channels_last, bf16, compile
        self._compiled = False

    @torch.no_grad()
    def load_reference(self, ref: Supernet) -> None:
        """Take a reference supernet's tensors: cells packed (`FastSearchCell.copy_from`),
        everything else (stem, ResNet blocks, last BN, classifier) by name."""
        ref_sd = ref.state_dict()
        for name, t in self.state_dict().items():
            parts = name.split(".")
            if parts[1] == "cells" and isinstance(self.net.cells[int(parts[2])], FastSearchCell):
                continue
            t.copy_(ref_sd[name])
        for f, r in zip(self.net.cells, ref.net.cells):
            if isinstance(f, FastSearchCell):
                f.copy_from(r)

    def _maybe_compile(self) -> None:
        if self._compiled:
            return
        for cell in self.net.cells:
            if isinstance(cell, FastSearchCell):
                cell.forward = torch.compile(cell.forward, dynamic=False)
        self._compiled = True

    def forward(self, x: torch.Tensor, weights) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if x.is_cuda and self.compile:
            self._maybe_compile()
        if x.is_cuda and self.bf16:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.net(x, *cell_arguments(weights)).float()
        return self.net(x, *cell_arguments(weights))
