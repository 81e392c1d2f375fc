"""SDARTS (Chen & Hsieh, ICML 2020): smoothed DARTS by random (RS) or adversarial (ADV)
perturbation of the architecture during the weight step (docs/reference/methods.md#sdarts).

Architecture step: as DARTS first order (the base hooks). Weight step: abar = normalize(alpha)
(softmax per row), perturbed, fed to the supernet as the mixing weights directly:
  eps_t = epsilon_min + (epsilon_max - epsilon_min) * (epoch - 1) / epochs   (0-based epoch,
          as the SDARTS code counts)
  RS : abar += U[-eps_t, eps_t]; clip.
  ADV: PGD maximising L_train(w, abar) on the same training batch, supernet in eval mode;
       random start U[-eps_t, eps_t]; `attack_steps` steps of size 2*eps_t/attack_steps along
       sign(grad); after each: project onto ||abar - abar0||_inf <= eps_t, clip; if the final
       loss is below the unperturbed one, abar0 is used.
  clip: clamp to [0, 1]; a row summing to 0 gets 1 at its (pre-clamp) argmax; rows renormalised.

Source values: epsilon 0.03 -> 0.3, 7 steps, step 2*eps/7 (SDARTS paper and code). On NB201
the SDARTS code's protocol differs from AutoDL's (100 epochs, wd 3e-4, no Nesterov, contiguous
halves, BN track_running_stats=True, architecture step first): the `paper` profile applies it.
DARTS space: the SDARTS code's sota/cnn/train_search.py uses the DARTS values (50 epochs,
batch 64, lr 0.025 -> 0.001, wd 3e-4, momentum 0.9, first/second halves of the training set,
architecture step first, epsilon_alpha 0.3 ramped from 0.03): the space's `paper` profile.
Its op set is not DARTS's 8: sota/cnn/spaces.py lines 80-92 and 99 define the "original DARTS
space" `s5` with `'none'` commented out, and the published CIFAR-10 cells (sota/cnn/genotypes.py
lines 26-27, c10_s5_random / c10_s5_pgd) come from it, so on `darts` every profile sets
`supernet.op_set=s5` (7 ops, (14, 7) tensors; epsilon perturbs a 7-op simplex). It is a supernet
argument set here rather than a space of its own so that `--spaces darts` compares the methods
on one space name while the op set stays in each run's identity (config.json `supernet`).
On NAS-Bench-1Shot1 the SDARTS code (chenxiangning/SmoothDARTS, its 1Shot1 copy of
optimizers/darts/train_search.py) keeps the 1Shot1 protocol but defaults to 100 epochs, and
its README commands do not change that: the `paper` profile runs 100 epochs there. (Read in
that repository for issue 11; it is not in this project's source index, so it was not
re-read here.) Step order: architecture first on every space (the SDARTS code's loops).
Space-agnostic: every architecture tensor's last dim is treated as one simplex row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from methods.base import Batch, SearchMethod, StepContext, need_int, need_number
from spaces.base import Weights


@dataclass
class SdartsOptions:
    epsilon_min: float = 0.03   # eps at the first epoch (SDARTS code)
    epsilon_max: float = 0.3    # eps approached at the last epoch (SDARTS paper, `epsilon_alpha`)
    attack_steps: int = 7       # PGD steps (ADV only; SDARTS paper)

    def __post_init__(self) -> None:
        # eps bounds a perturbation of simplex weights (each in [0, 1]); it grows min -> max.
        need_number("epsilon_min", self.epsilon_min, "in [0, 1]", lambda v: 0 <= v <= 1)
        need_number("epsilon_max", self.epsilon_max, f"in [epsilon_min={self.epsilon_min}, 1]",
                    lambda v: self.epsilon_min <= v <= 1)
        need_int("attack_steps", self.attack_steps, 1)


def clip_simplex(w: torch.Tensor) -> torch.Tensor:
    """Rows (last dim) clamped to [0, 1] and renormalised; an all-zero row becomes one-hot at
    its argmax before clamping."""
    arg = w.argmax(dim=-1, keepdim=True)
    out = w.clamp(0.0, 1.0)
    dead = out.sum(dim=-1, keepdim=True) == 0
    out = torch.where(dead, torch.zeros_like(out).scatter(-1, arg, 1.0), out)
    return out / out.sum(dim=-1, keepdim=True)


def epsilon(opts: SdartsOptions, epoch: int, epochs: int) -> float:
    return opts.epsilon_min + (opts.epsilon_max - opts.epsilon_min) * (epoch - 1) / epochs


def _uniform(like: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(like.shape, generator=gen, dtype=like.dtype).to(like.device)
    return (2 * u - 1) * eps


def pgd_attack(loss_fn, abar0: Weights, eps: float, steps: int, gen: torch.Generator) -> tuple[Weights, dict]:
    """Projected sign-gradient ascent of `loss_fn(weights) -> scalar` within the eps ball.

    As in the SDARTS code the clip follows the projection, so the clip's renormalisation can
    move a row slightly beyond eps (a few percent of eps); the projected iterate is within it.
    """
    step = 2 * eps / steps
    abar = {k: clip_simplex(v + _uniform(v, eps, gen)) for k, v in abar0.items()}
    dev = 0.0  # largest |abar - abar0| after the projection, before the clip
    for _ in range(steps):
        req = {k: v.clone().requires_grad_() for k, v in abar.items()}
        grads = torch.autograd.grad(loss_fn(req), list(req.values()))
        with torch.no_grad():
            abar = {}
            for (k, v), g in zip(req.items(), grads):
                moved = v + step * g.sign()
                moved = abar0[k] + (moved - abar0[k]).clamp(-eps, eps)
                dev = max(dev, (moved - abar0[k]).abs().max().item())
                abar[k] = clip_simplex(moved)
    with torch.no_grad():
        loss_adv, loss_clean = loss_fn(abar).item(), loss_fn(abar0).item()
    if loss_adv < loss_clean:
        abar = abar0
    return abar, {"loss_adv": max(loss_adv, loss_clean), "loss_clean": loss_clean,
                  "projected_deviation": dev}


class _Sdarts(SearchMethod):
    Options = SdartsOptions
    arch_first = True
    # SmoothDARTS nasbench201/train_search.py line 246 clips `model.parameters()`, which holds
    # the architecture parameter (nasbench201/model.py line 158, an nn.Parameter) after it was
    # overwritten by the perturbed softmax and its grad zeroed (lines 228-239): the norm
    # includes d L_train / d (perturbed mixing weights). Its 1Shot1 model keeps the alphas as
    # Variables outside parameters() (optimizers/darts/model_search.py lines 215-225).
    clip_arch_spaces = ("nb201",)

    def arch_in_clip(self, weights):
        leaf = {k: v.detach().requires_grad_() for k, v in weights.items()}
        return leaf, list(leaf.values())

    def __init__(self, space, supernet, cfg, generator, device="cpu"):
        super().__init__(space, supernet, cfg, generator, device)
        self.noise = self.own_generator("noise", 11)

    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict[str, Any]:
        out: dict[str, Any] = {"arch_first": True}
        if space == "darts":   # the SDARTS DARTS space: no `none` (sota/cnn/spaces.py line 81)
            out["supernet.op_set"] = "s5"
        if space == "nb201" and profile == "paper":
            out.update({"epochs": 100, "w_weight_decay": 3e-4, "w_nesterov": False,
                        "split": "contiguous", "supernet.track_running_stats": True})
        elif space.startswith("nb1shot1") and profile == "paper":
            out["epochs"] = 100  # SmoothDARTS 1Shot1 train_search.py default (see above)
        return out



class SdartsRS(_Sdarts):
    name = "sdarts-rs"

    def weight_step_weights(self, batch: Batch, ctx: StepContext) -> Weights:
        eps = epsilon(self.opts, ctx.epoch, ctx.epochs)
        return {k: clip_simplex(v + _uniform(v, eps, self.noise)) for k, v in self.eval_weights().items()}


class SdartsADV(_Sdarts):
    name = "sdarts-adv"

    def weight_step_weights(self, batch: Batch, ctx: StepContext) -> Weights:
        eps = epsilon(self.opts, ctx.epoch, ctx.epochs)
        was_training = self.supernet.training
        self.supernet.eval()  # the SDARTS attack runs in eval mode (matters with running stats)
        try:
            abar, _ = pgd_attack(lambda w: F.cross_entropy(self.supernet(batch[0], w), batch[1]),
                                 self.eval_weights(), eps, self.opts.attack_steps, self.noise)
        finally:
            self.supernet.train(was_training)
        return abar
