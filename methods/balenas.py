"""BaLeNAS (Zhang et al., CVPR 2022): architecture weights as a Gaussian q(alpha) = N(mu, sigma^2)
learned by natural-gradient VI in its Adam form (Vadam, methods/vadam.py), dropped in where
DARTS uses Adam (docs/reference/methods.md#balenas).

Architecture step: Vadam samples alpha~ = mu + eps*sigma (S samples), takes the base gradient
of L_val at each sample (first order = grad_alpha L_val; second order = the unrolled DARTS
gradient of methods/darts.py), and updates mu. Weight step: at alpha = mu (softmax(mu)).
Derived cell: argmax of mu (the base `derive`, since self.alphas holds mu). Records mu and
sigma each epoch.

Defaults: the first author's public related code (iDARTS) builds
Vadam(lr=3e-4, betas=(0.5, 0.999), prec_init=1, train_set_size=25000, num_samples=1) with
prior precision 1 -- "author code, not confirmed for the paper". lr and betas come from the
profile's a_lr / a_betas (3e-4, (0.5, 0.999)); the profile's a_weight_decay is NOT used (the
Gaussian prior takes its place). Assumed: `train_set_size` defaults to the size of the
architecture split as used (25,000 in the paper profile; smaller with train_subset); the base
gradient order defaults to 1 (first order); step order: architecture first on every space
(docs/reference/methods.md#step-order gives it as the author's; the BaLeNAS code is not in this project's source
index, and the same author's iDARTS code runs its weight updates inside architect.step, so
treat it as assumed).
DARTS space: no public BaLeNAS code states its DARTS-space search settings, so the space's
DARTS `paper` profile applies (not confirmed for the paper).
Space-agnostic: every architecture tensor of `space.arch_shapes()` gets a mean and a sigma.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.base import Batch, SearchMethod, StepContext, accuracy, need_choice, need_int, need_number
from methods.darts import unrolled_arch_grad
from methods.vadam import Vadam


@dataclass
class BalenasOptions:
    num_samples: int = 1               # S Monte Carlo samples per step (author code)
    prior_prec: float = 1.0            # lambda, prior precision (author code)
    prec_init: float = 1.0             # initial precision: sigma_0 = 1/sqrt(prec_init) (author code)
    train_set_size: int | None = None  # N; None = the architecture split as used (assumed)
    order: int = 1                     # base gradient: 1 first order, 2 unrolled (assumed default 1)

    def __post_init__(self) -> None:
        need_int("num_samples", self.num_samples, 1)
        need_number("prior_prec", self.prior_prec, "> 0", lambda v: v > 0)
        need_number("prec_init", self.prec_init, "> 0", lambda v: v > 0)
        if self.train_set_size is not None:
            need_int("train_set_size", self.train_set_size, 1)
        need_choice("order", self.order, (1, 2))


class Balenas(SearchMethod):
    name = "balenas"
    Options = BalenasOptions
    arch_first = True

    def __init__(self, space, supernet, cfg, generator, device="cpu"):
        self.cfg = cfg  # own_generator reads the seed; the optimiser built in super() needs it
        self.sample_gen = self.own_generator("sample", 23)
        super().__init__(space, supernet, cfg, generator, device)

    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict[str, Any]:
        return {"arch_first": cls.arch_first}

    def arch_split_size(self) -> int:
        if self.opts.train_set_size is not None:
            return int(self.opts.train_set_size)
        return int(self.cfg.train_subset or 25000)

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        o = self.opts
        return Vadam(self.arch_parameters(), train_set_size=self.arch_split_size(), lr=self.cfg.a_lr,
                     betas=tuple(self.cfg.a_betas), prior_prec=o.prior_prec, prec_init=o.prec_init,
                     num_samples=o.num_samples, generator=self.sample_gen)

    def sigmas(self) -> dict[str, torch.Tensor]:
        return {k: self.arch_optimizer.sigma(v) for k, v in self.alphas.items()}

    def arch_step(self, train_batch: Batch, valid_batch: Batch, ctx: StepContext) -> dict:
        params = self.arch_parameters()
        seen: list = []

        def closure() -> torch.Tensor:  # evaluated by Vadam at each sampled alpha~
            if self.opts.order == 2:
                grads, loss, logits = unrolled_arch_grad(self, train_batch, valid_batch, ctx.w_optimizer)
            else:
                loss, logits = self.loss(self.mixing_weights(), valid_batch)
                grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g.detach()
            seen.append(accuracy(logits, valid_batch[1]))
            return loss.detach()
        loss = self.arch_optimizer.step(closure)
        return {"valid_loss": loss.item(), "valid_acc": sum(seen) / len(seen)}

    def arch_record(self) -> dict:
        rec = super().arch_record()
        rec["mu"] = rec.pop("alpha")
        rec["sigma"] = {k: v.cpu().tolist() for k, v in self.sigmas().items()}
        return rec
