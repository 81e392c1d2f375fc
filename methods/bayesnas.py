"""BayesNAS (Zhou et al., ICML 2019) with the HARD prior, as docs/reference/methods.md#bayesnas gives it.

Switches: per row of each architecture tensor (an NB201 edge) one edge switch s_e (it carries
`none`: there is no op switch for `none`) and one op switch s_eo per other op.
Placement (`switch_placement`): "input" (default, the authors' code: BayesNAS/BayesNAS
search/OneShot.py line 62, `x = x * self.switch_all`, the edge switch multiplies the edge's
INPUT; each op switch multiplies its op's output, lines 85-180): edge e computes
sum_o s_eo * op_o(s_e * x), through the space's per-edge input multipliers
(spaces.base.input_key; tensors in `space.input_scaled`). A ReLU-Conv-BN op with batch
statistics cancels an input scale, so conv ops give s_e (almost) no gradient and no curvature
there; skip and pooling ops pass it on. A tensor the space does not input-scale (1Shot1's
parent choices, whose "ops" are identities) takes w = s_e * s_eo, the same function.
"output" (the suite's earlier placement, kept for comparison): every op output is scaled by
w[e, o] = s_e * s_eo. (w[e, none] = 0 in both; `none` outputs zero anyway.) All switches
start at 1 and train by SGD jointly with the weights on the TRAINING batches (single level;
the architecture half is not used), loss = NLL + lambda_origin * sum_e |s_e| omega_e
+ lambda_child * sum_eo |s_eo| omega_eo.
Bayesian update (every `update_every` epochs, at epoch end, on the last training batch):
  H = diagonal curvature of the batch NLL w.r.t. each switch (non-negative), summed over the
      batch by default (`curvature_scale`, below),
  Htilde = H / lambda;  C = (1/gamma + Htilde)^-1;  omega = sqrt(|-C/gamma^2 + 1/gamma|);
  gamma = |s| / omega;  then children: gamma_eo <- (1/gamma_eo + 1/gamma_e)^-1.
gamma, omega start U(0, 1).

Our choices (documented adaptations, not from the source):
- Curvature of s_e is taken where s_e sits (with "input", at the edge's input: the authors'
  Algorithm.py lines 195-197, `hessian_control_scalar` on the Selection's input).
- Curvature batch: the authors update on the last batch of their switch epoch, 18 images
  (search/main.py line 13, --train_batch_size 18; lib.py line 77). The suite updates on the
  last training batch of the profile's batch size (64 on NB201, 96 on 1Shot1; smoke: its
  first `curvature_batch_size` = 8 images), since the switches train with the weights at that
  batch size; `curvature_batch_size` = 18 gives the authors' count.
- Gradient clipping: none, as the authors (lib.py `train_switch`, lines 61-70: no clip);
  `clip_gradients=true` clips the weights' gradient norm at the profile's grad_clip (the
  suite's earlier behaviour).
- Curvature: the exact diagonal of the generalised Gauss-Newton matrix, J^T (diag p - p p^T) J,
  by one forward-mode JVP per switch (BN couples the batch, so J is the whole batch's
  Jacobian). The authors use a layer-wise recursive approximation; a GGN diagonal serves
  the same role and is non-negative (docs/reference/departures.md#bayesnas-curvature).
- Curvature scale (`curvature_scale`): "sum" (default) is the curvature of the batch loss
  SUMMED over the images, the authors' convention: BayesNAS/BayesNAS search/Algorithm.py,
  `hessian_control_scalar`, reduces the per-image terms with a plain sum that includes the
  batch axis (and `tail_pass` starts from per-image p(1-p), not divided by B). "mean" is the
  curvature of the batch-MEAN loss, B times smaller. The scale is not cosmetic: since
  omega^2 = H~/(1 + gamma H~) at the fixed point, gamma (and so what the 0.01 threshold
  prunes) can move by up to a factor of about sqrt(B) between the two.
- The space protocol passes ONE set of mixing weights to every cell, so switches are shared
  by all cells and each group norm sqrt(sum_cells s^2 omega^2) has one term: |s| omega.
- Cost: one forward-mode JVP per switch per update (30 on NB201) on the last training batch,
  or, where the batch has fewer logits than there are switches (the DARTS space: 252
  switches), one batched reverse pass over the B*K logits (same quantity);
  `curvature_batch_size` can use fewer images (the smoke profile uses 8).
- The authors run one switch-training epoch and one update; with procedure "darts-protocol"
  (NB201, 1Shot1, and the DARTS space on request) we spread it over the profile's epochs with
  an update every `update_every` epochs (default 1, assumed).
- Derivation on NB201 (no reference exists): an edge whose gamma_e < `threshold` becomes
  `none`, else the argmax of its op gammas over the 4 other ops. threshold 0.01 is assumed;
  every epoch's gammas are recorded so other thresholds can be applied afterwards.
- Spaces without a `none` op (the NB-1Shot1 ones; our adaptation): no column is masked, every
  row keeps its row-level (edge) switch and one switch per entry; the derivation hands the
  op gammas to the space's own rule (op argmax per choice block, top-k parents by gamma), so
  no edge is ever dropped. The edge gamma scales a whole row and cannot change its order.
- Derivation on the DARTS space (our adaptation): the authors pick their DARTS-space cells
  from the gammas by hand (BayesNAS README: "replace the NormalCell and ReductCell ...
  manually"; their cells have a varying number of inputs per node), so no rule exists for
  the DARTS genotype format (2 inputs per node). We apply the DARTS rule (space.derive_weights)
  to the op gammas used directly as weights, with the `none` column and the rows of edges
  whose gamma_e < `threshold` set to 0: per node the 2 edges with the largest op gamma, each
  with its argmax op. A pruned edge is kept only when fewer than 2 of a node's edges survive
  (its op is then the first non-`none` op, max_pool_3x3). The op gammas already carry the
  edge gamma (gamma_eo <- (1/gamma_eo + 1/gamma_e)^-1). This is the rule of
  `procedure="darts-protocol"` on the DARTS search network.
- DARTS-space `paper` / `smoke` profiles: the authors' procedure (`procedure="authors"`, which
  the default "auto" resolves to there; `fair` and other spaces resolve to "darts-protocol";
  AUTHORS_DARTS below): their one-shot network (supernet.impl=oneshot, spaces/darts/oneshot.py,
  after search/OneShot.py) with one switch set per cell (the supernet's `cells_per_tensor`;
  rows it lacks (`edge_rows`) are masked), the group sparsity over the cells with cell 0's
  omega (Algorithm.py loss_cal, lines 401-438) and the group update (`group_update`, lines
  333-392); epoch 1 trains the weights alone (NLL, Cutout 16) on a random 10%, epoch 2 weights
  and switches on a random 90% (`trains_on_arch_half`; split random-10-90), one update at its
  end. Derivation there: each of the network's 2 edges per node with its largest op gamma
  (cell 0's; equal in every cell after the update); edges with gamma_e < `threshold` are
  listed in the update's diagnostics `pruned_edges` (the authors read their cells off the
  gammas by hand, keeping several ops on an edge and dropping edges: not expressible as a
  DARTS genotype). `procedure="darts-protocol"` (option_overrides) restores the DARTS
  protocol's fields for a like-for-like comparison (docs/reference/departures.md#bayesnas-on-the-darts-space).
Defaults: switch SGD lr 0.1, momentum 0.9, no weight decay; lambda_origin = lambda_child =
0.01 (from the authors' grid {0.005, 0.007, 0.01}; the choice of 0.01 is assumed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import Batch, SearchMethod, StepContext, accuracy, need_choice, need_int, need_number
from spaces.base import Weights, input_key

CURVATURE_SCALES = ("sum", "mean")
PLACEMENTS = ("input", "output")
PROCEDURES = ("auto", "authors", "darts-protocol")
REVERSE_CHUNK = 20  # logits per batched reverse pass of the curvature (memory bound; our choice)

# The authors' CIFAR-10 search (BayesNAS/BayesNAS search/main.py, dataloader.py, lib.py), the
# DARTS-space `paper` profile of bayesnas with procedure "authors": batch 18 (main.py line 13),
# SGD lr 0.1 constant (line 15; no scheduler anywhere), momentum 0.9 (line 17), weight decay
# 1e-4 on the weights only (lines 16, 40; the switches' SGD has none, line 73), no gradient
# clipping (lib.py lines 42-70; grad_clip is unused with clip_gradients false), 2 epochs: one
# weights epoch on a random 10% and one joint switch epoch on a random 90% (main.py line 27
# epochs = 1, lines 47-74; dataloader.py lines 107-112: split random-10-90), on the one-shot
# network (OneShot.py: supernet.impl=oneshot, C=36, 8 cells). No architecture-Hessian
# diagnostic (the network has no softmax architecture to differentiate).
AUTHORS_DARTS = {"epochs": 2, "batch_size": 18, "split": "random-10-90", "train_subset": None,
                 "w_lr": 0.1, "w_lr_min": 0.1, "w_momentum": 0.9, "w_nesterov": False,
                 "w_weight_decay": 1e-4, "hessian_every": 0,
                 "supernet.impl": "oneshot", "supernet.C": 36, "supernet.layers": 8}
# Its smoke version: the same procedure in seconds on a CPU (both phases, the single update).
AUTHORS_DARTS_SMOKE = {**AUTHORS_DARTS, "batch_size": 8, "train_subset": 16, "supernet.C": 4}
AUTHORS_PROFILES = ("paper", "smoke")  # the DARTS-space profiles that carry the fields above


@dataclass
class BayesNASOptions:
    switch_lr: float = 0.1        # SGD lr of the switches (authors)
    switch_momentum: float = 0.9  # (authors)
    lambda_origin: float = 0.01   # sparsity weight of edge switches (authors' grid; choice assumed)
    lambda_child: float = 0.01    # sparsity weight of op switches (authors' grid; choice assumed)
    update_every: int = 1         # epochs between Bayesian updates (our adaptation, assumed)
    threshold: float = 0.01       # edge gamma below it -> `none` (our NB201 rule, assumed)
    curvature_batch_size: int = 0  # images of the last training batch for H; 0 = all (authors)
    curvature_scale: str = "sum"   # "sum" over the batch (authors' Algorithm.py) | "mean"
    switch_placement: str = "input"  # edge switch on the edge's input (authors' OneShot.py) | "output"
    clip_gradients: bool = False   # authors: no clipping (lib.py train_switch)
    # "authors": epochs 1..E-1 train the weights only (switches frozen at 1, no sparsity term) on
    # the weights half, epoch E trains weights and switches jointly on the ARCHITECTURE half, and
    # the one Bayesian update follows it (search/main.py lines 46-74). "darts-protocol": the
    # space profile's protocol, switches trained every epoch on the weights half, an update
    # every `update_every` epochs (the suite's adaptation). "auto": "authors" under the DARTS
    # space's `paper` and `smoke` profiles (whose fields are the authors'), "darts-protocol"
    # elsewhere, `fair` included (`procedure_of`).
    procedure: str = "auto"
    cutout: int = 16               # procedure "authors": Cutout length in the weights-only epochs
    #                                (dataloader.py lines 79-81, cutout(16, p=1)); 0 = none

    def __post_init__(self) -> None:
        need_choice("procedure", self.procedure, PROCEDURES)
        need_int("cutout", self.cutout, 0, 32)
        need_choice("curvature_scale", self.curvature_scale, CURVATURE_SCALES)
        need_choice("switch_placement", self.switch_placement, PLACEMENTS)
        if not isinstance(self.clip_gradients, bool):
            raise ValueError(f"method.clip_gradients must be true or false, got {self.clip_gradients!r}")
        need_number("switch_lr", self.switch_lr, "> 0", lambda v: v > 0)
        need_number("switch_momentum", self.switch_momentum, "in [0, 1)", lambda v: 0 <= v < 1)
        need_number("lambda_origin", self.lambda_origin, ">= 0", lambda v: v >= 0)
        need_number("lambda_child", self.lambda_child, ">= 0", lambda v: v >= 0)
        need_int("update_every", self.update_every, 1)
        need_number("threshold", self.threshold, ">= 0", lambda v: v >= 0)
        need_int("curvature_batch_size", self.curvature_batch_size, 0)


def ggn_diagonal(fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
                 targets: torch.Tensor, reduction: str = "mean", mode: str = "auto") -> torch.Tensor:
    """diag(J^T H J) for the cross-entropy of logits = fn(theta) summed over the batch
    (`reduction="sum"`) or its batch mean ("mean": divided by B), H = diag(p) - p p^T per
    sample, J = d logits / d theta. Equal to the exact Hessian diagonal of that loss where the
    logits are linear in theta; never negative. mode "forward": one JVP per coordinate;
    "reverse": one batched VJP over the B*K logits; "auto": whichever needs fewer passes."""
    if reduction not in CURVATURE_SCALES:
        raise ValueError(f"reduction must be one of {CURVATURE_SCALES}, got {reduction!r}")
    theta = theta.detach()
    with torch.no_grad():
        p = torch.softmax(fn(theta), dim=-1)
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"mode must be auto, forward or reverse, got {mode!r}")
    if mode == "reverse" or (mode == "auto" and p.numel() < theta.numel()):
        # fewer logits than switches (the DARTS space): one batched reverse pass is cheaper
        return _ggn_diagonal_reverse(fn, theta, p, reduction)
    out = torch.zeros_like(theta)
    for i in range(theta.numel()):
        tangent = torch.zeros_like(theta).flatten()
        tangent[i] = 1.0
        # torch.autograd.forward_ad rather than torch.func.jvp: the supernet's BN layers
        # update buffers in place, which functorch transforms refuse.
        with torch.autograd.forward_ad.dual_level():
            dual = torch.autograd.forward_ad.make_dual(theta, tangent.view_as(theta))
            jv = torch.autograd.forward_ad.unpack_dual(fn(dual)).tangent.detach()
        quad = (p * jv * jv).sum(-1) - (p * jv).sum(-1) ** 2   # variance of jv under p, >= 0
        quad = quad.clamp_min(0)
        out.view(-1)[i] = quad.sum() if reduction == "sum" else quad.mean()
    return out


def _ggn_diagonal_reverse(fn, theta: torch.Tensor, p: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The same quantity as `ggn_diagonal` from the full Jacobian J (B*K rows) built by ONE
    forward and one batched backward (a vector-Jacobian product per logit): cheaper than one
    JVP per coordinate where there are fewer logits than coordinates."""
    t = theta.clone().requires_grad_()
    logits = fn(t)
    b, k = logits.shape
    rows = b * k
    # at most REVERSE_CHUNK logits per batched pass: the batched backward holds that many
    # copies of the network's gradient buffers (the one-shot network at C=36 with the authors'
    # 18 images has 180 logits); fewer rows run in one pass, as before
    chunk = rows if rows <= REVERSE_CHUNK else REVERSE_CHUNK
    parts = []
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        eye = torch.zeros(n, rows, dtype=logits.dtype, device=logits.device)
        eye[torch.arange(n), torch.arange(start, start + n)] = 1.0
        (j,) = torch.autograd.grad(logits, t, grad_outputs=eye.view(n, b, k), is_grads_batched=True,
                                   retain_graph=start + n < rows)
        parts.append(j.detach())
    jac = torch.cat(parts).reshape(b, k, -1)                   # d logit[b, c] / d theta
    pj = p.unsqueeze(-1)
    quad = (pj * jac * jac).sum(1) - (pj * jac).sum(1) ** 2   # variance of J[:, i] under p
    quad = quad.clamp_min(0)
    return (quad.sum(0) if reduction == "sum" else quad.mean(0)).view_as(theta)


class BayesNAS(SearchMethod):
    name = "bayesnas"
    Options = BayesNASOptions
    arch_first = True  # there is no architecture step; the order is immaterial

    def __init__(self, space, supernet: nn.Module, cfg, generator: torch.Generator, device="cpu"):
        self.none_col = space.zero_op  # None: the space has no `none` op
        shapes = space.arch_shapes()
        # A supernet with one weight set per cell (the one-shot network, spaces/darts/oneshot.py)
        # gets per-cell switches, as the authors' (each Selection owns its switches, OneShot.py
        # lines 50-57), with gamma and omega shared by the cells of a type (Algorithm.py lines
        # 333-392); `edge_rows` names the rows it reads.
        self.cells = getattr(supernet, "cells_per_tensor", None)
        rows = getattr(supernet, "edge_rows", None)
        self.row_mask = {}
        if self.cells is not None:
            shapes = {k: (self.cells[k], *s) for k, s in shapes.items()}
            for k in shapes:
                r = torch.zeros(shapes[k][1], device=device)
                r[list(rows[k])] = 1.0
                self.row_mask[k] = r
        self.edge_sw = {k: torch.ones(s[:-1], device=device, requires_grad=True) for k, s in shapes.items()}
        self.op_sw = {k: torch.ones(s, device=device, requires_grad=True) for k, s in shapes.items()}
        self.mask = {}
        for k, s in shapes.items():
            m = torch.ones(s[-2:] if self.cells is not None else s, device=device)
            if self.none_col is not None:
                m[..., self.none_col] = 0.0
            if k in self.row_mask:
                m = m * self.row_mask[k].unsqueeze(-1)
            self.mask[k] = m
        u = lambda s: torch.rand(s, generator=generator).to(device)  # noqa: E731
        self.gamma_edge = {k: u(s[:-1]) for k, s in shapes.items()}
        self.omega_edge = {k: u(s[:-1]) for k, s in shapes.items()}
        self.gamma_op = {k: u(s) for k, s in shapes.items()}
        self.omega_op = {k: u(s) for k, s in shapes.items()}
        self.last_batch: Batch | None = None
        super().__init__(space, supernet, cfg, generator, device)
        self.procedure = self.procedure_of(self.opts.procedure, cfg.space, cfg.profile)
        if self.procedure == "authors" and self.opts.cutout:
            self.own_generator("cutout", 31)

    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict:
        out = super().profile_overrides(space, profile)
        if space == "darts":  # the authors' procedure (AUTHORS_DARTS, above; procedure "auto")
            out.update(AUTHORS_DARTS if profile == "paper" else AUTHORS_DARTS_SMOKE)
        if profile == "smoke":  # one JVP per switch (30 on NB201): keep the smoke run quick
            # DARTS space: 252+ switches, so the curvature takes a pass per logit (B*10): 2 images
            out["method_options"] = {**out.get("method_options", {}),
                                     "curvature_batch_size": 2 if space == "darts" else 8}
        return out

    @classmethod
    def option_overrides(cls, space: str, profile: str, options: dict) -> dict:
        """procedure "darts-protocol" on the DARTS space: the space profile's own values for
        every field the authors' procedure sets (today's adaptation, for a like-for-like
        comparison with the other methods under DARTS's protocol)."""
        if (space != "darts" or profile not in AUTHORS_PROFILES
                or options.get("procedure", "auto") != "darts-protocol"):
            return {}
        from spaces import get_space
        base = get_space(space).profiles[profile]
        out = {}
        for key in AUTHORS_DARTS:
            if key.startswith("supernet."):
                sub = key[len("supernet."):]
                out[key] = base["supernet"].get(sub, {"impl": "reference"}.get(sub))
            else:
                out[key] = base[key]
        return out

    @staticmethod
    def procedure_of(option: str, space: str, profile: str) -> str:
        """The procedure a run follows: the option, or for "auto" "authors" under the DARTS
        space's paper/smoke profiles (which carry the authors' fields) and "darts-protocol"
        elsewhere (NB201, 1Shot1, the DARTS space's `fair`: one DARTS schedule for all)."""
        if option != "auto":
            return option
        return "authors" if space == "darts" and profile in AUTHORS_PROFILES else "darts-protocol"

    def _authors_weights_epoch(self, epoch: int) -> bool:
        return self.procedure == "authors" and epoch < self.cfg.epochs

    def trains_on_arch_half(self, epoch: int) -> bool:
        """The authors' switch epoch (the last) runs on the other split part (the 90%)."""
        return self.procedure == "authors" and epoch == self.cfg.epochs

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.arch_parameters(), lr=self.opts.switch_lr,
                               momentum=self.opts.switch_momentum, weight_decay=0.0)

    def arch_parameters(self) -> list[torch.Tensor]:
        return list(self.edge_sw.values()) + list(self.op_sw.values())

    def _weights_from(self, edge: Weights, op: Weights) -> Weights:
        """The supernet's weights: with placement "input", op switches on the op outputs and
        the edge switches as the space's input multipliers (where the space input-scales the
        tensor); else the products s_e * s_eo on the op outputs."""
        out = {}
        scaled = getattr(self.space, "input_scaled", ()) if self.opts.switch_placement == "input" else ()
        for k in edge:
            if k in scaled:
                out[k] = op[k] * self.mask[k]
                out[input_key(k)] = edge[k]
            else:
                out[k] = edge[k].unsqueeze(-1) * op[k] * self.mask[k]
        return out

    def mixing_weights(self) -> Weights:
        return self._weights_from(self.edge_sw, self.op_sw)

    def sparsity(self) -> torch.Tensor:
        o = self.opts
        if self.cells is not None:
            # group lasso over the cells of a type, with cell 0's omega (Algorithm.py loss_cal,
            # lines 401-438): lambda * sqrt(sum_cells s^2 * omega_0^2)
            return sum(o.lambda_origin * (self.edge_sw[k].norm(dim=0) * self.omega_edge[k][0] * self.row_mask[k]).sum()
                       + o.lambda_child * (self.op_sw[k].norm(dim=0) * self.omega_op[k][0] * self.mask[k]).sum()
                       for k in self.edge_sw)
        return sum(o.lambda_origin * (self.edge_sw[k].abs() * self.omega_edge[k]).sum()
                   + o.lambda_child * (self.op_sw[k].abs() * self.omega_op[k] * self.mask[k]).sum()
                   for k in self.edge_sw)

    # ----- steps -------------------------------------------------------------------------
    def arch_step(self, train_batch: Batch, valid_batch: Batch, ctx: StepContext) -> dict:
        return {}  # single level: the switches train with the weights in weight_step

    def cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Cutout on the normalised batch as the authors' weights epoch (dataloader.py lines
        36-68, cutout(16, p=1, cutout_inside=False) after normalisation, mask colour 0): per
        image a centre drawn in [0, 32] (w + 1 for an even length), the square clipped."""
        g, n = self.__dict__["_generators"]["cutout"], self.opts.cutout
        b, _, h, w = x.shape
        half, off = n // 2, 1 if n % 2 == 0 else 0
        cy = torch.randint(0, h + off, (b,), generator=g)
        cx = torch.randint(0, w + off, (b,), generator=g)
        ys, xs = torch.arange(h), torch.arange(w)
        inside = (((ys[None] >= cy[:, None] - half) & (ys[None] < cy[:, None] - half + n))[:, :, None]
                  & ((xs[None] >= cx[:, None] - half) & (xs[None] < cx[:, None] - half + n))[:, None, :])
        return x * (~inside).to(x.dtype).to(x.device)[:, None]

    def weight_step(self, batch: Batch, ctx: StepContext) -> dict:
        if self.procedure == "authors" and len(batch[1]) < self.cfg.batch_size:
            return {}  # the authors' loaders drop the last, partial batch (dataloader.py lines 120, 129)
        if self._authors_weights_epoch(ctx.epoch):
            # the authors' weights epoch (lib.py `train`, lines 42-58): NLL only, switches frozen
            ctx.w_optimizer.zero_grad(set_to_none=True)
            x = self.cutout(batch[0]) if self.opts.cutout else batch[0]
            weights = {k: v.detach() for k, v in self.mixing_weights().items()}
            nll, logits = self.loss(weights, (x, batch[1]))
            nll.backward()
            if self.opts.clip_gradients:
                nn.utils.clip_grad_norm_(self.supernet.parameters(), ctx.grad_clip)
            ctx.w_optimizer.step()
            return {"train_loss": nll.item(), "train_acc": accuracy(logits, batch[1])}
        ctx.w_optimizer.zero_grad(set_to_none=True)
        self.arch_optimizer.zero_grad(set_to_none=True)
        nll, logits = self.loss(self.mixing_weights(), batch)
        (nll + self.sparsity()).backward()
        if self.opts.clip_gradients:
            nn.utils.clip_grad_norm_(self.supernet.parameters(), ctx.grad_clip)
        ctx.w_optimizer.step()
        self.arch_optimizer.step()
        self.last_batch = (batch[0].detach(), batch[1].detach())
        return {"train_loss": nll.item(), "train_acc": accuracy(logits, batch[1])}

    # ----- the Bayesian update -------------------------------------------------------------
    def curvature(self, batch: Batch) -> tuple[Weights, Weights]:
        """GGN diagonal of the batch NLL (summed or mean, `curvature_scale`) w.r.t. every edge
        and op switch."""
        keys = list(self.edge_sw)
        sizes = [self.edge_sw[k].numel() for k in keys] + [self.op_sw[k].numel() for k in keys]
        theta = torch.cat([t.detach().flatten() for t in self.arch_parameters()])

        def fn(flat: torch.Tensor) -> torch.Tensor:
            parts = list(torch.split(flat, sizes))
            edge = {k: parts[i].view_as(self.edge_sw[k]) for i, k in enumerate(keys)}
            op = {k: parts[len(keys) + i].view_as(self.op_sw[k]) for i, k in enumerate(keys)}
            return self.supernet(batch[0], self._weights_from(edge, op))
        buffers = {k: v.clone() for k, v in self.supernet.named_buffers()}
        try:
            h = ggn_diagonal(fn, theta, batch[1], self.opts.curvature_scale)
        finally:  # the extra forwards must not move BN running statistics
            with torch.no_grad():
                for k, v in self.supernet.named_buffers():
                    v.copy_(buffers[k])
        parts = list(torch.split(h, sizes))
        return ({k: parts[i].view_as(self.edge_sw[k]) for i, k in enumerate(keys)},
                {k: parts[len(keys) + i].view_as(self.op_sw[k]) for i, k in enumerate(keys)})

    @staticmethod
    def hard_update(s: torch.Tensor, gamma: torch.Tensor, h: torch.Tensor, lam: float):
        """One HARD-prior update of (gamma, omega) from switch values s and curvature h."""
        ht = h / lam
        c = 1.0 / (1.0 / gamma + ht)
        omega = (-c / gamma ** 2 + 1.0 / gamma).abs().sqrt().clamp_min(1e-12)
        return s.detach().abs() / omega, omega

    @staticmethod
    def group_update(s: torch.Tensor, gamma: torch.Tensor, h: torch.Tensor, lam: float):
        """The HARD update of one switch group per cell type (leading axis: the cells), as the
        authors' Algorithm.py `update` (lines 339-362): c_i = (1/gamma_i + H_i/lambda)^-1 per
        cell; omega = sqrt(sum_i |-c_i/gamma_L^2 + 1/gamma_L|) with gamma_L the LAST cell's gamma
        (the loop variable `cell_idx` left over at line 353); gamma = ||s||_2 / omega; both
        shared by every cell."""
        c = 1.0 / (1.0 / gamma + h / lam)
        g_last = gamma[-1]
        omega = (-c / g_last ** 2 + 1.0 / g_last).abs().sum(0).sqrt().clamp_min(1e-12)
        new_gamma = s.detach().norm(dim=0) / omega
        return new_gamma.expand_as(gamma).clone(), omega.expand_as(gamma).clone()

    def epoch_end(self, epoch: int, ctx: StepContext) -> dict:
        authors = self.procedure == "authors"
        if authors and epoch < self.cfg.epochs:
            return {"bayesnas_phase": "weights"}
        if self.last_batch is None or (not authors and epoch % self.opts.update_every):
            return {}
        n = self.opts.curvature_batch_size or len(self.last_batch[1])
        h_edge, h_op = self.curvature((self.last_batch[0][:n], self.last_batch[1][:n]))
        o = self.opts
        if self.cells is not None:
            for k in self.edge_sw:
                ge, self.omega_edge[k] = self.group_update(self.edge_sw[k], self.gamma_edge[k], h_edge[k], o.lambda_origin)
                go, self.omega_op[k] = self.group_update(self.op_sw[k], self.gamma_op[k], h_op[k], o.lambda_child)
                self.gamma_edge[k] = ge
                self.gamma_op[k] = 1.0 / (1.0 / go + 1.0 / ge.unsqueeze(-1))
            pruned = {k: [lab for r, lab in enumerate(self.space.arch_labels()[k])
                          if self.row_mask[k][r] and float(self.gamma_edge[k][0, r]) < o.threshold]
                      for k in self.edge_sw}
            return {"bayesnas_update": True, "bayesnas_phase": "switch" if authors else None,
                    "pruned_edges": pruned,
                    "curvature_edge": {k: v.cpu().tolist() for k, v in h_edge.items()},
                    "curvature_op": {k: v.cpu().tolist() for k, v in h_op.items()}}
        for k in self.edge_sw:
            ge, self.omega_edge[k] = self.hard_update(self.edge_sw[k], self.gamma_edge[k], h_edge[k], o.lambda_origin)
            go, self.omega_op[k] = self.hard_update(self.op_sw[k], self.gamma_op[k], h_op[k], o.lambda_child)
            self.gamma_edge[k] = ge
            self.gamma_op[k] = 1.0 / (1.0 / go + 1.0 / ge.unsqueeze(-1))
        return {"bayesnas_update": True,
                "curvature_edge": {k: v.cpu().tolist() for k, v in h_edge.items()},
                "curvature_op": {k: v.cpu().tolist() for k, v in h_op.items()}}

    # ----- views ---------------------------------------------------------------------------
    def derive_scores(self) -> Weights:
        if self.none_col is None:
            return {k: v.detach().cpu().clone() for k, v in self.gamma_op.items()}
        out = {}
        for k, ge in self.gamma_edge.items():
            sc = self.gamma_op[k].detach().clone().cpu()
            sc[..., self.none_col] = -float("inf")
            dead = (ge.cpu() < self.opts.threshold)
            sc[dead] = -float("inf")
            sc[..., self.none_col] = torch.where(dead, 1.0, -float("inf"))
            out[k] = sc
        return out

    def derive_magnitudes(self) -> Weights:
        """Op gammas as non-negative weights: `none` column 0, rows of pruned edges
        (gamma_e < threshold) 0. Per-cell switches (the one-shot network): cell 0's gammas
        (every cell's are equal after an update), rows the network lacks -1 so that the DARTS
        rule takes exactly the network's 2 edges per node, and no row zeroed for pruning (each
        node has only those 2 edges; the pruned ones are in the update's `pruned_edges`)."""
        out = {}
        if self.cells is not None:
            for k, go in self.gamma_op.items():
                m = go[0].detach().cpu().clone().abs()
                if self.none_col is not None:
                    m[..., self.none_col] = 0.0
                m[self.row_mask[k].cpu() == 0] = -1.0
                out[k] = m
            return out
        for k, ge in self.gamma_edge.items():
            m = self.gamma_op[k].detach().cpu().clone().abs()
            if self.none_col is not None:
                m[..., self.none_col] = 0.0
            m[ge.cpu() < self.opts.threshold] = 0.0
            out[k] = m
        return out

    def derive(self) -> str:
        by_weight = getattr(self.space, "derive_weights", None)
        if by_weight is not None:  # a space whose rule ranks edges by weight (DARTS)
            return by_weight(self.derive_magnitudes())
        return self.space.derive(self.derive_scores())

    def arch_record(self) -> dict:
        t = lambda d: {k: v.detach().cpu().tolist() for k, v in d.items()}  # noqa: E731
        return {"edge_switch": t(self.edge_sw), "op_switch": t(self.op_sw),
                "gamma_edge": t(self.gamma_edge), "gamma_op": t(self.gamma_op),
                "omega_edge": t(self.omega_edge), "omega_op": t(self.omega_op),
                # s_e * s_eo per entry whatever the placement: one tensor per arch tensor, as
                # the figures expect (the input multipliers are the edge_switch record)
                "weights": t({k: self._record_weights(k) for k in self.edge_sw})}

    def _record_weights(self, k: str) -> torch.Tensor:
        w = self.edge_sw[k].unsqueeze(-1) * self.op_sw[k] * self.mask[k]
        return w.mean(0) if self.cells is not None else w  # per-cell switches: the cells' mean

    def state_dict(self) -> dict:
        c = lambda d: {k: v.detach().cpu().clone() for k, v in d.items()}  # noqa: E731
        return {"edge_sw": c(self.edge_sw), "op_sw": c(self.op_sw),
                "gamma_edge": c(self.gamma_edge), "gamma_op": c(self.gamma_op),
                "omega_edge": c(self.omega_edge), "omega_op": c(self.omega_op),
                "arch_optimizer": self.arch_optimizer.state_dict(),
                **({"generators": {n: g.get_state() for n, g in self.__dict__["_generators"].items()}}
                   if self.__dict__.get("_generators") else {})}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for name in ("edge_sw", "op_sw"):
                for k, v in state[name].items():
                    getattr(self, name)[k].copy_(v)
        for name in ("gamma_edge", "gamma_op", "omega_edge", "omega_op"):
            setattr(self, name, {k: v.to(self.device) for k, v in state[name].items()})
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        for n, g in self.__dict__.get("_generators", {}).items():
            if n in state.get("generators", {}):
                g.set_state(state["generators"][n].cpu())
