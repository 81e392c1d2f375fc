"""Stability diagnostic: the dominant eigenvalue of the Hessian of the validation loss with
respect to the architecture parameters (Zela et al., "Understanding and Robustifying DARTS").

Power iteration on exact Hessian-vector products (double backward), so the full Hessian is
never formed. Method-agnostic: it uses only `method.mixing_weights()`,
`method.arch_parameters()` and `method.loss(weights, batch)`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def dominant_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                        iters: int = 20, tol: float = 1e-4,
                        generator: torch.Generator | None = None) -> float:
    """Eigenvalue of largest magnitude of d^2 loss / d params^2 (signed), by power iteration.

    `loss_fn()` must build the loss from `params` afresh (it is differentiated twice).
    Stops when the Rayleigh quotient changes by less than `tol` (relative) or after `iters`.
    """
    params = [p for p in params]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    v = [x / norm for x in v]
    eig = 0.0
    for i in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new = float(sum((h * x).sum() for h, x in zip(hv, v)))  # Rayleigh quotient v^T H v
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if float(norm) == 0.0:
            return 0.0
        v = [h / norm for h in hv]
        if i > 0 and abs(new - eig) <= tol * max(abs(eig), 1e-12):
            return new
        eig = new
    return eig


def hessian_max_eig(method, batch, seed: int = 0, iters: int = 20) -> float:
    """The diagnostic at the method's current mixing weights on one validation batch.

    Leaves the run untouched: supernet buffers (BN running statistics) are restored, the
    random start vector comes from its own generator (no global RNG is consumed), and no
    parameter receives a .grad.
    """
    net = method.supernet
    buffers = {k: b.detach().clone() for k, b in net.named_buffers()}
    try:
        return dominant_eigenvalue(lambda: method.loss(method.mixing_weights(), batch)[0],
                                   method.arch_parameters(), iters=iters,
                                   generator=torch.Generator().manual_seed(seed))
    finally:
        with torch.no_grad():
            for k, b in net.named_buffers():
                b.copy_(buffers[k])
