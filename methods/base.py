"""The method interface: the hooks the one search loop calls.

A method owns the architecture parameters and their optimiser; the loop owns the supernet's
weights, their optimiser and schedule, the data, seeding, checkpoints and records. The
default hooks are DARTS' first-order behaviour; a method overrides only what it changes.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
import math
from typing import Any, Callable, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from spaces.base import Weights

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class NoOptions:
    """A method without hyperparameters of its own."""


# ---- option checks: each Options dataclass validates itself in __post_init__ --------------
def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def need_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    """method.<name> must be a whole number in [lo, hi] (hi None: no upper bound)."""
    if not (_whole(value) and value >= lo and (hi is None or value <= hi)):
        rule = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"method.{name} must be a whole number {rule}, got {value!r}")


def need_number(name: str, value: Any, rule: str, ok: Callable[[float], bool]) -> None:
    """method.<name> must be a finite number with ok(value); `rule` says which, e.g. '> 0'."""
    if not (_number(value) and ok(value)):
        raise ValueError(f"method.{name} must be a number {rule}, got {value!r}")


def need_choice(name: str, value: Any, choices) -> None:
    """method.<name> must be one of `choices` (True is not 1 here)."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"method.{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass
class StepContext:
    """What a hook may read of the loop's state at one step."""
    supernet: nn.Module
    w_optimizer: torch.optim.SGD
    epoch: int            # 1-based epoch being trained
    epochs: int
    grad_clip: float
    train_size: int       # images in the weights' half (as used)
    valid_size: int       # images in the architecture's half (as used)
    # eval_batches(batch_size, augment=False): an endless iterator of batches of the
    # architecture half with the TEST transform (augment=True: the training transform, random
    # crop and flip), in shuffled passes; each call starts a new pass (as a fresh
    # iter(DataLoader) does). Its generator is the loop's, checkpointed with the run. None
    # where the caller has no data (unit tests, timing scripts).
    eval_batches: Callable[..., Iterator["Batch"]] | None = None

    @property
    def w_lr(self) -> float:
        return self.w_optimizer.param_groups[0]["lr"]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == y).float().mean().item()


class SearchMethod:
    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    # The step order of the method's source (docs/reference/methods.md#step-order), a fact of a (method, space)
    # pair: None = the space profile's order, the protocol the benchmark's authors ran DARTS
    # with (NB201: AutoDL's DARTS-V1, weight step first; 1Shot1: its DARTS code, architecture
    # first); True/False = this method's source takes that order on every space. A method
    # whose order differs per space overrides profile_overrides. Pinned for every method x
    # space by tests/methods/test_step_order.py.
    arch_first: ClassVar[bool | None] = None
    # Spaces on which the method's source clips the weight step's gradient norm over ALL of
    # `model.parameters()`, which there holds the architecture parameter (an nn.Parameter of
    # the model): the clip's norm then includes the architecture's gradient at that moment.
    # A subclass lists them and says, in `arch_in_clip`, which tensors those are.
    clip_arch_spaces: ClassVar[tuple[str, ...]] = ()

    def __init__(self, space, supernet: nn.Module, cfg, generator: torch.Generator,
                 device: torch.device | str = "cpu"):
        self.space, self.supernet, self.cfg, self.device = space, supernet, cfg, device
        self.opts = self.Options(**cfg.method_options)
        self.alphas = {
            name: (cfg.arch_init_std * torch.randn(shape, generator=generator)).to(device).requires_grad_()
            for name, shape in space.arch_shapes().items()}
        self.arch_optimizer = self.make_arch_optimizer()

    def own_generator(self, name: str, offset: int) -> torch.Generator:
        """A generator of the method's own (noise, samples, candidates), seeded from the run's
        seed and `offset`, whose state the base class checkpoints: a resumed run draws on."""
        gens = self.__dict__.setdefault("_generators", {})
        gens[name] = torch.Generator().manual_seed(int(self.cfg.seed) * 7919 + offset)
        return gens[name]

    # ----- configuration ------------------------------------------------------------------
    @classmethod
    def profile_overrides(cls, space: str, profile: str) -> dict[str, Any]:
        """SearchConfig fields this method's source sets differently (per space, profile); a key
        `supernet.<arg>` changes one supernet argument of the space's profile."""
        return {} if cls.arch_first is None else {"arch_first": cls.arch_first}

    @classmethod
    def option_overrides(cls, space: str, profile: str, options: dict[str, Any]) -> dict[str, Any]:
        """SearchConfig fields implied by the run's method options (after the profile and the
        user's `--set method.<option>`), e.g. a method option that selects another procedure;
        none by default. The user's own `--set` of a field still wins."""
        return {}

    def trains_on_arch_half(self, epoch: int) -> bool:
        """True: the loop's weight steps in `epoch` iterate the ARCHITECTURE half (the batches
        passed as `train_batch`), with batches of the weights half as `valid_batch`; the
        epoch then has as many steps as that half has batches. False by default."""
        return False

    @classmethod
    def check_space(cls, options, space) -> None:
        """Raise ValueError naming the option when `options` cannot apply to `space` (called
        at planning, before anything is created, and by the method's constructor)."""

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls.Options)]

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.arch_parameters(), lr=self.cfg.a_lr,
                                betas=tuple(self.cfg.a_betas), weight_decay=self.cfg.a_weight_decay)

    # ----- views of the architecture ------------------------------------------------------
    def arch_parameters(self) -> list[torch.Tensor]:
        return list(self.alphas.values())

    def mixing_weights(self) -> Weights:
        """Weights the supernet mixes with, differentiable w.r.t. the architecture."""
        return self.space.normalize(self.alphas)

    def eval_weights(self) -> Weights:
        return {k: v.detach() for k, v in self.mixing_weights().items()}

    def loss(self, weights: Weights, batch: Batch, params: dict | None = None):
        x, y = batch
        if params is None:
            logits = self.supernet(x, weights)
        else:
            logits = torch.func.functional_call(self.supernet, params, (x, weights))
        return F.cross_entropy(logits, y), logits

    # ----- hooks the loop calls -----------------------------------------------------------
    def arch_step(self, train_batch: Batch, valid_batch: Batch, ctx: StepContext) -> dict:
        """First-order: the gradient of L_val w.r.t. alpha; weights never receive it."""
        self.arch_optimizer.zero_grad(set_to_none=True)
        loss, logits = self.loss(self.mixing_weights(), valid_batch)
        grads = torch.autograd.grad(loss, self.arch_parameters())
        for p, g in zip(self.arch_parameters(), grads):
            p.grad = g
        self.arch_optimizer.step()
        return {"valid_loss": loss.item(), "valid_acc": accuracy(logits, valid_batch[1])}

    def weight_step_weights(self, batch: Batch, ctx: StepContext) -> Weights:
        return self.eval_weights()

    def arch_in_clip(self, weights: Weights) -> tuple[Weights, list[torch.Tensor]]:
        """(the weights to run the weight step with, the architecture tensors whose gradients
        the clip also covers) on a space in `clip_arch_spaces`; none by default."""
        return weights, []

    # False: the weight step zeroes gradients in place (zero_grad(set_to_none=False), as
    # PyTorch before 2.0 did); a parameter that has had a gradient keeps a (zero) one, so SGD's
    # weight decay and momentum keep acting on it in steps that do not reach it (random-ws'
    # `grads_in_place`)
    grads_to_none: bool = True

    def weight_step(self, batch: Batch, ctx: StepContext) -> dict:
        ctx.w_optimizer.zero_grad(set_to_none=self.grads_to_none)
        weights, extra = self.weight_step_weights(batch, ctx), []
        if self.space.name in self.clip_arch_spaces:
            weights, extra = self.arch_in_clip(weights)
        loss, logits = self.loss(weights, batch)
        loss.backward()
        if extra:
            nn.utils.clip_grad_norm_([*self.supernet.parameters(), *extra], ctx.grad_clip)
        else:
            nn.utils.clip_grad_norm_(self.supernet.parameters(), ctx.grad_clip)
        ctx.w_optimizer.step()
        return {"train_loss": loss.item(), "train_acc": accuracy(logits, batch[1])}

    def derive(self) -> str:
        """The genotype recorded each epoch (the per-epoch trajectory)."""
        return self.space.derive({k: v.detach().cpu() for k, v in self.alphas.items()})

    def final_genotype(self) -> str:
        """The method's answer at the end of the search. Equal to `derive()` unless a method
        post-selects (BaLeNAS-TF: the proxy's pick, also in the last record's
        diagnostics['selected_genotype'])."""
        return self.derive()

    def arch_record(self) -> dict:
        """JSON-able architecture state for the epoch record."""
        return {"alpha": {k: v.detach().cpu().tolist() for k, v in self.alphas.items()},
                "weights": {k: v.cpu().tolist() for k, v in self.eval_weights().items()}}

    def epoch_end(self, epoch: int, ctx: StepContext) -> dict:
        """Per-epoch diagnostics (JSON-able)."""
        return {}

    def state_dict(self) -> dict:
        return {"alphas": {k: v.detach().cpu() for k, v in self.alphas.items()},
                "arch_optimizer": self.arch_optimizer.state_dict(),
                "generators": {k: g.get_state() for k, g in self.__dict__.get("_generators", {}).items()}}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for k, v in state["alphas"].items():
                self.alphas[k].copy_(v)
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        for k, g in self.__dict__.get("_generators", {}).items():
            # .cpu(): a checkpoint loaded with map_location=<cuda device> brings these byte
            # tensors to the GPU, but a CPU generator's set_state takes a CPU ByteTensor.
            g.set_state(state["generators"][k].cpu())
