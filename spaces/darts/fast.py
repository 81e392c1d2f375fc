"""A faster DARTS search network computing the same function as `search_network.SearchNetwork`.

The reference (quark0/darts cnn/model_search.py `MixedOp`/`Cell`) runs every op of every edge
as its own module: 14 edges x 8 ops per cell. Here a cell is computed in "waves" of edges that
share their source nodes (wave 0: the edges leaving the cell inputs c_{k-2} and c_{k-1}, which
the reduction cell applies with stride 2; then the edges leaving node 2, node 3, node 4), and
within a wave:

* the ReLU of a source is computed once and shared by all its convolution ops and out-edges;
* max and average pooling and the affine-free BN after them (the authors' MixedOp adds that BN)
  are computed once per source: in training mode every out-edge's pool-BN normalises the same
  tensor with the same batch statistics; each edge keeps its own running statistics (as the
  reference), updated from the shared batch statistics;
* each conv op (sep_conv_3x3/5x5, dil_conv_3x3/5x5, the stride-2 skip = FactorizedReduce) of
  all the wave's edges is ONE depthwise conv over the stacked per-edge inputs and ONE grouped
  1x1 conv (groups = edges), and its BNs one batch_norm over the stacked channels (BN is per
  channel, so this is exact);
* the mixing weight of a conv op is folded into its last (affine-free) BN as the scale, so the
  product w * BN(y) costs nothing and BN's backward yields the weight's gradient;
* `none` contributes exactly zero and is not computed (its weight gets a zero gradient, as in
  the reference); with `skip_zero` (opt-in, as the reference's) an op whose mixing weight is exactly 0 and needs no
  gradient (random search's one-hot samples) is not computed either: see `FastSearchNetwork`;
* channels_last memory format (oneDNN's depthwise convolutions run about twice as fast in it);
* per-edge input multipliers m (BayesNAS's edge switches, `spaces.base.input_key`; edge e
  computes sum_o w[e, o] op_o(m_e h) as `SearchCell.forward`): for m_e > 0 they scale edge e's
  first conv kernels (ReLU(m h) = m ReLU(h)), otherwise that edge's input is ReLU(m_e h);
  identity skips take w m_e; pools stay shared (avg_pool(m h) = m avg_pool(h), and max_pool for
  m > 0) and their BN of m_e P becomes a per-edge, per-channel factor on P - mean (see
  `_Wave._pools`: BN(m P) is not m BN(P)).

The op list of every edge is data (`edge_ops`, default the 8 DARTS ops on every edge; the
network takes the reference's {"normal": ..., "reduce": ...} op sets, spaces/darts/op_sets.py):
each op is batched over the wave's edges that have it; an op without a batched form
(RobustDARTS's `noise`) runs per edge as the reference module `ops.make_op` builds.

Parameters are created by building the reference network first (same RNG draws, same order)
and packing its tensors, so the same seed gives the same initial weights in both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spaces.base import Weights, input_key
from spaces.darts.ops import OPS, make_op
from spaces.darts.search_network import SearchCell, SearchNetwork

SEP = {"sep_conv_3x3": 3, "sep_conv_5x5": 5}
DIL = {"dil_conv_3x3": 3, "dil_conv_5x5": 5}
POOLS = ("max_pool_3x3", "avg_pool_3x3")
MOMENTUM, EPS = 0.1, 1e-5  # nn.BatchNorm2d defaults, as the reference's BNs


def edge_list(steps: int) -> list[tuple[int, int]]:
    """(source state, destination node) of the edges in weight-row order: node i (states
    2 .. steps+1) takes every earlier state 0 .. i-1, as the reference cell."""
    return [(j, i + 2) for i in range(steps) for j in range(i + 2)]


def _module_key(name: str) -> str:
    return name.replace(".", "_")


class _Wave(nn.Module):
    """The edges leaving `sources`, with their packed parameters and BN buffers."""

    def __init__(self, C: int, sources: tuple[int, ...], edges: list[tuple[int, int, int]],
                 stride: int, edge_ops: list[tuple[str, ...]]):
        super().__init__()
        self.C, self.sources, self.stride = C, sources, stride
        self.edges = edges  # (row k, source, destination), source-major
        # For each op: the wave positions e of the edges that have it, and its column per edge.
        self.members: dict[str, list[int]] = {}
        self.column: dict[str, list[int]] = {}
        for e, (k, _, _) in enumerate(edges):
            for col, op in enumerate(edge_ops[k]):
                self.members.setdefault(op, []).append(e)
                self.column.setdefault(op, []).append(col)
        self.fallback = nn.ModuleDict()
        for op, es in self.members.items():
            n = len(es)
            if op in SEP:
                k = SEP[op]
                for stage in (1, 2):
                    self._param(f"{op}_dw{stage}", n * C, 1, k, k)
                    self._param(f"{op}_pw{stage}", n * C, C, 1, 1)
                    self._stats(f"{op}_bn{stage}", n * C)
            elif op in DIL:
                k = DIL[op]
                self._param(f"{op}_dw", n * C, 1, k, k)
                self._param(f"{op}_pw", n * C, C, 1, 1)
                self._stats(f"{op}_bn", n * C)
            elif op == "skip_connect" and stride == 2:  # FactorizedReduce
                self._param("skip_connect_conv1", n * (C // 2), C, 1, 1)
                self._param("skip_connect_conv2", n * (C // 2), C, 1, 1)
                self._stats("skip_connect_bn", n * C)
            elif op in POOLS:  # per-edge statistics: input multipliers make them differ
                self._stats(f"{op}_bn", n * C)
            elif op in ("none", "skip_connect"):
                pass
            else:  # no batched form: the reference module per edge
                for e in es:
                    mod = make_op(op, C, stride, affine=False)
                    self.fallback[f"{_module_key(op)}_{edges[e][0]}"] = mod

    def _param(self, name: str, *shape: int) -> None:
        self.register_parameter(name, nn.Parameter(torch.empty(*shape)))

    def _stats(self, name: str, n: int) -> None:
        self.register_buffer(f"{name}_mean", torch.zeros(n))
        self.register_buffer(f"{name}_var", torch.ones(n))

    # ----- layout mapping (reference <-> packed) -------------------------------------------
    def _pairs(self, ref: SearchCell, edge_ops) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """(packed tensor, [the reference tensors it stacks, in order]) for every tensor."""
        out = []
        C = self.C
        for op, es in self.members.items():
            mods = [ref.edges[self.edges[e][0]].ops[edge_ops[self.edges[e][0]].index(op)] for e in es]
            if op in SEP:
                for stage in (1, 2):
                    out.append((getattr(self, f"{op}_dw{stage}"), [m[stage - 1][1].weight for m in mods]))
                    out.append((getattr(self, f"{op}_pw{stage}"), [m[stage - 1][2].weight for m in mods]))
                    bn = [m[stage - 1][3] for m in mods]
                    out.append((getattr(self, f"{op}_bn{stage}_mean"), [b.running_mean for b in bn]))
                    out.append((getattr(self, f"{op}_bn{stage}_var"), [b.running_var for b in bn]))
            elif op in DIL:
                out.append((getattr(self, f"{op}_dw"), [m[1].weight for m in mods]))
                out.append((getattr(self, f"{op}_pw"), [m[2].weight for m in mods]))
                out.append((getattr(self, f"{op}_bn_mean"), [m[3].running_mean for m in mods]))
                out.append((getattr(self, f"{op}_bn_var"), [m[3].running_var for m in mods]))
            elif op == "skip_connect" and self.stride == 2:
                out.append((self.skip_connect_conv1, [m.conv_1.weight for m in mods]))
                out.append((self.skip_connect_conv2, [m.conv_2.weight for m in mods]))
                out.append((self.skip_connect_bn_mean, [m.bn.running_mean for m in mods]))
                out.append((self.skip_connect_bn_var, [m.bn.running_var for m in mods]))
            elif op in POOLS:
                out.append((getattr(self, f"{op}_bn_mean"), [m[1].running_mean for m in mods]))
                out.append((getattr(self, f"{op}_bn_var"), [m[1].running_var for m in mods]))
            elif op in self.fallback_ops():
                for e, m in zip(es, mods):
                    for name, t in m.state_dict(keep_vars=True).items():
                        if name.endswith("num_batches_tracked"):
                            continue
                        mine = self.fallback[f"{_module_key(op)}_{self.edges[e][0]}"].state_dict(keep_vars=True)[name]
                        out.append((mine, [t]))
        del C
        return out

    def fallback_ops(self) -> set[str]:
        return {op for op in self.members if op not in SEP and op not in DIL and op not in POOLS
                and op not in ("none", "skip_connect")}

    @torch.no_grad()
    def copy_from(self, ref: SearchCell, edge_ops) -> None:
        for packed, parts in self._pairs(ref, edge_ops):
            packed.copy_(torch.cat([p.reshape(-1, *packed.shape[1:]) for p in parts]))

    @torch.no_grad()
    def copy_to(self, ref: SearchCell, edge_ops) -> None:
        for packed, parts in self._pairs(ref, edge_ops):
            for p, chunk in zip(parts, packed.split([p.shape[0] for p in parts])):
                p.copy_(chunk.reshape(p.shape))

    # ----- compute ----------------------------------------------------------------------------
    def _bn(self, y: torch.Tensor, name: str, idx: torch.Tensor | None, full: bool,
            scale: torch.Tensor | None, training: bool) -> torch.Tensor:
        """Affine-free BN over stacked channels with the packed running stats `name`; `idx`
        selects the channels of a subset of the op's edges (None: all)."""
        rm, rv = getattr(self, f"{name}_mean"), getattr(self, f"{name}_var")
        if full:
            return F.batch_norm(y, rm, rv, scale, None, training, MOMENTUM, EPS)
        m, v = rm[idx], rv[idx]
        out = F.batch_norm(y, m, v, scale, None, training, MOMENTUM, EPS)
        if training:
            with torch.no_grad():
                rm[idx] = m
                rv[idx] = v
        return out

    def forward(self, states: list[torch.Tensor], weights: torch.Tensor, zero: list[list[bool]] | None,
                unused: list[torch.Tensor], edge_input: torch.Tensor | None = None) -> dict[int, list]:
        """{destination node: [terms to add]} of this wave's edges (terms: see `_sum`).
        edge_input: the cell's (14,) per-edge input multipliers m, or None (all 1): edge e
        computes sum_o w[e, o] * op_o(m[e] * h) as the reference cell does."""
        C, s = self.C, self.stride
        training = self.training
        x = {src: states[src] for src in self.sources}
        relu: dict[int, torch.Tensor] = {}
        E = len(self.edges)
        if edge_input is not None:
            mult = edge_input[[k for k, _, _ in self.edges]]  # (E,) in wave order
            scalable = _kernel_scalable(mult)
        else:
            mult, scalable = None, [True] * E

        def r(src: int) -> torch.Tensor:
            if src not in relu:
                relu[src] = F.relu(x[src])
            return relu[src]

        def conv_input(e: int) -> torch.Tensor:
            """ReLU(m_e h) of edge e, up to the factor m_e > 0 that its kernels carry."""
            if scalable[e]:
                return r(self.edges[e][1])
            return F.relu(x[self.edges[e][1]] * mult[e])

        def kernel_scale(wave_e: list[int], width: int) -> torch.Tensor | None:
            """(n * width, 1, 1, 1) factors m_e (1 where m_e <= 0: that input is scaled itself)
            for the first convolution of a ReLU-conv op: conv(ReLU(m h), W) = conv(ReLU h, m W)
            for m > 0; None without multipliers."""
            if mult is None:
                return None
            f = mult[wave_e]
            keep = torch.tensor([scalable[e] for e in wave_e], device=f.device)
            return torch.where(keep, f, torch.ones_like(f)).repeat_interleave(width).view(-1, 1, 1, 1)

        terms: dict[int, list] = {}
        conv_sum: torch.Tensor | None = None  # per-edge sums of the conv ops, edge-major channels
        conv_present = torch.zeros(E, dtype=torch.bool)

        def add_conv(es_idx: list[int], y: torch.Tensor) -> None:
            nonlocal conv_sum
            if len(es_idx) == E:
                conv_sum = y if conv_sum is None else conv_sum + y
            else:
                full = conv_sum if conv_sum is not None else y.new_zeros(
                    y.shape[0], E * C, *y.shape[2:]).contiguous(memory_format=_format(y))
                i = torch.tensor(es_idx, device=y.device)
                conv_sum = full.unflatten(1, (E, C)).index_add(1, i, y.unflatten(1, (len(es_idx), C))).flatten(1, 2)
            conv_present[es_idx] = True

        for op, es in self.members.items():
            cols = self.column[op]
            live = [(i, e) for i, e in enumerate(es)
                    if op != "none" and not (zero is not None and zero[self.edges[e][0]][cols[i]])]
            if op == "none":
                continue
            if not live:
                unused.extend(p for n, p in self.named_parameters()
                              if n.startswith(op) or n.startswith(f"fallback.{_module_key(op)}_"))
                continue
            full = len(live) == len(es)
            pos = [i for i, _ in live]  # positions within the op's packed tensors
            wave_e = [e for _, e in live]
            n = len(live)
            w = weights[[self.edges[e][0] for e in wave_e], [cols[i] for i in pos]]  # (n,)
            ch = None if full else torch.tensor([i * C + c for i in pos for c in range(C)])
            half = None if full else torch.tensor([i * (C // 2) + c for i in pos for c in range(C // 2)])

            def par(name: str, rows: torch.Tensor | None = ch) -> torch.Tensor:
                p = getattr(self, name)
                return p if full else p[rows]

            if op in SEP or op in DIL:
                k = SEP.get(op) or DIL[op]
                dil = 1 if op in SEP else 2
                pad = k // 2 if op in SEP else k - 1
                inp = torch.cat([conv_input(e) for e in wave_e], 1) if n > 1 else conv_input(wave_e[0])
                scale = w.repeat_interleave(C)
                ks = kernel_scale(wave_e, C)
                first = par(f"{op}_dw1" if op in SEP else f"{op}_dw")
                first = first if ks is None else first * ks
                if op in SEP:
                    h = F.conv2d(inp, first, None, s, pad, 1, n * C)
                    h = F.conv2d(h, par(f"{op}_pw1"), None, 1, 0, 1, n)
                    h = F.relu(self._bn(h, f"{op}_bn1", ch, full, None, training))
                    h = F.conv2d(h, par(f"{op}_dw2"), None, 1, pad, 1, n * C)
                    h = F.conv2d(h, par(f"{op}_pw2"), None, 1, 0, 1, n)
                    y = self._bn(h, f"{op}_bn2", ch, full, scale, training)
                else:
                    h = F.conv2d(inp, first, None, s, pad, dil, n * C)
                    h = F.conv2d(h, par(f"{op}_pw"), None, 1, 0, 1, n)
                    y = self._bn(h, f"{op}_bn", ch, full, scale, training)
                add_conv(wave_e, y)
            elif op == "skip_connect" and s == 2:  # FactorizedReduce: two offset stride-2 1x1 convs
                # groups of edges reading one input: a source's shared ReLU, or an edge's own
                # ReLU(m h) where m <= 0
                groups: dict[object, list[int]] = {}
                for j, e in enumerate(wave_e):
                    groups.setdefault(self.edges[e][1] if scalable[e] else ("own", e), []).append(j)
                w1, w2 = par("skip_connect_conv1", half), par("skip_connect_conv2", half)
                ks = kernel_scale(wave_e, C // 2)
                if ks is not None:
                    w1, w2 = w1 * ks, w2 * ks
                parts = []
                for key, js in groups.items():
                    inp = conv_input(wave_e[js[0]])
                    rows = torch.tensor([j * (C // 2) + c for j in js for c in range(C // 2)])
                    a = F.conv2d(inp, w1[rows] if len(groups) > 1 else w1, None, 2)
                    b = F.conv2d(inp[:, :, 1:, 1:], w2[rows] if len(groups) > 1 else w2, None, 2)
                    parts.append(torch.cat([a.unflatten(1, (len(js), C // 2)), b.unflatten(1, (len(js), C // 2))], 2))
                order = [j for js in groups.values() for j in js]
                h = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
                if order != sorted(order):
                    h = h[:, torch.tensor(order).argsort()]
                h = h.flatten(1, 2).contiguous(memory_format=_format(x[self.edges[wave_e[0]][1]]))
                add_conv(wave_e, self._bn(h, "skip_connect_bn", ch, full, w.repeat_interleave(C), training))
            elif op in POOLS:
                self._pools(op, x, wave_e, pos, w, mult, training, terms)
            elif op == "skip_connect":  # identity at stride 1: w (m h)
                for j, e in enumerate(wave_e):
                    f = w[j] if mult is None else w[j] * mult[e]
                    terms.setdefault(self.edges[e][2], []).append((f, x[self.edges[e][1]]))
            else:
                for j, e in enumerate(wave_e):
                    mod = self.fallback[f"{_module_key(op)}_{self.edges[e][0]}"]
                    h = x[self.edges[e][1]] if mult is None else x[self.edges[e][1]] * mult[e]
                    terms.setdefault(self.edges[e][2], []).append((w[j], mod(h)))
        out: dict[int, list] = {}
        if conv_sum is not None:
            # unbind, not E selects: its backward stacks the E gradients once (E selects would
            # each allocate and accumulate a gradient of the whole wave).
            per_edge = conv_sum.unflatten(1, (E, C)).unbind(1)
            for e, (_, _, dst) in enumerate(self.edges):
                if conv_present[e]:
                    out.setdefault(dst, []).append((None, per_edge[e]))
        for dst, t in terms.items():
            out.setdefault(dst, []).extend(t)
        return out

    def _pools(self, op: str, x: dict, wave_e: list[int], pos: list[int], w: torch.Tensor,
               mult: torch.Tensor | None, training: bool, terms: dict) -> None:
        """Terms of pool op `op` followed by the authors' affine-free BN, for the wave edges
        `wave_e` (positions `pos` in the op's packed statistics, mixing weights `w`).

        The pool of a node is computed once: avg_pool(m h) = m avg_pool(h) for every m, and
        max_pool(m h) = m max_pool(h) for m > 0 (m <= 0: the edge pools m h itself). So edge e
        normalises a P_e (the node's shared pool P, or its own) times a_e (m_e, or 1 for its
        own pool). Training mode, with P's batch mean mu and biased variance v per channel:
          BN(a P) = (a P - a mu) / sqrt(a^2 v + eps) = (P - mu) * a / sqrt(a^2 v + eps),
        which is NOT a BN(P) (BN normalises the scale away except through eps), so edge e adds
        (P - mu) with the per-channel factor w_e a_e / sqrt(a_e^2 v + eps), and its running
        statistics move towards a_e mu and a_e^2 v_unbiased. Without multipliers (a = 1) that
        is BN(P) for every out-edge: one batch_norm per node. Eval mode, running statistics
        (rm_e, rv_e): BN(a P) = P * a / sqrt(rv_e + eps) - rm_e / sqrt(rv_e + eps)."""
        C, s = self.C, self.stride
        rm, rv = getattr(self, f"{op}_bn_mean"), getattr(self, f"{op}_bn_var")
        n_all = rm.numel() // C
        rm2, rv2 = rm.view(n_all, C), rv.view(n_all, C)
        pooled: dict[object, torch.Tensor] = {}

        def pool(key, h: torch.Tensor) -> torch.Tensor:
            if key not in pooled:
                pooled[key] = (F.max_pool2d(h, 3, s, 1) if op == "max_pool_3x3"
                               else F.avg_pool2d(h, 3, s, 1, count_include_pad=False))
            return pooled[key]

        # per edge: (key of the pooled tensor, that tensor, a_e or None for 1)
        per_edge = []
        for j, e in enumerate(wave_e):
            src = self.edges[e][1]
            if mult is None:
                per_edge.append((src, pool(src, x[src]), None))
            elif op == "avg_pool_3x3" or _pool_shareable(mult[e]):
                per_edge.append((src, pool(src, x[src]), mult[e]))
            else:
                per_edge.append((("own", e), pool(("own", e), x[src] * mult[e]), None))
        if not training:
            for j, e in enumerate(wave_e):
                _, p, a = per_edge[j]
                inv = torch.rsqrt(rv2[pos[j]] + EPS)
                f = inv if a is None else a * inv
                dst = self.edges[e][2]
                terms.setdefault(dst, []).append(((w[j] * f).view(1, C, 1, 1), p))
                terms.setdefault(dst, []).append(("bias", (-w[j] * rm2[pos[j]] * inv).view(1, C, 1, 1)))
            return
        stats: dict[object, tuple] = {}  # key -> (normalised or centred tensor, mean, biased var)
        for j, e in enumerate(wave_e):
            key, p, a = per_edge[j]
            count = p.numel() // C
            if a is None and mult is None:  # no multipliers: BN(P), one fused batch_norm per node
                if key not in stats:
                    mean, var = p.new_zeros(C), p.new_ones(C)  # momentum 1: they become the batch's
                    y = F.batch_norm(p, mean, var, None, None, True, 1.0, EPS)
                    stats[key] = (y, mean, var * (count - 1) / count)
                y, mean, var = stats[key]
                f, a_val = w[j], 1.0
            else:
                if key not in stats:
                    var, mean = torch.var_mean(p, dim=(0, 2, 3), unbiased=False)
                    stats[key] = (p - mean.view(1, C, 1, 1), mean, var)
                y, mean, var = stats[key]
                a_val = 1.0 if a is None else a
                f = (w[j] * _pool_bn_factor(a_val, var)).view(1, C, 1, 1)
                a_val = a_val.detach() if isinstance(a_val, torch.Tensor) else a_val
            terms.setdefault(self.edges[e][2], []).append((f, y))
            with torch.no_grad():
                mean, var = mean.detach(), var.detach()
                rm2[pos[j]] = (1 - MOMENTUM) * rm2[pos[j]] + MOMENTUM * (a_val * mean)
                rv2[pos[j]] = (1 - MOMENTUM) * rv2[pos[j]] + MOMENTUM * (a_val * a_val * var * count / (count - 1))


def _format(t: torch.Tensor):
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


class FastSearchCell(nn.Module):
    """The reference `SearchCell`'s function (same preprocessing modules) with batched waves."""

    def __init__(self, ref: SearchCell, C: int, edge_ops: list[tuple[str, ...]] | None = None):
        super().__init__()
        self.reduction, self.steps, self.multiplier = ref.reduction, ref.steps, ref.multiplier
        self.preprocess0, self.preprocess1 = ref.preprocess0, ref.preprocess1
        edges = edge_list(self.steps)
        self.edge_ops = [tuple(OPS)] * len(edges) if edge_ops is None else [tuple(o) for o in edge_ops]
        waves = [(0, 1)] + [(i,) for i in range(2, self.steps + 1)]
        self.waves = nn.ModuleList()
        for sources in waves:
            mine = [(k, j, i) for src in sources for k, (j, i) in enumerate(edges) if j == src]
            stride = 2 if self.reduction and sources[0] < 2 else 1
            self.waves.append(_Wave(C, sources, mine, stride, self.edge_ops))
        self.copy_from(ref)

    @torch.no_grad()
    def copy_from(self, ref: SearchCell) -> None:
        """Pack a reference cell's weights and BN running statistics into this layout."""
        self.preprocess0.load_state_dict(ref.preprocess0.state_dict())
        self.preprocess1.load_state_dict(ref.preprocess1.state_dict())
        for wave in self.waves:
            wave.copy_from(ref, self.edge_ops)

    @torch.no_grad()
    def copy_to(self, ref: SearchCell) -> None:
        """Unpack into a reference cell (the inverse of copy_from; BN batch counters aside)."""
        ref.preprocess0.load_state_dict(self.preprocess0.state_dict())
        ref.preprocess1.load_state_dict(self.preprocess1.state_dict())
        for wave in self.waves:
            wave.copy_to(ref, self.edge_ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                zero: list[list[bool]] | None = None, unused: list | None = None,
                edge_input: torch.Tensor | None = None) -> torch.Tensor:
        """edge_input (14,), optional: multiplies each edge's input, as `SearchCell.forward`."""
        unused = [] if unused is None else unused
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        pending: dict[int, list] = {}
        for wave in self.waves:
            for src in wave.sources:
                if src >= 2:
                    states.append(_sum(pending.pop(src, []), states[1], self.reduction))
            for dst, t in wave(states, weights, zero, unused, edge_input).items():
                pending.setdefault(dst, []).extend(t)
        states.append(_sum(pending.pop(self.steps + 1, []), states[1], self.reduction))
        return torch.cat(states[-self.multiplier:], dim=1)


def _kernel_scalable(m: torch.Tensor) -> list[bool]:
    """Per edge: may its multiplier go into its first conv kernel (ReLU(m h) = m ReLU(h))?
    Only for m > 0: at m = 0 PyTorch's ReLU has derivative 0, so d/dm ReLU(m h) = 0 there."""
    return (m.detach() > 0).tolist()


def _pool_shareable(m: torch.Tensor) -> bool:
    """max_pool(m h) = m max_pool(h) for m > 0 (at m = 0 the reference's gradient goes to the
    window's first entry, not its maximum)."""
    return bool(m.detach() > 0)


def _pool_bn_factor(a, var: torch.Tensor) -> torch.Tensor:
    """Per-channel factor of (P - mean) in BN(a P) with batch statistics: a / sqrt(a^2 v + eps)."""
    return a * torch.rsqrt(a * a * var + EPS)


def _sum(terms: list, like: torch.Tensor, reduction: bool) -> torch.Tensor:
    """sum of (weight or None) * tensor (a plain add where the weight is folded in already; a
    weight may be per channel, (1, C, 1, 1)), plus the ("bias", (1, C, 1, 1)) terms."""
    acc = None
    bias = None
    for w, t in terms:
        if isinstance(w, str):
            bias = t if bias is None else bias + t
        elif w is None:
            acc = t if acc is None else acc + t
        elif acc is None:
            acc = t * w
        else:
            acc = torch.addcmul(acc, t, w)
    if acc is None:  # every op of every in-edge skipped: the node is exactly zero
        B, C, H, W = like.shape
        if reduction:  # the stride-2 ops' output size (3x3 pool, padding 1)
            H, W = (H + 1) // 2, (W + 1) // 2
        acc = like.new_zeros(B, C, H, W).contiguous(memory_format=_format(like))
    return acc if bias is None else acc + bias


class FastSearchNetwork(SearchNetwork):
    """`SearchNetwork` with `FastSearchCell`s; same arguments plus:

    channels_last (True): run the convolutions in NHWC.
    skip_zero (False, as the reference network's): an op whose mixing weight is exactly 0 is not computed when the weights
      need no gradient (a random-search sample, the weight step of a method that passes a
      detached point with zeros). Its output and its parameters' gradients are zero either way
      (the parameters still receive zero gradients, so weight decay and momentum act as in the
      reference); what differs is that its BN running statistics are not updated in that step
      (as in the `proxyless` branch of Li & Talwalkar's DARTS fork, where only the sampled op
      runs; their master branch, behind their CNN results, computes every op). They are read
      only in eval mode (random-ws's candidate scoring; SDARTS-ADV's attack points can hold
      exact zeros). Off by default so that both impls compute the same function unless asked.
    """

    impl = "fast"

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, channels_last: bool = True,
                 skip_zero: bool = False, edge_ops=None):
        super().__init__(C, layers, num_classes, steps, multiplier, stem_multiplier, edge_ops=edge_ops)
        self.channels_last, self.skip_zero = channels_last, skip_zero
        c_curr = C
        cells = []
        for cell in self.cells:
            if cell.reduction:
                c_curr *= 2
            cells.append(FastSearchCell(cell, c_curr, cell.edge_ops))
        self.cells = nn.ModuleList(cells)

    def forward(self, x: torch.Tensor, weights: Weights) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        zero = {}
        for name in ("normal", "reduce"):
            w = weights[name]
            zero[name] = (w == 0).tolist() if self.skip_zero and not w.requires_grad else None
        unused: list[torch.Tensor] = []
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            name = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[name], zero[name], unused, weights.get(input_key(name)))
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if unused and torch.is_grad_enabled():  # zero gradients for skipped parameters, as the reference
            logits = logits + sum(p.sum() for p in unused) * 0.0
        return logits

    @torch.no_grad()
    def load_reference(self, ref: SearchNetwork) -> None:
        """Take a reference network's weights and BN statistics (cells packed)."""
        self.stem.load_state_dict(ref.stem.state_dict())
        self.classifier.load_state_dict(ref.classifier.state_dict())
        for f, r in zip(self.cells, ref.cells):
            f.copy_from(r)

    @torch.no_grad()
    def to_reference(self) -> SearchNetwork:
        """A reference network holding this network's weights and BN statistics."""
        ref = SearchNetwork(self.C, len(self.cells), self.classifier.out_features, self.steps,
                            self.multiplier, self.stem_multiplier, edge_ops=self.edge_ops)
        ref.stem.load_state_dict(self.stem.state_dict())
        ref.classifier.load_state_dict(self.classifier.state_dict())
        for f, r in zip(self.cells, ref.cells):
            f.copy_to(r)
        return ref.to(next(self.parameters()).device, next(self.parameters()).dtype)
