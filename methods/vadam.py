"""Vadam: the Adam-form natural-gradient VI optimiser (Khan et al., ICML 2018), as BaLeNAS
uses it for the architecture weights (docs/reference/methods.md#balenas).

The parameters hold the mean mu of a diagonal Gaussian q = N(mu, sigma^2) with
sigma = 1 / sqrt(N*s + lambda) (N = train_set_size, lambda = prior_prec). One `step(closure)`:

  for each of S samples: alpha~ = mu + eps * sigma, eps ~ N(0, I); g_k = closure() grads at alpha~
  g = mean_k g_k,  gsq = mean_k g_k^2   (the mean of squares, not the square of the mean)
  m <- b1*m + (1-b1)*(g + (lambda/N)*mu);  s <- b2*s + (1-b2)*gsq
  mu <- mu - lr * mhat / (sqrt(shat) + lambda/N)       (mhat, shat bias-corrected)

State starts at m = 0, s = (prec_init - lambda)/N. The closure must compute the loss as a
MEAN over the batch (so N*s estimates the data term of the precision) and leave gradients
in `p.grad`. Written here because torch has no natural-gradient VI optimiser and the
reference implementation (Khan's `vadam` package) is not on PyPI.
"""
from __future__ import annotations

from typing import Callable

import torch


class Vadam(torch.optim.Optimizer):
    def __init__(self, params, train_set_size: int, lr: float = 3e-4,
                 betas: tuple[float, float] = (0.5, 0.999), prior_prec: float = 1.0,
                 prec_init: float = 1.0, num_samples: int = 1,
                 generator: torch.Generator | None = None):
        if train_set_size < 1:
            raise ValueError(f"train_set_size must be >= 1, got {train_set_size}")
        if prior_prec <= 0 or prec_init < prior_prec:
            raise ValueError(f"need prior_prec > 0 and prec_init >= prior_prec, got "
                             f"prior_prec={prior_prec}, prec_init={prec_init}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        defaults = dict(lr=lr, betas=tuple(betas), prior_prec=prior_prec, prec_init=prec_init,
                        num_samples=num_samples, train_set_size=train_set_size)
        super().__init__(params, defaults)
        self.generator = generator

    def _state(self, p: torch.Tensor, group: dict) -> dict:
        st = self.state[p]
        if not st:
            n = group["train_set_size"]
            st["step"] = 0
            st["exp_avg"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.full_like(p, (group["prec_init"] - group["prior_prec"]) / n)
        return st

    @torch.no_grad()
    def sigma(self, p: torch.Tensor) -> torch.Tensor:
        """The posterior standard deviation of parameter `p`, 1/sqrt(N*s + lambda)."""
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                st = self._state(p, group)
                return (group["train_set_size"] * st["exp_avg_sq"] + group["prior_prec"]).rsqrt()
        raise KeyError("parameter not managed by this optimiser")

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(p.shape, generator=self.generator, dtype=p.dtype)
        return eps.to(p.device)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Sample, evaluate `closure` (it must zero and then set p.grad), restore mu, update.
        Returns the mean of the closure's losses."""
        if closure is None:
            raise ValueError("Vadam needs a closure: it evaluates gradients at sampled weights")
        params = [(p, g) for g in self.param_groups for p in g["params"]]
        mus = [p.detach().clone() for p, _ in params]
        g_sum = [torch.zeros_like(p) for p, _ in params]
        gsq_sum = [torch.zeros_like(p) for p, _ in params]
        samples = max(g["num_samples"] for g in self.param_groups)
        losses = []
        for _ in range(samples):
            for (p, group), mu in zip(params, mus):
                p.copy_(mu + self._noise(p) * self.sigma(p))
            with torch.enable_grad():
                losses.append(closure().detach())
            for (p, _), gs, gq in zip(params, g_sum, gsq_sum):
                if p.grad is not None:
                    gs.add_(p.grad)
                    gq.add_(p.grad * p.grad)
        for (p, group), mu, gs, gq in zip(params, mus, g_sum, gsq_sum):
            p.copy_(mu)
            st = self._state(p, group)
            b1, b2 = group["betas"]
            prior = group["prior_prec"] / group["train_set_size"]
            st["step"] += 1
            st["exp_avg"].mul_(b1).add_(gs / samples + prior * mu, alpha=1 - b1)
            st["exp_avg_sq"].mul_(b2).add_(gq / samples, alpha=1 - b2)
            mhat = st["exp_avg"] / (1 - b1 ** st["step"])
            shat = st["exp_avg_sq"] / (1 - b2 ** st["step"])
            p.addcdiv_(mhat, shat.sqrt().add_(prior), value=-group["lr"])
        return torch.stack(losses).mean()

