"""Training-free proxies: `score(name, network, inputs, targets) -> float` (higher = better).

- naswot (Mellor et al., ICML 2021; default): binary codes c = (x > 0) of the input of every
  ReLU, per sample; K = sum over ReLUs of c c^T + (1 - c)(1 - c)^T (B x B; entry = number
  of units where two samples agree); score = log|det K| (slogdet), in float64. The network
  runs in train mode (batch statistics), without gradients.
- synflow (Tanaka et al., NeurIPS 2020): on a float64 copy with every parameter replaced by
  its absolute value and BN in eval mode (fresh running statistics, so BN is the identity up
  to its affine part; our choice: batch statistics of a constant input would be zero), one
  all-ones input of the batch's shape; R = sum of outputs; score = sum |theta * dR/dtheta|.
- grad_norm (Abdelfattah et al., ICLR 2021): sum over parameters of ||dL/dtheta||_2 for the
  cross-entropy of the batch, train mode.
The caller's network is never changed (synflow works on a copy; naswot hooks are removed).
Written here: the reference implementations are research scripts, not installable packages.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def naswot(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    b = inputs.shape[0]
    k = torch.zeros(b, b, dtype=torch.float64, device=inputs.device)

    def hook(module, args):
        c = (args[0].detach().reshape(b, -1) > 0).to(torch.float64)
        k.add_(c @ c.T + (1 - c) @ (1 - c).T)
    handles = [m.register_forward_pre_hook(hook) for m in network.modules() if isinstance(m, nn.ReLU)]
    was_training = network.training
    try:
        network.train()
        with torch.no_grad():
            network(inputs)
    finally:
        for h in handles:
            h.remove()
        network.train(was_training)
    return torch.linalg.slogdet(k).logabsdet.item()


def synflow(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    net = copy.deepcopy(network).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    for p in net.parameters():
        p.grad = None
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    net(ones).sum().backward()
    return sum((p * p.grad).abs().sum().item() for p in net.parameters() if p.grad is not None)


def grad_norm(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    was_training = network.training
    network.train()
    params = [p for p in network.parameters() if p.requires_grad]
    try:
        loss = F.cross_entropy(network(inputs), targets)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        network.train(was_training)
    return sum(g.norm().item() for g in grads if g is not None)


PROXIES: dict[str, Callable[..., float]] = {"naswot": naswot, "synflow": synflow, "grad_norm": grad_norm}


def score(name: str, network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The named proxy's score of `network` on one batch (higher is better)."""
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; valid: {', '.join(PROXIES)}")
    return float(PROXIES[name](network, inputs, targets))
