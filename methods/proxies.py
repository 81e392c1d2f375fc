"""Training-free proxies: `score(name, network, inputs, targets) -> float` (higher = better).

- naswot (Mellor et al., ICML 2021; default): binary codes c = (x > 0) of the input of every
  ReLU, per sample; K = sum over ReLUs of c c^T + (1 - c)(1 - c)^T (B x B; entry = number
  of units where two samples agree); score = log|det K| (slogdet), in float64. The network
  runs in train mode (batch statistics), without gradients.
- synflow (Tanaka et al., NeurIPS 2020), as SamsungLabs/zero-cost-nas computes it
  (foresight/pruners/measures/synflow.py): on a float64 copy WITHOUT BatchNorm (line 22,
  `@measure('synflow', bn=False)`: the network is rebuilt with bn=False; here every
  BatchNorm layer of the copy is replaced by the identity) with every parameter replaced by
  its absolute value (lines 30-35), one all-ones input of the batch's shape (line 51);
  R = sum of outputs; score = sum over the weights of Conv2d and Linear layers only of
  |w * dR/dw| (line 58 `layer.weight * layer.weight.grad`; p_utils.py line 62, Conv2d or
  Linear; biases and BN parameters are not counted).
- grad_norm (Abdelfattah et al., ICLR 2021; zero-cost-nas grad_norm.py line 36): sum over
  the Conv2d and Linear layers of ||dL/dw||_2 of their weights (p_utils.py line 62), for the
  cross-entropy of the batch, train mode, BN kept (line 24, bn=True).
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


def layer_weights(network: nn.Module) -> list[torch.Tensor]:
    """The weights the zero-cost proxies sum over: those of Conv2d and Linear layers
    (zero-cost-nas foresight/pruners/p_utils.py line 62)."""
    return [m.weight for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def without_batchnorm(network: nn.Module) -> nn.Module:
    """Every BatchNorm layer replaced by the identity, in place (synflow's bn=False)."""
    for name, child in list(network.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(network, name, nn.Identity())
        else:
            without_batchnorm(child)
    return network


def synflow(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    net = without_batchnorm(copy.deepcopy(network)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    for p in net.parameters():
        p.grad = None
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    net(ones).sum().backward()
    return sum((w * w.grad).abs().sum().item() for w in layer_weights(net) if w.grad is not None)


def grad_norm(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    was_training = network.training
    network.train()
    params = [w for w in layer_weights(network) if w.requires_grad]
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
